//! Test support shared by the integration tests and the benchmark: a private Postgres
//! server for the whole run, a fresh database per app, Berth started in-process on
//! port 0, and helpers that wait on conditions instead of sleeping.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::agent_client::{AgentProbe, HttpAgentClient};
use berth::config::Settings;
use berth::embedded_pg::EmbeddedPostgres;
use berth::runtime::docker::DockerRuntime;
use berth::runtime::ContainerRuntime;
use berth::startup::Application;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

/// Image every RabbitMQ broker runs; built by `make images`.
pub const RABBITMQ_IMAGE: &str = "berth/rabbitmq:4.0";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

static PG: OnceCell<EmbeddedPostgres> = OnceCell::const_new();

/// The test Postgres server, shared by test processes and started on first use. It
/// lives under the temp dir (`$BERTH_TEST_PG_DIR` overrides) because the checkout may
/// sit where the unprivileged `postgres` user cannot reach (e.g. under `/root`).
pub async fn test_postgres() -> &'static EmbeddedPostgres {
    PG.get_or_init(|| async {
        let dir = std::env::var_os("BERTH_TEST_PG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("berth-test-pg"));
        EmbeddedPostgres::ensure_running(&dir, None)
            .await
            .expect("test Postgres")
    })
    .await
}

/// A fresh, empty database on the test server.
pub async fn fresh_database() -> String {
    let pg = test_postgres().await;
    let name = format!("berth_test_{}", uuid::Uuid::new_v4().simple());
    pg.create_database(&name)
        .await
        .expect("create test database");
    pg.url(&name)
}

static PORT_BLOCK: AtomicU16 = AtomicU16::new(0);

/// Distinct host-port ranges for apps in this process, so parallel tests never
/// allocate the same ports for not-yet-started containers.
pub fn port_range() -> (u16, u16) {
    let block = PORT_BLOCK.fetch_add(1, Ordering::SeqCst);
    let salt = (std::process::id() % 50) as u16;
    let start = 30000 + ((salt * 7 + block) % 300) * 100;
    (start, start + 99)
}

/// Settings for an app under test: loopback, port 0, its own database and data dir.
pub fn test_settings(database_url: String, data_dir: PathBuf) -> Settings {
    let (start, end) = port_range();
    Settings {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir,
        database_url: Some(database_url),
        port_range_start: start,
        port_range_end: end,
        reconcile_interval_ms: 500,
        ..Settings::default()
    }
}

pub struct TestApp {
    /// This app's installation id: every Docker object it creates carries it.
    pub installation: String,
    pub address: String,
    pub http: reqwest::Client,
    pub docker: bollard::Docker,
    pub settings: Settings,
    app: Option<Application>,
    _data_dir: tempfile::TempDir,
}

/// Starts Berth in-process with real Docker and a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let runtime = DockerRuntime::connect().await.expect("Docker daemon");
    spawn_app_on(
        Arc::new(runtime),
        Arc::new(HttpAgentClient::default()),
        tweak,
    )
    .await
}

/// Starts Berth on the given runtime and agent probe (fakes for API-logic tests).
pub async fn spawn_app_on(
    runtime: Arc<dyn ContainerRuntime>,
    agent: Arc<dyn AgentProbe>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut settings = test_settings(fresh_database().await, data_dir.path().to_path_buf());
    tweak(&mut settings);
    let docker = DockerRuntime::connect()
        .await
        .expect("Docker daemon")
        .client()
        .clone();
    let app = Application::build_with(settings.clone(), runtime, agent)
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let pool = sqlx::PgPool::connect(settings.database_url.as_deref().unwrap())
        .await
        .expect("db");
    let installation: String = sqlx::query_scalar("SELECT id FROM installation")
        .fetch_one(&pool)
        .await
        .expect("installation id");
    pool.close().await;
    TestApp {
        installation,
        address,
        http: reqwest::Client::new(),
        docker,
        settings,
        app: Some(app),
        _data_dir: data_dir,
    }
}

/// A failed (panicking) test must not leave brokers running on the shared daemon: on
/// drop, remove every Docker object labelled with this app's installation.
impl Drop for TestApp {
    fn drop(&mut self) {
        remove_installation_objects(&self.installation);
    }
}

/// Force-removes containers, then volumes and networks, carrying the installation label.
pub fn remove_installation_objects(installation: &str) {
    let filter = format!("label=berth.installation={installation}");
    let list = |args: &[&str]| -> Vec<String> {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let remove = |args: &[&str], items: Vec<String>| {
        if !items.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(args)
                .args(&items)
                .output();
        }
    };
    remove(&["rm", "-fv"], list(&["ps", "-aq", "--filter", &filter]));
    remove(
        &["volume", "rm", "-f"],
        list(&["volume", "ls", "-q", "--filter", &filter]),
    );
    remove(
        &["network", "rm"],
        list(&["network", "ls", "-q", "--filter", &filter]),
    );
}

impl TestApp {
    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    /// CreateBroker; panics unless it answers 200. Returns the broker id.
    pub async fn create_broker(&self, body: &Value) -> String {
        let resp = self.post_json("/v1/brokers", body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "CreateBroker failed: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        v["brokerId"].as_str().unwrap().to_owned()
    }

    pub async fn describe(&self, id: &str) -> (u16, Value) {
        let resp = self.get(&format!("/v1/brokers/{id}")).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the broker reaches `state`; panics on timeout or on CREATION_FAILED
    /// when something else was expected.
    pub async fn wait_for_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        wait_for_state_at(&self.http, &self.address, id, state, timeout).await
    }

    /// Waits until DescribeBroker answers 404.
    pub async fn wait_until_gone(&self, id: &str, timeout: Duration) {
        wait_until(timeout, || async { self.describe(id).await.0 == 404 })
            .await
            .unwrap_or_else(|| panic!("broker {id} still exists after {timeout:?}"));
    }

    /// Docker objects (containers, volumes, networks) labelled with this broker id.
    pub async fn docker_objects(&self, id: &str) -> Vec<String> {
        docker_objects(&self.docker, id).await
    }
}

pub async fn wait_for_state_at(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    state: &str,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let resp = http.get(format!("{base}/v1/brokers/{id}")).send().await;
        if let Ok(resp) = resp {
            if resp.status() == 200 {
                let v: Value = resp.json().await.unwrap();
                let now = v["brokerState"].as_str().unwrap_or_default().to_owned();
                if now == state {
                    return v;
                }
                if now == "CREATION_FAILED" && state != now {
                    panic!("broker {id} failed: {v}");
                }
            }
        }
        if Instant::now() > deadline {
            panic!("broker {id} did not reach {state} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `cond` every 100 ms until it holds (Some(())) or `timeout` passes (None).
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> Option<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return Some(());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn docker_objects(docker: &bollard::Docker, id: &str) -> Vec<String> {
    use bollard::query_parameters::{
        ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    };
    let filter = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![format!("berth.broker-id={id}")],
    )]);
    let mut out = Vec::new();
    for c in docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        }))
        .await
        .unwrap()
    {
        out.push(format!("container {:?}", c.names));
    }
    for v in docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filter.clone()),
        }))
        .await
        .unwrap()
        .volumes
        .unwrap_or_default()
    {
        out.push(format!("volume {}", v.name));
    }
    for n in docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filter),
        }))
        .await
        .unwrap()
    {
        out.push(format!("network {:?}", n.name));
    }
    out
}

/// A valid CreateBroker body for a single-instance RabbitMQ broker.
pub fn rabbitmq_broker(name: &str, user: &str, password: &str) -> Value {
    json!({
        "brokerName": name,
        "engineType": "RABBITMQ",
        "engineVersion": "4.0",
        "deploymentMode": "SINGLE_INSTANCE",
        "hostInstanceType": "mq.m7g.medium",
        "publiclyAccessible": false,
        "autoMinorVersionUpgrade": true,
        "users": [{ "username": user, "password": password }],
        "creatorRequestId": uuid::Uuid::new_v4().to_string(),
    })
}

/// The AMQP endpoint (`amqp://host:port`) DescribeBroker reports.
pub fn amqp_endpoint(describe: &Value) -> String {
    describe["brokerInstances"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|e| e.starts_with("amqp://"))
        .expect("an amqp endpoint")
        .to_owned()
}

/// Panics with a clear message when the engine image has not been built.
pub async fn require_image(docker: &bollard::Docker) {
    if docker.inspect_image(RABBITMQ_IMAGE).await.is_err() {
        panic!("image {RABBITMQ_IMAGE} is missing: run `make images` (make test does this)");
    }
}
