//! Crash safety: SIGKILL the real control-plane process in the middle of a broker's
//! creation, start it again on the same database, and watch it converge.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use berth_tests::{
    amqp_endpoint, docker_objects, fresh_database, port_range, rabbitmq_broker, require_image,
    wait_for_state_at, wait_until, Signer,
};

use crate::amqp;

fn berth_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| berth_tests::workspace_root().join("target"));
    let bin = target.join("debug").join("berth");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build -p berth-control-plane` first (make test does)",
        bin.display()
    );
    bin
}

/// Starts `berth` and returns it with its API base URL (read from its banner).
async fn start_berth(db: &str, data_dir: &std::path::Path, ports: (u16, u16)) -> (Child, String) {
    let mut child = Command::new(berth_bin())
        .env("DATABASE_URL", db)
        .env("BERTH_DATA_DIR", data_dir)
        .env("BERTH_LISTEN", "127.0.0.1:0")
        .env("BERTH_PORT_RANGE_START", ports.0.to_string())
        .env("BERTH_PORT_RANGE_END", ports.1.to_string())
        .env("BERTH_RECONCILE_INTERVAL_MS", "500")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn berth");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Berth is up: API ") {
                return rest.split("/v1/").next().unwrap().to_owned();
            }
        }
        panic!("berth exited before it was up");
    })
    .await
    .expect("berth banner");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

/// Removes this installation's Docker objects even when the test panics.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        berth_tests::remove_installation_objects(&self.0);
    }
}

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

    let (mut first, base) = start_berth(&db, data_dir.path(), ports).await;
    let installation: String = sqlx::query_scalar("SELECT id FROM installation")
        .fetch_one(&sqlx::PgPool::connect(&db).await.unwrap())
        .await
        .unwrap();
    let _cleanup = Cleanup(installation);
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
    let (mut second, base) = start_berth(&db, data_dir.path(), ports).await;
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
