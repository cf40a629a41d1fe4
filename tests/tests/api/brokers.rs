//! The walking skeleton end to end: HTTP → Postgres → reconciler → Docker → agent →
//! RabbitMQ → lapin, and back down to nothing.

use std::time::Duration;

use berth_tests::{amqp_endpoint, rabbitmq_broker, require_image, spawn_app, spawn_app_with};

use crate::amqp;

const PASSWORD: &str = "s3cret-Passw0rd-x";

#[tokio::test]
async fn create_use_and_delete_a_rabbitmq_broker() {
    let app = spawn_app_with(|s| s.unhealthy_after_secs = 2).await;
    require_image(&app.docker).await;
    let name = format!(
        "skeleton-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let id = app
        .create_broker(&rabbitmq_broker(&name, "app-user", PASSWORD))
        .await;

    let (status, v) = app.describe(&id).await;
    assert_eq!(status, 200);
    assert_eq!(v["brokerState"], "CREATION_IN_PROGRESS");
    assert_eq!(v["brokerName"], name.as_str());
    assert_eq!(
        v["brokerArn"],
        format!("arn:aws:mq:us-east-1:000000000000:broker:{name}:{id}")
    );
    assert!(v
        .get("brokerInstances")
        .and_then(|b| b.as_array())
        .is_none_or(|b| b.is_empty()));

    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(120))
        .await;
    let endpoint = amqp_endpoint(&v);
    assert!(v["brokerInstances"][0]["consoleURL"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    assert_eq!(v["users"][0]["username"], "app-user");
    assert!(
        !v.to_string().contains(PASSWORD),
        "a password leaked into DescribeBroker"
    );

    // The created user works over AMQP: a persistent message on a durable queue round-trips.
    let conn = amqp::connect(&endpoint, "app-user", PASSWORD)
        .await
        .expect("AMQP login with the created user");
    amqp::publish_persistent(&conn, "skeleton-q", b"hello berth").await;
    assert_eq!(
        amqp::get_one(&conn, "skeleton-q").await.as_deref(),
        Some(&b"hello berth"[..])
    );
    let _ = conn.close(200, "bye".into()).await;

    // Inside the engine: exactly the spec user, tagged as administrator and Berth-managed.
    let out = std::process::Command::new("docker")
        .args([
            "exec",
            &format!("berth-{id}-0"),
            "rabbitmqctl",
            "-q",
            "list_users",
            "--formatter",
            "json",
        ])
        .output()
        .expect("docker exec");
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list_users JSON");
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["user"], "app-user");
    let tags: Vec<&str> = users[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        tags.contains(&"administrator") && tags.contains(&"berth-managed"),
        "{tags:?}"
    );

    // A wrong password and the guest account are refused by the broker itself.
    assert!(amqp::connect(&endpoint, "app-user", "wrong-password-123")
        .await
        .is_err());
    assert!(amqp::connect(&endpoint, "guest", "guest").await.is_err());

    // A hung engine (container paused) makes the broker CRITICAL_ACTION_REQUIRED with the
    // reason; once it answers again the broker is RUNNING again.
    let container = format!("berth-{id}-0");
    let docker = |verb: &str| {
        let ok = std::process::Command::new("docker")
            .args([verb, &container])
            .status()
            .unwrap()
            .success();
        assert!(ok, "docker {verb}");
    };
    docker("pause");
    let v = app
        .wait_for_state(&id, "CRITICAL_ACTION_REQUIRED", Duration::from_secs(60))
        .await;
    assert_eq!(
        v["actionsRequired"][0]["actionRequiredCode"],
        "BROKER_UNHEALTHY"
    );
    docker("unpause");
    app.wait_for_state(&id, "RUNNING", Duration::from_secs(60))
        .await;

    // ListBrokers shows it.
    let list: serde_json::Value = app.get("/v1/brokers").await.json().await.unwrap();
    let summaries = list["brokerSummaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0]["brokerId"], id.as_str());
    assert_eq!(summaries[0]["brokerState"], "RUNNING");

    // Delete: DELETION_IN_PROGRESS, then 404 and no Docker object left.
    let resp = app.delete(&format!("/v1/brokers/{id}")).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["brokerId"], id.as_str());
    app.wait_until_gone(&id, Duration::from_secs(60)).await;
    assert_eq!(app.docker_objects(&id).await, Vec::<String>::new());
    app.stop().await;
}

#[tokio::test]
async fn creation_fails_with_a_reason_when_the_engine_never_gets_healthy() {
    // A 1 s deadline: RabbitMQ cannot be ready that fast, so creation must fail.
    let app = spawn_app_with(|s| s.create_timeout_secs = 1).await;
    require_image(&app.docker).await;
    let id = app
        .create_broker(&rabbitmq_broker("too-slow", "app-user", PASSWORD))
        .await;
    let v = app
        .wait_for_state(&id, "CREATION_FAILED", Duration::from_secs(60))
        .await;
    let info = v["actionsRequired"][0]["actionRequiredInfo"]
        .as_str()
        .unwrap();
    assert!(info.contains("did not become healthy"), "{info}");
    // A failed broker can still be deleted, and leaves nothing behind.
    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(60)).await;
    assert!(app.docker_objects(&id).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn healthz_answers_once_the_reconciler_is_up() {
    let app = spawn_app().await;
    let ok = berth_tests::wait_until(Duration::from_secs(10), || async {
        app.get("/healthz").await.status() == 200
    })
    .await;
    assert!(ok.is_some(), "healthz never became 200");
    app.stop().await;
}
