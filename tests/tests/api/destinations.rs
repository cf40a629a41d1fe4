//! Queues and topics of real brokers through Berth's destinations API (issue 11):
//! RabbitMQ 4.0 and ActiveMQ 5.17 single instances get 25 persistent messages from a
//! real client (lapin, STOMP); the list shows the depth and no consumers; a peek at 3
//! returns the first bodies and leaves the depth alone; a test message sent through the
//! API makes 26 and reaches a real consumer. A viewer may list but not send or peek
//! (403), another account sees no broker (404), bad kinds, names and counts are 400 and
//! an unknown queue is 404.
//!
//! The engine images must carry an agent with the destinations API. By default the
//! tests use `berth/*` (what `make images` builds from this tree); set
//! `BERTH_TEST_IMAGE_PREFIX=berthq` (say) to run against images built under another
//! prefix, e.g. `BERTH_IMAGE_PREFIX=berthq images/build.sh rabbitmq 4.0
//! target/release/broker-agent`, without touching the shared `berth/*` tags.

use std::time::Duration;

use serde_json::{json, Value};

use berth_tests::{
    activemq_broker, amqp_endpoint, endpoint_with_scheme, rabbitmq_broker, require_engine_image,
    spawn_app_with, wait_until, Signer, TestApp,
};

use crate::clients::stomp::Stomp;
use crate::clients::ws::Wire;

const N: usize = 25;

fn image_prefix() -> Option<String> {
    std::env::var("BERTH_TEST_IMAGE_PREFIX")
        .ok()
        .filter(|p| !p.is_empty())
}

async fn app() -> TestApp {
    let prefix = image_prefix();
    spawn_app_with(|s| s.image_prefix = prefix).await
}

fn image(engine_and_version: &str) -> String {
    format!(
        "{}/{engine_and_version}",
        image_prefix().unwrap_or_else(|| "berth".into())
    )
}

fn path(id: &str) -> String {
    format!("/v1/berth/brokers/{id}/destinations")
}

async fn send(
    app: &TestApp,
    signer: &Signer,
    method: reqwest::Method,
    p: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let resp = signer
        .send(&app.http, method, &format!("{}{p}", app.address), body)
        .await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn list(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, v) = send(app, &app.signer, reqwest::Method::GET, &path(id), None).await;
    assert_eq!(status, 200, "ListDestinations: {v}");
    v["destinations"].as_array().cloned().unwrap_or_default()
}

async fn queue(app: &TestApp, id: &str, name: &str) -> Option<Value> {
    list(app, id)
        .await
        .into_iter()
        .find(|d| d["kind"] == "queue" && d["name"] == name)
}

/// Waits (up to 30 s: RabbitMQ refreshes its statistics every 5 s) until the queue
/// shows `messages`; returns its entry.
async fn wait_depth(app: &TestApp, id: &str, name: &str, messages: u64) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let found = wait_until(Duration::from_secs(30), || async {
        let entry = queue(app, id, name).await.unwrap_or(Value::Null);
        let done = entry["messages"] == messages;
        *last.lock().unwrap() = entry;
        done
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(
        found.is_some(),
        "{name} never showed {messages} messages: {last}"
    );
    last
}

async fn peek(app: &TestApp, id: &str, name: &str, count: u32) -> Vec<String> {
    let (status, v) = send(
        app,
        &app.signer,
        reqwest::Method::POST,
        &format!("{}/queue/{name}/peek?count={count}", path(id)),
        None,
    )
    .await;
    assert_eq!(status, 200, "PeekMessages: {v}");
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

/// The checks both engines share, on a RUNNING broker whose queue `q` holds `msg-0` …
/// `msg-24`. Leaves 26 messages, the last `from-api`.
async fn shared_checks(app: &TestApp, id: &str, q: &str) {
    let entry = wait_depth(app, id, q, N as u64).await;
    assert_eq!(entry["consumers"], 0, "{entry}");
    assert_eq!(entry["messagesReady"], N as u64, "{entry}");

    assert_eq!(peek(app, id, q, 3).await, ["msg-0", "msg-1", "msg-2"]);
    // nothing was consumed
    let entry = wait_depth(app, id, q, N as u64).await;
    assert_eq!(entry["consumers"], 0, "{entry}");

    let (status, v) = send(
        app,
        &app.signer,
        reqwest::Method::POST,
        &format!("{}/queue/{q}/messages", path(id)),
        Some(&json!({"body": "from-api", "properties": {"origin": "berth-test"}})),
    )
    .await;
    assert_eq!(status, 204, "SendTestMessage: {v}");
    wait_depth(app, id, q, N as u64 + 1).await;

    // roles and accounts
    let viewer = app
        .signer_with_role(&app.settings.default_account_id, berth::app::Role::Viewer)
        .await;
    let (status, v) = send(app, &viewer, reqwest::Method::GET, &path(id), None).await;
    assert_eq!(status, 200, "viewer lists: {v}");
    let (status, v) = send(
        app,
        &viewer,
        reqwest::Method::POST,
        &format!("{}/queue/{q}/messages", path(id)),
        Some(&json!({"body": "nope"})),
    )
    .await;
    assert_eq!(status, 403, "viewer sends: {v}");
    let (status, _) = send(
        app,
        &viewer,
        reqwest::Method::POST,
        &format!("{}/queue/{q}/peek", path(id)),
        None,
    )
    .await;
    assert_eq!(status, 403, "viewer peeks");
    let other = app.signer_for_account("222233334444").await;
    let (status, v) = send(app, &other, reqwest::Method::GET, &path(id), None).await;
    assert_eq!(status, 404, "another account: {v}");

    // bad input
    for (p, attribute) in [
        (format!("{}/exchange/{q}/messages", path(id)), "kind"),
        (format!("{}/queue/bad%01name/messages", path(id)), "name"),
        (
            format!("{}/queue/{}/messages", path(id), "x".repeat(256)),
            "name",
        ),
    ] {
        let (status, v) = send(
            app,
            &app.signer,
            reqwest::Method::POST,
            &p,
            Some(&json!({"body": "x"})),
        )
        .await;
        assert_eq!(status, 400, "{p}: {v}");
        assert_eq!(v["errorAttribute"], attribute, "{p}: {v}");
    }
    let (status, v) = send(
        app,
        &app.signer,
        reqwest::Method::POST,
        &format!("{}/queue/{q}/peek?count=11", path(id)),
        None,
    )
    .await;
    assert_eq!(status, 400, "count 11: {v}");
    let (status, v) = send(
        app,
        &app.signer,
        reqwest::Method::POST,
        &format!("{}/queue/no-such-queue/peek", path(id)),
        None,
    )
    .await;
    assert_eq!(status, 404, "unknown queue: {v}");
    // the peek at a missing queue did not create it
    assert!(queue(app, id, "no-such-queue").await.is_none());
}

async fn delete(app: &TestApp, id: &str) {
    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(id, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_destinations_depth_peek_and_test_message() {
    let app = app().await;
    require_engine_image(&app.docker, &image("rabbitmq:4.0")).await;
    let (user, pw) = ("dest-admin", "dest-Adm1n-Passw0rd");
    let id = app
        .create_broker(&rabbitmq_broker("dest-rabbit", user, pw))
        .await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    let endpoint = amqp_endpoint(&v);
    let conn = crate::amqp::connect(&endpoint, user, pw).await.unwrap();
    let q = "berth.dest.orders";
    for i in 0..N {
        crate::amqp::publish_persistent(&conn, q, format!("msg-{i}").as_bytes()).await;
    }

    shared_checks(&app, &id, q).await;

    // a real consumer gets all 26, the API's last
    let mut bodies = Vec::new();
    while let Some(b) = crate::amqp::get_one(&conn, q).await {
        bodies.push(String::from_utf8(b).unwrap());
    }
    assert_eq!(bodies.len(), N + 1, "{bodies:?}");
    assert_eq!(bodies[N], "from-api");
    conn.close(200, "bye".into()).await.ok();
    delete(&app, &id).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn activemq_destinations_depth_peek_and_test_message() {
    let app = app().await;
    require_engine_image(&app.docker, &image("activemq:5.17")).await;
    let (user, pw) = ("dest-admin", "dest-Adm1n-Passw0rd");
    let body = activemq_broker(
        "dest-amq",
        json!([{"username": user, "password": pw, "groups": ["admins"]}]),
    );
    let id = app.create_broker(&body).await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    let stomp = endpoint_with_scheme(&v, "stomp");
    let hostport = stomp.trim_start_matches("stomp://").to_owned();
    let login = || async {
        let mut s = Stomp::new(Wire::tcp(&hostport).await);
        let reply = s.connect("/", user, pw).await;
        assert_eq!(reply.command, "CONNECTED", "{reply:?}");
        s
    };
    let q = "berth.dest.orders";
    let mut producer = login().await;
    for i in 0..N {
        producer
            .send_message(&format!("/queue/{q}"), &format!("msg-{i}"))
            .await;
    }
    producer.disconnect().await;

    shared_checks(&app, &id, q).await;

    let mut consumer = login().await;
    consumer.subscribe(&format!("/queue/{q}"), "c").await;
    let mut bodies = Vec::new();
    for i in 0..=N {
        bodies.push(consumer.message(&format!("message {i}")).await.body_text());
    }
    assert_eq!(bodies[0], "msg-0");
    assert_eq!(bodies[N], "from-api");
    consumer.disconnect().await;
    delete(&app, &id).await;
    app.stop().await;
}
