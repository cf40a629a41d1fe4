//! One broker's convergence step.
//!
//! A broker is a set of nodes (one per container, each with its agent and a data volume
//! — shared by an active/standby pair); the deployment mode says how many and how they
//! relate ([`crate::domain::nodes`]). Every step asks every node's agent how it is,
//! records it per node, and adds the reports up into the broker's health: serving
//! (clients are served) and formed (every node where it should be). A reboot rolls
//! through the nodes one at a time — standbys first, the active last, so a pair fails
//! over once — and only moves on when the broker is formed again. With shared storage
//! an active whose agent stops answering (a paused or hung container still holds the
//! store's lock) is killed after `hung_after`, so the standby takes over; a dead node
//! of a pair comes back (as the new standby) only once that takeover serves, so that no
//! failover client meets its half-started ports on the way.
//!
//! What differs between engines comes from the engine's profile
//! ([`crate::domain::profile`]); the only engine-specific code here builds the engine
//! part of the agent's spec.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agent_contract::{
    ActivemqSpec, AgentSpec, EngineSpec, EngineState, EngineUser, HealthReport, NodeSpec,
    RabbitmqSpec, TlsMaterial, SPEC_PATH,
};
use tokio_util::sync::CancellationToken;

use crate::agent_client::AgentClient;
use crate::crypto::SecretBox;
use crate::db::broker::PortPool;
use crate::db::model::{BrokerRow, PortRow};
use crate::db::nodes::NodeObservation;
use crate::db::tls::CertificateRow;
use crate::db::DataStore;
use crate::domain::nodes::{self, Assessment, Layout, ObservedRole};
use crate::domain::objects::{self, MAX_NODES};
use crate::domain::profile::{self, EngineProfile, Listeners, AGENT_PROTOCOL};
use crate::domain::{BrokerId, BrokerState, EngineType};
use crate::images::ImageBuilder;
use crate::runtime::{
    ContainerFile, ContainerRuntime, ContainerSpec, ObjectKind, RuntimeError, LABEL_BROKER,
    LABEL_INSTALLATION, LABEL_MANAGED, LABEL_NODE, LABEL_PROGRAM_IMAGE, LABEL_ZONE,
};
use crate::tls::CertificateAuthority;

/// What a step left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The broker is in a steady state; nothing to do until something changes.
    Stable,
    /// A transition is under way; step again soon.
    Waiting,
    /// The broker and all its resources are gone.
    Gone,
}

/// The longest a dead node of a pair is held back while its peer takes over: a takeover
/// that takes longer (the peer cannot open the store) must not leave the broker on one
/// node.
const TAKEOVER_HOLD_MAX: Duration = Duration::from_secs(10);

/// While a broker is created and every node's agent answers (each agent is its
/// container's PID 1, so the containers run), Docker is asked about its containers this
/// often rather than on every poll. Four inspections a poll at ten polls a second took
/// CPU that three booting engines need: with them, dockerd used 1.7–4.2 s and the
/// control plane 1.2–1.75 s of a 4.0 cluster formation's ~28 CPU-seconds on two cores;
/// without them (and with the engine's `TZ` set) the formation took 12.2 / 13.1 /
/// 15.1 s instead of 15.6 / 16.9 / 17.6 s (min / median / max of five, same day).
const CREATING_ENSURE_EVERY: Duration = Duration::from_secs(2);

/// Static knobs of the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    pub publish_host: String,
    pub create_timeout: Duration,
    /// How long a RUNNING engine may fail its health check before the broker is marked
    /// CRITICAL_ACTION_REQUIRED.
    pub unhealthy_after: Duration,
    /// Delay between steps while a broker is in transition.
    pub poll: Duration,
    /// With shared storage: how long the active's agent may not answer (a paused or hung
    /// container keeps the store's lock) before the container is killed so that the
    /// standby takes over.
    pub hung_after: Duration,
    /// How long one agent health call may take.
    pub health_timeout: Duration,
    /// Host CPUs and memory: instance limits larger than the machine are clamped.
    pub host_cpus: u32,
    pub host_memory_bytes: u64,
    /// Which listeners brokers open (TLS, plaintext).
    pub listeners: Listeners,
    /// Where host ports come from when a node lacks one (e.g. a listener added later).
    pub ports: PortPool,
    /// Host put into endpoints: broker certificates are issued for it.
    pub advertised_host: String,
    /// The installation CA that signs broker certificates.
    pub ca: Arc<CertificateAuthority>,
    /// How long before expiry a broker certificate is renewed.
    pub renew_before: Duration,
    /// Builds a missing engine image (first CreateBroker of a version); `None` → a
    /// missing image fails the creation with the reason.
    pub images: Option<Arc<ImageBuilder>>,
    /// Engine images are named `<prefix>/<engine>:<version>` (`None`: the catalogue's).
    pub image_prefix: Option<String>,
}

pub struct BrokerReconciler {
    store: DataStore,
    runtime: Arc<dyn ContainerRuntime>,
    agent: Arc<dyn AgentClient>,
    secrets: SecretBox,
    installation: String,
    config: ReconcilerConfig,
    cancel: CancellationToken,
    /// Since when each broker's dead node has been held back for a takeover.
    takeover_holds: std::sync::Mutex<HashMap<BrokerId, std::time::Instant>>,
    /// One program-volume fill per image at a time (a node's create and the
    /// ahead-of-time fill of [`BrokerReconciler::prepare_program_volumes`] must not
    /// fill one volume twice), by image id.
    filling: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each broker in creation last had its containers ensured and every agent
    /// answered since (see [`CREATING_ENSURE_EVERY`]); only ever skips a check.
    creating_ensured: std::sync::Mutex<HashMap<BrokerId, std::time::Instant>>,
}

impl BrokerReconciler {
    pub fn new(
        store: DataStore,
        runtime: Arc<dyn ContainerRuntime>,
        agent: Arc<dyn AgentClient>,
        secrets: SecretBox,
        installation: String,
        config: ReconcilerConfig,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            store,
            runtime,
            agent,
            secrets,
            installation,
            config,
            cancel,
            takeover_holds: Default::default(),
            filling: Default::default(),
            creating_ensured: Default::default(),
        }
    }

    pub fn store(&self) -> &DataStore {
        &self.store
    }

    /// Steps a broker until it is stable, gone, the step fails, or we are cancelled.
    pub async fn converge(&self, id: &BrokerId) {
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            match self.step(id).await {
                Ok(StepOutcome::Waiting) => {
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(self.config.poll) => {}
                    }
                }
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(broker = %id, error = %format!("{e:#}"), "reconcile step failed; will retry");
                    return;
                }
            }
        }
    }

    /// One idempotent step towards the desired state of broker `id`.
    pub async fn step(&self, id: &BrokerId) -> anyhow::Result<StepOutcome> {
        let Some(row) = self.store.broker_fetch_unscoped(id).await? else {
            return Ok(StepOutcome::Gone);
        };
        match row.state()? {
            BrokerState::DeletionInProgress => {
                self.creating_ensured().remove(id);
                self.teardown(id).await?;
                if self.store.broker_delete_row(id).await? {
                    tracing::info!(broker = %id, "broker deleted");
                }
                Ok(StepOutcome::Gone)
            }
            BrokerState::CreationFailed => {
                // Keep the data for inspection, but don't leave the engine running.
                self.stop_nodes(id).await?;
                Ok(StepOutcome::Stable)
            }
            BrokerState::CreationInProgress => self.step_creating(&row).await,
            BrokerState::RebootInProgress => self.step_rebooting(&row).await,
            BrokerState::Running | BrokerState::CriticalActionRequired => {
                let assessment = self.observe(&row).await?;
                let hold = self.hold_for_takeover(id, &assessment);
                self.ensure_up(&row, hold)
                    .await
                    .map_err(anyhow::Error::new)?;
                if self.watch_health(&row, &assessment).await? {
                    let renewed = self.renew_certificate(&row).await?;
                    self.push_spec(&row, renewed).await?;
                }
                // A held node starts as soon as the new active serves: look again soon.
                Ok(if hold {
                    StepOutcome::Waiting
                } else {
                    StepOutcome::Stable
                })
            }
        }
    }

    /// A reboot applies pending settings and recreates the nodes' containers from the
    /// current desired state (new limits and image, same volumes), one node at a time:
    /// the next node goes only once the broker is formed again, standbys before the
    /// active. A container created after the reboot request is this reboot's own, so a
    /// retried step (or a restarted control plane) resumes the roll where it was.
    async fn step_rebooting(&self, row: &BrokerRow) -> anyhow::Result<StepOutcome> {
        let id = row.broker_id();
        self.store.broker_apply_pending(&id).await?;
        let Some(row) = self.store.broker_fetch_unscoped(&id).await? else {
            return Ok(StepOutcome::Gone);
        };
        let requested = row.reboot_requested_at.unwrap_or(row.state_changed_at);
        let layout = layout(&row)?;
        let assessment = self.observe(&row).await?;
        let hold = self.hold_for_takeover(&id, &assessment);
        self.ensure_up(&row, hold)
            .await
            .map_err(anyhow::Error::new)?;
        // Nodes still running a container from before the request, in roll order.
        let roles = self.roles(&row, &layout).await?;
        let mut stale = Vec::new();
        let mut newest: Option<chrono::DateTime<chrono::Utc>> = None;
        for node in roll_order(&layout, &roles) {
            let name = objects::container_name(&id, node);
            if let Some(status) = self.runtime.container_status(&name).await? {
                match status.created {
                    Some(created) if created >= requested => {
                        newest = newest.max(Some(created));
                    }
                    _ => stale.push(node),
                }
            }
        }
        // A node this reboot recreated that failed (e.g. the configuration revision or
        // the build it was rebooted with) stops the roll at once, saying why. A node
        // that had failed before the reboot is down: it is rolled first, which is how a
        // reboot recovers it.
        if let Some((_, failed)) = assessment.failed.iter().find(|(n, _)| !stale.contains(n)) {
            let reason = format!(
                "The engine failed to start after the reboot ({failed}); the nodes not yet rebooted keep serving. Fix the cause (e.g. go back to a previous configuration revision) and reboot to recover."
            );
            return self.fail_reboot(&id, &reason).await;
        }
        let down = |n: &u32| roles.get(n).is_none_or(|r| *r == ObservedRole::Down);
        // A node that is down anyway goes at once; otherwise one at a time, and only
        // while the broker is formed.
        let next = stale
            .iter()
            .copied()
            .find(down)
            .or_else(|| assessment.formed.then(|| stale.first().copied()).flatten());
        if let Some(node) = next {
            let name = objects::container_name(&id, node);
            tracing::info!(broker = %id, node, remaining = stale.len(), "reboot: recreating the node's container");
            self.runtime.stop_container(&name, 30).await?;
            self.runtime.remove_container(&name).await?;
            // A pair's active comes back in a later step, once its peer has taken over
            // (see `hold_for_takeover`); any other node at once.
            let was_pair_active = layout.kind == nodes::NodeKind::Pair
                && roles.get(&node) == Some(&ObservedRole::Active);
            if !was_pair_active {
                self.ensure_up(&row, false)
                    .await
                    .map_err(anyhow::Error::new)?;
            }
            return Ok(StepOutcome::Waiting);
        }
        if stale.is_empty() && assessment.formed {
            self.roll_load_balancer(&row).await?;
            self.push_spec(&row, false).await?;
            if self
                .store
                .broker_transition(
                    &id,
                    &[BrokerState::RebootInProgress],
                    BrokerState::Running,
                    None,
                )
                .await?
            {
                tracing::info!(broker = %id, "reboot complete: RUNNING");
            }
            return Ok(StepOutcome::Stable);
        }
        // Waiting for the last recreated node (or, before any, for the broker to form).
        let since = newest.unwrap_or(requested);
        if chrono::Utc::now() - since > chrono::Duration::from_std(self.config.create_timeout)? {
            let left = match stale.len() {
                0 => String::new(),
                n => format!(
                    " {n} node(s) were not rebooted; the broker keeps serving on the others."
                ),
            };
            let reason = format!(
                "The broker did not come back within {} s of the reboot ({}).{left}",
                self.config.create_timeout.as_secs(),
                assessment.detail
            );
            return self.fail_reboot(&id, &reason).await;
        }
        Ok(StepOutcome::Waiting)
    }

    /// A reboot that cannot complete: CRITICAL_ACTION_REQUIRED with the reason.
    async fn fail_reboot(&self, id: &BrokerId, reason: &str) -> anyhow::Result<StepOutcome> {
        if self
            .store
            .broker_transition(
                id,
                &[BrokerState::RebootInProgress],
                BrokerState::CriticalActionRequired,
                Some(reason),
            )
            .await?
        {
            tracing::warn!(broker = %id, reason, "reboot failed");
        }
        Ok(StepOutcome::Stable)
    }

    /// Health of a broker that should be serving: one that has not served clients for
    /// `unhealthy_after` turns RUNNING into CRITICAL_ACTION_REQUIRED (with the reason);
    /// a formed one clears the mark and returns to RUNNING. Returns whether it serves.
    async fn watch_health(&self, row: &BrokerRow, a: &Assessment) -> anyhow::Result<bool> {
        let id = row.broker_id();
        if a.serving {
            self.store.broker_mark_healthy(&id).await?;
            if !a.alarms.is_empty() {
                // An engine alarm (memory, disk, OOM kill) needs the operator now, not
                // after `unhealthy_after`: publishers are blocked or a process died.
                let reason = a
                    .alarms
                    .iter()
                    .map(|(n, alarm)| format!("node {n}: {}: {}", alarm.code, alarm.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.needs_attention(&id, &reason).await?;
                return Ok(true);
            }
            if a.formed
                && self
                    .store
                    .broker_transition(
                        &id,
                        &[BrokerState::CriticalActionRequired],
                        BrokerState::Running,
                        None,
                    )
                    .await?
            {
                tracing::info!(broker = %id, "broker healthy again: RUNNING");
            }
            return Ok(true);
        }
        let since = self.store.broker_mark_unhealthy(&id).await?;
        let limit = chrono::Duration::from_std(self.config.unhealthy_after)?;
        if chrono::Utc::now() - since > limit {
            let reason = format!(
                "The engine has failed its health check for more than {} s ({}).",
                self.config.unhealthy_after.as_secs(),
                a.detail
            );
            self.needs_attention(&id, &reason).await?;
        }
        Ok(false)
    }

    /// RUNNING → CRITICAL_ACTION_REQUIRED with `reason` (once; a broker already marked
    /// keeps its first reason).
    async fn needs_attention(&self, id: &BrokerId, reason: &str) -> anyhow::Result<()> {
        if self
            .store
            .broker_transition(
                id,
                &[BrokerState::Running],
                BrokerState::CriticalActionRequired,
                Some(reason),
            )
            .await?
        {
            tracing::warn!(broker = %id, reason, "broker needs attention");
        }
        Ok(())
    }

    /// Sends the spec to every node's agent when a user change is pending (or when
    /// `force`d, e.g. after a certificate renewal), then confirms exactly the user
    /// changes the agents saw.
    async fn push_spec(&self, row: &BrokerRow, force: bool) -> anyhow::Result<()> {
        let id = row.broker_id();
        let users = self.store.broker_users(&id).await?;
        if !force && users.iter().all(|u| u.pending_change.is_none()) {
            return Ok(());
        }
        let seq = users.iter().map(|u| u.change_seq).max().unwrap_or(0);
        let token = self.secrets.open(&row.agent_token_enc)?;
        let ports = self.store.broker_ports(&id).await?;
        let mut errors = Vec::new();
        for node in layout(row)?.indexes() {
            let spec = self.agent_spec(row, &users, node).await?;
            let base = self.agent_base(&ports, node)?;
            if let Err(e) = self.agent.put_spec(&base, &token, &spec).await {
                errors.push(format!("node {node}: {e:#}"));
            }
        }
        // Every node must have it before the change is confirmed; the others got it
        // and the next step retries the rest.
        anyhow::ensure!(errors.is_empty(), "spec not applied: {}", errors.join("; "));
        self.store.users_confirm(&id, seq).await?;
        tracing::info!(broker = %id, "spec applied by the agents");
        Ok(())
    }

    async fn step_creating(&self, row: &BrokerRow) -> anyhow::Result<StepOutcome> {
        let id = row.broker_id();
        let deadline_passed = chrono::Utc::now() - row.created_at
            > chrono::Duration::from_std(self.config.create_timeout)?;
        let recently = self
            .creating_ensured()
            .get(&id)
            .is_some_and(|at| at.elapsed() < CREATING_ENSURE_EVERY);
        let up = if recently {
            Ok(())
        } else {
            self.ensure_up(row, false).await
        };
        match up {
            Ok(()) if !recently => {
                self.creating_ensured()
                    .insert(id.clone(), std::time::Instant::now());
            }
            Ok(()) => {}
            Err(RuntimeError::ImageMissing(image)) => {
                let reason = format!(
                    "Engine image {image} is not built on this host and cannot be built here; run `make images`."
                );
                self.fail_creation(&id, &reason).await?;
                return Ok(StepOutcome::Stable);
            }
            Err(RuntimeError::ImageBuild(why)) => {
                let reason = format!("Building the engine image failed: {why}");
                self.fail_creation(&id, &reason).await?;
                return Ok(StepOutcome::Stable);
            }
            Err(e) if deadline_passed => {
                self.fail_creation(&id, &format!("Could not start the broker: {e}"))
                    .await?;
                return Ok(StepOutcome::Stable);
            }
            Err(e) => return Err(e.into()),
        }
        let a = self.observe(row).await?;
        if !a.all_answered || a.formed || !a.failed.is_empty() || deadline_passed {
            // A node whose agent does not answer may need its container (re)started:
            // the next poll asks Docker again. Done or failed: nothing to skip any more.
            self.creating_ensured().remove(&id);
        }
        if a.formed {
            if self
                .store
                .broker_transition(
                    &id,
                    &[BrokerState::CreationInProgress],
                    BrokerState::Running,
                    None,
                )
                .await?
            {
                tracing::info!(broker = %id, "broker is RUNNING");
            }
            return Ok(StepOutcome::Stable);
        }
        if let Some((_, failed)) = a.failed.first() {
            let reason = format!("The broker agent could not start the engine ({failed}).");
            self.fail_creation(&id, &reason).await?;
            return Ok(StepOutcome::Stable);
        }
        if deadline_passed {
            let reason = format!(
                "The engine did not become healthy within {} s ({}).",
                self.config.create_timeout.as_secs(),
                a.detail
            );
            self.fail_creation(&id, &reason).await?;
            return Ok(StepOutcome::Stable);
        }
        Ok(StepOutcome::Waiting)
    }

    fn creating_ensured(&self) -> std::sync::MutexGuard<'_, HashMap<BrokerId, std::time::Instant>> {
        self.creating_ensured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fail_creation(&self, id: &BrokerId, reason: &str) -> anyhow::Result<()> {
        if self
            .store
            .broker_transition(
                id,
                &[BrokerState::CreationInProgress],
                BrokerState::CreationFailed,
                Some(reason),
            )
            .await?
        {
            tracing::warn!(broker = %id, reason, "broker creation failed");
            self.stop_nodes(id).await?;
        }
        Ok(())
    }

    /// The text of the configuration revision the broker runs, if any.
    async fn engine_config(&self, row: &BrokerRow) -> anyhow::Result<Option<String>> {
        let (Some(id), Some(rev)) = (&row.configuration_id, row.configuration_revision) else {
            return Ok(None);
        };
        let revision = self
            .store
            .configuration_revision_fetch(id, rev)
            .await?
            .ok_or_else(|| anyhow::anyhow!("configuration {id} revision {rev} is missing"))?;
        Ok(Some(revision.data))
    }

    /// Base URL of the agent of `node`, through its published port.
    fn agent_base(&self, ports: &[PortRow], node: u32) -> anyhow::Result<String> {
        agent_base_url(&self.config.publish_host, ports, node)
    }

    /// Asks every node's agent how it is (concurrently, each call bounded by
    /// `health_timeout`), records each answer per node, kills a hung active of a pair,
    /// and adds the reports up.
    async fn observe(&self, row: &BrokerRow) -> anyhow::Result<Assessment> {
        let id = row.broker_id();
        let layout = layout(row)?;
        let token = self.secrets.open(&row.agent_token_enc)?;
        let ports = self.store.broker_ports(&id).await?;
        let calls = layout.nodes.iter().map(|n| {
            let base = self.agent_base(&ports, n.index);
            let token = &token;
            async move {
                let base = base.map_err(|e| format!("{e:#}"))?;
                match tokio::time::timeout(
                    self.config.health_timeout,
                    self.agent.health(&base, token),
                )
                .await
                {
                    Ok(Ok(h)) => Ok(h),
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Err(_) => Err(format!(
                        "no answer within {} ms",
                        self.config.health_timeout.as_millis()
                    )),
                }
            }
        });
        let results: Vec<Result<HealthReport, String>> =
            futures_util::future::join_all(calls).await;
        for (plan, result) in layout.nodes.iter().zip(&results) {
            let seen = match result {
                Ok(h) => NodeObservation::Reported {
                    state: h.state,
                    last_error: h.last_error.clone(),
                    cluster_running: h.cluster_running.clone(),
                    alarms: h.alarms.clone(),
                },
                Err(e) => NodeObservation::Unreachable(e.clone()),
            };
            self.store
                .node_observe(&id, plan.index, &plan.zone, &seen)
                .await?;
        }
        let reports: Vec<nodes::NodeReport<'_>> = layout
            .nodes
            .iter()
            .zip(&results)
            .map(|(n, r)| (n.index, r.as_ref().map_err(String::as_str)))
            .collect();
        Ok(nodes::assess(&layout, &reports))
    }

    /// One round of the hung-active watchdog over every serving active/standby pair:
    /// asks the node last seen active (bounded by `health_timeout`); one that has not
    /// answered for `hung_after` since its last answer (`last_answer`, kept by the
    /// caller across rounds) while its container runs is hung — paused, frozen, out of
    /// CPU — and still holds the store's lock, so no standby can take over until it is
    /// killed. Kills it; the restart brings it back as the standby. Returns the
    /// containers it killed.
    pub async fn watch_hung_actives(
        &self,
        last_answer: &mut HashMap<(BrokerId, u32), std::time::Instant>,
    ) -> anyhow::Result<Vec<String>> {
        let ids = self
            .store
            .broker_ids_serving_in_mode(
                crate::domain::DeploymentMode::ActiveStandbyMultiAz.as_wire(),
            )
            .await?;
        let mut watched = Vec::new();
        for id in ids {
            let Some(row) = self.store.broker_fetch_unscoped(&id).await? else {
                continue;
            };
            let Ok(layout) = layout(&row) else { continue };
            let token = self.secrets.open(&row.agent_token_enc)?;
            let ports = self.store.broker_ports(&id).await?;
            for stored in self.store.broker_nodes(&id).await? {
                let Ok(index) = u32::try_from(stored.node) else {
                    continue;
                };
                let Some(plan) = layout.node(index).cloned() else {
                    continue;
                };
                if stored.state() != Some(EngineState::Ready) {
                    last_answer.remove(&(id.clone(), index));
                    continue;
                }
                // A node without an agent port (a corrupt row) is skipped, not fatal
                // for every other pair's watch.
                let Ok(base) = self.agent_base(&ports, index) else {
                    continue;
                };
                watched.push((id.clone(), plan, base, token.clone()));
            }
        }
        let probes = watched.iter().map(|(_, _, base, token)| async move {
            tokio::time::timeout(self.config.health_timeout, self.agent.health(base, token))
                .await
                .is_ok_and(|r| r.is_ok())
        });
        let answered = futures_util::future::join_all(probes).await;
        let now = std::time::Instant::now();
        let mut killed = Vec::new();
        for ((id, plan, _, _), ok) in watched.into_iter().zip(answered) {
            let key = (id.clone(), plan.index);
            if ok {
                last_answer.insert(key, now);
                continue;
            }
            let since = *last_answer.entry(key.clone()).or_insert(now);
            let silent = now - since;
            if silent < self.config.hung_after {
                continue;
            }
            if !self
                .runtime
                .container_status(&plan.container)
                .await?
                .is_some_and(|s| s.running)
            {
                continue;
            }
            tracing::warn!(
                broker = %id,
                node = plan.index,
                silent_ms = silent.as_millis() as u64,
                "the active node does not answer but holds the store's lock: killing it so the standby takes over"
            );
            self.runtime.kill_container(&plan.container).await?;
            self.store
                .node_observe(
                    &id,
                    plan.index,
                    &plan.zone,
                    &NodeObservation::Reported {
                        state: EngineState::Restarting,
                        last_error: Some(format!(
                            "killed by Berth: the active did not answer for {} ms while holding the store's lock",
                            silent.as_millis()
                        )),
                        cluster_running: None,
                        alarms: Vec::new(),
                    },
                )
                .await?;
            last_answer.remove(&key);
            killed.push(plan.container);
        }
        Ok(killed)
    }

    /// Each node's role as last observed.
    async fn roles(
        &self,
        row: &BrokerRow,
        layout: &Layout,
    ) -> anyhow::Result<HashMap<u32, ObservedRole>> {
        let stored = self.store.broker_nodes(&row.broker_id()).await?;
        Ok(stored
            .iter()
            .filter_map(|n| {
                let index = u32::try_from(n.node).ok()?;
                let state = n.current_state();
                Some((index, nodes::observed_role(layout.kind, state)))
            })
            .collect())
    }

    /// Stops every node's container (absent ones are fine).
    async fn stop_nodes(&self, id: &BrokerId) -> anyhow::Result<()> {
        for node in 0..MAX_NODES {
            self.runtime
                .stop_container(&objects::container_name(id, node), 30)
                .await?;
        }
        self.runtime
            .stop_container(&objects::load_balancer_name(id), 10)
            .await?;
        Ok(())
    }

    /// The image an engine version runs on this installation.
    fn image(&self, version: crate::domain::catalogue::EngineVersion) -> String {
        version.image_named(self.config.image_prefix.as_deref())
    }

    /// Whether a node runs an older build of the broker's engine version than the one its
    /// image tag names now (a newer patch release or agent: `make images` rebuilt it).
    /// `current` caches the image ids looked up in one scheduling pass.
    async fn image_outdated(
        &self,
        row: &BrokerRow,
        current: &mut HashMap<String, Option<String>>,
    ) -> anyhow::Result<bool> {
        let image = self.image(row.version()?);
        let id = match current.get(&image) {
            Some(id) => id.clone(),
            None => {
                let id = self.runtime.image_id(&image).await?;
                current.insert(image, id.clone());
                id
            }
        };
        let Some(current) = id else {
            return Ok(false);
        };
        for node in &layout(row)?.nodes {
            if let Some(status) = self.runtime.container_status(&node.container).await? {
                if status.image_id != current {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn labels(&self, id: &BrokerId, node: Option<u32>) -> HashMap<String, String> {
        let mut l = HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_INSTALLATION.to_owned(), self.installation.clone()),
            (LABEL_BROKER.to_owned(), id.to_string()),
        ]);
        if let Some(n) = node {
            l.insert(LABEL_NODE.to_owned(), n.to_string());
        }
        l
    }

    /// Whether a dead node of `id` stays down for now because its peer is taking over
    /// ([`nodes::Assessment::taking_over`]), for at most [`TAKEOVER_HOLD_MAX`] per
    /// takeover.
    fn hold_for_takeover(&self, id: &BrokerId, a: &Assessment) -> bool {
        let mut holds = self
            .takeover_holds
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !a.taking_over {
            holds.remove(id);
            return false;
        }
        let since = *holds
            .entry(id.clone())
            .or_insert_with(std::time::Instant::now);
        since.elapsed() < TAKEOVER_HOLD_MAX
    }

    /// Ensures the network and, for every node, volume and container exist and the
    /// container runs (the missing ones created one by one, then started together) — except, with `hold`, that a stopped node is left stopped (its
    /// peer is taking over). A running container means its objects exist: the steady
    /// state costs one inspect per node and no Docker write.
    async fn ensure_up(&self, row: &BrokerRow, hold: bool) -> Result<(), RuntimeError> {
        let id = row.broker_id();
        let failed = |e: anyhow::Error| RuntimeError::Failed {
            context: "building container spec".into(),
            message: format!("{e:#}"),
        };
        let mut to_start = Vec::new();
        for node in layout(row).map_err(|e| failed(e.into()))?.indexes() {
            let name = objects::container_name(&id, node);
            if self
                .runtime
                .container_status(&name)
                .await?
                .is_some_and(|s| s.running)
            {
                continue;
            }
            if hold {
                tracing::debug!(broker = %id, node, "held down while its peer takes over");
                continue;
            }
            let spec = self.container_spec(row, node).await.map_err(failed)?;
            // A new engine process: its last report no longer says anything.
            self.store
                .node_observe(
                    &id,
                    node,
                    spec.labels.get(LABEL_ZONE).map_or("", String::as_str),
                    &NodeObservation::Reported {
                        state: EngineState::Starting,
                        last_error: None,
                        cluster_running: None,
                        alarms: Vec::new(),
                    },
                )
                .await
                .map_err(|e| failed(e.into()))?;
            self.runtime
                .ensure_network(&spec.network, &self.labels(&id, None))
                .await?;
            if let Some((volume, _)) = &spec.volume {
                self.runtime
                    .ensure_volume(volume, &self.labels(&id, Some(node)))
                    .await?;
            }
            self.ensure_program_volumes(&spec).await?;
            match self.runtime.ensure_container(&spec).await {
                Err(RuntimeError::ImageMissing(image)) => {
                    self.build_image(row, &image).await?;
                    // The new image's program volumes.
                    let spec = self.container_spec(row, node).await.map_err(failed)?;
                    self.ensure_program_volumes(&spec).await?;
                    self.runtime.ensure_container(&spec).await?;
                }
                other => other?,
            }
            to_start.push(spec.name);
        }
        // Every node created first, then all started at once: a cluster's members boot
        // together (started one after the other, the last one began seconds late).
        let id = &id;
        let starts = to_start.iter().map(|name| async move {
            tracing::info!(broker = %id, container = %name, "starting container");
            self.runtime.start_container(name).await
        });
        for started in futures_util::future::join_all(starts).await {
            started?;
        }
        if layout(row).map_err(|e| failed(e.into()))?.load_balancer {
            self.ensure_load_balancer(row).await?;
        }
        Ok(())
    }

    /// The program volumes `spec` mounts, labelled with the image they are filled from
    /// (shared by all brokers of this installation; see `collect_garbage`).
    async fn ensure_program_volumes(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        if spec.program_volumes.is_empty() {
            return Ok(());
        }
        let Some(image_id) = self.runtime.image_id(&spec.image).await? else {
            return Ok(());
        };
        self.fill_program_volumes(&spec.image, &image_id, &spec.program_volumes)
            .await
    }

    async fn fill_program_volumes(
        &self,
        image: &str,
        image_id: &str,
        volumes: &[(String, String)],
    ) -> Result<(), RuntimeError> {
        let labels = HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_INSTALLATION.to_owned(), self.installation.clone()),
            (LABEL_PROGRAM_IMAGE.to_owned(), image_id.to_owned()),
        ]);
        let lock = self
            .filling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(image_id.to_owned())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        self.runtime
            .fill_program_volumes(image, volumes, &labels)
            .await
    }

    /// Fills the program volumes of every engine version's current image ahead of the
    /// first broker that needs them: otherwise that broker's first node create has
    /// Docker copy the image's program files (seconds, on the path of a cluster's
    /// formation). Cheap when they exist (an image lookup and a volume lookup each).
    pub async fn prepare_program_volumes(&self) -> anyhow::Result<()> {
        for version in crate::domain::catalogue::ENGINE_VERSIONS {
            let dirs = crate::domain::profile::profile(version.engine).program_dirs;
            if dirs.is_empty() {
                continue;
            }
            let image = self.image(*version);
            let Some(image_id) = self.runtime.image_id(&image).await? else {
                continue;
            };
            let volumes = objects::program_volumes(&image_id, dirs);
            self.fill_program_volumes(&image, &image_id, &volumes)
                .await?;
        }
        Ok(())
    }

    /// A cluster's load balancer: HAProxy from the engine image, forwarding every
    /// client port (TLS passes through to the nodes) to the nodes that pass its health
    /// check, on host ports pinned for the broker (the broker's one endpoint).
    async fn ensure_load_balancer(&self, row: &BrokerRow) -> Result<(), RuntimeError> {
        let id = row.broker_id();
        let name = objects::load_balancer_name(&id);
        if self
            .runtime
            .container_status(&name)
            .await?
            .is_some_and(|s| s.running)
        {
            return Ok(());
        }
        let spec = self
            .load_balancer_spec(row)
            .await
            .map_err(|e| RuntimeError::Failed {
                context: "building the load balancer's spec".into(),
                message: format!("{e:#}"),
            })?;
        self.runtime.ensure_container(&spec).await?;
        tracing::info!(broker = %id, container = %name, "starting the load balancer");
        self.runtime.start_container(&name).await
    }

    /// The last step of a roll: a load balancer still on an image the nodes no longer
    /// run (an engine upgrade, a rebuilt image) is recreated on the new one, so that no
    /// container of the broker depends on an image `make images` may have replaced. Its
    /// clients reconnect once; a roll that kept the image leaves it alone.
    async fn roll_load_balancer(&self, row: &BrokerRow) -> anyhow::Result<()> {
        let name = objects::load_balancer_name(&row.broker_id());
        let Some(status) = self.runtime.container_status(&name).await? else {
            return Ok(());
        };
        let Some(current) = self.runtime.image_id(&self.image(row.version()?)).await? else {
            return Ok(());
        };
        if status.image_id == current {
            return Ok(());
        }
        tracing::info!(broker = %row.broker_id(), container = %name, "reboot: moving the load balancer onto the new image");
        self.runtime.stop_container(&name, 10).await?;
        self.runtime.remove_container(&name).await?;
        self.ensure_load_balancer(row).await?;
        Ok(())
    }

    async fn load_balancer_spec(&self, row: &BrokerRow) -> anyhow::Result<ContainerSpec> {
        use crate::domain::haproxy;
        let id = row.broker_id();
        let profile = profile::profile(row.engine()?);
        let layout = layout(row)?;
        let forwarded: Vec<(&'static str, u16)> = profile
            .published_ports(self.config.listeners)
            .into_iter()
            .filter(|(proto, _)| *proto != AGENT_PROTOCOL)
            .collect();
        let wanted: Vec<(i32, &'static str)> = forwarded
            .iter()
            .map(|(proto, _)| (objects::LOAD_BALANCER_PORTS, *proto))
            .collect();
        let ports = self
            .store
            .broker_ports_ensure(&id, &wanted, &self.config.ports)
            .await?;
        let mut published = Vec::new();
        for (protocol, container_port) in &forwarded {
            let host = ports
                .iter()
                .find(|p| p.node == objects::LOAD_BALANCER_PORTS && p.protocol == *protocol)
                .ok_or_else(|| anyhow::anyhow!("no load balancer port allocated for {protocol}"))?;
            published.push((*container_port, u16::try_from(host.host_port)?));
        }
        let lb_ports: Vec<haproxy::LbPort<'_>> = forwarded
            .iter()
            .map(|(proto, port)| haproxy::LbPort::same(proto, *port))
            .collect();
        let backends: Vec<String> = layout.nodes.iter().map(|n| n.container.clone()).collect();
        let config = haproxy::render(&backends, &lb_ports)?;
        let name = objects::load_balancer_name(&id);
        Ok(ContainerSpec {
            hostname: name.clone(),
            name,
            image: self.image(row.version()?),
            network: objects::network_name(&id),
            labels: self.labels(&id, None),
            memory_bytes: 256 << 20,
            nano_cpus: 500_000_000,
            ports: published,
            publish_host: self.config.publish_host.clone(),
            volume: None,
            program_volumes: Vec::new(),
            command: Some(haproxy::COMMAND.iter().map(|s| (*s).to_owned()).collect()),
            files: vec![ContainerFile {
                path: haproxy::CONFIG_PATH.to_owned(),
                contents: config.into_bytes(),
                mode: 0o644,
            }],
        })
    }

    /// Builds the broker's engine image, which is missing (the first broker of this
    /// version on this host). The broker stays in its state meanwhile; a failed build is
    /// [`RuntimeError::ImageBuild`] with the reason.
    async fn build_image(&self, row: &BrokerRow, image: &str) -> Result<(), RuntimeError> {
        let Some(builder) = &self.config.images else {
            return Err(RuntimeError::ImageMissing(image.to_owned()));
        };
        let version = row
            .version()
            .map_err(|e| RuntimeError::ImageBuild(e.to_string()))?;
        let (engine, name) = version.image_args();
        tracing::info!(broker = %row.id, image, "engine image missing: building it");
        let started = std::time::Instant::now();
        builder
            .ensure(engine, name)
            .await
            .map_err(|e| RuntimeError::ImageBuild(format!("{e:#}")))?;
        tracing::info!(broker = %row.id, image, secs = started.elapsed().as_secs_f64(), "engine image built");
        Ok(())
    }

    /// What the agent of `node` must run: current users (those being deleted left out),
    /// secrets opened, the engine's own part.
    async fn agent_spec(
        &self,
        row: &BrokerRow,
        user_rows: &[crate::db::model::UserRow],
        node: u32,
    ) -> anyhow::Result<AgentSpec> {
        let id = row.broker_id();
        let profile = profile::profile(row.engine()?);
        let version = row.version()?;
        let mut users = Vec::new();
        for u in user_rows
            .iter()
            .filter(|u| u.pending_change.as_deref() != Some("DELETE"))
        {
            let first = users.is_empty();
            users.push(EngineUser {
                username: u.username.clone(),
                password: self.secrets.open(&u.password_enc)?,
                admin: profile.users.first_is_admin && first,
                console_access: u.console_access || (profile.users.first_is_admin && first),
                groups: u.groups.0.clone(),
            });
        }
        let layout = layout(row)?;
        let plan = layout
            .node(node)
            .ok_or_else(|| anyhow::anyhow!("node {node} is not part of this broker"))?;
        Ok(AgentSpec {
            broker_id: id.to_string(),
            engine_version: version.name.to_owned(),
            engine: self.engine_spec(row, profile)?,
            node: NodeSpec {
                index: node,
                count: layout.nodes.len() as u32,
                peers: layout.peers(node),
                hostname: plan.container.clone(),
                topology: layout.topology,
                zone: plan.zone.clone(),
            },
            users,
            agent_token: self.secrets.open(&row.agent_token_enc)?,
            engine_config: self.engine_config(row).await?,
            tls: match self.config.listeners.tls {
                true => Some(self.tls_material(row).await?),
                false => None,
            },
            plaintext: self.config.listeners.plaintext,
        })
    }

    /// Names a broker certificate must cover: the advertised host (what endpoints
    /// say), `localhost`, and the nodes' host names on the broker network.
    fn cert_hosts(&self, row: &BrokerRow) -> anyhow::Result<Vec<String>> {
        let id = row.broker_id();
        let mut hosts = vec![self.config.advertised_host.clone(), "localhost".to_owned()];
        let layout = layout(row)?;
        hosts.extend(layout.nodes.iter().map(|n| n.container.clone()));
        if layout.load_balancer {
            hosts.push(objects::load_balancer_name(&id));
        }
        hosts.dedup();
        Ok(hosts)
    }

    /// The broker's certificate, issued (or reissued) when missing, about to expire,
    /// for other hosts, or from another CA. Returns the row and whether it is new.
    async fn ensure_certificate(&self, row: &BrokerRow) -> anyhow::Result<(CertificateRow, bool)> {
        let id = row.broker_id();
        let hosts = self.cert_hosts(row)?;
        let now = std::time::SystemTime::now();
        let current = self.store.certificate_fetch(&id).await?;
        let reason = match &current {
            None => Some("none issued yet".to_owned()),
            Some(c) => match self.config.ca.needs_reissue(
                &c.cert_pem,
                &hosts,
                now,
                self.config.renew_before,
            ) {
                Ok(None) => None,
                Ok(Some(r)) => Some(r.to_string()),
                Err(e) => Some(format!("stored certificate unreadable: {e:#}")),
            },
        };
        match (current, reason) {
            (Some(c), None) => Ok((c, false)),
            (_, reason) => {
                let reason = reason.unwrap_or_default();
                let issued =
                    self.config
                        .ca
                        .issue(&hosts, crate::tls::DEFAULT_LEAF_VALIDITY_DAYS, now)?;
                let cert = CertificateRow {
                    cert_pem: issued.cert_pem.clone(),
                    key_enc: self.secrets.seal(&issued.key_pem),
                    not_after: issued.not_after.into(),
                };
                self.store.certificate_store(&id, &cert).await?;
                tracing::info!(broker = %id, serial = %issued.serial, %reason, "broker certificate issued");
                Ok((cert, true))
            }
        }
    }

    /// Renews the certificate of a serving broker when due; true when it did.
    async fn renew_certificate(&self, row: &BrokerRow) -> anyhow::Result<bool> {
        if !self.config.listeners.tls {
            return Ok(false);
        }
        Ok(self.ensure_certificate(row).await?.1)
    }

    async fn tls_material(&self, row: &BrokerRow) -> anyhow::Result<TlsMaterial> {
        let (cert, _) = self.ensure_certificate(row).await?;
        Ok(TlsMaterial {
            cert_pem: cert.cert_pem,
            key_pem: self.secrets.open(&cert.key_enc)?,
            ca_pem: self.config.ca.cert_pem().to_owned(),
        })
    }

    /// The engine-specific part of the agent's spec: the one place that differs in
    /// shape per engine.
    fn engine_spec(&self, row: &BrokerRow, profile: &EngineProfile) -> anyhow::Result<EngineSpec> {
        Ok(match profile.engine {
            EngineType::Rabbitmq => EngineSpec::Rabbitmq(RabbitmqSpec {
                erlang_cookie: self.secrets.open(&row.erlang_cookie_enc)?,
                memory_high_watermark: None,
            }),
            EngineType::Activemq => EngineSpec::Activemq(ActivemqSpec {
                broker_name: row.id.clone(),
                heap_percent: None,
            }),
        })
    }

    async fn container_spec(&self, row: &BrokerRow, node: u32) -> anyhow::Result<ContainerSpec> {
        let id = row.broker_id();
        let profile = profile::profile(row.engine()?);
        let version = row.version()?;
        let instance = row.instance()?;
        let agent_spec = self
            .agent_spec(row, &self.store.broker_users(&id).await?, node)
            .await?;
        let wanted: Vec<(i32, &'static str)> = profile
            .published_ports(self.config.listeners)
            .iter()
            .map(|(proto, _)| (node as i32, *proto))
            .collect();
        let ports = self
            .store
            .broker_ports_ensure(&id, &wanted, &self.config.ports)
            .await?;
        let mut published = Vec::new();
        for (protocol, container_port) in profile.published_ports(self.config.listeners) {
            let host = ports
                .iter()
                .find(|p| p.node == node as i32 && p.protocol == protocol)
                .ok_or_else(|| anyhow::anyhow!("no host port allocated for {protocol}"))?;
            published.push((container_port, u16::try_from(host.host_port)?));
        }
        let memory = instance.memory_bytes().min(self.config.host_memory_bytes);
        let cpus = instance.vcpus.min(self.config.host_cpus.max(1));
        let layout = layout(row)?;
        let plan = layout
            .node(node)
            .ok_or_else(|| anyhow::anyhow!("node {node} is not part of this broker"))?;
        let mut labels = self.labels(&id, Some(node));
        labels.insert(LABEL_ZONE.to_owned(), plan.zone.clone());
        let image = self.image(version);
        // Named by the image's id, so a rebuilt image gets volumes of its own; none
        // while the image is missing (it is built first).
        let program_volumes = match self.runtime.image_id(&image).await? {
            Some(image_id) => objects::program_volumes(&image_id, profile.program_dirs),
            None => Vec::new(),
        };
        Ok(ContainerSpec {
            hostname: plan.container.clone(),
            name: plan.container.clone(),
            image,
            network: objects::network_name(&id),
            labels,
            memory_bytes: i64::try_from(memory)?,
            nano_cpus: i64::from(cpus) * 1_000_000_000,
            ports: published,
            publish_host: self.config.publish_host.clone(),
            volume: Some((plan.volume.clone(), profile.data_dir.to_owned())),
            program_volumes,
            command: None,
            files: vec![ContainerFile {
                path: SPEC_PATH.to_owned(),
                contents: serde_json::to_vec(&agent_spec)?,
                mode: 0o600,
            }],
        })
    }

    /// Removes every Docker object of broker `id`; safe to repeat.
    async fn teardown(&self, id: &BrokerId) -> anyhow::Result<()> {
        for node in 0..MAX_NODES {
            let name = objects::container_name(id, node);
            self.runtime.stop_container(&name, 30).await?;
            self.runtime.remove_container(&name).await?;
            self.runtime
                .remove_volume(&objects::volume_name(id, node))
                .await?;
        }
        let lb = objects::load_balancer_name(id);
        self.runtime.stop_container(&lb, 10).await?;
        self.runtime.remove_container(&lb).await?;
        self.runtime
            .remove_volume(&objects::shared_volume_name(id))
            .await?;
        self.runtime
            .remove_network(&objects::network_name(id))
            .await?;
        Ok(())
    }

    /// Starts a reboot for every RUNNING broker whose weekly maintenance window is open
    /// and unused and that has pending changes — or, with `autoMinorVersionUpgrade`, a
    /// node on an older build of its engine version. Returns the brokers it started.
    pub async fn schedule_maintenance(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Vec<BrokerId>> {
        let mut started = Vec::new();
        let mut images = HashMap::new();
        for c in self.store.broker_maintenance_candidates().await? {
            let Some(window) = crate::domain::maintenance::window_due(
                &c.maintenance_day,
                &c.maintenance_time,
                &c.maintenance_time_zone,
                c.last_maintenance_at,
                now,
            ) else {
                continue;
            };
            let id = BrokerId::from_db(c.id);
            let why = if c.pending {
                "applying pending changes"
            } else {
                let Some(row) = self.store.broker_fetch_unscoped(&id).await? else {
                    continue;
                };
                if !self.image_outdated(&row, &mut images).await? {
                    continue;
                }
                "upgrading to the newest build of its engine version (autoMinorVersionUpgrade)"
            };
            if self.store.broker_start_maintenance(&id, window).await? {
                tracing::info!(broker = %id, window = %window, "maintenance window open: {why}");
                started.push(id);
            }
        }
        Ok(started)
    }

    /// Removes objects labelled with this installation whose broker no longer exists
    /// (left behind by a crash or by hand).
    pub async fn collect_garbage(&self) -> anyhow::Result<()> {
        // List objects first: any object belongs to a row created before it, so a row
        // missing from the later id list really is gone.
        let objects = self.runtime.list_managed(&self.installation).await?;
        let ids: std::collections::HashSet<String> = self
            .store
            .broker_ids_all()
            .await?
            .into_iter()
            .map(|i| i.to_string())
            .collect();
        let mut orphans: Vec<_> = objects
            .into_iter()
            .filter(|o| !ids.contains(&o.broker_id))
            .collect();
        // Containers before volumes and networks they use.
        orphans.sort_by_key(|o| match o.kind {
            ObjectKind::Container => 0,
            ObjectKind::Volume => 1,
            ObjectKind::Network => 2,
        });
        for o in orphans {
            tracing::info!(kind = ?o.kind, name = %o.name, broker = %o.broker_id, "removing orphaned object");
            match o.kind {
                ObjectKind::Container => self.runtime.remove_container(&o.name).await?,
                ObjectKind::Volume => self.runtime.remove_volume(&o.name).await?,
                ObjectKind::Network => self.runtime.remove_network(&o.name).await?,
            }
        }
        self.collect_program_volumes().await
    }

    /// Removes program volumes of images no engine version's tag names any more (a
    /// rebuilt image has its own) once no container mounts them.
    async fn collect_program_volumes(&self) -> anyhow::Result<()> {
        let volumes = self
            .runtime
            .list_program_volumes(&self.installation)
            .await?;
        if volumes.is_empty() {
            return Ok(());
        }
        let mut current = std::collections::HashSet::new();
        for version in crate::domain::catalogue::ENGINE_VERSIONS {
            if let Some(id) = self.runtime.image_id(&self.image(*version)).await? {
                current.insert(id);
            }
        }
        for (name, image) in volumes {
            if !current.contains(&image) && self.runtime.remove_unused_volume(&name).await? {
                tracing::info!(volume = %name, image = %image, "removed the program volume of an image no longer in use");
            }
        }
        Ok(())
    }
}

/// The nodes of a broker, from its deployment mode.
fn layout(row: &BrokerRow) -> Result<Layout, crate::error::Error> {
    Ok(nodes::layout(&row.broker_id(), row.mode()?, &row.region))
}

/// The order a reboot takes the nodes in: standbys (and nodes that are down) first,
/// the serving ones last, so an active/standby pair fails over once.
fn roll_order(layout: &Layout, roles: &HashMap<u32, ObservedRole>) -> Vec<u32> {
    let mut order: Vec<u32> = layout.indexes().collect();
    order.sort_by_key(|n| match roles.get(n) {
        Some(ObservedRole::Active) => (2, *n),
        Some(ObservedRole::ClusterNode) => (1, *n),
        _ => (0, *n),
    });
    order
}

/// Base URL of the agent of `node`, through its port published on `publish_host`
/// (an unspecified address is reached on loopback).
pub(crate) fn agent_base_url(
    publish_host: &str,
    ports: &[PortRow],
    node: u32,
) -> anyhow::Result<String> {
    let port = ports
        .iter()
        .find(|p| p.node == node as i32 && p.protocol == AGENT_PROTOCOL)
        .ok_or_else(|| anyhow::anyhow!("no agent port allocated for node {node}"))?;
    Ok(format!(
        "http://{}:{}",
        agent_host(publish_host),
        port.host_port
    ))
}

/// The host the agents' published ports are reached on: an unspecified publish address
/// means loopback.
pub(crate) fn agent_host(publish_host: &str) -> &str {
    match publish_host {
        "0.0.0.0" | "" => "127.0.0.1",
        h => h,
    }
}
