//! The RabbitMQ [`EngineDriver`]: writes `rabbitmq.conf`, `enabled_plugins`, the Erlang
//! cookie and (with TLS material) the PEM files, starts `rabbitmq-server` as the
//! `rabbitmq` user, probes it over AMQP and manages users and the memory watermark of the
//! running node with `rabbitmqctl`.
//!
//! - [`conf`]: rendering the config files;
//! - [`ctl`]: `rabbitmqctl` (user reconciliation, watermark);
//! - [`mgmt`]: cluster membership from the management API;
//! - [`metrics`]: `GET /metrics` and the memory/disk alarms from the management API;
//! - [`probe`]: the AMQP handshake readiness probe and the quiet liveness helpers.
//!
//! **Cluster nodes** (`spec.node.topology == Cluster`, RabbitMQ 4.x; CLUSTER_MULTI_AZ):
//! the node is `rabbit@<spec.node.hostname>` (the container name, which Docker's
//! embedded DNS resolves for the other members; the container hostname when empty) and
//! its config lists every member for classic-config peer discovery (see [`conf`]). A
//! virgin node that joins an existing cluster resets its own database and takes the
//! cluster's, so a `default_user` bootstrap would be lost on every node but the seed;
//! instead every cluster node imports the spec's users (and its own internal monitoring
//! user, [`ctl::MonitorUser`]) from a definitions file at every boot, after joining and
//! before its listeners open (see [`conf`]). So a *virgin* cluster node has exactly the
//! spec's users once it answers AMQP (there is nothing to delete in a new cluster) and
//! skips the reconciliation, which through `rabbitmqctl` costs 10–14 s while three nodes
//! boot on two CPUs; a node restarted on its volume reconciles as usual (users the spec
//! dropped meanwhile must go). With the monitoring user, [`EngineDriver::cluster_running`]
//! asks the management API which members are running. Readiness stays per node: its own
//! AMQP answers and the users are in place; the control plane calls the broker formed
//! when every node is Ready and reports every member running.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_contract::ports::rabbitmq as ports;
use agent_contract::{
    AgentSpec, Destination, DestinationKind, DestinationName, Engine, EngineSpec, PeekedMessage,
    RabbitmqSpec, TestMessage, TlsMaterial, Topology,
};
use anyhow::Context;

use crate::engine::{
    BoxFuture, DestinationError, Diagnosis, EngineDriver, LiveChange, Prepared, TlsEndpoint,
};
use crate::fsutil::{self, Owner};
use crate::supervisor::ProcessSpec;

pub mod conf;
pub mod ctl;
pub mod destinations;
pub mod diagnose;
pub mod metrics;
pub mod mgmt;
pub mod probe;

use conf::{ClusterConf, TlsFiles, PROMETHEUS_PORT};
use ctl::{MonitorUser, RabbitCtl};

/// OS user the engine runs as.
pub const ENGINE_USER: &str = "rabbitmq";

/// The RabbitMQ part of `spec`, or an error for another engine.
pub fn rabbit_spec(spec: &AgentSpec) -> anyhow::Result<&RabbitmqSpec> {
    match &spec.engine {
        EngineSpec::Rabbitmq(r) => Ok(r),
        other => anyhow::bail!("the RabbitMQ driver got a {:?} spec", other.engine()),
    }
}

/// `rabbit@<short hostname>`.
pub fn node_name(hostname: &str) -> String {
    let short = hostname.split('.').next().unwrap_or(hostname);
    format!("rabbit@{short}")
}

/// The complete environment of the engine and of `rabbitmqctl`.
///
/// `TZ` is set (to the container's zone, UTC): without it glibc looks at
/// `/etc/localtime` for every local time the VM takes — each log line's — and that
/// path goes through the storage driver (counted: ~2,000 of a node's boot, a fifth of
/// the FUSE requests a boot makes under fuse-overlayfs).
pub fn engine_env(hostname: &str, data_dir: &Path) -> Vec<(String, String)> {
    vec![
        ("HOME".into(), data_dir.display().to_string()),
        ("LANG".into(), "C.UTF-8".into()),
        ("LC_ALL".into(), "C.UTF-8".into()),
        ("TZ".into(), "UTC".into()),
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("RABBITMQ_NODENAME".into(), node_name(hostname)),
    ]
}

/// Where RabbitMQ's files and programs are (overridable for tests).
#[derive(Debug, Clone)]
pub struct RabbitPaths {
    pub conf_dir: PathBuf,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub server: PathBuf,
    pub ctl: PathBuf,
    pub setpriv: PathBuf,
    /// Private directory (root, 0711) for short-lived files handed to the CLI.
    pub scratch_dir: PathBuf,
}

impl Default for RabbitPaths {
    fn default() -> Self {
        RabbitPaths {
            conf_dir: "/etc/rabbitmq".into(),
            data_dir: "/var/lib/rabbitmq".into(),
            log_dir: "/var/log/rabbitmq".into(),
            server: "/usr/lib/rabbitmq/bin/rabbitmq-server".into(),
            ctl: "/usr/lib/rabbitmq/bin/rabbitmqctl".into(),
            setpriv: "/usr/bin/setpriv".into(),
            scratch_dir: "/run/berth".into(),
        }
    }
}

impl RabbitPaths {
    /// A cluster node's boot definitions (see [`conf`]).
    pub fn definitions(&self) -> PathBuf {
        self.conf_dir.join("definitions.json")
    }

    /// Where the TLS PEM files go.
    pub fn tls_files(&self) -> TlsFiles {
        let dir = self.conf_dir.join("tls");
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// A node that has never booted on this volume: RabbitMQ keeps its database under
/// `mnesia/` in the data directory.
pub fn is_virgin(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("mnesia")).map_or(true, |mut d| d.next().is_none())
}

/// The host name this node goes by: a cluster member uses the name the control plane
/// gave it (`spec.node.hostname`, the container name the other members resolve), every
/// other node (and a cluster spec without one) the container's hostname.
pub fn own_hostname(spec: &AgentSpec, container_hostname: &str) -> String {
    if spec.node.topology == Topology::Cluster && !spec.node.hostname.is_empty() {
        spec.node.hostname.clone()
    } else {
        container_hostname.to_string()
    }
}

/// Write rabbitmq.conf, enabled_plugins, the TLS files and the cookie, and hand the data
/// directory to the engine user. `config_owner` owns the config files (root:rabbitmq in
/// production), `engine_owner` the data directory and cookie; `cluster` adds the cluster
/// keys and the boot definitions (spec users and `monitor`).
pub fn write_engine_files(
    spec: &AgentSpec,
    memory_limit: Option<u64>,
    paths: &RabbitPaths,
    config_owner: Owner,
    engine_owner: Owner,
    cluster: Option<&ClusterConf>,
    monitor: Option<&MonitorUser>,
) -> anyhow::Result<()> {
    let rabbit = rabbit_spec(spec)?;
    match cluster {
        Some(c) => {
            let defs = serde_json::to_vec_pretty(&ctl::boot_definitions(spec, monitor))?;
            // Passwords: readable by the engine's group only, like rabbitmq.conf.
            fsutil::write_atomic(&c.definitions, &defs, 0o640, Some(config_owner))?;
        }
        None => {
            let _ = std::fs::remove_file(paths.definitions());
        }
    }
    let tls_files = paths.tls_files();
    let tls = match &spec.tls {
        Some(material) => {
            write_tls_files(material, &tls_files, config_owner)?;
            Some(&tls_files)
        }
        None => {
            let _ = std::fs::remove_dir_all(tls_files.cert.parent().unwrap_or(&paths.conf_dir));
            None
        }
    };
    fsutil::write_atomic(
        &paths.conf_dir.join("rabbitmq.conf"),
        conf::render_rabbitmq_conf(spec, rabbit, memory_limit, tls, cluster).as_bytes(),
        0o640,
        Some(config_owner),
    )?;
    fsutil::write_atomic(
        &paths.conf_dir.join("enabled_plugins"),
        conf::enabled_plugins(&spec.engine_version).as_bytes(),
        0o644,
        Some(config_owner),
    )?;

    std::fs::create_dir_all(&paths.data_dir)
        .with_context(|| format!("creating {}", paths.data_dir.display()))?;
    let cookie_path = paths.data_dir.join(".erlang.cookie");
    fsutil::write_atomic(
        &cookie_path,
        rabbit.erlang_cookie.as_bytes(),
        0o400,
        Some(engine_owner),
    )?;
    fsutil::chown_recursive(&paths.data_dir, engine_owner)?;
    // Scratch dir: traversable but not listable by the engine user; emptied at every
    // start so a crash can never leave a definitions file (with passwords) behind.
    let _ = std::fs::remove_dir_all(&paths.scratch_dir);
    fsutil::ensure_dir(&paths.scratch_dir, 0o711, None)?;
    if paths.log_dir.exists() {
        fsutil::chown_recursive(&paths.log_dir, engine_owner)?;
    }
    Ok(())
}

/// Write the PEM files (root:rabbitmq 0640 in a 0750 directory: readable by the
/// engine's group only; the key never leaves this directory), each replaced atomically
/// at the same path. The certificate goes before the key, right after each other.
pub fn write_tls_files(
    material: &TlsMaterial,
    files: &TlsFiles,
    config_owner: Owner,
) -> anyhow::Result<()> {
    if let Some(dir) = files.cert.parent() {
        fsutil::ensure_dir(dir, 0o750, Some(config_owner))?;
    }
    for (path, pem) in [
        (&files.ca, &material.ca_pem),
        (&files.cert, &material.cert_pem),
        (&files.key, &material.key_pem),
    ] {
        fsutil::write_atomic(path, pem.as_bytes(), 0o640, Some(config_owner))?;
    }
    Ok(())
}

/// The TLS listeners of a node with TLS material (all bound on every interface).
pub fn tls_endpoints() -> Vec<TlsEndpoint> {
    let at = |name, port| TlsEndpoint {
        name,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    vec![
        at("amqps", ports::AMQPS),
        at("mqtts", ports::MQTTS),
        at("stomps", ports::STOMPS),
        at("web-stomp (tls)", ports::WEB_STOMPS),
        at("web-mqtt (tls)", ports::WEB_MQTTS),
        at("management (https)", ports::MANAGEMENT_TLS),
    ]
}

/// Erlang flags of the server: its schedulers do not busy-wait for work (`+sbwt none`
/// for the CPU, dirty CPU and dirty IO schedulers). Spinning idle schedulers burn the
/// CPU quota that the other nodes on a shared host need to boot; RabbitMQ recommends
/// this where CPUs are shared.
pub const SERVER_ERL_ARGS: &str = "+sbwt none +sbwtdcpu none +sbwtdio none";

/// The engine command: `setpriv` drops to the rabbitmq user and execs the server (no
/// PAM session, no extra process left between the agent and the server's sh wrapper).
pub fn engine_process(paths: &RabbitPaths, hostname: &str) -> ProcessSpec {
    let mut env = engine_env(hostname, &paths.data_dir);
    env.push((
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS".into(),
        SERVER_ERL_ARGS.into(),
    ));
    ProcessSpec {
        program: paths.setpriv.clone(),
        args: vec![
            format!("--reuid={ENGINE_USER}"),
            format!("--regid={ENGINE_USER}"),
            "--init-groups".into(),
            "--".into(),
            paths.server.display().to_string(),
        ],
        env,
        cwd: Some(paths.data_dir.clone()),
    }
}

/// The RabbitMQ [`EngineDriver`].
pub struct RabbitDriver {
    paths: RabbitPaths,
    hostname: String,
    config_owner: Owner,
    engine_owner: Owner,
    amqp_addr: SocketAddr,
    ctl: RabbitCtl,
    /// The internal user for [`mgmt`] (cluster membership, destinations). Cluster
    /// nodes import it at boot; every node reconciles it with the spec users, and a
    /// virgin single node (whose users come from rabbitmq.conf) gets it on first use.
    monitor: Option<MonitorUser>,
    cluster: bool,
    /// Serialises putting the monitoring user in place on first use.
    monitor_lock: tokio::sync::Mutex<()>,
}

/// Management listener the agent asks for cluster membership.
const MGMT_ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    ports::MANAGEMENT,
);
/// Upper bound of one management request of the destinations API.
const DESTINATIONS_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest queue or exchange list read (a few thousand queues).
const MAX_LIST_ANSWER: usize = 32 * 1024 * 1024;
/// Largest other answer read.
const MAX_ANSWER: usize = 64 * 1024;

fn bad_answer(e: String) -> DestinationError {
    DestinationError::Failed(anyhow::anyhow!("management API: unexpected answer: {e}"))
}

/// Upper bound of one management request of `GET /metrics` (three per report).
const METRICS_TIMEOUT: Duration = Duration::from_millis(1400);
/// Largest queue list read for metrics (columns only: ~150 bytes a queue).
const MAX_METRICS_ANSWER: usize = 4 * 1024 * 1024;

/// Upper bound of one [`EngineDriver::cluster_running`] call.
const CLUSTER_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

impl RabbitDriver {
    /// Resolve the engine user and hostname; fails if the image lacks the `rabbitmq` user.
    /// The topology is fixed for the driver's life (it decides the node name).
    pub fn new(paths: RabbitPaths, spec: &AgentSpec) -> anyhow::Result<RabbitDriver> {
        let engine_owner = Owner::lookup_user(ENGINE_USER)?;
        let config_owner = Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: engine_owner.gid,
        };
        let container_hostname = nix::unistd::gethostname()
            .context("reading the hostname")?
            .to_string_lossy()
            .into_owned();
        let hostname = own_hostname(spec, &container_hostname);
        let monitor = Some(MonitorUser::generate(&hostname)?);
        let cluster = spec.node.topology == Topology::Cluster;
        let env = engine_env(&hostname, &paths.data_dir);
        let ctl = RabbitCtl {
            setpriv: paths.setpriv.clone(),
            ctl: paths.ctl.clone(),
            run_as: ENGINE_USER.into(),
            node: node_name(&hostname),
            env,
            cwd: paths.data_dir.clone(),
            timeout: Duration::from_secs(60),
            scratch_dir: paths.scratch_dir.clone(),
            file_owner: Some(engine_owner),
        };
        Ok(RabbitDriver {
            // Plaintext AMQP always listens on loopback (publicly only if asked).
            amqp_addr: SocketAddr::from(([127, 0, 0, 1], ports::AMQP)),
            paths,
            hostname,
            config_owner,
            engine_owner,
            ctl,
            monitor,
            cluster,
            monitor_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// A management API request as the monitoring user. A 401 on a node whose users
    /// came from rabbitmq.conf means the user is not there yet: it is put in place
    /// (one reconciliation with the spec's users) and the request tried once more.
    async fn mgmt(
        &self,
        spec: &AgentSpec,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        max: usize,
    ) -> Result<Vec<u8>, DestinationError> {
        self.mgmt_with(Some(spec), method, path, body, max, DESTINATIONS_TIMEOUT)
            .await
    }

    /// [`mgmt`](Self::mgmt) within `timeout` per attempt; without `spec` a 401 is not
    /// repaired (a metrics request must stay short: the monitor's alarm checks put the
    /// user in place).
    async fn mgmt_with(
        &self,
        spec: Option<&AgentSpec>,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, DestinationError> {
        let monitor = self
            .monitor
            .as_ref()
            .ok_or_else(|| DestinationError::Unsupported("no monitoring user".into()))?;
        let call = || {
            mgmt::request(
                MGMT_ADDR,
                method,
                path,
                body,
                &monitor.name,
                &monitor.password,
                timeout,
                max,
            )
        };
        let first = call().await;
        let result = match (first, spec) {
            (Err(mgmt::MgmtError::Status { code: 401, .. }), Some(spec)) => {
                {
                    let _guard = self.monitor_lock.lock().await;
                    // Another request may have created it meanwhile.
                    if let Err(mgmt::MgmtError::Status { code: 401, .. }) = call().await {
                        tracing::info!("creating the monitoring user for the management API");
                        self.ctl
                            .reconcile_users(spec, Some(monitor))
                            .await
                            .map_err(|e| DestinationError::Failed(e.into()))?;
                    }
                }
                call().await
            }
            (other, _) => other,
        };
        result.map_err(|e| match e {
            mgmt::MgmtError::Status { code: 404, status } => DestinationError::NotFound(status),
            other => DestinationError::Failed(other.into()),
        })
    }

    /// A short GET of the metrics (no 401 repair), its body.
    async fn metrics_get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self
            .mgmt_with(None, "GET", path, None, MAX_METRICS_ANSWER, METRICS_TIMEOUT)
            .await?)
    }

    /// `setpriv … rabbitmq-server`, with the engine environment.
    pub fn process(&self) -> ProcessSpec {
        engine_process(&self.paths, &self.hostname)
    }
}

impl EngineDriver for RabbitDriver {
    fn engine(&self) -> Engine {
        Engine::Rabbitmq
    }

    fn prepare(&self, spec: &AgentSpec) -> anyhow::Result<Prepared> {
        let memory_limit = self.current_memory_limit();
        let virgin = is_virgin(&self.paths.data_dir);
        let cluster = conf::cluster_conf(spec, &self.hostname, &self.paths.definitions());
        if cluster.is_some() && spec.engine_version.starts_with("3.") {
            anyhow::bail!(
                "RabbitMQ {} cannot run as a cluster node here (clusters need 4.x)",
                spec.engine_version
            );
        }
        write_engine_files(
            spec,
            memory_limit,
            &self.paths,
            self.config_owner,
            self.engine_owner,
            cluster.as_ref(),
            self.monitor.as_ref(),
        )
        .context("preparing RabbitMQ files")?;
        if let Some(c) = &cluster {
            tracing::info!(node = %node_name(&self.hostname), members = ?c.members, "rendered the cluster config");
        }
        let fraction = conf::watermark_fraction(rabbit_spec(spec)?);
        match memory_limit {
            Some(limit) => tracing::info!(
                limit_bytes = limit,
                watermark_bytes = conf::watermark_bytes(limit, fraction),
                tls = spec.tls.is_some(),
                "rendered rabbitmq.conf for the container memory limit"
            ),
            None => tracing::info!(
                fraction,
                tls = spec.tls.is_some(),
                "rendered rabbitmq.conf (no memory limit found)"
            ),
        }
        Ok(Prepared {
            process: self.process(),
            memory_limit,
            // A virgin node gets exactly the spec's users: a single node from default_user
            // (if it can be written there), a cluster node from its boot definitions.
            users_settled: virgin
                && (cluster.is_some() || conf::bootstraps_exactly_the_spec_users(spec)),
        })
    }

    fn probe(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            probe::amqp_handshake(self.amqp_addr, Duration::from_secs(3)).await?;
            Ok(())
        })
    }

    fn liveness(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let timeout = Duration::from_secs(3);
            probe::tcp_accepts(self.amqp_addr, timeout).await?;
            let prometheus = SocketAddr::new(self.amqp_addr.ip(), PROMETHEUS_PORT);
            probe::http_responds(prometheus, "/berth-agent-liveness", timeout).await?;
            Ok(())
        })
    }

    fn reconcile_users<'a>(&'a self, spec: &'a AgentSpec) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let changes = self
                .ctl
                .reconcile_users(spec, self.monitor.as_ref())
                .await?;
            let names: Vec<&str> = spec.users.iter().map(|u| u.username.as_str()).collect();
            tracing::info!(
                users = ?names,
                added = ?changes.added,
                deleted = ?changes.deleted,
                "users reconciled"
            );
            Ok(())
        })
    }

    fn apply_memory_limit<'a>(
        &'a self,
        spec: &'a AgentSpec,
        limit: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<LiveChange>> {
        Box::pin(async move {
            let fraction = conf::watermark_fraction(rabbit_spec(spec)?);
            let absolute = limit.map(|l| conf::watermark_bytes(l, fraction));
            self.ctl.set_watermark(absolute, fraction).await?;
            Ok(LiveChange::Applied)
        })
    }

    /// Rewrite the PEM files, then `ssl:clear_pem_cache()`: Erlang's ssl reads the
    /// files of `ssl_options` / `*.ssl.*` through its PEM cache at every handshake, so
    /// every TLS listener (AMQPS, MQTTS, STOMPS and the cowboy ones: Web-STOMP, Web-MQTT,
    /// management) serves the new certificate to new connections; open ones keep theirs.
    fn apply_tls<'a>(
        &'a self,
        spec: &'a AgentSpec,
        _previous: &'a TlsMaterial,
    ) -> BoxFuture<'a, anyhow::Result<LiveChange>> {
        Box::pin(async move {
            let material = spec.tls.as_ref().context("the spec has no TLS material")?;
            write_tls_files(material, &self.paths.tls_files(), self.config_owner)?;
            self.ctl.clear_pem_cache().await?;
            Ok(LiveChange::Applied)
        })
    }

    fn tls_endpoints(&self, spec: &AgentSpec) -> Vec<TlsEndpoint> {
        if spec.tls.is_some() {
            tls_endpoints()
        } else {
            Vec::new()
        }
    }

    fn diagnose_exit(&self, output: &[String]) -> Diagnosis {
        diagnose::diagnose(output)
    }

    fn secrets(&self) -> Vec<String> {
        self.monitor.iter().map(|m| m.password.clone()).collect()
    }

    fn cpu_metric_name(&self) -> &'static str {
        agent_contract::metrics::names::SYSTEM_CPU_UTILIZATION
    }

    fn data_dir(&self) -> Option<PathBuf> {
        Some(self.paths.data_dir.clone())
    }

    /// See [`metrics`]: the overview, this node and the queues, asked at once.
    fn engine_metrics<'a>(
        &'a self,
        _spec: &'a AgentSpec,
    ) -> BoxFuture<'a, anyhow::Result<Vec<agent_contract::metrics::Sample>>> {
        Box::pin(async move {
            let node = metrics::node_path(&self.ctl.node);
            let (overview, node, queues) = tokio::join!(
                self.metrics_get(metrics::OVERVIEW_PATH),
                self.metrics_get(&node),
                self.metrics_get(metrics::QUEUES_PATH),
            );
            let mut out = metrics::parse_overview(&overview?).map_err(anyhow::Error::msg)?;
            out.extend(metrics::node_samples(
                &metrics::parse_node(&node?).map_err(anyhow::Error::msg)?,
            ));
            out.extend(metrics::parse_queues(&queues?).map_err(anyhow::Error::msg)?);
            Ok(out)
        })
    }

    /// The memory and disk alarms of this node (one request; puts the monitoring user
    /// in place if the node lacks it).
    fn engine_alarms<'a>(
        &'a self,
        spec: &'a AgentSpec,
    ) -> BoxFuture<'a, anyhow::Result<Vec<agent_contract::EngineAlarm>>> {
        Box::pin(async move {
            let body = self
                .mgmt_with(
                    Some(spec),
                    "GET",
                    &metrics::node_path(&self.ctl.node),
                    None,
                    MAX_ANSWER,
                    METRICS_TIMEOUT,
                )
                .await?;
            let node = metrics::parse_node(&body).map_err(anyhow::Error::msg)?;
            Ok(metrics::node_alarms(&node))
        })
    }

    fn destinations<'a>(
        &'a self,
        spec: &'a AgentSpec,
    ) -> BoxFuture<'a, Result<Vec<Destination>, DestinationError>> {
        Box::pin(async move {
            let queues = self
                .mgmt(spec, "GET", "/api/queues/%2F", None, MAX_LIST_ANSWER)
                .await?;
            let mut list = destinations::parse_queues(&queues).map_err(bad_answer)?;
            let exchanges = self
                .mgmt(spec, "GET", "/api/exchanges/%2F", None, MAX_LIST_ANSWER)
                .await?;
            list.extend(destinations::parse_topic_exchanges(&exchanges).map_err(bad_answer)?);
            list.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
            Ok(list)
        })
    }

    fn send_message<'a>(
        &'a self,
        spec: &'a AgentSpec,
        kind: DestinationKind,
        name: &'a DestinationName,
        message: &'a TestMessage,
    ) -> BoxFuture<'a, Result<(), DestinationError>> {
        Box::pin(async move {
            let (exchange, routing_key) = match kind {
                DestinationKind::Queue => ("amq.default".to_owned(), name.as_str()),
                DestinationKind::Topic => (destinations::encode_segment(name.as_str()), ""),
            };
            let body = serde_json::to_vec(&destinations::publish_body(routing_key, message))
                .map_err(|e| DestinationError::Failed(e.into()))?;
            let path = format!("/api/exchanges/%2F/{exchange}/publish");
            let answer = self
                .mgmt(spec, "POST", &path, Some(&body), MAX_ANSWER)
                .await
                .map_err(|e| match e {
                    DestinationError::NotFound(_) => {
                        DestinationError::NotFound(format!("no {kind} named {name}"))
                    }
                    other => other,
                })?;
            match destinations::parse_routed(&answer).map_err(bad_answer)? {
                true => Ok(()),
                false if kind == DestinationKind::Queue => {
                    Err(DestinationError::NotFound(format!("no queue named {name}")))
                }
                // a topic without subscribers drops the message, as topics do
                false => Ok(()),
            }
        })
    }

    fn peek<'a>(
        &'a self,
        spec: &'a AgentSpec,
        name: &'a DestinationName,
        count: u32,
    ) -> BoxFuture<'a, Result<Vec<PeekedMessage>, DestinationError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&destinations::get_body(count))
                .map_err(|e| DestinationError::Failed(e.into()))?;
            let path = format!(
                "/api/queues/%2F/{}/get",
                destinations::encode_segment(name.as_str())
            );
            let answer = self
                .mgmt(spec, "POST", &path, Some(&body), MAX_LIST_ANSWER)
                .await
                .map_err(|e| match e {
                    DestinationError::NotFound(_) => {
                        DestinationError::NotFound(format!("no queue named {name}"))
                    }
                    other => other,
                })?;
            destinations::parse_get(&answer).map_err(bad_answer)
        })
    }

    /// Cluster nodes: the running members from the management API (≤ 2 s; None when the
    /// node does not answer yet or the monitoring user is not in place yet).
    fn cluster_running(&self) -> BoxFuture<'_, Option<Vec<String>>> {
        Box::pin(async move {
            if !self.cluster {
                return None;
            }
            let monitor = self.monitor.as_ref()?;
            match mgmt::running_nodes(
                MGMT_ADDR,
                &monitor.name,
                &monitor.password,
                CLUSTER_STATUS_TIMEOUT,
            )
            .await
            {
                Ok(nodes) => Some(nodes),
                Err(e) => {
                    tracing::debug!(error = %e, "cluster membership not available");
                    None
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sample_spec, sample_tls};

    #[test]
    fn node_name_uses_short_hostname() {
        assert_eq!(node_name("berth-b-1"), "rabbit@berth-b-1");
        assert_eq!(node_name("host.example.org"), "rabbit@host");
        let env = engine_env("h", Path::new("/var/lib/rabbitmq"));
        assert!(env.contains(&("HOME".into(), "/var/lib/rabbitmq".into())));
        assert!(env.contains(&("LC_ALL".into(), "C.UTF-8".into())));
        assert!(env.contains(&("RABBITMQ_NODENAME".into(), "rabbit@h".into())));
        assert!(env.contains(&("TZ".into(), "UTC".into())));
    }

    #[test]
    fn engine_runs_through_setpriv() {
        let p = engine_process(&RabbitPaths::default(), "h");
        assert_eq!(p.program, PathBuf::from("/usr/bin/setpriv"));
        assert_eq!(
            p.args,
            vec![
                "--reuid=rabbitmq",
                "--regid=rabbitmq",
                "--init-groups",
                "--",
                "/usr/lib/rabbitmq/bin/rabbitmq-server"
            ]
        );
        assert_eq!(p.cwd, Some(PathBuf::from("/var/lib/rabbitmq")));
        // Idle schedulers do not spin (the server only: the CLI keeps its defaults).
        assert!(p.env.contains(&(
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS".into(),
            "+sbwt none +sbwtdcpu none +sbwtdio none".into()
        )));
        assert!(!engine_env("h", Path::new("/var/lib/rabbitmq"))
            .iter()
            .any(|(k, _)| k == "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"));
    }

    fn test_paths(dir: &Path) -> RabbitPaths {
        RabbitPaths {
            conf_dir: dir.join("etc"),
            data_dir: dir.join("data"),
            log_dir: dir.join("log"),
            scratch_dir: dir.join("run"),
            ..RabbitPaths::default()
        }
    }

    #[test]
    fn writes_files_with_modes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = test_paths(dir.path());
        let me = Owner::current();
        std::fs::create_dir_all(paths.data_dir.join("mnesia")).unwrap();
        // An existing, read-only cookie is replaced.
        let cookie = paths.data_dir.join(".erlang.cookie");
        std::fs::write(&cookie, "OLD").unwrap();
        std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(0o400))
            .unwrap();

        write_engine_files(&sample_spec(), Some(1 << 30), &paths, me, me, None, None).unwrap();

        let conf = paths.conf_dir.join("rabbitmq.conf");
        assert_eq!(std::fs::metadata(&conf).unwrap().mode() & 0o777, 0o640);
        assert!(std::fs::read_to_string(&conf)
            .unwrap()
            .contains("429496729"));
        assert_eq!(
            std::fs::read_to_string(paths.conf_dir.join("enabled_plugins")).unwrap(),
            conf::ENABLED_PLUGINS
        );
        assert_eq!(std::fs::read_to_string(&cookie).unwrap(), "COOKIEVALUE1234");
        assert_eq!(std::fs::metadata(&cookie).unwrap().mode() & 0o777, 0o400);
        assert!(!paths.conf_dir.join("tls").exists());
    }

    #[test]
    fn tls_material_is_written_and_referenced() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = test_paths(dir.path());
        let me = Owner::current();
        let mut spec = sample_spec();
        spec.tls = Some(sample_tls());
        write_engine_files(&spec, None, &paths, me, me, None, None).unwrap();
        let files = paths.tls_files();
        for f in [&files.ca, &files.cert, &files.key] {
            assert_eq!(std::fs::metadata(f).unwrap().mode() & 0o777, 0o640, "{f:?}");
        }
        assert_eq!(
            std::fs::read_to_string(&files.key).unwrap(),
            sample_tls().key_pem
        );
        let conf = std::fs::read_to_string(paths.conf_dir.join("rabbitmq.conf")).unwrap();
        assert!(conf.contains(&format!("ssl_options.keyfile = {}", files.key.display())));
        // TLS removed from the spec: the files go too
        write_engine_files(&sample_spec(), None, &paths, me, me, None, None).unwrap();
        assert!(!files.key.exists());
    }

    #[test]
    fn renewed_pem_files_replace_the_old_ones_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = test_paths(dir.path());
        let me = Owner::current();
        let mut spec = sample_spec();
        spec.tls = Some(sample_tls());
        write_engine_files(&spec, None, &paths, me, me, None, None).unwrap();
        let files = paths.tls_files();
        let conf_before = std::fs::read_to_string(paths.conf_dir.join("rabbitmq.conf")).unwrap();

        let renewed = crate::testutil::second_tls();
        write_tls_files(&renewed, &files, me).unwrap();
        assert_eq!(
            std::fs::read_to_string(&files.cert).unwrap(),
            renewed.cert_pem
        );
        assert_eq!(
            std::fs::read_to_string(&files.key).unwrap(),
            renewed.key_pem
        );
        for f in [&files.ca, &files.cert, &files.key] {
            let meta = std::fs::metadata(f).unwrap();
            assert_eq!(meta.mode() & 0o777, 0o640, "{f:?}");
            assert_eq!((meta.uid(), meta.gid()), (me.uid, me.gid));
        }
        let dir_meta = std::fs::metadata(files.cert.parent().unwrap()).unwrap();
        assert_eq!(dir_meta.mode() & 0o777, 0o750);
        // nothing else in the directory (no temporary files), rabbitmq.conf untouched
        let names: Vec<_> = std::fs::read_dir(files.cert.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(
            std::fs::read_to_string(paths.conf_dir.join("rabbitmq.conf")).unwrap(),
            conf_before
        );
        let names: Vec<_> = tls_endpoints().iter().map(|e| e.addr.port()).collect();
        assert_eq!(names, [5671, 8883, 61614, 15673, 15676, 15671]);
    }

    #[test]
    fn cluster_nodes_go_by_the_spec_hostname() {
        let mut spec = sample_spec();
        assert_eq!(own_hostname(&spec, "container"), "container");
        spec.node.hostname = "berth-b-1234-1".into();
        // not a cluster: the container's own hostname, as before
        assert_eq!(own_hostname(&spec, "container"), "container");
        spec.node.topology = Topology::Cluster;
        assert_eq!(own_hostname(&spec, "container"), "berth-b-1234-1");
        spec.node.hostname.clear();
        assert_eq!(own_hostname(&spec, "container"), "container");
    }

    #[test]
    fn cluster_config_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let paths = test_paths(dir.path());
        let me = Owner::current();
        let mut spec = sample_spec();
        spec.engine_version = "4.3".into();
        spec.node.topology = Topology::Cluster;
        spec.node.hostname = "n1".into();
        spec.node.peers = vec!["n2".into(), "n3".into()];
        let cluster = conf::cluster_conf(&spec, "n1", &paths.definitions()).unwrap();
        let monitor = MonitorUser::generate("n1").unwrap();
        write_engine_files(&spec, None, &paths, me, me, Some(&cluster), Some(&monitor)).unwrap();
        let conf = std::fs::read_to_string(paths.conf_dir.join("rabbitmq.conf")).unwrap();
        assert!(conf.contains("cluster_formation.classic_config.nodes.3 = rabbit@n3\n"));
        assert!(conf.contains("default_queue_type = quorum\n"));
        assert!(conf.contains(&format!(
            "definitions.local.path = {}\n",
            paths.definitions().display()
        )));
        // the boot definitions: spec users, the monitoring user, the vhost; 0640
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(paths.definitions()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640);
        let defs: serde_json::Value =
            serde_json::from_slice(&std::fs::read(paths.definitions()).unwrap()).unwrap();
        assert_eq!(defs["users"][0]["name"], "admin");
        assert_eq!(defs["users"][1]["name"], monitor.name.as_str());
        assert_eq!(defs["users"][1]["password"], monitor.password.as_str());
        assert_eq!(defs["vhosts"][0]["name"], "/");
        // back to a single node: the file goes
        write_engine_files(&sample_spec(), None, &paths, me, me, None, None).unwrap();
        assert!(!paths.definitions().exists());
    }

    #[test]
    fn virgin_detection() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_virgin(dir.path()));
        std::fs::create_dir_all(dir.path().join("mnesia/rabbit@x")).unwrap();
        assert!(!is_virgin(dir.path()));
    }

    #[test]
    fn rejects_a_foreign_spec() {
        assert!(rabbit_spec(&crate::testutil::sample_activemq_spec()).is_err());
    }
}
