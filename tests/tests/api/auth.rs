//! Every /v1/ call is SigV4-authenticated, and an account sees only its own brokers.

use std::sync::Arc;

use serde_json::Value;

use berth_tests::{rabbitmq_broker, spawn_app_on, Signer, TestApp, RABBITMQ_IMAGE};

async fn fake_app() -> TestApp {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), |_| {}).await
}

async fn expect_403(resp: reqwest::Response, code: &str) {
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["x-amzn-errortype"], code);
    let v: Value = resp.json().await.unwrap();
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

#[tokio::test]
async fn unsigned_and_badly_signed_requests_are_refused() {
    let app = fake_app().await;
    let url = format!("{}/v1/brokers", app.address);
    expect_403(
        app.http.get(&url).send().await.unwrap(),
        "MissingAuthenticationTokenException",
    )
    .await;

    let wrong_secret = Signer {
        secret_access_key: "not-the-secret".into(),
        ..app.signer.clone()
    };
    expect_403(
        wrong_secret
            .send(&app.http, reqwest::Method::GET, &url, None)
            .await,
        "InvalidSignatureException",
    )
    .await;

    let unknown = Signer {
        access_key_id: "AKIAUNKNOWNUNKNOWN12".into(),
        ..app.signer.clone()
    };
    expect_403(
        unknown
            .send(&app.http, reqwest::Method::GET, &url, None)
            .await,
        "UnrecognizedClientException",
    )
    .await;

    // A body changed after signing.
    let body = serde_json::to_vec(&rabbitmq_broker(
        "signed",
        "admin-user",
        "s3cret-Passw0rd-x",
    ))
    .unwrap();
    let mut req = app.http.post(&url);
    for (k, v) in app
        .signer
        .headers("POST", &url, &body, Some("application/json"))
    {
        req = req.header(k, v);
    }
    let tampered = String::from_utf8(body).unwrap().replace("signed", "signe2");
    let resp = req
        .header("content-type", "application/json")
        .body(tampered)
        .send()
        .await
        .unwrap();
    expect_403(resp, "InvalidSignatureException").await;

    // Nothing got created, and health stays open for operators.
    let list: Value = app.get("/v1/brokers").await.json().await.unwrap();
    assert!(list["brokerSummaries"].as_array().unwrap().is_empty());
    // (Unsigned; 200 once the reconciler's first sweep is done.)
    berth_tests::wait_until(std::time::Duration::from_secs(30), || async {
        app.http
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await
    .expect("unsigned /healthz answers 200");
    app.stop().await;
}

#[tokio::test]
async fn accounts_see_only_their_own_brokers() {
    let app = fake_app().await;
    let id = app
        .create_broker(&rabbitmq_broker("mine", "admin-user", "s3cret-Passw0rd-x"))
        .await;
    let other = app.signer_for_account("111122223333").await;
    let get = |path: String| {
        let other = other.clone();
        let http = app.http.clone();
        let base = app.address.clone();
        async move {
            other
                .send(&http, reqwest::Method::GET, &format!("{base}{path}"), None)
                .await
        }
    };
    assert_eq!(get(format!("/v1/brokers/{id}")).await.status(), 404);
    let list: Value = get("/v1/brokers".into()).await.json().await.unwrap();
    assert!(list["brokerSummaries"].as_array().unwrap().is_empty());
    let url = format!("{}/v1/brokers/{id}", app.address);
    assert_eq!(
        other
            .send(&app.http, reqwest::Method::DELETE, &url, None)
            .await
            .status(),
        404
    );
    // The same name is free in the other account.
    let url = format!("{}/v1/brokers", app.address);
    let body = rabbitmq_broker("mine", "admin-user", "s3cret-Passw0rd-x");
    let resp = other
        .send(&app.http, reqwest::Method::POST, &url, Some(&body))
        .await;
    assert_eq!(resp.status(), 200);
    let theirs: Value = resp.json().await.unwrap();
    assert!(theirs["brokerArn"]
        .as_str()
        .unwrap()
        .contains(":111122223333:broker:mine:"));
    // The owner still sees exactly its own.
    let (status, _) = app.describe(&id).await;
    assert_eq!(status, 200);
    let mine: Value = app.get("/v1/brokers").await.json().await.unwrap();
    assert_eq!(mine["brokerSummaries"].as_array().unwrap().len(), 1);
    app.stop().await;
}
