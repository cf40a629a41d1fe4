//! The agent as a whole: shared context for the supervisor, the readiness monitor and the
//! HTTP API, the engine-driver abstraction, and [`run`], which wires them together and
//! performs the PID 1 shutdown sequence.
//!
//! The [`EngineDriver`] trait is the seam between the generic machinery (supervision,
//! readiness, API) and an engine family: RabbitMQ today, ActiveMQ later. Tests implement
//! it with fakes so the API and monitor run without a broker.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use subtle::ConstantTimeEq;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::rabbitmq::{RabbitDriver, RabbitPaths};
use crate::readiness::{self, MonitorConfig};
use crate::reaper::{self, Reaper};
use crate::spec::{AgentSpec, Engine, EngineState, HealthReport, AGENT_PORT};
use crate::specfile;
use crate::state::AgentState;
use crate::supervisor::{ProcessSpec, Supervisor, SupervisorConfig};

/// A boxed, sendable future (keeps [`EngineDriver`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Result of [`EngineDriver::prepare`].
#[derive(Debug)]
pub struct Prepared {
    pub process: ProcessSpec,
    /// The memory limit the config was rendered for.
    pub memory_limit: Option<u64>,
    /// The engine will create exactly the spec's users by itself at this start (a
    /// virgin node bootstrapped from the config), so no reconciliation is needed.
    pub users_settled: bool,
}

/// Engine-specific operations.
pub trait EngineDriver: Send + Sync + 'static {
    /// Write the engine's files for `spec`; return the process to run. Called before
    /// every (re)start.
    fn prepare(&self, spec: &AgentSpec) -> anyhow::Result<Prepared>;
    /// Protocol-level readiness check.
    fn probe(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Cheaper, log-quiet check run every few seconds while Ready; defaults to [`probe`].
    ///
    /// [`probe`]: EngineDriver::probe
    fn liveness(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        self.probe()
    }
    /// Make the running engine's users match `spec.users`.
    fn reconcile_users<'a>(&'a self, spec: &'a AgentSpec) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Apply a memory limit (None = unlimited) and watermark fraction to the running engine.
    fn apply_memory_watermark(
        &self,
        limit: Option<u64>,
        fraction: Option<f64>,
    ) -> BoxFuture<'_, anyhow::Result<()>>;
    /// The container's memory limit right now.
    fn current_memory_limit(&self) -> Option<u64>;
}

/// Why `PUT /spec` was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}")]
    Invalid(String),
    #[error("engine is {0:?}, not ready")]
    NotReady(EngineState),
    #[error("{0}")]
    Failed(String),
}

/// Shared context. See the module docs.
pub struct Agent {
    pub state: Arc<AgentState>,
    pub driver: Arc<dyn EngineDriver>,
    spec: RwLock<AgentSpec>,
    spec_path: PathBuf,
    /// Serialises user reconciliations (monitor vs. API).
    reconcile_lock: tokio::sync::Mutex<()>,
    /// Set while the engine's users may differ from the spec.
    users_dirty: AtomicBool,
}

impl Agent {
    pub fn new(spec: AgentSpec, spec_path: PathBuf, driver: Arc<dyn EngineDriver>) -> Agent {
        Agent {
            state: Arc::new(AgentState::new(spec.broker_id.clone(), spec.engine)),
            driver,
            spec: RwLock::new(spec),
            spec_path,
            reconcile_lock: tokio::sync::Mutex::new(()),
            users_dirty: AtomicBool::new(true),
        }
    }

    /// A copy of the current spec.
    pub fn spec(&self) -> AgentSpec {
        self.spec.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Constant-time comparison of a presented bearer token with the spec's.
    pub fn token_matches(&self, presented: &str) -> bool {
        let spec = self.spec.read().unwrap_or_else(|e| e.into_inner());
        presented
            .as_bytes()
            .ct_eq(spec.agent_token.as_bytes())
            .into()
    }

    pub fn users_dirty(&self) -> bool {
        self.users_dirty.load(Ordering::SeqCst)
    }

    /// Render the engine's files from the current spec; used by the supervisor before
    /// every start.
    pub fn prepare_engine(&self) -> anyhow::Result<ProcessSpec> {
        let prepared = self.driver.prepare(&self.spec())?;
        self.state.set_memory_limit(prepared.memory_limit);
        // A node restored from the volume may have other users than the spec: check,
        // unless the engine bootstraps exactly the spec's users itself.
        self.users_dirty
            .store(!prepared.users_settled, Ordering::SeqCst);
        Ok(prepared.process)
    }

    /// Apply the current spec's users to the engine (serialised).
    pub async fn reconcile_users(&self) -> anyhow::Result<()> {
        let _guard = self.reconcile_lock.lock().await;
        self.reconcile_users_locked().await
    }

    async fn reconcile_users_locked(&self) -> anyhow::Result<()> {
        let spec = self.spec();
        match self.driver.reconcile_users(&spec).await {
            Ok(()) => {
                self.users_dirty.store(false, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                self.users_dirty.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// After `docker update --memory`, push the new watermark to the running engine.
    pub async fn follow_memory_limit(&self) {
        let now = self.driver.current_memory_limit();
        let before = self.state.memory_limit();
        if now == before {
            return;
        }
        let fraction = self.spec().memory_high_watermark;
        match self.driver.apply_memory_watermark(now, fraction).await {
            Ok(()) => {
                tracing::info!(
                    ?before,
                    ?now,
                    "memory limit changed; watermark updated live"
                );
                self.state.set_memory_limit(now);
            }
            Err(e) => {
                let msg = format!("cannot apply the new memory limit: {e:#}");
                tracing::warn!("{msg}");
                self.state.set_last_error(msg);
            }
        }
    }

    /// `PUT /spec`: take the new users (and watermark fraction), persist, apply live.
    pub async fn update_spec(&self, new: AgentSpec) -> Result<HealthReport, UpdateError> {
        specfile::validate(&new).map_err(|e| UpdateError::Invalid(e.to_string()))?;
        let current = self.spec();
        if new.broker_id != current.broker_id {
            return Err(UpdateError::Invalid(format!(
                "spec is for broker {}, this is {}",
                new.broker_id, current.broker_id
            )));
        }
        if new.engine != current.engine {
            return Err(UpdateError::Invalid("engine cannot be changed".into()));
        }
        let token_same: bool = new
            .agent_token
            .as_bytes()
            .ct_eq(current.agent_token.as_bytes())
            .into();
        if !token_same || new.erlang_cookie != current.erlang_cookie {
            return Err(UpdateError::Invalid(
                "agent_token and erlang_cookie cannot be changed on a running broker".into(),
            ));
        }
        let state = self.state.state();
        if state != EngineState::Ready {
            return Err(UpdateError::NotReady(state));
        }

        let _guard = self.reconcile_lock.lock().await;
        let state = self.state.state();
        if state != EngineState::Ready {
            return Err(UpdateError::NotReady(state));
        }
        let mut merged = self.spec();
        merged.users = new.users;
        merged.engine_version = new.engine_version;
        let watermark_changed = merged.memory_high_watermark != new.memory_high_watermark;
        merged.memory_high_watermark = new.memory_high_watermark;

        specfile::persist(&self.spec_path, &merged)
            .map_err(|e| UpdateError::Failed(format!("cannot persist the spec: {e:#}")))?;
        *self.spec.write().unwrap_or_else(|e| e.into_inner()) = merged.clone();
        let names: Vec<&str> = merged.users.iter().map(|u| u.username.as_str()).collect();
        tracing::info!(users = ?names, "spec updated through the API");

        if let Err(e) = self.reconcile_users_locked().await {
            let msg = format!("user reconciliation failed: {e:#}");
            self.state.set_last_error(msg.clone());
            return Err(UpdateError::Failed(msg));
        }
        if watermark_changed {
            let limit = self.driver.current_memory_limit();
            if let Err(e) = self
                .driver
                .apply_memory_watermark(limit, merged.memory_high_watermark)
                .await
            {
                let msg = format!("cannot apply the memory watermark: {e:#}");
                self.state.set_last_error(msg.clone());
                return Err(UpdateError::Failed(msg));
            }
            self.state.set_memory_limit(limit);
        }
        Ok(self.state.report())
    }
}

/// Process-level settings (paths and timings), from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub spec_path: PathBuf,
    pub listen: SocketAddr,
    pub supervisor: SupervisorConfig,
    pub monitor: MonitorConfig,
    /// Grace period for processes left after the engine stopped.
    pub leftover_grace: Duration,
}

impl Settings {
    /// `BERTH_AGENT_SPEC` overrides the spec path, `BERTH_AGENT_LISTEN` the listen address.
    pub fn from_env() -> anyhow::Result<Settings> {
        let listen = match std::env::var("BERTH_AGENT_LISTEN") {
            Ok(v) => v
                .parse()
                .with_context(|| format!("BERTH_AGENT_LISTEN={v} is not an address"))?,
            Err(_) => SocketAddr::from(([0, 0, 0, 0], AGENT_PORT)),
        };
        Ok(Settings {
            spec_path: specfile::spec_path(),
            listen,
            supervisor: SupervisorConfig::default(),
            monitor: MonitorConfig::default(),
            leftover_grace: Duration::from_secs(3),
        })
    }
}

/// Run the agent until SIGTERM/SIGINT. Errors (bad spec, unsupported engine, port in
/// use) are returned before the engine is started.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let spec = specfile::load(&settings.spec_path)
        .with_context(|| format!("cannot use the spec at {}", settings.spec_path.display()))?;
    let names: Vec<&str> = spec.users.iter().map(|u| u.username.as_str()).collect();
    tracing::info!(
        broker_id = %spec.broker_id,
        engine = ?spec.engine,
        version = %spec.engine_version,
        users = ?names,
        pid = std::process::id(),
        "broker agent starting"
    );
    if spec.engine != Engine::Rabbitmq {
        anyhow::bail!(
            "engine {:?} is not supported by this agent yet",
            spec.engine
        );
    }

    // Before any child exists: reaping and signal handlers (PID 1 gets no default
    // signal handling from the kernel: without handlers SIGTERM would be ignored).
    let reaper = Reaper::global();
    reaper::become_subreaper();
    let mut sigterm = signal(SignalKind::terminate()).context("hooking SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("hooking SIGINT")?;

    let driver: Arc<dyn EngineDriver> = Arc::new(RabbitDriver::new(RabbitPaths::default())?);
    let agent = Arc::new(Agent::new(spec, settings.spec_path.clone(), driver));

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(addr = %settings.listen, "agent API listening");
    let router = crate::api::router(agent.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "agent API stopped");
        }
    });

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(readiness::monitor(
        agent.clone(),
        settings.monitor,
        shutdown_rx.clone(),
    ));
    let prep_agent = agent.clone();
    let supervisor = Supervisor::new(
        settings.supervisor,
        Box::new(move || prep_agent.prepare_engine()),
        agent.state.clone(),
        reaper,
    );
    let supervised = tokio::spawn(supervisor.run(shutdown_rx));

    let which = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    tracing::info!(signal = which, "shutdown requested");
    agent.state.set_stopping();
    let _ = shutdown_tx.send(true);
    if let Err(e) = supervised.await {
        tracing::error!(error = %e, "supervisor task failed");
    }
    reaper::terminate_remaining(reaper, settings.leftover_grace).await;
    tracing::info!("broker agent stopped cleanly");
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::EngineUser;
    use crate::specfile::tests::sample_spec;
    use std::sync::Mutex;

    /// A driver that records what it is asked to do.
    #[derive(Default)]
    pub(crate) struct FakeDriver {
        pub reconciled: Mutex<Vec<Vec<String>>>,
        pub watermarks: Mutex<Vec<(Option<u64>, Option<f64>)>>,
        pub probe_ok: AtomicBool,
        pub fail_reconcile: AtomicBool,
        pub limit: Mutex<Option<u64>>,
    }

    impl EngineDriver for FakeDriver {
        fn prepare(&self, _spec: &AgentSpec) -> anyhow::Result<Prepared> {
            Ok(Prepared {
                users_settled: false,
                process: ProcessSpec {
                    program: "/bin/sleep".into(),
                    args: vec!["30".into()],
                    ..Default::default()
                },
                memory_limit: *self.limit.lock().unwrap(),
            })
        }
        fn probe(&self) -> BoxFuture<'_, anyhow::Result<()>> {
            let ok = self.probe_ok.load(Ordering::SeqCst);
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    anyhow::bail!("not answering")
                }
            })
        }
        fn reconcile_users<'a>(&'a self, spec: &'a AgentSpec) -> BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                if self.fail_reconcile.load(Ordering::SeqCst) {
                    anyhow::bail!("rabbitmqctl exploded");
                }
                self.reconciled
                    .lock()
                    .unwrap()
                    .push(spec.users.iter().map(|u| u.username.clone()).collect());
                Ok(())
            })
        }
        fn apply_memory_watermark(
            &self,
            limit: Option<u64>,
            fraction: Option<f64>,
        ) -> BoxFuture<'_, anyhow::Result<()>> {
            self.watermarks.lock().unwrap().push((limit, fraction));
            Box::pin(async { Ok(()) })
        }
        fn current_memory_limit(&self) -> Option<u64> {
            *self.limit.lock().unwrap()
        }
    }

    pub(crate) fn test_agent(dir: &std::path::Path) -> (Arc<Agent>, Arc<FakeDriver>) {
        let driver = Arc::new(FakeDriver::default());
        let agent = Arc::new(Agent::new(
            sample_spec(),
            dir.join("spec.json"),
            driver.clone(),
        ));
        (agent, driver)
    }

    /// Poll `cond` for up to 5 s (generous for loaded CI machines).
    async fn wait_for(cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not reached in 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn fast_monitor() -> MonitorConfig {
        MonitorConfig {
            poll: Duration::from_millis(10),
            ready: Duration::from_millis(30),
            retry_after_error: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn monitor_reports_ready_only_after_users_are_reconciled() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        let generation = agent.state.engine_started(false);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(readiness::monitor(agent.clone(), fast_monitor(), rx));

        // engine not answering: stays Starting, no reconciliation
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(agent.state.state(), EngineState::Starting);
        assert!(driver.reconciled.lock().unwrap().is_empty());

        // answering but reconciliation fails: still not Ready
        driver.fail_reconcile.store(true, Ordering::SeqCst);
        driver.probe_ok.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(agent.state.state(), EngineState::Starting);
        assert!(agent.state.last_error().unwrap().contains("exploded"));

        driver.fail_reconcile.store(false, Ordering::SeqCst);
        wait_for(|| agent.state.state() == EngineState::Ready).await;
        assert_eq!(driver.reconciled.lock().unwrap()[0], vec!["admin"]);

        // stops answering: back to Starting; answers again: Ready again
        driver.probe_ok.store(false, Ordering::SeqCst);
        wait_for(|| agent.state.state() == EngineState::Starting).await;
        driver.probe_ok.store(true, Ordering::SeqCst);
        wait_for(|| agent.state.state() == EngineState::Ready).await;

        // a live memory-limit change is pushed to the engine
        *driver.limit.lock().unwrap() = Some(2 << 30);
        wait_for(|| agent.state.memory_limit() == Some(2 << 30)).await;
        assert_eq!(driver.watermarks.lock().unwrap()[0], (Some(2 << 30), None));

        let _ = generation;
        tx.send(true).unwrap();
    }

    #[tokio::test]
    async fn update_spec_applies_users_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        let mut new = sample_spec();
        new.users.push(EngineUser {
            username: "second".into(),
            password: "second-password".into(),
            admin: false,
        });

        // not Ready yet → refused, nothing persisted
        assert!(matches!(
            agent.update_spec(new.clone()).await,
            Err(UpdateError::NotReady(EngineState::Starting))
        ));
        assert!(!dir.path().join("spec.json").exists());

        let g = agent.state.engine_started(false);
        agent.state.mark_ready(g);
        let report = agent.update_spec(new.clone()).await.unwrap();
        assert_eq!(report.state, EngineState::Ready);
        assert_eq!(
            driver.reconciled.lock().unwrap().last().unwrap(),
            &vec!["admin".to_string(), "second".to_string()]
        );
        let persisted = specfile::load(&dir.path().join("spec.json")).unwrap();
        assert_eq!(persisted.users.len(), 2);
        assert_eq!(agent.spec().users.len(), 2);

        // wrong broker
        let mut other = new.clone();
        other.broker_id = "b-other".into();
        assert!(matches!(
            agent.update_spec(other).await,
            Err(UpdateError::Invalid(_))
        ));
        // token rotation is not supported live
        let mut other = new.clone();
        other.agent_token = "another-token-0123456789".into();
        assert!(matches!(
            agent.update_spec(other).await,
            Err(UpdateError::Invalid(_))
        ));

        // watermark change is applied live
        let mut wm = new.clone();
        wm.memory_high_watermark = Some(0.5);
        agent.update_spec(wm).await.unwrap();
        assert_eq!(
            driver.watermarks.lock().unwrap().last().unwrap(),
            &(None, Some(0.5))
        );
    }

    #[tokio::test]
    async fn failed_live_reconciliation_is_reported_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        let g = agent.state.engine_started(false);
        agent.state.mark_ready(g);
        driver.fail_reconcile.store(true, Ordering::SeqCst);
        assert!(matches!(
            agent.update_spec(sample_spec()).await,
            Err(UpdateError::Failed(_))
        ));
        assert!(agent.users_dirty());
        driver.fail_reconcile.store(false, Ordering::SeqCst);
        driver.probe_ok.store(true, Ordering::SeqCst);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(readiness::monitor(agent.clone(), fast_monitor(), rx));
        wait_for(|| !agent.users_dirty()).await;
        tx.send(true).unwrap();
    }
}
