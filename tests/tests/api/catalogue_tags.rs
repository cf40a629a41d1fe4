//! DescribeBrokerEngineTypes / DescribeBrokerInstanceOptions and tags over HTTP.
//! API logic only: an in-memory runtime keeps these cheap.

use std::sync::Arc;

use serde_json::{json, Value};

use berth_tests::{rabbitmq_broker, spawn_app_on, TestApp, RABBITMQ_IMAGE};

async fn fake_app() -> TestApp {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), |_| {}).await
}

#[tokio::test]
async fn catalogue_answers_what_berth_can_run() {
    let app = fake_app().await;
    let v: Value = app
        .get("/v1/broker-engine-types")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["brokerEngineTypes"],
        json!([
            {"engineType": "ACTIVEMQ", "engineVersions": [{"name": "5.17"}]},
            {"engineType": "RABBITMQ", "engineVersions": [{"name": "4.3"}, {"name": "4.0"}, {"name": "3.10"}]},
        ])
    );
    let v: Value = app
        .get("/v1/broker-instance-options?engineType=RABBITMQ&hostInstanceType=mq.m7g.large")
        .await
        .json()
        .await
        .unwrap();
    let opts = v["brokerInstanceOptions"].as_array().unwrap();
    assert_eq!(opts.len(), 1);
    assert_eq!(opts[0]["storageType"], "EBS");
    assert_eq!(opts[0]["supportedEngineVersions"], json!(["4.3", "4.0"]));
    assert_eq!(
        opts[0]["supportedDeploymentModes"],
        json!(["SINGLE_INSTANCE", "CLUSTER_MULTI_AZ"])
    );
    // ActiveMQ: a pair needs EFS and more than a t3.micro.
    let modes = |query: &'static str| {
        let app = &app;
        async move {
            let v: Value = app.get(query).await.json().await.unwrap();
            v["brokerInstanceOptions"][0]["supportedDeploymentModes"].clone()
        }
    };
    assert_eq!(
        modes("/v1/broker-instance-options?engineType=ACTIVEMQ&hostInstanceType=mq.m5.large&storageType=EFS").await,
        json!(["SINGLE_INSTANCE", "ACTIVE_STANDBY_MULTI_AZ"])
    );
    assert_eq!(
        modes("/v1/broker-instance-options?engineType=ACTIVEMQ&hostInstanceType=mq.m5.large&storageType=EBS").await,
        json!(["SINGLE_INSTANCE"])
    );
    assert_eq!(
        modes("/v1/broker-instance-options?engineType=ACTIVEMQ&hostInstanceType=mq.t3.micro&storageType=EFS").await,
        json!(["SINGLE_INSTANCE"])
    );
    let resp = app
        .get("/v1/broker-instance-options?engineType=KAFKA")
        .await;
    assert_eq!(resp.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn tags_are_created_listed_and_deleted_by_arn() {
    let app = fake_app().await;
    let mut body = rabbitmq_broker("tagged", "admin-user", "s3cret-Passw0rd-x");
    body["tags"] = json!({"team": "payments"});
    let id = app.create_broker(&body).await;
    let (_, d) = app.describe(&id).await;
    let arn = d["brokerArn"].as_str().unwrap().to_owned();
    let enc: String = arn.replace(':', "%3A");

    let tags: Value = app
        .get(&format!("/v1/tags/{enc}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tags, json!({"tags": {"team": "payments"}}));

    let resp = app
        .post_json(
            &format!("/v1/tags/{enc}"),
            &json!({"tags": {"env": "prod", "cost center": "42"}}),
        )
        .await;
    assert_eq!(resp.status(), 204);
    let tags: Value = app
        .get(&format!("/v1/tags/{enc}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        tags["tags"],
        json!({"team": "payments", "env": "prod", "cost center": "42"})
    );

    let resp = app
        .delete(&format!(
            "/v1/tags/{enc}?tagKeys=team&tagKeys=cost%20center"
        ))
        .await;
    assert_eq!(resp.status(), 204);
    let (_, d) = app.describe(&id).await;
    assert_eq!(d["tags"], json!({"env": "prod"}));

    // Too many tags, an unknown broker, another account's ARN.
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_eq!(
        app.post_json(&format!("/v1/tags/{enc}"), &json!({"tags": many}))
            .await
            .status(),
        400
    );
    let other = enc.replace("000000000000", "111111111111");
    assert_eq!(app.get(&format!("/v1/tags/{other}")).await.status(), 404);
    let missing = enc.replace(&id, "b-00000000-0000-4000-8000-000000000000");
    assert_eq!(app.get(&format!("/v1/tags/{missing}")).await.status(), 404);
    app.stop().await;
}

/// DescribeBroker is served from a cache; a change made outside the server (another
/// process, a manual UPDATE) reaches it through the database's change notifications,
/// long before the cache's 60 s expiry, and a change through the API is seen at once.
#[tokio::test]
async fn describe_broker_sees_changes_made_outside_the_server() {
    let app = fake_app().await;
    let id = app
        .create_broker(&rabbitmq_broker("cache-probe", "admin", "probe-password-1"))
        .await;
    // Twice: the second answer may come from the cache.
    assert_eq!(tags_of(&app, &id).await, json!({}));
    assert_eq!(tags_of(&app, &id).await, json!({}));

    let db = sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    sqlx::query("UPDATE brokers SET tags = '{\"team\": \"ops\"}'::jsonb WHERE id = $1")
        .bind(&id)
        .execute(&db)
        .await
        .unwrap();
    let (app_ref, id_ref) = (&app, &id);
    let seen = berth_tests::wait_until(std::time::Duration::from_secs(5), || async move {
        tags_of(app_ref, id_ref).await == json!({"team": "ops"})
    })
    .await;
    assert!(seen.is_some(), "the outside change never showed");

    // Through the API: the very next DescribeBroker shows it.
    let (_, d) = app.describe(&id).await;
    let enc = d["brokerArn"].as_str().unwrap().replace(':', "%3A");
    let resp = app
        .post_json(&format!("/v1/tags/{enc}"), &json!({"tags": {"env": "ci"}}))
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        tags_of(&app, &id).await,
        json!({"team": "ops", "env": "ci"})
    );
}

async fn tags_of(app: &TestApp, id: &str) -> Value {
    let (status, v) = app.describe(id).await;
    assert_eq!(status, 200, "{v}");
    v["tags"].clone()
}
