//! The wire contract between the control plane and the broker agent, in one small crate
//! both sides depend on (neither depends on the other).
//!
//! The control plane writes an [`AgentSpec`] as JSON to [`SPEC_PATH`] inside the
//! container (uploaded before the first start, so secrets never appear in
//! `docker inspect`) and later `PUT`s updated specs to the agent's API on
//! [`AGENT_PORT`]; the agent answers `GET /health` with a [`HealthReport`]. Both calls
//! need `Authorization: Bearer <agent_token>`.
//!
//! The spec has a common part (users, configuration, TLS material, node) and an
//! engine-specific part, [`EngineSpec`]. [`ports`] names the container ports each engine
//! listens on, so the control plane publishes exactly what the agent opens.

use serde::{Deserialize, Serialize};

pub mod destinations;
pub mod logs;
pub mod metrics;
pub mod ports;

pub use destinations::{
    body_field_for, Destination, DestinationKind, DestinationName, PeekedMessage, TestMessage,
    MAX_PEEK,
};

/// Where the control plane puts the spec inside the container.
pub const SPEC_PATH: &str = "/etc/berth/spec.json";
/// TCP port the agent's HTTP API listens on inside the container.
pub const AGENT_PORT: u16 = 9180;

/// Engine families the agent knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Rabbitmq,
    Activemq,
}

/// A broker user the engine must accept.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineUser {
    pub username: String,
    pub password: String,
    /// Administrator rights. RabbitMQ: the `administrator` tag and full permissions;
    /// ActiveMQ: member of the `admins` group (read, write and admin on everything).
    #[serde(default)]
    pub admin: bool,
    /// May use the engine's web console (Amazon MQ's `consoleAccess`).
    #[serde(default)]
    pub console_access: bool,
    /// Group memberships (ActiveMQ): the authorization entries grant rights to groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl std::fmt::Debug for EngineUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("admin", &self.admin)
            .field("console_access", &self.console_access)
            .field("groups", &self.groups)
            .finish()
    }
}

/// How the nodes of a broker relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// One node (SINGLE_INSTANCE).
    #[default]
    Single,
    /// Active/standby on one shared data volume (ActiveMQ ACTIVE_STANDBY_MULTI_AZ): the
    /// node holding the store's lock serves, the other waits for it ([`EngineState::Standby`]).
    /// A hung active must be killed quickly so that the lock passes on.
    SharedStorage,
    /// Peers of one cluster (RabbitMQ CLUSTER_MULTI_AZ), formed from `peers`.
    Cluster,
}

/// Which node of the broker this container is. A SINGLE_INSTANCE broker has one node
/// (`index` 0 of `count` 1); active/standby and cluster brokers have more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub index: u32,
    pub count: u32,
    /// Host names of the other nodes on the broker's network (empty for one node).
    #[serde(default)]
    pub peers: Vec<String>,
    /// This node's own host name on the broker's network (the container name), so a
    /// cluster lists every member under the same names. Empty → the container's hostname.
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub topology: Topology,
    /// Availability zone the node is placed in (e.g. `us-east-1a`), for logs and reports.
    #[serde(default)]
    pub zone: String,
}

impl Default for NodeSpec {
    fn default() -> Self {
        Self {
            index: 0,
            count: 1,
            peers: Vec::new(),
            hostname: String::new(),
            topology: Topology::Single,
            zone: String::new(),
        }
    }
}

/// TLS material for the engine's listeners: a certificate for the broker's advertised
/// host, signed by the installation CA.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsMaterial {
    /// PEM certificate chain (leaf first).
    pub cert_pem: String,
    /// PEM private key of the leaf (PKCS#8).
    pub key_pem: String,
    /// PEM certificate of the installation CA.
    pub ca_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &self.ca_pem.len())
            .finish()
    }
}

/// RabbitMQ-specific part of the spec.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RabbitmqSpec {
    /// Erlang distribution cookie, unique per broker (shared by its nodes).
    pub erlang_cookie: String,
    /// Fraction of the container memory limit RabbitMQ may use before it blocks
    /// publishers (0.0–1.0). `None` → the agent's default (0.4).
    #[serde(default)]
    pub memory_high_watermark: Option<f64>,
}

/// ActiveMQ-specific part of the spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivemqSpec {
    /// `brokerName` in activemq.xml; the same on both nodes of an active/standby pair.
    pub broker_name: String,
    /// Percent of the container memory limit given to the JVM heap (`-Xmx`). `None` →
    /// the agent's default (50).
    #[serde(default)]
    pub heap_percent: Option<u32>,
}

/// The engine-specific part of the spec; its tag says which engine runs.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EngineSpec {
    Rabbitmq(RabbitmqSpec),
    Activemq(ActivemqSpec),
}

impl EngineSpec {
    pub fn engine(&self) -> Engine {
        match self {
            Self::Rabbitmq(_) => Engine::Rabbitmq,
            Self::Activemq(_) => Engine::Activemq,
        }
    }
}

impl std::fmt::Debug for EngineSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rabbitmq(r) => f
                .debug_struct("Rabbitmq")
                .field("erlang_cookie", &"<redacted>")
                .field("memory_high_watermark", &r.memory_high_watermark)
                .finish(),
            Self::Activemq(a) => a.fmt(f),
        }
    }
}

/// Everything the agent needs to run one broker node.
#[derive(Clone, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Broker id (`b-…`), for logs.
    pub broker_id: String,
    /// Engine version as offered by the API, e.g. `4.0` or `5.17`.
    pub engine_version: String,
    pub engine: EngineSpec,
    #[serde(default)]
    pub node: NodeSpec,
    /// Users the engine must have (Berth's own internal users are the agent's business
    /// and never listed here).
    pub users: Vec<EngineUser>,
    /// Shared secret the control plane presents to the agent's API.
    pub agent_token: String,
    /// Tenant configuration: a sanitized configuration revision (RabbitMQ: `rabbitmq.conf`
    /// lines appended to what the agent renders; ActiveMQ: an `activemq.xml` whose
    /// allowed elements are merged into the agent's). Applied at engine start.
    #[serde(default)]
    pub engine_config: Option<String>,
    /// Certificate and key for the TLS listeners; `None` → no TLS listeners.
    #[serde(default)]
    pub tls: Option<TlsMaterial>,
    /// Whether the plaintext listeners are open too (local development).
    #[serde(default = "yes")]
    pub plaintext: bool,
}

fn yes() -> bool {
    true
}

impl AgentSpec {
    pub fn engine_kind(&self) -> Engine {
        self.engine.engine()
    }
}

impl std::fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSpec")
            .field("broker_id", &self.broker_id)
            .field("engine_version", &self.engine_version)
            .field("engine", &self.engine)
            .field("node", &self.node)
            .field("users", &self.users)
            .field("agent_token", &"<redacted>")
            .field(
                "engine_config",
                &self.engine_config.as_ref().map(String::len),
            )
            .field("tls", &self.tls)
            .field("plaintext", &self.plaintext)
            .finish()
    }
}

/// Lifecycle of the engine process as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineState {
    /// Config rendered, process started, protocol not answering yet.
    Starting,
    /// The engine answers its wire protocol with a real login.
    Ready,
    /// A standby node: the engine runs and waits for the shared store's lock.
    Standby,
    /// The engine died and the agent is restarting it.
    Restarting,
    /// The agent is shutting the engine down (SIGTERM received).
    Stopping,
    /// The agent could not start the engine (bad spec, missing binary, rejected
    /// configuration …); `last_error` says why.
    Failed,
}

/// Body of `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthReport {
    pub broker_id: String,
    pub engine: Engine,
    pub state: EngineState,
    /// How many times the agent restarted the engine after it died.
    pub restarts: u32,
    /// Seconds since the agent started.
    pub uptime_secs: u64,
    /// Memory limit the agent read from the cgroup, in bytes (None = unlimited).
    pub memory_limit_bytes: Option<u64>,
    /// Last error seen, human-readable (no secrets).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Cluster topologies: the member names this node sees running (its own included),
    /// e.g. `rabbit@berth-b-…-1`; `None` when the engine does not say (single node,
    /// not started, or not a cluster).
    #[serde(default)]
    pub cluster_running: Option<Vec<String>>,
    /// Engine alarms the node has raised right now (memory, disk, an OOM kill in the
    /// last minutes); empty when all is well. The control plane turns a serving broker
    /// CRITICAL_ACTION_REQUIRED while any node has one.
    #[serde(default)]
    pub alarms: Vec<EngineAlarm>,
}

/// An alarm the engine (or the container) raised, with Amazon MQ's action-required code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineAlarm {
    /// One of [`alarm_codes`].
    pub code: String,
    /// Human-readable reason with the numbers (no secrets).
    pub message: String,
}

/// Action-required codes of engine alarms.
pub mod alarm_codes {
    /// RabbitMQ's memory alarm is on: publishers are blocked.
    pub const RABBITMQ_MEMORY_ALARM: &str = "RABBITMQ_MEMORY_ALARM";
    /// RabbitMQ's free-disk alarm is on: publishers are blocked.
    pub const RABBITMQ_DISK_ALARM: &str = "RABBITMQ_DISK_ALARM";
    /// The kernel killed a process of the node for memory (cgroup OOM kill).
    pub const BROKER_OOM: &str = "BROKER_OOM";
    /// ActiveMQ's store (KahaDB) is nearly full: producers are blocked.
    pub const ACTIVEMQ_STORE_FULL: &str = "ACTIVEMQ_STORE_FULL";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_and_redacts() {
        let spec = AgentSpec {
            broker_id: "b-1".into(),
            engine_version: "5.17".into(),
            engine: EngineSpec::Activemq(ActivemqSpec {
                broker_name: "b-1".into(),
                heap_percent: None,
            }),
            node: NodeSpec::default(),
            users: vec![EngineUser {
                username: "app".into(),
                password: "very-secret-pw".into(),
                admin: false,
                console_access: true,
                groups: vec!["readers".into()],
            }],
            agent_token: "tok-secret".into(),
            engine_config: None,
            tls: Some(TlsMaterial {
                cert_pem: "CERT".into(),
                key_pem: "KEY-secret".into(),
                ca_pem: "CA".into(),
            }),
            plaintext: true,
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert!(json.contains(r#""kind":"activemq""#), "{json}");
        let back: AgentSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.engine_kind(), Engine::Activemq);
        assert_eq!(back.users[0].groups, ["readers"]);
        let dbg = format!("{spec:?}");
        for secret in ["very-secret-pw", "tok-secret", "KEY-secret"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }

    #[test]
    fn missing_optional_parts_have_defaults() {
        let json = r#"{"broker_id":"b-1","engine_version":"4.0",
            "engine":{"kind":"rabbitmq","erlang_cookie":"c"},
            "users":[],"agent_token":"t"}"#;
        let spec: AgentSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.node, NodeSpec::default());
        assert!(spec.plaintext);
        assert!(spec.tls.is_none());
    }
}
