//! Test support shared by the integration tests and the benchmark: a private Postgres
//! server for the whole run, a fresh database per app, Berth started in-process on
//! port 0, and helpers that wait on conditions instead of sleeping.

pub mod browser;
pub mod ha;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::agent_client::{AgentClient, HttpAgentClient};
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
    SWEPT.get_or_init(|| drop_stale_databases(pg)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let name = format!("berth_test_{now}_{}", uuid::Uuid::new_v4().simple());
    pg.create_database(&name)
        .await
        .expect("create test database");
    pg.url(&name)
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Test databases older than a few hours belong to finished runs: drop them so the shared
/// test server does not grow without bound. (Names carry their creation time.)
async fn drop_stale_databases(pg: &EmbeddedPostgres) {
    let Ok(pool) = sqlx::PgPool::connect(&pg.url("postgres")).await else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'berth_test_%'")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    let cutoff = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 4 * 3600;
    for name in names {
        let created = name
            .strip_prefix("berth_test_")
            .and_then(|r| r.split('_').next())
            .and_then(|t| t.parse::<u64>().ok());
        // Names from before timestamps were added have no number: stale too.
        if created.is_none_or(|t| t < cutoff) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&pool)
                .await;
        }
    }
    pool.close().await;
}

static PORT_BLOCK: AtomicU16 = AtomicU16::new(0);

/// Distinct host-port ranges for apps in this process, so parallel tests never
/// allocate the same ports for not-yet-started containers. The ranges lie below the
/// kernel's ephemeral range (32768 and up here): a port published when a container is
/// recreated must not have been taken meanwhile by some client's outgoing connection.
pub fn port_range() -> (u16, u16) {
    let block = PORT_BLOCK.fetch_add(1, Ordering::SeqCst);
    let salt = (std::process::id() % 50) as u16;
    let start = 11000 + ((salt * 7 + block) % 100) * 100;
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
        // TLS endpoints as on Amazon MQ, plus the plaintext ones most tests use.
        tls_listeners: true,
        plaintext_listeners: true,
        // Background collectors stay off; the tests that need one turn it on.
        logs_interval_ms: 0,
        // Alarm evaluation, webhook delivery and metering off: the tests that need them
        // turn them on.
        alarm_eval_interval_secs: 0,
        webhook_poll_ms: 0,
        metering_interval_secs: 0,
        // No background metric collection or roll-ups unless a test asks for them.
        metrics_interval_ms: 0,
        metrics_rollup_interval_ms: 0,
        ..Settings::default()
    }
}

/// Signs requests with SigV4 (service `mq`) like the AWS SDKs do.
#[derive(Clone)]
pub struct Signer {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

impl Signer {
    /// Parses the `[berth]` profile of a shared-credentials file Berth wrote.
    pub fn from_credentials_file(path: &std::path::Path) -> Self {
        let text = std::fs::read_to_string(path).expect("credentials file");
        let get = |k: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(k)
                        .and_then(|r| r.trim_start().strip_prefix('='))
                })
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| panic!("{k} missing in {}", path.display()))
        };
        Self {
            access_key_id: get("aws_access_key_id"),
            secret_access_key: get("aws_secret_access_key"),
            region: "us-east-1".into(),
        }
    }

    /// The headers (`authorization`, `x-amz-date`) to add to a request.
    pub fn headers(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Vec<(String, String)> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        use aws_sigv4::sign::v4;
        let parsed = reqwest::Url::parse(url).expect("url");
        let host = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap()),
            None => parsed.host_str().unwrap().to_owned(),
        };
        let identity = aws_credential_types::Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            None,
            None,
            "berth-tests",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("mq")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let mut hdrs = vec![("host", host.as_str())];
        if let Some(ct) = content_type {
            hdrs.push(("content-type", ct));
        }
        let req =
            SignableRequest::new(method, url, hdrs.into_iter(), SignableBody::Bytes(body)).unwrap();
        let (instructions, _) = sign(req, &params).unwrap().into_parts();
        instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Sends a signed JSON request.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        self.send_bytes(http, method, url, bytes, "application/json")
            .await
    }

    /// Sends a signed request with an arbitrary body.
    pub async fn send_bytes(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> reqwest::Response {
        let ct = body.as_ref().map(|_| content_type);
        let bytes = body.unwrap_or_default();
        let mut req = http.request(method.clone(), url);
        for (k, v) in self.headers(method.as_str(), url, &bytes, ct) {
            req = req.header(k, v);
        }
        if let Some(ct) = ct {
            req = req.header("content-type", ct).body(bytes);
        }
        req.send().await.expect("request")
    }
}

pub struct TestApp {
    /// Signs as the default account's admin key.
    pub signer: Signer,
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
    agent: Arc<dyn AgentClient>,
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
    let account = berth::domain::AccountId::parse(&settings.default_account_id).unwrap();
    let key = berth::app::accounts::access_key_issue(app.context(), &account, "tests")
        .await
        .expect("access key");
    let signer = Signer {
        access_key_id: key.access_key_id.clone(),
        secret_access_key: key.secret_access_key.clone(),
        region: settings.region.clone(),
    };
    TestApp {
        signer,
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

/// Removes an installation's Docker objects when dropped, also when the test panics.
/// `docker ARGS…` with the CLI: its stdout (trimmed), panicking with stderr on failure.
pub async fn docker_cli(args: &[&str]) -> String {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub struct InstallationCleanup(pub String);

impl Drop for InstallationCleanup {
    fn drop(&mut self) {
        remove_installation_objects(&self.0);
    }
}

/// The `berth` binary the process-level tests run: `$BERTH_BIN`, else the debug build.
pub fn berth_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("debug").join("berth");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build -p berth-control-plane` first (make test does)",
        bin.display()
    );
    bin
}

/// Starts `berth serve` as a child process (killed on drop) on the given database, data
/// dir and host-port range, and returns it with its API base URL read from its banner.
/// On an empty database it writes `credentials` and `config` into the data dir.
pub async fn start_berth_process(
    db: &str,
    data_dir: &std::path::Path,
    ports: (u16, u16),
) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(berth_bin())
        .env("DATABASE_URL", db)
        .env("BERTH_DATA_DIR", data_dir)
        .env("BERTH_LISTEN", "127.0.0.1:0")
        .env("BERTH_PORT_RANGE_START", ports.0.to_string())
        .env("BERTH_PORT_RANGE_END", ports.1.to_string())
        .env("BERTH_RECONCILE_INTERVAL_MS", "500")
        .env("BERTH_PLAINTEXT_LISTENERS", "true")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn berth");
    let base = berth_banner(&mut child, Duration::from_secs(60)).await;
    (child, base)
}

/// The API base URL from the start banner of a `berth serve` child whose stdout is
/// piped, waiting up to `timeout`; stdout is drained from then on, so the child never
/// blocks on a full pipe.
pub async fn berth_banner(child: &mut tokio::process::Child, timeout: Duration) -> String {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let base = tokio::time::timeout(timeout, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Berth is up: API ") {
                return rest.split("/v1/").next().unwrap().to_owned();
            }
        }
        panic!("berth exited before it was up");
    })
    .await
    .expect("berth banner");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    base
}

impl TestApp {
    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    /// Stops the app and starts a new one on the same database, data directory and
    /// settings (a control-plane restart), with `runtime` and `agent`.
    pub async fn restart_on(
        &mut self,
        runtime: Arc<dyn ContainerRuntime>,
        agent: Arc<dyn AgentClient>,
    ) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        let mut settings = self.settings.clone();
        settings.listen = ([127, 0, 0, 1], 0).into();
        let app = Application::build_with(settings, runtime, agent)
            .await
            .expect("rebuild app");
        self.address = format!("http://127.0.0.1:{}", app.port());
        self.app = Some(app);
    }

    /// The installation CA certificate (PEM) that signs broker certificates, as Berth
    /// wrote it next to the credentials.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.settings.data_dir.join("ca.pem")).expect("ca.pem")
    }

    /// The pending change DescribeUser shows for `user` of broker `id`, if any; an
    /// error when DescribeUser itself did not answer 200 (a 503 is not "applied").
    pub async fn user_pending(&self, id: &str, user: &str) -> Result<Option<String>, String> {
        let resp = self.get(&format!("/v1/brokers/{id}/users/{user}")).await;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("DescribeUser answered {status}: {text}"));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        Ok(v["pending"]["pendingChange"].as_str().map(str::to_owned))
    }

    /// Waits until the broker's agent confirmed the last change to `user`.
    pub async fn wait_user_applied(&self, id: &str, user: &str) {
        wait_until(Duration::from_secs(60), || async {
            matches!(self.user_pending(id, user).await, Ok(None))
        })
        .await
        .unwrap_or_else(|| panic!("change to {user} never applied"));
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// A signed request as the default account's admin.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        self.signer
            .send(&self.http, method, &format!("{}{path}", self.address), body)
            .await
    }

    /// Issues a key for another account (created on the fly).
    pub async fn signer_for_account(&self, account: &str) -> Signer {
        let ctx = self.app.as_ref().expect("running app").context();
        let account = berth::domain::AccountId::parse(account).unwrap();
        let key = berth::app::accounts::access_key_issue(ctx, &account, "tests")
            .await
            .unwrap();
        Signer {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: key.secret_access_key.clone(),
            region: "us-east-1".into(),
        }
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
        wait_for_state_at(&self.http, &self.signer, &self.address, id, state, timeout).await
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
    signer: &Signer,
    base: &str,
    id: &str,
    state: &str,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let url = format!("{base}/v1/brokers/{id}");
        let resp = signer.send(http, reqwest::Method::GET, &url, None).await;
        {
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

/// A CreateBroker body like [`rabbitmq_broker`] for RabbitMQ `version` (`4.3`, `4.0`,
/// `3.10`) on `instance_type` (4.x runs on `mq.m7g.*`, 3.10 on `mq.t3.micro`/`mq.m5.*`).
pub fn rabbitmq_broker_version(
    name: &str,
    user: &str,
    password: &str,
    version: &str,
    instance_type: &str,
) -> Value {
    let mut body = rabbitmq_broker(name, user, password);
    body["engineVersion"] = version.into();
    body["hostInstanceType"] = instance_type.into();
    body
}

/// Panics with a clear message when the engine image `image` (e.g.
/// `berth/rabbitmq:3.10`, `berth/activemq:5.17`) has not been built.
pub async fn require_engine_image(docker: &bollard::Docker, image: &str) {
    if docker.inspect_image(image).await.is_err() {
        panic!("image {image} is missing: run `make images` (make test does this)");
    }
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

// ---------------------------------------------------------------------------------------
// ActiveMQ: the image, a CreateBroker body, endpoints, and the JMS client
// (tests/jms/BerthJms.java) compiled once per test run and run as a child process.

/// Image every ActiveMQ broker runs; built by `make images`
/// (`images/build.sh activemq 5.17 target/release/broker-agent`).
pub const ACTIVEMQ_IMAGE: &str = "berth/activemq:5.17";

/// Panics with a clear message when the ActiveMQ image has not been built.
pub async fn require_activemq_image(docker: &bollard::Docker) {
    if docker.inspect_image(ACTIVEMQ_IMAGE).await.is_err() {
        panic!(
            "image {ACTIVEMQ_IMAGE} is missing: run `make images` or \
             `images/build.sh activemq 5.17 target/release/broker-agent`"
        );
    }
}

/// A valid CreateBroker body for a single-instance ActiveMQ broker with `users`
/// (`[{"username", "password", "groups", "consoleAccess"}]`).
pub fn activemq_broker(name: &str, users: Value) -> Value {
    json!({
        "brokerName": name,
        "engineType": "ACTIVEMQ",
        "engineVersion": "5.17",
        "deploymentMode": "SINGLE_INSTANCE",
        "hostInstanceType": "mq.t3.micro",
        "storageType": "EBS",
        "publiclyAccessible": false,
        "autoMinorVersionUpgrade": true,
        "users": users,
        "creatorRequestId": uuid::Uuid::new_v4().to_string(),
    })
}

/// The one endpoint of the first broker instance whose URL starts with `scheme://`.
pub fn endpoint_with_scheme(describe: &Value, scheme: &str) -> String {
    let prefix = format!("{scheme}://");
    let found: Vec<&str> = describe["brokerInstances"][0]["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(Value::as_str)
        .filter(|e| e.starts_with(&prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {prefix} endpoint expected in {}",
        describe["brokerInstances"][0]["endpoints"]
    );
    found[0].to_owned()
}

/// Jars (from Debian's libactivemq-java and its dependencies) the JMS client needs.
const JMS_JARS: &[&str] = &[
    "activemq-client.jar",
    "geronimo-jms_1.1_spec.jar",
    "geronimo-j2ee-management-1.1-spec.jar",
    "hawtbuf.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
];

/// Where the jars are: `$BERTH_JMS_JARS`, else `/usr/share/java`.
fn jms_jar_dir() -> PathBuf {
    std::env::var_os("BERTH_JMS_JARS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java"))
}

static JMS_CLASSPATH: OnceCell<String> = OnceCell::const_new();

/// The class path of the compiled JMS client: compiles `tests/jms/BerthJms.java` into
/// `target/jms` (`javac --release 11`) when the class is missing or older than the
/// source. Panics with what to install when a jar or `javac` is missing.
pub async fn jms_classpath() -> &'static str {
    JMS_CLASSPATH
        .get_or_init(|| async {
            let jars = jms_jar_dir();
            let mut cp = Vec::new();
            for jar in JMS_JARS {
                let path = jars.join(jar);
                assert!(
                    path.exists(),
                    "{} is missing: install libactivemq-java and libslf4j-java \
                     (scripts/prereqs.sh does, `make test` runs it)",
                    path.display()
                );
                cp.push(path.display().to_string());
            }
            let source = workspace_root().join("tests/jms/BerthJms.java");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"));
            let out = target.join("jms");
            let class = out.join("BerthJms.class");
            let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified());
            let fresh = match (modified(&class), modified(&source)) {
                (Ok(c), Ok(s)) => c >= s,
                _ => false,
            };
            if !fresh {
                // Compile next to the output and move the classes in, so a concurrent
                // test process never loads a half-written class.
                let tmp = target.join(format!("jms.tmp-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir_all(&tmp).expect("JMS build dir");
                let javac = std::env::var("JAVAC").unwrap_or_else(|_| "javac".into());
                let result = tokio::process::Command::new(&javac)
                    .args(["--release", "11", "-encoding", "UTF-8", "-d"])
                    .arg(&tmp)
                    .arg("-cp")
                    .arg(cp.join(":"))
                    .arg(&source)
                    .output()
                    .await
                    .unwrap_or_else(|e| {
                        panic!("cannot run {javac} (a JDK 11+ is needed for the JMS client): {e}")
                    });
                assert!(
                    result.status.success(),
                    "javac {} failed:\n{}",
                    source.display(),
                    String::from_utf8_lossy(&result.stderr)
                );
                std::fs::create_dir_all(&out).expect("target/jms");
                for entry in std::fs::read_dir(&tmp).unwrap() {
                    let entry = entry.unwrap();
                    std::fs::rename(entry.path(), out.join(entry.file_name()))
                        .expect("move compiled class");
                }
                let _ = std::fs::remove_dir_all(&tmp);
            }
            cp.push(out.display().to_string());
            cp.join(":")
        })
        .await
}

/// What one run of the JMS client printed: its JSON result line and exit status.
#[derive(Debug)]
pub struct JmsOutcome {
    /// Exit code 0: the mode's check passed.
    pub ok: bool,
    /// The JSON object of the last stdout line.
    pub result: Value,
    pub stderr: String,
}

impl JmsOutcome {
    pub fn int(&self, key: &str) -> i64 {
        self.result[key]
            .as_i64()
            .unwrap_or_else(|| panic!("JMS result has no integer {key}: {self:?}"))
    }

    pub fn flag(&self, key: &str) -> bool {
        self.result[key]
            .as_bool()
            .unwrap_or_else(|| panic!("JMS result has no boolean {key}: {self:?}"))
    }
}

/// Runs `java BerthJms URL USER PASSWORD MODE ARGS…` (see tests/jms/BerthJms.java for
/// the modes), killed after `timeout`. Panics when it prints no JSON result line.
pub async fn jms(
    url: &str,
    user: &str,
    password: &str,
    mode: &str,
    args: &[&str],
    timeout: Duration,
) -> JmsOutcome {
    let cp = jms_classpath().await;
    let java = std::env::var("JAVA").unwrap_or_else(|_| "java".into());
    let child = tokio::process::Command::new(&java)
        .args([
            "-Xss512k",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            cp,
        ])
        .arg("BerthJms")
        .args([url, user, password, mode])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {java}: {e}"));
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("JMS {mode} {args:?} on {url}: no result within {timeout:?}"))
        .expect("JMS client output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let result = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .unwrap_or_else(|| {
            panic!(
                "JMS {mode} on {url} printed no result (exit {:?}):\nstdout: {stdout}\nstderr: {stderr}",
                output.status.code()
            )
        });
    JmsOutcome {
        ok: output.status.success(),
        result,
        stderr,
    }
}

/// A signed-in console session: its cookie and CSRF token.
#[derive(Clone, Debug)]
pub struct ConsoleSession {
    /// The `berth_session` token (the cookie's value).
    pub token: String,
    pub csrf: String,
}

/// The `berth_session` value a response set, if any.
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("berth_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

impl ConsoleSession {
    /// A request with the cookie and, when `csrf`, the CSRF header.
    pub fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        csrf: bool,
    ) -> reqwest::RequestBuilder {
        let mut req = http
            .request(method, url)
            .header("cookie", format!("berth_session={}", self.token));
        if csrf {
            req = req.header("x-csrf-token", &self.csrf);
        }
        req
    }

    /// A JSON request with the cookie and the CSRF token.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self.request(http, method, url, true);
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request")
    }
}

impl TestApp {
    /// The application under test (its session keys, first-start steps…).
    pub fn application(&self) -> &Application {
        self.app.as_ref().expect("running app")
    }

    /// Creates a console user directly in the app layer.
    pub async fn create_console_user(
        &self,
        account: &str,
        username: &str,
        password: &str,
        role: berth::app::Role,
    ) {
        let account = berth::domain::AccountId::parse(account).unwrap();
        berth::app::identity::console_user_create_unchecked(
            self.application().context(),
            &account,
            username,
            password,
            role,
        )
        .await
        .expect("console user");
    }

    /// `POST /auth/login` with JSON.
    pub async fn console_login_response(
        &self,
        account: Option<&str>,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let mut body = json!({"username": username, "password": password});
        if let Some(a) = account {
            body["account"] = json!(a);
        }
        self.http
            .post(format!("{}/auth/login", self.address))
            .json(&body)
            .send()
            .await
            .expect("login request")
    }

    /// Signs in; panics unless it works.
    pub async fn console_login(
        &self,
        account: Option<&str>,
        username: &str,
        password: &str,
    ) -> ConsoleSession {
        let resp = self
            .console_login_response(account, username, password)
            .await;
        assert_eq!(resp.status(), 200, "login of {username}");
        let token = session_cookie(&resp).expect("session cookie");
        let v: Value = resp.json().await.unwrap();
        ConsoleSession {
            token,
            csrf: v["csrfToken"].as_str().expect("csrfToken").to_owned(),
        }
    }

    /// Creates a console user and signs in as it.
    pub async fn console_user_session(
        &self,
        account: &str,
        username: &str,
        role: berth::app::Role,
    ) -> ConsoleSession {
        let password = format!("{username}-Passw0rd-long");
        self.create_console_user(account, username, &password, role)
            .await;
        self.console_login(Some(account), username, &password).await
    }

    /// Issues a key with `role` for `account`.
    pub async fn signer_with_role(&self, account: &str, role: berth::app::Role) -> Signer {
        let account = berth::domain::AccountId::parse(account).unwrap();
        let key = berth::app::accounts::access_key_issue_with_role(
            self.application().context(),
            &account,
            "tests",
            role,
        )
        .await
        .unwrap();
        Signer {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: key.secret_access_key.clone(),
            region: self.settings.region.clone(),
        }
    }
}
