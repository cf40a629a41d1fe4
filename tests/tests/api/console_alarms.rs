//! The console's alarm and webhook pages over plain HTTP with a signed-in session cookie:
//! webhook and alarm forms (the secret shown once, errors at their field with the typed
//! values kept, delete with confirmation), a viewer refused, the broker page's panel, and
//! — with the evaluator and delivery worker running — an alarm's history and a hook's
//! delivery log after a real transition delivered to a real receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::console::{css, login, no_redirects, submit};
use berth::app::Role;
use berth_tests::{rabbitmq_broker, spawn_app_on, ConsoleSession, TestApp, RABBITMQ_IMAGE};

const ACCOUNT: &str = "000000000000";

type Got = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on 127.0.0.1:0 that answers 204 and keeps what it got.
async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    async fn hook(State(got): State<Got>, headers: HeaderMap, body: Bytes) -> StatusCode {
        got.lock().unwrap().push((headers, body));
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// The fake runtime, the evaluator every second and a fast delivery worker.
async fn fast_app() -> TestApp {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), |s| {
        s.alarm_eval_interval_secs = 1;
        s.webhook_poll_ms = 100;
        s.webhook_timeout_ms = 2000;
    })
    .await
}

/// `GET path` with the session; the status and the page.
async fn page(app: &TestApp, s: &ConsoleSession, path: &str) -> (u16, String) {
    let resp = s
        .request(
            &no_redirects(),
            reqwest::Method::GET,
            &format!("{}{path}", app.address),
            false,
        )
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A form POST with the session's CSRF token in `_csrf`: the status, the `Location`
/// and the page.
async fn post(
    app: &TestApp,
    s: &ConsoleSession,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let mut form: Vec<(&str, &str)> = vec![("_csrf", s.csrf.as_str())];
    form.extend_from_slice(fields);
    let resp = s
        .request(
            &no_redirects(),
            reqwest::Method::POST,
            &format!("{}{path}", app.address),
            false,
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

/// The text between `start` and the next `end` in `html`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {html}"))
        + start.len();
    let len = html[from..].find(end).expect("end marker");
    &html[from..from + len]
}

fn alarm_form<'a>(broker: &'a str, name: &'a str, threshold: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("op", "create"),
        ("name", name),
        ("brokerId", broker),
        ("metricName", "ConsumerCount"),
        ("dimension", "Queue"),
        ("dimensionValue", "orders"),
        ("statistic", "Maximum"),
        ("comparison", "LessThanOrEqualToThreshold"),
        ("threshold", threshold),
        ("periodSeconds", "10"),
        ("evaluationPeriods", "1"),
    ]
}

/// The account's alarms through the API: (id, name).
async fn api_alarms(app: &TestApp) -> Vec<(String, String)> {
    let v: Value = app.get("/v1/berth/alarms").await.json().await.unwrap();
    v["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alarmId"].as_str().unwrap().to_owned(),
                a["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn api_alarm_ids(app: &TestApp) -> Vec<String> {
    api_alarms(app)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

async fn api_alarm_named(app: &TestApp, name: &str) -> bool {
    api_alarms(app).await.iter().any(|(_, n)| n == name)
}

/// Records a ConsumerCount sample of queue `orders` on node 0, now (as the collector
/// would).
async fn consumer_count(app: &TestApp, broker: &str, value: f64) {
    let pool = sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let series: i64 = sqlx::query_scalar(
        "INSERT INTO metric_series (account_id, broker_id, name, dimensions, unit)
         VALUES ($1, $2, 'ConsumerCount', '{\"Queue\": \"orders\", \"Node\": \"0\"}', 'Count')
         ON CONFLICT (broker_id, name, dimensions) DO UPDATE SET unit = EXCLUDED.unit
         RETURNING id",
    )
    .bind(ACCOUNT)
    .bind(broker)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO metric_points (series_id, ts, value) VALUES ($1, clock_timestamp(), $2)",
    )
    .bind(series)
    .bind(value)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// Waits until `path` shows `needle`; returns the page.
async fn wait_for_page(app: &TestApp, s: &ConsoleSession, path: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, html) = page(app, s, path).await;
        assert_eq!(status, 200, "{html}");
        if html.contains(needle) {
            return html;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never showed {needle:?}: {html}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn alarms_and_webhooks_from_the_console_forms_to_history_and_delivery_log() {
    let app = fast_app().await;
    let broker = app
        .create_broker(&rabbitmq_broker(
            "console-alarms",
            "app",
            "correct-horse-9-x",
        ))
        .await;
    app.wait_for_state(&broker, "RUNNING", Duration::from_secs(30))
        .await;
    let op = app
        .console_user_session(ACCOUNT, "olive", Role::Operator)
        .await;

    // The nav links to both pages; no hooks yet.
    let (status, html) = page(&app, &op, "/console/webhooks").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"href="/console/alarms""#) && html.contains("no-hooks"));

    // A bad URL comes back at its field, the typed value kept.
    let (status, _, html) = post(
        &app,
        &op,
        "/console/webhooks",
        &[("op", "create"), ("url", "ftp://example.invalid/x")],
    )
    .await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains(r#"id="error-url""#), "{html}");
    assert!(html.contains(r#"value="ftp://example.invalid/x""#));

    // Create: the secret is on the answer, and only there.
    let (url, got) = receiver().await;
    let (status, _, html) = post(
        &app,
        &op,
        "/console/webhooks",
        &[("op", "create"), ("url", &url), ("description", "pager")],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let hook = between(&html, r#"<code id="new-hook-id">"#, "<").to_owned();
    let secret = between(&html, r#"<code id="new-hook-secret">"#, "<").to_owned();
    assert!(
        hook.starts_with("wh-") && secret.len() >= 20,
        "{hook} {secret}"
    );
    let (_, list) = page(&app, &op, "/console/webhooks").await;
    assert!(list.contains(&hook) && list.contains("pager"));
    assert!(!list.contains(&secret), "the secret is shown again");

    // The create form, prefilled from the broker page's link.
    let (_, broker_page) = page(&app, &op, &format!("/console/brokers/{broker}")).await;
    let link = format!("/console/alarms?broker={broker}");
    assert!(broker_page.contains(&link), "{broker_page}");
    let (status, form) = page(&app, &op, &link).await;
    assert_eq!(status, 200, "{form}");
    assert!(form.contains(&format!(r#"<option value="{broker}" selected>"#)));
    assert!(form.contains(r#"<option value="ConsumerCount">"#));
    assert!(form.contains(&format!(r#"<option value="{hook}">"#)));

    // A threshold that is not a number, and one the app layer refuses: the form again,
    // the message at the field, the values kept.
    for (threshold, period) in [("lots", "10"), ("NaN", "10")] {
        let mut fields = alarm_form(&broker, "orders unattended", threshold);
        fields.retain(|(k, _)| *k != "periodSeconds");
        fields.push(("periodSeconds", period));
        let (status, _, html) = post(&app, &op, "/console/alarms", &fields).await;
        assert_eq!(status, 400, "{threshold}: {html}");
        assert!(html.contains(r#"id="error-threshold""#), "{html}");
        assert!(html.contains(r#"aria-describedby="error-threshold""#));
        assert!(html.contains(r#"value="orders unattended""#));
        assert!(html.contains(&format!(r#"value="{threshold}""#)));
        assert!(html.contains(r#"<option value="Queue" selected>"#));
    }
    let mut fields = alarm_form(&broker, "orders unattended", "0");
    fields.retain(|(k, _)| *k != "periodSeconds");
    fields.push(("periodSeconds", "5"));
    let (status, _, html) = post(&app, &op, "/console/alarms", &fields).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains(r#"id="error-periodSeconds""#), "{html}");
    assert!(!api_alarm_named(&app, "orders unattended").await);

    // A good one, with the webhook.
    let mut fields = alarm_form(&broker, "orders unattended", "0");
    fields.push(("webhookId", &hook));
    let (status, location, html) = post(&app, &op, "/console/alarms", &fields).await;
    assert_eq!(status, 303, "{html}");
    let alarm = between(&location, "/console/alarms/", "?").to_owned();
    assert!(api_alarm_ids(&app).await.contains(&alarm));
    let (_, list) = page(&app, &op, "/console/alarms").await;
    assert!(list.contains(&format!(r#"href="/console/alarms/{alarm}""#)));
    assert!(list.contains("LessThanOrEqualToThreshold 0") && list.contains("Queue=orders"));
    let (_, broker_page) = page(&app, &op, &format!("/console/brokers/{broker}")).await;
    assert!(
        broker_page.contains(&format!(r#"href="/console/alarms/{alarm}""#)),
        "the broker page lists its alarm"
    );

    // A queue without consumers: the evaluator moves the alarm to ALARM; its page shows
    // the transition, and the hook's log the delivery the receiver answered 204.
    consumer_count(&app, &broker, 0.0).await;
    let detail = wait_for_page(
        &app,
        &op,
        &format!("/console/alarms/{alarm}"),
        r#"history-to">ALARM<"#,
    )
    .await;
    assert!(detail.contains(r#"id="alarm-state" data-state="ALARM""#));
    assert!(detail.contains("INSUFFICIENT_DATA</span>"), "{detail}");
    assert!(detail.contains("Threshold crossed"), "{detail}");
    let log = wait_for_page(&app, &op, &format!("/console/webhooks/{hook}"), "DELIVERED").await;
    assert!(log.contains("HTTP 204"), "{log}");
    assert!(log.contains(&format!(r#"href="/console/alarms/{alarm}""#)));
    assert!(log.contains("INSUFFICIENT_DATA → ALARM"), "{log}");
    // The secret the page showed is the one the notification is signed with.
    let (headers, body) = got.lock().unwrap()[0].clone();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let signed = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-berth-signature"], signed.as_str());

    // Recovery shows as a second, newer row first.
    consumer_count(&app, &broker, 3.0).await;
    let detail = wait_for_page(
        &app,
        &op,
        &format!("/console/alarms/{alarm}"),
        r#"history-to">OK<"#,
    )
    .await;
    let ok_at = detail.find(r#"history-to">OK<"#).unwrap();
    let alarm_at = detail.find(r#"history-to">ALARM<"#).unwrap();
    assert!(ok_at < alarm_at, "newest first");

    // Deleting needs the confirmation box.
    let (status, _, html) = post(
        &app,
        &op,
        "/console/alarms",
        &[("op", "delete"), ("id", &alarm)],
    )
    .await;
    assert_eq!(status, 400, "{html}");
    assert!(api_alarm_ids(&app).await.contains(&alarm));
    let (status, location, _) = post(
        &app,
        &op,
        "/console/alarms",
        &[("op", "delete"), ("id", &alarm), ("confirm", "on")],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/console/alarms?done=delete")
    );
    assert!(!api_alarm_ids(&app).await.contains(&alarm));
    let (status, _) = page(&app, &op, &format!("/console/alarms/{alarm}")).await;
    assert_eq!(status, 404);

    let (status, _, _) = post(
        &app,
        &op,
        "/console/webhooks",
        &[("op", "delete"), ("id", &hook), ("confirm", "on")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, list) = page(&app, &op, "/console/webhooks").await;
    assert!(!list.contains(&hook));
    let (status, _) = page(&app, &op, &format!("/console/webhooks/{hook}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_viewer_sees_alarms_and_webhooks_but_cannot_change_them() {
    let app = fast_app().await;
    let broker = app
        .create_broker(&rabbitmq_broker(
            "console-viewer",
            "app",
            "correct-horse-9-x",
        ))
        .await;
    app.wait_for_state(&broker, "RUNNING", Duration::from_secs(30))
        .await;
    let op = app
        .console_user_session(ACCOUNT, "oscar", Role::Operator)
        .await;
    let (status, location, html) = post(
        &app,
        &op,
        "/console/alarms",
        &alarm_form(&broker, "seen by viewers", "5"),
    )
    .await;
    assert_eq!(status, 303, "{html}");
    let alarm = between(&location, "/console/alarms/", "?").to_owned();

    let viewer = app
        .console_user_session(ACCOUNT, "vera", Role::Viewer)
        .await;
    let (status, list) = page(&app, &viewer, "/console/alarms").await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains("seen by viewers") && !list.contains(r#"id="alarm-form""#));
    let (status, detail) = page(&app, &viewer, &format!("/console/alarms/{alarm}")).await;
    assert_eq!(status, 200);
    assert!(!detail.contains(r#"id="delete-form""#));
    let (_, hooks) = page(&app, &viewer, "/console/webhooks").await;
    assert!(!hooks.contains(r#"id="hook-form""#));

    // Forged posts with the viewer's own valid CSRF token are refused.
    let (status, _, html) = post(
        &app,
        &viewer,
        "/console/alarms",
        &alarm_form(&broker, "viewer made", "1"),
    )
    .await;
    assert_eq!(status, 403, "{html}");
    let (status, _, _) = post(
        &app,
        &viewer,
        "/console/alarms",
        &[("op", "delete"), ("id", &alarm), ("confirm", "on")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = post(
        &app,
        &viewer,
        "/console/webhooks",
        &[("op", "create"), ("url", "http://127.0.0.1:9/x")],
    )
    .await;
    assert_eq!(status, 403);
    assert!(!api_alarm_named(&app, "viewer made").await);
    assert!(api_alarm_ids(&app).await.contains(&alarm));
    let v: Value = app.get("/v1/berth/webhooks").await.json().await.unwrap();
    assert_eq!(v["webhooks"].as_array().unwrap().len(), 0);

    // Without the CSRF token even the operator is refused.
    let resp = op
        .request(
            &no_redirects(),
            reqwest::Method::POST,
            &format!("{}/console/alarms", app.address),
            false,
        )
        .form(&alarm_form(&broker, "no csrf", "1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(!api_alarm_named(&app, "no csrf").await);
}

async fn assert_accessible(b: &berth_tests::browser::Browser, what: &str) {
    let v = b.axe_violations().await;
    assert!(v.is_empty(), "axe-core on {what}: {v:#?}");
    b.screenshot(what).await;
}

#[tokio::test]
async fn the_alarm_and_webhook_pages_work_in_a_browser_and_are_accessible() {
    let app = fast_app().await;
    let broker = app
        .create_broker(&rabbitmq_broker("console-axe", "app", "correct-horse-9-x"))
        .await;
    app.wait_for_state(&broker, "RUNNING", Duration::from_secs(30))
        .await;
    let password = "console-Passw0rd-long";
    app.create_console_user(ACCOUNT, "anna", password, Role::Operator)
        .await;
    let b = berth_tests::browser::Browser::start().await;
    let c = &b.client;
    login(&b, &app, "anna", password).await;

    // A webhook: the secret shows once.
    c.goto(&format!("{}/console/webhooks", app.address))
        .await
        .unwrap();
    assert_accessible(&b, "webhooks").await;
    let (url, _got) = receiver().await;
    css(c, "#url").await.send_keys(&url).await.unwrap();
    css(c, "#description")
        .await
        .send_keys("pager")
        .await
        .unwrap();
    submit(c, "#create-hook").await;
    let secret = css(c, "#new-hook-secret").await.text().await.unwrap();
    assert!(secret.len() >= 20);
    assert_accessible(&b, "webhook-created").await;

    // The alarm form from the broker page's link: a bad threshold comes back at its field.
    c.goto(&format!("{}/console/brokers/{broker}", app.address))
        .await
        .unwrap();
    css(c, "#create-broker-alarm").await.click().await.unwrap();
    let chosen = css(c, "#brokerId").await.prop("value").await.unwrap();
    assert_eq!(chosen.as_deref(), Some(broker.as_str()));
    assert_accessible(&b, "alarms").await;
    css(c, "#name")
        .await
        .send_keys("orders unattended")
        .await
        .unwrap();
    css(c, "#metricName")
        .await
        .select_by_value("ConsumerCount")
        .await
        .unwrap();
    css(c, "#threshold").await.send_keys("lots").await.unwrap();
    submit(c, "#create-alarm").await;
    let err = css(c, "#error-threshold").await.text().await.unwrap();
    assert!(err.contains("number"), "{err}");
    let kept = css(c, "#name").await.prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("orders unattended"));
    assert_accessible(&b, "alarms-error").await;
    css(c, "#threshold").await.clear().await.unwrap();
    css(c, "#threshold").await.send_keys("0").await.unwrap();
    css(c, "#comparison")
        .await
        .select_by_value("LessThanOrEqualToThreshold")
        .await
        .unwrap();
    css(c, "#dimension")
        .await
        .select_by_value("Queue")
        .await
        .unwrap();
    css(c, "#dimensionValue")
        .await
        .send_keys("orders")
        .await
        .unwrap();
    css(c, "#webhookId").await.select_by_index(1).await.unwrap();
    css(c, "#periodSeconds").await.clear().await.unwrap();
    css(c, "#periodSeconds")
        .await
        .send_keys("10")
        .await
        .unwrap();
    submit(c, "#create-alarm").await;
    let state = css(c, "#alarm-state").await.text().await.unwrap();
    assert_eq!(state, "INSUFFICIENT_DATA");
    let alarm_path = c.current_url().await.unwrap().path().to_owned();

    // After a transition the detail page and the delivery log show it.
    consumer_count(&app, &broker, 0.0).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        c.goto(&format!("{}{alarm_path}", app.address))
            .await
            .unwrap();
        if c.find(fantoccini::Locator::Css(".history-to"))
            .await
            .is_ok()
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no history");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_accessible(&b, "alarm-detail").await;
    c.goto(&format!("{}/console/webhooks", app.address))
        .await
        .unwrap();
    css(c, "#hook-list a").await.click().await.unwrap();
    css(c, "#delivery-list").await;
    assert_accessible(&b, "webhook-detail").await;

    // Deleting: the box must be ticked (the browser enforces `required`), then it goes.
    c.goto(&format!("{}{alarm_path}", app.address))
        .await
        .unwrap();
    css(c, "#delete-confirm").await.click().await.unwrap();
    submit(c, "#delete").await;
    let notice = css(c, "#notice").await.text().await.unwrap();
    assert_eq!(notice, "Alarm deleted.");
    assert!(!api_alarm_named(&app, "orders unattended").await);
}
