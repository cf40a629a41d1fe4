//! Configurations and revisions: the API (on an in-memory runtime) and the real effect
//! on a RabbitMQ broker (a revision's setting is live after create and after a reboot).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use berth_tests::{
    rabbitmq_broker, require_image, spawn_app, spawn_app_on, TestApp, RABBITMQ_IMAGE,
};

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(s: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

async fn create_configuration(app: &TestApp, name: &str) -> Value {
    let resp = app
        .post_json(
            "/v1/configurations",
            &json!({"name": name, "engineType": "RABBITMQ", "engineVersion": "4.0"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn configurations_have_sanitized_immutable_revisions() {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    let app = spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), |_| {}).await;
    let c = create_configuration(&app, "tuned").await;
    let id = c["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("c-"));
    assert_eq!(
        c["arn"],
        format!("arn:aws:mq:us-east-1:000000000000:configuration:{id}")
    );
    assert_eq!(c["latestRevision"]["revision"], 1);
    let dup = app
        .post_json(
            "/v1/configurations",
            &json!({"name": "tuned", "engineType": "RABBITMQ"}),
        )
        .await;
    assert_eq!(dup.status(), 409);
    let bad = app
        .post_json(
            "/v1/configurations",
            &json!({"name": "bad name", "engineType": "RABBITMQ"}),
        )
        .await;
    assert_eq!(bad.status(), 400);

    // A new revision keeps what is allowed and reports what it removed.
    let data =
        "heartbeat = 30\nlisteners.tcp.default = 1234\nbogus.key = 1\nconsumer_timeout = -1\n";
    let resp = app
        .put_json(
            &format!("/v1/configurations/{id}"),
            &json!({"data": b64(data), "description": "tuning"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["latestRevision"]["revision"], 2);
    assert_eq!(
        v["warnings"],
        json!([
            {"reason": "DISALLOWED_ELEMENT_REMOVED", "elementName": "listeners.tcp.default"},
            {"reason": "DISALLOWED_ELEMENT_REMOVED", "elementName": "bogus.key"},
            {"reason": "INVALID_ATTRIBUTE_VALUE_REMOVED", "elementName": "consumer_timeout"},
        ])
    );
    let rev: Value = app
        .get(&format!("/v1/configurations/{id}/revisions/2"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unb64(rev["data"].as_str().unwrap()), "heartbeat = 30\n");
    assert_eq!(rev["description"], "tuning");
    let rev1: Value = app
        .get(&format!("/v1/configurations/{id}/revisions/1"))
        .await
        .json()
        .await
        .unwrap();
    assert!(unb64(rev1["data"].as_str().unwrap()).contains("consumer_timeout"));
    assert_eq!(
        app.get(&format!("/v1/configurations/{id}/revisions/9"))
            .await
            .status(),
        404
    );

    // Input that is not cuttlefish at all is a 400 and adds no revision.
    for data in ["%%%not-base64", &b64("heartbeat 30")] {
        let resp = app
            .put_json(&format!("/v1/configurations/{id}"), &json!({"data": data}))
            .await;
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.json::<Value>().await.unwrap()["errorAttribute"],
            "data"
        );
    }
    let revs: Value = app
        .get(&format!("/v1/configurations/{id}/revisions?maxResults=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revs["revisions"].as_array().unwrap().len(), 1);
    let next = revs["nextToken"].as_str().unwrap();
    let revs2: Value = app
        .get(&format!(
            "/v1/configurations/{id}/revisions?maxResults=5&nextToken={next}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revs2["revisions"][0]["revision"], 2);
    assert!(revs2.get("nextToken").is_none());

    let d: Value = app
        .get(&format!("/v1/configurations/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["latestRevision"]["revision"], 2);
    let list: Value = app.get("/v1/configurations").await.json().await.unwrap();
    assert_eq!(list["configurations"].as_array().unwrap().len(), 1);

    // Tags by configuration ARN.
    let arn = c["arn"].as_str().unwrap().replace(':', "%3A");
    assert_eq!(
        app.post_json(&format!("/v1/tags/{arn}"), &json!({"tags": {"k": "v"}}))
            .await
            .status(),
        204
    );
    let tags: Value = app
        .get(&format!("/v1/tags/{arn}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!({"k": "v"}));

    // A broker using it: unknown configurations are refused, in-use ones can't be deleted.
    let mut body = rabbitmq_broker("configured", "admin-user", "s3cret-Passw0rd-x");
    body["configuration"] = json!({"id": "c-00000000-0000-4000-8000-000000000000"});
    assert_eq!(app.post_json("/v1/brokers", &body).await.status(), 400);
    body["configuration"] = json!({"id": id, "revision": 2});
    let broker = app.create_broker(&body).await;
    let (_, b) = app.describe(&broker).await;
    assert_eq!(
        b["configurations"]["current"],
        json!({"id": id, "revision": 2})
    );
    assert_eq!(
        app.delete(&format!("/v1/configurations/{id}"))
            .await
            .status(),
        409
    );

    // Promote has nothing to promote; shared resources are empty.
    let resp = app
        .post_json(
            &format!("/v1/brokers/{broker}/promote"),
            &json!({"mode": "SWITCHOVER"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errorAttribute"],
        "broker-id"
    );
    let shared: Value = app
        .get(&format!("/v1/brokers/{broker}/shared-resources"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shared["sharedResources"], json!([]));

    assert_eq!(
        app.delete(&format!("/v1/brokers/{broker}")).await.status(),
        200
    );
    app.wait_until_gone(&broker, Duration::from_secs(30)).await;
    assert_eq!(
        app.delete(&format!("/v1/configurations/{id}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/v1/configurations/{id}")).await.status(),
        404
    );
    app.stop().await;
}

fn engine_env(id: &str, key: &str) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "exec",
            &format!("berth-{id}-0"),
            "rabbitmqctl",
            "-q",
            "eval",
            &format!("application:get_env(rabbit, {key})."),
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_broker_runs_its_revision_and_a_new_one_applies_at_reboot() {
    let app = spawn_app().await;
    require_image(&app.docker).await;
    let c = create_configuration(&app, "live").await;
    let cid = c["id"].as_str().unwrap().to_owned();
    let resp = app
        .put_json(
            &format!("/v1/configurations/{cid}"),
            &json!({"data": b64("heartbeat = 30\n")}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = rabbitmq_broker("runs-config", "app-user", "s3cret-Passw0rd-x");
    body["configuration"] = json!({"id": cid});
    let id = app.create_broker(&body).await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(120))
        .await;
    assert_eq!(v["configurations"]["current"]["revision"], 2);
    assert_eq!(engine_env(&id, "heartbeat"), "{ok,30}");

    let resp = app
        .put_json(
            &format!("/v1/configurations/{cid}"),
            &json!({"data": b64("heartbeat = 45\n")}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .put_json(
            &format!("/v1/brokers/{id}"),
            &json!({"configuration": {"id": cid, "revision": 3}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let (_, v) = app.describe(&id).await;
    assert_eq!(v["configurations"]["pending"]["revision"], 3);
    assert_eq!(
        engine_env(&id, "heartbeat"),
        "{ok,30}",
        "pending until reboot"
    );

    assert_eq!(
        app.post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
            .await
            .status(),
        200
    );
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(120))
        .await;
    assert_eq!(
        v["configurations"]["current"],
        json!({"id": cid, "revision": 3})
    );
    assert_eq!(
        v["configurations"]["history"],
        json!([{"id": cid, "revision": 2}])
    );
    assert!(v["configurations"].get("pending").is_none());
    assert_eq!(engine_env(&id, "heartbeat"), "{ok,45}");

    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(60)).await;
    assert!(app.docker_objects(&id).await.is_empty());
    app.stop().await;
}
