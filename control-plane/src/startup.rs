//! Application assembly: database (embedded or external), migrations, secrets, Docker,
//! reconciler and HTTP server. `Application::build` binds the listener (port 0 works),
//! so tests can start any number of instances side by side.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent_client::{AgentClient, HttpAgentClient};
use crate::app::AppContext;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::db::broker::PortPool;
use crate::db::DataStore;
use crate::domain::AccountId;
use crate::embedded_pg::EmbeddedPostgres;
use crate::http::server::{serve, HttpLimits};
use crate::http::{router, ApiState};
use crate::reconcile::broker::ReconcilerConfig;
use crate::reconcile::{BrokerReconciler, Driver};
use crate::runtime::docker::DockerRuntime;
use crate::runtime::ContainerRuntime;

pub struct Application {
    app: AppContext,
    sessions: Arc<crate::http::session::SessionKeys>,
    port: u16,
    server: JoinHandle<std::io::Result<()>>,
    reconciler: JoinHandle<()>,
    /// Metric collector and history upkeep, log collector, alarm evaluator, webhook
    /// worker, metering: those the settings turn on.
    background: Vec<JoinHandle<()>>,
    cancel: CancellationToken,
    /// The embedded Postgres this process started, stopped by `run_until_stopped` (none
    /// when external, already running, or `keep_database_running`).
    started_pg: Option<EmbeddedPostgres>,
}

/// Resolves the database URL: the configured one, or a private Postgres in the data dir.
pub async fn database_url(settings: &Settings) -> anyhow::Result<String> {
    Ok(database(settings).await?.0)
}

/// [`database_url`], plus the embedded Postgres when this call started it.
async fn database(settings: &Settings) -> anyhow::Result<(String, Option<EmbeddedPostgres>)> {
    if let Some(url) = &settings.database_url {
        return Ok((url.clone(), None));
    }
    let dir = std::path::absolute(settings.data_dir.join("postgres"))?;
    tracing::info!(dir = %dir.display(), "starting embedded Postgres");
    let pg = EmbeddedPostgres::ensure_running(&dir, None)
        .await
        .context("starting embedded Postgres")?;
    pg.create_database("berth").await?;
    Ok((pg.url("berth"), pg.started_by_us().then_some(pg)))
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let runtime: Arc<dyn ContainerRuntime> = Arc::new(
            DockerRuntime::connect()
                .await
                .context("connecting to Docker")?,
        );
        Self::build_with(settings, runtime, Arc::new(HttpAgentClient::default())).await
    }

    pub async fn build_with(
        settings: Settings,
        runtime: Arc<dyn ContainerRuntime>,
        agent: Arc<dyn AgentClient>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
        let (url, started_pg) = database(&settings).await?;
        let started_pg = started_pg.filter(|_| !settings.keep_database_running);
        let store =
            DataStore::connect_with(&url, Duration::from_millis(settings.database_timeout_ms))
                .await
                .context("connecting to Postgres and migrating")?;
        let secrets =
            SecretBox::load_or_create(settings.master_key.as_deref(), &settings.data_dir)?;
        let installation = store.installation_id().await?;
        let ca = Arc::new(load_ca(&store, &secrets, &installation, &settings.data_dir).await?);
        let cancel = CancellationToken::new();

        let (host_cpus, host_memory) = host_capacity();
        let broker_reconciler = BrokerReconciler::new(
            store.clone(),
            runtime,
            agent.clone(),
            secrets.clone(),
            installation,
            ReconcilerConfig {
                publish_host: settings.publish_host.clone(),
                create_timeout: Duration::from_secs(settings.create_timeout_secs),
                unhealthy_after: Duration::from_secs(settings.unhealthy_after_secs),
                poll: Duration::from_millis(100),
                hung_after: Duration::from_millis(settings.hung_after_ms),
                health_timeout: Duration::from_secs(1),
                host_cpus,
                host_memory_bytes: host_memory,
                listeners: settings.listeners(),
                ports: port_pool(&settings),
                advertised_host: settings.advertised_host.clone(),
                ca: ca.clone(),
                renew_before: crate::tls::DEFAULT_RENEW_BEFORE,
                images: image_builder(settings.image_prefix.as_deref()),
                image_prefix: settings.image_prefix.clone(),
            },
            cancel.clone(),
        );
        let (driver, nudger) = Driver::new(
            broker_reconciler,
            Duration::from_millis(settings.reconcile_interval_ms),
        );
        let reconciler = tokio::spawn(driver.run(cancel.clone()));
        let mut background = spawn_background(&settings, &store, &secrets, &cancel)?;
        // Always on: the read caches serve nothing without it.
        background.push(tokio::spawn(
            crate::db::cache::ChangeFeed::new(store.clone()).run(cancel.clone()),
        ));
        background.extend(spawn_observers(
            &settings,
            &store,
            &secrets,
            agent.clone(),
            &cancel,
        ));

        let mut app = app_context(&settings, store, secrets, nudger, agent)?;
        app.ca_pem = ca.cert_pem().into();
        if settings.logs_interval_ms > 0 {
            let collector = crate::observe::logs::LogCollector::for_context(
                &app,
                crate::observe::logs::LogCollectorConfig::from_settings(&settings),
            );
            background.push(tokio::spawn(collector.run(cancel.clone())));
        }
        let signing_key = crate::http::session::load_signing_key(&app.store, &app.secrets)
            .await
            .context(
                "loading the session-signing key (is this the master key it was sealed with?)",
            )?;
        let sessions = Arc::new(crate::http::session::SessionKeys::new(
            &signing_key,
            settings.public_url_is_https(),
        ));
        let identity = Arc::new(crate::app::identity::Identity::new(console_settings(
            &settings,
        )?)?);
        let state = ApiState {
            app: std::sync::Arc::new(app.clone()),
            identity,
            sessions: sessions.clone(),
            metrics: Arc::new(crate::app::metrics::MetricsConfig {
                retention: settings.metrics_retention(),
                prometheus_token: settings.metrics_token.clone(),
            }),
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let limits = HttpLimits::from_settings(&settings);
        let server = tokio::spawn(serve(listener, router(state), limits, cancel.clone()));
        Ok(Self {
            port,
            server,
            reconciler,
            background,
            cancel,
            app,
            sessions,
            started_pg,
        })
    }

    /// The application layer (CLI subcommands and tests issue access keys through it).
    pub fn context(&self) -> &AppContext {
        &self.app
    }

    /// Signs and verifies console session tokens (tests make tokens with it).
    pub fn session_keys(&self) -> &crate::http::session::SessionKeys {
        &self.sessions
    }

    /// On first start (no console user exists yet): creates the default account's
    /// console user `admin` with a random password and writes the password to
    /// `data_dir/console-password` (mode 0600). Returns that path when it wrote one.
    pub async fn bootstrap_console_user(
        &self,
        settings: &Settings,
    ) -> anyhow::Result<Option<std::path::PathBuf>> {
        let account = AccountId::parse(&settings.default_account_id).map_err(anyhow::Error::msg)?;
        let Some(password) = crate::app::identity::console_bootstrap(&self.app, &account).await?
        else {
            return Ok(None);
        };
        Ok(Some(write_secret_file(
            &settings.data_dir,
            "console-password",
            &password,
        )?))
    }

    /// On first start (no access key exists yet): creates the default account's admin key
    /// and writes it as the `berth` profile to `data_dir/credentials` (mode 0600) and
    /// `data_dir/config`. Returns the credentials path when it wrote one.
    pub async fn bootstrap_credentials(
        &self,
        settings: &Settings,
        endpoint: &str,
    ) -> anyhow::Result<Option<std::path::PathBuf>> {
        if self.app.store.access_key_count().await? > 0 {
            return Ok(None);
        }
        let account = AccountId::parse(&settings.default_account_id).map_err(anyhow::Error::msg)?;
        let key = crate::app::accounts::access_key_issue(
            &self.app,
            &account,
            "admin (created on first start)",
        )
        .await?;
        let path = write_credentials(&settings.data_dir, &key, &settings.region, endpoint)?;
        Ok(Some(path))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until the server fails or a shutdown signal arrives.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            cancel.cancel();
        });
        let res = self.server.await;
        self.cancel.cancel();
        let _ = self.reconciler.await;
        for task in self.background {
            let _ = task.await;
        }
        if let Some(pg) = self.started_pg {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), self.app.store.pool().close()).await;
            tracing::info!(dir = %pg.dir().display(), "stopping the embedded Postgres this run started");
            if let Err(e) = pg.stop().await {
                tracing::warn!(error = %format!("{e:#}"), "could not stop the embedded Postgres");
            }
        }
        res??;
        Ok(())
    }

    /// Stops the server and the reconciler (tests).
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.server.await;
        let _ = self.reconciler.await;
        for task in self.background {
            let _ = task.await;
        }
    }
}

/// Starts the metric collector and the roll-up/retention task (`observe::collector`).
fn spawn_observers(
    settings: &Settings,
    store: &DataStore,
    secrets: &SecretBox,
    agent: Arc<dyn AgentClient>,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    use crate::observe::collector::{Collector, CollectorConfig, Maintainer};
    let collector = Collector::new(
        store.clone(),
        secrets.clone(),
        agent,
        CollectorConfig {
            interval: Duration::from_millis(settings.metrics_interval_ms),
            timeout: Duration::from_millis(settings.metrics_timeout_ms),
            concurrency: settings.metrics_concurrency,
            publish_host: settings.publish_host.clone(),
        },
    );
    let maintainer = Maintainer::new(store.clone(), settings.metrics_retention());
    vec![
        tokio::spawn(collector.run(cancel.clone())),
        tokio::spawn(maintainer.run(
            Duration::from_millis(settings.metrics_rollup_interval_ms),
            cancel.clone(),
        )),
    ]
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Starts the background tasks the settings turn on (interval 0 = off): the alarm
/// evaluator, the webhook delivery worker and metering.
fn spawn_background(
    settings: &Settings,
    store: &DataStore,
    secrets: &SecretBox,
    cancel: &CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    use crate::app::{alarms, metering, webhooks};
    let mut tasks = Vec::new();
    if settings.alarm_eval_interval_secs > 0 {
        let config = alarms::EvaluatorConfig {
            interval: Duration::from_secs(settings.alarm_eval_interval_secs),
            metrics_interval: Duration::from_millis(settings.metrics_interval_ms),
        };
        tasks.push(tokio::spawn(alarms::run(
            store.clone(),
            config,
            cancel.clone(),
        )));
    }
    if settings.webhook_poll_ms > 0 {
        let config = webhooks::DeliveryConfig {
            poll: Duration::from_millis(settings.webhook_poll_ms),
            timeout: Duration::from_millis(settings.webhook_timeout_ms),
            concurrency: settings.webhook_concurrency,
            max_attempts: i32::try_from(settings.webhook_max_attempts).unwrap_or(i32::MAX),
            backoff_base: Duration::from_millis(settings.webhook_backoff_base_ms),
            backoff_max: Duration::from_millis(settings.webhook_backoff_max_ms),
        };
        tasks.push(tokio::spawn(webhooks::run(
            store.clone(),
            secrets.clone(),
            config,
            cancel.clone(),
        )));
    }
    if settings.metering_interval_secs > 0 {
        let prices = metering::PriceList::load(settings.price_list_file.as_deref())?;
        tasks.push(tokio::spawn(metering::run(
            store.clone(),
            prices,
            Duration::from_secs(settings.metering_interval_secs),
            cancel.clone(),
        )));
    }
    Ok(tasks)
}

/// CPUs and memory of this host, to clamp instance limits that exceed the machine.
fn host_capacity() -> (u32, u64) {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<u64>().ok())
                })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX);
    (cpus, mem)
}

/// Writes `text` to `dir/name`, readable by this user only (mode 0600).
pub fn write_secret_file(
    dir: &std::path::Path,
    name: &str,
    text: &str,
) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(path)
}

/// The console settings of `settings`.
fn console_settings(settings: &Settings) -> anyhow::Result<crate::app::identity::ConsoleSettings> {
    let regions = crate::app::Regions::parse(&settings.regions).map_err(anyhow::Error::msg)?;
    Ok(crate::app::identity::ConsoleSettings {
        session_ttl: Duration::from_secs(settings.session_ttl_secs),
        session_max_lifetime: Duration::from_secs(settings.session_max_lifetime_secs),
        login_max_failures: settings.login_max_failures,
        login_failure_window: Duration::from_secs(settings.login_failure_window_secs),
        default_account: AccountId::parse(&settings.default_account_id)
            .map_err(anyhow::Error::msg)?,
        // The configured region (that of the `berth` profile), else the first served.
        region: regions
            .get(&settings.region)
            .unwrap_or_else(|| regions.first()),
    })
}

/// Writes an AWS shared-credentials file and config file with a `berth` profile.
pub fn write_credentials(
    dir: &std::path::Path,
    key: &crate::app::accounts::IssuedKey,
    region: &str,
    endpoint: &str,
) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(name))
    };
    let creds = dir.join("credentials");
    writeln!(
        open("credentials")?,
        "[berth]\naws_access_key_id = {}\naws_secret_access_key = {}",
        key.access_key_id,
        key.secret_access_key
    )?;
    writeln!(
        open("config")?,
        "[profile berth]\nregion = {region}\nendpoint_url = {endpoint}"
    )?;
    Ok(creds)
}

/// An application context without server or reconciler, for CLI subcommands.
pub async fn offline_context(
    settings: &Settings,
    database_url: &str,
) -> anyhow::Result<AppContext> {
    let store = DataStore::connect(database_url).await?;
    let secrets = SecretBox::load_or_create(settings.master_key.as_deref(), &settings.data_dir)?;
    app_context(
        settings,
        store,
        secrets,
        crate::reconcile::Nudger::default(),
        Arc::new(HttpAgentClient::default()),
    )
}

/// The builder of missing engine images, when this host can build them.
fn image_builder(prefix: Option<&str>) -> Option<Arc<crate::images::ImageBuilder>> {
    match crate::images::ImageBuilder::locate() {
        Ok(b) => Some(Arc::new(match prefix {
            Some(p) => b.with_prefix(p),
            None => b,
        })),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "missing engine images will not be built on demand");
            None
        }
    }
}

/// The installation CA: stored (key sealed) on first start, the same for every later
/// start and every control-plane process on this database. Its certificate is written
/// to `data_dir/ca.pem` for clients to trust.
async fn load_ca(
    store: &DataStore,
    secrets: &SecretBox,
    installation: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<crate::tls::CertificateAuthority> {
    use crate::tls::CertificateAuthority;
    let stored = store
        .ca_load_or_insert(|| {
            let ca = CertificateAuthority::generate(installation, std::time::SystemTime::now())?;
            tracing::info!(subject = %ca.subject(), "created the installation CA");
            Ok(ca.to_stored(secrets))
        })
        .await?;
    let ca = CertificateAuthority::from_stored(&stored, secrets)
        .context("opening the installation CA (is this the master key it was sealed with?)")?;
    crate::tls::write_ca_file(data_dir, ca.cert_pem())
        .with_context(|| format!("writing the CA certificate into {}", data_dir.display()))?;
    Ok(ca)
}

fn port_pool(settings: &Settings) -> PortPool {
    PortPool {
        publish_host: settings.publish_host.clone(),
        start: settings.port_range_start,
        end: settings.port_range_end,
    }
}

fn app_context(
    settings: &Settings,
    store: DataStore,
    secrets: SecretBox,
    nudger: crate::reconcile::Nudger,
    agent: Arc<dyn AgentClient>,
) -> anyhow::Result<AppContext> {
    Ok(AppContext {
        store,
        secrets,
        ports: port_pool(settings),
        nudger,
        regions: crate::app::Regions::parse(&settings.regions).map_err(anyhow::Error::msg)?,
        advertised_host: settings.advertised_host.clone(),
        listeners: settings.listeners(),
        ca_pem: std::sync::Arc::from(""),
        agent: crate::agent_client::SharedAgentClient(agent),
    })
}
