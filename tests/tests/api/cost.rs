//! Metering and cost: hours billed across hour boundaries with a controlled clock (the
//! `now` of `app::metering::meter`), a deleted broker keeping its bill, and accounts
//! seeing only their own cost.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use berth::app::metering::{self, PriceList};
use berth_tests::{rabbitmq_broker, spawn_app_on, TestApp, RABBITMQ_IMAGE};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn meter(app: &TestApp, now: &str) -> usize {
    let store = &app.application().context().store;
    metering::meter(store, &PriceList::default(), t(now))
        .await
        .unwrap()
}

/// (sum of instance hours, number of records) of the broker's usage.
async fn usage(pool: &sqlx::PgPool, broker: &str) -> (f64, i64) {
    sqlx::query_as("SELECT COALESCE(SUM(instance_hours), 0)::float8, COUNT(*) FROM usage_records WHERE broker_id = $1")
        .bind(broker)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn metering_bills_exactly_the_hours_used_and_deleted_brokers_keep_their_bill() {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    let app = spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), |_| {}).await;
    let pool = sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let id = app
        .create_broker(&rabbitmq_broker("metered", "app", "correct-horse-9"))
        .await;
    app.wait_for_state(&id, "RUNNING", Duration::from_secs(30))
        .await;
    // The broker's life on the test's clock: created 10:30.
    sqlx::query(
        "UPDATE metered_brokers SET created_at = '2030-01-01T10:30:00Z' WHERE broker_id = $1",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();

    // 11:15: half of hour 10, a quarter of the running hour 11.
    assert_eq!(meter(&app, "2030-01-01T11:15:00Z").await, 2);
    let (hours, records) = usage(&pool, &id).await;
    assert!(close(hours, 0.75) && records == 2, "{hours} h in {records}");
    // 12:00: hour 11 is complete and rewritten; metering again changes nothing.
    meter(&app, "2030-01-01T12:00:00Z").await;
    assert_eq!(usage(&pool, &id).await, (1.5, 2));
    meter(&app, "2030-01-01T12:00:00Z").await;
    assert_eq!(usage(&pool, &id).await, (1.5, 2));

    // Deleted: the trigger closes its life; on the test's clock that was 12:20.
    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(30)).await;
    let deleted: Option<String> =
        sqlx::query_scalar("SELECT deleted_at::text FROM metered_brokers WHERE broker_id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(deleted.is_some(), "deletion not recorded");
    sqlx::query(
        "UPDATE metered_brokers SET deleted_at = '2030-01-01T12:20:00Z' WHERE broker_id = $1",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    meter(&app, "2030-01-01T15:05:00Z").await;
    let (hours, records) = usage(&pool, &id).await;
    let expected = 0.5 + 1.0 + 20.0 / 60.0;
    assert!(
        close(hours, expected) && records == 3,
        "{hours} h in {records}"
    );
    // Nothing is left to meter for it.
    assert_eq!(meter(&app, "2030-01-01T18:00:00Z").await, 0);

    // The bill, through the API: by broker, by day, by month.
    let prices = PriceList::default();
    let instance = prices.instance_hour["mq.m7g.medium"];
    let storage = prices.storage_gb_month["EBS"] / 730.0 * 200.0;
    let cost = json_of(
        app.get("/v1/berth/cost?start=2030-01-01&end=2030-01-02")
            .await,
        200,
    )
    .await;
    let by_broker = cost["byBroker"].as_array().unwrap();
    assert_eq!(by_broker.len(), 1, "{cost}");
    assert_eq!(by_broker[0]["brokerId"], id.as_str());
    assert_eq!(by_broker[0]["brokerName"], "metered");
    assert!(
        close(by_broker[0]["instanceHours"].as_f64().unwrap(), expected),
        "{cost}"
    );
    let total = cost["total"].as_f64().unwrap();
    assert!(close(total, expected * (instance + storage)), "{cost}");
    assert_eq!(cost["byPeriod"][0]["periodStart"], "2030-01-01T00:00:00Z");
    let monthly = json_of(
        app.get("/v1/berth/cost?start=2030-01-01&end=2030-02-01&granularity=MONTHLY")
            .await,
        200,
    )
    .await;
    assert!(
        close(monthly["byPeriod"][0]["cost"].as_f64().unwrap(), total),
        "{monthly}"
    );
    let outside = json_of(
        app.get("/v1/berth/cost?start=2030-01-02&end=2030-01-03")
            .await,
        200,
    )
    .await;
    assert_eq!(outside["total"], 0.0);
    assert_eq!(
        app.get("/v1/berth/cost?start=yesterday").await.status(),
        400
    );

    // Another account sees none of it.
    let other = app.signer_for_account("333333333333").await;
    let get = |p: String| {
        let other = other.clone();
        let http = app.http.clone();
        let url = format!("{}{p}", app.address);
        async move { other.send(&http, reqwest::Method::GET, &url, None).await }
    };
    let theirs = json_of(
        get("/v1/berth/cost?start=2030-01-01&end=2030-01-02".into()).await,
        200,
    )
    .await;
    assert_eq!(theirs["byBroker"], serde_json::json!([]));
    assert_eq!(theirs["total"], 0.0);
    assert_eq!(
        get(format!("/v1/berth/brokers/{id}/cost")).await.status(),
        404
    );
}

#[tokio::test]
async fn a_live_broker_has_a_running_month_to_date_total() {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    let app = spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), |_| {}).await;
    let id = app
        .create_broker(&rabbitmq_broker("running-total", "app", "correct-horse-9"))
        .await;
    let before = json_of(app.get(&format!("/v1/berth/brokers/{id}/cost")).await, 200).await;
    assert_eq!(before["cost"], 0.0);
    // Metered 90 s after creation on the real clock.
    let created: DateTime<Utc> = {
        let (_, d) = app.describe(&id).await;
        t(d["created"].as_str().unwrap())
    };
    let now = created + chrono::TimeDelta::seconds(90);
    metering::meter(
        &app.application().context().store,
        &PriceList::default(),
        now,
    )
    .await
    .unwrap();
    let after = json_of(app.get(&format!("/v1/berth/brokers/{id}/cost")).await, 200).await;
    let hours = after["instanceHours"].as_f64().unwrap();
    assert!((hours - 90.0 / 3600.0).abs() < 1e-3, "{after}");
    assert!(after["cost"].as_f64().unwrap() > 0.0, "{after}");
    assert_eq!(after["currency"], "USD");
}
