//! Bad input gets a 4xx in Amazon MQ's error shape and creates nothing.

use serde_json::{json, Value};

use berth_tests::{rabbitmq_broker, spawn_app};

async fn expect_error(
    app: &berth_tests::TestApp,
    body: &Value,
    status: u16,
    kind: &str,
    attribute: &str,
) {
    let resp = app.post_json("/v1/brokers", body).await;
    assert_eq!(resp.status().as_u16(), status, "body {body}");
    assert_eq!(resp.headers()["x-amzn-errortype"], kind, "body {body}");
    assert!(resp.headers().contains_key("x-amzn-requestid"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["errorAttribute"], attribute, "body {body}: {v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

#[tokio::test]
async fn bad_create_requests_are_400_and_create_nothing() {
    let app = spawn_app().await;
    let good = rabbitmq_broker("valid-name", "admin-user", "s3cret-Passw0rd-x");
    let cases: Vec<(Value, &str)> = vec![
        (
            with(good.clone(), "brokerName", json!("has space")),
            "brokerName",
        ),
        (
            with(good.clone(), "brokerName", json!("x".repeat(51))),
            "brokerName",
        ),
        (with(good.clone(), "brokerName", json!("")), "brokerName"),
        (without(good.clone(), "brokerName"), "brokerName"),
        (
            with(good.clone(), "engineType", json!("KAFKA")),
            "engineType",
        ),
        (
            with(good.clone(), "deploymentMode", json!("BOGUS")),
            "deploymentMode",
        ),
        (
            with(
                good.clone(),
                "deploymentMode",
                json!("ACTIVE_STANDBY_MULTI_AZ"),
            ),
            "deploymentMode",
        ),
        (
            with(good.clone(), "hostInstanceType", json!("mq.m5.huge")),
            "hostInstanceType",
        ),
        (
            with(good.clone(), "hostInstanceType", json!("mq.m5.large")),
            "hostInstanceType",
        ),
        (
            with(good.clone(), "engineVersion", json!("3.13")),
            "engineVersion",
        ),
        (
            without(good.clone(), "publiclyAccessible"),
            "publiclyAccessible",
        ),
        (
            with(good.clone(), "storageType", json!("EFS")),
            "storageType",
        ),
        (with(good.clone(), "users", json!([])), "users"),
        (
            with(
                good.clone(),
                "users",
                json!([{"username": "a1-user", "password": "s3cret-Passw0rd-x"}, {"username": "b2-user", "password": "s3cret-Passw0rd-x"}]),
            ),
            "users",
        ),
        (
            with(
                good.clone(),
                "users",
                json!([{"username": "guest", "password": "s3cret-Passw0rd-x"}]),
            ),
            "users.username",
        ),
        (
            with(
                good.clone(),
                "users",
                json!([{"username": "a", "password": "s3cret-Passw0rd-x"}]),
            ),
            "users.username",
        ),
        (
            with(
                good.clone(),
                "users",
                json!([{"username": "admin-user", "password": "short"}]),
            ),
            "users.password",
        ),
        (
            with(
                good.clone(),
                "users",
                json!([{"username": "admin-user", "password": "aaaaaaaaaaaaab"}]),
            ),
            "users.password",
        ),
        (
            with(
                good.clone(),
                "users",
                json!([{"username": "admin-user", "password": "s3cret,Passw0rd"}]),
            ),
            "users.password",
        ),
        (
            with(
                good.clone(),
                "maintenanceWindowStartTime",
                json!({"dayOfWeek": "FUNDAY", "timeOfDay": "02:00"}),
            ),
            "maintenanceWindowStartTime",
        ),
        (
            with(good.clone(), "publiclyAccessible", json!("yes")),
            "body",
        ),
    ];
    for (body, attribute) in &cases {
        expect_error(&app, body, 400, "BadRequestException", attribute).await;
    }
    // What the multi-AZ modes ask of the rest of the request.
    let pair = json!({
        "brokerName": "pair", "engineType": "ACTIVEMQ", "engineVersion": "5.17",
        "deploymentMode": "ACTIVE_STANDBY_MULTI_AZ", "hostInstanceType": "mq.m5.large",
        "storageType": "EFS", "publiclyAccessible": false,
        "users": [{"username": "app", "password": "s3cret-Passw0rd-x"}],
    });
    let cluster = with(good.clone(), "deploymentMode", json!("CLUSTER_MULTI_AZ"));
    let ha_cases: Vec<(Value, &str)> = vec![
        // EBS cannot be shared by the two brokers of a pair.
        (
            with(pair.clone(), "storageType", json!("EBS")),
            "storageType",
        ),
        // Amazon MQ refuses mq.t3.micro for multi-AZ modes.
        (
            with(pair.clone(), "hostInstanceType", json!("mq.t3.micro")),
            "hostInstanceType",
        ),
        // Two subnets (one per zone), not one.
        (
            with(pair.clone(), "subnetIds", json!(["subnet-0123abcd"])),
            "subnetIds",
        ),
        // A cluster needs RabbitMQ 4.x here.
        (
            with(
                with(cluster.clone(), "engineVersion", json!("3.10")),
                "hostInstanceType",
                json!("mq.m5.large"),
            ),
            "deploymentMode",
        ),
        (
            with(
                cluster.clone(),
                "subnetIds",
                json!([
                    "subnet-0123abcd",
                    "subnet-0123abce",
                    "subnet-0123abcf",
                    "subnet-0123abc0"
                ]),
            ),
            "subnetIds",
        ),
    ];
    for (body, attribute) in &ha_cases {
        expect_error(&app, body, 400, "BadRequestException", attribute).await;
    }
    // Not JSON at all.
    let url = format!("{}/v1/brokers", app.address);
    let resp = app
        .signer
        .send_bytes(
            &app.http,
            reqwest::Method::POST,
            &url,
            Some(b"{not json".to_vec()),
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), 400);

    // Nothing was created.
    let list: Value = app.get("/v1/brokers").await.json().await.unwrap();
    assert_eq!(list["brokerSummaries"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn duplicate_names_conflict_and_request_ids_are_idempotent() {
    let app = spawn_app().await;
    let body = rabbitmq_broker("dup-name", "admin-user", "s3cret-Passw0rd-x");
    let id = app.create_broker(&body).await;
    // Same creatorRequestId: same broker, not a conflict.
    assert_eq!(app.create_broker(&body).await, id);
    // Same name, new request id: 409.
    let again = with(
        body.clone(),
        "creatorRequestId",
        json!(uuid::Uuid::new_v4().to_string()),
    );
    expect_error(&app, &again, 409, "ConflictException", "brokerName").await;
    let list: Value = app.get("/v1/brokers").await.json().await.unwrap();
    assert_eq!(list["brokerSummaries"].as_array().unwrap().len(), 1);

    // Delete it straight away (even mid-creation) and make sure nothing is left.
    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, std::time::Duration::from_secs(60))
        .await;
    assert!(app.docker_objects(&id).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn unknown_brokers_and_routes_are_404() {
    let app = spawn_app().await;
    for path in [
        "/v1/brokers/b-00000000-0000-4000-8000-000000000000",
        "/v1/brokers/not-an-id",
    ] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["x-amzn-errortype"], "NotFoundException");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["errorAttribute"], "broker-id");
        assert_eq!(app.delete(path).await.status(), 404);
    }
    let resp = app.get("/v1/nothing-here").await;
    assert_eq!(resp.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn list_brokers_paginates() {
    // Pagination is API logic: an in-memory runtime keeps this test cheap.
    let runtime = std::sync::Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        berth_tests::RABBITMQ_IMAGE,
    ]));
    let app = berth_tests::spawn_app_on(
        runtime,
        std::sync::Arc::new(crate::reconciler::ReadyAgent),
        |_| {},
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            app.create_broker(&rabbitmq_broker(
                &format!("page-{i}"),
                "admin-user",
                "s3cret-Passw0rd-x",
            ))
            .await,
        );
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/brokers?maxResults=2&nextToken={t}"),
            None => "/v1/brokers?maxResults=2".to_owned(),
        };
        let v: Value = app.get(&path).await.json().await.unwrap();
        let page = v["brokerSummaries"].as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(
            page.iter()
                .map(|b| b["brokerId"].as_str().unwrap().to_owned()),
        );
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let resp = app.get("/v1/brokers?maxResults=0").await;
    assert_eq!(resp.status(), 400);
    let resp = app.get("/v1/brokers?nextToken=garbage!").await;
    assert_eq!(resp.status(), 400);
    for id in &ids {
        assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    }
    for id in &ids {
        app.wait_until_gone(id, std::time::Duration::from_secs(60))
            .await;
    }
    app.stop().await;
}
