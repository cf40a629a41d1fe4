//! The broker agent's own observability endpoints on real brokers, called directly as
//! the control plane's collectors do (base URL and token from
//! `observe::targets::broker_targets`):
//!
//! - RabbitMQ 4.0: 30 persistent messages published with lapin show up in `GET /metrics`
//!   as the broker-level MessageReadyCount and in the queue's own series (Queue and
//!   VirtualHost dimensions); the container samples are there (SystemCpuUtilization from
//!   the second request on); `GET /logs` has "Server startup complete" in the general
//!   stream, numbered from 1 without gaps.
//! - ActiveMQ 5.17: 12 messages sent over STOMP show up as the queue's QueueSize and in
//!   TotalMessageCount; HeapUsage is a percentage strictly between 0 and 100; the general
//!   log has the broker's "started" line; the audit stream answers with the same epoch.
//! - Bad `/logs` parameters are 400.
//!
//! The images must carry this tree's agent (`make images`).

use std::time::Duration;

use agent_contract::logs::{LogLine, LogPage};
use agent_contract::metrics::{dims, names, MetricsReport, Sample};
use berth::observe::targets::{broker_targets, NodeTarget, Which};
use serde_json::json;

use berth_tests::{
    activemq_broker, amqp_endpoint, endpoint_with_scheme, rabbitmq_broker, require_engine_image,
    spawn_app, spawn_app_with, wait_until, TestApp, ACTIVEMQ_IMAGE,
};

use crate::clients::stomp::Stomp;
use crate::clients::ws::Wire;

/// The agent of node 0 of broker `id`.
async fn agent_of(app: &TestApp, id: &str) -> NodeTarget {
    let ctx = app.application().context();
    let targets = broker_targets(
        &ctx.store,
        &ctx.secrets,
        &ctx.ports.publish_host,
        Which::WithContainers,
    )
    .await
    .expect("targets");
    targets
        .into_iter()
        .find(|t| t.broker_id.as_str() == id && t.node == 0)
        .expect("the broker's node 0 is a target")
}

async fn get(app: &TestApp, agent: &NodeTarget, path: &str) -> (u16, String) {
    let resp = app
        .http
        .get(format!("{}{path}", agent.base))
        .bearer_auth(&agent.token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the agent answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn metrics(app: &TestApp, agent: &NodeTarget) -> MetricsReport {
    let (status, body) = get(app, agent, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("a MetricsReport")
}

fn value(report: &MetricsReport, name: &str, dim: Option<(&str, &str)>) -> Option<f64> {
    report
        .samples
        .iter()
        .find(|s: &&Sample| {
            s.name == name
                && match dim {
                    Some((k, v)) => s.dimensions.get(k).map(String::as_str) == Some(v),
                    None => s.dimensions.is_empty(),
                }
        })
        .map(|s| s.value)
}

/// Polls `/metrics` (every second, up to `within`) until `done`; the last report.
async fn metrics_until(
    app: &TestApp,
    agent: &NodeTarget,
    within: Duration,
    done: impl Fn(&MetricsReport) -> bool,
) -> MetricsReport {
    let last = std::sync::Mutex::new(None);
    let found = wait_until(within, || async {
        let r = metrics(app, agent).await;
        let ok = done(&r);
        *last.lock().unwrap() = Some(r);
        ok
    })
    .await;
    let last = last.into_inner().unwrap().expect("at least one report");
    assert!(
        found.is_some(),
        "condition never met; last report: {last:?}"
    );
    last
}

/// Every general log line from the start, paging with the cursor.
async fn all_general_lines(app: &TestApp, agent: &NodeTarget) -> (LogPage, Vec<LogLine>) {
    let mut lines = Vec::new();
    let mut after = 0;
    loop {
        let (status, body) = get(
            app,
            agent,
            &format!("/logs?stream=general&after={after}&limit=200"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let page: LogPage = serde_json::from_str(&body).expect("a LogPage");
        let done = page.lines.len() < 200;
        if let Some(l) = page.lines.last() {
            after = l.seq;
        }
        lines.extend(page.lines.iter().cloned());
        if done {
            return (page, lines);
        }
    }
}

/// Waits (up to 60 s) until a general line contains `needle`; checks the numbering.
async fn wait_for_log_line(app: &TestApp, agent: &NodeTarget, needle: &str) -> LogPage {
    let last = std::sync::Mutex::new(None);
    let found = wait_until(Duration::from_secs(60), || async {
        let (page, lines) = all_general_lines(app, agent).await;
        let hit = lines.iter().any(|l| l.message.contains(needle));
        *last.lock().unwrap() = Some((page, lines));
        hit
    })
    .await;
    let (page, lines) = last.into_inner().unwrap().unwrap();
    assert!(
        found.is_some(),
        "no general line with {needle:?} among {} lines",
        lines.len()
    );
    assert_eq!(page.first_seq, 1, "nothing was rotated away yet");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.seq, i as u64 + 1, "numbered without gaps");
        assert!(l.timestamp_ms > 0);
        assert!(
            !l.message.contains('\u{1b}'),
            "colour codes stripped: {l:?}"
        );
    }
    page
}

async fn bad_log_params_are_400(app: &TestApp, agent: &NodeTarget) {
    for p in [
        "/logs",
        "/logs?stream=kernel",
        "/logs?stream=general&after=x",
        "/logs?stream=general&limit=0",
    ] {
        let (status, body) = get(app, agent, p).await;
        assert_eq!(status, 400, "{p}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_agent_metrics_and_logs() {
    // This app's collectors run, so the control plane's own API shows the same numbers.
    let app = spawn_app_with(|s| {
        s.metrics_interval_ms = 1000;
        s.logs_interval_ms = 1000;
    })
    .await;
    require_engine_image(&app.docker, "berth/rabbitmq:4.0").await;
    let (user, pw) = ("obs-admin", "obs-Adm1n-Passw0rd");
    let mut request = rabbitmq_broker("obs-rabbit", user, pw);
    request["logs"] = json!({"general": true});
    let id = app.create_broker(&request).await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    let agent = agent_of(&app, &id).await;

    let conn = crate::amqp::connect(&amqp_endpoint(&v), user, pw)
        .await
        .unwrap();
    let q = "berth.obs.orders";
    for i in 0..30 {
        crate::amqp::publish_persistent(&conn, q, format!("m-{i}").as_bytes()).await;
    }
    // RabbitMQ refreshes its statistics every 5 s.
    let started = std::time::Instant::now();
    let report = metrics_until(&app, &agent, Duration::from_secs(60), |r| {
        value(r, names::MESSAGE_READY_COUNT, None) == Some(30.0)
            && value(r, names::MESSAGE_READY_COUNT, Some((dims::QUEUE, q))) == Some(30.0)
    })
    .await;
    println!(
        "rabbitmq: 30 ready after {:.1} s; {} samples",
        started.elapsed().as_secs_f64(),
        report.samples.len()
    );
    assert_eq!(report.engine_error, None);
    let series = report
        .samples
        .iter()
        .find(|s| {
            s.name == names::MESSAGE_COUNT && s.dimensions.get(dims::QUEUE) == Some(&q.to_string())
        })
        .expect("the queue's MessageCount");
    assert_eq!(series.value, 30.0);
    assert_eq!(series.dimensions[dims::VIRTUAL_HOST], "/");
    assert!(value(&report, names::QUEUE_COUNT, None).unwrap() >= 1.0);
    assert!(value(&report, names::CONNECTION_COUNT, None).unwrap() >= 1.0);
    let node_mem = report
        .samples
        .iter()
        .find(|s| s.name == names::RABBITMQ_MEM_USED)
        .expect("RabbitMQMemUsed");
    assert!(node_mem.dimensions[dims::NODE].starts_with("rabbit@"));
    assert!(value(&report, names::MEMORY_USED, None).unwrap() > 0.0);
    assert!(value(&report, names::DISK_FREE, None).unwrap() > 0.0);
    // a later report has the CPU share since the previous one
    let cpu = value(
        &metrics(&app, &agent).await,
        names::SYSTEM_CPU_UTILIZATION,
        None,
    )
    .expect("SystemCpuUtilization from the second report on");
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");

    let page = wait_for_log_line(&app, &agent, "Server startup complete").await;
    assert!(!page.epoch.is_empty());
    bad_log_params_are_400(&app, &agent).await;

    // Through the control plane: the collector stored the queue's depth and the
    // engine's log lines, and Berth's API serves them.
    let depth = format!(
        "/v1/berth/brokers/{id}/metrics/{}?stat=Maximum&dimension.Queue={q}",
        names::MESSAGE_READY_COUNT
    );
    wait_until(Duration::from_secs(60), || async {
        let v: serde_json::Value = app.get(&depth).await.json().await.unwrap_or_default();
        v["datapoints"]
            .as_array()
            .is_some_and(|points| points.iter().any(|p| p["value"] == 30.0))
    })
    .await
    .expect("the control plane stored the queue's depth of 30");
    let logs = format!("/v1/berth/brokers/{id}/logs?contains=Server%20startup%20complete");
    wait_until(Duration::from_secs(60), || async {
        let v: serde_json::Value = app.get(&logs).await.json().await.unwrap_or_default();
        v["events"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await
    .expect("the control plane collected the startup line");

    conn.close(200, "bye".into()).await.ok();
    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(90)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn activemq_agent_metrics_and_logs() {
    let app = spawn_app().await;
    require_engine_image(&app.docker, ACTIVEMQ_IMAGE).await;
    let (user, pw) = ("obs-admin", "obs-Adm1n-Passw0rd");
    let body = activemq_broker(
        "obs-amq",
        json!([{"username": user, "password": pw, "groups": ["admins"]}]),
    );
    let id = app.create_broker(&body).await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    let agent = agent_of(&app, &id).await;

    let stomp = endpoint_with_scheme(&v, "stomp");
    let hostport = stomp.trim_start_matches("stomp://").to_owned();
    let mut producer = Stomp::new(Wire::tcp(&hostport).await);
    let reply = producer.connect("/", user, pw).await;
    assert_eq!(reply.command, "CONNECTED", "{reply:?}");
    let q = "berth.obs.orders";
    for i in 0..12 {
        producer
            .send_message(&format!("/queue/{q}"), &format!("m-{i}"))
            .await;
    }
    producer.disconnect().await;

    let report = metrics_until(&app, &agent, Duration::from_secs(30), |r| {
        value(r, names::QUEUE_SIZE, Some((dims::QUEUE, q))) == Some(12.0)
    })
    .await;
    assert_eq!(report.engine_error, None);
    assert_eq!(value(&report, names::TOTAL_MESSAGE_COUNT, None), Some(12.0));
    assert_eq!(
        value(&report, names::ENQUEUE_COUNT, Some((dims::QUEUE, q))),
        Some(12.0)
    );
    let heap = value(&report, names::HEAP_USAGE, None).expect("HeapUsage");
    assert!(heap > 0.0 && heap < 100.0, "{heap}");
    let store = value(&report, names::STORE_PERCENT_USAGE, None).expect("StorePercentUsage");
    assert!((0.0..=100.0).contains(&store));
    assert!(value(&report, names::CURRENT_CONNECTIONS_COUNT, None).is_some());
    assert!(value(&report, names::MEMORY_USED, None).unwrap() > 0.0);
    println!(
        "activemq: heap {heap:.1} %, {} samples",
        report.samples.len()
    );
    let cpu = value(&metrics(&app, &agent).await, names::CPU_UTILIZATION, None)
        .expect("CpuUtilization from the second report on");
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");

    let page = wait_for_log_line(&app, &agent, "started").await;
    let (status, body) = get(&app, &agent, "/logs?stream=audit").await;
    assert_eq!(status, 200, "{body}");
    let audit: LogPage = serde_json::from_str(&body).unwrap();
    assert_eq!(audit.epoch, page.epoch, "one store, one epoch");
    bad_log_params_are_400(&app, &agent).await;

    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(90)).await;
    app.stop().await;
}
