//! Why a RabbitMQ node stopped, from its console output.
//!
//! A node that cannot boot prints `BOOT FAILED` and `Error during startup: {error,…}`,
//! preceded by the `[error]` log lines that say what went wrong, e.g. for a value
//! cuttlefish cannot convert:
//!
//! ```text
//! 2026-12-01 11:06:39.647247+00:00 [error] <0.153.0> Error preparing configuration in phase transform_datatypes:
//! 2026-12-01 11:06:39.660434+00:00 [error] <0.153.0>   - Error transforming datatype for: heartbeat
//! 2026-12-01 11:06:39.660592+00:00 [error] <0.153.0>   - "banana" cannot be converted to a(n) integer
//! BOOT FAILED
//! Error during startup: {error,failed_to_prepare_configuration}
//! ```
//!
//! The excerpt is that block of `[error]` lines (without timestamps) and the `Error
//! during startup` term. Configuration errors (rabbitmq.conf refused by cuttlefish or
//! its schema) are deterministic; other boot failures (e.g. waiting for cluster peers
//! timed out) are not.

use crate::engine::diagnosis::{self, Diagnosis, MAX_EXCERPT};

/// Output fragments that mean rabbitmq.conf (or advanced.config) was refused.
pub const CONFIG_ERRORS: &[&str] = &[
    "failed_to_prepare_configuration",
    "Error preparing configuration",
    "Conf file attempted to set unknown variable",
    "Error generating configuration",
];

/// `(level, message)` of a RabbitMQ log line (`DATE TIME [level] <pid> message`), or
/// `(None, line)` for anything else.
pub fn parse_line(line: &str) -> (Option<&str>, &str) {
    let dated = line.len() > 11 && line.as_bytes()[4] == b'-' && line.as_bytes()[10] == b' ';
    if !dated {
        return (None, line);
    }
    let Some(open) = line.find(" [") else {
        return (None, line);
    };
    let rest = &line[open + 2..];
    let Some(close) = rest.find(']') else {
        return (None, line);
    };
    let level = &rest[..close];
    let mut msg = rest[close + 1..].trim_start();
    if msg.starts_with('<') {
        if let Some(end) = msg.find('>') {
            msg = &msg[end + 1..];
        }
    }
    (Some(level), msg.trim())
}

/// See the module docs.
pub fn diagnose(lines: &[String]) -> Diagnosis {
    let deterministic = lines
        .iter()
        .any(|l| CONFIG_ERRORS.iter().any(|p| l.contains(p)));
    let boot_failed = lines.iter().position(|l| parse_line(l).1 == "BOOT FAILED");
    let startup = lines.iter().find_map(|l| {
        let msg = parse_line(l).1;
        msg.starts_with("Error during startup:").then_some(msg)
    });
    let Some(failed_at) = boot_failed else {
        // Not a boot failure: the node ran and stopped (or never printed its reason).
        let kernel = lines
            .iter()
            .rev()
            .find(|l| l.starts_with("Kernel pid terminated"));
        // Routine log lines (a node killed while it ran) say nothing about why.
        let telling = |l: &str| !matches!(parse_line(l).0, Some("info" | "notice" | "debug"));
        return Diagnosis {
            excerpt: kernel
                .map(|k| diagnosis::shorten(k, MAX_EXCERPT))
                .or_else(|| diagnosis::last_lines_where(lines, 3, telling)),
            deterministic,
        };
    };
    // The [error] lines right before BOOT FAILED.
    let mut block = Vec::new();
    for line in lines[..failed_at].iter().rev() {
        match parse_line(line) {
            (_, "") => continue,
            (Some("error"), msg) if msg != "===========" => {
                block.push(msg);
                if block.len() == 8 {
                    break;
                }
            }
            _ => break,
        }
    }
    block.reverse();
    let mut excerpt = block.join(" ");
    if let Some(s) = startup {
        if excerpt.is_empty() {
            excerpt = s.to_string();
        } else {
            excerpt = format!("{excerpt} ({s})");
        }
    }
    if excerpt.is_empty() {
        excerpt = "BOOT FAILED".into();
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

    /// What RabbitMQ 4.0 prints for `heartbeat = banana` (abridged).
    const BAD_VALUE: &str = r#"2026-12-01 11:06:38.900000+00:00 [notice] <0.45.0> Logging: configured log handlers are now ACTIVE
2026-12-01 11:06:39.647247+00:00 [error] <0.153.0> Error preparing configuration in phase transform_datatypes:
2026-12-01 11:06:39.660434+00:00 [error] <0.153.0>   - Error transforming datatype for: heartbeat
2026-12-01 11:06:39.660592+00:00 [error] <0.153.0>   - "banana" cannot be converted to a(n) integer

BOOT FAILED
===========
Error during startup: {error,failed_to_prepare_configuration}

2026-12-01 11:06:39.662763+00:00 [error] <0.153.0> 
2026-12-01 11:06:39.662763+00:00 [error] <0.153.0> BOOT FAILED
2026-12-01 11:06:39.662763+00:00 [error] <0.153.0> ===========
2026-12-01 11:06:39.662763+00:00 [error] <0.153.0> Error during startup: {error,failed_to_prepare_configuration}
{exit,terminating,[{application_controller,call,2,[{file,"application_controller.erl"},{line,511}]}]}
2026-12-01 11:06:40.664212+00:00 [error] <0.153.0>     supervisor: {local,rabbit_prelaunch_sup}
2026-12-01 11:06:40.664212+00:00 [error] <0.153.0>     reason: failed_to_prepare_configuration
Kernel pid terminated (application_controller) ("{application_start_failure,rabbitmq_prelaunch,{{shutdown,{failed_to_start_child,prelaunch,failed_to_prepare_configuration}},{rabbit_prelaunch_app,start,[normal,[]]}}}")

Crash dump is being written to: erl_crash.dump...done"#;

    #[test]
    fn log_lines_are_parsed() {
        assert_eq!(
            parse_line("2026-12-01 11:06:39.647247+00:00 [error] <0.153.0>   - x"),
            (Some("error"), "- x")
        );
        assert_eq!(
            parse_line("2026-12-01 11:06:39.647247+00:00 [info] <0.1.0> started"),
            (Some("info"), "started")
        );
        assert_eq!(parse_line("BOOT FAILED"), (None, "BOOT FAILED"));
        assert_eq!(parse_line("2026-12-01 oops"), (None, "2026-12-01 oops"));
    }

    #[test]
    fn a_refused_value_is_a_deterministic_configuration_error() {
        let d = diagnose(&lines(BAD_VALUE));
        assert!(d.deterministic);
        assert_eq!(
            d.excerpt.unwrap(),
            "Error preparing configuration in phase transform_datatypes: - Error transforming \
             datatype for: heartbeat - \"banana\" cannot be converted to a(n) integer \
             (Error during startup: {error,failed_to_prepare_configuration})"
        );
    }

    #[test]
    fn the_log_form_of_boot_failed_works_too() {
        // When the console lines come after the logged ones.
        let text = "2026-12-01 11:06:44.343805+00:00 [error] <0.153.0> Error preparing configuration in phase validation:\n\
                    2026-12-01 11:06:44.406121+00:00 [error] <0.153.0>   - Conf file attempted to set unknown variable: queue_leader_locator\n\
                    2026-12-01 11:06:44.420051+00:00 [error] <0.153.0> \n\
                    2026-12-01 11:06:44.420051+00:00 [error] <0.153.0> BOOT FAILED\n\
                    2026-12-01 11:06:44.420051+00:00 [error] <0.153.0> Error during startup: {error,failed_to_prepare_configuration}\n";
        let d = diagnose(&lines(text));
        assert!(d.deterministic);
        let e = d.excerpt.unwrap();
        assert!(
            e.starts_with("Error preparing configuration in phase validation: - Conf file attempted to set unknown variable: queue_leader_locator"),
            "{e}"
        );
    }

    #[test]
    fn other_boot_failures_are_not_deterministic() {
        let text = "2026-12-01 11:06:44.343805+00:00 [warning] <0.1.0> Feature flags: waiting\n\
                    2026-12-01 11:16:44.343805+00:00 [error] <0.1.0> Timeout contacting cluster nodes: ['rabbit@b-2'].\n\
                    \n\
                    BOOT FAILED\n\
                    ===========\n\
                    Error during startup: {error,{timeout_waiting_for_tables,['rabbit@b-1'],[rabbit_user]}}\n";
        let d = diagnose(&lines(text));
        assert!(!d.deterministic);
        assert_eq!(
            d.excerpt.unwrap(),
            "Timeout contacting cluster nodes: ['rabbit@b-2']. (Error during startup: \
             {error,{timeout_waiting_for_tables,['rabbit@b-1'],[rabbit_user]}})"
        );
    }

    #[test]
    fn a_node_that_just_stops_gets_its_last_words() {
        let text = "2026-12-01 11:06:44.343805+00:00 [info] <0.1.0> Server startup complete\n\
                    Kernel pid terminated (application_controller) (\"{application_terminated,rabbit,shutdown}\")\n\
                    Crash dump is being written to: erl_crash.dump...done\n";
        let d = diagnose(&lines(text));
        assert!(!d.deterministic);
        assert!(d.excerpt.unwrap().starts_with("Kernel pid terminated"));
        assert_eq!(diagnose(&[]).excerpt, None);
        let killed = "2026-12-01 11:06:44.343805+00:00 [info] <0.1.0> accepting AMQP connection\n\
                      2026-12-01 11:06:44.343805+00:00 [info] <0.1.0> closing AMQP connection\n";
        assert_eq!(diagnose(&lines(killed)).excerpt, None);
    }
}
