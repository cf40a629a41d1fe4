//! Protocol clients shared by the engine tests (`protocols.rs`, `tls.rs`, `activemq.rs`):
//! byte streams over TCP or TLS ([`io`]), WebSocket and the byte [`ws::Wire`] over either
//! ([`ws`]), STOMP 1.2 frames ([`stomp`]), MQTT 3.1.1 with rumqttc's client or its codec
//! over a WebSocket ([`mqtt`]), AMQP 1.0 ([`amqp10`]); and the endpoint lists
//! DescribeBroker reports. Every network step is bounded by [`STEP`].

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

pub mod amqp10;
pub mod io;
pub mod mqtt;
pub mod stomp;
pub mod ws;

/// Bound on one network step (connect, a reply, a delivery). RabbitMQ answers a wrong
/// password after ~3 s on AMQP 1.0 and MQTT, so this leaves ample room.
pub const STEP: Duration = Duration::from_secs(20);

/// Runs `fut` with the [`STEP`] bound; panics naming `what` when it runs out.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP:?}"))
}

// ---------------------------------------------------------------------------------------
// Endpoint URLs.

/// `host:port` of an endpoint URL (no scheme, no path).
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap()
}

/// Host and port of an endpoint URL (`scheme://host:port[/path]`).
pub fn host_port(url: &str) -> (String, u16) {
    let (host, port) = authority(url)
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {url}"));
    (
        host.to_owned(),
        port.parse().unwrap_or_else(|_| panic!("bad port in {url}")),
    )
}

/// The endpoints of the first broker instance, in order; each must be on loopback.
pub fn endpoint_list(describe: &Value) -> Vec<String> {
    let all: Vec<String> = describe["brokerInstances"][0]["endpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("no endpoints in {describe}"))
        .iter()
        .map(|e| e.as_str().expect("endpoint string").to_owned())
        .collect();
    for e in &all {
        assert!(
            e.contains("://127.0.0.1:"),
            "endpoint {e} is not on loopback"
        );
    }
    all
}

/// Checks that `all` has exactly the `schemes` in that order, a path only on WebSocket
/// endpoints (`ws_path`), and a distinct port each.
pub fn assert_endpoint_layout(all: &[String], schemes: &[&str], ws_path: &str) {
    let got: Vec<&str> = all
        .iter()
        .map(|e| e.split_once("://").expect("scheme://").0)
        .collect();
    assert_eq!(got, schemes, "endpoint schemes (in order) of {all:?}");
    let mut ports = Vec::new();
    for e in all {
        let rest = e.split_once("://").unwrap().1;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let want = if e.starts_with("ws") { ws_path } else { "" };
        assert_eq!(path, want, "path of {e}");
        let port: u16 = authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {e}"));
        ports.push(port);
    }
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ports.len(), "ports not distinct: {all:?}");
}

/// The schemes of a RabbitMQ broker's endpoints in DescribeBroker's order (Amazon MQ's
/// TLS ones first, then the plaintext ones Berth adds): AMQP, MQTT, STOMP, Web-STOMP,
/// Web-MQTT.
pub const RABBITMQ_SCHEMES: [&str; 10] = [
    "amqps",
    "mqtt+ssl",
    "stomp+ssl",
    "wss",
    "wss",
    "amqp",
    "mqtt",
    "stomp",
    "ws",
    "ws",
];

/// The client endpoints of one RabbitMQ broker instance, by protocol (full URLs).
pub struct RabbitMqEndpoints {
    pub amqps: String,
    pub mqtts: String,
    pub stomps: String,
    pub web_stomps: String,
    pub web_mqtts: String,
    pub amqp: String,
    pub mqtt: String,
    pub stomp: String,
    pub web_stomp: String,
    pub web_mqtt: String,
    pub console: String,
}

impl RabbitMqEndpoints {
    /// Parses DescribeBroker's answer, asserting the full ordered list: TLS first
    /// (`amqps`, `mqtt+ssl`, `stomp+ssl`, `wss` Web-STOMP, `wss` Web-MQTT), then the same
    /// in plaintext. Web-STOMP (container port 15673/15674) is listed before Web-MQTT
    /// (15676/15675); both are `…/ws`, so only the order tells them apart. The console is
    /// HTTPS.
    pub fn of(describe: &Value) -> RabbitMqEndpoints {
        let all = endpoint_list(describe);
        assert_endpoint_layout(&all, &RABBITMQ_SCHEMES, "/ws");
        let console = describe["brokerInstances"][0]["consoleURL"]
            .as_str()
            .expect("consoleURL")
            .to_owned();
        assert!(
            console.starts_with("https://127.0.0.1:"),
            "consoleURL {console} is not HTTPS on loopback"
        );
        let mut it = all.into_iter();
        let mut next = || it.next().unwrap();
        RabbitMqEndpoints {
            amqps: next(),
            mqtts: next(),
            stomps: next(),
            web_stomps: next(),
            web_mqtts: next(),
            amqp: next(),
            mqtt: next(),
            stomp: next(),
            web_stomp: next(),
            web_mqtt: next(),
            console,
        }
    }
}
