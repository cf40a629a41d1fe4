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

/// The container's creation time (RFC 3339), or None when it does not exist.
async fn created(docker: &bollard::Docker, name: &str) -> Option<String> {
    docker
        .inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()
        .and_then(|c| c.created)
}

/// SIGKILL of the control plane in the middle of a rolling reboot of an active/standby
/// pair under JMS load: the new process resumes the roll (the node rebooted before the
/// kill is not rebooted again, the other one is), the pair forms again and no confirmed
/// message is lost.
#[tokio::test]
async fn killing_the_control_plane_mid_roll_resumes_the_roll_without_a_second_reboot() {
    use berth_tests::ha::{
        instance_endpoints, one_ha_test_at_a_time, pair_request, roles, JmsLoad,
    };
    let _alone = one_ha_test_at_a_time().await;
    let docker = berth::runtime::docker::DockerRuntime::connect()
        .await
        .unwrap()
        .client()
        .clone();
    berth_tests::require_activemq_image(&docker).await;
    let db = fresh_database().await;
    let data_dir = tempfile::tempdir().unwrap();
    let ports = port_range();
    let http = reqwest::Client::new();
    let (mut first, base) = start_berth_process(&db, data_dir.path(), ports).await;
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let installation: String = sqlx::query_scalar("SELECT id FROM installation")
        .fetch_one(&pool)
        .await
        .unwrap();
    let _cleanup = InstallationCleanup(installation);
    let signer = Signer::from_credentials_file(&data_dir.path().join("credentials"));
    let resp = signer
        .send(
            &http,
            reqwest::Method::POST,
            &format!("{base}/v1/brokers"),
            Some(&pair_request("rolled")),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = resp.json::<serde_json::Value>().await.unwrap()["brokerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let describe = |base: String| {
        let (http, signer, id) = (http.clone(), signer.clone(), id.clone());
        async move {
            signer
                .send(
                    &http,
                    reqwest::Method::GET,
                    &format!("{base}/v1/brokers/{id}"),
                    None,
                )
                .await
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let formed = |base: String| {
        let describe = &describe;
        async move {
            wait_until(Duration::from_secs(180), || async {
                let v = describe(base.clone()).await;
                let r = roles(&v);
                v["brokerState"] == "RUNNING"
                    && r.iter().any(|x| x == "ACTIVE")
                    && r.iter().any(|x| x == "STANDBY")
            })
            .await
            .expect("pair formed");
        }
    };
    formed(base.clone()).await;
    let v = describe(base.clone()).await;
    let url = format!(
        "failover:({})?randomize=false&initialReconnectDelay=100&maxReconnectDelay=200&useExponentialBackOff=false",
        instance_endpoints(&v, "ssl").join(",")
    );
    let ca = data_dir.path().join("ca.pem").display().to_string();
    let load = JmsLoad::start(
        &url,
        &ca,
        "roll.crash",
        Duration::from_secs(45),
        Duration::from_secs(3),
    )
    .await;

    let resp = signer
        .send(
            &http,
            reqwest::Method::POST,
            &format!("{base}/v1/brokers/{id}/reboot"),
            Some(&serde_json::json!({})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let names = [format!("berth-{id}-0"), format!("berth-{id}-1")];
    let before = [
        created(&docker, &names[0]).await,
        created(&docker, &names[1]).await,
    ];
    // Kill -9 once the first node is recreated and before the second is.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let done = 'wait: loop {
        for (i, n) in names.iter().enumerate() {
            let now = created(&docker, n).await;
            if now.is_some() && now != before[i] {
                break 'wait (i, now);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the roll recreated no node"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    first.kill().await.unwrap();
    let (rebooted, at) = done;
    let other = 1 - rebooted;
    assert_eq!(
        created(&docker, &names[other]).await,
        before[other],
        "the kill must land mid-roll"
    );

    let (mut second, base) = start_berth_process(&db, data_dir.path(), ports).await;
    wait_for_state_at(
        &http,
        &signer,
        &base,
        &id,
        "RUNNING",
        Duration::from_secs(180),
    )
    .await;
    formed(base.clone()).await;
    assert_eq!(
        created(&docker, &names[rebooted]).await,
        at,
        "the node rebooted before the kill was rebooted again"
    );
    assert_ne!(
        created(&docker, &names[other]).await,
        before[other],
        "the restarted control plane did not finish the roll"
    );
    load.check("control plane killed mid-roll").await;

    let url = format!("{base}/v1/brokers/{id}");
    let resp = signer
        .send(&http, reqwest::Method::DELETE, &url, None)
        .await;
    assert_eq!(resp.status(), 200);
    wait_until(Duration::from_secs(90), || async {
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
