//! Queues and topics of a RabbitMQ node through its management API (loopback, as the
//! node's internal monitoring user [`super::ctl::MonitorUser`], tag `monitoring`, with
//! read and write — not configure — permissions on `/`):
//!
//! - `GET /api/queues/%2F` → queues (`messages`, `messages_ready`,
//!   `messages_unacknowledged`, `consumers`, `message_stats.publish_details.rate`,
//!   `message_stats.deliver_get_details.rate`); `GET /api/exchanges/%2F` → the tenant's
//!   topic exchanges, listed as topics (the `amq.*` ones left out). The node refreshes
//!   these statistics every `collect_statistics_interval` (5 s by default).
//! - send: `POST /api/exchanges/%2F/amq.default/publish` with the queue as routing key
//!   (a queue that routes nothing does not exist: 404), or to the exchange of a topic
//!   (routing key empty);
//! - peek: `POST /api/queues/%2F/{queue}/get` with `ackmode: ack_requeue_true`: the
//!   messages are requeued at once (and read as `redelivered` afterwards).
//!
//! Every answer is parsed fallibly into the contract's types.

use std::collections::BTreeMap;

use agent_contract::{Destination, DestinationKind, PeekedMessage, TestMessage};
use serde::Deserialize;
use serde_json::{json, Value};

/// Percent-encode `s` for one path segment (everything but RFC 3986's unreserved).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Default, Deserialize)]
struct Rate {
    #[serde(default)]
    rate: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct QueueStats {
    #[serde(default)]
    publish_details: Option<Rate>,
    #[serde(default)]
    deliver_get_details: Option<Rate>,
}

#[derive(Debug, Deserialize)]
struct QueueEntry {
    name: String,
    #[serde(default)]
    messages: Option<u64>,
    #[serde(default)]
    messages_ready: Option<u64>,
    #[serde(default)]
    messages_unacknowledged: Option<u64>,
    #[serde(default)]
    consumers: Option<u64>,
    #[serde(default)]
    message_stats: Option<QueueStats>,
}

#[derive(Debug, Default, Deserialize)]
struct ExchangeStats {
    #[serde(default)]
    publish_in_details: Option<Rate>,
    #[serde(default)]
    publish_out_details: Option<Rate>,
}

#[derive(Debug, Deserialize)]
struct ExchangeEntry {
    name: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message_stats: Option<ExchangeStats>,
}

fn rate(r: Option<Rate>) -> Option<f64> {
    r.and_then(|r| r.rate).filter(|r| r.is_finite())
}

/// The queues in an `/api/queues/{vhost}` answer.
pub fn parse_queues(body: &[u8]) -> Result<Vec<Destination>, String> {
    let entries: Vec<QueueEntry> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .map(|q| {
            let stats = q.message_stats.unwrap_or_default();
            let ready = q.messages_ready.unwrap_or(0);
            let unacked = q.messages_unacknowledged.unwrap_or(0);
            Destination {
                kind: DestinationKind::Queue,
                name: q.name,
                messages: q.messages.unwrap_or(ready + unacked),
                messages_ready: ready,
                messages_unacked: unacked,
                consumers: q.consumers.unwrap_or(0),
                publish_rate: rate(stats.publish_details),
                deliver_rate: rate(stats.deliver_get_details),
            }
        })
        .collect())
}

/// The tenant's topic exchanges in an `/api/exchanges/{vhost}` answer, as topics.
pub fn parse_topic_exchanges(body: &[u8]) -> Result<Vec<Destination>, String> {
    let entries: Vec<ExchangeEntry> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .filter(|x| x.kind == "topic" && !x.name.is_empty() && !x.name.starts_with("amq."))
        .map(|x| {
            let stats = x.message_stats.unwrap_or_default();
            Destination {
                kind: DestinationKind::Topic,
                name: x.name,
                messages: 0,
                messages_ready: 0,
                messages_unacked: 0,
                consumers: 0,
                publish_rate: rate(stats.publish_in_details),
                deliver_rate: rate(stats.publish_out_details),
            }
        })
        .collect())
}

/// The body of a publish request.
pub fn publish_body(routing_key: &str, message: &TestMessage) -> Value {
    json!({
        "properties": {
            "delivery_mode": if message.persistent { 2 } else { 1 },
            "headers": message.properties,
        },
        "routing_key": routing_key,
        "payload": message.body,
        "payload_encoding": "string",
    })
}

/// Whether a publish answer says the message reached a queue.
pub fn parse_routed(body: &[u8]) -> Result<bool, String> {
    #[derive(Deserialize)]
    struct Routed {
        routed: bool,
    }
    serde_json::from_slice::<Routed>(body)
        .map(|r| r.routed)
        .map_err(|e| e.to_string())
}

/// The body of a get request that requeues what it reads.
pub fn get_body(count: u32) -> Value {
    json!({ "count": count, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 65536 })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The messages in a `/api/queues/{vhost}/{queue}/get` answer.
pub fn parse_get(body: &[u8]) -> Result<Vec<PeekedMessage>, String> {
    #[derive(Deserialize)]
    struct Got {
        #[serde(default)]
        payload: String,
        #[serde(default)]
        payload_encoding: String,
        #[serde(default)]
        redelivered: bool,
        #[serde(default)]
        properties: Value,
    }
    let got: Vec<Got> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(got
        .into_iter()
        .map(|m| {
            let mut headers = BTreeMap::new();
            if let Some(props) = m.properties.as_object() {
                for (k, v) in props {
                    if k == "headers" {
                        if let Some(h) = v.as_object() {
                            for (hk, hv) in h {
                                headers.insert(hk.clone(), text(hv));
                            }
                        }
                    } else {
                        headers.insert(k.clone(), text(v));
                    }
                }
            }
            PeekedMessage {
                body: m.payload,
                body_base64: m.payload_encoding == "base64",
                headers,
                redelivered: m.redelivered,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a RabbitMQ 4.0 `GET /api/queues/%2F` answer.
    const QUEUES: &str = r#"[{"arguments":{"x-queue-type":"classic"},"auto_delete":false,
        "consumer_capacity":0,"consumer_utilisation":0,"consumers":0,"durable":true,
        "exclusive":false,"memory":55000,"message_bytes":250,
        "message_stats":{"publish":25,"publish_details":{"rate":4.8},
          "deliver_get":3,"deliver_get_details":{"rate":0.0}},
        "messages":25,"messages_details":{"rate":0.0},"messages_ready":25,
        "messages_unacknowledged":0,"name":"orders","node":"rabbit@b-1","state":"running",
        "type":"classic","vhost":"/"},
        {"name":"fresh","vhost":"/","durable":true,"consumers":1}]"#;

    #[test]
    fn parses_queues() {
        let list = parse_queues(QUEUES.as_bytes()).unwrap();
        assert_eq!(list.len(), 2);
        let q = &list[0];
        assert_eq!(
            (q.kind, q.name.as_str()),
            (DestinationKind::Queue, "orders")
        );
        assert_eq!(
            (q.messages, q.messages_ready, q.messages_unacked),
            (25, 25, 0)
        );
        assert_eq!(q.consumers, 0);
        assert_eq!((q.publish_rate, q.deliver_rate), (Some(4.8), Some(0.0)));
        // a queue whose statistics are not collected yet
        let f = &list[1];
        assert_eq!((f.messages, f.consumers, f.publish_rate), (0, 1, None));
        assert!(parse_queues(b"{\"error\":\"x\"}").is_err());
        assert!(parse_queues(b"[{\"messages\":1}]").is_err());
    }

    #[test]
    fn lists_only_the_tenants_topic_exchanges() {
        let body = br#"[{"name":"","type":"direct"},{"name":"amq.topic","type":"topic"},
            {"name":"events","type":"topic","message_stats":{"publish_in_details":{"rate":2.0}}},
            {"name":"fanout","type":"fanout"}]"#;
        let list = parse_topic_exchanges(body).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "events");
        assert_eq!(list[0].kind, DestinationKind::Topic);
        assert_eq!(list[0].publish_rate, Some(2.0));
    }

    #[test]
    fn publish_and_get_bodies() {
        let m = TestMessage {
            body: "hello".into(),
            properties: [("k".to_string(), "v".to_string())].into(),
            persistent: true,
        };
        let b = publish_body("orders", &m);
        assert_eq!(b["routing_key"], "orders");
        assert_eq!(b["properties"]["delivery_mode"], 2);
        assert_eq!(b["properties"]["headers"]["k"], "v");
        assert!(parse_routed(br#"{"routed":false}"#).is_ok_and(|r| !r));
        assert!(parse_routed(b"[]").is_err());
        assert_eq!(get_body(3)["ackmode"], "ack_requeue_true");
        assert_eq!(encode_segment("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(encode_segment("orders.eu-1"), "orders.eu-1");
    }

    #[test]
    fn parses_got_messages() {
        // from a RabbitMQ 4.0 `POST /api/queues/%2F/orders/get` answer
        let body = br#"[{"payload_bytes":5,"redelivered":true,"exchange":"","routing_key":"orders",
            "message_count":24,"properties":{"delivery_mode":2,"headers":{"k":"v","n":3}},
            "payload":"msg-0","payload_encoding":"string"},
            {"payload_bytes":2,"redelivered":false,"exchange":"","routing_key":"orders",
            "message_count":23,"properties":[],"payload":"//4=","payload_encoding":"base64"}]"#;
        let got = parse_get(body).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body, "msg-0");
        assert!(got[0].redelivered && !got[0].body_base64);
        assert_eq!(got[0].headers["k"], "v");
        assert_eq!(got[0].headers["n"], "3");
        assert_eq!(got[0].headers["delivery_mode"], "2");
        assert!(got[1].body_base64 && got[1].headers.is_empty());
        assert!(parse_get(b"{}").is_err());
    }
}
