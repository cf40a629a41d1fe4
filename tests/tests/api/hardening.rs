//! Probes from the hardening review, kept as tests: regions are kept apart, a stopped
//! database is a fast 503, and the input gaps (tags, VPC ids, names) are closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use berth::embedded_pg::EmbeddedPostgres;
use berth_tests::{rabbitmq_broker, spawn_app_on, Signer, TestApp, RABBITMQ_IMAGE};

async fn fake_app_with(tweak: impl FnOnce(&mut berth::config::Settings)) -> TestApp {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), tweak).await
}

fn in_region(signer: &Signer, region: &str) -> Signer {
    Signer {
        region: region.into(),
        ..signer.clone()
    }
}

async fn call(
    app: &TestApp,
    signer: &Signer,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let resp = signer
        .send(&app.http, method, &format!("{}{path}", app.address), body)
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn encode(arn: &str) -> String {
    arn.replace(':', "%3A")
}

#[tokio::test]
async fn regions_are_kept_apart() {
    use reqwest::Method;
    let app = fake_app_with(|_| {}).await;
    let east = app.signer.clone();
    let west = in_region(&east, "eu-west-1");
    let body = rabbitmq_broker("twin", "admin-user", "s3cret-Passw0rd-x");

    let (status, created) = call(&app, &east, Method::POST, "/v1/brokers", Some(&body)).await;
    assert_eq!(status, 200, "{created}");
    let id = created["brokerId"].as_str().unwrap().to_owned();
    let arn = created["brokerArn"].as_str().unwrap().to_owned();
    assert!(arn.starts_with("arn:aws:mq:us-east-1:"), "{arn}");

    // Invisible from another region, by id, in lists, by ARN, and for deletion.
    let (status, _) = call(&app, &west, Method::GET, &format!("/v1/brokers/{id}"), None).await;
    assert_eq!(status, 404);
    let (_, list) = call(&app, &west, Method::GET, "/v1/brokers", None).await;
    assert_eq!(list["brokerSummaries"], json!([]), "{list}");
    let (status, _) = call(
        &app,
        &west,
        Method::GET,
        &format!("/v1/tags/{}", encode(&arn)),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let west_arn = arn.replace(":us-east-1:", ":eu-west-1:");
    let (status, _) = call(
        &app,
        &west,
        Method::GET,
        &format!("/v1/tags/{}", encode(&west_arn)),
        None,
    )
    .await;
    assert_eq!(
        status, 404,
        "an ARN rewritten to the caller's region names nothing"
    );
    let (status, _) = call(
        &app,
        &west,
        Method::DELETE,
        &format!("/v1/brokers/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The same name is free in the other region, and its ARN carries that region.
    let (status, twin) = call(&app, &west, Method::POST, "/v1/brokers", Some(&body)).await;
    assert_eq!(status, 200, "{twin}");
    assert!(twin["brokerArn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:mq:eu-west-1:"));
    let (_, list) = call(&app, &west, Method::GET, "/v1/brokers", None).await;
    assert_eq!(list["brokerSummaries"].as_array().unwrap().len(), 1);
    let (_, mine) = call(&app, &east, Method::GET, &format!("/v1/brokers/{id}"), None).await;
    assert_eq!(mine["brokerArn"], arn, "the original keeps its own region");

    // Configurations too.
    let cfg = json!({"name": "tuned", "engineType": "RABBITMQ", "engineVersion": "4.0"});
    let (status, c) = call(&app, &east, Method::POST, "/v1/configurations", Some(&cfg)).await;
    assert_eq!(status, 200, "{c}");
    assert!(c["arn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:mq:us-east-1:"));
    let (_, list) = call(&app, &west, Method::GET, "/v1/configurations", None).await;
    assert_eq!(list["configurations"], json!([]), "{list}");
    let cid = c["id"].as_str().unwrap();
    let (status, v) = call(
        &app,
        &west,
        Method::GET,
        &format!("/v1/configurations/{cid}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        v["message"],
        format!("Can't find requested configuration [{cid}]. Make sure your configuration exists.")
    );

    // A region this installation does not serve: AWS's 403.
    let resp = in_region(&east, "xx-fake-9")
        .send(
            &app.http,
            Method::GET,
            &format!("{}/v1/brokers", app.address),
            None,
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "InvalidSignatureException"
    );
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("valid region"),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_installation_serves_only_its_configured_regions() {
    let app = fake_app_with(|s| s.regions = vec!["us-east-1".into(), "eu-central-1".into()]).await;
    let url = format!("{}/v1/brokers", app.address);
    for (region, status) in [
        ("us-east-1", 200),
        ("eu-central-1", 200),
        ("eu-west-1", 403),
    ] {
        let resp = in_region(&app.signer, region)
            .send(&app.http, reqwest::Method::GET, &url, None)
            .await;
        assert_eq!(resp.status().as_u16(), status, "{region}");
    }
    app.stop().await;
}

async fn expect_400(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    attribute: &str,
) {
    let resp = app.send(method.clone(), path, body).await;
    assert_eq!(resp.status(), 400, "{method} {path} {body:?}");
    assert_eq!(resp.headers()["x-amzn-errortype"], "BadRequestException");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["errorAttribute"], attribute,
        "{method} {path} {body:?}: {v}"
    );
}

#[tokio::test]
async fn tags_vpc_ids_and_names_are_validated_as_amazon_mq_does() {
    use reqwest::Method;
    let app = fake_app_with(|_| {}).await;
    let good = rabbitmq_broker("a.b~c_d-1", "admin-user", "s3cret-Passw0rd-x");
    let mut bad_tags = good.clone();
    bad_tags["tags"] = json!({"aws:owner": "x"});
    expect_400(&app, Method::POST, "/v1/brokers", Some(&bad_tags), "tags").await;
    let mut bad_subnets = good.clone();
    bad_subnets["subnetIds"] = json!(["subnet-0123abcd", "subnet-89abcdef"]);
    expect_400(
        &app,
        Method::POST,
        "/v1/brokers",
        Some(&bad_subnets),
        "subnetIds",
    )
    .await;
    let mut bad_sg = good.clone();
    bad_sg["securityGroups"] = json!(["default"]);
    expect_400(
        &app,
        Method::POST,
        "/v1/brokers",
        Some(&bad_sg),
        "securityGroups",
    )
    .await;

    // Periods and tildes are allowed in names; good VPC ids are kept and described;
    // engineType is case-insensitive (Terraform writes "RabbitMQ"), answered upper-case.
    let mut body = good.clone();
    body["engineType"] = json!("RabbitMQ");
    body["subnetIds"] = json!(["subnet-0123456789abcdef0"]);
    body["securityGroups"] = json!(["sg-0123abcd"]);
    let id = app.create_broker(&body).await;
    let (_, d) = app.describe(&id).await;
    assert_eq!(d["brokerName"], "a.b~c_d-1");
    assert_eq!(d["engineType"], "RABBITMQ");
    assert_eq!(d["subnetIds"], json!(["subnet-0123456789abcdef0"]));
    assert_eq!(d["securityGroups"], json!(["sg-0123abcd"]));
    let arn = d["brokerArn"].as_str().unwrap().to_owned();

    let path = format!("/v1/brokers/{id}");
    expect_400(
        &app,
        Method::PUT,
        &path,
        Some(&json!({"securityGroups": ["L\u{b4}", "L\u{b4}"]})),
        "securityGroups",
    )
    .await;
    expect_400(
        &app,
        Method::PUT,
        &path,
        Some(&json!({"securityGroups": ["sg-0123abcd", "sg-0123abcd"]})),
        "securityGroups",
    )
    .await;
    let resp = app
        .put_json(
            &path,
            &json!({"securityGroups": ["sg-89abcdef", "sg-0123456789abcdef0"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let (_, d) = app.describe(&id).await;
    assert_eq!(
        d["securityGroups"],
        json!(["sg-89abcdef", "sg-0123456789abcdef0"])
    );

    let tags = format!("/v1/tags/{}", encode(&arn));
    expect_400(
        &app,
        Method::POST,
        &tags,
        Some(&json!({"tags": {"AWS:team": "x"}})),
        "tags",
    )
    .await;
    expect_400(
        &app,
        Method::POST,
        &tags,
        Some(&json!({"tags": {"bell\u{7}": "x"}})),
        "tags",
    )
    .await;
    expect_400(
        &app,
        Method::POST,
        &tags,
        Some(&json!({"tags": {"team": "line\nbreak"}})),
        "tags",
    )
    .await;
    expect_400(
        &app,
        Method::POST,
        &tags,
        Some(&json!({"tags": {}})),
        "tags",
    )
    .await;
    expect_400(&app, Method::DELETE, &tags, None, "tagKeys").await;
    expect_400(
        &app,
        Method::DELETE,
        &format!("{tags}?tagKeys="),
        None,
        "tagKeys",
    )
    .await;
    let resp = app
        .post_json(&tags, &json!({"tags": {"team": "payments / eu-1"}}))
        .await;
    assert_eq!(resp.status(), 204);
    let (_, d) = app.describe(&id).await;
    assert_eq!(d["tags"], json!({"team": "payments / eu-1"}));
    app.stop().await;
}

#[tokio::test]
async fn a_stopped_database_is_a_fast_503_and_recovery_is_automatic() {
    let dir = tempfile::Builder::new()
        .prefix("berth-pg-outage-")
        .tempdir_in("/tmp")
        .unwrap();
    let pg_dir = dir.path().join("pg");
    let pg = EmbeddedPostgres::ensure_running(&pg_dir, None)
        .await
        .unwrap();
    pg.create_database("berth").await.unwrap();
    let url = pg.url("berth");
    let app = fake_app_with(|s| s.database_url = Some(url)).await;
    assert_eq!(app.get("/v1/brokers").await.status(), 200);

    pg.stop().await.unwrap();
    for path in ["/v1/brokers", "/v1/configurations"] {
        let started = Instant::now();
        let resp = app.get(path).await;
        let took = started.elapsed();
        assert_eq!(resp.status(), 503, "{path}");
        assert_eq!(resp.headers()["x-amzn-errortype"], "ServiceUnavailable");
        assert!(resp.headers().contains_key("retry-after"));
        let v: Value = resp.json().await.unwrap();
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(took < Duration::from_secs(4), "{path} took {took:?}");
    }
    let started = Instant::now();
    let resp = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["database"], false, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("database"), "{v}");

    // The database comes back: so does the API, with no restart.
    let pg = EmbeddedPostgres::ensure_running(&pg_dir, Some(pg.port()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.get("/v1/brokers").await.status() != 200 {
        assert!(Instant::now() < deadline, "API did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
    pg.stop().await.unwrap();
}
