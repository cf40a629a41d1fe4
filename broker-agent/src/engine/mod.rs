//! The seam between the generic machinery (supervision, readiness, API) and an engine
//! family.
//!
//! An [`EngineDriver`] renders the engine's files before every start and returns the
//! process to run ([`EngineDriver::prepare`]), tells whether the engine really serves
//! its protocol ([`EngineDriver::probe`], [`EngineDriver::liveness`]), applies users and
//! memory limits to a running engine, and may run helpers next to it
//! ([`EngineDriver::start_sidecars`], e.g. ActiveMQ's WebSocket bridge), takes a renewed
//! certificate ([`EngineDriver::apply_tls`]) and explains, from the engine's own output,
//! why it stopped ([`EngineDriver::diagnose_exit`], see [`diagnosis`]). For an
//! active/standby pair on shared storage it also recognises a standby from the engine's
//! output ([`EngineDriver::waits_for_lock`]) and says what a standby can take
//! ([`EngineDriver::stage_users`], [`EngineDriver::standby_tls_endpoints`]).
//! [`driver_for`] picks the implementation from the spec's engine part. The generic
//! modules know only this trait; tests implement it with fakes.
//!
//! Queues and topics ([`EngineDriver::destinations`], [`EngineDriver::send_message`],
//! [`EngineDriver::peek`]) are read and written the engine's own way (RabbitMQ's
//! management API, ActiveMQ's STOMP with the statistics plugin and queue browsers);
//! the API asks only while the engine is Ready. Failures are a [`DestinationError`].
//!
//! Observability ([`crate::metrics`], [`crate::alarms`]): the driver names the CPU
//! metric its engine reports ([`EngineDriver::cpu_metric_name`]), says where the
//! engine's data lives ([`EngineDriver::data_dir`]: disk metrics, the log store),
//! samples the engine ([`EngineDriver::engine_metrics`], asked only while Ready, within
//! the request's time limit), reads the engine's own alarms
//! ([`EngineDriver::engine_alarms`], from the monitor at most every 15 s) and marks its
//! audit log lines in the console output ([`EngineDriver::audit_log_prefix`]).
//!
//! Listener rule shared by both drivers: the TLS listeners (ports in
//! [`agent_contract::ports`]) exist when the spec carries TLS material; the plaintext
//! listeners bind every interface when `spec.plaintext`, and otherwise only the
//! loopback interface, where the agent's own probes and the WebSocket bridge reach them
//! but nothing outside the container can (Docker forwards published ports to the
//! container's own address, not to 127.0.0.1).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use agent_contract::metrics::{names, Sample};
use agent_contract::{
    AgentSpec, Destination, DestinationKind, DestinationName, Engine, EngineAlarm, EngineSpec,
    PeekedMessage, TestMessage, TlsMaterial,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::supervisor::ProcessSpec;

pub mod activemq;
pub mod diagnosis;
pub mod rabbitmq;

pub use diagnosis::Diagnosis;

/// A boxed, sendable future (keeps [`EngineDriver`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Users whose name starts with this are Berth's own (probes, bootstrap) and never come
/// from, nor are removed because of, the spec.
pub const INTERNAL_USER_PREFIX: &str = "berth-internal-";

/// Result of [`EngineDriver::prepare`].
#[derive(Debug)]
pub struct Prepared {
    pub process: ProcessSpec,
    /// The memory limit the config was rendered for.
    pub memory_limit: Option<u64>,
    /// The engine will have exactly the spec's users at this start by itself (a virgin
    /// RabbitMQ node bootstrapped from its config, ActiveMQ's JAAS files), so no
    /// reconciliation is needed before reporting Ready.
    pub users_settled: bool,
}

/// How a change was taken by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveChange {
    /// The running engine uses it now.
    Applied,
    /// The running engine cannot change it; the next start renders it (e.g. a JVM heap).
    /// For a renewed certificate the agent makes that start happen at once (a controlled
    /// restart of the engine process, see [`crate::context`]).
    AtNextStart,
}

/// A TLS listener of the engine (or of a sidecar), checked after a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsEndpoint {
    pub name: &'static str,
    pub addr: SocketAddr,
}

/// Why a destination operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// The queue (or topic) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done (e.g. an operation the engine does not offer).
    #[error("{0}")]
    Unsupported(String),
    /// Talking to the engine failed or it answered something unexpected.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for DestinationError {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(e)
    }
}

/// Engine-specific operations. See the module docs.
pub trait EngineDriver: Send + Sync + 'static {
    /// Which engine this drives.
    fn engine(&self) -> Engine;
    /// Write the engine's files for `spec`; return the process to run. Called before
    /// every (re)start.
    fn prepare(&self, spec: &AgentSpec) -> anyhow::Result<Prepared>;
    /// Protocol-level readiness check (a real handshake or login, not an open port).
    fn probe(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Cheaper, log-quiet check run every few seconds while Ready; defaults to [`probe`].
    ///
    /// [`probe`]: EngineDriver::probe
    fn liveness(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        self.probe()
    }
    /// Make the running engine's users match `spec.users`.
    fn reconcile_users<'a>(&'a self, spec: &'a AgentSpec) -> BoxFuture<'a, anyhow::Result<()>>;
    /// The container memory limit (None = unlimited) or the spec's memory tuning changed:
    /// apply it to the running engine if it can be.
    fn apply_memory_limit<'a>(
        &'a self,
        spec: &'a AgentSpec,
        limit: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<LiveChange>>;
    /// The spec's certificate was renewed (`spec.tls`, replacing `previous`): write the
    /// engine's files for it (same paths, modes and owners as at start) and make the
    /// running engine and sidecars use it if they can (`Applied`; the agent then checks
    /// [`tls_endpoints`](EngineDriver::tls_endpoints) and restarts the engine if one
    /// still serves the old certificate), or say that it takes an engine start
    /// (`AtNextStart`: the agent restarts the engine in place at once).
    fn apply_tls<'a>(
        &'a self,
        spec: &'a AgentSpec,
        previous: &'a TlsMaterial,
    ) -> BoxFuture<'a, anyhow::Result<LiveChange>>;
    /// The TLS listeners that must serve `spec.tls`'s certificate (empty without TLS).
    fn tls_endpoints(&self, spec: &AgentSpec) -> Vec<TlsEndpoint>;
    /// Read the engine's last output lines (of a run that just ended) for the reason it
    /// stopped. The default takes the last lines and never calls it deterministic.
    fn diagnose_exit(&self, output: &[String]) -> Diagnosis {
        diagnosis::generic(output)
    }
    /// Secrets of the driver's own (not in the spec) that must never appear in a
    /// report, e.g. the keystore password.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
    /// Shared-storage topologies: whether the output of the current run (`output`, oldest
    /// line first) says the engine waits for the shared store's lock, i.e. it is a
    /// standby. Asked only while the probe fails on a `Topology::SharedStorage` node; the
    /// default (an engine without shared storage) is `false`.
    fn waits_for_lock(&self, output: &[String]) -> bool {
        let _ = output;
        false
    }
    /// The engine is a standby (alive, waiting for the store's lock, answering nothing):
    /// write `spec.users` where the engine reads them once it becomes active, without
    /// talking to it. `Ok(true)`: it will serve with exactly these users (nothing left
    /// to reconcile); `Ok(false)` (the default): nothing could be done now, the users are
    /// reconciled when it is Ready.
    fn stage_users<'a>(&'a self, spec: &'a AgentSpec) -> BoxFuture<'a, anyhow::Result<bool>> {
        let _ = spec;
        Box::pin(async { Ok(false) })
    }
    /// The TLS listeners that serve `spec.tls`'s certificate while the engine is a
    /// standby (a sidecar's, say; the engine's own are closed then). The default is none.
    fn standby_tls_endpoints(&self, spec: &AgentSpec) -> Vec<TlsEndpoint> {
        let _ = spec;
        Vec::new()
    }
    /// Cluster topologies: the member names the engine sees running right now (its own
    /// included), reported in `HealthReport::cluster_running`. The default (no cluster)
    /// is `None`.
    fn cluster_running(&self) -> BoxFuture<'_, Option<Vec<String>>> {
        Box::pin(async { None })
    }
    /// The engine's queues and topics with depth, consumers and (if measured) rates,
    /// sorted by kind and name; Berth's own and the engine's internal ones left out.
    fn destinations<'a>(
        &'a self,
        spec: &'a AgentSpec,
    ) -> BoxFuture<'a, Result<Vec<Destination>, DestinationError>> {
        let _ = spec;
        Box::pin(async {
            Err(DestinationError::Unsupported(
                "not offered by this engine".into(),
            ))
        })
    }
    /// Send `message` to the queue or topic `name`.
    fn send_message<'a>(
        &'a self,
        spec: &'a AgentSpec,
        kind: DestinationKind,
        name: &'a DestinationName,
        message: &'a TestMessage,
    ) -> BoxFuture<'a, Result<(), DestinationError>> {
        let _ = (spec, kind, name, message);
        Box::pin(async {
            Err(DestinationError::Unsupported(
                "not offered by this engine".into(),
            ))
        })
    }
    /// Up to `count` messages from the head of queue `name`, left in the queue.
    fn peek<'a>(
        &'a self,
        spec: &'a AgentSpec,
        name: &'a DestinationName,
        count: u32,
    ) -> BoxFuture<'a, Result<Vec<PeekedMessage>, DestinationError>> {
        let _ = (spec, name, count);
        Box::pin(async {
            Err(DestinationError::Unsupported(
                "not offered by this engine".into(),
            ))
        })
    }
    /// Amazon MQ's name of the container CPU metric for this engine.
    fn cpu_metric_name(&self) -> &'static str {
        names::CPU_UTILIZATION
    }
    /// The engine's data directory (disk metrics; the log store lives under it).
    /// `None` (the default): the engine has none.
    fn data_dir(&self) -> Option<PathBuf> {
        None
    }
    /// One sample of the engine's own metrics (see [`agent_contract::metrics`]); asked
    /// only while Ready. The default has none.
    fn engine_metrics<'a>(
        &'a self,
        spec: &'a AgentSpec,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Sample>>> {
        let _ = spec;
        Box::pin(async { anyhow::bail!("no engine metrics for this engine") })
    }
    /// The alarms the engine raises right now (memory, disk, store full …); asked while
    /// Ready, at most every few seconds. The default has none.
    fn engine_alarms<'a>(
        &'a self,
        spec: &'a AgentSpec,
    ) -> BoxFuture<'a, anyhow::Result<Vec<EngineAlarm>>> {
        let _ = spec;
        Box::pin(async { Ok(Vec::new()) })
    }
    /// The prefix the engine's console output puts before an audit log line (see
    /// [`crate::enginelog`]); `None` (the default): no audit log.
    fn audit_log_prefix(&self) -> Option<&'static str> {
        None
    }
    /// The container's memory limit right now.
    fn current_memory_limit(&self) -> Option<u64> {
        crate::cgroup::read_memory_limit()
    }
    /// Bind and start helpers that run next to the engine until `shutdown` turns true.
    /// Called once, before the engine first starts; an error (e.g. a port in use) stops
    /// the agent.
    fn start_sidecars(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> BoxFuture<'_, anyhow::Result<Vec<JoinHandle<()>>>> {
        let _ = shutdown;
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// The driver for `spec.engine`.
pub fn driver_for(spec: &AgentSpec) -> anyhow::Result<Arc<dyn EngineDriver>> {
    Ok(match &spec.engine {
        EngineSpec::Rabbitmq(_) => Arc::new(rabbitmq::RabbitDriver::new(
            rabbitmq::RabbitPaths::default(),
            spec,
        )?),
        EngineSpec::Activemq(_) => Arc::new(activemq::ActivemqDriver::new(
            activemq::AmqPaths::default(),
            spec,
        )?),
    })
}

/// What a running broker's spec may not change: the engine, and the engine-specific
/// identity (RabbitMQ's Erlang cookie, ActiveMQ's broker name). `Some(reason)` if `new`
/// changes one of them.
pub fn immutable_change(current: &EngineSpec, new: &EngineSpec) -> Option<&'static str> {
    match (current, new) {
        (EngineSpec::Rabbitmq(a), EngineSpec::Rabbitmq(b)) => (a.erlang_cookie != b.erlang_cookie)
            .then_some("erlang_cookie cannot be changed on a running broker"),
        (EngineSpec::Activemq(a), EngineSpec::Activemq(b)) => (a.broker_name != b.broker_name)
            .then_some("broker_name cannot be changed on a running broker"),
        _ => Some("engine cannot be changed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sample_activemq_spec, sample_spec};

    #[test]
    fn identity_changes_are_refused() {
        let rabbit = sample_spec().engine;
        let amq = sample_activemq_spec().engine;
        assert_eq!(immutable_change(&rabbit, &rabbit), None);
        assert_eq!(immutable_change(&amq, &amq), None);
        assert!(immutable_change(&rabbit, &amq).unwrap().contains("engine"));
        let mut other = rabbit.clone();
        if let EngineSpec::Rabbitmq(r) = &mut other {
            r.erlang_cookie = "OTHER".into();
        }
        assert!(immutable_change(&rabbit, &other)
            .unwrap()
            .contains("cookie"));
        let mut tuned = rabbit.clone();
        if let EngineSpec::Rabbitmq(r) = &mut tuned {
            r.memory_high_watermark = Some(0.5);
        }
        assert_eq!(immutable_change(&rabbit, &tuned), None);
        let mut renamed = amq.clone();
        if let EngineSpec::Activemq(a) = &mut renamed {
            a.broker_name = "other".into();
        }
        assert!(immutable_change(&amq, &renamed)
            .unwrap()
            .contains("broker_name"));
    }
}
