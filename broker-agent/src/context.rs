//! The shared context of a running agent: the current spec, the lifecycle state and the
//! engine driver, used by the supervisor's prepare callback, the readiness monitor and
//! the HTTP API.
//!
//! Everything that changes a running broker goes through here: user reconciliation
//! (serialised, so the monitor and the API never run two at once), live memory changes,
//! and `PUT /spec` ([`Agent::update_spec`]).
//!
//! **What `PUT /spec` applies, and when:**
//! - users, the engine version and the engine tuning (watermark, heap share): live, as
//!   before (a JVM heap at the next engine start);
//! - a renewed certificate (`tls` present before and after, with another certificate,
//!   key or CA): live, and the call returns only once every TLS listener of the engine
//!   serves the new certificate (checked with a TLS handshake per port,
//!   [`crate::tlsutil::served_leaf`]). The driver writes the files and makes the engine
//!   use them if it can ([`EngineDriver::apply_tls`]: RabbitMQ clears its PEM cache,
//!   ActiveMQ's bridge swaps its rustls config); when it cannot (ActiveMQ's keystore),
//!   or a listener still serves the old certificate afterwards, the agent restarts the
//!   engine process in place (container, volume and agent stay; a controlled stop, not a
//!   crash) and waits until it is Ready again;
//! - on a **standby** (a shared-storage node waiting for the store's lock, which answers
//!   nothing): `PUT /spec` is taken as well. Users are written where the engine reads
//!   them when it becomes active ([`EngineDriver::stage_users`]; ActiveMQ: the JAAS
//!   files), and a renewed certificate is checked only on the listeners a standby serves
//!   ([`EngineDriver::standby_tls_endpoints`], e.g. ActiveMQ's `wss` bridge); one the
//!   engine reads only at start (ActiveMQ's keystore) restarts the standby's engine,
//!   which then waits for the lock again. Note that restarting an *active* engine of a
//!   pair hands the lock to the other node: it may come back as the standby, and then
//!   only the standby's listeners are checked;
//! - the configuration revision (`engine_config`) and the listener layout (`plaintext`,
//!   and `tls` being added or removed): at the next start of the agent (the control
//!   plane's reboot recreates the container). They are persisted with the spec but the
//!   running agent keeps rendering the values it started with, so that an engine
//!   restart (a crash, a certificate renewal) never switches configuration halfway.
//!
//! **Why the engine stopped**: [`Agent::diagnose`] reads the engine's last output lines
//! with the driver and removes every secret the agent knows before the excerpt can
//! reach `HealthReport.last_error`. The current run's lines are also here
//! ([`Agent::engine_output`]) for the monitor, which recognises a standby by them.
//!
//! **Requests to the supervisor** go through one channel ([`Control`]): restarts in
//! place (a renewal) and kills of a hung engine ([`Agent::request_kill`], from the
//! monitor).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use agent_contract::{AgentSpec, EngineSpec, EngineState, HealthReport, TlsMaterial, Topology};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use crate::containerstats::ContainerSampler;
use crate::engine::diagnosis::{self, Diagnosis};
use crate::engine::{self, EngineDriver, LiveChange, TlsEndpoint};
use crate::enginelog::EngineOutput;
use crate::logstore::LogStore;
use crate::specfile;
use crate::state::AgentState;
use crate::supervisor::{Control, KillRequest, ProcessSpec, RestartRequest};
use crate::tlsutil;

/// Why `PUT /spec` was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}")]
    Invalid(String),
    #[error("engine is {0:?}, not ready (nor a standby)")]
    NotReady(EngineState),
    #[error("{0}")]
    Failed(String),
}

/// Time limits of a certificate renewal.
#[derive(Debug, Clone, Copy)]
pub struct RenewalTimeouts {
    /// How long listeners may take to serve the new certificate after a live reload
    /// before the agent restarts the engine instead.
    pub live: Duration,
    /// How long the supervisor may take to stop the engine and start it again.
    pub restart: Duration,
    /// How long the restarted engine may take to be Ready and serve the certificate.
    pub ready: Duration,
}

impl Default for RenewalTimeouts {
    fn default() -> Self {
        // The control plane waits 60 s for PUT /spec.
        RenewalTimeouts {
            live: Duration::from_secs(5),
            restart: Duration::from_secs(35),
            ready: Duration::from_secs(45),
        }
    }
}

/// Shared context. See the module docs.
pub struct Agent {
    pub state: Arc<AgentState>,
    pub driver: Arc<dyn EngineDriver>,
    spec: RwLock<AgentSpec>,
    spec_path: PathBuf,
    /// Serialises user reconciliations (monitor vs. API).
    reconcile_lock: tokio::sync::Mutex<()>,
    /// Serialises `PUT /spec` calls.
    update_lock: tokio::sync::Mutex<()>,
    /// Set while the engine's users may differ from the spec.
    users_dirty: AtomicBool,
    /// The TLS material the running engine serves: rendered at its start, or applied
    /// live since.
    engine_tls: Mutex<Option<TlsMaterial>>,
    /// Requests to the supervisor (its end is taken by [`Agent::take_control`]).
    control: mpsc::Sender<Control>,
    control_rx: Mutex<Option<mpsc::Receiver<Control>>>,
    renewal: RenewalTimeouts,
    /// The engine's output of the current run (the supervisor writes it).
    output: EngineOutput,
    /// The container's metrics (keeps the previous CPU reading).
    pub container: ContainerSampler,
    /// The engine's stored logs (`GET /logs`), if the agent keeps them.
    logs: Option<Arc<LogStore>>,
}

impl Agent {
    pub fn new(spec: AgentSpec, spec_path: PathBuf, driver: Arc<dyn EngineDriver>) -> Agent {
        let (control, control_rx) = mpsc::channel(1);
        Agent {
            state: Arc::new(AgentState::new(spec.broker_id.clone(), spec.engine_kind())),
            driver,
            spec: RwLock::new(spec),
            spec_path,
            reconcile_lock: tokio::sync::Mutex::new(()),
            update_lock: tokio::sync::Mutex::new(()),
            users_dirty: AtomicBool::new(true),
            engine_tls: Mutex::new(None),
            control,
            control_rx: Mutex::new(Some(control_rx)),
            renewal: RenewalTimeouts::default(),
            output: EngineOutput::default(),
            container: ContainerSampler::default(),
            logs: None,
        }
    }

    /// Keep the engine's output in `store` too (and mask every secret the agent knows
    /// there).
    pub fn with_log_store(mut self, store: Arc<LogStore>) -> Agent {
        store.set_secrets(self.secrets());
        self.output = EngineOutput::with_store(store.clone(), self.driver.audit_log_prefix());
        self.logs = Some(store);
        self
    }

    /// The engine's stored logs, if kept.
    pub fn logs(&self) -> Option<&LogStore> {
        self.logs.as_deref()
    }

    /// Other time limits for certificate renewals (tests).
    pub fn with_renewal_timeouts(mut self, renewal: RenewalTimeouts) -> Agent {
        self.renewal = renewal;
        self
    }

    /// The receiving end of the requests to the supervisor, for the supervisor (once).
    pub fn take_control(&self) -> Option<mpsc::Receiver<Control>> {
        self.control_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The engine's output buffer, for the supervisor to fill and the monitor to read.
    pub fn engine_output(&self) -> EngineOutput {
        self.output.clone()
    }

    /// How this node relates to the broker's other nodes.
    /// How many nodes the broker has (the spec's `node.count`).
    pub fn node_count(&self) -> u32 {
        self.spec
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .node
            .count
    }

    pub fn topology(&self) -> Topology {
        self.spec
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .node
            .topology
    }

    /// Ask the supervisor to SIGKILL the engine run `generation` (a hung engine, see
    /// [`crate::monitor`]). False if the request cannot be queued right now (the
    /// supervisor is busy with another one): ask again later.
    pub fn request_kill(&self, generation: u64, reason: String) -> bool {
        self.control
            .try_send(Control::Kill(KillRequest { generation, reason }))
            .is_ok()
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

    fn engine_tls(&self) -> Option<TlsMaterial> {
        self.engine_tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_engine_tls(&self, tls: Option<TlsMaterial>) {
        *self.engine_tls.lock().unwrap_or_else(|e| e.into_inner()) = tls;
    }

    /// Render the engine's files from the current spec; used by the supervisor before
    /// every start.
    pub fn prepare_engine(&self) -> anyhow::Result<ProcessSpec> {
        let spec = self.spec();
        let prepared = self.driver.prepare(&spec)?;
        self.set_engine_tls(spec.tls);
        self.state.set_memory_limit(prepared.memory_limit);
        // A node restored from the volume may have other users than the spec: check,
        // unless the engine starts with exactly the spec's users by itself.
        self.users_dirty
            .store(!prepared.users_settled, Ordering::SeqCst);
        Ok(prepared.process)
    }

    /// Every secret the agent knows (spec and driver), for scrubbing reports.
    pub fn secrets(&self) -> Vec<String> {
        let spec = self.spec();
        let mut out: Vec<String> = spec.users.iter().map(|u| u.password.clone()).collect();
        out.push(spec.agent_token.clone());
        if let EngineSpec::Rabbitmq(r) = &spec.engine {
            out.push(r.erlang_cookie.clone());
        }
        if let Some(tls) = &spec.tls {
            // The key's base64 lines, should an engine ever print a PEM key.
            out.extend(
                tls.key_pem
                    .lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(String::from),
            );
        }
        out.extend(self.driver.secrets());
        out
    }

    /// The driver's reading of a finished run's output, without secrets.
    pub fn diagnose(&self, output: &[String]) -> Diagnosis {
        let mut d = self.driver.diagnose_exit(output);
        if let Some(excerpt) = d.excerpt.take() {
            d.excerpt = Some(diagnosis::redact(&excerpt, &self.secrets()));
        }
        d
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

    /// A standby's users: written for when it becomes active, or left for the monitor to
    /// reconcile then (see [`EngineDriver::stage_users`]).
    async fn stage_users_locked(&self) -> anyhow::Result<()> {
        let spec = self.spec();
        match self.driver.stage_users(&spec).await {
            Ok(settled) => {
                self.users_dirty.store(!settled, Ordering::SeqCst);
                tracing::info!(
                    settled,
                    "the engine is a standby: users staged for when it becomes active"
                );
                Ok(())
            }
            Err(e) => {
                self.users_dirty.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// After `docker update --memory`, push the new limit to the running engine (or note
    /// that it applies at the next start).
    pub async fn follow_memory_limit(&self) {
        let now = self.driver.current_memory_limit();
        let before = self.state.memory_limit();
        if now == before {
            return;
        }
        match self.driver.apply_memory_limit(&self.spec(), now).await {
            Ok(LiveChange::Applied) => {
                tracing::info!(?before, ?now, "memory limit changed; applied live");
                self.state.set_memory_limit(now);
            }
            Ok(LiveChange::AtNextStart) => {
                tracing::info!(
                    ?before,
                    ?now,
                    "memory limit changed; the engine picks it up at its next start"
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

    /// `PUT /spec`; see the module docs for what applies when. Identity (broker, engine,
    /// token, cookie, broker name) cannot change.
    pub async fn update_spec(&self, new: AgentSpec) -> Result<HealthReport, UpdateError> {
        specfile::validate(&new).map_err(|e| UpdateError::Invalid(e.to_string()))?;
        let current = self.spec();
        if new.broker_id != current.broker_id {
            return Err(UpdateError::Invalid(format!(
                "spec is for broker {}, this is {}",
                new.broker_id, current.broker_id
            )));
        }
        if let Some(why) = engine::immutable_change(&current.engine, &new.engine) {
            return Err(UpdateError::Invalid(why.into()));
        }
        let token_same: bool = new
            .agent_token
            .as_bytes()
            .ct_eq(current.agent_token.as_bytes())
            .into();
        if !token_same {
            return Err(UpdateError::Invalid(
                "agent_token cannot be changed on a running broker".into(),
            ));
        }
        let serving = |state| matches!(state, EngineState::Ready | EngineState::Standby);
        let state = self.state.state();
        if !serving(state) {
            return Err(UpdateError::NotReady(state));
        }

        let _update = self.update_lock.lock().await;
        let state = self.state.state();
        if !serving(state) {
            return Err(UpdateError::NotReady(state));
        }
        let current = self.spec();
        let renewal = tls_renewal(self.engine_tls().as_ref(), new.tls.as_ref());
        if let Some(r) = &renewal {
            tlsutil::server_config(&r.new.cert_pem, &r.new.key_pem)
                .map_err(|e| UpdateError::Invalid(format!("tls: {e:#}")))?;
        }
        let deferred = deferred_changes(&current, &new);

        let mut merged = current.clone();
        merged.users = new.users;
        merged.engine_version = new.engine_version;
        let tuning_changed = merged.engine != new.engine;
        merged.engine = new.engine;
        if renewal.is_some() {
            merged.tls = new.tls.clone();
        }
        // On disk: everything, for the next start of the agent.
        let mut persisted = merged.clone();
        persisted.engine_config = new.engine_config;
        persisted.plaintext = new.plaintext;
        persisted.tls = new.tls;
        specfile::persist(&self.spec_path, &persisted)
            .map_err(|e| UpdateError::Failed(format!("cannot persist the spec: {e:#}")))?;
        *self.spec.write().unwrap_or_else(|e| e.into_inner()) = merged.clone();
        if let Some(logs) = &self.logs {
            logs.set_secrets(self.secrets());
        }
        let names: Vec<&str> = merged.users.iter().map(|u| u.username.as_str()).collect();
        tracing::info!(users = ?names, "spec updated through the API");
        if !deferred.is_empty() {
            tracing::warn!(
                changed = ?deferred,
                "changes that apply at the next start of the broker (reboot) were saved"
            );
        }

        {
            let _guard = self.reconcile_lock.lock().await;
            let applied = if self.state.state() == EngineState::Standby {
                self.stage_users_locked().await
            } else {
                self.reconcile_users_locked().await
            };
            if let Err(e) = applied {
                let msg = format!("user reconciliation failed: {e:#}");
                self.state.set_last_error(msg.clone());
                return Err(UpdateError::Failed(msg));
            }
        }
        if tuning_changed {
            let limit = self.driver.current_memory_limit();
            match self.driver.apply_memory_limit(&merged, limit).await {
                Ok(LiveChange::Applied) => self.state.set_memory_limit(limit),
                Ok(LiveChange::AtNextStart) => {
                    tracing::info!("memory tuning changed; applies at the next engine start")
                }
                Err(e) => {
                    let msg = format!("cannot apply the memory settings: {e:#}");
                    self.state.set_last_error(msg.clone());
                    return Err(UpdateError::Failed(msg));
                }
            }
        }
        if let Some(r) = renewal {
            if let Err(e) = self.renew_tls(&merged, &r.previous).await {
                let msg = format!("certificate renewal failed: {e:#}");
                tracing::error!("{msg}");
                self.state.set_last_error(msg.clone());
                return Err(UpdateError::Failed(msg));
            }
        }
        Ok(self.state.report())
    }

    /// Make the engine serve `spec.tls` (see the module docs); Ok once every TLS
    /// listener does (a standby: every listener a standby serves).
    async fn renew_tls(&self, spec: &AgentSpec, previous: &TlsMaterial) -> anyhow::Result<()> {
        let begun = Instant::now();
        let material = spec
            .tls
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no TLS material"))?;
        let want = tlsutil::leaf_der(&material.cert_pem)?;
        let endpoints_for = |state: EngineState| {
            if state == EngineState::Standby {
                self.driver.standby_tls_endpoints(spec)
            } else {
                self.driver.tls_endpoints(spec)
            }
        };
        let before = self.state.state();
        let mut endpoints = endpoints_for(before);
        tracing::info!(
            endpoints = endpoints.len(),
            standby = before == EngineState::Standby,
            "renewed TLS certificate received; applying it"
        );
        let change = self.driver.apply_tls(spec, previous).await?;
        let mut restarted = None;
        if change == LiveChange::Applied {
            if let Err(stale) = verify_served(&endpoints, &want, self.renewal.live).await {
                tracing::warn!("{stale:#}; restarting the engine in place to load the certificate");
                restarted = Some(
                    self.restart_engine("load the renewed TLS certificate")
                        .await?,
                );
            }
        } else {
            restarted = Some(
                self.restart_engine("load the renewed TLS certificate")
                    .await?,
            );
        }
        if let Some((down, state)) = restarted {
            endpoints = endpoints_for(state);
            let left = self
                .renewal
                .ready
                .saturating_sub(down)
                .max(Duration::from_secs(5));
            verify_served(&endpoints, &want, left).await?;
            tracing::info!(
                unavailable_s = format!("{:.2}", down.as_secs_f64()),
                now = ?state,
                "the engine restarted for the renewed certificate"
            );
        }
        self.set_engine_tls(Some(material));
        tracing::info!(
            secs = format!("{:.2}", begun.elapsed().as_secs_f64()),
            restarted = restarted.is_some(),
            listeners = ?endpoints.iter().map(|e| e.name).collect::<Vec<_>>(),
            "the renewed TLS certificate is being served"
        );
        Ok(())
    }

    /// Restart the engine in place through the supervisor and wait until it is Ready
    /// (or Standby: on shared storage the other node may hold the lock now) again;
    /// returns how long that took and the state it reached.
    pub async fn restart_engine(&self, reason: &str) -> anyhow::Result<(Duration, EngineState)> {
        let begun = Instant::now();
        let (done, answer) = oneshot::channel();
        self.control
            .send(Control::Restart(RestartRequest {
                reason: reason.to_string(),
                done,
            }))
            .await
            .map_err(|_| anyhow::anyhow!("the supervisor is not running"))?;
        let generation = tokio::time::timeout(self.renewal.restart, answer)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the engine was not restarted within {:?}",
                    self.renewal.restart
                )
            })?
            .map_err(|_| anyhow::anyhow!("the supervisor went away"))?
            .map_err(|e| anyhow::anyhow!("the engine could not be restarted: {e}"))?;
        let deadline = begun + self.renewal.ready;
        loop {
            let (state, current) = self.state.phase();
            match state {
                EngineState::Ready | EngineState::Standby if current >= generation => {
                    return Ok((begun.elapsed(), state))
                }
                EngineState::Failed | EngineState::Stopping => anyhow::bail!(
                    "the restarted engine is {state:?}: {}",
                    self.state.last_error().unwrap_or_default()
                ),
                _ => {}
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the restarted engine was not ready within {:?}",
                    self.renewal.ready
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A certificate renewal: TLS before and after, with different material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRenewal {
    pub previous: TlsMaterial,
    pub new: TlsMaterial,
}

/// The renewal from what the engine serves (`running`) to the spec's `new`, if any.
/// Adding or removing TLS is a listener change, not a renewal (see the module docs).
pub fn tls_renewal(running: Option<&TlsMaterial>, new: Option<&TlsMaterial>) -> Option<TlsRenewal> {
    match (running, new) {
        (Some(previous), Some(new)) if previous != new => Some(TlsRenewal {
            previous: previous.clone(),
            new: new.clone(),
        }),
        _ => None,
    }
}

/// The fields of `new` that differ from `current` and apply only at the next start.
pub fn deferred_changes(current: &AgentSpec, new: &AgentSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if current.engine_config != new.engine_config {
        out.push("engine_config");
    }
    if current.plaintext != new.plaintext {
        out.push("plaintext");
    }
    if current.tls.is_some() != new.tls.is_some() {
        out.push(if new.tls.is_some() {
            "tls (added)"
        } else {
            "tls (removed)"
        });
    }
    out
}

/// Wait until every endpoint presents the certificate `want` (DER), for up to `limit`.
pub async fn verify_served(
    endpoints: &[TlsEndpoint],
    want: &[u8],
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let mut pending: Vec<TlsEndpoint> = endpoints.to_vec();
    loop {
        let mut still = Vec::new();
        let mut why = Vec::new();
        for e in pending {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(200), Duration::from_secs(3));
            match tlsutil::served_leaf(e.addr, left).await {
                Ok(der) if der == want => {}
                Ok(_) => {
                    why.push(format!("{} still serves the previous certificate", e.name));
                    still.push(e);
                }
                Err(err) => {
                    why.push(format!("{}: {err:#}", e.name));
                    still.push(e);
                }
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{}", why.join("; "));
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sample_spec, test_agent};
    use agent_contract::{EngineSpec, EngineUser};

    #[tokio::test]
    async fn update_spec_applies_users_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        let mut new = sample_spec();
        new.users.push(EngineUser {
            username: "second".into(),
            password: "second-password".into(),
            admin: false,
            console_access: false,
            groups: vec![],
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
        // no tuning change: no memory call
        assert!(driver.memory_applied.lock().unwrap().is_empty());

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
        // nor a cookie change, nor another engine
        let mut other = new.clone();
        if let EngineSpec::Rabbitmq(r) = &mut other.engine {
            r.erlang_cookie = "ANOTHERCOOKIE".into();
        }
        assert!(matches!(
            agent.update_spec(other).await,
            Err(UpdateError::Invalid(m)) if m.contains("cookie")
        ));
        let mut other = crate::testutil::sample_activemq_spec();
        other.broker_id = new.broker_id.clone();
        assert!(matches!(
            agent.update_spec(other).await,
            Err(UpdateError::Invalid(m)) if m.contains("engine")
        ));

        // watermark change is applied live, with the new fraction in the spec
        let mut wm = new.clone();
        if let EngineSpec::Rabbitmq(r) = &mut wm.engine {
            r.memory_high_watermark = Some(0.5);
        }
        agent.update_spec(wm).await.unwrap();
        assert_eq!(driver.memory_applied.lock().unwrap().as_slice(), &[None]);
        match agent.spec().engine {
            EngineSpec::Rabbitmq(r) => assert_eq!(r.memory_high_watermark, Some(0.5)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn failed_live_reconciliation_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        let g = agent.state.engine_started(false);
        agent.state.mark_ready(g);
        driver
            .fail_reconcile
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            agent.update_spec(sample_spec()).await,
            Err(UpdateError::Failed(_))
        ));
        assert!(agent.users_dirty());
        assert!(agent.state.last_error().unwrap().contains("exploded"));
    }

    use crate::engine::activemq::ws_bridge::TlsSwitch;
    use crate::testutil::{second_tls, tls_test_server, FakeDriver};
    use std::sync::atomic::Ordering as O;

    /// An agent whose engine serves `sample_tls()` on a test listener, Ready.
    async fn tls_agent(
        dir: &std::path::Path,
    ) -> (
        Arc<Agent>,
        Arc<FakeDriver>,
        Arc<TlsSwitch>,
        std::net::SocketAddr,
    ) {
        let tls = crate::testutil::sample_tls();
        let switch = Arc::new(TlsSwitch::from_pem(&tls.cert_pem, &tls.key_pem).unwrap());
        let addr = tls_test_server(switch.clone()).await;
        let driver = Arc::new(FakeDriver::default());
        *driver.tls_server.lock().unwrap() = Some((switch.clone(), addr));
        let mut spec = sample_spec();
        spec.tls = Some(tls);
        let agent = Agent::new(spec, dir.join("spec.json"), driver.clone()).with_renewal_timeouts(
            RenewalTimeouts {
                live: Duration::from_millis(300),
                restart: Duration::from_secs(2),
                ready: Duration::from_secs(3),
            },
        );
        let agent = Arc::new(agent);
        agent.prepare_engine().unwrap();
        let g = agent.state.engine_started(false);
        agent.state.mark_ready(g);
        (agent, driver, switch, addr)
    }

    /// Plays the supervisor: on a restart request, "restart" the engine (it then serves
    /// `serve` if given) and report it Ready (unless `ready` is false).
    fn fake_supervisor(
        agent: Arc<Agent>,
        switch: Arc<TlsSwitch>,
        ready: bool,
    ) -> Arc<std::sync::atomic::AtomicU32> {
        fake_supervisor_to(agent, switch, ready.then_some(EngineState::Ready))
    }

    /// [`fake_supervisor`] that reports the restarted engine `then` (Ready or Standby).
    fn fake_supervisor_to(
        agent: Arc<Agent>,
        switch: Arc<TlsSwitch>,
        then: Option<EngineState>,
    ) -> Arc<std::sync::atomic::AtomicU32> {
        let restarts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = restarts.clone();
        let mut rx = agent.take_control().unwrap();
        tokio::spawn(async move {
            while let Some(Control::Restart(req)) = rx.recv().await {
                counter.fetch_add(1, O::SeqCst);
                agent.state.planned_restart();
                tokio::time::sleep(Duration::from_millis(50)).await;
                agent.prepare_engine().unwrap();
                let tls = agent.spec().tls.unwrap();
                switch.replace(&tls.cert_pem, &tls.key_pem).unwrap();
                let g = agent.state.engine_started(false);
                let _ = req.done.send(Ok(g));
                tokio::time::sleep(Duration::from_millis(50)).await;
                match then {
                    Some(EngineState::Ready) => {
                        agent.state.mark_ready(g);
                    }
                    Some(EngineState::Standby) => {
                        agent.state.mark_standby(g);
                    }
                    _ => {}
                }
            }
        });
        restarts
    }

    fn renewed() -> AgentSpec {
        let mut spec = sample_spec();
        spec.tls = Some(second_tls());
        spec
    }

    async fn served(addr: std::net::SocketAddr) -> Vec<u8> {
        tlsutil::served_leaf(addr, Duration::from_secs(2))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_renewal_applied_live_is_verified_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, switch, addr) = tls_agent(dir.path()).await;
        driver.tls_swaps_live.store(true, O::SeqCst);
        let restarts = fake_supervisor(agent.clone(), switch, true);
        let new_leaf = tlsutil::leaf_der(&second_tls().cert_pem).unwrap();
        assert_ne!(served(addr).await, new_leaf);

        let report = agent.update_spec(renewed()).await.unwrap();
        assert_eq!(report.state, EngineState::Ready);
        assert_eq!(served(addr).await, new_leaf);
        assert_eq!(restarts.load(O::SeqCst), 0);
        assert_eq!(driver.tls_applied.lock().unwrap().len(), 1);
        assert_eq!(agent.spec().tls, Some(second_tls()));
        let persisted = specfile::load(&dir.path().join("spec.json")).unwrap();
        assert_eq!(persisted.tls, Some(second_tls()));
        // the same spec again: nothing to renew
        agent.update_spec(renewed()).await.unwrap();
        assert_eq!(driver.tls_applied.lock().unwrap().len(), 1);
        // users were still reconciled both times
        assert_eq!(driver.reconciled.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_listener_that_keeps_the_old_certificate_gets_the_engine_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, switch, addr) = tls_agent(dir.path()).await;
        // apply_tls says Applied but the listener keeps serving the old certificate
        let restarts = fake_supervisor(agent.clone(), switch, true);
        agent.update_spec(renewed()).await.unwrap();
        assert_eq!(restarts.load(O::SeqCst), 1);
        assert_eq!(
            served(addr).await,
            tlsutil::leaf_der(&second_tls().cert_pem).unwrap()
        );
        assert_eq!(agent.state.state(), EngineState::Ready);
        assert_eq!(agent.state.restarts(), 0);
        assert_eq!(driver.tls_applied.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_renewal_that_needs_a_start_restarts_the_engine_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, switch, addr) = tls_agent(dir.path()).await;
        driver.tls_needs_restart.store(true, O::SeqCst);
        let restarts = fake_supervisor(agent.clone(), switch, true);
        let begun = Instant::now();
        agent.update_spec(renewed()).await.unwrap();
        // no waiting for a live reload that cannot come
        assert!(begun.elapsed() < Duration::from_millis(1500));
        assert_eq!(restarts.load(O::SeqCst), 1);
        assert_eq!(
            served(addr).await,
            tlsutil::leaf_der(&second_tls().cert_pem).unwrap()
        );
    }

    #[tokio::test]
    async fn a_failed_renewal_is_reported_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, switch, _addr) = tls_agent(dir.path()).await;
        driver.tls_needs_restart.store(true, O::SeqCst);
        // the restarted engine never becomes ready
        let restarts = fake_supervisor(agent.clone(), switch, false);
        let err = agent.update_spec(renewed()).await.unwrap_err();
        assert!(
            matches!(&err, UpdateError::Failed(m) if m.contains("not ready")),
            "{err}"
        );
        assert!(agent
            .state
            .last_error()
            .unwrap()
            .starts_with("certificate renewal failed"));
        assert_eq!(restarts.load(O::SeqCst), 1);
        // while it is not Ready, another PUT is refused rather than queued
        assert!(matches!(
            agent.update_spec(renewed()).await,
            Err(UpdateError::NotReady(_))
        ));
        // once Ready (it started with the new files), the same spec has nothing left to do
        let (_, g) = agent.state.phase();
        agent.state.mark_ready(g);
        agent.update_spec(renewed()).await.unwrap();
        assert_eq!(restarts.load(O::SeqCst), 1);
    }

    #[tokio::test]
    async fn unusable_material_is_refused_before_anything_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, _switch, _addr) = tls_agent(dir.path()).await;
        let mut bad = renewed();
        bad.tls.as_mut().unwrap().key_pem = crate::testutil::sample_tls().key_pem;
        let err = agent.update_spec(bad).await.unwrap_err();
        assert!(
            matches!(&err, UpdateError::Invalid(m) if m.starts_with("tls:")),
            "{err}"
        );
        assert!(driver.tls_applied.lock().unwrap().is_empty());
        assert!(!dir.path().join("spec.json").exists());
    }

    #[tokio::test]
    async fn configuration_and_listener_changes_wait_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, _switch, _addr) = tls_agent(dir.path()).await;
        let mut new = sample_spec();
        new.tls = None;
        new.plaintext = false;
        new.engine_config = Some("heartbeat = 30\n".into());
        assert_eq!(
            deferred_changes(&agent.spec(), &new),
            ["engine_config", "plaintext", "tls (removed)"]
        );
        // (plaintext false without TLS is not a valid spec: keep TLS for that part)
        new.tls = Some(crate::testutil::sample_tls());
        agent.update_spec(new).await.unwrap();
        // running values kept in memory (what an engine restart renders) …
        let running = agent.spec();
        assert!(running.plaintext);
        assert_eq!(running.engine_config, None);
        // … the new ones saved for the next start
        let persisted = specfile::load(&dir.path().join("spec.json")).unwrap();
        assert!(!persisted.plaintext);
        assert_eq!(persisted.engine_config.as_deref(), Some("heartbeat = 30\n"));
        assert!(driver.tls_applied.lock().unwrap().is_empty());
    }

    /// [`tls_agent`] for a standby of a shared-storage pair whose engine listener
    /// (`closed`) is not open.
    async fn standby_tls_agent(
        dir: &std::path::Path,
    ) -> (
        Arc<Agent>,
        Arc<FakeDriver>,
        Arc<TlsSwitch>,
        std::net::SocketAddr,
    ) {
        let tls = crate::testutil::sample_tls();
        let switch = Arc::new(TlsSwitch::from_pem(&tls.cert_pem, &tls.key_pem).unwrap());
        let addr = tls_test_server(switch.clone()).await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let driver = Arc::new(FakeDriver::default());
        *driver.tls_server.lock().unwrap() = Some((switch.clone(), addr));
        *driver.closed_engine_tls.lock().unwrap() = Some(closed);
        let mut spec = crate::testutil::shared_storage_spec(1);
        spec.tls = Some(tls);
        let agent = Agent::new(spec, dir.join("spec.json"), driver.clone()).with_renewal_timeouts(
            RenewalTimeouts {
                live: Duration::from_millis(300),
                restart: Duration::from_secs(2),
                ready: Duration::from_secs(3),
            },
        );
        let agent = Arc::new(agent);
        agent.prepare_engine().unwrap();
        let g = agent.state.engine_started(false);
        assert!(agent.state.mark_standby(g).is_some());
        (agent, driver, switch, addr)
    }

    fn with_tls(mut spec: AgentSpec, tls: TlsMaterial) -> AgentSpec {
        spec.tls = Some(tls);
        spec
    }

    #[tokio::test]
    async fn a_standby_takes_users_without_talking_to_its_engine() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, _switch, _addr) = standby_tls_agent(dir.path()).await;
        let mut new = agent.spec();
        new.users.push(EngineUser {
            username: "second".into(),
            password: "second-password".into(),
            admin: false,
            console_access: false,
            groups: vec![],
        });
        let report = agent.update_spec(new).await.unwrap();
        assert_eq!(report.state, EngineState::Standby);
        // written for when it is active; no reconciliation (no login) against a standby
        assert_eq!(
            driver.staged.lock().unwrap().as_slice(),
            &[vec!["admin".to_string(), "second".to_string()]]
        );
        assert!(driver.reconciled.lock().unwrap().is_empty());
        assert!(!agent.users_dirty());
        assert_eq!(agent.spec().users.len(), 2);
        let persisted = specfile::load(&dir.path().join("spec.json")).unwrap();
        assert_eq!(persisted.users.len(), 2);
        // once active, the same spec goes through the engine as usual
        let (_, g) = agent.state.phase();
        agent.state.mark_ready(g);
        agent.update_spec(agent.spec()).await.unwrap();
        assert_eq!(driver.reconciled.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_renewal_on_a_standby_checks_only_the_listeners_it_serves() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, switch, addr) = standby_tls_agent(dir.path()).await;
        driver.tls_swaps_live.store(true, O::SeqCst);
        let restarts = fake_supervisor_to(agent.clone(), switch, Some(EngineState::Standby));
        let begun = Instant::now();
        let renewed = with_tls(agent.spec(), second_tls());
        let report = agent.update_spec(renewed).await.unwrap();
        // no waiting on the closed engine listener, no restart
        assert!(begun.elapsed() < Duration::from_millis(1500));
        assert_eq!(report.state, EngineState::Standby);
        assert_eq!(restarts.load(O::SeqCst), 0);
        assert_eq!(
            served(addr).await,
            tlsutil::leaf_der(&second_tls().cert_pem).unwrap()
        );
        assert_eq!(agent.spec().tls, Some(second_tls()));
    }

    #[tokio::test]
    async fn a_renewal_that_needs_a_start_restarts_a_standby_as_a_standby() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, switch, addr) = standby_tls_agent(dir.path()).await;
        driver.tls_needs_restart.store(true, O::SeqCst);
        let restarts = fake_supervisor_to(agent.clone(), switch, Some(EngineState::Standby));
        let renewed = with_tls(agent.spec(), second_tls());
        let report = agent.update_spec(renewed.clone()).await.unwrap();
        assert_eq!(report.state, EngineState::Standby);
        assert_eq!(restarts.load(O::SeqCst), 1);
        assert_eq!(
            served(addr).await,
            tlsutil::leaf_der(&second_tls().cert_pem).unwrap()
        );
        assert_eq!(agent.state.restarts(), 0);
        // the same spec again: nothing to do
        agent.update_spec(renewed).await.unwrap();
        assert_eq!(restarts.load(O::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_active_restarted_for_a_renewal_may_come_back_as_the_standby() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver, switch, addr) = standby_tls_agent(dir.path()).await;
        let (_, g) = agent.state.phase();
        agent.state.mark_ready(g);
        driver.tls_needs_restart.store(true, O::SeqCst);
        // the other node took the lock while this one restarted
        let restarts = fake_supervisor_to(agent.clone(), switch, Some(EngineState::Standby));
        let report = agent
            .update_spec(with_tls(agent.spec(), second_tls()))
            .await
            .unwrap();
        assert_eq!(report.state, EngineState::Standby);
        assert_eq!(restarts.load(O::SeqCst), 1);
        assert_eq!(
            served(addr).await,
            tlsutil::leaf_der(&second_tls().cert_pem).unwrap()
        );
    }

    #[test]
    fn renewal_detection() {
        let (one, two) = (crate::testutil::sample_tls(), second_tls());
        assert_eq!(tls_renewal(Some(&one), Some(&one)), None);
        assert_eq!(tls_renewal(None, Some(&one)), None);
        assert_eq!(tls_renewal(Some(&one), None), None);
        assert_eq!(tls_renewal(None, None), None);
        let r = tls_renewal(Some(&one), Some(&two)).unwrap();
        assert_eq!((r.previous, r.new), (one.clone(), two));
        // a new CA alone is a renewal too
        let mut ca = one.clone();
        ca.ca_pem.push('\n');
        assert!(tls_renewal(Some(&one), Some(&ca)).is_some());
    }

    #[tokio::test]
    async fn diagnoses_are_scrubbed_of_every_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _driver) = test_agent(dir.path());
        let d = agent.diagnose(&[
            "login admin/s3cret-Passw0rd refused".to_string(),
            format!("token {TOKEN_FOR_TEST} cookie COOKIEVALUE1234 driver-internal-secret"),
        ]);
        let e = d.excerpt.unwrap();
        for secret in [
            "s3cret-Passw0rd",
            "COOKIEVALUE1234",
            "driver-internal-secret",
            TOKEN_FOR_TEST,
        ] {
            assert!(!e.contains(secret), "{e}");
        }
        assert!(e.contains("login admin/<redacted> refused"), "{e}");
    }

    const TOKEN_FOR_TEST: &str = crate::testutil::TOKEN;

    #[tokio::test]
    async fn memory_changes_that_need_a_restart_are_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        driver
            .memory_needs_restart
            .store(true, std::sync::atomic::Ordering::SeqCst);
        *driver.limit.lock().unwrap() = Some(1 << 30);
        agent.follow_memory_limit().await;
        agent.follow_memory_limit().await;
        assert_eq!(
            driver.memory_applied.lock().unwrap().as_slice(),
            &[Some(1 << 30)]
        );
        assert_eq!(agent.state.memory_limit(), Some(1 << 30));
    }
}
