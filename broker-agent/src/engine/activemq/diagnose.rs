//! Why an ActiveMQ broker (the JVM) stopped, from its console output.
//!
//! When xbean/Spring refuses the rendered activemq.xml, the broker logs
//! `| ERROR | Failed to load: URL [file:…/activemq.xml], reason: …`, then the console
//! launcher prints `ERROR: java.lang.RuntimeException: Failed to execute start task …`
//! and stack traces whose last `Caused by:` line is the root cause, e.g.
//! `Caused by: java.lang.IllegalArgumentException: Could not convert to a memory size:
//! banana` (a policyEntry `memoryLimit`), or `Caused by: org.xml.sax.SAXParseException;
//! lineNumber: 4; columnNumber: 205; cvc-datatype-valid.1.2.1: 'banana' is not a valid
//! value for 'integer'.` (an attribute the XSD types), and the JVM exits with code 1
//! about a second after it started.
//!
//! The excerpt is that root cause, with the bean property being set when Spring names
//! one. Deterministic: a configuration Spring refuses, or a JVM that cannot start at all.

use crate::engine::diagnosis::{self, Diagnosis, MAX_EXCERPT};

/// Output fragments of a configuration the broker refuses, or of a JVM that cannot
/// start: the same at every start.
pub const DETERMINISTIC: &[&str] = &[
    "Failed to load: URL [",
    "BeanCreationException",
    "BeanDefinitionStoreException",
    "BeanDefinitionParsingException",
    "SAXParseException",
    "Could not create the Java Virtual Machine",
    "Error occurred during initialization of VM",
];

/// The message of a log4j console line (`date | LEVEL | message | logger | thread`).
fn log4j_message(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.splitn(4, " | ");
    let _date = parts.next()?;
    let level = parts.next()?.trim();
    let message = parts.next()?;
    parts.next()?;
    Some((level, message))
}

/// The last `bean property 'name'` Spring mentions, if any.
fn bean_property(lines: &[String]) -> Option<String> {
    const MARK: &str = "bean property '";
    let line = lines.iter().rev().find(|l| l.contains(MARK))?;
    let start = line.rfind(MARK)? + MARK.len();
    let len = line[start..].find('\'')?;
    Some(line[start..start + len].to_string())
}

/// See the module docs.
pub fn diagnose(lines: &[String]) -> Diagnosis {
    let deterministic = lines
        .iter()
        .any(|l| DETERMINISTIC.iter().any(|p| l.contains(p)));
    let last = lines.iter().rev().map(|l| l.trim()).find(|l| !l.is_empty());
    // -XX:+ExitOnOutOfMemoryError: the JVM's last words say it all.
    if let Some(oom) = last.filter(|l| l.starts_with("Terminating due to")) {
        return Diagnosis {
            excerpt: Some(diagnosis::shorten(oom, MAX_EXCERPT)),
            deterministic: false,
        };
    }
    let root = lines
        .iter()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("Caused by: "))
        .next()
        .map(str::to_string);
    let console_error = || {
        lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("ERROR: ").map(str::to_string))
    };
    let logged_error = || {
        lines.iter().rev().find_map(|l| match log4j_message(l) {
            Some(("ERROR", m)) => Some(m.to_string()),
            _ => None,
        })
    };
    let Some(cause) = root.or_else(console_error).or_else(logged_error) else {
        // Routine log lines (a broker killed while it ran) say nothing about why.
        let telling = |l: &str| !matches!(log4j_message(l), Some(("INFO" | "DEBUG" | "TRACE", _)));
        return Diagnosis {
            excerpt: diagnosis::last_lines_where(lines, 3, telling),
            deterministic,
        };
    };
    let loading = lines
        .iter()
        .any(|l| l.contains("Failed to load: URL [") || l.contains("BeanCreationException"));
    let mut excerpt = if loading {
        format!("the broker refused activemq.xml: {cause}")
    } else {
        cause
    };
    if let Some(property) = bean_property(lines) {
        excerpt.push_str(&format!(" (setting bean property '{property}')"));
    }
    Diagnosis {
        excerpt: Some(diagnosis::shorten(&excerpt, MAX_EXCERPT)),
        deterministic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    /// ActiveMQ 5.17 on `<policyEntry queue=">" memoryLimit="banana"/>` (abridged).
    const BAD_MEMORY_LIMIT: &str = "\
Loading message broker from: xbean:file:/etc/activemq/instances-enabled/berth/activemq.xml
2026-12-01 11:06:38,956 | INFO  | Refreshing org.apache.activemq.xbean.XBeanBrokerFactory$1@2a556333: startup date [Tue Dec 01 11:06:38 UTC 2026]; root of context hierarchy | org.apache.activemq.xbean.XBeanBrokerFactory$1 | main
2026-12-01 11:06:39,668 | ERROR | Failed to load: URL [file:/etc/activemq/instances-enabled/berth/activemq.xml], reason: Error creating bean with name 'org.apache.activemq.xbean.XBeanBrokerService#0' defined in URL [file:/etc/activemq/instances-enabled/berth/activemq.xml]: Cannot create inner bean 'policyEntry#fa49800' of type [org.apache.activemq.broker.region.policy.PolicyEntry] while setting bean property 'policyEntries' with key [0]; nested exception is org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'policyEntry#fa49800': Cannot create inner bean '(inner bean)#b83a9be' of type [org.apache.xbean.spring.context.v2c.PropertyEditorFactory] while setting bean property 'memoryLimit'; nested exception is java.lang.IllegalArgumentException: Could not convert to a memory size: banana | org.apache.activemq.xbean.XBeanBrokerFactory | main
org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'org.apache.activemq.xbean.XBeanBrokerService#0'
\tat org.springframework.beans.factory.support.BeanDefinitionValueResolver.resolveInnerBean(BeanDefinitionValueResolver.java:389)
Caused by: org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'policyEntry#fa49800': Cannot create inner bean '(inner bean)#b83a9be' of type [org.apache.xbean.spring.context.v2c.PropertyEditorFactory] while setting bean property 'memoryLimit'; nested exception is java.lang.IllegalArgumentException: Could not convert to a memory size: banana
\tat org.springframework.beans.factory.support.BeanDefinitionValueResolver.resolveInnerBean(BeanDefinitionValueResolver.java:389)
Caused by: java.lang.IllegalArgumentException: Could not convert to a memory size: banana
\tat org.apache.activemq.util.XBeanByteConverterUtil.convertToLongBytes(XBeanByteConverterUtil.java:46)
\t... 42 more
ERROR: java.lang.RuntimeException: Failed to execute start task. Reason: org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'org.apache.activemq.xbean.XBeanBrokerService#0'
";

    #[test]
    fn a_refused_bean_property_is_deterministic_with_its_root_cause() {
        let d = diagnose(&lines(BAD_MEMORY_LIMIT));
        assert!(d.deterministic);
        assert_eq!(
            d.excerpt.unwrap(),
            "the broker refused activemq.xml: java.lang.IllegalArgumentException: Could not \
             convert to a memory size: banana (setting bean property 'memoryLimit')"
        );
    }

    #[test]
    fn a_schema_error_is_deterministic() {
        let text = "\
2026-12-01 11:05:11,600 | ERROR | Failed to load: URL [file:/etc/activemq/instances-enabled/berth/activemq.xml], reason: Line 4 in XML document from URL [file:/etc/activemq/instances-enabled/berth/activemq.xml] is invalid; nested exception is org.xml.sax.SAXParseException; lineNumber: 4; columnNumber: 205; cvc-datatype-valid.1.2.1: 'banana' is not a valid value for 'integer'. | org.apache.activemq.xbean.XBeanBrokerFactory | main
org.springframework.beans.factory.xml.XmlBeanDefinitionStoreException: Line 4 in XML document from URL [file:/etc/activemq/instances-enabled/berth/activemq.xml] is invalid; nested exception is org.xml.sax.SAXParseException; lineNumber: 4; columnNumber: 205; cvc-datatype-valid.1.2.1: 'banana' is not a valid value for 'integer'.
Caused by: org.xml.sax.SAXParseException; lineNumber: 4; columnNumber: 205; cvc-datatype-valid.1.2.1: 'banana' is not a valid value for 'integer'.
ERROR: org.springframework.beans.factory.xml.XmlBeanDefinitionStoreException: Line 4 in XML document
";
        let d = diagnose(&lines(text));
        assert!(d.deterministic);
        assert_eq!(
            d.excerpt.unwrap(),
            "the broker refused activemq.xml: org.xml.sax.SAXParseException; lineNumber: 4; \
             columnNumber: 205; cvc-datatype-valid.1.2.1: 'banana' is not a valid value for \
             'integer'."
        );
    }

    #[test]
    fn a_jvm_that_cannot_start_is_deterministic() {
        let text = "Invalid maximum heap size: -Xmx0m\n\
                    Error: Could not create the Java Virtual Machine.\n\
                    Error: A fatal exception has occurred. Program will exit.\n";
        let d = diagnose(&lines(text));
        assert!(d.deterministic);
        assert!(d.excerpt.unwrap().starts_with("Invalid maximum heap size"));
    }

    #[test]
    fn other_ends_are_not_deterministic() {
        let oom = "2026-12-01 11:05:11,600 | INFO  | something | x | main\n\
                   Caused by: java.io.IOException: old and unrelated\n\
                   Terminating due to java.lang.OutOfMemoryError: Java heap space\n";
        let d = diagnose(&lines(oom));
        assert!(!d.deterministic);
        assert_eq!(
            d.excerpt.unwrap(),
            "Terminating due to java.lang.OutOfMemoryError: Java heap space"
        );
        let logged = "2026-12-01 11:05:11,600 | ERROR | Could not start the store: disk full | org.apache.activemq.broker.BrokerService | main\n";
        let d = diagnose(&lines(logged));
        assert!(!d.deterministic);
        assert_eq!(d.excerpt.unwrap(), "Could not start the store: disk full");
        assert_eq!(diagnose(&[]), Diagnosis::default());
        // killed while running: the last INFO lines are no reason
        let killed = "2026-12-01 11:26:28,436 | INFO  | Connector mqtt started | org.apache.activemq.broker.TransportConnector | main\n\
                      2026-12-01 11:26:28,436 | INFO  | Apache ActiveMQ 5.17.6 (b-live1) started | org.apache.activemq.broker.BrokerService | main\n";
        assert_eq!(diagnose(&lines(killed)), Diagnosis::default());
        let warned = "2026-12-01 11:26:28,436 | WARN  | Store limit is 8192 mb, whilst the data directory only has 900 mb | x | main\n\
                      2026-12-01 11:26:28,436 | INFO  | Apache ActiveMQ 5.17.6 (b-live1) started | x | main\n";
        assert!(diagnose(&lines(warned))
            .excerpt
            .unwrap()
            .contains("| WARN |"));
    }
}
