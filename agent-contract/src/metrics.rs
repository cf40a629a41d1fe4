//! `GET /metrics` on the agent: one sample of the node's engine and container, with
//! Amazon MQ's metric names and dimensions (CloudWatch `AWS/AmazonMQ` namespace).
//!
//! The agent samples **on request** (no background sampler: an idle broker costs
//! nothing); rates and CPU percentages are computed against the previous request's
//! counters, so the first answer after a start may leave them out. The control plane's
//! collector calls this every `metrics_interval_ms` and stores what comes back.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// CloudWatch units Berth uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    Count,
    Percent,
    Bytes,
    #[serde(rename = "Count/Second")]
    CountPerSecond,
    Seconds,
    None,
}

/// One value of one metric for one set of dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Amazon MQ's metric name, e.g. `MessageReadyCount` (see [`names`]).
    pub name: String,
    /// Dimensions beyond `Broker` (which the control plane adds), e.g.
    /// `{"Queue": "orders", "VirtualHost": "/"}`; `Node` for per-node engine values.
    /// Empty → a broker-level value of this node.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    pub value: f64,
    pub unit: Unit,
}

impl Sample {
    pub fn new(name: &str, value: f64, unit: Unit) -> Self {
        Self {
            name: name.to_owned(),
            dimensions: BTreeMap::new(),
            value,
            unit,
        }
    }

    /// The same sample with one more dimension.
    pub fn with(mut self, dimension: &str, value: &str) -> Self {
        self.dimensions.insert(dimension.to_owned(), value.to_owned());
        self
    }
}

/// Body of `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    pub broker_id: String,
    /// Node index (the control plane stores it as the `Node` dimension's source).
    pub node: u32,
    /// When the agent took the sample, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub samples: Vec<Sample>,
    /// Engine metrics could not be read (engine starting, management API down …);
    /// container metrics are still there. No secrets.
    #[serde(default)]
    pub engine_error: Option<String>,
}

/// Dimension names (CloudWatch's spelling).
pub mod dims {
    pub const NODE: &str = "Node";
    pub const QUEUE: &str = "Queue";
    pub const TOPIC: &str = "Topic";
    pub const VIRTUAL_HOST: &str = "VirtualHost";
}

/// Metric names (Amazon MQ's, `../shared/reference/anchors.md` §A6).
pub mod names {
    // Both engines / container.
    pub const CPU_UTILIZATION: &str = "CpuUtilization";
    pub const SYSTEM_CPU_UTILIZATION: &str = "SystemCpuUtilization";
    pub const MEMORY_USED: &str = "MemoryUsed";
    pub const MEMORY_LIMIT: &str = "MemoryLimit";
    pub const DISK_USED: &str = "DiskUsed";
    pub const DISK_FREE: &str = "DiskFree";
    pub const NETWORK_IN: &str = "NetworkIn";
    pub const NETWORK_OUT: &str = "NetworkOut";
    pub const OOM_KILLS: &str = "OomKills";
    // RabbitMQ.
    pub const QUEUE_COUNT: &str = "QueueCount";
    pub const EXCHANGE_COUNT: &str = "ExchangeCount";
    pub const CONNECTION_COUNT: &str = "ConnectionCount";
    pub const CHANNEL_COUNT: &str = "ChannelCount";
    pub const CONSUMER_COUNT: &str = "ConsumerCount";
    pub const MESSAGE_COUNT: &str = "MessageCount";
    pub const MESSAGE_READY_COUNT: &str = "MessageReadyCount";
    pub const MESSAGE_UNACKNOWLEDGED_COUNT: &str = "MessageUnacknowledgedCount";
    pub const PUBLISH_RATE: &str = "PublishRate";
    pub const CONFIRM_RATE: &str = "ConfirmRate";
    pub const ACK_RATE: &str = "AckRate";
    pub const RABBITMQ_MEM_USED: &str = "RabbitMQMemUsed";
    pub const RABBITMQ_MEM_LIMIT: &str = "RabbitMQMemLimit";
    pub const RABBITMQ_DISK_FREE: &str = "RabbitMQDiskFree";
    pub const RABBITMQ_DISK_FREE_LIMIT: &str = "RabbitMQDiskFreeLimit";
    pub const RABBITMQ_FD_USED: &str = "RabbitMQFdUsed";
    // ActiveMQ.
    pub const HEAP_USAGE: &str = "HeapUsage";
    pub const TOTAL_MESSAGE_COUNT: &str = "TotalMessageCount";
    pub const TOTAL_CONSUMER_COUNT: &str = "TotalConsumerCount";
    pub const TOTAL_PRODUCER_COUNT: &str = "TotalProducerCount";
    pub const CURRENT_CONNECTIONS_COUNT: &str = "CurrentConnectionsCount";
    pub const STORE_PERCENT_USAGE: &str = "StorePercentUsage";
    pub const TEMP_PERCENT_USAGE: &str = "TempPercentUsage";
    pub const QUEUE_SIZE: &str = "QueueSize";
    pub const PRODUCER_COUNT: &str = "ProducerCount";
    pub const ENQUEUE_COUNT: &str = "EnqueueCount";
    pub const DEQUEUE_COUNT: &str = "DequeueCount";
}

/// At most this many per-queue/destination series per sample (the rest are dropped;
/// the broker-level totals still count them).
pub const MAX_DESTINATION_SERIES: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_use_cloudwatch_spelling_and_round_trip() {
        let r = MetricsReport {
            broker_id: "b-1".into(),
            node: 1,
            timestamp_ms: 1,
            samples: vec![
                Sample::new(names::PUBLISH_RATE, 2.5, Unit::CountPerSecond),
                Sample::new(names::QUEUE_SIZE, 3.0, Unit::Count).with(dims::QUEUE, "q"),
            ],
            engine_error: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""unit":"Count/Second""#), "{json}");
        assert!(json.contains(r#""Queue":"q""#), "{json}");
        let back: MetricsReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
