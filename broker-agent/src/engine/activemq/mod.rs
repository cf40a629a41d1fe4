//! The ActiveMQ Classic [`EngineDriver`] (Debian's activemq 5.17 on OpenJDK 21), in
//! place of Debian's `activemq console` shell launcher.
//!
//! Before every start, [`ActivemqDriver::prepare`] writes into the instance's conf dir
//! ([`AmqPaths::conf_dir`], root:activemq, 0750; files 0640):
//! - `activemq.xml`, rendered by [`xml`] from Berth's parts and the tenant's
//!   configuration revision (see that module for what is merged and the authorization
//!   model);
//! - `login.config`, `users.properties`, `groups.properties` ([`jaas`]): the spec's users
//!   and the agent's internal probe user, re-read by JAAS on the next login, so
//!   [`EngineDriver::reconcile_users`] applies users live by rewriting them;
//! - `log4j.properties`: the broker logs to stdout, i.e. `docker logs`; its audit log
//!   (`-Dorg.apache.activemq.audit=true`: management operations, logger
//!   `org.apache.activemq.audit`) goes to stdout too through its own appender, each line
//!   prefixed with [`AUDIT_PREFIX`], which the agent stores as the `audit` stream;
//! - with TLS material, `broker.p12` ([`keystore`]) for the `ssl://`, `stomp+ssl://` and
//!   `mqtt+ssl://` connectors.
//!
//! The engine is `java` itself, started through `setpriv` as the `activemq` user (so the
//! supervised child is the JVM and SIGTERM reaches its shutdown hook: `docker stop` is a
//! clean broker stop), with the class path and system properties Debian's launcher
//! passes for Java > 8 ([`JAVA_MODULE_FLAGS`], `-Dactivemq.*`), `-Xmx` from the cgroup
//! memory limit ([`heap_args`]) and `-XX:+ExitOnOutOfMemoryError`.
//!
//! Readiness is a STOMP login with the internal user ([`probe`]); a standby (no
//! connector bound) and a broken JAAS setup both count as not ready. On shared storage
//! (active/standby, [`standby`]) a node whose output says it waits for the store's lock
//! is a standby ([`EngineDriver::waits_for_lock`]); users given to a standby are only
//! written ([`EngineDriver::stage_users`]: JAAS reads them when it becomes active), and
//! its only TLS listener is the agent's `wss` bridge
//! ([`EngineDriver::standby_tls_endpoints`]). Nothing the driver writes lives on the
//! data volume, so two nodes sharing it cannot clobber each other's files (the agent's
//! log store there is per node: `berth-logs/node-<index>`, see [`crate::logstore`]). WebSocket clients
//! are served by the agent's [`ws_bridge`] (Debian does not build ActiveMQ's `ws`
//! transport). AMQP 1.0 is not offered: Debian does not build `activemq-amqp`, and an
//! unknown connector scheme would stop the broker.
//!
//! Listeners (container ports of [`agent_contract::ports::activemq`]): OpenWire, STOMP
//! and MQTT on every interface plus `ws` when `spec.plaintext`; otherwise STOMP and MQTT
//! on 127.0.0.1 only (for the probe and the `wss` bridge). With TLS material: `ssl`,
//! `stomp+ssl`, `mqtt+ssl` and `wss`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_contract::ports::activemq as ports;
use agent_contract::{
    ActivemqSpec, AgentSpec, Destination, DestinationKind, DestinationName, Engine, EngineSpec,
    PeekedMessage, TestMessage, TlsMaterial, Topology,
};
use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{
    BoxFuture, DestinationError, Diagnosis, EngineDriver, LiveChange, Prepared, TlsEndpoint,
};
use crate::fsutil::{self, Owner};
use crate::supervisor::ProcessSpec;

pub mod destinations;
pub mod diagnose;
pub mod hsperf;
pub mod jaas;
pub mod keystore;
pub mod metrics;
pub mod probe;
pub mod standby;
pub mod ws_bridge;
pub mod xml;

use jaas::InternalUser;
use xml::{BrokerParams, Connector, SslContext};

/// OS user the engine runs as.
pub const ENGINE_USER: &str = "activemq";
/// Share of the memory limit given to the JVM heap when the spec sets none.
pub const DEFAULT_HEAP_PERCENT: u32 = 50;
/// The smallest heap the agent asks for, whatever the limit.
pub const MIN_HEAP_MIB: u64 = 64;
/// `storeUsage` / `tempUsage` limits (ActiveMQ clamps them to the free disk space, with a
/// warning, when the volume is smaller).
pub const STORE_LIMIT: &str = "8 gb";
pub const TEMP_LIMIT: &str = "2 gb";
/// Options on every transport connector (as Amazon MQ's).
pub const CONNECTOR_OPTIONS: &str = "maximumConnections=1000&wireFormat.maxFrameSize=104857600";

/// Broker logging: everything at INFO to stdout (the agent's stdout is `docker logs`).
pub const LOG4J_PROPERTIES: &str = "\
# Written by the Berth broker agent at every start; edits are lost.
log4j.rootLogger=INFO, console
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.activemq.spring=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.Target=System.out
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} | %-5p | %m | %c | %t%n
log4j.logger.org.apache.activemq.audit=INFO, audit
log4j.additivity.org.apache.activemq.audit=false
log4j.appender.audit=org.apache.log4j.ConsoleAppender
log4j.appender.audit.Target=System.out
log4j.appender.audit.layout=org.apache.log4j.PatternLayout
log4j.appender.audit.layout.ConversionPattern=berth-audit | %d{ISO8601} | %-5p | %m | %t%n
";

/// What the audit appender puts before each audit line (see [`LOG4J_PROPERTIES`]).
pub const AUDIT_PREFIX: &str = "berth-audit | ";

/// JVM flags Debian's `/usr/bin/activemq` passes on Java > 8.
pub const JAVA_MODULE_FLAGS: &[&str] = &[
    "--add-reads=java.xml=java.logging",
    "--add-opens",
    "java.base/java.security=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.net=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.util=ALL-UNNAMED",
    "--add-opens",
    "java.naming/javax.naming.spi=ALL-UNNAMED",
    "--add-opens",
    "java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.www.protocol.http=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.www.protocol.https=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.www.protocol.jar=ALL-UNNAMED",
    "--add-exports=jdk.xml.dom/org.w3c.dom.html=ALL-UNNAMED",
    "--add-exports=jdk.naming.rmi/com.sun.jndi.url.rmi=ALL-UNNAMED",
];

/// The ActiveMQ part of `spec`, or an error for another engine.
pub fn activemq_spec(spec: &AgentSpec) -> anyhow::Result<&ActivemqSpec> {
    match &spec.engine {
        EngineSpec::Activemq(a) => Ok(a),
        other => anyhow::bail!("the ActiveMQ driver got a {:?} spec", other.engine()),
    }
}

/// Where ActiveMQ's files and programs are (overridable for tests).
#[derive(Debug, Clone)]
pub struct AmqPaths {
    /// The instance's conf dir (activemq.xml, JAAS files, log4j, keystore).
    pub conf_dir: PathBuf,
    /// The data volume (`dataDirectory`; KahaDB in `kahadb/`).
    pub data_dir: PathBuf,
    /// Debian's ActiveMQ home (`bin/activemq.jar`, `lib/`).
    pub home: PathBuf,
    pub java: PathBuf,
    pub setpriv: PathBuf,
    /// The agent's own state (root, 0700): the internal user's password.
    pub state_dir: PathBuf,
    pub tmp_dir: PathBuf,
    /// The TLS warm-up agent the image ships (`images/activemq/warmup/`).
    pub warmup_jar: PathBuf,
}

impl Default for AmqPaths {
    fn default() -> Self {
        AmqPaths {
            conf_dir: "/etc/activemq/instances-enabled/berth".into(),
            data_dir: "/var/lib/activemq".into(),
            home: "/usr/share/activemq".into(),
            java: "/usr/lib/jvm/default-java/bin/java".into(),
            setpriv: "/usr/bin/setpriv".into(),
            state_dir: "/var/lib/berth-agent".into(),
            tmp_dir: "/tmp".into(),
            warmup_jar: "/usr/share/berth/tls-warmup.jar".into(),
        }
    }
}

impl AmqPaths {
    pub fn keystore(&self) -> PathBuf {
        self.conf_dir.join("broker.p12")
    }
    /// What the TLS warm-up agent reads: the keystore and its password.
    pub fn warmup_properties(&self) -> PathBuf {
        self.conf_dir.join("tls-warmup.properties")
    }
    pub fn internal_user_file(&self) -> PathBuf {
        self.state_dir.join("activemq-probe.secret")
    }
}

/// `-Xmx` for `percent` of a `limit` (MiB, rounded down, at least [`MIN_HEAP_MIB`]).
pub fn heap_mib(limit: u64, percent: u32) -> u64 {
    (limit / (1 << 20) * u64::from(percent) / 100).max(MIN_HEAP_MIB)
}

/// Heap flags: `-Xmx` from the memory limit, or (no limit) the same share of what the
/// JVM sees. `-Xms` is left to the JVM: fixing it raises idle and loaded RSS
/// (activemq-notes.md §8).
pub fn heap_args(limit: Option<u64>, percent: u32) -> Vec<String> {
    match limit {
        Some(l) => vec![format!("-Xmx{}m", heap_mib(l, percent))],
        None => vec![format!("-XX:MaxRAMPercentage={percent}")],
    }
}

/// The transport connectors for the listener settings (see the module docs).
pub fn connectors(plaintext: bool, tls: bool) -> Vec<Connector> {
    let c = |name: &str, scheme: &str, host: &str, port: u16| Connector {
        name: name.into(),
        uri: format!("{scheme}://{host}:{port}?{CONNECTOR_OPTIONS}"),
    };
    let mut out = Vec::new();
    // The broker binds them in this order, once per start (a standby's takeover
    // included): the client-facing TLS ones first.
    if tls {
        out.push(c("ssl", "ssl", "0.0.0.0", ports::OPENWIRE_TLS));
        out.push(c("stomp+ssl", "stomp+ssl", "0.0.0.0", ports::STOMPS));
        out.push(c("mqtt+ssl", "mqtt+ssl", "0.0.0.0", ports::MQTTS));
    }
    if plaintext {
        out.push(c("openwire", "tcp", "0.0.0.0", ports::OPENWIRE));
        out.push(c("stomp", "stomp", "0.0.0.0", ports::STOMP));
        out.push(c("mqtt", "mqtt", "0.0.0.0", ports::MQTT));
    } else {
        out.push(c("stomp", "stomp", "127.0.0.1", ports::STOMP));
        out.push(c("mqtt", "mqtt", "127.0.0.1", ports::MQTT));
    }
    out
}

/// Handshakes the TLS warm-up agent runs (≈1.6 s of one core; the last ones take
/// ≈15 ms against ≈350 ms for the first).
const WARMUP_ROUNDS: u32 = 40;
/// How long a node waits for the store's lock before the warm-up agent starts: a pair
/// boots both nodes at once, and the active's boot needs the CPU more than the
/// standby's handshakes; a standby that has waited this long has an active that serves.
const WARMUP_STANDBY_MS: u32 = 5_000;

/// `setpriv … java … -jar activemq.jar start xbean:file:…/activemq.xml`; with `warmup`
/// (its properties file) the TLS warm-up agent runs beside the broker.
pub fn java_process(paths: &AmqPaths, heap: &[String], warmup: Option<&Path>) -> ProcessSpec {
    let conf = paths.conf_dir.display().to_string();
    let data = paths.data_dir.display().to_string();
    let home = paths.home.display().to_string();
    let mut args = vec![
        format!("--reuid={ENGINE_USER}"),
        format!("--regid={ENGINE_USER}"),
        "--init-groups".into(),
        "--".into(),
        paths.java.display().to_string(),
    ];
    args.extend(heap.iter().cloned());
    args.extend([
        "-XX:+ExitOnOutOfMemoryError".to_string(),
        "-Djava.awt.headless=true".into(),
        format!("-Djava.io.tmpdir={}", paths.tmp_dir.display()),
        format!("-Djava.security.auth.login.config={conf}/login.config"),
        format!("-Dlog4j.configuration=file:{conf}/log4j.properties"),
        "-Dorg.apache.activemq.audit=true".into(),
    ]);
    if let Some(props) = warmup {
        args.push(format!(
            "-javaagent:{}={}",
            paths.warmup_jar.display(),
            props.display()
        ));
    }
    args.extend(JAVA_MODULE_FLAGS.iter().map(|s| s.to_string()));
    args.extend([
        format!("-Dactivemq.classpath={conf}"),
        format!("-Dactivemq.home={home}"),
        format!("-Dactivemq.base={data}"),
        format!("-Dactivemq.conf={conf}"),
        format!("-Dactivemq.data={data}"),
        "-jar".into(),
        format!("{home}/bin/activemq.jar"),
        "start".into(),
        format!("xbean:file:{conf}/activemq.xml"),
    ]);
    ProcessSpec {
        program: paths.setpriv.clone(),
        args,
        env: vec![
            ("HOME".into(), data.clone()),
            ("LANG".into(), "C.UTF-8".into()),
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        ],
        cwd: Some(paths.data_dir.clone()),
    }
}

/// Owners of what the driver writes.
#[derive(Debug, Clone, Copy)]
pub struct Owners {
    /// Config files: root:activemq (the engine reads, never writes them).
    pub config: Owner,
    /// The data volume.
    pub engine: Owner,
}

/// Write every file of one engine start. Returns the process to run.
pub fn write_engine_files(
    spec: &AgentSpec,
    memory_limit: Option<u64>,
    paths: &AmqPaths,
    owners: Owners,
    internal: &InternalUser,
    keystore_password: &str,
) -> anyhow::Result<ProcessSpec> {
    let amq = activemq_spec(spec)?;
    fsutil::ensure_dir(&paths.conf_dir, 0o750, Some(owners.config))?;
    std::fs::create_dir_all(&paths.data_dir)
        .with_context(|| format!("creating {}", paths.data_dir.display()))?;
    // (On shared storage the other node's broker may be writing there.)
    standby::own_data_dir(&paths.data_dir, owners.engine)?;

    let ssl = match &spec.tls {
        Some(tls) => {
            let p12 = keystore::pkcs12_from_pem(tls, keystore_password)?;
            fsutil::write_atomic(&paths.keystore(), &p12, 0o640, Some(owners.config))?;
            Some(SslContext {
                keystore: paths.keystore(),
                password: keystore_password.to_string(),
            })
        }
        None => {
            let _ = std::fs::remove_file(paths.keystore());
            None
        }
    };
    let rendered = xml::render_activemq_xml(&BrokerParams {
        broker_name: &amq.broker_name,
        data_dir: &paths.data_dir,
        connectors: connectors(spec.plaintext, spec.tls.is_some()),
        ssl,
        store_limit: STORE_LIMIT,
        temp_limit: TEMP_LIMIT,
        tenant: spec.engine_config.as_deref(),
    })?;
    if !rendered.dropped.is_empty() {
        tracing::warn!(
            dropped = ?rendered.dropped,
            "parts of the configuration revision were not applied"
        );
    }
    let conf_file = |name: &str| paths.conf_dir.join(name);
    fsutil::write_atomic(
        &conf_file("activemq.xml"),
        rendered.xml.as_bytes(),
        0o640,
        Some(owners.config),
    )?;
    fsutil::write_atomic(
        &conf_file("log4j.properties"),
        LOG4J_PROPERTIES.as_bytes(),
        0o640,
        Some(owners.config),
    )?;
    jaas::write_jaas_files(&paths.conf_dir, &spec.users, internal, Some(owners.config))?;
    // A standby takes over with a cold JVM whose first TLS handshakes took 1.4–1.5 s,
    // most of the failover gap: warm the TLS code up while it waits for the lock (the
    // agent in the JVM starts once the broker has waited WARMUP_STANDBY_MS for it).
    let warmup = match &spec.tls {
        Some(_) if spec.node.topology == Topology::SharedStorage && paths.warmup_jar.exists() => {
            let props = format!(
                "keystore={}\npassword={keystore_password}\nrounds={WARMUP_ROUNDS}\nstandby_ms={WARMUP_STANDBY_MS}\n",
                paths.keystore().display()
            );
            fsutil::write_atomic(
                &paths.warmup_properties(),
                props.as_bytes(),
                0o640,
                Some(owners.config),
            )?;
            Some(paths.warmup_properties())
        }
        _ => {
            let _ = std::fs::remove_file(paths.warmup_properties());
            None
        }
    };
    let percent = amq.heap_percent.unwrap_or(DEFAULT_HEAP_PERCENT);
    Ok(java_process(
        paths,
        &heap_args(memory_limit, percent),
        warmup.as_deref(),
    ))
}

/// The ActiveMQ [`EngineDriver`].
pub struct ActivemqDriver {
    paths: AmqPaths,
    owners: Owners,
    internal: InternalUser,
    /// Protects `broker.p12`; made anew by every agent start (the file is rewritten at
    /// every engine start anyway), never persisted or reported.
    keystore_password: String,
    stomp_addr: SocketAddr,
    bridge: Arc<ws_bridge::BridgeConfig>,
    /// Listener settings the agent started with (for the WebSocket bridge).
    plaintext: bool,
    /// The `wss` certificate (with TLS material), replaced live on renewal.
    wss: Option<Arc<ws_bridge::TlsSwitch>>,
}

impl ActivemqDriver {
    /// Resolve the engine user and load (or create) the internal user; fails if the
    /// image lacks the `activemq` user.
    pub fn new(paths: AmqPaths, spec: &AgentSpec) -> anyhow::Result<ActivemqDriver> {
        let engine = Owner::lookup_user(ENGINE_USER)?;
        let owners = Owners {
            config: Owner {
                uid: nix::unistd::geteuid().as_raw(),
                gid: engine.gid,
            },
            engine,
        };
        Self::with_owners(paths, spec, owners)
    }

    /// [`new`](Self::new) with explicit owners (tests).
    pub fn with_owners(
        paths: AmqPaths,
        spec: &AgentSpec,
        owners: Owners,
    ) -> anyhow::Result<ActivemqDriver> {
        fsutil::ensure_dir(&paths.state_dir, 0o700, None)?;
        let internal = InternalUser::load_or_create(&paths.internal_user_file())?;
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let wss = match &spec.tls {
            Some(tls) => Some(Arc::new(ws_bridge::TlsSwitch::from_pem(
                &tls.cert_pem,
                &tls.key_pem,
            )?)),
            None => None,
        };
        Ok(ActivemqDriver {
            paths,
            owners,
            internal,
            keystore_password: fsutil::random_hex(24)?,
            stomp_addr: loopback(ports::STOMP),
            bridge: Arc::new(ws_bridge::BridgeConfig {
                stomp: loopback(ports::STOMP),
                mqtt: loopback(ports::MQTT),
                max_message: ws_bridge::MAX_MESSAGE,
                connect_timeout: Duration::from_secs(5),
            }),
            plaintext: spec.plaintext,
            wss,
        })
    }

    /// A statistics session as the internal user, with the broker's statistics map.
    async fn broker_stats(
        &self,
    ) -> Result<
        (
            destinations::Stomp,
            String,
            std::collections::BTreeMap<String, serde_json::Value>,
        ),
        DestinationError,
    > {
        let (mut stomp, reply) = destinations::stats_session(
            self.stomp_addr,
            &self.internal.username,
            &self.internal.password,
        )
        .await?;
        let broker = destinations::broker_stats(&mut stomp, &reply).await?;
        Ok((stomp, reply, broker))
    }

    /// Log in with the internal user (the probe).
    async fn login(&self) -> anyhow::Result<()> {
        probe::stomp_login(
            self.stomp_addr,
            &self.internal.username,
            &self.internal.password,
            Duration::from_secs(3),
        )
        .await?;
        Ok(())
    }
}

async fn bind(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (WebSocket bridge)"))
}

impl EngineDriver for ActivemqDriver {
    fn engine(&self) -> Engine {
        Engine::Activemq
    }

    fn prepare(&self, spec: &AgentSpec) -> anyhow::Result<Prepared> {
        let memory_limit = self.current_memory_limit();
        let process = write_engine_files(
            spec,
            memory_limit,
            &self.paths,
            self.owners,
            &self.internal,
            &self.keystore_password,
        )
        .context("preparing ActiveMQ files")?;
        let heap = process
            .args
            .iter()
            .find(|a| a.starts_with("-Xmx") || a.starts_with("-XX:MaxRAMPercentage"))
            .cloned()
            .unwrap_or_default();
        tracing::info!(
            limit_bytes = ?memory_limit,
            heap = %heap,
            tls = spec.tls.is_some(),
            plaintext = spec.plaintext,
            tenant_config = spec.engine_config.is_some(),
            "rendered activemq.xml and the JAAS files"
        );
        Ok(Prepared {
            process,
            memory_limit,
            // The JAAS files just written are the user database.
            users_settled: true,
        })
    }

    fn probe(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.login())
    }

    fn reconcile_users<'a>(&'a self, spec: &'a AgentSpec) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            jaas::write_jaas_files(
                &self.paths.conf_dir,
                &spec.users,
                &self.internal,
                Some(self.owners.config),
            )?;
            // The next login reloads the files: if the internal user can still log in,
            // they are readable and well-formed.
            self.login()
                .await
                .context("the broker refuses logins after the user files were rewritten")?;
            let names: Vec<&str> = spec.users.iter().map(|u| u.username.as_str()).collect();
            tracing::info!(users = ?names, "users written (JAAS reloads them on the next login)");
            Ok(())
        })
    }

    fn apply_memory_limit<'a>(
        &'a self,
        _spec: &'a AgentSpec,
        _limit: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<LiveChange>> {
        // A JVM's maximum heap is fixed at start.
        Box::pin(async { Ok(LiveChange::AtNextStart) })
    }

    /// The bridge's `wss` certificate is replaced at once (open connections keep
    /// theirs). The broker's `ssl`, `stomp+ssl` and `mqtt+ssl` connectors read the
    /// PKCS#12 keystore only when the broker starts (ActiveMQ 5.17 has no way to reload
    /// an `sslContext`), so a new leaf or key takes a restart of the JVM, which
    /// [`prepare`](EngineDriver::prepare) gives a keystore of the new material; a
    /// change of the CA alone does not (the keystore holds the chain of `cert_pem`).
    fn apply_tls<'a>(
        &'a self,
        spec: &'a AgentSpec,
        previous: &'a TlsMaterial,
    ) -> BoxFuture<'a, anyhow::Result<LiveChange>> {
        Box::pin(async move {
            let tls = spec.tls.as_ref().context("the spec has no TLS material")?;
            // Checked before anything changes: the keystore is written at the restart.
            keystore::pkcs12_from_pem(tls, &self.keystore_password)?;
            if let Some(wss) = &self.wss {
                wss.replace(&tls.cert_pem, &tls.key_pem)?;
                tracing::info!("WebSocket bridge (wss) serves the renewed certificate");
            }
            Ok(keystore_change(previous, tls))
        })
    }

    fn data_dir(&self) -> Option<PathBuf> {
        Some(self.paths.data_dir.clone())
    }

    fn audit_log_prefix(&self) -> Option<&'static str> {
        Some(AUDIT_PREFIX)
    }

    /// See [`metrics`]: one statistics session (broker, queues, topics), the JVM's
    /// heap and the connection tables.
    fn engine_metrics<'a>(
        &'a self,
        _spec: &'a AgentSpec,
    ) -> BoxFuture<'a, anyhow::Result<Vec<agent_contract::metrics::Sample>>> {
        Box::pin(async move {
            let (mut stomp, reply, broker) = self.broker_stats().await?;
            let queues =
                destinations::list_maps(&mut stomp, DestinationKind::Queue, &reply).await?;
            let topics =
                destinations::list_maps(&mut stomp, DestinationKind::Topic, &reply).await?;
            stomp.close().await;
            let mut d = metrics::Destinations::default();
            d.add(&queues, DestinationKind::Queue);
            d.add(&topics, DestinationKind::Topic);
            let mut out = d.into_samples();
            out.extend(metrics::broker_samples(&broker));
            out.push(metrics::current_connections(std::path::Path::new(
                "/proc/net",
            )));
            let perf_dir = self.paths.tmp_dir.join(format!("hsperfdata_{ENGINE_USER}"));
            match hsperf::heap_percent(&perf_dir, std::path::Path::new("/proc")) {
                Ok(pct) => out.push(agent_contract::metrics::Sample::new(
                    agent_contract::metrics::names::HEAP_USAGE,
                    pct,
                    agent_contract::metrics::Unit::Percent,
                )),
                Err(e) => tracing::debug!(error = %e, "no heap figure"),
            }
            Ok(out)
        })
    }

    /// ACTIVEMQ_STORE_FULL from the broker's statistics (one STOMP session).
    fn engine_alarms<'a>(
        &'a self,
        _spec: &'a AgentSpec,
    ) -> BoxFuture<'a, anyhow::Result<Vec<agent_contract::EngineAlarm>>> {
        Box::pin(async move {
            let (stomp, _, broker) = self.broker_stats().await?;
            stomp.close().await;
            Ok(metrics::store_alarm(&broker).into_iter().collect())
        })
    }

    fn tls_endpoints(&self, spec: &AgentSpec) -> Vec<TlsEndpoint> {
        if spec.tls.is_none() {
            return Vec::new();
        }
        let at = |name, port| TlsEndpoint {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let mut out = vec![
            at("ssl (openwire)", ports::OPENWIRE_TLS),
            at("stomp+ssl", ports::STOMPS),
            at("mqtt+ssl", ports::MQTTS),
        ];
        if self.wss.is_some() {
            out.push(at("wss (bridge)", ports::WSS));
        }
        out
    }

    fn diagnose_exit(&self, output: &[String]) -> Diagnosis {
        diagnose::diagnose(output)
    }

    fn waits_for_lock(&self, output: &[String]) -> bool {
        standby::waits_for_lock(output)
    }

    /// The JAAS files are the user database: written now, read by the first login once
    /// the broker is active (a standby cannot be asked to log anyone in).
    fn stage_users<'a>(&'a self, spec: &'a AgentSpec) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            jaas::write_jaas_files(
                &self.paths.conf_dir,
                &spec.users,
                &self.internal,
                Some(self.owners.config),
            )?;
            let names: Vec<&str> = spec.users.iter().map(|u| u.username.as_str()).collect();
            tracing::info!(users = ?names, "users written; the standby broker uses them once it is active");
            Ok(true)
        })
    }

    /// The broker binds no connector while it waits for the lock; the agent's `wss`
    /// bridge listens all the same.
    fn standby_tls_endpoints(&self, spec: &AgentSpec) -> Vec<TlsEndpoint> {
        self.tls_endpoints(spec)
            .into_iter()
            .filter(|e| e.addr.port() == ports::WSS)
            .collect()
    }

    fn secrets(&self) -> Vec<String> {
        vec![
            self.keystore_password.clone(),
            self.internal.password.clone(),
        ]
    }

    fn destinations<'a>(
        &'a self,
        _spec: &'a AgentSpec,
    ) -> BoxFuture<'a, Result<Vec<Destination>, DestinationError>> {
        Box::pin(async move {
            destinations::list_all(
                self.stomp_addr,
                &self.internal.username,
                &self.internal.password,
            )
            .await
        })
    }

    fn send_message<'a>(
        &'a self,
        _spec: &'a AgentSpec,
        kind: DestinationKind,
        name: &'a DestinationName,
        message: &'a TestMessage,
    ) -> BoxFuture<'a, Result<(), DestinationError>> {
        Box::pin(async move {
            destinations::check_name(name)?;
            destinations::send(
                self.stomp_addr,
                &self.internal.username,
                &self.internal.password,
                kind,
                name,
                message,
            )
            .await
        })
    }

    /// Checks that the queue exists (a browser would create it), then browses it.
    fn peek<'a>(
        &'a self,
        _spec: &'a AgentSpec,
        name: &'a DestinationName,
        count: u32,
    ) -> BoxFuture<'a, Result<Vec<PeekedMessage>, DestinationError>> {
        Box::pin(async move {
            destinations::check_name(name)?;
            let (user, pass) = (&self.internal.username, &self.internal.password);
            let all = destinations::list_all(self.stomp_addr, user, pass).await?;
            if !all
                .iter()
                .any(|d| d.kind == DestinationKind::Queue && d.name == name.as_str())
            {
                return Err(DestinationError::NotFound(format!("no queue named {name}")));
            }
            destinations::peek(
                self.stomp_addr,
                user,
                pass,
                name,
                count,
                Duration::from_secs(2),
            )
            .await
        })
    }

    fn start_sidecars(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> BoxFuture<'_, anyhow::Result<Vec<JoinHandle<()>>>> {
        Box::pin(async move {
            let mut tasks = Vec::new();
            if self.plaintext {
                let listener = bind(ports::WS).await?;
                tracing::info!(port = ports::WS, "WebSocket bridge (ws) listening");
                tasks.push(tokio::spawn(ws_bridge::serve(
                    listener,
                    None,
                    self.bridge.clone(),
                    shutdown.clone(),
                )));
            }
            if let Some(wss) = &self.wss {
                let listener = bind(ports::WSS).await?;
                tracing::info!(port = ports::WSS, "WebSocket bridge (wss) listening");
                tasks.push(tokio::spawn(ws_bridge::serve(
                    listener,
                    Some(wss.clone()),
                    self.bridge.clone(),
                    shutdown,
                )));
            }
            Ok(tasks)
        })
    }
}

/// Whether the broker needs a restart for `new` after `previous`: only the keystore's
/// inputs (the chain and the key) count.
pub fn keystore_change(previous: &TlsMaterial, new: &TlsMaterial) -> LiveChange {
    if previous.cert_pem == new.cert_pem && previous.key_pem == new.key_pem {
        LiveChange::Applied
    } else {
        LiveChange::AtNextStart
    }
}

/// Test helper: the paths of a driver rooted in `dir`.
#[cfg(test)]
pub(crate) fn test_paths(dir: &std::path::Path) -> AmqPaths {
    AmqPaths {
        conf_dir: dir.join("conf"),
        data_dir: dir.join("data"),
        state_dir: dir.join("state"),
        tmp_dir: dir.join("tmp"),
        warmup_jar: dir.join("tls-warmup.jar"),
        ..AmqPaths::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sample_activemq_spec, sample_spec, sample_tls};

    #[test]
    fn heap_is_a_share_of_the_limit() {
        assert_eq!(heap_mib(1 << 30, 50), 512);
        assert_eq!(heap_mib(4 << 30, 70), 2867);
        assert_eq!(heap_mib(100 << 20, 10), MIN_HEAP_MIB);
        assert_eq!(heap_args(Some(1 << 30), 50), ["-Xmx512m"]);
        assert_eq!(heap_args(None, 50), ["-XX:MaxRAMPercentage=50"]);
        // an odd limit rounds down to whole MiB first
        assert_eq!(heap_mib((1 << 30) + 12345, 50), 512);
    }

    #[test]
    fn connectors_follow_the_listener_rule() {
        let names = |cs: Vec<Connector>| -> Vec<String> { cs.into_iter().map(|c| c.uri).collect() };
        let plain = names(connectors(true, false));
        assert_eq!(plain.len(), 3);
        assert!(plain[0].starts_with("tcp://0.0.0.0:61616?"));
        assert!(plain[1].starts_with("stomp://0.0.0.0:61613?"));
        assert!(plain[2].starts_with("mqtt://0.0.0.0:1883?"));
        let tls_only = names(connectors(false, true));
        assert_eq!(
            tls_only
                .iter()
                .map(|u| u.split('?').next().unwrap())
                .collect::<Vec<_>>(),
            [
                "ssl://0.0.0.0:61617",
                "stomp+ssl://0.0.0.0:61614",
                "mqtt+ssl://0.0.0.0:8883",
                "stomp://127.0.0.1:61613",
                "mqtt://127.0.0.1:1883",
            ]
        );
        // never an AMQP or ws connector (Debian's build lacks them: the broker would exit)
        for u in names(connectors(true, true)) {
            assert!(!u.starts_with("amqp") && !u.starts_with("ws"), "{u}");
        }
    }

    #[test]
    fn java_is_the_engine_process() {
        let p = java_process(&AmqPaths::default(), &heap_args(Some(1 << 30), 50), None);
        assert_eq!(p.program, PathBuf::from("/usr/bin/setpriv"));
        assert_eq!(
            &p.args[..5],
            [
                "--reuid=activemq",
                "--regid=activemq",
                "--init-groups",
                "--",
                "/usr/lib/jvm/default-java/bin/java"
            ]
        );
        let has = |a: &str| p.args.iter().any(|x| x == a);
        assert!(has("-Xmx512m"));
        assert!(has("-XX:+ExitOnOutOfMemoryError"));
        assert!(has(
            "-Djava.security.auth.login.config=/etc/activemq/instances-enabled/berth/login.config"
        ));
        assert!(has("-Dactivemq.conf=/etc/activemq/instances-enabled/berth"));
        assert!(has("-Dactivemq.data=/var/lib/activemq"));
        assert!(has("--add-opens"));
        let tail = &p.args[p.args.len() - 4..];
        assert_eq!(
            tail,
            [
                "-jar",
                "/usr/share/activemq/bin/activemq.jar",
                "start",
                "xbean:file:/etc/activemq/instances-enabled/berth/activemq.xml"
            ]
        );
        assert!(p.env.contains(&("HOME".into(), "/var/lib/activemq".into())));
        assert_eq!(p.cwd, Some(PathBuf::from("/var/lib/activemq")));
    }

    fn test_driver(dir: &std::path::Path, spec: &AgentSpec) -> ActivemqDriver {
        let me = Owner::current();
        ActivemqDriver::with_owners(
            test_paths(dir),
            spec,
            Owners {
                config: me,
                engine: me,
            },
        )
        .unwrap()
    }

    #[test]
    fn prepare_writes_every_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let spec = sample_activemq_spec();
        let driver = test_driver(dir.path(), &spec);
        let prepared = driver.prepare(&spec).unwrap();
        assert!(prepared.users_settled);
        let conf = dir.path().join("conf");
        assert_eq!(std::fs::metadata(&conf).unwrap().mode() & 0o777, 0o750);
        for f in [
            "activemq.xml",
            "log4j.properties",
            "login.config",
            "users.properties",
            "groups.properties",
        ] {
            let meta = std::fs::metadata(conf.join(f)).unwrap();
            assert_eq!(meta.mode() & 0o777, 0o640, "{f}");
        }
        assert!(!conf.join("broker.p12").exists());
        let xml = std::fs::read_to_string(conf.join("activemq.xml")).unwrap();
        roxmltree::Document::parse(&xml).unwrap();
        assert!(xml.contains("brokerName=\"b-amq1\""));
        let users = std::fs::read_to_string(conf.join("users.properties")).unwrap();
        assert!(users.contains("app=app-Passw0rd-1"));
        assert!(users.contains(&format!("{}=", jaas::INTERNAL_USER)));
        // the internal password is kept privately and reused
        let secret = dir.path().join("state/activemq-probe.secret");
        assert_eq!(std::fs::metadata(&secret).unwrap().mode() & 0o777, 0o600);
        let again = test_driver(dir.path(), &spec);
        assert_eq!(again.internal, driver.internal);
        assert!(prepared
            .process
            .args
            .iter()
            .any(|a| a.starts_with("-Xmx") || a.starts_with("-XX:MaxRAMPercentage")));
    }

    #[test]
    fn tls_adds_a_keystore_and_ssl_connectors() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sample_activemq_spec();
        spec.tls = Some(sample_tls());
        spec.plaintext = false;
        let driver = test_driver(dir.path(), &spec);
        driver.prepare(&spec).unwrap();
        let conf = dir.path().join("conf");
        assert!(conf.join("broker.p12").exists());
        let xml = std::fs::read_to_string(conf.join("activemq.xml")).unwrap();
        assert!(xml.contains("ssl://0.0.0.0:61617"));
        assert!(xml.contains("stomp://127.0.0.1:61613"));
        assert!(!xml.contains("tcp://0.0.0.0:61616"));
        assert!(xml.contains(&driver.keystore_password));
        // TLS removed: keystore removed
        spec.tls = None;
        spec.plaintext = true;
        driver.prepare(&spec).unwrap();
        assert!(!conf.join("broker.p12").exists());
    }

    #[test]
    fn a_tls_pair_node_runs_the_warmup_agent_with_its_keystore() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls-warmup.jar"), b"jar").unwrap();
        let mut spec = sample_activemq_spec();
        spec.tls = Some(sample_tls());
        let driver = test_driver(dir.path(), &spec);
        let props = dir.path().join("conf/tls-warmup.properties");
        let agent_arg = |p: &Prepared| {
            p.process
                .args
                .iter()
                .find(|a| a.starts_with("-javaagent:"))
                .cloned()
        };
        // A single broker: no warm-up.
        assert_eq!(agent_arg(&driver.prepare(&spec).unwrap()), None);
        assert!(!props.exists());

        spec.node.topology = Topology::SharedStorage;
        let prepared = driver.prepare(&spec).unwrap();
        let arg = agent_arg(&prepared).expect("the warm-up agent runs");
        assert_eq!(
            arg,
            format!(
                "-javaagent:{}={}",
                dir.path().join("tls-warmup.jar").display(),
                props.display()
            )
        );
        // Before -jar: a JVM option, not an argument of ActiveMQ's main.
        let pos = |a: &str| prepared.process.args.iter().position(|x| x == a).unwrap();
        assert!(pos(&arg) < pos("-jar"));
        assert_eq!(std::fs::metadata(&props).unwrap().mode() & 0o777, 0o640);
        let text = std::fs::read_to_string(&props).unwrap();
        assert!(text.contains(&format!(
            "keystore={}",
            dir.path().join("conf/broker.p12").display()
        )));
        assert!(text.contains(&format!("password={}", driver.keystore_password)));
        assert!(text.contains(&format!("standby_ms={WARMUP_STANDBY_MS}")));

        // Without TLS there is nothing to warm up.
        spec.tls = None;
        spec.plaintext = true;
        assert_eq!(agent_arg(&driver.prepare(&spec).unwrap()), None);
        assert!(!props.exists());
    }

    #[test]
    fn a_broken_revision_fails_the_start_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sample_activemq_spec();
        spec.engine_config = Some("<broker><unclosed></broker>".into());
        let driver = test_driver(dir.path(), &spec);
        let err = format!("{:#}", driver.prepare(&spec).unwrap_err());
        assert!(err.contains("not well-formed"), "{err}");
    }

    #[test]
    fn rejects_a_foreign_spec() {
        assert!(activemq_spec(&sample_spec()).is_err());
    }

    #[tokio::test]
    async fn a_renewal_swaps_the_bridge_and_restarts_for_the_keystore() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sample_activemq_spec();
        spec.tls = Some(sample_tls());
        let driver = test_driver(dir.path(), &spec);
        driver.prepare(&spec).unwrap();
        let ports: Vec<u16> = driver
            .tls_endpoints(&spec)
            .iter()
            .map(|e| e.addr.port())
            .collect();
        assert_eq!(ports, [61617, 61614, 8883, 61619]);

        let mut renewed = spec.clone();
        renewed.tls = Some(crate::testutil::second_tls());
        let before = driver.wss.as_ref().unwrap().acceptor();
        assert_eq!(
            driver
                .apply_tls(&renewed, spec.tls.as_ref().unwrap())
                .await
                .unwrap(),
            LiveChange::AtNextStart
        );
        // the bridge has another config now (its certificate is checked in ws_bridge)
        let after = driver.wss.as_ref().unwrap().acceptor();
        assert!(!Arc::ptr_eq(before.config(), after.config()));
        // and the keystore written by the restart's prepare holds the new leaf
        driver.prepare(&renewed).unwrap();
        let p12 = std::fs::read(dir.path().join("conf/broker.p12")).unwrap();
        let store = p12_keystore::KeyStore::from_pkcs12(
            &p12,
            &driver.keystore_password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .unwrap();
        let (_, chain) = store.private_key_chain().unwrap();
        assert_eq!(
            chain.certs()[0].as_der(),
            crate::tlsutil::leaf_der(&renewed.tls.as_ref().unwrap().cert_pem)
                .unwrap()
                .as_slice()
        );
        // bad material: refused, nothing swapped
        let mut bad = renewed.clone();
        bad.tls.as_mut().unwrap().key_pem = sample_tls().key_pem;
        assert!(driver
            .apply_tls(&bad, renewed.tls.as_ref().unwrap())
            .await
            .is_err());
        let still = driver.wss.as_ref().unwrap().acceptor();
        assert!(Arc::ptr_eq(after.config(), still.config()));
        // a standby serves the bridge's listener only (the broker binds none)
        let standby: Vec<u16> = driver
            .standby_tls_endpoints(&spec)
            .iter()
            .map(|e| e.addr.port())
            .collect();
        assert_eq!(standby, [61619]);
        // the driver's secrets are the keystore's and the probe user's passwords
        assert_eq!(driver.secrets().len(), 2);
        assert!(driver.secrets().contains(&driver.keystore_password));
    }

    #[tokio::test]
    async fn a_standby_gets_its_users_written_without_a_login() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sample_activemq_spec();
        let driver = test_driver(dir.path(), &spec);
        driver.prepare(&spec).unwrap();
        spec.users[1].password = "changed-Passw0rd".into();
        // nothing listens on the probe's port: a login would fail, staging does not
        assert!(driver.stage_users(&spec).await.unwrap());
        let users = std::fs::read_to_string(dir.path().join("conf/users.properties")).unwrap();
        assert!(users.contains("app=changed-Passw0rd"), "{users}");
        assert!(users.contains(&format!("{}=", jaas::INTERNAL_USER)));
        assert!(driver.waits_for_lock(&[
            "x | INFO  | Database /var/lib/activemq/kahadb/lock is locked by another server. This broker is now in slave mode waiting a lock to be acquired | y | main".to_string()
        ]));
    }

    #[test]
    fn nothing_of_the_agent_is_written_on_the_data_volume() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sample_activemq_spec();
        spec.tls = Some(sample_tls());
        let driver = test_driver(dir.path(), &spec);
        driver.prepare(&spec).unwrap();
        let data = dir.path().join("data");
        assert!(data.is_dir());
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        // and the paths the engine is given for its store are on it
        let xml = std::fs::read_to_string(dir.path().join("conf/activemq.xml")).unwrap();
        assert!(
            xml.contains(&format!("directory=\"{}/kahadb\"", data.display())),
            "{xml}"
        );
        // in the image: the agent's own files are per container, not on the volume
        let image = AmqPaths::default();
        for own in [&image.conf_dir, &image.state_dir, &image.tmp_dir] {
            assert!(!own.starts_with(&image.data_dir), "{}", own.display());
        }
    }

    #[test]
    fn only_the_keystore_inputs_need_a_restart() {
        let one = sample_tls();
        let two = crate::testutil::second_tls();
        assert_eq!(keystore_change(&one, &one), LiveChange::Applied);
        assert_eq!(keystore_change(&one, &two), LiveChange::AtNextStart);
        let mut ca_only = one.clone();
        ca_only.ca_pem = two.cert_pem.clone();
        assert_eq!(keystore_change(&one, &ca_only), LiveChange::Applied);
        let mut key_only = one.clone();
        key_only.key_pem = two.key_pem.clone();
        assert_eq!(keystore_change(&one, &key_only), LiveChange::AtNextStart);
    }

    #[tokio::test]
    async fn memory_changes_apply_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let spec = sample_activemq_spec();
        let driver = test_driver(dir.path(), &spec);
        assert_eq!(
            driver
                .apply_memory_limit(&spec, Some(1 << 30))
                .await
                .unwrap(),
            LiveChange::AtNextStart
        );
    }
}
