//! Container ports, per engine. The agent opens exactly these; the control plane
//! publishes them on pinned host ports and reports them as endpoints. A port is either
//! plaintext (local development, behind an installation setting) or TLS (the endpoints
//! Amazon MQ lists).

/// RabbitMQ listeners inside the container.
pub mod rabbitmq {
    pub const AMQP: u16 = 5672;
    pub const AMQPS: u16 = 5671;
    pub const MQTT: u16 = 1883;
    pub const MQTTS: u16 = 8883;
    pub const STOMP: u16 = 61613;
    pub const STOMPS: u16 = 61614;
    /// Web-STOMP (`/ws`), plaintext and TLS.
    pub const WEB_STOMP: u16 = 15674;
    pub const WEB_STOMPS: u16 = 15673;
    /// Web-MQTT (`/ws`), plaintext and TLS.
    pub const WEB_MQTT: u16 = 15675;
    pub const WEB_MQTTS: u16 = 15676;
    /// Management UI and HTTP API, plaintext and TLS.
    pub const MANAGEMENT: u16 = 15672;
    pub const MANAGEMENT_TLS: u16 = 15671;
}

/// ActiveMQ listeners inside the container.
pub mod activemq {
    /// OpenWire (JMS), plaintext and TLS (`ssl://`).
    pub const OPENWIRE: u16 = 61616;
    pub const OPENWIRE_TLS: u16 = 61617;
    pub const STOMP: u16 = 61613;
    pub const STOMPS: u16 = 61614;
    pub const MQTT: u16 = 1883;
    pub const MQTTS: u16 = 8883;
    /// WebSocket (STOMP or MQTT by subprotocol), served by the agent's bridge because
    /// Debian does not build ActiveMQ's ws transport; plaintext and TLS (`wss://`).
    pub const WS: u16 = 61618;
    pub const WSS: u16 = 61619;
}
