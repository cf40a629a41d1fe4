//! One broker's convergence step.
//!
//! A broker is a set of nodes (one per container, each with its own data volume and
//! agent); the deployment mode says how many. What differs between engines comes from
//! the engine's profile ([`crate::domain::profile`]); the only engine-specific code
//! here builds the engine part of the agent's spec.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agent_contract::{
    ActivemqSpec, AgentSpec, EngineSpec, EngineState, EngineUser, NodeSpec, RabbitmqSpec,
    TlsMaterial, SPEC_PATH,
};
use tokio_util::sync::CancellationToken;

use crate::agent_client::AgentClient;
use crate::crypto::SecretBox;
use crate::db::broker::PortPool;
use crate::db::model::{BrokerRow, PortRow};
use crate::db::tls::CertificateRow;
use crate::db::DataStore;
use crate::domain::objects::{self, MAX_NODES};
use crate::domain::profile::{self, node_count, EngineProfile, Listeners, AGENT_PROTOCOL};
use crate::domain::{BrokerId, BrokerState, EngineType};
use crate::images::ImageBuilder;
use crate::runtime::{
    ContainerFile, ContainerRuntime, ContainerSpec, ObjectKind, RuntimeError, LABEL_BROKER,
    LABEL_INSTALLATION, LABEL_MANAGED, LABEL_NODE,
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
}

pub struct BrokerReconciler {
    store: DataStore,
    runtime: Arc<dyn ContainerRuntime>,
    agent: Arc<dyn AgentClient>,
    secrets: SecretBox,
    installation: String,
    config: ReconcilerConfig,
    cancel: CancellationToken,
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
                self.stop_nodes(id).await?;
                Ok(StepOutcome::Stable)
            }
            BrokerState::CreationInProgress => self.step_creating(&row).await,
            BrokerState::RebootInProgress => self.step_rebooting(&row).await,
            BrokerState::Running | BrokerState::CriticalActionRequired => {
                self.ensure_up(&row).await.map_err(anyhow::Error::new)?;
                if self.watch_health(&row).await? {
                    let renewed = self.renew_certificate(&row).await?;
                    self.push_spec(&row, renewed).await?;
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
        for node in nodes(&row)? {
            let name = objects::container_name(&id, node);
            if let Some(status) = self.runtime.container_status(&name).await? {
                if status.created.is_none_or(|created| created < requested) {
                    tracing::info!(broker = %id, node, "reboot: recreating the container");
                    self.runtime.stop_container(&name, 30).await?;
                    self.runtime.remove_container(&name).await?;
                }
            }
        }
        self.ensure_up(&row).await.map_err(anyhow::Error::new)?;
        match self.probe(&row).await {
            Ok(h) if h.state == EngineState::Failed => {
                // Deterministic (e.g. the configuration revision it was rebooted with):
                // say why at once; a reboot with a previous revision brings it back.
                let reason = format!(
                    "The engine failed to start after the reboot ({}). Reboot with a previous configuration revision to recover.",
                    h.detail()
                );
                self.fail_reboot(&id, &reason).await
            }
            Ok(h) if h.state == EngineState::Ready => {
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
                Ok(StepOutcome::Stable)
            }
            _ if chrono::Utc::now() - requested
                > chrono::Duration::from_std(self.config.create_timeout)? =>
            {
                let reason = format!(
                    "The engine did not come back within {} s of the reboot.",
                    self.config.create_timeout.as_secs()
                );
                self.fail_reboot(&id, &reason).await
            }
            _ => Ok(StepOutcome::Waiting),
        }
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

    /// Health of a broker that should be serving: an engine that has not been ready for
    /// `unhealthy_after` turns RUNNING into CRITICAL_ACTION_REQUIRED (with the reason);
    /// a ready one clears the mark and returns to RUNNING. Returns whether it is ready.
    async fn watch_health(&self, row: &BrokerRow) -> anyhow::Result<bool> {
        let id = row.broker_id();
        let health = self.probe(row).await;
        if matches!(&health, Ok(h) if h.state == EngineState::Ready) {
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
                Ok(h) => h.detail(),
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
        for node in nodes(row)? {
            let spec = self.agent_spec(row, &users, node).await?;
            let base = self.agent_base(&ports, node)?;
            self.agent.put_spec(&base, &token, &spec).await?;
        }
        self.store.users_confirm(&id, seq).await?;
        tracing::info!(broker = %id, "spec applied by the agents");
        Ok(())
    }

    async fn step_creating(&self, row: &BrokerRow) -> anyhow::Result<StepOutcome> {
        let id = row.broker_id();
        let deadline_passed = chrono::Utc::now() - row.created_at
            > chrono::Duration::from_std(self.config.create_timeout)?;
        match self.ensure_up(row).await {
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
        let health = self.probe(row).await;
        match health {
            Ok(h) if h.state == EngineState::Ready => {
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
            Ok(h) if h.state == EngineState::Failed => {
                let reason = format!(
                    "The broker agent could not start the engine ({}).",
                    h.detail()
                );
                self.fail_creation(&id, &reason).await?;
                Ok(StepOutcome::Stable)
            }
            other if deadline_passed => {
                let detail = match other {
                    Ok(h) => h.detail(),
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
        let port = ports
            .iter()
            .find(|p| p.node == node as i32 && p.protocol == AGENT_PROTOCOL)
            .ok_or_else(|| anyhow::anyhow!("no agent port allocated for node {node}"))?;
        let host = match self.config.publish_host.as_str() {
            "0.0.0.0" | "" => "127.0.0.1",
            h => h,
        };
        Ok(format!("http://{host}:{}", port.host_port))
    }

    /// How the broker's engine is doing: `Ready` once every node is ready, else the
    /// state of the first node that is not (or the error reaching its agent).
    async fn probe(&self, row: &BrokerRow) -> anyhow::Result<Health> {
        let token = self.secrets.open(&row.agent_token_enc)?;
        let ports = self.store.broker_ports(&row.broker_id()).await?;
        for node in nodes(row)? {
            let base = self.agent_base(&ports, node)?;
            let report = self.agent.health(&base, &token).await?;
            if report.state != EngineState::Ready {
                return Ok(Health {
                    state: report.state,
                    last_error: report.last_error,
                });
            }
        }
        Ok(Health {
            state: EngineState::Ready,
            last_error: None,
        })
    }

    /// Stops every node's container (absent ones are fine).
    async fn stop_nodes(&self, id: &BrokerId) -> anyhow::Result<()> {
        for node in 0..MAX_NODES {
            self.runtime
                .stop_container(&objects::container_name(id, node), 30)
                .await?;
        }
        Ok(())
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

    /// Ensures the network and, for every node, volume and container exist and the
    /// container runs. A running container means its objects exist: the steady state
    /// costs one inspect per node and no Docker write.
    async fn ensure_up(&self, row: &BrokerRow) -> Result<(), RuntimeError> {
        let id = row.broker_id();
        let failed = |e: anyhow::Error| RuntimeError::Failed {
            context: "building container spec".into(),
            message: format!("{e:#}"),
        };
        for node in nodes(row).map_err(|e| failed(e.into()))? {
            let name = objects::container_name(&id, node);
            if self
                .runtime
                .container_status(&name)
                .await?
                .is_some_and(|s| s.running)
            {
                continue;
            }
            let spec = self.container_spec(row, node).await.map_err(failed)?;
            self.runtime
                .ensure_network(&spec.network, &self.labels(&id, None))
                .await?;
            self.runtime
                .ensure_volume(&spec.volume.0, &self.labels(&id, Some(node)))
                .await?;
            match self.runtime.ensure_container(&spec).await {
                Err(RuntimeError::ImageMissing(image)) => {
                    self.build_image(row, &image).await?;
                    self.runtime.ensure_container(&spec).await?;
                }
                other => other?,
            }
            let running = self
                .runtime
                .container_status(&spec.name)
                .await?
                .is_some_and(|s| s.running);
            if !running {
                tracing::info!(broker = %id, container = %spec.name, "starting container");
                self.runtime.start_container(&spec.name).await?;
            }
        }
        Ok(())
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
        let count = node_count(row.mode()?);
        Ok(AgentSpec {
            broker_id: id.to_string(),
            engine_version: version.name.to_owned(),
            engine: self.engine_spec(row, profile)?,
            node: NodeSpec {
                index: node,
                count,
                peers: (0..count)
                    .filter(|n| *n != node)
                    .map(|n| objects::container_name(&id, n))
                    .collect(),
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
        hosts.extend(nodes(row)?.map(|n| objects::container_name(&id, n)));
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
        let name = objects::container_name(&id, node);
        Ok(ContainerSpec {
            hostname: name.clone(),
            name,
            image: version.image.to_owned(),
            network: objects::network_name(&id),
            labels: self.labels(&id, Some(node)),
            memory_bytes: i64::try_from(memory)?,
            nano_cpus: i64::from(cpus) * 1_000_000_000,
            ports: published,
            publish_host: self.config.publish_host.clone(),
            volume: (objects::volume_name(&id, node), profile.data_dir.to_owned()),
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
        self.runtime
            .remove_network(&objects::network_name(id))
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

/// The node indexes of a broker (0..count for its deployment mode).
fn nodes(row: &BrokerRow) -> Result<std::ops::Range<u32>, crate::error::Error> {
    Ok(0..node_count(row.mode()?))
}

/// What the agents say about the engine: the state of the first node that is not
/// ready (or Ready), with that node's last error.
#[derive(Debug)]
struct Health {
    state: EngineState,
    last_error: Option<String>,
}

impl Health {
    /// For a state reason: the state and, when the agent gave one, its error.
    fn detail(&self) -> String {
        match &self.last_error {
            Some(e) => format!("engine state {:?}: {e}", self.state),
            None => format!("engine state {:?}", self.state),
        }
    }
}
