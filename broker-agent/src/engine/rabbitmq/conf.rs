//! Rendering `rabbitmq.conf` (cuttlefish syntax) and `enabled_plugins`.
//!
//! The config is rendered from the spec *and the container's memory limit* before every
//! start: RabbitMQ does not see cgroup limits, so the agent writes
//! `total_memory_available_override_value` and an absolute `vm_memory_high_watermark`
//! itself (see `shared/reference/docker-rabbitmq.md` §4).
//!
//! Listeners use the container ports of [`agent_contract::ports::rabbitmq`]. Plaintext
//! listeners bind every interface when `spec.plaintext`, otherwise only 127.0.0.1 (the
//! agent's AMQP probe still reaches them; nothing outside the container can). With TLS
//! material, the TLS listeners (AMQPS, MQTTS, STOMPS, Web-STOMP/Web-MQTT over TLS and the
//! management UI over HTTPS) are added; Web-STOMP, Web-MQTT and management need their
//! own `*.ssl.*` file settings because `ssl_options` covers only AMQP, MQTT and STOMP.

use std::path::PathBuf;

use agent_contract::ports::rabbitmq as ports;
use agent_contract::{AgentSpec, RabbitmqSpec};

use super::ctl::{BOOTSTRAP_USER, MANAGED_TAG};
use crate::fsutil;

/// Plugins every Berth RabbitMQ broker runs.
pub const ENABLED_PLUGINS: &str = "[rabbitmq_management,rabbitmq_mqtt,rabbitmq_stomp,rabbitmq_prometheus,rabbitmq_web_mqtt,rabbitmq_web_stomp].\n";
/// RabbitMQ 3.x serves AMQP 1.0 through a plugin (4.x has it built in).
const ENABLED_PLUGINS_3X: &str = "[rabbitmq_management,rabbitmq_mqtt,rabbitmq_stomp,rabbitmq_prometheus,rabbitmq_web_mqtt,rabbitmq_web_stomp,rabbitmq_amqp1_0].\n";

/// The `enabled_plugins` file for an engine version (`4.0`, `3.10`, …).
pub fn enabled_plugins(engine_version: &str) -> &'static str {
    if engine_version.starts_with("3.") {
        ENABLED_PLUGINS_3X
    } else {
        ENABLED_PLUGINS
    }
}
/// Share of the memory limit RabbitMQ may use before blocking publishers, by default.
pub const DEFAULT_WATERMARK_FRACTION: f64 = 0.4;
/// Prometheus listener inside the container (used for the quiet liveness check).
pub const PROMETHEUS_PORT: u16 = 15692;

/// Where the agent puts the TLS material for RabbitMQ (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Absolute watermark in bytes for `limit` × `fraction`.
pub fn watermark_bytes(limit: u64, fraction: f64) -> u64 {
    (limit as f64 * fraction).floor() as u64
}

/// The watermark fraction of `rabbit` (or the default).
pub fn watermark_fraction(rabbit: &RabbitmqSpec) -> f64 {
    rabbit
        .memory_high_watermark
        .unwrap_or(DEFAULT_WATERMARK_FRACTION)
}

/// `value` as a cuttlefish (rabbitmq.conf) value, or None if it cannot be represented.
///
/// Unquoted values end at a `#` (comment) and lose surrounding blanks; single-quoted
/// values may contain anything but `'` and line breaks.
pub fn conf_value(value: &str) -> Option<String> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return None;
    }
    let blank_edge = |c: char| c == ' ' || c == '\t';
    let plain = !value.contains('#')
        && !value.starts_with(blank_edge)
        && !value.ends_with(blank_edge)
        && !value.starts_with('\'');
    if plain {
        Some(value.to_string())
    } else if !value.contains('\'') {
        Some(format!("'{value}'"))
    } else {
        None
    }
}

/// On a virgin node `default_user` creates the first spec user (administrator, tagged as
/// Berth-managed) and nobody else, not even `guest`: with one representable user that is
/// exactly the spec.
pub fn bootstraps_exactly_the_spec_users(spec: &AgentSpec) -> bool {
    match spec.users.as_slice() {
        [only] => conf_value(&only.username).is_some() && conf_value(&only.password).is_some(),
        _ => false,
    }
}

/// Render `/etc/rabbitmq/rabbitmq.conf` for `spec` in a container limited to
/// `memory_limit` bytes (None = unlimited), with TLS listeners when `tls` is given.
///
/// The first spec user becomes `default_user` (created on a virgin node only; later
/// changes are applied with `rabbitmqctl`). If its name or password cannot be written
/// in cuttlefish syntax, a throwaway bootstrap user with a random password is used
/// instead and the real user is created by the first reconciliation.
pub fn render_rabbitmq_conf(
    spec: &AgentSpec,
    rabbit: &RabbitmqSpec,
    memory_limit: Option<u64>,
    tls: Option<&TlsFiles>,
) -> String {
    let first = spec.users.first();
    let user = first.and_then(|u| conf_value(&u.username));
    let pass = first.and_then(|u| conf_value(&u.password));
    let (user, pass) = match (user, pass) {
        (Some(u), Some(p)) => (u, p),
        _ => (
            BOOTSTRAP_USER.to_string(),
            // The OS RNG cannot realistically fail; the clock is a last resort for a
            // password that lives only until the first reconciliation.
            fsutil::random_hex(24).unwrap_or_else(|_| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                format!("{:x}{:x}", t.as_nanos(), std::process::id())
            }),
        ),
    };
    let fraction = watermark_fraction(rabbit);

    let mut c = String::new();
    let mut line = |k: &str, v: &str| {
        c.push_str(k);
        c.push_str(" = ");
        c.push_str(v);
        c.push('\n');
    };
    line("default_user", &user);
    line("default_pass", &pass);
    line("default_user_tags.administrator", "true");
    line(&format!("default_user_tags.{MANAGED_TAG}"), "true");
    line("default_vhost", "/");
    line("default_permissions.configure", ".*");
    line("default_permissions.read", ".*");
    line("default_permissions.write", ".*");
    line("loopback_users", "none");

    // Plaintext listeners: everywhere, or loopback only (probe) when not wanted.
    let public = spec.plaintext;
    let tcp = |port: u16| {
        if public {
            port.to_string()
        } else {
            format!("127.0.0.1:{port}")
        }
    };
    line("listeners.tcp.default", &tcp(ports::AMQP));
    line("management.tcp.port", &ports::MANAGEMENT.to_string());
    line("mqtt.listeners.tcp.default", &tcp(ports::MQTT));
    line("stomp.listeners.tcp.default", &tcp(ports::STOMP));
    line("web_mqtt.tcp.port", &ports::WEB_MQTT.to_string());
    line("web_stomp.tcp.port", &ports::WEB_STOMP.to_string());
    if !public {
        line("management.tcp.ip", "127.0.0.1");
        line("web_mqtt.tcp.ip", "127.0.0.1");
        line("web_stomp.tcp.ip", "127.0.0.1");
    }
    if let Some(files) = tls {
        let ca = files.ca.display().to_string();
        let cert = files.cert.display().to_string();
        let key = files.key.display().to_string();
        line("listeners.ssl.default", &ports::AMQPS.to_string());
        line("ssl_options.cacertfile", &ca);
        line("ssl_options.certfile", &cert);
        line("ssl_options.keyfile", &key);
        line("ssl_options.verify", "verify_none");
        line("ssl_options.fail_if_no_peer_cert", "false");
        line("mqtt.listeners.ssl.default", &ports::MQTTS.to_string());
        line("stomp.listeners.ssl.default", &ports::STOMPS.to_string());
        for (prefix, port) in [
            ("web_stomp.ssl", ports::WEB_STOMPS),
            ("web_mqtt.ssl", ports::WEB_MQTTS),
            ("management.ssl", ports::MANAGEMENT_TLS),
        ] {
            line(&format!("{prefix}.port"), &port.to_string());
            line(&format!("{prefix}.cacertfile"), &ca);
            line(&format!("{prefix}.certfile"), &cert);
            line(&format!("{prefix}.keyfile"), &key);
        }
    }
    line("prometheus.tcp.port", &PROMETHEUS_PORT.to_string());
    line("log.console", "true");
    line("log.console.level", "info");
    line("log.file", "false");
    match memory_limit {
        Some(limit) => {
            line("total_memory_available_override_value", &limit.to_string());
            line(
                "vm_memory_high_watermark.absolute",
                &watermark_bytes(limit, fraction).to_string(),
            );
        }
        None => line("vm_memory_high_watermark.relative", &fraction.to_string()),
    }
    let mut out =
        String::from("# Written by the Berth broker agent at every start; edits are lost.\n");
    out.push_str(&c);
    if let Some(extra) = spec
        .engine_config
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        out.push_str("# From the broker's configuration revision:\n");
        out.push_str(extra.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_spec;
    use agent_contract::{EngineSpec, EngineUser};

    fn rabbit(spec: &AgentSpec) -> RabbitmqSpec {
        match &spec.engine {
            EngineSpec::Rabbitmq(r) => r.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn render(spec: &AgentSpec, limit: Option<u64>) -> String {
        render_rabbitmq_conf(spec, &rabbit(spec), limit, None)
    }

    fn conf_lines(conf: &str) -> Vec<(&str, &str)> {
        conf.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.split_once(" = ").unwrap())
            .collect()
    }

    fn get<'a>(conf: &'a str, key: &str) -> Option<&'a str> {
        conf_lines(conf)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    fn assert_unique_keys(conf: &str) {
        let keys: Vec<_> = conf_lines(conf).into_iter().map(|(k, _)| k).collect();
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(keys.len(), unique.len(), "{conf}");
    }

    #[test]
    fn renders_users_listeners_and_logging() {
        let conf = render(&sample_spec(), None);
        assert_eq!(get(&conf, "default_user"), Some("admin"));
        assert_eq!(get(&conf, "default_pass"), Some("s3cret-Passw0rd"));
        assert_eq!(get(&conf, "default_user_tags.administrator"), Some("true"));
        assert_eq!(get(&conf, "default_vhost"), Some("/"));
        for p in ["configure", "read", "write"] {
            assert_eq!(get(&conf, &format!("default_permissions.{p}")), Some(".*"));
        }
        assert_eq!(get(&conf, "loopback_users"), Some("none"));
        assert_eq!(get(&conf, "listeners.tcp.default"), Some("5672"));
        assert_eq!(get(&conf, "management.tcp.port"), Some("15672"));
        assert_eq!(get(&conf, "mqtt.listeners.tcp.default"), Some("1883"));
        assert_eq!(get(&conf, "stomp.listeners.tcp.default"), Some("61613"));
        assert_eq!(get(&conf, "web_mqtt.tcp.port"), Some("15675"));
        assert_eq!(get(&conf, "web_stomp.tcp.port"), Some("15674"));
        assert_eq!(get(&conf, "prometheus.tcp.port"), Some("15692"));
        assert_eq!(get(&conf, "log.console"), Some("true"));
        assert_eq!(get(&conf, "log.console.level"), Some("info"));
        assert_eq!(get(&conf, "log.file"), Some("false"));
        // no TLS material → no TLS listener, plaintext everywhere
        assert!(!conf.contains("ssl"));
        assert_eq!(get(&conf, "management.tcp.ip"), None);
        assert_unique_keys(&conf);
    }

    #[test]
    fn ports_come_from_the_contract() {
        let conf = render(&sample_spec(), None);
        assert_eq!(
            get(&conf, "listeners.tcp.default"),
            Some(ports::AMQP.to_string().as_str())
        );
        assert_eq!(
            get(&conf, "web_stomp.tcp.port"),
            Some(ports::WEB_STOMP.to_string().as_str())
        );
    }

    #[test]
    fn tls_listeners_and_loopback_only_plaintext() {
        let mut spec = sample_spec();
        spec.plaintext = false;
        let files = TlsFiles {
            ca: "/etc/rabbitmq/tls/ca.pem".into(),
            cert: "/etc/rabbitmq/tls/cert.pem".into(),
            key: "/etc/rabbitmq/tls/key.pem".into(),
        };
        let conf = render_rabbitmq_conf(&spec, &rabbit(&spec), None, Some(&files));
        assert_eq!(get(&conf, "listeners.ssl.default"), Some("5671"));
        assert_eq!(get(&conf, "mqtt.listeners.ssl.default"), Some("8883"));
        assert_eq!(get(&conf, "stomp.listeners.ssl.default"), Some("61614"));
        assert_eq!(get(&conf, "web_stomp.ssl.port"), Some("15673"));
        assert_eq!(get(&conf, "web_mqtt.ssl.port"), Some("15676"));
        assert_eq!(get(&conf, "management.ssl.port"), Some("15671"));
        for prefix in [
            "ssl_options",
            "web_stomp.ssl",
            "web_mqtt.ssl",
            "management.ssl",
        ] {
            assert_eq!(
                get(&conf, &format!("{prefix}.certfile")),
                Some("/etc/rabbitmq/tls/cert.pem")
            );
            assert_eq!(
                get(&conf, &format!("{prefix}.keyfile")),
                Some("/etc/rabbitmq/tls/key.pem")
            );
            assert_eq!(
                get(&conf, &format!("{prefix}.cacertfile")),
                Some("/etc/rabbitmq/tls/ca.pem")
            );
        }
        // plaintext only on loopback (the agent's probe), nothing public
        assert_eq!(get(&conf, "listeners.tcp.default"), Some("127.0.0.1:5672"));
        assert_eq!(
            get(&conf, "mqtt.listeners.tcp.default"),
            Some("127.0.0.1:1883")
        );
        assert_eq!(
            get(&conf, "stomp.listeners.tcp.default"),
            Some("127.0.0.1:61613")
        );
        for k in ["management.tcp.ip", "web_mqtt.tcp.ip", "web_stomp.tcp.ip"] {
            assert_eq!(get(&conf, k), Some("127.0.0.1"), "{k}");
        }
        assert_unique_keys(&conf);
    }

    #[test]
    fn memory_limit_gives_absolute_watermark() {
        let conf = render(&sample_spec(), Some(1 << 30));
        assert_eq!(
            get(&conf, "total_memory_available_override_value"),
            Some("1073741824")
        );
        // 0.4 × 1 GiB, rounded down
        assert_eq!(
            get(&conf, "vm_memory_high_watermark.absolute"),
            Some("429496729")
        );
        assert_eq!(get(&conf, "vm_memory_high_watermark.relative"), None);
    }

    #[test]
    fn spec_fraction_is_used() {
        let mut spec = sample_spec();
        if let EngineSpec::Rabbitmq(r) = &mut spec.engine {
            r.memory_high_watermark = Some(0.5);
        }
        let conf = render(&spec, Some(4 << 30));
        assert_eq!(
            get(&conf, "vm_memory_high_watermark.absolute"),
            Some("2147483648")
        );
        let conf = render(&spec, None);
        assert_eq!(get(&conf, "vm_memory_high_watermark.relative"), Some("0.5"));
        assert_eq!(get(&conf, "total_memory_available_override_value"), None);
    }

    #[test]
    fn no_limit_uses_default_relative_fraction() {
        let conf = render(&sample_spec(), None);
        assert_eq!(get(&conf, "vm_memory_high_watermark.relative"), Some("0.4"));
        assert_eq!(get(&conf, "vm_memory_high_watermark.absolute"), None);
    }

    #[test]
    fn only_first_user_goes_into_conf() {
        let mut spec = sample_spec();
        spec.users.push(EngineUser {
            username: "second".into(),
            password: "second-password-1".into(),
            admin: false,
            console_access: false,
            groups: vec![],
        });
        let conf = render(&spec, None);
        assert_eq!(get(&conf, "default_user"), Some("admin"));
        assert!(!conf.contains("second"));
    }

    #[test]
    fn awkward_passwords_are_quoted_or_replaced() {
        assert_eq!(conf_value("plain-Pass1").as_deref(), Some("plain-Pass1"));
        assert_eq!(conf_value("with space").as_deref(), Some("with space"));
        assert_eq!(conf_value("has#hash").as_deref(), Some("'has#hash'"));
        assert_eq!(conf_value(" lead").as_deref(), Some("' lead'"));
        assert_eq!(conf_value("'quoted").as_deref(), None);
        assert_eq!(conf_value("a#b'c").as_deref(), None);
        assert_eq!(conf_value("line\nbreak"), None);
        assert_eq!(conf_value(""), None);

        let mut spec = sample_spec();
        spec.users[0].password = "it's#tricky".into();
        let conf = render(&spec, None);
        assert_eq!(get(&conf, "default_user"), Some(BOOTSTRAP_USER));
        assert!(!conf.contains("tricky"));
        assert!(get(&conf, "default_pass").unwrap().len() >= 32);
    }

    #[test]
    fn configuration_revision_is_appended_after_berths_keys() {
        let mut spec = sample_spec();
        spec.engine_config = Some("# tenant\nheartbeat = 30\n".into());
        let conf = render(&spec, Some(1 << 30));
        let managed = conf.find("listeners.tcp.default").unwrap();
        let tenant = conf.find("heartbeat = 30").unwrap();
        assert!(tenant > managed);
        assert!(conf.ends_with("heartbeat = 30\n"));
    }

    #[test]
    fn one_plain_user_is_bootstrapped_by_the_config() {
        let spec = sample_spec();
        assert_eq!(spec.users.len(), 1);
        assert!(bootstraps_exactly_the_spec_users(&spec));
        let mut two = spec.clone();
        two.users.push(two.users[0].clone());
        two.users[1].username = "second".into();
        assert!(!bootstraps_exactly_the_spec_users(&two));
        let conf = render(&spec, None);
        assert!(conf.contains("default_user_tags.berth-managed = true"));
    }

    #[test]
    fn amqp_1_0_is_a_plugin_only_on_3x() {
        assert!(enabled_plugins("3.10").contains("rabbitmq_amqp1_0"));
        assert!(!enabled_plugins("4.0").contains("rabbitmq_amqp1_0"));
        assert!(!enabled_plugins("4.3").contains("rabbitmq_amqp1_0"));
    }
}
