//! What each engine listens on inside its container, and how Berth names the Docker
//! objects of a broker. Shared by the reconciler (what to publish) and the API (which
//! endpoints to report).

use super::{BrokerId, EngineType};

/// A port an engine node exposes, and how it appears in `endpoints`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnginePort {
    /// Stored in `broker_ports.protocol`.
    pub protocol: &'static str,
    pub container_port: u16,
    /// URL scheme for `brokerInstances[].endpoints`; `None` = not a client endpoint.
    pub scheme: Option<&'static str>,
    /// Path suffix of the endpoint URL (web sockets).
    pub path: &'static str,
}

const RABBITMQ_PORTS: &[EnginePort] = &[
    EnginePort {
        protocol: "amqp",
        container_port: 5672,
        scheme: Some("amqp"),
        path: "",
    },
    EnginePort {
        protocol: "mqtt",
        container_port: 1883,
        scheme: Some("mqtt"),
        path: "",
    },
    EnginePort {
        protocol: "stomp",
        container_port: 61613,
        scheme: Some("stomp"),
        path: "",
    },
    EnginePort {
        protocol: "web-stomp",
        container_port: 15674,
        scheme: Some("ws"),
        path: "/ws",
    },
    EnginePort {
        protocol: "web-mqtt",
        container_port: 15675,
        scheme: Some("ws"),
        path: "/ws",
    },
    EnginePort {
        protocol: "console",
        container_port: 15672,
        scheme: None,
        path: "",
    },
    EnginePort {
        protocol: AGENT_PROTOCOL,
        container_port: broker_agent::spec::AGENT_PORT,
        scheme: None,
        path: "",
    },
];

/// Protocol name of the agent's API port.
pub const AGENT_PROTOCOL: &str = "agent";
/// Protocol name of the management console port.
pub const CONSOLE_PROTOCOL: &str = "console";

pub fn engine_ports(engine: EngineType) -> &'static [EnginePort] {
    match engine {
        EngineType::Rabbitmq => RABBITMQ_PORTS,
        EngineType::Activemq => &[],
    }
}

/// Where the engine keeps its data inside the container.
pub fn data_dir(engine: EngineType) -> &'static str {
    match engine {
        EngineType::Rabbitmq => "/var/lib/rabbitmq",
        EngineType::Activemq => "/var/lib/activemq",
    }
}

/// Docker object names, deterministic so every step can be retried.
pub fn network_name(id: &BrokerId) -> String {
    format!("berth-{id}")
}

pub fn volume_name(id: &BrokerId, node: i32) -> String {
    format!("berth-{id}-{node}-data")
}

pub fn container_name(id: &BrokerId, node: i32) -> String {
    format!("berth-{id}-{node}")
}
