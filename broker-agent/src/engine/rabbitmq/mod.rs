//! The RabbitMQ [`EngineDriver`]: writes `rabbitmq.conf`, `enabled_plugins`, the Erlang
//! cookie and (with TLS material) the PEM files, starts `rabbitmq-server` as the
//! `rabbitmq` user, probes it over AMQP and manages users and the memory watermark of the
//! running node with `rabbitmqctl`.
//!
//! - [`conf`]: rendering the config files;
//! - [`ctl`]: `rabbitmqctl` (user reconciliation, watermark);
//! - [`probe`]: the AMQP handshake readiness probe and the quiet liveness helpers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_contract::ports::rabbitmq as ports;
use agent_contract::{AgentSpec, Engine, EngineSpec, RabbitmqSpec, TlsMaterial};
use anyhow::Context;

use crate::engine::{BoxFuture, Diagnosis, EngineDriver, LiveChange, Prepared, TlsEndpoint};
use crate::fsutil::{self, Owner};
use crate::supervisor::ProcessSpec;

pub mod conf;
pub mod ctl;
pub mod diagnose;
pub mod probe;

use conf::{TlsFiles, PROMETHEUS_PORT};
use ctl::RabbitCtl;

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
pub fn engine_env(hostname: &str, data_dir: &Path) -> Vec<(String, String)> {
    vec![
        ("HOME".into(), data_dir.display().to_string()),
        ("LANG".into(), "C.UTF-8".into()),
        ("LC_ALL".into(), "C.UTF-8".into()),
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

/// Write rabbitmq.conf, enabled_plugins, the TLS files and the cookie, and hand the data
/// directory to the engine user. `config_owner` owns the config files (root:rabbitmq in
/// production), `engine_owner` the data directory and cookie.
pub fn write_engine_files(
    spec: &AgentSpec,
    memory_limit: Option<u64>,
    paths: &RabbitPaths,
    config_owner: Owner,
    engine_owner: Owner,
) -> anyhow::Result<()> {
    let rabbit = rabbit_spec(spec)?;
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
        conf::render_rabbitmq_conf(spec, rabbit, memory_limit, tls).as_bytes(),
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

/// The engine command: `setpriv` drops to the rabbitmq user and execs the server (no
/// PAM session, no extra process left between the agent and the server's sh wrapper).
pub fn engine_process(paths: &RabbitPaths, hostname: &str) -> ProcessSpec {
    ProcessSpec {
        program: paths.setpriv.clone(),
        args: vec![
            format!("--reuid={ENGINE_USER}"),
            format!("--regid={ENGINE_USER}"),
            "--init-groups".into(),
            "--".into(),
            paths.server.display().to_string(),
        ],
        env: engine_env(hostname, &paths.data_dir),
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
}

impl RabbitDriver {
    /// Resolve the engine user and hostname; fails if the image lacks the `rabbitmq` user.
    pub fn new(paths: RabbitPaths, _spec: &AgentSpec) -> anyhow::Result<RabbitDriver> {
        let engine_owner = Owner::lookup_user(ENGINE_USER)?;
        let config_owner = Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: engine_owner.gid,
        };
        let hostname = nix::unistd::gethostname()
            .context("reading the hostname")?
            .to_string_lossy()
            .into_owned();
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
        })
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
        write_engine_files(
            spec,
            memory_limit,
            &self.paths,
            self.config_owner,
            self.engine_owner,
        )
        .context("preparing RabbitMQ files")?;
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
            users_settled: virgin && conf::bootstraps_exactly_the_spec_users(spec),
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
            let changes = self.ctl.reconcile_users(spec).await?;
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

        write_engine_files(&sample_spec(), Some(1 << 30), &paths, me, me).unwrap();

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
        write_engine_files(&spec, None, &paths, me, me).unwrap();
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
        write_engine_files(&sample_spec(), None, &paths, me, me).unwrap();
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
        write_engine_files(&spec, None, &paths, me, me).unwrap();
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
