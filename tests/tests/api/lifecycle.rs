//! Real effects on a running broker: users changed live, UpdateBroker pending until
//! RebootBroker, a resize that really changes the container's limits on the same volume
//! with no message lost.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{json, Value};

use berth_tests::{amqp_endpoint, rabbitmq_broker, require_image, spawn_app, wait_until};

use crate::amqp;

const PASSWORD: &str = "s3cret-Passw0rd-x";

async fn queue_depth(conn: &lapin::Connection, queue: &str) -> u32 {
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    q.message_count()
}

fn container_limits(id: &str) -> (i64, i64) {
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
            &format!("berth-{id}-0"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|n| n.parse::<i64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[tokio::test]
async fn users_live_and_resize_by_reboot_without_losing_messages() {
    let app = spawn_app().await;
    require_image(&app.docker).await;
    let id = app
        .create_broker(&rabbitmq_broker("lifecycle", "app-user", PASSWORD))
        .await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(120))
        .await;
    let endpoint = amqp_endpoint(&v);

    // 100 confirmed persistent messages on a durable queue.
    let conn = amqp::connect(&endpoint, "app-user", PASSWORD)
        .await
        .unwrap();
    for i in 0..100 {
        amqp::publish_persistent(&conn, "resize-q", format!("m{i}").as_bytes()).await;
    }
    assert_eq!(queue_depth(&conn, "resize-q").await, 100);
    let _ = conn.close(200, "bye".into()).await;

    // Users, live: create → pending CREATE → applied → can log in.
    let resp = app
        .post_json(
            &format!("/v1/brokers/{id}/users/second-user"),
            &json!({"password": "an0ther-Passw0rd"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let dup = app
        .post_json(
            &format!("/v1/brokers/{id}/users/second-user"),
            &json!({"password": "an0ther-Passw0rd"}),
        )
        .await;
    assert_eq!(dup.status(), 409);
    app.wait_user_applied(&id, "second-user").await;
    amqp::connect(&endpoint, "second-user", "an0ther-Passw0rd")
        .await
        .expect("new user logs in without a reboot");

    // Password change: the new one works, the old one is refused.
    let resp = app
        .put_json(
            &format!("/v1/brokers/{id}/users/second-user"),
            &json!({"password": "third-Passw0rd-9"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.wait_user_applied(&id, "second-user").await;
    amqp::connect(&endpoint, "second-user", "third-Passw0rd-9")
        .await
        .expect("new password");
    assert!(amqp::connect(&endpoint, "second-user", "an0ther-Passw0rd")
        .await
        .is_err());

    // Delete: gone from the API once applied, and refused by the broker.
    assert_eq!(
        app.delete(&format!("/v1/brokers/{id}/users/second-user"))
            .await
            .status(),
        200
    );
    wait_until(Duration::from_secs(60), || async {
        app.get(&format!("/v1/brokers/{id}/users/second-user"))
            .await
            .status()
            == 404
    })
    .await
    .expect("user deleted");
    assert!(amqp::connect(&endpoint, "second-user", "third-Passw0rd-9")
        .await
        .is_err());
    let list: Value = app
        .get(&format!("/v1/brokers/{id}/users"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["users"], json!([{"username": "app-user"}]));

    // UpdateBroker: the new instance type is pending; nothing changes yet.
    let resp = app
        .put_json(
            &format!("/v1/brokers/{id}"),
            &json!({"hostInstanceType": "mq.m7g.large"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let (_, v) = app.describe(&id).await;
    assert_eq!(v["hostInstanceType"], "mq.m7g.medium");
    assert_eq!(v["pendingHostInstanceType"], "mq.m7g.large");
    assert_eq!(container_limits(&id).0, 4 << 30);
    let bad = app
        .put_json(
            &format!("/v1/brokers/{id}"),
            &json!({"engineVersion": "3.13"}),
        )
        .await;
    assert_eq!(bad.status(), 400);

    // RebootBroker applies it on the same volume.
    assert_eq!(
        app.post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
            .await
            .status(),
        200
    );
    let (_, v) = app.describe(&id).await;
    assert_eq!(v["brokerState"], "REBOOT_IN_PROGRESS");
    assert_eq!(
        app.post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
            .await
            .status(),
        400
    );
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(120))
        .await;
    assert_eq!(v["hostInstanceType"], "mq.m7g.large");
    assert!(v.get("pendingHostInstanceType").is_none());
    let host_cpus = std::thread::available_parallelism().unwrap().get() as i64;
    assert_eq!(
        container_limits(&id),
        (8 << 30, 2.min(host_cpus) * 1_000_000_000)
    );
    assert_eq!(
        amqp_endpoint(&v),
        endpoint,
        "endpoints are stable across reboots"
    );
    let conn = amqp::connect(&endpoint, "app-user", PASSWORD)
        .await
        .expect("login after reboot");
    assert_eq!(
        queue_depth(&conn, "resize-q").await,
        100,
        "messages survive the resize"
    );
    let _ = conn.close(200, "bye".into()).await;

    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(60)).await;
    assert!(app.docker_objects(&id).await.is_empty());
    app.stop().await;
}
