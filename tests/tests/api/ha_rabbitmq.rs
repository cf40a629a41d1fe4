//! CLUSTER_MULTI_AZ RabbitMQ on real Docker, under load from a real client over TLS:
//! three nodes in three zones formed by classic peer discovery behind one load-balanced
//! endpoint (HAProxy), quorum queues by default. A lapin publisher of confirmed
//! persistent messages with sequence numbers publishes through the broker's one
//! `amqps://` endpoint (reconnecting through it on any error) while
//! - one node is killed (Berth brings it back, it rejoins);
//! - one node is cut off its network (then reconnected);
//! - a rolling reboot runs (one node at a time, the cluster keeps quorum);
//!
//! and a consumer afterwards finds every confirmed message (duplicates only from
//! republishing an unconfirmed one). Prints formation time and confirm gaps.

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

use berth_tests::{require_engine_image, spawn_app, TestApp};

use crate::clients::authority;

const USER: &str = "cluster-admin";
const PASSWORD: &str = "cl-Adm1n-Passw0rd";
const QUEUE: &str = "ha-seq";

fn cluster_request(name: &str) -> Value {
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

async fn amqps_connect(url: &str, ca_pem: &str) -> lapin::Result<Connection> {
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
struct Published {
    confirmed: BTreeSet<u64>,
    max_gap: Duration,
    reconnects: u32,
}

/// Publishes `seq` = 1, 2, … (persistent, one confirm at a time) until `stop` turns
/// true; on any error reconnects through the same endpoint and republishes the
/// unconfirmed message.
async fn publish_until(url: String, ca_pem: String, mut stop: watch::Receiver<bool>) -> Published {
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
async fn drain(url: &str, ca_pem: &str) -> (BTreeSet<u64>, usize) {
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

async fn docker(args: &[&str]) -> String {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits until the cluster is RUNNING with every node a member that sees all three.
async fn wait_formed(app: &TestApp, id: &str, timeout: Duration) -> Value {
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

/// Runs the publisher through `fault`, then checks nothing confirmed is missing.
async fn under_load<F, Fut>(app: &TestApp, url: &str, label: &str, fault: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let ca = app.ca_pem();
    let (stop_tx, stop_rx) = watch::channel(false);
    let publisher = tokio::spawn(publish_until(url.to_owned(), ca.clone(), stop_rx));
    tokio::time::sleep(Duration::from_secs(2)).await; // load before the fault
    fault().await;
    tokio::time::sleep(Duration::from_secs(3)).await; // load after it
    stop_tx.send(true).unwrap();
    let published = publisher.await.unwrap();
    let (seen, total) = drain(url, &ca).await;
    let missing: Vec<&u64> = published.confirmed.difference(&seen).take(10).collect();
    assert!(
        published.confirmed.len() > 50,
        "{label}: the publisher hardly published: {published:?}"
    );
    assert!(
        missing.is_empty(),
        "{label}: confirmed but lost: {missing:?} …"
    );
    println!(
        "{label}: {} confirmed, 0 lost, {} duplicates, {} reconnects, longest confirm gap {} ms",
        published.confirmed.len(),
        total - seen.len(),
        published.reconnects,
        published.max_gap.as_millis()
    );
}

#[tokio::test]
async fn a_three_node_cluster_behind_one_endpoint_loses_no_confirmed_message() {
    let app = spawn_app().await;
    require_engine_image(&app.docker, "berth/rabbitmq:4.3").await;
    let created = Instant::now();
    let id = app.create_broker(&cluster_request("ha-cluster")).await;
    let v = wait_formed(&app, &id, Duration::from_secs(240)).await;
    println!(
        "cluster {id}: RUNNING with 3 members {:.2} s after CreateBroker",
        created.elapsed().as_secs_f64()
    );
    let instances = v["brokerInstances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "one load-balanced instance: {v}");
    let url = instances[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|e| e.starts_with("amqps://"))
        .expect("amqps endpoint")
        .to_owned();
    let zones: BTreeSet<&str> = v["berthNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["zone"].as_str().unwrap())
        .collect();
    assert_eq!(zones.len(), 3, "three zones: {v}");

    // (c) One node is killed.
    let victim = format!("berth-{id}-1");
    under_load(&app, &url, "kill of a cluster node", || async {
        docker(&["kill", &victim]).await;
    })
    .await;
    let back = Instant::now();
    wait_formed(&app, &id, Duration::from_secs(120)).await;
    println!(
        "killed node rejoined {:.2} s later",
        back.elapsed().as_secs_f64()
    );

    // Quorum is the default queue type.
    let types = docker(&[
        "exec",
        &format!("berth-{id}-0"),
        "rabbitmqctl",
        "-q",
        "list_queues",
        "name",
        "type",
    ])
    .await;
    assert!(
        types
            .lines()
            .any(|l| l.starts_with(QUEUE) && l.contains("quorum")),
        "{QUEUE} should be a quorum queue: {types}"
    );

    // (d) One node is cut off its network, then reconnected.
    let network = format!("berth-{id}");
    let cut = format!("berth-{id}-2");
    under_load(
        &app,
        &url,
        "network partition of a cluster node",
        || async {
            docker(&["network", "disconnect", &network, &cut]).await;
            tokio::time::sleep(Duration::from_secs(3)).await; // partitioned under load
            docker(&["network", "connect", "--alias", &cut, &network, &cut]).await;
        },
    )
    .await;
    wait_formed(&app, &id, Duration::from_secs(180)).await;

    // (e) A rolling reboot under load.
    let roll = Instant::now();
    under_load(&app, &url, "rolling reboot", || async {
        let resp = app
            .post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
            .await;
        assert_eq!(resp.status(), 200);
        app.wait_for_state(&id, "RUNNING", Duration::from_secs(300))
            .await;
    })
    .await;
    println!(
        "rolling reboot: RUNNING again {:.2} s after RebootBroker",
        roll.elapsed().as_secs_f64()
    );
    wait_formed(&app, &id, Duration::from_secs(120)).await;

    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(120)).await;
    assert_eq!(app.docker_objects(&id).await, Vec::<String>::new());
}
