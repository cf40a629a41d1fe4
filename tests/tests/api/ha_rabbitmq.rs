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

use serde_json::{json, Value};
use tokio::sync::watch;

use berth_tests::ha::{
    cluster_request, drain, one_ha_test_at_a_time, publish_until,
    wait_cluster_formed as wait_formed, QUEUE,
};
use berth_tests::{docker_cli as docker, require_engine_image, spawn_app, TestApp};

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
    let _alone = one_ha_test_at_a_time().await;
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
