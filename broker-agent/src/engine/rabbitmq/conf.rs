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
//!
//! A node of a CLUSTER_MULTI_AZ broker (`spec.node.topology == Cluster`, RabbitMQ 4.x
//! only) also gets the cluster keys of [`ClusterConf`]: classic-config peer discovery
//! over the same sorted member list on every node, quorum as the default queue type, and
//! on Mnesia-based versions `pause_minority` partition handling. Its users do not come
//! from `default_user` (which seeds only the first node of a new cluster: a node that
//! joins resets its database) but from a definitions file imported at every boot
//! (`definitions.local.path`): RabbitMQ imports it after the node has joined its
//! cluster and before the listeners open, on every node, so the users are in place
//! cluster-wide when the node first answers AMQP, whichever node seeded the cluster.
//! With definitions to load RabbitMQ seeds no default data at all, so the file also
//! declares the vhost `/`. The key names and their accepted values were checked against
//! `rabbit.schema` of the shipped 4.0.5 and 4.3.6 packages
//! (`plugins/rabbit-<version>/priv/schema/rabbit.schema`).

use std::path::{Path, PathBuf};

use agent_contract::ports::rabbitmq as ports;
use agent_contract::{AgentSpec, RabbitmqSpec, Topology};

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

/// How long a virgin cluster node keeps looking for its peers before it boots on its
/// own: `cluster_formation.discovery_retry_limit` × `…_interval` = 120 × 500 ms = 60 s.
/// RabbitMQ's defaults (30 × 1 s, `rabbit_peer_discovery.erl`) wait half as long and
/// poll half as often; a node that gives up forms a cluster of its own, which the
/// others then cannot join, so a longer wait is the safer failure.
pub const DISCOVERY_RETRY_LIMIT: u32 = 120;
/// See [`DISCOVERY_RETRY_LIMIT`] (milliseconds).
pub const DISCOVERY_RETRY_INTERVAL_MS: u32 = 500;

/// The cluster part of a node's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConf {
    /// `cluster_name` (the broker id, shown by the management UI).
    pub name: String,
    /// Erlang node names of every member (this node included), sorted and without
    /// duplicates, so every node renders the same list.
    pub members: Vec<String>,
    /// Whether `cluster_partition_handling` still means something: RabbitMQ 4.3's schema
    /// keeps the key "only for backwards compatibility" (its metadata store is Khepri,
    /// a Raft cluster that needs no partition handling), 4.0 still uses Mnesia by default.
    pub partition_handling: bool,
    /// The definitions file (users, permissions, vhost) imported at every boot.
    pub definitions: PathBuf,
}

/// The cluster config of `spec` for a node whose own host name is `own_hostname`, with
/// its boot definitions at `definitions`, or None when the node is not part of a cluster.
pub fn cluster_conf(
    spec: &AgentSpec,
    own_hostname: &str,
    definitions: &Path,
) -> Option<ClusterConf> {
    if spec.node.topology != Topology::Cluster {
        return None;
    }
    let mut members: Vec<String> = std::iter::once(own_hostname)
        .chain(spec.node.peers.iter().map(String::as_str))
        .filter(|h| !h.is_empty())
        .map(super::node_name)
        .collect();
    members.sort();
    members.dedup();
    Some(ClusterConf {
        name: spec.broker_id.clone(),
        members,
        partition_handling: uses_mnesia(&spec.engine_version),
        definitions: definitions.to_path_buf(),
    })
}

/// RabbitMQ versions whose default metadata store is still Mnesia (3.x up to 4.1;
/// Khepri became the default in 4.2 and the only store in 4.3).
pub fn uses_mnesia(engine_version: &str) -> bool {
    let mut parts = engine_version
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) < (4, 2)
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
/// `memory_limit` bytes (None = unlimited), with TLS listeners when `tls` is given and
/// the cluster keys when `cluster` is.
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
    cluster: Option<&ClusterConf>,
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
    match cluster {
        // Users come from the boot definitions (module docs); no default data.
        Some(cluster) => {
            line("definitions.import_backend", "local_filesystem");
            line(
                "definitions.local.path",
                &cluster.definitions.display().to_string(),
            );
        }
        None => {
            line("default_user", &user);
            line("default_pass", &pass);
            line("default_user_tags.administrator", "true");
            line(&format!("default_user_tags.{MANAGED_TAG}"), "true");
            line("default_permissions.configure", ".*");
            line("default_permissions.read", ".*");
            line("default_permissions.write", ".*");
        }
    }
    line("default_vhost", "/");
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
    if let Some(cluster) = cluster {
        if let Some(name) = conf_value(&cluster.name) {
            line("cluster_name", &name);
        }
        line("cluster_formation.peer_discovery_backend", "classic_config");
        for (i, member) in cluster.members.iter().enumerate() {
            line(
                &format!("cluster_formation.classic_config.nodes.{}", i + 1),
                member,
            );
        }
        line(
            "cluster_formation.target_cluster_size_hint",
            &cluster.members.len().to_string(),
        );
        line(
            "cluster_formation.discovery_retry_limit",
            &DISCOVERY_RETRY_LIMIT.to_string(),
        );
        line(
            "cluster_formation.discovery_retry_interval",
            &DISCOVERY_RETRY_INTERVAL_MS.to_string(),
        );
        // A plain queue.declare gets a replicated queue (Amazon MQ's cluster default).
        line("default_queue_type", "quorum");
        if cluster.partition_handling {
            line("cluster_partition_handling", "pause_minority");
        }
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
        render_rabbitmq_conf(spec, &rabbit(spec), limit, None, None)
    }

    fn cluster_spec(version: &str) -> AgentSpec {
        let mut spec = sample_spec();
        spec.engine_version = version.into();
        spec.node = agent_contract::NodeSpec {
            index: 1,
            count: 3,
            peers: vec!["berth-b-1234-2".into(), "berth-b-1234-0".into()],
            hostname: "berth-b-1234-1".into(),
            topology: Topology::Cluster,
            zone: "us-east-1b".into(),
        };
        spec
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
        let conf = render_rabbitmq_conf(&spec, &rabbit(&spec), None, Some(&files), None);
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
    fn single_nodes_get_no_cluster_keys() {
        let spec = sample_spec();
        assert_eq!(cluster_conf(&spec, "h", Path::new("/d")), None);
        let conf = render(&spec, None);
        assert!(!conf.contains("cluster"), "{conf}");
        assert_eq!(get(&conf, "default_queue_type"), None);
    }

    #[test]
    fn cluster_members_are_the_same_sorted_list_on_every_node() {
        let spec = cluster_spec("4.3");
        let d = Path::new("/etc/rabbitmq/definitions.json");
        let one = cluster_conf(&spec, "berth-b-1234-1", d).unwrap();
        assert_eq!(
            one.members,
            [
                "rabbit@berth-b-1234-0",
                "rabbit@berth-b-1234-1",
                "rabbit@berth-b-1234-2"
            ]
        );
        // node 0 lists its peers in another order: same list
        let mut other = spec.clone();
        other.node.hostname = "berth-b-1234-0".into();
        other.node.peers = vec!["berth-b-1234-1".into(), "berth-b-1234-2".into()];
        assert_eq!(
            cluster_conf(&other, "berth-b-1234-0", d).unwrap().members,
            one.members
        );
        // its own name among the peers, or a FQDN, is not listed twice
        other.node.peers.push("berth-b-1234-0.net".into());
        assert_eq!(
            cluster_conf(&other, "berth-b-1234-0", d).unwrap().members,
            one.members
        );
        assert_eq!(one.name, "b-1234");
    }

    #[test]
    fn cluster_keys() {
        let spec = cluster_spec("4.3");
        let cluster =
            cluster_conf(&spec, "berth-b-1234-1", Path::new("/etc/rabbitmq/d.json")).unwrap();
        let conf = render_rabbitmq_conf(&spec, &rabbit(&spec), Some(1 << 30), None, Some(&cluster));
        // users from the boot definitions, not from default_user
        assert_eq!(
            get(&conf, "definitions.import_backend"),
            Some("local_filesystem")
        );
        assert_eq!(
            get(&conf, "definitions.local.path"),
            Some("/etc/rabbitmq/d.json")
        );
        assert!(!conf.contains("default_user"), "{conf}");
        assert!(!conf.contains("default_pass"), "{conf}");
        assert!(!conf.contains("s3cret"), "{conf}");
        assert_eq!(get(&conf, "default_vhost"), Some("/"));
        assert_eq!(get(&conf, "cluster_name"), Some("b-1234"));
        assert_eq!(
            get(&conf, "cluster_formation.peer_discovery_backend"),
            Some("classic_config")
        );
        for (i, n) in ["0", "1", "2"].iter().enumerate() {
            assert_eq!(
                get(
                    &conf,
                    &format!("cluster_formation.classic_config.nodes.{}", i + 1)
                ),
                Some(format!("rabbit@berth-b-1234-{n}").as_str())
            );
        }
        assert_eq!(get(&conf, "cluster_formation.classic_config.nodes.4"), None);
        assert_eq!(
            get(&conf, "cluster_formation.target_cluster_size_hint"),
            Some("3")
        );
        assert_eq!(
            get(&conf, "cluster_formation.discovery_retry_limit"),
            Some("120")
        );
        assert_eq!(
            get(&conf, "cluster_formation.discovery_retry_interval"),
            Some("500")
        );
        assert_eq!(get(&conf, "default_queue_type"), Some("quorum"));
        // 4.3 is Khepri-only: no partition handling
        assert_eq!(get(&conf, "cluster_partition_handling"), None);
        assert_unique_keys(&conf);
        // the tenant's revision still comes last
        let mut tuned = spec.clone();
        tuned.engine_config = Some("heartbeat = 30\n".into());
        let conf = render_rabbitmq_conf(&tuned, &rabbit(&tuned), None, None, Some(&cluster));
        assert!(conf.ends_with("heartbeat = 30\n"));
    }

    #[test]
    fn mnesia_versions_pause_the_minority() {
        let spec = cluster_spec("4.0");
        let cluster = cluster_conf(&spec, "berth-b-1234-1", Path::new("/d")).unwrap();
        assert!(cluster.partition_handling);
        let conf = render_rabbitmq_conf(&spec, &rabbit(&spec), None, None, Some(&cluster));
        assert_eq!(
            get(&conf, "cluster_partition_handling"),
            Some("pause_minority")
        );
        assert!(uses_mnesia("3.10"));
        assert!(uses_mnesia("4.1"));
        assert!(!uses_mnesia("4.2"));
        assert!(!uses_mnesia("4.3"));
        assert!(!uses_mnesia("5.0"));
    }

    #[test]
    fn amqp_1_0_is_a_plugin_only_on_3x() {
        assert!(enabled_plugins("3.10").contains("rabbitmq_amqp1_0"));
        assert!(!enabled_plugins("4.0").contains("rabbitmq_amqp1_0"));
        assert!(!enabled_plugins("4.3").contains("rabbitmq_amqp1_0"));
    }
}
