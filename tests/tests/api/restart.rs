//! Crash safety: SIGKILL the real control-plane process in the middle of a broker's
//! creation, start it again on the same database, and watch it converge.

use std::time::Duration;

use berth_tests::{
    amqp_endpoint, docker_objects, fresh_database, port_range, rabbitmq_broker, require_image,
    start_berth_process, wait_for_state_at, wait_until, InstallationCleanup, Signer,
};

use crate::amqp;

#[tokio::test]
async fn killing_the_control_plane_mid_creation_converges_after_restart() {
    let docker = berth::runtime::docker::DockerRuntime::connect()
        .await
        .unwrap()
        .client()
        .clone();
    require_image(&docker).await;
    let db = fresh_database().await;
    let data_dir = tempfile::tempdir().unwrap();
    let ports = port_range();
    let http = reqwest::Client::new();

    let (mut first, base) = start_berth_process(&db, data_dir.path(), ports).await;
    let installation: String = sqlx::query_scalar("SELECT id FROM installation")
        .fetch_one(&sqlx::PgPool::connect(&db).await.unwrap())
        .await
        .unwrap();
    let _cleanup = InstallationCleanup(installation);
    // The first start on an empty database wrote the admin key.
    let signer = Signer::from_credentials_file(&data_dir.path().join("credentials"));
    let password = "s3cret-Passw0rd-x";
    let body = rabbitmq_broker("crashy", "app-user", password);
    let resp = signer
        .send(
            &http,
            reqwest::Method::POST,
            &format!("{base}/v1/brokers"),
            Some(&body),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = resp.json::<serde_json::Value>().await.unwrap()["brokerId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Kill -9 as soon as the container exists, long before the engine is ready.
    let container = format!("berth-{id}-0");
    wait_until(Duration::from_secs(30), || async {
        docker
            .inspect_container(
                &container,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .is_ok()
    })
    .await
    .expect("container created");
    first.kill().await.unwrap();
    let state: String = sqlx::query_scalar("SELECT state FROM brokers WHERE id = $1")
        .bind(&id)
        .fetch_one(&sqlx::PgPool::connect(&db).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        state, "CREATION_IN_PROGRESS",
        "the kill must land mid-creation"
    );

    // A new process on the same database and data dir picks the work up.
    let (mut second, base) = start_berth_process(&db, data_dir.path(), ports).await;
    let v = wait_for_state_at(
        &http,
        &signer,
        &base,
        &id,
        "RUNNING",
        Duration::from_secs(120),
    )
    .await;
    let conn = amqp::connect(&amqp_endpoint(&v), "app-user", password)
        .await
        .expect("AMQP login after restart");
    amqp::publish_persistent(&conn, "after-crash", b"still here").await;
    assert_eq!(
        amqp::get_one(&conn, "after-crash").await.as_deref(),
        Some(&b"still here"[..])
    );
    let _ = conn.close(200, "bye".into()).await;

    let url = format!("{base}/v1/brokers/{id}");
    let resp = signer
        .send(&http, reqwest::Method::DELETE, &url, None)
        .await;
    assert_eq!(resp.status(), 200);
    wait_until(Duration::from_secs(60), || async {
        signer
            .send(&http, reqwest::Method::GET, &url, None)
            .await
            .status()
            == 404
    })
    .await
    .expect("broker deleted");
    assert!(docker_objects(&docker, &id).await.is_empty());
    second.kill().await.unwrap();
}
