//! Queues and topics of a running broker, read and written through the agent:
//! `GET /destinations` → `Vec<`[`Destination`]`>`,
//! `POST /destinations/{kind}/{name}/send` with a [`TestMessage`] (204),
//! `POST /destinations/queue/{name}/peek?count=N` → `Vec<`[`PeekedMessage`]`>`
//! (N ≤ [`MAX_PEEK`]; the messages stay in the queue).
//!
//! Names are checked with [`DestinationName::parse`] on both sides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most messages one peek returns.
pub const MAX_PEEK: u32 = 10;
/// Longest destination name accepted (RabbitMQ's limit on queue names is 255 bytes).
pub const MAX_NAME_LEN: usize = 255;
/// Largest test message body accepted, in bytes.
pub const MAX_TEST_BODY: usize = 256 * 1024;

/// Queue or topic (RabbitMQ: a queue or an exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    Queue,
    Topic,
}

impl DestinationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Topic => "topic",
        }
    }

    /// `queue` or `topic`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "queue" => Ok(Self::Queue),
            "topic" => Ok(Self::Topic),
            _ => Err(format!(
                "the destination kind must be queue or topic, not {:?}",
                s.chars().take(20).collect::<String>()
            )),
        }
    }
}

impl std::fmt::Display for DestinationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated destination name: 1..=[`MAX_NAME_LEN`] bytes, no control characters,
/// no leading or trailing whitespace, not one of the engines' reserved prefixes for
/// Berth's own use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DestinationName(String);

impl DestinationName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("the destination name must not be empty".into());
        }
        if s.len() > MAX_NAME_LEN {
            return Err(format!(
                "the destination name must be at most {MAX_NAME_LEN} bytes"
            ));
        }
        if s.chars().any(char::is_control) {
            return Err("the destination name must not contain control characters".into());
        }
        if s.trim() != s {
            return Err("the destination name must not start or end with whitespace".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DestinationName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<DestinationName> for String {
    fn from(n: DestinationName) -> String {
        n.0
    }
}

impl std::fmt::Display for DestinationName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One queue or topic with its depth and rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub kind: DestinationKind,
    pub name: String,
    /// Messages in the queue (ready + unacknowledged); topics: 0.
    pub messages: u64,
    /// Messages waiting for a consumer.
    pub messages_ready: u64,
    /// Messages delivered and not acknowledged yet (ActiveMQ: in flight).
    pub messages_unacked: u64,
    pub consumers: u64,
    /// Messages per second published to it, when the engine measures it (RabbitMQ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<f64>,
    /// Messages per second delivered from it, when the engine measures it (RabbitMQ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_rate: Option<f64>,
}

/// A message to send to a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestMessage {
    /// UTF-8 text body.
    pub body: String,
    /// Application properties (RabbitMQ headers, STOMP/JMS string properties).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Persistent (delivery mode 2 / `persistent:true`).
    #[serde(default = "yes")]
    pub persistent: bool,
}

fn yes() -> bool {
    true
}

impl TestMessage {
    /// Checks the body size and the property names and values.
    pub fn validate(&self) -> Result<(), String> {
        if self.body.len() > MAX_TEST_BODY {
            return Err(format!("the body must be at most {MAX_TEST_BODY} bytes"));
        }
        if self.properties.len() > 32 {
            return Err("at most 32 properties".into());
        }
        for (k, v) in &self.properties {
            if k.is_empty() || k.len() > 128 || k.chars().any(|c| c.is_control() || c == ':') {
                return Err(format!(
                    "property name {:?} must be 1-128 characters without control characters or ':'",
                    k.chars().take(40).collect::<String>()
                ));
            }
            if v.len() > 4096 || v.chars().any(char::is_control) {
                return Err(format!(
                    "the value of property {k:?} must be at most 4096 bytes without control characters"
                ));
            }
        }
        Ok(())
    }
}

/// A message read from a queue without consuming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeekedMessage {
    /// The body: UTF-8 text, or base64 when `bodyBase64` is set.
    pub body: String,
    #[serde(default)]
    pub body_base64: bool,
    /// Headers and properties as the engine reports them (values as text).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub redelivered: bool,
}

/// The body field of a [`PeekedMessage`] for raw bytes: text if valid UTF-8, else base64.
pub fn body_field_for(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (base64(bytes), true),
    }
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(DestinationName::parse("orders.eu-1").is_ok());
        assert!(DestinationName::parse("").is_err());
        assert!(DestinationName::parse("a\nb").is_err());
        assert!(DestinationName::parse("a\u{7f}b").is_err());
        assert!(DestinationName::parse(" padded").is_err());
        assert!(DestinationName::parse(&"x".repeat(256)).is_err());
        assert!(DestinationName::parse(&"x".repeat(255)).is_ok());
        assert!(serde_json::from_str::<DestinationName>("\"a\\u0000\"").is_err());
    }

    #[test]
    fn wire_shape_is_camel_case() {
        let d = Destination {
            kind: DestinationKind::Queue,
            name: "q".into(),
            messages: 3,
            messages_ready: 2,
            messages_unacked: 1,
            consumers: 0,
            publish_rate: Some(1.5),
            deliver_rate: None,
        };
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["kind"], "queue");
        assert_eq!(json["messagesReady"], 2);
        assert_eq!(json["messagesUnacked"], 1);
        assert_eq!(json["publishRate"], 1.5);
        assert!(json.get("deliverRate").is_none());
        let m: TestMessage = serde_json::from_str(r#"{"body":"hi"}"#).unwrap();
        assert!(m.persistent && m.properties.is_empty());
        assert!(m.validate().is_ok());
        let bad: TestMessage =
            serde_json::from_str(r#"{"body":"hi","properties":{"a:b":"c"}}"#).unwrap();
        assert!(bad.validate().is_err());
        assert_eq!(body_field_for(b"hi"), ("hi".to_string(), false));
        assert_eq!(body_field_for(&[0xff, 0xfe]), ("//4=".to_string(), true));
    }
}
