//! Alarms and webhooks end to end: metric points inserted into the history tables (as the
//! collector would), the evaluator and the delivery worker running in the app, and a
//! real HTTP receiver that checks every signature with its own HMAC-SHA256.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use berth::config::Settings;
use berth_tests::{rabbitmq_broker, spawn_app_on, wait_until, TestApp, RABBITMQ_IMAGE};

/// What the receiver answers a request with.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Never answers.
    Hang,
}

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct ReceiverState {
    got: Arc<Mutex<Vec<Received>>>,
    /// Replies in order; 204 once they run out.
    script: Arc<Mutex<VecDeque<Reply>>>,
}

/// An HTTP receiver on 127.0.0.1:0.
struct Receiver {
    url: String,
    state: ReceiverState,
}

impl Receiver {
    async fn start(script: &[Reply]) -> Self {
        let state = ReceiverState::default();
        state.script.lock().unwrap().extend(script.iter().copied());
        async fn hook(
            State(s): State<ReceiverState>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            s.got.lock().unwrap().push(Received { headers, body });
            let reply = s.script.lock().unwrap().pop_front();
            match reply.unwrap_or(Reply::Status(204)) {
                Reply::Status(code) => StatusCode::from_u16(code).unwrap(),
                Reply::Hang => std::future::pending().await,
            }
        }
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// Notifications received so far, each checked against `secret`.
    fn notifications(&self, secret: &str) -> Vec<Value> {
        self.received()
            .iter()
            .map(|r| {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(&r.body);
                let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                assert_eq!(r.headers["x-berth-signature"], expected.as_str());
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(
                    r.headers["x-berth-delivery"],
                    v["deliveryId"].as_str().unwrap()
                );
                v
            })
            .collect()
    }

    async fn wait_for_state(&self, secret: &str, state: &str) -> Value {
        self.wait_for_state_within(secret, state, Duration::from_secs(30))
            .await
    }

    /// The first notification of `state`, waiting up to `timeout` for it.
    async fn wait_for_state_within(&self, secret: &str, state: &str, timeout: Duration) -> Value {
        let mut found = None;
        wait_until(timeout, || {
            found = self
                .notifications(secret)
                .into_iter()
                .find(|n| n["newState"] == state);
            let done = found.is_some();
            async move { done }
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no {state} notification; got {:?}",
                self.notifications(secret)
            )
        });
        found.unwrap()
    }
}

fn fast(s: &mut Settings) {
    s.alarm_eval_interval_secs = 1;
    s.webhook_poll_ms = 100;
    s.webhook_timeout_ms = 500;
    s.webhook_backoff_base_ms = 200;
    s.webhook_backoff_max_ms = 1000;
}

async fn app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), tweak).await
}

async fn db(app: &TestApp) -> sqlx::PgPool {
    sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap()
}

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn create_hook(app: &TestApp, url: &str, all_alarms: bool) -> (String, String) {
    let v = json_of(
        app.post_json(
            "/v1/berth/webhooks",
            &json!({ "url": url, "allAlarms": all_alarms }),
        )
        .await,
        200,
    )
    .await;
    (
        v["webhookId"].as_str().unwrap().into(),
        v["secret"].as_str().unwrap().into(),
    )
}

async fn running_broker(app: &TestApp, name: &str) -> String {
    let id = app
        .create_broker(&rabbitmq_broker(name, "app", "correct-horse-9"))
        .await;
    app.wait_for_state(&id, "RUNNING", Duration::from_secs(30))
        .await;
    id
}

/// A `ConsumerCount <= 0` alarm on queue `orders`, 10 s period, one period.
async fn no_consumers_alarm(app: &TestApp, broker: &str, hooks: &[&str]) -> String {
    let v = json_of(
        app.post_json(
            "/v1/berth/alarms",
            &json!({
                "name": format!("no consumers {}", uuid::Uuid::new_v4()),
                "brokerId": broker,
                "metricName": "ConsumerCount",
                "dimensions": { "Queue": "orders" },
                "statistic": "Maximum",
                "comparison": "LessThanOrEqualToThreshold",
                "threshold": 0,
                "periodSeconds": 10,
                "evaluationPeriods": 1,
                "webhookIds": hooks,
            }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(v["state"], "INSUFFICIENT_DATA");
    v["alarmId"].as_str().unwrap().into()
}

/// Records a ConsumerCount sample of queue `orders` on node 0, now.
async fn consumer_count(pool: &sqlx::PgPool, broker: &str, value: f64) {
    let series: i64 = sqlx::query_scalar(
        "INSERT INTO metric_series (account_id, broker_id, name, dimensions, unit)
         VALUES ('000000000000', $1, 'ConsumerCount', '{\"Queue\": \"orders\", \"Node\": \"0\"}', 'Count')
         ON CONFLICT (broker_id, name, dimensions) DO UPDATE SET unit = EXCLUDED.unit
         RETURNING id",
    )
    .bind(broker)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO metric_points (series_id, ts, value) VALUES ($1, clock_timestamp(), $2)",
    )
    .bind(series)
    .bind(value)
    .execute(pool)
    .await
    .unwrap();
}

async fn deliveries(app: &TestApp, hook: &str) -> Vec<Value> {
    let v = json_of(
        app.get(&format!("/v1/berth/webhooks/{hook}/deliveries"))
            .await,
        200,
    )
    .await;
    v["deliveries"].as_array().unwrap().clone()
}

/// Waits until the hook's log shows a DELIVERED delivery; returns it.
async fn wait_delivered(app: &TestApp, hook: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = deliveries(app, hook).await;
        if let Some(d) = log.iter().find(|d| d["status"] == "DELIVERED") {
            return d.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never delivered: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn zero_consumers_alarm_then_ok_signed_notifications_and_history() {
    let app = app_with(fast).await;
    let pool = db(&app).await;
    let receiver = Receiver::start(&[]).await;
    let (hook, secret) = create_hook(&app, &receiver.url, false).await;
    let broker = running_broker(&app, "alarmed").await;
    let alarm = no_consumers_alarm(&app, &broker, &[&hook]).await;

    consumer_count(&pool, &broker, 0.0).await;
    let n = receiver.wait_for_state(&secret, "ALARM").await;
    assert_eq!(n["alarm"]["alarmId"], alarm.as_str());
    assert_eq!(n["alarm"]["brokerId"], broker.as_str());
    assert_eq!(n["oldState"], "INSUFFICIENT_DATA");

    consumer_count(&pool, &broker, 2.0).await;
    let n = receiver.wait_for_state(&secret, "OK").await;
    assert_eq!(n["oldState"], "ALARM");

    let v = json_of(
        app.get(&format!("/v1/berth/alarms/{alarm}/history")).await,
        200,
    )
    .await;
    let transitions: Vec<(String, String)> = v["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|t| {
            (
                t["oldState"].as_str().unwrap().into(),
                t["newState"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        transitions[..2],
        [
            ("INSUFFICIENT_DATA".into(), "ALARM".into()),
            ("ALARM".into(), "OK".into())
        ]
    );
    let listed = json_of(app.get("/v1/berth/alarms").await, 200).await;
    assert!(listed["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["alarmId"] == alarm.as_str()));

    // The secret is never shown again; another account sees none of it.
    let hooks = json_of(app.get("/v1/berth/webhooks").await, 200).await;
    assert!(!hooks.to_string().contains(&secret));
    let other = app.signer_for_account("222222222222").await;
    let url = |p: &str| format!("{}{p}", app.address);
    let resp = other
        .send(
            &app.http,
            reqwest::Method::GET,
            &url("/v1/berth/alarms"),
            None,
        )
        .await;
    assert_eq!(json_of(resp, 200).await["alarms"], json!([]));
    let resp = other
        .send(
            &app.http,
            reqwest::Method::GET,
            &url(&format!("/v1/berth/alarms/{alarm}")),
            None,
        )
        .await;
    assert_eq!(resp.status(), 404);
    let resp = other
        .send(
            &app.http,
            reqwest::Method::GET,
            &url(&format!("/v1/berth/webhooks/{hook}/deliveries")),
            None,
        )
        .await;
    assert_eq!(resp.status(), 404);

    let resp = app.delete(&format!("/v1/berth/alarms/{alarm}")).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        app.get(&format!("/v1/berth/alarms/{alarm}")).await.status(),
        404
    );
}

#[tokio::test]
async fn failed_deliveries_are_retried_until_delivered() {
    let app = app_with(fast).await;
    let pool = db(&app).await;
    let receiver = Receiver::start(&[Reply::Status(500), Reply::Status(500)]).await;
    let (hook, secret) = create_hook(&app, &receiver.url, false).await;
    let broker = running_broker(&app, "retried").await;
    no_consumers_alarm(&app, &broker, &[&hook]).await;
    consumer_count(&pool, &broker, 0.0).await;

    let d = wait_delivered(&app, &hook).await;
    assert_eq!(d["attempts"], 3, "{d}");
    assert_eq!(d["lastStatusCode"], 204, "{d}");
    assert!(d["lastError"].as_str().unwrap().contains("500"), "{d}");
    // Three requests, one delivery id, every one signed.
    let id = d["deliveryId"].as_str().unwrap();
    let same: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.headers["x-berth-delivery"] == id)
        .collect();
    assert_eq!(same.len(), 3);
    receiver.notifications(&secret);
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_delivery_goes_on() {
    let app = app_with(fast).await;
    let pool = db(&app).await;
    let hanging = Receiver::start(&[Reply::Hang]).await;
    let healthy = Receiver::start(&[]).await;
    let (slow_hook, _) = create_hook(&app, &hanging.url, false).await;
    let (ok_hook, ok_secret) = create_hook(&app, &healthy.url, false).await;
    let broker = running_broker(&app, "hangs").await;
    no_consumers_alarm(&app, &broker, &[&slow_hook, &ok_hook]).await;
    consumer_count(&pool, &broker, 0.0).await;

    healthy.wait_for_state(&ok_secret, "ALARM").await;
    let d = wait_delivered(&app, &slow_hook).await;
    assert_eq!(d["attempts"], 2, "{d}");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("no answer within 500 ms"),
        "{d}"
    );
}

#[tokio::test]
async fn stale_collector_raises_the_builtin_alarm() {
    let app = app_with(|s| {
        fast(s);
        // Stale after 15 s: a new broker is never stale before the test makes it so.
        s.metrics_interval_ms = 5000;
    })
    .await;
    let pool = db(&app).await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = create_hook(&app, &receiver.url, true).await;
    let broker = running_broker(&app, "stale").await;
    // The evaluator gives every RUNNING broker its built-in alarm, OK while fresh.
    wait_until(Duration::from_secs(30), || async {
        json_of(app.get("/v1/berth/alarms").await, 200).await["alarms"]
            .as_array()
            .is_some_and(|a| {
                a.iter().any(|a| {
                    a["builtIn"] == true && a["brokerId"] == broker.as_str() && a["state"] == "OK"
                })
            })
    })
    .await
    .expect("the built-in alarm exists and is OK");
    sqlx::query(
        "INSERT INTO metric_reports (broker_id, node, account_id, collected_at, report)
         VALUES ($1, 0, '000000000000', now() - interval '1 hour', '{}')",
    )
    .bind(&broker)
    .execute(&pool)
    .await
    .unwrap();

    let n = receiver.wait_for_state(&secret, "ALARM").await;
    assert_eq!(n["alarm"]["builtIn"], true);
    assert_eq!(n["alarm"]["brokerId"], broker.as_str());
    let listed = json_of(app.get("/v1/berth/alarms").await, 200).await;
    let builtin = listed["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["builtIn"] == true && a["brokerId"] == broker.as_str())
        .cloned()
        .expect("built-in alarm listed");
    assert_eq!(builtin["state"], "ALARM");
    let id = builtin["alarmId"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/berth/alarms/{id}")).await.status(),
        400
    );

    // Collection resumes: OK again.
    sqlx::query(
        "UPDATE metric_reports SET collected_at = now() + interval '1 minute' WHERE broker_id = $1",
    )
    .bind(&broker)
    .execute(&pool)
    .await
    .unwrap();
    let n = receiver.wait_for_state(&secret, "OK").await;
    assert_eq!(n["oldState"], "ALARM");
}

#[tokio::test]
async fn bad_alarm_and_webhook_bodies_are_400_with_the_attribute() {
    let app = app_with(|_| {}).await;
    let broker = app
        .create_broker(&rabbitmq_broker("bad-bodies", "app", "correct-horse-9"))
        .await;
    let good = json!({
        "name": "n", "brokerId": broker, "metricName": "ConsumerCount",
        "statistic": "Maximum", "comparison": "LessThanThreshold", "threshold": 1,
        "periodSeconds": 60, "evaluationPeriods": 1,
    });
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases = [
        (without("name"), "name"),
        (with("metricName", json!("Bogus")), "metricName"),
        (
            with("brokerId", json!("b-00000000-0000-0000-0000-000000000000")),
            "brokerId",
        ),
        (with("dimensions", json!({"Colour": "red"})), "dimensions"),
        (with("statistic", json!("p99")), "statistic"),
        (with("comparison", json!("Equal")), "comparison"),
        (without("threshold"), "threshold"),
        (with("periodSeconds", json!(5)), "periodSeconds"),
        (with("evaluationPeriods", json!(0)), "evaluationPeriods"),
        (with("evaluationPeriods", json!(101)), "evaluationPeriods"),
        (with("webhookIds", json!(["wh-nope"])), "webhookIds"),
        (with("threshold", json!("high")), "body"),
    ];
    for (body, attr) in cases {
        let v = json_of(app.post_json("/v1/berth/alarms", &body).await, 400).await;
        assert_eq!(v["errorAttribute"], attr, "{body} → {v}");
    }
    json_of(app.post_json("/v1/berth/alarms", &good).await, 200).await;
    json_of(app.post_json("/v1/berth/alarms", &good).await, 409).await;

    for url in [
        json!("ftp://example.com/x"),
        json!("not a url"),
        json!(null),
        json!("http://u:p@example.com/"),
    ] {
        let v = json_of(
            app.post_json("/v1/berth/webhooks", &json!({ "url": url }))
                .await,
            400,
        )
        .await;
        assert_eq!(v["errorAttribute"], "url", "{url} → {v}");
    }
}

/// The whole chain on a real RabbitMQ 4.0 broker: the agent's samples, the collector,
/// the evaluator and the webhook worker. A queue nobody consumes trips a
/// `ConsumerCount <= 0` alarm whose signed notification reaches a real receiver; a
/// consumer clears it. Then a reboot's engine log lines are searchable through the API.
#[tokio::test]
async fn a_real_queue_without_consumers_alarms_and_a_reboot_is_in_the_logs() {
    let app = berth_tests::spawn_app_with(|s| {
        fast(s);
        s.metrics_interval_ms = 1000;
        s.logs_interval_ms = 1000;
    })
    .await;
    berth_tests::require_engine_image(&app.docker, "berth/rabbitmq:4.0").await;
    let receiver = Receiver::start(&[]).await;
    let (hook, secret) = create_hook(&app, &receiver.url, false).await;
    let (user, pw) = ("alarm-admin", "alarm-Adm1n-Passw0rd");
    let mut request = rabbitmq_broker("alarm-real", user, pw);
    request["logs"] = json!({"general": true});
    let broker = app.create_broker(&request).await;
    let v = app
        .wait_for_state(&broker, "RUNNING", Duration::from_secs(180))
        .await;
    let conn = crate::amqp::connect(&berth_tests::amqp_endpoint(&v), user, pw)
        .await
        .unwrap();
    let channel = crate::amqp::declare_durable(&conn, "orders").await;
    let alarm = no_consumers_alarm(&app, &broker, &[&hook]).await;

    // RabbitMQ refreshes its statistics every 5 s; the alarm's period is 10 s.
    let wait_state = |state: &'static str| {
        receiver.wait_for_state_within(&secret, state, Duration::from_secs(90))
    };
    let n = wait_state("ALARM").await;
    assert_eq!(n["alarm"]["alarmId"], alarm.as_str());
    assert_eq!(n["alarm"]["brokerId"], broker.as_str());

    let _consumer = channel
        .basic_consume(
            "orders".into(),
            "alarm-test".into(),
            lapin::options::BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let n = wait_state("OK").await;
    assert_eq!(n["oldState"], "ALARM");
    drop(conn);

    // A reboot: RabbitMQ's shutdown and its second start are both searchable.
    let (app_ref, id) = (&app, broker.as_str());
    wait_until(Duration::from_secs(60), || async move {
        startup_lines(app_ref, id).await >= 1
    })
    .await
    .expect("the first start's line was collected");
    let before = startup_lines(&app, &broker).await;
    assert_eq!(
        app.post_json(&format!("/v1/brokers/{broker}/reboot"), &json!({}))
            .await
            .status(),
        200
    );
    app.wait_for_state(&broker, "RUNNING", Duration::from_secs(180))
        .await;
    wait_until(Duration::from_secs(60), || async move {
        startup_lines(app_ref, id).await > before
    })
    .await
    .expect("the reboot's startup line is searchable");
    let v = json_of(
        app.get(&format!(
            "/v1/berth/brokers/{broker}/logs?contains=stopp&maxResults=100"
        ))
        .await,
        200,
    )
    .await;
    assert!(
        !v["events"].as_array().unwrap().is_empty(),
        "the reboot's shutdown lines are searchable: {v}"
    );
}

/// How many "Server startup complete" lines the broker's collected logs hold.
async fn startup_lines(app: &TestApp, broker: &str) -> usize {
    let v = json_of(
        app.get(&format!(
            "/v1/berth/brokers/{broker}/logs?contains=Server%20startup%20complete&maxResults=100"
        ))
        .await,
        200,
    )
    .await;
    v["events"].as_array().map_or(0, |e| e.len())
}
