//! One broker's convergence step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use broker_agent::spec::{AgentSpec, Engine, EngineState, EngineUser, SPEC_PATH};
use tokio_util::sync::CancellationToken;

use crate::agent_client::AgentProbe;
use crate::crypto::SecretBox;
use crate::db::model::BrokerRow;
use crate::db::DataStore;
use crate::domain::engine::{self, AGENT_PROTOCOL};
use crate::domain::{BrokerId, BrokerState, EngineType};
use crate::runtime::{
    ContainerFile, ContainerRuntime, ContainerSpec, ObjectKind, RuntimeError, LABEL_BROKER,
    LABEL_INSTALLATION, LABEL_MANAGED, LABEL_NODE,
};

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
    /// Host CPUs and memory: instance limits larger than the machine are clamped.
    pub host_cpus: u32,
    pub host_memory_bytes: u64,
}

pub struct BrokerReconciler {
    store: DataStore,
    runtime: Arc<dyn ContainerRuntime>,
    agent: Arc<dyn AgentProbe>,
    secrets: SecretBox,
    installation: String,
    config: ReconcilerConfig,
    cancel: CancellationToken,
}

impl BrokerReconciler {
    pub fn new(
        store: DataStore,
        runtime: Arc<dyn ContainerRuntime>,
        agent: Arc<dyn AgentProbe>,
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
                self.teardown(id).await?;
                if self.store.broker_delete_row(id).await? {
                    tracing::info!(broker = %id, "broker deleted");
                }
                Ok(StepOutcome::Gone)
            }
            BrokerState::CreationFailed => {
                // Keep the data for inspection, but don't leave the engine running.
                self.runtime
                    .stop_container(&engine::container_name(id, 0), 30)
                    .await?;
                Ok(StepOutcome::Stable)
            }
            BrokerState::CreationInProgress => self.step_creating(&row).await,
            BrokerState::RebootInProgress => self.step_rebooting(&row).await,
            BrokerState::Running | BrokerState::CriticalActionRequired => {
                self.ensure_up(&row).await.map_err(anyhow::Error::new)?;
                if self.watch_health(&row).await? {
                    self.push_users(&row).await?;
                }
                Ok(StepOutcome::Stable)
            }
        }
    }

    /// A reboot applies pending settings, recreates the container from the current
    /// desired state (new limits, same volume) and waits for the agent. A container
    /// created after the reboot request is this reboot's own, so a retried step never
    /// recreates twice.
    async fn step_rebooting(&self, row: &BrokerRow) -> anyhow::Result<StepOutcome> {
        let id = row.broker_id();
        self.store.broker_apply_pending(&id).await?;
        let Some(row) = self.store.broker_fetch_unscoped(&id).await? else {
            return Ok(StepOutcome::Gone);
        };
        let requested = row.reboot_requested_at.unwrap_or(row.state_changed_at);
        let name = engine::container_name(&id, 0);
        if let Some(status) = self.runtime.container_status(&name).await? {
            if status.created.is_none_or(|created| created < requested) {
                tracing::info!(broker = %id, "reboot: recreating the container");
                self.runtime.stop_container(&name, 30).await?;
                self.runtime.remove_container(&name).await?;
            }
        }
        self.ensure_up(&row).await.map_err(anyhow::Error::new)?;
        match self.probe(&row).await {
            Ok(EngineState::Ready) => {
                self.push_users(&row).await?;
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
                Ok(StepOutcome::Stable)
            }
            _ if chrono::Utc::now() - requested
                > chrono::Duration::from_std(self.config.create_timeout)? =>
            {
                let reason = format!(
                    "The engine did not come back within {} s of the reboot.",
                    self.config.create_timeout.as_secs()
                );
                self.store
                    .broker_transition(
                        &id,
                        &[BrokerState::RebootInProgress],
                        BrokerState::CriticalActionRequired,
                        Some(&reason),
                    )
                    .await?;
                Ok(StepOutcome::Stable)
            }
            _ => Ok(StepOutcome::Waiting),
        }
    }

    /// Health of a broker that should be serving: an engine that has not been ready for
    /// `unhealthy_after` turns RUNNING into CRITICAL_ACTION_REQUIRED (with the reason);
    /// a ready one clears the mark and returns to RUNNING. Returns whether it is ready.
    async fn watch_health(&self, row: &BrokerRow) -> anyhow::Result<bool> {
        let id = row.broker_id();
        let health = self.probe(row).await;
        if matches!(health, Ok(EngineState::Ready)) {
            self.store.broker_mark_healthy(&id).await?;
            if self
                .store
                .broker_transition(
                    &id,
                    &[BrokerState::CriticalActionRequired],
                    BrokerState::Running,
                    None,
                )
                .await?
            {
                tracing::info!(broker = %id, "engine healthy again: RUNNING");
            }
            return Ok(true);
        }
        let since = self.store.broker_mark_unhealthy(&id).await?;
        let limit = chrono::Duration::from_std(self.config.unhealthy_after)?;
        if chrono::Utc::now() - since > limit {
            let detail = match health {
                Ok(state) => format!("engine state {state:?}"),
                Err(e) => format!("agent unreachable: {e}"),
            };
            let reason = format!(
                "The engine has failed its health check for more than {} s ({detail}).",
                self.config.unhealthy_after.as_secs()
            );
            if self
                .store
                .broker_transition(
                    &id,
                    &[BrokerState::Running],
                    BrokerState::CriticalActionRequired,
                    Some(&reason),
                )
                .await?
            {
                tracing::warn!(broker = %id, reason, "broker needs attention");
            }
        }
        Ok(false)
    }

    /// Sends the users to the agent when any change is pending, then confirms exactly
    /// the changes the agent saw.
    async fn push_users(&self, row: &BrokerRow) -> anyhow::Result<()> {
        let id = row.broker_id();
        let users = self.store.broker_users(&id).await?;
        if users.iter().all(|u| u.pending_change.is_none()) {
            return Ok(());
        }
        let seq = users.iter().map(|u| u.change_seq).max().unwrap_or(0);
        let spec = self.agent_spec(row, &users).await?;
        let token = self.secrets.open(&row.agent_token_enc)?;
        let base = self.agent_base(&id).await?;
        self.agent.put_spec(&base, &token, &spec).await?;
        self.store.users_confirm(&id, seq).await?;
        tracing::info!(broker = %id, "user changes applied by the agent");
        Ok(())
    }

    async fn step_creating(&self, row: &BrokerRow) -> anyhow::Result<StepOutcome> {
        let id = row.broker_id();
        let deadline_passed = chrono::Utc::now() - row.created_at
            > chrono::Duration::from_std(self.config.create_timeout)?;
        match self.ensure_up(row).await {
            Ok(()) => {}
            Err(RuntimeError::ImageMissing(image)) => {
                let reason =
                    format!("Engine image {image} is not built on this host; run `make images`.");
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
        let health = self.probe(row).await;
        match health {
            Ok(EngineState::Ready) => {
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
                Ok(StepOutcome::Stable)
            }
            Ok(EngineState::Failed) => {
                self.fail_creation(&id, "The broker agent could not start the engine.")
                    .await?;
                Ok(StepOutcome::Stable)
            }
            other if deadline_passed => {
                let detail = match other {
                    Ok(state) => format!("engine state {state:?}"),
                    Err(e) => format!("agent unreachable: {e}"),
                };
                let reason = format!(
                    "The engine did not become healthy within {} s ({detail}).",
                    self.config.create_timeout.as_secs()
                );
                self.fail_creation(&id, &reason).await?;
                Ok(StepOutcome::Stable)
            }
            _ => Ok(StepOutcome::Waiting),
        }
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
            self.runtime
                .stop_container(&engine::container_name(id, 0), 30)
                .await?;
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

    /// Base URL of the agent of node 0, through its published port.
    async fn agent_base(&self, id: &BrokerId) -> anyhow::Result<String> {
        let ports = self.store.broker_ports(id).await?;
        let port = ports
            .iter()
            .find(|p| p.node == 0 && p.protocol == AGENT_PROTOCOL)
            .ok_or_else(|| anyhow::anyhow!("no agent port allocated"))?;
        let host = match self.config.publish_host.as_str() {
            "0.0.0.0" | "" => "127.0.0.1",
            h => h,
        };
        Ok(format!("http://{host}:{}", port.host_port))
    }

    /// Asks the agent how the engine is doing.
    async fn probe(&self, row: &BrokerRow) -> anyhow::Result<EngineState> {
        let token = self.secrets.open(&row.agent_token_enc)?;
        let base = self.agent_base(&row.broker_id()).await?;
        Ok(self.agent.health(&base, &token).await?.state)
    }

    fn labels(&self, id: &BrokerId, node: Option<i32>) -> HashMap<String, String> {
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

    /// Ensures network, volume and container exist and the container runs. A running
    /// container means all three exist: the steady state costs one inspect and no
    /// Docker write.
    async fn ensure_up(&self, row: &BrokerRow) -> Result<(), RuntimeError> {
        let id = row.broker_id();
        if self
            .runtime
            .container_status(&engine::container_name(&id, 0))
            .await?
            .is_some_and(|s| s.running)
        {
            return Ok(());
        }
        let spec = self
            .container_spec(row)
            .await
            .map_err(|e| RuntimeError::Failed {
                context: "building container spec".into(),
                message: format!("{e:#}"),
            })?;
        self.runtime
            .ensure_network(&spec.network, &self.labels(&id, None))
            .await?;
        self.runtime
            .ensure_volume(&spec.volume.0, &self.labels(&id, Some(0)))
            .await?;
        self.runtime.ensure_container(&spec).await?;
        let running = self
            .runtime
            .container_status(&spec.name)
            .await?
            .is_some_and(|s| s.running);
        if !running {
            tracing::info!(broker = %id, container = %spec.name, "starting container");
            self.runtime.start_container(&spec.name).await?;
        }
        Ok(())
    }

    /// What the agent must run: current users (those being deleted left out), secrets
    /// opened.
    async fn agent_spec(
        &self,
        row: &BrokerRow,
        user_rows: &[crate::db::model::UserRow],
    ) -> anyhow::Result<AgentSpec> {
        let id = row.broker_id();
        let engine_type = row.engine()?;
        let version = row.version()?;
        let mut users = Vec::new();
        for u in user_rows
            .iter()
            .filter(|u| u.pending_change.as_deref() != Some("DELETE"))
        {
            users.push(EngineUser {
                username: u.username.clone(),
                password: self.secrets.open(&u.password_enc)?,
                admin: users.is_empty() || u.console_access,
            });
        }
        Ok(AgentSpec {
            broker_id: id.to_string(),
            engine: match engine_type {
                EngineType::Rabbitmq => Engine::Rabbitmq,
                EngineType::Activemq => Engine::Activemq,
            },
            engine_version: version.name.to_owned(),
            users,
            agent_token: self.secrets.open(&row.agent_token_enc)?,
            erlang_cookie: Some(self.secrets.open(&row.erlang_cookie_enc)?),
            memory_high_watermark: None,
            engine_config: self.engine_config(row).await?,
        })
    }

    async fn container_spec(&self, row: &BrokerRow) -> anyhow::Result<ContainerSpec> {
        let id = row.broker_id();
        let engine_type = row.engine()?;
        let version = row.version()?;
        let instance = row.instance()?;
        let agent_spec = self
            .agent_spec(row, &self.store.broker_users(&id).await?)
            .await?;
        let ports = self.store.broker_ports(&id).await?;
        let mut published = Vec::new();
        for ep in engine::engine_ports(engine_type) {
            let host = ports
                .iter()
                .find(|p| p.node == 0 && p.protocol == ep.protocol)
                .ok_or_else(|| anyhow::anyhow!("no host port allocated for {}", ep.protocol))?;
            published.push((ep.container_port, u16::try_from(host.host_port)?));
        }
        let memory = instance.memory_bytes().min(self.config.host_memory_bytes);
        let cpus = instance.vcpus.min(self.config.host_cpus.max(1));
        let name = engine::container_name(&id, 0);
        Ok(ContainerSpec {
            hostname: name.clone(),
            name,
            image: version.image.to_owned(),
            network: engine::network_name(&id),
            labels: self.labels(&id, Some(0)),
            memory_bytes: i64::try_from(memory)?,
            nano_cpus: i64::from(cpus) * 1_000_000_000,
            ports: published,
            publish_host: self.config.publish_host.clone(),
            volume: (
                engine::volume_name(&id, 0),
                engine::data_dir(engine_type).to_owned(),
            ),
            files: vec![ContainerFile {
                path: SPEC_PATH.to_owned(),
                contents: serde_json::to_vec(&agent_spec)?,
                mode: 0o600,
            }],
        })
    }

    /// Removes every Docker object of broker `id`; safe to repeat.
    async fn teardown(&self, id: &BrokerId) -> anyhow::Result<()> {
        let name = engine::container_name(id, 0);
        self.runtime.stop_container(&name, 30).await?;
        self.runtime.remove_container(&name).await?;
        self.runtime
            .remove_volume(&engine::volume_name(id, 0))
            .await?;
        self.runtime
            .remove_network(&engine::network_name(id))
            .await?;
        Ok(())
    }

    /// Starts a reboot for every RUNNING broker with pending changes whose weekly
    /// maintenance window is open and unused. Returns the brokers it started.
    pub async fn schedule_maintenance(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Vec<BrokerId>> {
        let mut started = Vec::new();
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
            if self.store.broker_start_maintenance(&id, window).await? {
                tracing::info!(broker = %id, window = %window, "maintenance window open: applying pending changes");
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
        Ok(())
    }
}
