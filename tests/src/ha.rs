//! Clients and waits for highly available brokers, shared by the HA tests and the HA
//! benchmark: an ActiveMQ pair's request, roles and endpoints, a JMS producer/consumer
//! pair with sequence numbers ([`JmsLoad`]), and for a RabbitMQ cluster a confirmed
//! lapin publisher ([`publish_until`]) and a draining consumer ([`drain`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{jms, wait_until, JmsOutcome, TestApp};

/// The admin user of the pairs and clusters these helpers create.
pub const USER: &str = "ha-admin";
pub const PASSWORD: &str = "ha-Adm1n-Passw0rd";
/// The queue the cluster publisher and consumer use.
pub const QUEUE: &str = "ha-seq";

/// Serialises the fault-under-load tests of highly available brokers within one test
/// binary: a pair's takeover and a cluster's formation are both CPU-bound on a small
/// host, and their timing assertions (a failover within seconds, a hung active replaced
/// within seconds) are about Berth, not about two such tests sharing two cores. Other
/// tests still run beside them. Hold the guard for the whole test.
pub async fn one_ha_test_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// `host:port` of an endpoint URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

pub fn pair_request(name: &str) -> Value {
    json!({
        "brokerName": name,
        "engineType": "ACTIVEMQ",
        "engineVersion": "5.17",
        "deploymentMode": "ACTIVE_STANDBY_MULTI_AZ",
        "hostInstanceType": "mq.m5.large",
        "storageType": "EFS",
        "publiclyAccessible": false,
        "users": [{"username": USER, "password": PASSWORD}],
    })
}

/// Each node's role as DescribeBroker says (`ACTIVE`, `STANDBY`, `DOWN`).
pub fn roles(describe: &Value) -> Vec<String> {
    describe["berthNodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no berthNodes in {describe}"))
        .iter()
        .map(|n| n["role"].as_str().unwrap().to_owned())
        .collect()
}

/// The endpoints with `scheme` of every broker instance, in instance order.
pub fn instance_endpoints(describe: &Value, scheme: &str) -> Vec<String> {
    let prefix = format!("{scheme}://");
    describe["brokerInstances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .find(|e| e.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no {prefix} endpoint in {i}"))
                .to_owned()
        })
        .collect()
}

/// Waits until the pair is RUNNING with one active and one standby; the active's index.
pub async fn wait_pair_formed(app: &TestApp, id: &str, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, v) = app.describe(id).await;
        let r = roles(&v);
        let active = r.iter().position(|x| x == "ACTIVE");
        if status == 200
            && v["brokerState"] == "RUNNING"
            && r.iter().filter(|x| *x == "STANDBY").count() == 1
        {
            if let Some(a) = active {
                return a;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pair {id} not formed (one ACTIVE, one STANDBY) within {timeout:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A JMS producer and consumer on one queue (through a failover URL), as the
/// pair's admin user.
pub struct JmsLoad {
    producer: tokio::task::JoinHandle<JmsOutcome>,
    consumer: tokio::task::JoinHandle<JmsOutcome>,
    url: String,
    ca: String,
    queue: String,
    _ready: tempfile::TempDir,
}

impl JmsLoad {
    /// Starts both clients and returns once the consumer is subscribed and the
    /// producer's first message is confirmed, plus `warmup` of load.
    pub async fn start(
        url: &str,
        ca: &str,
        queue: &str,
        duration: Duration,
        warmup: Duration,
    ) -> JmsLoad {
        let ready = tempfile::tempdir().unwrap();
        let flag = |who: &str| ready.path().join(who).display().to_string();
        let (p_flag, c_flag) = (flag("producer"), flag("consumer"));
        let run = |mode: &'static str, args: Vec<String>| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                jms(&url, USER, PASSWORD, mode, &args, Duration::from_secs(120)).await
            })
        };
        let secs = duration.as_secs().to_string();
        let load = JmsLoad {
            producer: run(
                "produce",
                vec![
                    "--dest".into(),
                    queue.into(),
                    "--duration".into(),
                    secs,
                    "--gap-ms".into(),
                    "5".into(),
                    "--ca".into(),
                    ca.into(),
                    "--ready-file".into(),
                    p_flag.clone(),
                ],
            ),
            consumer: run(
                "consume",
                vec![
                    "--dest".into(),
                    queue.into(),
                    "--idle".into(),
                    "12".into(),
                    "--ca".into(),
                    ca.into(),
                    "--ready-file".into(),
                    c_flag.clone(),
                ],
            ),
            url: url.to_owned(),
            ca: ca.to_owned(),
            queue: queue.to_owned(),
            _ready: ready,
        };
        wait_until(Duration::from_secs(60), || async {
            std::path::Path::new(&p_flag).exists() && std::path::Path::new(&c_flag).exists()
        })
        .await
        .expect("the JMS clients never started");
        tokio::time::sleep(warmup).await; // load before the fault
        load
    }

    /// Asserts that every acknowledged message reached the consumer; the producer's gap.
    pub async fn check(self, label: &str) -> i64 {
        let p = self.producer.await.unwrap();
        let c = self.consumer.await.unwrap();
        assert!(p.ok, "{label}: producer failed: {p:?}");
        assert!(c.ok, "{label}: consumer failed: {c:?}");
        let acked = p.int("acked");
        assert!(acked > 100, "{label}: the producer hardly produced: {p:?}");
        let mut contiguous = c.int("contiguous");
        if contiguous < acked {
            // The consumer gives up after its idle window; a failover that ends after
            // the producer's last send leaves the tail in the queue. Drain it: exactly
            // contiguous+1..acked must be there, anything else is a loss.
            let after = contiguous.to_string();
            let args = [
                "--dest",
                &self.queue,
                "--idle",
                "10",
                "--ca",
                &self.ca,
                "--after",
                &after,
            ];
            let tail = jms(
                &self.url,
                USER,
                PASSWORD,
                "consume",
                &args,
                Duration::from_secs(90),
            )
            .await;
            assert!(tail.ok, "{label}: draining the tail failed: {tail:?}");
            println!(
                "{label}: the consumer stopped at {contiguous}; the tail drain found up to {}",
                tail.int("contiguous")
            );
            contiguous = tail.int("contiguous");
        }
        assert!(
            contiguous >= acked,
            "{label}: confirmed messages lost: acked 1..{acked}, consumers saw 1..{contiguous} contiguous ({:?})",
            c.result
        );
        let gap = p.int("max_gap_ms");
        println!(
            "{label}: {acked} confirmed, 0 lost, {} redelivered, producer gap {gap} ms (gaps > 250 ms: {}), consumer gap {} ms",
            c.int("duplicates"),
            p.result["gaps"],
            c.int("max_gap_ms")
        );
        gap
    }
}

pub fn cluster_request(name: &str) -> Value {
    json!({
        "brokerName": name,
        "engineType": "RABBITMQ",
        "engineVersion": "4.3",
        "deploymentMode": "CLUSTER_MULTI_AZ",
        "hostInstanceType": "mq.m7g.large",
        "publiclyAccessible": false,
        "users": [{"username": USER, "password": PASSWORD}],
    })
}

pub async fn amqps_connect(url: &str, ca_pem: &str) -> lapin::Result<Connection> {
    let uri = format!(
        "amqps://{USER}:{PASSWORD}@{}/%2f?heartbeat=5",
        authority(url)
    );
    let connect = Connection::connect_with_config(
        &uri,
        ConnectionProperties::default(),
        OwnedTLSConfig {
            identity: None,
            cert_chain: Some(ca_pem.to_owned()),
        },
        lapin::runtime::default_runtime().unwrap(),
    );
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(r) => r,
        Err(_) => Err(lapin::Error::from(
            lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Error),
        )),
    }
}

/// What the publisher did: every sequence number confirmed, and the longest time
/// between two confirms.
#[derive(Debug, Default)]
pub struct Published {
    pub confirmed: BTreeSet<u64>,
    pub max_gap: Duration,
    pub reconnects: u32,
}

/// Publishes `seq` = 1, 2, … (persistent, one confirm at a time) until `stop` turns
/// true; on any error reconnects through the same endpoint and republishes the
/// unconfirmed message.
pub async fn publish_until(
    url: String,
    ca_pem: String,
    mut stop: watch::Receiver<bool>,
) -> Published {
    let mut out = Published::default();
    let mut seq = 1u64;
    let mut last = Instant::now();
    'connect: while !*stop.borrow() {
        let Ok(conn) = amqps_connect(&url, &ca_pem).await else {
            out.reconnects += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(ch) = conn.create_channel().await else {
            continue;
        };
        let declared = ch
            .queue_declare(
                QUEUE.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        if declared.is_err()
            || ch
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .is_err()
        {
            continue;
        }
        while !*stop.borrow() {
            let confirm = async {
                ch.basic_publish(
                    "".into(),
                    QUEUE.into(),
                    BasicPublishOptions::default(),
                    seq.to_string().as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?
                .await
            };
            match tokio::time::timeout(Duration::from_secs(5), confirm).await {
                Ok(Ok(c)) if c.is_ack() => {
                    out.confirmed.insert(seq);
                    seq += 1;
                    out.max_gap = out.max_gap.max(last.elapsed());
                    last = Instant::now();
                }
                _ => {
                    out.reconnects += 1;
                    let _ = conn.close(200, "reconnect".into()).await;
                    continue 'connect;
                }
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
        let _ = conn.close(200, "bye".into()).await;
    }
    out
}

/// Every distinct sequence number in the queue (consumed and acked until idle 3 s).
pub async fn drain(url: &str, ca_pem: &str) -> (BTreeSet<u64>, usize) {
    let conn = amqps_connect(url, ca_pem).await.expect("consumer connect");
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(500, Default::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            QUEUE.into(),
            "drain".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (mut seen, mut total) = (BTreeSet::new(), 0usize);
    use futures_util::StreamExt;
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(3), consumer.next()).await
    {
        total += 1;
        if let Ok(n) = std::str::from_utf8(&d.data).unwrap_or("").parse::<u64>() {
            seen.insert(n);
        }
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _ = conn.close(200, "bye".into()).await;
    (seen, total)
}

/// Waits until the cluster is RUNNING with every node a member that sees all three.
pub async fn wait_cluster_formed(app: &TestApp, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = app.describe(id).await.1;
        let nodes = v["berthNodes"].as_array().cloned().unwrap_or_default();
        let all = nodes.len() == 3
            && nodes.iter().all(|n| {
                n["role"] == "CLUSTER_NODE"
                    && n["clusterRunning"].as_array().is_some_and(|r| r.len() == 3)
            });
        if v["brokerState"] == "RUNNING" && all {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "cluster {id} not formed within {timeout:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
