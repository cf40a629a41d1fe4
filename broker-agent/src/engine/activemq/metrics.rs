//! ActiveMQ's part of `GET /metrics` and its store alarm.
//!
//! - Destinations and broker totals from the `statisticsBrokerPlugin` over STOMP on
//!   loopback (one session as the internal user, see [`super::destinations`]): per
//!   queue (`Queue`) and topic (`Topic`) QueueSize, ConsumerCount, ProducerCount,
//!   EnqueueCount, DequeueCount, at most [`MAX_DESTINATION_SERIES`] series sets; the
//!   totals TotalMessageCount, TotalConsumerCount, TotalProducerCount are summed over
//!   the tenant's destinations (the broker's own figures count the agent's statistics
//!   session and advisory topics), StorePercentUsage and TempPercentUsage are the
//!   broker's (`ActiveMQ.Statistics.Broker`).
//! - HeapUsage from the JVM's performance data file ([`super::hsperf`]).
//! - CurrentConnectionsCount: established TCP connections on the broker's client ports
//!   ([`CLIENT_PORTS`]) from `/proc/net/tcp` and `/proc/net/tcp6`, without those coming
//!   from loopback (the agent's own sessions and the WebSocket bridge's leg to the
//!   broker; the bridge's clients are counted on its own ports).
//! - `ACTIVEMQ_STORE_FULL` ([`store_alarm`]) when StorePercentUsage ≥
//!   [`STORE_FULL_PERCENT`].

use std::collections::BTreeMap;
use std::path::Path;

use agent_contract::metrics::{dims, names, Sample, Unit, MAX_DESTINATION_SERIES};
use agent_contract::ports::activemq as ports;
use agent_contract::{alarm_codes, DestinationKind, EngineAlarm};
use serde_json::Value;

use super::destinations::{destination_from_stats, number};

/// The store counts as full from this percentage on.
pub const STORE_FULL_PERCENT: u64 = 95;
/// Ports whose connections are clients'.
pub const CLIENT_PORTS: [u16; 8] = [
    ports::OPENWIRE,
    ports::OPENWIRE_TLS,
    ports::STOMP,
    ports::STOMPS,
    ports::MQTT,
    ports::MQTTS,
    ports::WS,
    ports::WSS,
];

/// Per-destination samples and the tenant totals, from the plugin's maps of `kind`.
#[derive(Debug, Default)]
pub struct Destinations {
    pub samples: Vec<Sample>,
    pub series: usize,
    pub messages: u64,
    pub consumers: u64,
    pub producers: u64,
}

impl Destinations {
    /// Add the maps of one kind (internal destinations left out).
    pub fn add(&mut self, maps: &[BTreeMap<String, Value>], kind: DestinationKind) {
        for map in maps {
            let Some(d) = destination_from_stats(map, kind) else {
                continue;
            };
            let size = number(map, "size");
            let consumers = number(map, "consumerCount");
            let producers = number(map, "producerCount");
            if d.kind == DestinationKind::Queue {
                self.messages += size;
            }
            self.consumers += consumers;
            self.producers += producers;
            if self.series >= MAX_DESTINATION_SERIES {
                continue;
            }
            self.series += 1;
            let dim = match d.kind {
                DestinationKind::Queue => dims::QUEUE,
                DestinationKind::Topic => dims::TOPIC,
            };
            for (name, v) in [
                (names::QUEUE_SIZE, size),
                (names::CONSUMER_COUNT, consumers),
                (names::PRODUCER_COUNT, producers),
                (names::ENQUEUE_COUNT, number(map, "enqueueCount")),
                (names::DEQUEUE_COUNT, number(map, "dequeueCount")),
            ] {
                self.samples
                    .push(Sample::new(name, v as f64, Unit::Count).with(dim, &d.name));
            }
        }
    }

    /// The per-destination samples and the totals.
    pub fn into_samples(self) -> Vec<Sample> {
        let mut out = self.samples;
        out.push(Sample::new(
            names::TOTAL_MESSAGE_COUNT,
            self.messages as f64,
            Unit::Count,
        ));
        out.push(Sample::new(
            names::TOTAL_CONSUMER_COUNT,
            self.consumers as f64,
            Unit::Count,
        ));
        out.push(Sample::new(
            names::TOTAL_PRODUCER_COUNT,
            self.producers as f64,
            Unit::Count,
        ));
        out
    }
}

/// StorePercentUsage and TempPercentUsage from the broker's map.
pub fn broker_samples(broker: &BTreeMap<String, Value>) -> Vec<Sample> {
    [
        (names::STORE_PERCENT_USAGE, "storePercentUsage"),
        (names::TEMP_PERCENT_USAGE, "tempPercentUsage"),
    ]
    .into_iter()
    .filter(|(_, key)| broker.contains_key(*key))
    .map(|(name, key)| Sample::new(name, number(broker, key) as f64, Unit::Percent))
    .collect()
}

/// The store alarm, from the broker's map.
pub fn store_alarm(broker: &BTreeMap<String, Value>) -> Option<EngineAlarm> {
    let pct = number(broker, "storePercentUsage");
    (broker.contains_key("storePercentUsage") && pct >= STORE_FULL_PERCENT).then(|| EngineAlarm {
        code: alarm_codes::ACTIVEMQ_STORE_FULL.into(),
        message: format!(
            "ActiveMQ's message store is {pct} % full ({} of {} bytes); producers of persistent messages are blocked",
            number(broker, "storeUsage"),
            number(broker, "storeLimit")
        ),
    })
}

/// Established connections on `ports` from anywhere but loopback, in the contents of
/// `/proc/net/tcp` or `/proc/net/tcp6` (unreadable or unparseable tables count 0).
pub fn count_connections(tables: &[&str], ports: &[u16]) -> u64 {
    use procfs_core::net::{TcpNetEntries, TcpState};
    use procfs_core::FromReadSI;
    let info = procfs_core::ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    tables
        .iter()
        .filter_map(|t| TcpNetEntries::from_read(t.as_bytes(), &info).ok())
        .flat_map(|e| e.0)
        .filter(|e| {
            e.state == TcpState::Established
                && ports.contains(&e.local_address.port())
                && !is_loopback(e.remote_address.ip())
        })
        .count() as u64
}

fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// CurrentConnectionsCount from the live tables under `proc_net` (`/proc/net`).
pub fn current_connections(proc_net: &Path) -> Sample {
    let tcp = std::fs::read_to_string(proc_net.join("tcp")).unwrap_or_default();
    let tcp6 = std::fs::read_to_string(proc_net.join("tcp6")).unwrap_or_default();
    let n = count_connections(&[&tcp, &tcp6], &CLIENT_PORTS);
    Sample::new(names::CURRENT_CONNECTIONS_COUNT, n as f64, Unit::Count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::activemq::destinations::parse_xstream_map;

    fn map(json: &str) -> BTreeMap<String, Value> {
        parse_xstream_map(json.as_bytes()).unwrap()
    }

    fn find<'a>(s: &'a [Sample], name: &str, dim: Option<(&str, &str)>) -> Option<&'a Sample> {
        s.iter().find(|x| {
            x.name == name
                && match dim {
                    Some((k, v)) => x.dimensions.get(k).map(String::as_str) == Some(v),
                    None => x.dimensions.is_empty(),
                }
        })
    }

    #[test]
    fn destinations_and_totals() {
        let orders = map(
            r#"{"map":{"entry":[{"string":["destinationName","queue://orders"]},
            {"string":"size","long":12},{"string":"consumerCount","long":0},{"string":"producerCount","long":1},
            {"string":"enqueueCount","long":12},{"string":"dequeueCount","long":0}]}}"#,
        );
        let advisory = map(
            r#"{"map":{"entry":[{"string":["destinationName","topic://ActiveMQ.Advisory.Queue"]},
            {"string":"consumerCount","long":5}]}}"#,
        );
        let news = map(
            r#"{"map":{"entry":[{"string":["destinationName","topic://news"]},
            {"string":"consumerCount","long":2},{"string":"enqueueCount","long":7}]}}"#,
        );
        let mut d = Destinations::default();
        d.add(&[orders], DestinationKind::Queue);
        d.add(&[advisory, news], DestinationKind::Topic);
        let s = d.into_samples();
        let q = Some((dims::QUEUE, "orders"));
        assert_eq!(find(&s, names::QUEUE_SIZE, q).unwrap().value, 12.0);
        assert_eq!(find(&s, names::PRODUCER_COUNT, q).unwrap().value, 1.0);
        assert_eq!(find(&s, names::ENQUEUE_COUNT, q).unwrap().value, 12.0);
        let t = Some((dims::TOPIC, "news"));
        assert_eq!(find(&s, names::CONSUMER_COUNT, t).unwrap().value, 2.0);
        assert!(find(
            &s,
            names::CONSUMER_COUNT,
            Some((dims::TOPIC, "ActiveMQ.Advisory.Queue"))
        )
        .is_none());
        assert_eq!(
            find(&s, names::TOTAL_MESSAGE_COUNT, None).unwrap().value,
            12.0
        );
        assert_eq!(
            find(&s, names::TOTAL_CONSUMER_COUNT, None).unwrap().value,
            2.0
        );
        assert_eq!(
            find(&s, names::TOTAL_PRODUCER_COUNT, None).unwrap().value,
            1.0
        );
    }

    #[test]
    fn series_are_capped_but_totals_count_everything() {
        let maps: Vec<_> = (0..MAX_DESTINATION_SERIES + 5)
            .map(|i| {
                map(&format!(
                    r#"{{"map":{{"entry":[{{"string":["destinationName","queue://q{i}"]}},{{"string":"size","long":1}}]}}}}"#
                ))
            })
            .collect();
        let mut d = Destinations::default();
        d.add(&maps, DestinationKind::Queue);
        let s = d.into_samples();
        assert_eq!(
            s.iter().filter(|x| x.name == names::QUEUE_SIZE).count(),
            MAX_DESTINATION_SERIES
        );
        assert_eq!(
            find(&s, names::TOTAL_MESSAGE_COUNT, None).unwrap().value,
            (MAX_DESTINATION_SERIES + 5) as f64
        );
    }

    #[test]
    fn broker_usage_and_the_store_alarm() {
        let broker = map(
            r#"{"map":{"entry":[{"string":"storePercentUsage","int":96},{"string":"tempPercentUsage","int":0},
            {"string":"storeUsage","long":960},{"string":"storeLimit","long":1000}]}}"#,
        );
        let s = broker_samples(&broker);
        assert_eq!(
            find(&s, names::STORE_PERCENT_USAGE, None).unwrap().value,
            96.0
        );
        assert_eq!(
            find(&s, names::TEMP_PERCENT_USAGE, None).unwrap().value,
            0.0
        );
        let alarm = store_alarm(&broker).unwrap();
        assert_eq!(alarm.code, alarm_codes::ACTIVEMQ_STORE_FULL);
        assert!(
            alarm.message.contains("96 % full (960 of 1000 bytes)"),
            "{}",
            alarm.message
        );
        let fine = map(r#"{"map":{"entry":[{"string":"storePercentUsage","int":3}]}}"#);
        assert!(store_alarm(&fine).is_none());
        assert!(store_alarm(&BTreeMap::new()).is_none());
    }

    #[test]
    fn counts_established_client_connections_not_from_loopback() {
        // 61616 = 0xF0B0, 61613 = 0xF0AD; 172.17.0.2 = 020011AC (little-endian hex)
        let tcp = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:F0B0 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 1 1 0000000000000000 100 0 0 10 0
   1: 020011AC:F0B0 010011AC:C350 01 00000000:00000000 00:00000000 00000000   100        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:F0AD 0100007F:D431 01 00000000:00000000 00:00000000 00000000   100        0 3 1 0000000000000000 20 4 30 10 -1
   3: 020011AC:1F90 010011AC:C351 01 00000000:00000000 00:00000000 00000000   100        0 4 1 0000000000000000 20 4 30 10 -1
   4: 020011AC:F0AD 010011AC:C352 06 00000000:00000000 00:00000000 00000000   100        0 0 1 0000000000000000 20 4 30 10 -1
";
        let tcp6 = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF0000020011AC:F0B0 0000000000000000FFFF0000010011AC:C353 01 00000000:00000000 00:00000000 00000000   100        0 5 1 0000000000000000 20 4 30 10 -1
";
        assert_eq!(count_connections(&[tcp, tcp6], &CLIENT_PORTS), 2);
        assert_eq!(count_connections(&[tcp], &CLIENT_PORTS), 1);
        assert_eq!(count_connections(&["garbage"], &CLIENT_PORTS), 0);
        let here = current_connections(Path::new("/proc/net"));
        assert_eq!(here.name, names::CURRENT_CONNECTIONS_COUNT);
    }
}
