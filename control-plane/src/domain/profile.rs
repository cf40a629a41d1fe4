//! Engine profiles: everything that differs between engines, as data.
//!
//! The catalogue, the app layer and the reconciler consult [`profile`] instead of
//! matching on the engine: a new engine is one more [`EngineProfile`] here (and one
//! agent module), not an `if` in forty places. What a profile says:
//! - which endpoints a node serves (container port, protocol name for the pinned host
//!   port, URL scheme and path, TLS or plaintext), in Amazon MQ's order, and its console;
//! - where the engine keeps its data inside the container;
//! - deployment modes and how many nodes each takes, storage types;
//! - the user rules (username syntax, groups, how many users CreateBroker takes, whether
//!   the first user is the administrator);
//! - the configuration format (default revision and sanitizer).

use agent_contract::metrics::names as m;
use agent_contract::ports;

use super::{DeploymentMode, EngineType, StorageType, Username};
use crate::error::Error;

/// A port an engine node serves to clients (or to Berth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Stored in `broker_ports.protocol`: one pinned host port per node and protocol.
    pub protocol: &'static str,
    pub container_port: u16,
    /// URL scheme in `brokerInstances[].endpoints`.
    pub scheme: &'static str,
    /// Path suffix of the endpoint URL (web sockets).
    pub path: &'static str,
    /// TLS listener (listed by Amazon MQ) or plaintext (local development only).
    pub tls: bool,
}

/// The engine's web console, if its Debian package ships one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Console {
    pub plaintext: Endpoint,
    pub tls: Endpoint,
}

/// The configuration language of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// `rabbitmq.conf` (Cuttlefish) lines.
    RabbitmqConf,
    /// An `activemq.xml` `<broker>` document.
    ActivemqXml,
}

/// One sanitization warning, whatever the configuration format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// `DISALLOWED_ELEMENT_REMOVED`, `DISALLOWED_ATTRIBUTE_REMOVED` or
    /// `INVALID_ATTRIBUTE_VALUE_REMOVED`.
    pub reason: &'static str,
    /// The element (XML) or key (rabbitmq.conf) concerned.
    pub element_name: String,
    pub attribute_name: Option<String>,
}

impl ConfigFormat {
    /// Revision 1 of every new configuration of this format.
    pub fn default_revision(self) -> &'static str {
        match self {
            Self::RabbitmqConf => super::rabbitmq_conf::DEFAULT_RABBITMQ_CONF,
            Self::ActivemqXml => super::activemq_xml::DEFAULT_ACTIVEMQ_XML,
        }
    }

    /// Removes what a tenant may not set, with Amazon MQ's warnings; input that is not
    /// this format at all is a 400.
    pub fn sanitize(self, text: &str) -> Result<(String, Vec<ConfigWarning>), Error> {
        Ok(match self {
            Self::RabbitmqConf => {
                let (out, warnings) = super::rabbitmq_conf::sanitize(text)?;
                let warnings = warnings
                    .into_iter()
                    .map(|w| ConfigWarning {
                        reason: w.reason.as_wire(),
                        element_name: w.key,
                        attribute_name: None,
                    })
                    .collect();
                (out, warnings)
            }
            Self::ActivemqXml => {
                let (out, warnings) = super::activemq_xml::sanitize(text)?;
                let warnings = warnings
                    .into_iter()
                    .map(|w| ConfigWarning {
                        reason: w.reason.as_wire(),
                        element_name: w.element_name,
                        attribute_name: w.attribute_name,
                    })
                    .collect();
                (out, warnings)
            }
        })
    }
}

/// How many users CreateBroker takes, and what the first one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRules {
    pub min_at_create: usize,
    pub max_at_create: usize,
    /// Users may carry `groups` (ActiveMQ authorization).
    pub groups: bool,
    /// The first user is the broker's administrator (RabbitMQ's single user).
    pub first_is_admin: bool,
    /// Users are managed through the Amazon MQ user API after creation.
    pub managed_by_api: bool,
}

/// How a chart's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartUnit {
    Count,
    Percent,
    Bytes,
    PerSecond,
}

/// One chart of the broker page: Amazon MQ metric names drawn as lines (broker-level
/// values of every node), with an optional metric drawn as the limit.
#[derive(Debug)]
pub struct ChartSpec {
    pub id: &'static str,
    pub title: &'static str,
    pub unit: ChartUnit,
    /// (metric name, line label).
    pub lines: &'static [(&'static str, &'static str)],
    pub limit: Option<(&'static str, &'static str)>,
}

const fn chart(
    id: &'static str,
    title: &'static str,
    unit: ChartUnit,
    lines: &'static [(&'static str, &'static str)],
    limit: Option<(&'static str, &'static str)>,
) -> ChartSpec {
    ChartSpec {
        id,
        title,
        unit,
        lines,
        limit,
    }
}

/// Everything engine-specific the control plane needs.
#[derive(Debug)]
pub struct EngineProfile {
    pub engine: EngineType,
    /// Client endpoints in the order DescribeBroker lists them.
    pub endpoints: &'static [Endpoint],
    pub console: Option<Console>,
    /// Mount point of the node's data volume.
    pub data_dir: &'static str,
    /// The engine's program directories, mounted read-only into every node from one
    /// Docker volume per image (filled from the image when first mounted; see
    /// `images/README.md`): they are read through the host's file system, not through
    /// the container's storage driver (fuse-overlayfs here costs a three-node RabbitMQ
    /// cluster ~3 s of its formation: Erlang opens thousands of files while it boots).
    pub program_dirs: &'static [&'static str],
    /// Deployment modes Berth runs today for this engine.
    pub modes: &'static [DeploymentMode],
    /// Deployment modes Amazon MQ has for this engine (others are refused as invalid).
    pub amazon_mq_modes: &'static [DeploymentMode],
    pub storage: &'static [StorageType],
    pub default_storage: StorageType,
    pub users: UserRules,
    pub config: ConfigFormat,
    /// Amazon MQ offers audit logs for this engine.
    pub audit_logs: bool,
    /// The charts of the console's broker page.
    pub dashboard: &'static [ChartSpec],
}

/// Protocol name of the agent's API port (one per node, never a client endpoint).
pub const AGENT_PROTOCOL: &str = "agent";

const fn ep(
    protocol: &'static str,
    container_port: u16,
    scheme: &'static str,
    path: &'static str,
    tls: bool,
) -> Endpoint {
    Endpoint {
        protocol,
        container_port,
        scheme,
        path,
        tls,
    }
}

static RABBITMQ: EngineProfile = EngineProfile {
    engine: EngineType::Rabbitmq,
    endpoints: &[
        ep("amqps", ports::rabbitmq::AMQPS, "amqps", "", true),
        ep("mqtts", ports::rabbitmq::MQTTS, "mqtt+ssl", "", true),
        ep("stomps", ports::rabbitmq::STOMPS, "stomp+ssl", "", true),
        ep(
            "web-stomps",
            ports::rabbitmq::WEB_STOMPS,
            "wss",
            "/ws",
            true,
        ),
        ep("web-mqtts", ports::rabbitmq::WEB_MQTTS, "wss", "/ws", true),
        ep("amqp", ports::rabbitmq::AMQP, "amqp", "", false),
        ep("mqtt", ports::rabbitmq::MQTT, "mqtt", "", false),
        ep("stomp", ports::rabbitmq::STOMP, "stomp", "", false),
        ep("web-stomp", ports::rabbitmq::WEB_STOMP, "ws", "/ws", false),
        ep("web-mqtt", ports::rabbitmq::WEB_MQTT, "ws", "/ws", false),
    ],
    console: Some(Console {
        plaintext: ep("console", ports::rabbitmq::MANAGEMENT, "http", "", false),
        tls: ep(
            "console-tls",
            ports::rabbitmq::MANAGEMENT_TLS,
            "https",
            "",
            true,
        ),
    }),
    data_dir: "/var/lib/rabbitmq",
    program_dirs: &["/usr/lib/erlang", "/usr/lib/rabbitmq"],
    modes: &[
        DeploymentMode::SingleInstance,
        DeploymentMode::ClusterMultiAz,
    ],
    amazon_mq_modes: &[
        DeploymentMode::SingleInstance,
        DeploymentMode::ClusterMultiAz,
    ],
    storage: &[StorageType::Ebs],
    default_storage: StorageType::Ebs,
    users: UserRules {
        min_at_create: 1,
        max_at_create: 1,
        groups: false,
        first_is_admin: true,
        managed_by_api: false,
    },
    config: ConfigFormat::RabbitmqConf,
    audit_logs: false,
    dashboard: &[
        chart(
            "depth",
            "Queue depth",
            ChartUnit::Count,
            &[
                (m::MESSAGE_READY_COUNT, "ready"),
                (m::MESSAGE_UNACKNOWLEDGED_COUNT, "unacked"),
            ],
            None,
        ),
        chart(
            "rates",
            "Message rates",
            ChartUnit::PerSecond,
            &[
                (m::PUBLISH_RATE, "publish"),
                (m::CONFIRM_RATE, "confirm"),
                (m::ACK_RATE, "ack"),
            ],
            None,
        ),
        chart(
            "connections",
            "Connections",
            ChartUnit::Count,
            &[
                (m::CONNECTION_COUNT, "connections"),
                (m::CONSUMER_COUNT, "consumers"),
            ],
            None,
        ),
        chart(
            "cpu",
            "CPU",
            ChartUnit::Percent,
            &[(m::SYSTEM_CPU_UTILIZATION, "cpu")],
            None,
        ),
        chart(
            "memory",
            "Memory",
            ChartUnit::Bytes,
            &[
                (m::MEMORY_USED, "working set"),
                (m::RABBITMQ_MEM_USED, "RabbitMQ"),
            ],
            Some((m::RABBITMQ_MEM_LIMIT, "watermark")),
        ),
        chart(
            "disk",
            "Disk free",
            ChartUnit::Bytes,
            &[(m::RABBITMQ_DISK_FREE, "free")],
            Some((m::RABBITMQ_DISK_FREE_LIMIT, "alarm at")),
        ),
    ],
};

static ACTIVEMQ: EngineProfile = EngineProfile {
    engine: EngineType::Activemq,
    endpoints: &[
        ep(
            "openwire-tls",
            ports::activemq::OPENWIRE_TLS,
            "ssl",
            "",
            true,
        ),
        ep("stomps", ports::activemq::STOMPS, "stomp+ssl", "", true),
        ep("mqtts", ports::activemq::MQTTS, "mqtt+ssl", "", true),
        ep("wss", ports::activemq::WSS, "wss", "", true),
        ep("openwire", ports::activemq::OPENWIRE, "tcp", "", false),
        ep("stomp", ports::activemq::STOMP, "stomp", "", false),
        ep("mqtt", ports::activemq::MQTT, "mqtt", "", false),
        ep("ws", ports::activemq::WS, "ws", "", false),
    ],
    // Debian does not build ActiveMQ's web console.
    console: None,
    data_dir: "/var/lib/activemq",
    // A JVM opens few files: nothing to gain.
    program_dirs: &[],
    modes: &[
        DeploymentMode::SingleInstance,
        DeploymentMode::ActiveStandbyMultiAz,
    ],
    amazon_mq_modes: &[
        DeploymentMode::SingleInstance,
        DeploymentMode::ActiveStandbyMultiAz,
    ],
    storage: &[StorageType::Efs, StorageType::Ebs],
    default_storage: StorageType::Efs,
    users: UserRules {
        min_at_create: 1,
        max_at_create: 250,
        groups: true,
        first_is_admin: false,
        managed_by_api: true,
    },
    config: ConfigFormat::ActivemqXml,
    audit_logs: true,
    dashboard: &[
        chart(
            "depth",
            "Messages",
            ChartUnit::Count,
            &[(m::TOTAL_MESSAGE_COUNT, "pending")],
            None,
        ),
        chart(
            "clients",
            "Clients",
            ChartUnit::Count,
            &[
                (m::CURRENT_CONNECTIONS_COUNT, "connections"),
                (m::TOTAL_CONSUMER_COUNT, "consumers"),
                (m::TOTAL_PRODUCER_COUNT, "producers"),
            ],
            None,
        ),
        chart(
            "cpu",
            "CPU",
            ChartUnit::Percent,
            &[(m::CPU_UTILIZATION, "cpu")],
            None,
        ),
        chart(
            "heap",
            "Heap",
            ChartUnit::Percent,
            &[(m::HEAP_USAGE, "heap used")],
            None,
        ),
        chart(
            "memory",
            "Memory",
            ChartUnit::Bytes,
            &[(m::MEMORY_USED, "working set")],
            Some((m::MEMORY_LIMIT, "limit")),
        ),
        chart(
            "store",
            "Store",
            ChartUnit::Percent,
            &[
                (m::STORE_PERCENT_USAGE, "store"),
                (m::TEMP_PERCENT_USAGE, "temp"),
            ],
            None,
        ),
    ],
};

/// The profile of `engine`.
pub fn profile(engine: EngineType) -> &'static EngineProfile {
    match engine {
        EngineType::Rabbitmq => &RABBITMQ,
        EngineType::Activemq => &ACTIVEMQ,
    }
}

/// Which listeners an installation opens: TLS (what Amazon MQ lists), plaintext (local
/// development), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listeners {
    pub tls: bool,
    pub plaintext: bool,
}

impl Listeners {
    pub fn wants(&self, e: &Endpoint) -> bool {
        if e.tls {
            self.tls
        } else {
            self.plaintext
        }
    }
}

impl EngineProfile {
    /// Endpoints an installation with `listeners` serves, in DescribeBroker's order.
    pub fn served(&self, listeners: Listeners) -> impl Iterator<Item = &'static Endpoint> + '_ {
        self.endpoints.iter().filter(move |e| listeners.wants(e))
    }

    /// The console endpoint served with `listeners` (TLS preferred).
    pub fn served_console(&self, listeners: Listeners) -> Option<&Endpoint> {
        let c = self.console.as_ref()?;
        if listeners.tls {
            Some(&c.tls)
        } else if listeners.plaintext {
            Some(&c.plaintext)
        } else {
            None
        }
    }

    /// Every port a node may publish (all endpoints, the console and the agent), each
    /// with its protocol name. Host ports are pinned for all of them, so switching an
    /// installation between TLS and plaintext never moves an endpoint.
    pub fn node_ports(&self) -> Vec<(&'static str, u16)> {
        let mut out: Vec<(&'static str, u16)> = self
            .endpoints
            .iter()
            .map(|e| (e.protocol, e.container_port))
            .collect();
        if let Some(c) = &self.console {
            out.push((c.plaintext.protocol, c.plaintext.container_port));
            out.push((c.tls.protocol, c.tls.container_port));
        }
        out.push((AGENT_PROTOCOL, agent_contract::AGENT_PORT));
        out
    }

    /// Ports a node publishes with `listeners` (plus the agent's, always).
    pub fn published_ports(&self, listeners: Listeners) -> Vec<(&'static str, u16)> {
        let mut out: Vec<(&'static str, u16)> = self
            .served(listeners)
            .map(|e| (e.protocol, e.container_port))
            .collect();
        if let Some(c) = self.served_console(listeners) {
            out.push((c.protocol, c.container_port));
        }
        out.push((AGENT_PROTOCOL, agent_contract::AGENT_PORT));
        out
    }

    /// Checks that Berth runs `mode` for this engine: a mode Amazon MQ does not have for
    /// the engine, or one Berth does not run yet, is a 400 naming the valid ones.
    pub fn check_mode(&self, mode: DeploymentMode) -> Result<(), Error> {
        if self.modes.contains(&mode) {
            return Ok(());
        }
        let names = |ms: &[DeploymentMode]| {
            ms.iter()
                .map(|m| m.as_wire())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let message = if self.amazon_mq_modes.contains(&mode) {
            format!(
                "{mode} is not available for engine type {} on this Berth installation yet. Supported values: {}.",
                self.engine,
                names(self.modes)
            )
        } else {
            format!(
                "{mode} is not supported for engine type {}. Supported values: {}.",
                self.engine,
                names(self.modes)
            )
        };
        Err(Error::bad_request("deploymentMode", message))
    }

    /// The storage type for a request (`None` → the engine's default).
    pub fn check_storage(&self, requested: Option<&str>) -> Result<StorageType, Error> {
        let Some(s) = requested else {
            return Ok(self.default_storage);
        };
        let st = StorageType::parse_request(s)?;
        if self.storage.contains(&st) {
            return Ok(st);
        }
        Err(Error::bad_request(
            "storageType",
            format!(
                "Storage type {st} is not supported for engine type {}. Supported values: {}.",
                self.engine,
                self.storage
                    .iter()
                    .map(|s| s.as_wire())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }

    /// Checks what a deployment mode asks of the rest of the request, as Amazon MQ does:
    /// the version must run the mode (clusters need RabbitMQ 4.x here), multi-AZ modes
    /// refuse `mq.t3.micro`, and an active/standby pair needs storage both nodes can
    /// mount (EFS, never EBS).
    pub fn check_combination(
        &self,
        mode: DeploymentMode,
        version: &super::EngineVersion,
        instance: &super::InstanceType,
        storage: StorageType,
    ) -> Result<(), Error> {
        if !version.modes.contains(&mode) {
            let with: Vec<&str> = super::catalogue::ENGINE_VERSIONS
                .iter()
                .filter(|v| v.engine == self.engine && v.modes.contains(&mode))
                .map(|v| v.name)
                .collect();
            return Err(Error::bad_request(
                "deploymentMode",
                format!(
                    "{mode} is not supported for {} {}. Versions with {mode}: {}.",
                    self.engine,
                    version.name,
                    with.join(", ")
                ),
            ));
        }
        if mode != DeploymentMode::SingleInstance && instance.name.starts_with("mq.t3.") {
            return Err(Error::bad_request(
                "hostInstanceType",
                format!(
                    "Broker instance type {} is not supported with deployment mode {mode}.",
                    instance.name
                ),
            ));
        }
        if mode == DeploymentMode::ActiveStandbyMultiAz && storage == StorageType::Ebs {
            return Err(Error::bad_request(
                "storageType",
                format!("Storage type EBS is not supported with deployment mode {mode}: both brokers mount one shared store. Use EFS."),
            ));
        }
        Ok(())
    }

    /// A username by this engine's rules.
    pub fn username(&self, s: &str, attribute: &str) -> Result<Username, Error> {
        match self.engine {
            EngineType::Rabbitmq => Username::parse_rabbitmq(s, attribute),
            EngineType::Activemq => Username::parse_activemq(s, attribute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS_ONLY: Listeners = Listeners {
        tls: true,
        plaintext: false,
    };

    #[test]
    fn every_engine_lists_tls_endpoints_first_with_amazon_mq_schemes() {
        let amq: Vec<&str> = profile(EngineType::Activemq)
            .served(TLS_ONLY)
            .map(|e| e.scheme)
            .collect();
        assert_eq!(amq, ["ssl", "stomp+ssl", "mqtt+ssl", "wss"]);
        let rmq = profile(EngineType::Rabbitmq)
            .served(TLS_ONLY)
            .next()
            .unwrap();
        assert_eq!((rmq.scheme, rmq.container_port), ("amqps", 5671));
        for e in EngineType::ALL {
            let p = profile(*e);
            assert_eq!(p.engine, *e);
            let all = p.endpoints;
            let first_plain = all.iter().position(|e| !e.tls).unwrap_or(all.len());
            assert!(all[first_plain..].iter().all(|e| !e.tls), "{e}: TLS first");
        }
    }

    #[test]
    fn protocols_and_container_ports_are_unique_per_engine() {
        for e in EngineType::ALL {
            let ports = profile(*e).node_ports();
            for (i, (proto, port)) in ports.iter().enumerate() {
                assert!(
                    ports[..i].iter().all(|(p, c)| p != proto && c != port),
                    "{e}: {proto}/{port} twice"
                );
            }
        }
    }

    #[test]
    fn modes_and_storage_are_checked_per_engine() {
        let rmq = profile(EngineType::Rabbitmq);
        assert!(rmq.check_mode(DeploymentMode::SingleInstance).is_ok());
        let e = rmq
            .check_mode(DeploymentMode::ActiveStandbyMultiAz)
            .unwrap_err();
        assert_eq!(e.attribute(), Some("deploymentMode"));
        assert!(e.to_string().contains("not supported"), "{e}");
        assert_eq!(rmq.check_storage(None).unwrap(), StorageType::Ebs);
        assert!(rmq.check_storage(Some("EFS")).is_err());
        let amq = profile(EngineType::Activemq);
        assert_eq!(amq.check_storage(None).unwrap(), StorageType::Efs);
        assert_eq!(amq.check_storage(Some("ebs")).unwrap(), StorageType::Ebs);
    }
}
