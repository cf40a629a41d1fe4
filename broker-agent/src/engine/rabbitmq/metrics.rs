//! RabbitMQ's part of `GET /metrics` and its alarms, from the node's management API on
//! loopback (as the internal monitoring user, see [`super::mgmt`]), three small
//! requests with `columns=` so that answers stay small:
//!
//! - `/api/overview?columns=object_totals,queue_totals,message_stats` → QueueCount,
//!   ExchangeCount, ConnectionCount, ChannelCount, ConsumerCount, MessageCount,
//!   MessageReadyCount, MessageUnacknowledgedCount and the PublishRate, ConfirmRate and
//!   AckRate RabbitMQ computes itself (its `*_details.rate`, messages per second over
//!   its sample window). In a cluster these totals are cluster-wide and every node
//!   reports them; the control plane keeps them per node (`Node` dimension).
//! - `/api/nodes/<this node>?columns=…` → RabbitMQMemUsed, RabbitMQMemLimit,
//!   RabbitMQDiskFree, RabbitMQDiskFreeLimit, RabbitMQFdUsed with `Node=<node name>`,
//!   and the memory and disk alarms ([`node_alarms`]).
//! - `/api/queues?columns=name,vhost,messages,…,consumers` → per queue MessageCount,
//!   MessageReadyCount, MessageUnacknowledgedCount and ConsumerCount with `Queue` and
//!   `VirtualHost`, at most [`MAX_DESTINATION_SERIES`] queues.
//!
//! Answers are parsed fallibly; a figure RabbitMQ leaves out (a queue whose stats are
//! not emitted yet, an empty `message_stats`) leaves its sample out.

use agent_contract::metrics::{dims, names, Sample, Unit, MAX_DESTINATION_SERIES};
use agent_contract::{alarm_codes, EngineAlarm};
use serde::Deserialize;
use serde_json::Value;

/// The overview request.
pub const OVERVIEW_PATH: &str = "/api/overview?columns=object_totals,queue_totals,message_stats";
/// The queues request (every virtual host).
pub const QUEUES_PATH: &str =
    "/api/queues?columns=name,vhost,messages,messages_ready,messages_unacknowledged,consumers";
/// The node columns asked for.
const NODE_COLUMNS: &str =
    "name,mem_used,mem_limit,disk_free,disk_free_limit,fd_used,mem_alarm,disk_free_alarm";

/// The node request for `node` (`rabbit@host`).
pub fn node_path(node: &str) -> String {
    format!(
        "/api/nodes/{}?columns={NODE_COLUMNS}",
        super::destinations::encode_segment(node)
    )
}

fn bad(e: impl std::fmt::Display) -> String {
    format!("unexpected management API answer: {e}")
}

/// A number at `path` in `v`, if there is one.
fn number_at(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

/// The overview's samples.
pub fn parse_overview(body: &[u8]) -> Result<Vec<Sample>, String> {
    let v: Value = serde_json::from_slice(body).map_err(bad)?;
    if !v.is_object() {
        return Err(bad("the overview is not an object"));
    }
    let count = Unit::Count;
    let rate = Unit::CountPerSecond;
    let wanted: [(&str, &[&str], Unit); 11] = [
        (names::QUEUE_COUNT, &["object_totals", "queues"], count),
        (
            names::EXCHANGE_COUNT,
            &["object_totals", "exchanges"],
            count,
        ),
        (
            names::CONNECTION_COUNT,
            &["object_totals", "connections"],
            count,
        ),
        (names::CHANNEL_COUNT, &["object_totals", "channels"], count),
        (
            names::CONSUMER_COUNT,
            &["object_totals", "consumers"],
            count,
        ),
        (names::MESSAGE_COUNT, &["queue_totals", "messages"], count),
        (
            names::MESSAGE_READY_COUNT,
            &["queue_totals", "messages_ready"],
            count,
        ),
        (
            names::MESSAGE_UNACKNOWLEDGED_COUNT,
            &["queue_totals", "messages_unacknowledged"],
            count,
        ),
        (
            names::PUBLISH_RATE,
            &["message_stats", "publish_details", "rate"],
            rate,
        ),
        (
            names::CONFIRM_RATE,
            &["message_stats", "confirm_details", "rate"],
            rate,
        ),
        (
            names::ACK_RATE,
            &["message_stats", "ack_details", "rate"],
            rate,
        ),
    ];
    Ok(wanted
        .iter()
        .filter_map(|(name, path, unit)| number_at(&v, path).map(|x| Sample::new(name, x, *unit)))
        .collect())
}

/// The columns of `/api/nodes/<node>` the agent asks for.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeStats {
    #[serde(default)]
    pub name: String,
    pub mem_used: Option<f64>,
    pub mem_limit: Option<f64>,
    pub disk_free: Option<f64>,
    pub disk_free_limit: Option<f64>,
    pub fd_used: Option<f64>,
    #[serde(default)]
    pub mem_alarm: bool,
    #[serde(default)]
    pub disk_free_alarm: bool,
}

pub fn parse_node(body: &[u8]) -> Result<NodeStats, String> {
    serde_json::from_slice(body).map_err(bad)
}

/// The node's samples, with `Node=<its name>`.
pub fn node_samples(n: &NodeStats) -> Vec<Sample> {
    [
        (names::RABBITMQ_MEM_USED, n.mem_used, Unit::Bytes),
        (names::RABBITMQ_MEM_LIMIT, n.mem_limit, Unit::Bytes),
        (names::RABBITMQ_DISK_FREE, n.disk_free, Unit::Bytes),
        (
            names::RABBITMQ_DISK_FREE_LIMIT,
            n.disk_free_limit,
            Unit::Bytes,
        ),
        (names::RABBITMQ_FD_USED, n.fd_used, Unit::Count),
    ]
    .into_iter()
    .filter_map(|(name, v, unit)| v.map(|v| Sample::new(name, v, unit).with(dims::NODE, &n.name)))
    .collect()
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(
        || "?".into(),
        |b| format!("{:.0} MiB", b / (1024.0 * 1024.0)),
    )
}

/// The node's memory and disk alarms, with the numbers.
pub fn node_alarms(n: &NodeStats) -> Vec<EngineAlarm> {
    let mut out = Vec::new();
    if n.mem_alarm {
        out.push(EngineAlarm {
            code: alarm_codes::RABBITMQ_MEMORY_ALARM.into(),
            message: format!(
                "RabbitMQ memory alarm on {}: {} used, high watermark {}; publishers are blocked",
                n.name,
                mib(n.mem_used),
                mib(n.mem_limit)
            ),
        });
    }
    if n.disk_free_alarm {
        out.push(EngineAlarm {
            code: alarm_codes::RABBITMQ_DISK_ALARM.into(),
            message: format!(
                "RabbitMQ disk alarm on {}: {} free, limit {}; publishers are blocked",
                n.name,
                mib(n.disk_free),
                mib(n.disk_free_limit)
            ),
        });
    }
    out
}

#[derive(Debug, Deserialize)]
struct QueueStats {
    name: String,
    vhost: String,
    messages: Option<f64>,
    messages_ready: Option<f64>,
    messages_unacknowledged: Option<f64>,
    consumers: Option<f64>,
}

/// Per-queue samples of the first [`MAX_DESTINATION_SERIES`] queues.
pub fn parse_queues(body: &[u8]) -> Result<Vec<Sample>, String> {
    let queues: Vec<QueueStats> = serde_json::from_slice(body).map_err(bad)?;
    let mut out = Vec::new();
    for q in queues.iter().take(MAX_DESTINATION_SERIES) {
        for (name, v) in [
            (names::MESSAGE_COUNT, q.messages),
            (names::MESSAGE_READY_COUNT, q.messages_ready),
            (
                names::MESSAGE_UNACKNOWLEDGED_COUNT,
                q.messages_unacknowledged,
            ),
            (names::CONSUMER_COUNT, q.consumers),
        ] {
            if let Some(v) = v {
                out.push(
                    Sample::new(name, v, Unit::Count)
                        .with(dims::QUEUE, &q.name)
                        .with(dims::VIRTUAL_HOST, &q.vhost),
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &[Sample], name: &str) -> Option<f64> {
        s.iter()
            .find(|x| x.name == name && x.dimensions.is_empty())
            .map(|x| x.value)
    }

    #[test]
    fn overview_totals_and_rates() {
        let body = br#"{"object_totals":{"channels":2,"connections":1,"consumers":3,"exchanges":7,"queues":4},
            "queue_totals":{"messages":30,"messages_details":{"rate":0.0},"messages_ready":28,"messages_unacknowledged":2},
            "message_stats":{"publish":30,"publish_details":{"rate":6.2},"confirm_details":{"rate":6.0},"ack_details":{"rate":1.5}}}"#;
        let s = parse_overview(body).unwrap();
        assert_eq!(s.len(), 11);
        assert_eq!(value(&s, names::QUEUE_COUNT), Some(4.0));
        assert_eq!(value(&s, names::EXCHANGE_COUNT), Some(7.0));
        assert_eq!(value(&s, names::MESSAGE_READY_COUNT), Some(28.0));
        assert_eq!(value(&s, names::MESSAGE_UNACKNOWLEDGED_COUNT), Some(2.0));
        assert_eq!(value(&s, names::PUBLISH_RATE), Some(6.2));
        let ack = s.iter().find(|x| x.name == names::ACK_RATE).unwrap();
        assert_eq!(ack.unit, Unit::CountPerSecond);
        // a fresh node: empty message_stats (RabbitMQ sends [] or {}), no queue_totals
        let s = parse_overview(
            br#"{"object_totals":{"queues":0},"message_stats":[],"queue_totals":{}}"#,
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert!(parse_overview(b"[]").is_err());
        assert!(parse_overview(b"not json").is_err());
    }

    #[test]
    fn node_figures_and_alarms() {
        let body = br#"{"name":"rabbit@n1","mem_used":943718400,"mem_limit":838860800,"disk_free":40000000,
            "disk_free_limit":50000000,"fd_used":37,"mem_alarm":true,"disk_free_alarm":true}"#;
        let n = parse_node(body).unwrap();
        let s = node_samples(&n);
        assert_eq!(s.len(), 5);
        assert!(s.iter().all(|x| x.dimensions[dims::NODE] == "rabbit@n1"));
        let a = node_alarms(&n);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].code, alarm_codes::RABBITMQ_MEMORY_ALARM);
        assert!(
            a[0].message
                .contains("900 MiB used, high watermark 800 MiB"),
            "{}",
            a[0].message
        );
        assert_eq!(a[1].code, alarm_codes::RABBITMQ_DISK_ALARM);
        assert!(
            a[1].message.contains("38 MiB free, limit 48 MiB"),
            "{}",
            a[1].message
        );
        let quiet =
            parse_node(br#"{"name":"rabbit@n1","mem_alarm":false,"disk_free_alarm":false}"#)
                .unwrap();
        assert!(node_alarms(&quiet).is_empty());
        assert!(node_samples(&quiet).is_empty());
        assert!(parse_node(b"[1]").is_err());
        assert_eq!(
            node_path("rabbit@n-1"),
            format!("/api/nodes/rabbit%40n-1?columns={NODE_COLUMNS}")
        );
    }

    #[test]
    fn per_queue_series_are_capped() {
        let body = br#"[{"name":"orders","vhost":"/","messages":30,"messages_ready":30,"messages_unacknowledged":0,"consumers":0},
            {"name":"fresh","vhost":"v2"}]"#;
        let s = parse_queues(body).unwrap();
        assert_eq!(s.len(), 4);
        let ready = s
            .iter()
            .find(|x| x.name == names::MESSAGE_READY_COUNT)
            .unwrap();
        assert_eq!(ready.value, 30.0);
        assert_eq!(ready.dimensions[dims::QUEUE], "orders");
        assert_eq!(ready.dimensions[dims::VIRTUAL_HOST], "/");
        let many: Vec<String> = (0..MAX_DESTINATION_SERIES + 10)
            .map(|i| format!(r#"{{"name":"q{i}","vhost":"/","messages":1}}"#))
            .collect();
        let s = parse_queues(format!("[{}]", many.join(",")).as_bytes()).unwrap();
        assert_eq!(s.len(), MAX_DESTINATION_SERIES);
        assert!(parse_queues(b"{}").is_err());
    }
}
