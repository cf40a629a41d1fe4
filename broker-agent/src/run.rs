//! The top of the agent: process settings and [`run`], which wires the pieces together
//! and performs the PID 1 shutdown sequence.
//!
//! Order at start: load and validate the spec (a bad spec ends the agent before any
//! engine runs), install child reaping and signal handlers, build the engine driver,
//! bind the API and the driver's sidecars, then start the readiness monitor and the
//! supervisor (which keeps the engine's output in the agent's buffer, where the monitor
//! reads a standby's lines, reads failed runs' output through the agent's scrubbed
//! diagnosis, and takes the agent's requests: restarts, e.g. for a renewed certificate,
//! and kills of a hung engine). On SIGTERM/SIGINT: state Stopping, the supervisor
//! forwards SIGTERM to the engine and waits for it, sidecars stop, leftover processes
//! are terminated.
//!
//! The engine's logs are kept in a [`LogStore`] under the driver's data directory when
//! it can be opened (see [`crate::logstore`]).
//!
//! This is the only module that knows every other one; nothing imports it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_contract::AGENT_PORT;
use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::context::Agent;
use crate::engine;
use crate::logstore::{self, LogStore};
use crate::monitor::{self, MonitorConfig};
use crate::reaper::{self, Reaper};
use crate::specfile;
use crate::supervisor::{Supervisor, SupervisorConfig};

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

/// Run the agent until SIGTERM/SIGINT. Errors (bad spec, missing engine user, port in
/// use) are returned before the engine is started.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let spec = specfile::load(&settings.spec_path)
        .with_context(|| format!("cannot use the spec at {}", settings.spec_path.display()))?;
    let names: Vec<&str> = spec.users.iter().map(|u| u.username.as_str()).collect();
    tracing::info!(
        broker_id = %spec.broker_id,
        engine = ?spec.engine_kind(),
        version = %spec.engine_version,
        node = spec.node.index,
        nodes = spec.node.count,
        topology = ?spec.node.topology,
        users = ?names,
        tls = spec.tls.is_some(),
        plaintext = spec.plaintext,
        pid = std::process::id(),
        "broker agent starting"
    );

    // Before any child exists: reaping and signal handlers (PID 1 gets no default
    // signal handling from the kernel: without handlers SIGTERM would be ignored).
    let reaper = Reaper::global();
    reaper::become_subreaper();
    let mut sigterm = signal(SignalKind::terminate()).context("hooking SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("hooking SIGINT")?;

    let driver = engine::driver_for(&spec)?;
    let store_dir = driver
        .data_dir()
        .map(|d| logstore::store_dir(&d, spec.node.index));
    let mut agent = Agent::new(spec, settings.spec_path.clone(), driver.clone());
    // A store that cannot be opened costs the logs API, not the broker.
    match store_dir.map(|d| (LogStore::open(&d), d)) {
        Some((Ok(store), dir)) => {
            tracing::info!(dir = %dir.display(), epoch = store.epoch(), "engine logs kept");
            agent = agent.with_log_store(Arc::new(store));
        }
        Some((Err(e), dir)) => {
            tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "engine logs not kept")
        }
        None => {}
    }
    let agent = Arc::new(agent);

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
    let sidecars = driver.start_sidecars(shutdown_rx.clone()).await?;
    tokio::spawn(monitor::monitor(
        agent.clone(),
        settings.monitor,
        shutdown_rx.clone(),
    ));
    let prep_agent = agent.clone();
    let diag_agent = agent.clone();
    let mut supervisor = Supervisor::new(
        settings.supervisor,
        Box::new(move || prep_agent.prepare_engine()),
        agent.state.clone(),
        reaper,
    )
    .with_diagnosis(Box::new(move |lines| diag_agent.diagnose(lines)))
    .with_output(agent.engine_output());
    if let Some(control) = agent.take_control() {
        supervisor = supervisor.with_control(control);
    }
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
    for task in sidecars {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    reaper::terminate_remaining(reaper, settings.leftover_grace).await;
    tracing::info!("broker agent stopped cleanly");
    Ok(())
}
