//! ACTIVE_STANDBY_MULTI_AZ ActiveMQ on real Docker, under load from real clients over
//! TLS: two brokers on one shared volume, DescribeBroker lists both instances and says
//! which is active; a JMS client with `failover:(ssl://a,ssl://b)` (exactly what Amazon
//! MQ tells its users) produces confirmed persistent messages with sequence numbers
//! while a consumer checks them, and
//! - the active container is killed: the standby takes over, Berth brings the dead node
//!   back as the new standby;
//! - the active container is paused (hung: it keeps the store's lock, so ActiveMQ alone
//!   never fails over): Berth notices its agent is silent, kills it, the standby takes
//!   over;
//! - a STOMP client (reconnecting over the two `stomp+ssl` endpoints) produces through a
//!   kill.
//!
//! Every round asserts 0 confirmed messages lost (redeliveries allowed) and prints the
//! client-observed gap and Berth's takeover time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use berth_tests::ha::{
    instance_endpoints, one_ha_test_at_a_time, pair_request, roles,
    wait_pair_formed as wait_formed, JmsLoad, PASSWORD, USER,
};
use berth_tests::{
    docker_cli as docker, jms, require_activemq_image, spawn_app, wait_until, TestApp,
};

use crate::clients::authority;
use crate::clients::io::client_config;
use crate::clients::stomp::{frame, take_frame};

/// How long each load round produces; the fault comes `FAULT_AT` into it.
const ROUND: Duration = Duration::from_secs(14);
/// Load before each fault, once the clients run.
const FAULT_AT: Duration = Duration::from_secs(3);

/// Waits until node `node` is ACTIVE; how long that took from `since`.
async fn wait_active(app: &TestApp, id: &str, node: usize, since: Instant) -> Duration {
    wait_until(Duration::from_secs(30), || async {
        roles(&app.describe(id).await.1)[node] == "ACTIVE"
    })
    .await
    .unwrap_or_else(|| panic!("node {node} of {id} never became ACTIVE"));
    since.elapsed()
}

/// Each node's role and engine state, for the log.
async fn nodes_now(app: &TestApp, id: &str) -> String {
    let v = app.describe(id).await.1;
    v["berthNodes"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .map(|n| format!("{}:{}/{}", n["index"], n["role"], n["engineState"]))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A STOMP producer that fails over by itself: persistent SENDs with a receipt each,
/// header `seq`; on any error (or the standby's accept-then-close) it reconnects to
/// the next endpoint and resends the unconfirmed message. Returns (confirmed, max gap).
async fn stomp_failover_produce(
    endpoints: &[String],
    tls: Arc<ClientConfig>,
    queue: &str,
    duration: Duration,
) -> (u64, Duration) {
    let destination = format!("/queue/{queue}");
    let started = Instant::now();
    let (mut seq, mut last_ok, mut max_gap) = (0u64, Instant::now(), Duration::ZERO);
    let mut target = 0usize;
    'connect: while started.elapsed() < duration {
        let url = &endpoints[target % endpoints.len()];
        target += 1;
        let attempt = async {
            let hostport = authority(url);
            let tcp = tokio::net::TcpStream::connect(hostport).await?;
            let name = rustls::pki_types::ServerName::try_from(
                hostport
                    .rsplit_once(':')
                    .map_or(hostport, |(h, _)| h)
                    .to_owned(),
            )
            .map_err(std::io::Error::other)?;
            let mut s = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await?;
            s.write_all(&frame(
                "CONNECT",
                &[
                    ("accept-version", "1.2"),
                    ("host", "/"),
                    ("login", USER),
                    ("passcode", PASSWORD),
                    ("heart-beat", "0,0"),
                ],
                "",
            ))
            .await?;
            Ok::<_, std::io::Error>(s)
        };
        let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), attempt).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut buf = Vec::new();
        if !expect_frame(&mut s, &mut buf, "CONNECTED", None).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        while started.elapsed() < duration {
            let next = (seq + 1).to_string();
            let receipt = format!("r-{next}");
            let sent = s
                .write_all(&frame(
                    "SEND",
                    &[
                        ("destination", &destination),
                        ("persistent", "true"),
                        ("seq", &next),
                        ("receipt", &receipt),
                    ],
                    &format!("stomp message {next}"),
                ))
                .await;
            if sent.is_err() || !expect_frame(&mut s, &mut buf, "RECEIPT", Some(&receipt)).await {
                continue 'connect;
            }
            seq += 1;
            max_gap = max_gap.max(last_ok.elapsed());
            last_ok = Instant::now();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    (seq, max_gap)
}

/// The next STOMP frame within 3 s is `want` (with receipt-id `receipt`, if given).
async fn expect_frame(
    s: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    want: &str,
    receipt: Option<&str>,
) -> bool {
    let read = async {
        loop {
            if let Some(f) = take_frame(buf) {
                return Some(f);
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), read).await {
        Ok(Some(f)) if f.command == want => {
            receipt.is_none_or(|r| f.header("receipt-id") == Some(r))
        }
        _ => false,
    }
}

#[tokio::test]
async fn an_active_standby_pair_loses_no_confirmed_message_when_the_active_dies_or_hangs() {
    let _alone = one_ha_test_at_a_time().await;
    let app = spawn_app().await;
    require_activemq_image(&app.docker).await;
    let created = Instant::now();
    let id = app.create_broker(&pair_request("ha-pair")).await;
    let mut active = wait_formed(&app, &id, Duration::from_secs(180)).await;
    println!(
        "pair {id}: RUNNING with one active and one standby {:.2} s after CreateBroker",
        created.elapsed().as_secs_f64()
    );
    let v = app.describe(&id).await.1;
    assert_eq!(v["brokerInstances"].as_array().unwrap().len(), 2, "{v}");
    let ssl = instance_endpoints(&v, "ssl");
    assert_ne!(ssl[0], ssl[1]);
    let url = format!(
        "failover:({})?randomize=false&initialReconnectDelay=100&maxReconnectDelay=200&useExponentialBackOff=false",
        ssl.join(",")
    );
    let ca = app.settings.data_dir.join("ca.pem").display().to_string();

    // (a) The active is killed.
    let load = JmsLoad::start(&url, &ca, "ha.kill", ROUND, FAULT_AT).await;
    let fault = Instant::now();
    docker(&["kill", &format!("berth-{id}-{active}")]).await;
    let standby = 1 - active;
    let took = wait_active(&app, &id, standby, fault).await;
    let gap = load.check("kill of the active (JMS failover)").await;
    println!(
        "kill: Berth reported node {standby} ACTIVE {:.2} s after the kill",
        took.as_secs_f64()
    );
    assert!(gap < 10_000, "the JMS producer stalled {gap} ms");
    // The killed node comes back as the new standby.
    let back = Instant::now();
    active = wait_formed(&app, &id, Duration::from_secs(60)).await;
    assert_eq!(active, standby);
    println!(
        "kill: node {} back as STANDBY {:.2} s later",
        1 - active,
        back.elapsed().as_secs_f64()
    );

    // (b) The active hangs (paused container: it keeps the lock).
    let load = JmsLoad::start(&url, &ca, "ha.pause", ROUND, FAULT_AT).await;
    let fault = Instant::now();
    let hung = format!("berth-{id}-{active}");
    println!("pause: before {}", nodes_now(&app, &id).await);
    docker(&["pause", &hung]).await;
    let standby = 1 - active;
    let took = wait_active(&app, &id, standby, fault).await;
    println!("pause: after {}", nodes_now(&app, &id).await);
    let gap = load.check("pause of the active (JMS failover)").await;
    println!(
        "pause: Berth killed the hung active, node {standby} ACTIVE {:.2} s after the pause (goal ≤ 5 s)",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(15),
        "a hung active must be replaced within seconds, took {took:?}"
    );
    assert!(gap < 15_000, "the JMS producer stalled {gap} ms");
    active = wait_formed(&app, &id, Duration::from_secs(60)).await;
    assert_eq!(active, standby);

    // (c) A STOMP client through a kill.
    let stomps = instance_endpoints(&app.describe(&id).await.1, "stomp+ssl");
    let tls = client_config(&app.ca_pem());
    let producer = {
        let stomps = stomps.clone();
        tokio::spawn(async move { stomp_failover_produce(&stomps, tls, "ha.stomp", ROUND).await })
    };
    tokio::time::sleep(FAULT_AT).await;
    docker(&["kill", &format!("berth-{id}-{active}")]).await;
    let (confirmed, stomp_gap) = producer.await.unwrap();
    assert!(
        confirmed > 100,
        "STOMP producer hardly produced: {confirmed}"
    );
    let drained = jms(
        &url,
        USER,
        PASSWORD,
        "consume",
        &["--dest", "ha.stomp", "--idle", "5", "--ca", &ca],
        Duration::from_secs(120),
    )
    .await;
    assert!(drained.ok, "{drained:?}");
    assert!(
        drained.int("contiguous") as u64 >= confirmed,
        "STOMP: confirmed 1..{confirmed}, stored 1..{} ({:?})",
        drained.int("contiguous"),
        drained.result
    );
    println!(
        "kill of the active (STOMP): {confirmed} confirmed, 0 lost, producer gap {} ms ({} via {})",
        stomp_gap.as_millis(),
        stomps.len(),
        authority(&stomps[0])
    );
    wait_formed(&app, &id, Duration::from_secs(60)).await;

    // (d) A rolling reboot, then a rolling resize, under load: one node at a time, the
    // pair fails over once per roll.
    for (label, resize) in [
        ("rolling reboot", None),
        ("rolling resize", Some("mq.m5.xlarge")),
    ] {
        if let Some(t) = resize {
            let resp = app
                .put_json(
                    &format!("/v1/brokers/{id}"),
                    &json!({"hostInstanceType": t}),
                )
                .await;
            assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        }
        let queue = format!("ha.{}", label.replace(' ', "-"));
        let load = JmsLoad::start(&url, &ca, &queue, Duration::from_secs(30), FAULT_AT).await;
        let roll = Instant::now();
        let resp = app
            .post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
            .await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        // A second reboot while the roll runs is refused.
        let again = app
            .post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
            .await;
        assert_eq!(again.status(), 400, "a second roll must be refused");
        app.wait_for_state(&id, "RUNNING", Duration::from_secs(180))
            .await;
        let took = roll.elapsed();
        wait_formed(&app, &id, Duration::from_secs(60)).await;
        let gap = load.check(label).await;
        println!(
            "{label}: RUNNING again {:.2} s after RebootBroker",
            took.as_secs_f64()
        );
        assert!(gap < 15_000, "{label}: the producer stalled {gap} ms");
        if let Some(t) = resize {
            let v = app.describe(&id).await.1;
            assert_eq!(v["hostInstanceType"], t, "{v}");
            for node in 0..2 {
                let c = app
                    .docker
                    .inspect_container(&format!("berth-{id}-{node}"), None)
                    .await
                    .unwrap();
                let memory = c.host_config.unwrap().memory.unwrap();
                assert!(memory > 8 << 30, "node {node} not resized: {memory}");
            }
        }
    }

    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(90)).await;
    assert_eq!(app.docker_objects(&id).await, Vec::<String>::new());
}

/// Builds `image` anew from itself plus one Dockerfile instruction, under the same tag
/// (a newer build of the same engine version); its id.
async fn rebuild(image: &str, instruction: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {image}\n{instruction}\n"),
    )
    .unwrap();
    docker(&[
        "build",
        "-q",
        "-t",
        image,
        &dir.path().display().to_string(),
    ])
    .await
}

/// The image id a container was created from.
async fn container_image(app: &TestApp, name: &str) -> String {
    app.docker
        .inspect_container(name, None)
        .await
        .unwrap()
        .image
        .unwrap()
}

#[tokio::test]
async fn auto_minor_version_upgrade_rolls_a_pair_onto_a_newer_build_in_its_window() {
    let _alone = one_ha_test_at_a_time().await;
    // Images under a private prefix, so a "newer build" of 5.17 here does not replace
    // the tag other tests run.
    let prefix = format!(
        "berthtest-amvu-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let app = berth_tests::spawn_app_with(|s| s.image_prefix = Some(prefix.clone())).await;
    require_activemq_image(&app.docker).await;
    let image = format!("{prefix}/activemq:5.17");
    docker(&["tag", "berth/activemq:5.17", &image]).await;

    let mut req = pair_request("auto-minor");
    req["autoMinorVersionUpgrade"] = json!(true);
    let id = app.create_broker(&req).await;
    wait_formed(&app, &id, Duration::from_secs(180)).await;
    let old = app.docker.inspect_image(&image).await.unwrap().id.unwrap();
    for node in 0..2 {
        assert_eq!(
            container_image(&app, &format!("berth-{id}-{node}")).await,
            old
        );
    }
    let v = app.describe(&id).await.1;
    let url = format!(
        "failover:({})?randomize=false&initialReconnectDelay=100&maxReconnectDelay=200&useExponentialBackOff=false",
        instance_endpoints(&v, "ssl").join(",")
    );
    let ca = app.settings.data_dir.join("ca.pem").display().to_string();

    // A newer build of the same engine version appears (what `make images` does when
    // Debian ships a patch release or Berth a new agent).
    rebuild(&image, "LABEL berth.test.build=\"newer\"").await;
    let new = app.docker.inspect_image(&image).await.unwrap().id.unwrap();
    assert_ne!(old, new);

    // Its maintenance window opens (now, in UTC): Berth rolls it, under load.
    let load = JmsLoad::start(
        &url,
        &ca,
        "ha.auto-minor",
        Duration::from_secs(40),
        FAULT_AT,
    )
    .await;
    let opened = chrono::Utc::now() - chrono::Duration::minutes(1);
    let window = json!({"maintenanceWindowStartTime": {
        "dayOfWeek": opened.format("%A").to_string().to_uppercase(),
        "timeOfDay": opened.format("%H:%M").to_string(),
        "timeZone": "UTC",
    }});
    let roll = Instant::now();
    let resp = app.put_json(&format!("/v1/brokers/{id}"), &window).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    app.wait_for_state(&id, "REBOOT_IN_PROGRESS", Duration::from_secs(30))
        .await;
    app.wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    wait_formed(&app, &id, Duration::from_secs(60)).await;
    let took = roll.elapsed();
    for node in 0..2 {
        assert_eq!(
            container_image(&app, &format!("berth-{id}-{node}")).await,
            new,
            "node {node} still on the old build"
        );
    }
    let gap = load.check("automatic minor upgrade (rolling)").await;
    println!(
        "automatic minor upgrade: window opened → both nodes on the newer build and RUNNING in {:.2} s",
        took.as_secs_f64()
    );
    assert!(gap < 15_000, "the producer stalled {gap} ms");

    // A broken build stops the roll at its first node and says why; the active stays on
    // the good build and keeps serving. (The next window is a week away: a reboot rolls
    // onto the newest build too.)
    let good = new;
    let broken = rebuild(&image, "RUN rm /usr/lib/jvm/default-java/bin/java").await;
    let active = roles(&app.describe(&id).await.1)
        .iter()
        .position(|r| r == "ACTIVE")
        .expect("an active node");
    let resp = app
        .post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    let v = app
        .wait_for_state(&id, "CRITICAL_ACTION_REQUIRED", Duration::from_secs(180))
        .await;
    let info = v["actionsRequired"][0]["actionRequiredInfo"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let standby = 1 - active;
    assert!(
        info.contains(&format!("node {standby}")),
        "the reason names the failed node: {v}"
    );
    assert_eq!(
        roles(&v)[active],
        "ACTIVE",
        "the roll must stop before the active: {v}"
    );
    assert_eq!(
        container_image(&app, &format!("berth-{id}-{active}")).await,
        good,
        "the active was not rolled"
    );
    let out = jms(
        &url,
        USER,
        PASSWORD,
        "login",
        &["--ca", &ca],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.ok, "the active keeps serving: {out:?}");
    println!("a broken build stopped the roll: {info}");

    // The good build back under the tag, a reboot: whole again.
    docker(&["tag", &good, &image]).await;
    let resp = app
        .post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    app.wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    wait_formed(&app, &id, Duration::from_secs(60)).await;
    for node in 0..2 {
        assert_eq!(
            container_image(&app, &format!("berth-{id}-{node}")).await,
            good
        );
    }
    docker(&["rmi", &broken]).await;

    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(90)).await;
    docker(&["rmi", "-f", &image]).await;
}
