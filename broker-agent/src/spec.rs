//! Wire contract between the control plane and the agent.
//!
//! The control plane writes an [`AgentSpec`] as JSON to [`SPEC_PATH`] inside the
//! container (uploaded into the container filesystem before the first start, so
//! secrets never appear in `docker inspect`). The agent answers
//! `GET /health` on [`AGENT_PORT`] with a [`HealthReport`], but only to callers
//! presenting `Authorization: Bearer <agent_token>`.

use serde::{Deserialize, Serialize};

/// Where the control plane puts the spec inside the container.
pub const SPEC_PATH: &str = "/etc/berth/spec.json";
/// TCP port the agent's HTTP API listens on inside the container.
pub const AGENT_PORT: u16 = 9180;

/// Engine families the agent knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Administrator rights (management UI / console access).
    #[serde(default)]
    pub admin: bool,
}

impl std::fmt::Debug for EngineUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("admin", &self.admin)
            .finish()
    }
}

/// Everything the agent needs to run one broker node.
#[derive(Clone, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Broker id (`b-…`), for logs.
    pub broker_id: String,
    pub engine: Engine,
    /// Engine version as offered by the API, e.g. `4.0`.
    pub engine_version: String,
    /// Users the engine must have. RabbitMQ: the first is the administrator.
    pub users: Vec<EngineUser>,
    /// Shared secret the control plane presents to the agent's API.
    pub agent_token: String,
    /// Erlang distribution cookie (RabbitMQ only), unique per broker.
    #[serde(default)]
    pub erlang_cookie: Option<String>,
    /// Fraction of the container memory limit RabbitMQ may use before it blocks
    /// publishers (0.0–1.0). `None` → the agent's default (0.4).
    #[serde(default)]
    pub memory_high_watermark: Option<f64>,
    /// Tenant configuration (a sanitized configuration revision, `rabbitmq.conf` lines)
    /// appended to what the agent renders. Applied at engine start.
    #[serde(default)]
    pub engine_config: Option<String>,
}

impl std::fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSpec")
            .field("broker_id", &self.broker_id)
            .field("engine", &self.engine)
            .field("engine_version", &self.engine_version)
            .field("users", &self.users)
            .field("agent_token", &"<redacted>")
            .field(
                "erlang_cookie",
                &self.erlang_cookie.as_ref().map(|_| "<redacted>"),
            )
            .field("memory_high_watermark", &self.memory_high_watermark)
            .field(
                "engine_config",
                &self.engine_config.as_ref().map(String::len),
            )
            .finish()
    }
}

/// Lifecycle of the engine process as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineState {
    /// Config rendered, process started, protocol not answering yet.
    Starting,
    /// The engine answers its wire protocol (AMQP handshake for RabbitMQ).
    Ready,
    /// The engine died and the agent is restarting it.
    Restarting,
    /// The agent is shutting the engine down (SIGTERM received).
    Stopping,
    /// The agent could not start the engine (bad spec, missing binary …).
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
}
