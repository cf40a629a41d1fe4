//! Queues and topics of an ActiveMQ broker over STOMP on loopback, logged in as the
//! agent's internal user (a member of `admins`). Debian's 5.17 has no web console or
//! Jolokia, so:
//!
//! - list: the `statisticsBrokerPlugin` answers a message sent to
//!   `/queue/ActiveMQ.Statistics.Destination.>` (queues) or
//!   `/topic/ActiveMQ.Statistics.Destination.>` (topics) with one map message per
//!   destination to the `reply-to` (a temporary queue subscribed with
//!   `transformation:jms-map-json`, so each map arrives as XStream JSON), and — asked with
//!   the property `ActiveMQ.Statistics.Destination.List.End.With.Null` — an empty one at
//!   the end. `ActiveMQ.Advisory.*`, `ActiveMQ.Statistics.*` and temporary destinations
//!   are left out. The broker measures no rates.
//! - send: a `SEND` with a receipt (no `content-length` unless the body has a NUL, so a
//!   JMS consumer gets a `TextMessage`).
//! - peek: a `SUBSCRIBE` with `browser:true` (a queue browser: nothing is consumed),
//!   read until N messages or the broker's `browser:end` message, then `UNSUBSCRIBE`.
//!   Subscribing creates a missing queue, so the queue's existence is checked first.
//!
//! Frames are parsed fallibly; header values are escaped as STOMP 1.1 wants.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use agent_contract::{
    body_field_for, Destination, DestinationKind, DestinationName, PeekedMessage, TestMessage,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::engine::DestinationError;

/// The property asking the statistics plugin for an empty message after the last one.
pub const END_WITH_NULL: &str = "ActiveMQ.Statistics.Destination.List.End.With.Null";
/// Largest frame read.
const MAX_FRAME: usize = 4 * 1024 * 1024;
/// How long a list waits for the next statistics message before it takes what it has.
const QUIET: Duration = Duration::from_millis(1500);

/// A STOMP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Escape a header name or value (STOMP 1.1: `\\`, `\n`, `:`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ':' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

/// Undo [`escape`].
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Serialise a frame (headers escaped, except in `CONNECT`).
pub fn encode(command: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{command}\n").into_bytes();
    for (k, v) in headers {
        let (k, v) = if command == "CONNECT" {
            ((*k).to_owned(), v.clone())
        } else {
            (escape(k), escape(v))
        };
        out.extend_from_slice(format!("{k}:{v}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out.push(0);
    out
}

/// Parse one frame's head (`command`, headers) and body; `raw` is the frame without
/// its NUL.
pub fn parse_frame(raw: &[u8]) -> Result<Frame, String> {
    let end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or("no end of the frame head")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "frame head is not UTF-8")?;
    let mut lines = head.lines();
    let command = lines.next().unwrap_or("").trim().to_owned();
    if command.is_empty() {
        return Err("empty command".into());
    }
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                unescape(k.trim_end_matches('\r')),
                unescape(v.trim_end_matches('\r')),
            )
        })
        .collect();
    Ok(Frame {
        command,
        headers,
        body: raw[end + 2..].to_vec(),
    })
}

/// A STOMP connection to the broker.
pub struct Stomp {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
}

fn failed(addr: SocketAddr, what: impl std::fmt::Display) -> DestinationError {
    DestinationError::Failed(anyhow::anyhow!("STOMP at {addr}: {what}"))
}

impl Stomp {
    /// Connect and log in.
    pub async fn connect(
        addr: SocketAddr,
        login: &str,
        passcode: &str,
    ) -> Result<Stomp, DestinationError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| failed(addr, e))?;
        let mut s = Stomp {
            reader: BufReader::new(stream),
            addr,
        };
        s.send_frame(&encode(
            "CONNECT",
            &[
                ("accept-version", "1.1".into()),
                ("host", "localhost".into()),
                ("login", login.into()),
                ("passcode", passcode.into()),
                ("heart-beat", "0,0".into()),
            ],
            b"",
        ))
        .await?;
        let f = s.read().await?;
        match f.command.as_str() {
            "CONNECTED" => Ok(s),
            _ => Err(failed(
                addr,
                format!(
                    "login refused: {}",
                    f.header("message").unwrap_or("no message")
                ),
            )),
        }
    }

    async fn send_frame(&mut self, bytes: &[u8]) -> Result<(), DestinationError> {
        let addr = self.addr;
        self.reader
            .get_mut()
            .write_all(bytes)
            .await
            .map_err(|e| failed(addr, e))
    }

    /// Read the next frame (heart-beat EOLs skipped; `content-length` honoured).
    pub async fn read(&mut self) -> Result<Frame, DestinationError> {
        let addr = self.addr;
        let mut raw = Vec::new();
        // the head, up to the blank line
        loop {
            let mut line = Vec::new();
            let n = (&mut self.reader)
                .take(MAX_FRAME as u64)
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| failed(addr, e))?;
            if n == 0 {
                return Err(failed(addr, "connection closed"));
            }
            if raw.is_empty() && (line == b"\n" || line == b"\r\n") {
                continue;
            }
            let blank = line == b"\n" || line == b"\r\n";
            raw.extend_from_slice(&line);
            if raw.len() > MAX_FRAME {
                return Err(failed(addr, "frame too large"));
            }
            if blank {
                break;
            }
        }
        let head = parse_frame(&raw).map_err(|e| failed(addr, e))?;
        let body = match head.header("content-length").map(str::parse::<usize>) {
            Some(Ok(len)) if len <= MAX_FRAME => {
                let mut body = vec![0u8; len + 1];
                self.reader
                    .read_exact(&mut body)
                    .await
                    .map_err(|e| failed(addr, e))?;
                body.pop();
                body
            }
            Some(_) => return Err(failed(addr, "bad content-length")),
            None => {
                let mut body = Vec::new();
                (&mut self.reader)
                    .take(MAX_FRAME as u64)
                    .read_until(0, &mut body)
                    .await
                    .map_err(|e| failed(addr, e))?;
                if body.pop() != Some(0) {
                    return Err(failed(addr, "frame without its NUL"));
                }
                body
            }
        };
        Ok(Frame { body, ..head })
    }

    /// Send a frame with a receipt and wait for it; an `ERROR` fails.
    pub async fn with_receipt(
        &mut self,
        command: &str,
        mut headers: Vec<(&str, String)>,
        body: &[u8],
    ) -> Result<(), DestinationError> {
        headers.push(("receipt", "berth-receipt".into()));
        self.send_frame(&encode(command, &headers, body)).await?;
        loop {
            let f = self.read().await?;
            match f.command.as_str() {
                "RECEIPT" => return Ok(()),
                "ERROR" => {
                    return Err(failed(
                        self.addr,
                        format!(
                            "{command} refused: {}",
                            f.header("message").unwrap_or("no message")
                        ),
                    ))
                }
                _ => {}
            }
        }
    }

    /// Disconnect politely (errors ignored).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.with_receipt("DISCONNECT", Vec::new(), b""),
        )
        .await;
    }
}

/// The destination path for STOMP.
pub fn stomp_destination(kind: DestinationKind, name: &DestinationName) -> String {
    format!("/{}/{}", kind.as_str(), name.as_str())
}

/// Names ActiveMQ would read as wildcards or composites, or its own: refused.
pub fn check_name(name: &DestinationName) -> Result<(), DestinationError> {
    let n = name.as_str();
    if n.contains(['*', '>', ',']) {
        return Err(DestinationError::Unsupported(
            "ActiveMQ destination names must not contain '*', '>' or ','".into(),
        ));
    }
    if is_internal(n) {
        return Err(DestinationError::Unsupported(format!(
            "{n} is one of the broker's own destinations"
        )));
    }
    Ok(())
}

fn is_internal(name: &str) -> bool {
    name.starts_with("ActiveMQ.Advisory.") || name.starts_with("ActiveMQ.Statistics.")
}

/// The entries of an XStream JSON map (`{"map":{"entry":[…]}}`): each entry is
/// `{"string":["key","value"]}` or `{"string":"key","long":25}` (a single entry is an
/// object, not a list). Values are kept as JSON.
pub fn parse_xstream_map(body: &[u8]) -> Result<BTreeMap<String, Value>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let map = v.get("map").ok_or("no \"map\"")?;
    let entries = match map.get("entry") {
        None => return Ok(BTreeMap::new()),
        Some(Value::Array(a)) => a.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        Some(_) => return Err("\"entry\" is neither a list nor an object".into()),
    };
    let mut out = BTreeMap::new();
    for e in entries {
        let obj = e.as_object().ok_or("an entry is not an object")?;
        match obj.get("string") {
            Some(Value::Array(pair)) if pair.len() == 2 && obj.len() == 1 => {
                let k = pair[0].as_str().ok_or("a key is not a string")?;
                out.insert(k.to_owned(), pair[1].clone());
            }
            Some(Value::String(k)) => {
                let value = obj
                    .iter()
                    .find(|(t, _)| t.as_str() != "string")
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Null);
                out.insert(k.clone(), value);
            }
            _ => return Err("an entry without a string key".into()),
        }
    }
    Ok(out)
}

/// A statistics map's counter `key` (0 when missing or not a number).
pub fn number(map: &BTreeMap<String, Value>, key: &str) -> u64 {
    match map.get(key) {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_i64().map(|i| i.max(0) as u64))
            .unwrap_or(0),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(|i| i.max(0) as u64)
            .unwrap_or(0),
        _ => 0,
    }
}

/// One statistics map as a destination; `None` for the end marker and for destinations
/// that are left out (advisories, statistics, temporary ones).
pub fn destination_from_stats(
    map: &BTreeMap<String, Value>,
    asked: DestinationKind,
) -> Option<Destination> {
    let raw = map.get("destinationName")?.as_str()?;
    let (kind, name) = if let Some(n) = raw.strip_prefix("queue://") {
        (DestinationKind::Queue, n)
    } else if let Some(n) = raw.strip_prefix("topic://") {
        (DestinationKind::Topic, n)
    } else if raw.starts_with("temp-") || raw.starts_with("ID:") {
        return None;
    } else {
        (asked, raw)
    };
    if is_internal(name) || name.starts_with("ID:") {
        return None;
    }
    let size = number(map, "size");
    let inflight = number(map, "inflightCount").min(size);
    let (messages, ready, unacked) = match kind {
        DestinationKind::Queue => (size, size - inflight, inflight),
        DestinationKind::Topic => (0, 0, 0),
    };
    Some(Destination {
        kind,
        name: name.to_owned(),
        messages,
        messages_ready: ready,
        messages_unacked: unacked,
        consumers: number(map, "consumerCount"),
        publish_rate: None,
        deliver_rate: None,
    })
}

/// The reply queue of a statistics session.
const STATS_REPLY: &str = "/temp-queue/berth-stats";

/// Log in and subscribe to the statistics plugin's replies (see [`list_maps`],
/// [`broker_stats`]); returns the session and its reply destination.
pub async fn stats_session(
    addr: SocketAddr,
    login: &str,
    passcode: &str,
) -> Result<(Stomp, String), DestinationError> {
    let mut stomp = Stomp::connect(addr, login, passcode).await?;
    let reply = STATS_REPLY.to_owned();
    stomp
        .with_receipt(
            "SUBSCRIBE",
            vec![
                ("destination", reply.clone()),
                ("id", "stats".into()),
                ("ack", "auto".into()),
                ("transformation", "jms-map-json".into()),
            ],
            b"",
        )
        .await?;
    Ok((stomp, reply))
}

/// Ask the statistics plugin at `query` (replies to `reply`) and collect the maps that
/// come back: until the end marker (or [`QUIET`]) with `end_with_null`, else the first
/// one (a broker query answers with one map).
async fn ask(
    stomp: &mut Stomp,
    query: String,
    reply: &str,
    end_with_null: bool,
) -> Result<Vec<BTreeMap<String, Value>>, DestinationError> {
    let mut headers = vec![("destination", query), ("reply-to", reply.to_owned())];
    if end_with_null {
        headers.push((END_WITH_NULL, "true".into()));
    }
    stomp.with_receipt("SEND", headers, b"").await?;
    let mut out = Vec::new();
    loop {
        let frame = match tokio::time::timeout(QUIET, stomp.read()).await {
            Ok(f) => f?,
            Err(_) => break,
        };
        if frame.command != "MESSAGE" {
            continue;
        }
        let map = parse_xstream_map(&frame.body)
            .map_err(|e| failed(stomp.addr, format!("unexpected statistics message: {e}")))?;
        if end_with_null && !map.contains_key("destinationName") {
            break; // the end marker
        }
        out.push(map);
        if !end_with_null {
            break;
        }
    }
    Ok(out)
}

/// The statistics map of every destination of `kind` (internal ones included; see
/// [`destination_from_stats`]).
pub async fn list_maps(
    stomp: &mut Stomp,
    kind: DestinationKind,
    reply: &str,
) -> Result<Vec<BTreeMap<String, Value>>, DestinationError> {
    let query = format!("/{}/ActiveMQ.Statistics.Destination.>", kind.as_str());
    ask(stomp, query, reply, true).await
}

/// The broker's statistics map (`ActiveMQ.Statistics.Broker`).
pub async fn broker_stats(
    stomp: &mut Stomp,
    reply: &str,
) -> Result<BTreeMap<String, Value>, DestinationError> {
    let maps = ask(
        stomp,
        "/queue/ActiveMQ.Statistics.Broker".into(),
        reply,
        false,
    )
    .await?;
    maps.into_iter()
        .next()
        .ok_or_else(|| failed(stomp.addr, "no broker statistics within the time limit"))
}

/// Every destination of `kind`, from the statistics plugin.
pub async fn list(
    stomp: &mut Stomp,
    kind: DestinationKind,
    reply: &str,
) -> Result<Vec<Destination>, DestinationError> {
    Ok(list_maps(stomp, kind, reply)
        .await?
        .iter()
        .filter_map(|m| destination_from_stats(m, kind))
        .collect())
}

/// Queues and topics, sorted by kind and name.
pub async fn list_all(
    addr: SocketAddr,
    login: &str,
    passcode: &str,
) -> Result<Vec<Destination>, DestinationError> {
    let (mut stomp, reply) = stats_session(addr, login, passcode).await?;
    let mut all = list(&mut stomp, DestinationKind::Queue, &reply).await?;
    all.extend(list(&mut stomp, DestinationKind::Topic, &reply).await?);
    stomp.close().await;
    all.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
    all.dedup_by(|a, b| a.kind == b.kind && a.name == b.name);
    Ok(all)
}

/// The headers of a `SEND` for `message`.
pub fn send_headers(
    kind: DestinationKind,
    name: &DestinationName,
    message: &TestMessage,
) -> Vec<(&'static str, String)> {
    let mut h: Vec<(&'static str, String)> = vec![
        ("destination", stomp_destination(kind, name)),
        ("persistent", message.persistent.to_string()),
        ("content-type", "text/plain".into()),
    ];
    if message.body.as_bytes().contains(&0) {
        h.push(("content-length", message.body.len().to_string()));
    }
    h
}

/// Send `message` to `kind`/`name`.
pub async fn send(
    addr: SocketAddr,
    login: &str,
    passcode: &str,
    kind: DestinationKind,
    name: &DestinationName,
    message: &TestMessage,
) -> Result<(), DestinationError> {
    let mut stomp = Stomp::connect(addr, login, passcode).await?;
    let mut headers: Vec<(&str, String)> = send_headers(kind, name, message);
    let props: Vec<(String, String)> = message
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &props {
        headers.push((k.as_str(), v.clone()));
    }
    stomp
        .with_receipt("SEND", headers, message.body.as_bytes())
        .await?;
    stomp.close().await;
    Ok(())
}

/// STOMP headers that are the frame's, not the message's properties.
const FRAME_HEADERS: &[&str] = &["subscription", "content-length", "browser"];

/// A browsed MESSAGE frame as a peeked message.
pub fn peeked(frame: &Frame) -> PeekedMessage {
    let (body, body_base64) = body_field_for(&frame.body);
    let headers: BTreeMap<String, String> = frame
        .headers
        .iter()
        .filter(|(k, _)| !FRAME_HEADERS.contains(&k.as_str()))
        .cloned()
        .collect();
    PeekedMessage {
        redelivered: frame.header("redelivered") == Some("true"),
        body,
        body_base64,
        headers,
    }
}

/// Up to `count` messages from the head of queue `name`, browsed (not consumed).
pub async fn peek(
    addr: SocketAddr,
    login: &str,
    passcode: &str,
    name: &DestinationName,
    count: u32,
    wait: Duration,
) -> Result<Vec<PeekedMessage>, DestinationError> {
    let mut stomp = Stomp::connect(addr, login, passcode).await?;
    stomp
        .with_receipt(
            "SUBSCRIBE",
            vec![
                (
                    "destination",
                    stomp_destination(DestinationKind::Queue, name),
                ),
                ("id", "peek".into()),
                ("ack", "client".into()),
                ("browser", "true".into()),
                ("activemq.prefetchSize", count.to_string()),
            ],
            b"",
        )
        .await?;
    let mut out = Vec::new();
    while out.len() < count as usize {
        let frame = match tokio::time::timeout(wait, stomp.read()).await {
            Ok(f) => f?,
            Err(_) => break,
        };
        if frame.command != "MESSAGE" {
            continue;
        }
        if frame.header("browser") == Some("end") {
            break;
        }
        out.push(peeked(&frame));
    }
    let _ = stomp
        .with_receipt("UNSUBSCRIBE", vec![("id", "peek".into())], b"")
        .await;
    stomp.close().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statistics maps as ActiveMQ 5.17 sends them with `transformation:jms-map-json`
    /// (trimmed: brokerName, memory and timing entries left out).
    const QUEUE_STATS: &str = r#"{"map":{"entry":[
        {"string":["destinationName","queue://orders"]},
        {"string":"size","long":25},
        {"string":"enqueueCount","long":27},
        {"string":"dequeueCount","long":2},
        {"string":"inflightCount","long":1},
        {"string":"consumerCount","long":0},
        {"string":"producerCount","long":0},
        {"string":["brokerName","b-1"]}]}}"#;

    #[test]
    fn parses_statistics_maps() {
        let map = parse_xstream_map(QUEUE_STATS.as_bytes()).unwrap();
        let d = destination_from_stats(&map, DestinationKind::Queue).unwrap();
        assert_eq!(
            (d.kind, d.name.as_str()),
            (DestinationKind::Queue, "orders")
        );
        assert_eq!(
            (d.messages, d.messages_ready, d.messages_unacked),
            (25, 24, 1)
        );
        assert_eq!(d.consumers, 0);
        assert_eq!(d.publish_rate, None);

        let topic = br#"{"map":{"entry":[{"string":["destinationName","topic://prices"]},
            {"string":"size","int":"3"},{"string":"consumerCount","long":"2"}]}}"#;
        let map = parse_xstream_map(topic).unwrap();
        let d = destination_from_stats(&map, DestinationKind::Topic).unwrap();
        assert_eq!(
            (d.kind, d.name.as_str(), d.messages, d.consumers),
            (DestinationKind::Topic, "prices", 0, 2)
        );

        // the end marker and the broker's own destinations are no destinations
        for body in [
            r#"{"map":""}"#,
            r#"{"map":{}}"#,
            r#"{"map":{"entry":{"string":["destinationName","topic://ActiveMQ.Advisory.Queue"]}}}"#,
            r#"{"map":{"entry":[{"string":["destinationName","temp-queue://ID:x-1:1:1"]}]}}"#,
        ] {
            let map = parse_xstream_map(body.as_bytes()).unwrap();
            assert!(
                destination_from_stats(&map, DestinationKind::Queue).is_none(),
                "{body}"
            );
        }
        assert!(parse_xstream_map(b"not json").is_err());
        assert!(parse_xstream_map(br#"{"list":[]}"#).is_err());
        assert!(parse_xstream_map(br#"{"map":{"entry":[{"long":3}]}}"#).is_err());
    }

    #[test]
    fn frames_round_trip() {
        let raw = encode(
            "SEND",
            &[
                ("destination", "/queue/a:b".into()),
                ("x", "back\\slash".into()),
            ],
            b"hi",
        );
        assert!(raw.starts_with(b"SEND\ndestination:/queue/a\\cb\nx:back\\\\slash\n\nhi"));
        assert_eq!(raw.last(), Some(&0));
        let f = parse_frame(&raw[..raw.len() - 1]).unwrap();
        assert_eq!(f.header("destination"), Some("/queue/a:b"));
        assert_eq!(f.header("x"), Some("back\\slash"));
        assert_eq!(f.body, b"hi");
        assert!(parse_frame(b"MESSAGE\nno-end").is_err());

        let msg = parse_frame(
            b"MESSAGE\nmessage-id:ID\\c1\nsubscription:peek\nredelivered:false\ncolor:blue\n\nbody",
        )
        .unwrap();
        let p = peeked(&msg);
        assert_eq!(p.body, "body");
        assert!(!p.redelivered);
        assert_eq!(p.headers.get("color").map(String::as_str), Some("blue"));
        assert_eq!(
            p.headers.get("message-id").map(String::as_str),
            Some("ID:1")
        );
        assert!(!p.headers.contains_key("subscription"));
    }

    #[test]
    fn wildcards_and_own_destinations_are_refused() {
        let n = |s: &str| DestinationName::parse(s).unwrap();
        assert!(check_name(&n("orders")).is_ok());
        assert!(check_name(&n("ActiveMQ.DLQ")).is_ok());
        for bad in ["a.*", "a.>", "a,b", "ActiveMQ.Advisory.Queue"] {
            assert!(check_name(&n(bad)).is_err(), "{bad}");
        }
    }

    /// A fake broker answering the statistics query, a send and a browse.
    async fn fake_broker() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut s = Stomp {
                        reader: BufReader::new(sock),
                        addr,
                    };
                    while let Ok(f) = s.read().await {
                        let mut out: Vec<Vec<u8>> = Vec::new();
                        let receipt = f.header("receipt").map(str::to_owned);
                        match f.command.as_str() {
                            "CONNECT" => {
                                out.push(encode("CONNECTED", &[("version", "1.1".into())], b""))
                            }
                            "SEND"
                                if f.header("destination")
                                    == Some("/queue/ActiveMQ.Statistics.Destination.>") =>
                            {
                                out.push(encode(
                                    "MESSAGE",
                                    &[("subscription", "stats".into())],
                                    QUEUE_STATS.as_bytes(),
                                ));
                                out.push(encode(
                                    "MESSAGE",
                                    &[("subscription", "stats".into())],
                                    br#"{"map":""}"#,
                                ));
                            }
                            "SEND"
                                if f.header("destination")
                                    == Some("/topic/ActiveMQ.Statistics.Destination.>") =>
                            {
                                out.push(encode("MESSAGE", &[("subscription", "stats".into())], br#"{"map":{"entry":{"string":["destinationName","topic://ActiveMQ.Advisory.Queue"]}}}"#));
                                out.push(encode(
                                    "MESSAGE",
                                    &[("subscription", "stats".into())],
                                    br#"{"map":""}"#,
                                ));
                            }
                            "SUBSCRIBE" if f.header("browser") == Some("true") => {
                                for i in 0..2 {
                                    out.push(encode(
                                        "MESSAGE",
                                        &[
                                            ("subscription", "peek".into()),
                                            ("content-length", "4".into()),
                                        ],
                                        format!("m\0-{i}").as_bytes(),
                                    ));
                                }
                                out.push(encode(
                                    "MESSAGE",
                                    &[("subscription", "peek".into()), ("browser", "end".into())],
                                    b"",
                                ));
                            }
                            _ => {}
                        }
                        if let Some(r) = receipt {
                            out.insert(0, encode("RECEIPT", &[("receipt-id", r)], b""));
                        }
                        for o in out {
                            let _ = s.reader.get_mut().write_all(&o).await;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn lists_and_browses_through_stomp() {
        let addr = fake_broker().await;
        let list = list_all(addr, "u", "p").await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "orders");
        let name = DestinationName::parse("orders").unwrap();
        let got = peek(addr, "u", "p", &name, 5, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body, "m\0-0");
        let got = peek(addr, "u", "p", &name, 1, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let msg = TestMessage {
            body: "x".into(),
            properties: Default::default(),
            persistent: true,
        };
        send(addr, "u", "p", DestinationKind::Queue, &name, &msg)
            .await
            .unwrap();
    }
}
