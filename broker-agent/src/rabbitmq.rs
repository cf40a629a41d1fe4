//! Everything RabbitMQ-specific: rendering `rabbitmq.conf` and `enabled_plugins`, writing
//! the Erlang cookie, the engine's command line and environment, and the
//! [`EngineDriver`](crate::agent::EngineDriver) that probes and manages a running node.
//!
//! The config is rendered from the spec *and the container's memory limit* before every
//! start: RabbitMQ does not see cgroup limits, so the agent writes
//! `total_memory_available_override_value` and an absolute `vm_memory_high_watermark`
//! itself (see `shared/reference/docker-rabbitmq.md` §4).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::unix::fs::PermissionsExt;

use anyhow::Context;

use crate::agent::{BoxFuture, EngineDriver, Prepared};
use crate::cgroup;
use crate::fsutil::{self, Owner};
use crate::rabbitmqctl::RabbitCtl;
use crate::readiness::{amqp_handshake, http_responds, tcp_accepts};
use crate::spec::AgentSpec;
use crate::supervisor::ProcessSpec;

/// Plugins every Berth RabbitMQ broker runs.
pub const ENABLED_PLUGINS: &str = "[rabbitmq_management,rabbitmq_mqtt,rabbitmq_stomp,rabbitmq_prometheus,rabbitmq_web_mqtt,rabbitmq_web_stomp].\n";
/// Share of the memory limit RabbitMQ may use before blocking publishers, by default.
pub const DEFAULT_WATERMARK_FRACTION: f64 = 0.4;
/// AMQP listener inside the container.
pub const AMQP_PORT: u16 = 5672;
/// Prometheus listener inside the container (used for the quiet liveness check).
pub const PROMETHEUS_PORT: u16 = 15692;
/// OS user the engine runs as.
pub const ENGINE_USER: &str = "rabbitmq";
/// Name used for the bootstrap user when the first spec user cannot be written into
/// rabbitmq.conf; it is deleted by the first reconciliation.
pub const BOOTSTRAP_USER: &str = "berth-bootstrap";

/// Absolute watermark in bytes for `limit` × `fraction`.
pub fn watermark_bytes(limit: u64, fraction: f64) -> u64 {
    (limit as f64 * fraction).floor() as u64
}

/// `value` as a cuttlefish (rabbitmq.conf) value, or None if it cannot be represented.
///
/// Unquoted values end at a `#` (comment) and lose surrounding blanks; single-quoted
/// values may contain anything but `'` and line breaks.
pub fn conf_value(value: &str) -> Option<String> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return None;
    }
    let blank_edge = |c: char| c == ' ' || c == '\t';
    let plain = !value.contains('#')
        && !value.starts_with(blank_edge)
        && !value.ends_with(blank_edge)
        && !value.starts_with('\'');
    if plain {
        Some(value.to_string())
    } else if !value.contains('\'') {
        Some(format!("'{value}'"))
    } else {
        None
    }
}

/// Render `/etc/rabbitmq/rabbitmq.conf` for `spec` in a container limited to
/// `memory_limit` bytes (None = unlimited).
///
/// The first spec user becomes `default_user` (created on a virgin node only; later
/// changes are applied with `rabbitmqctl`). If its name or password cannot be written
/// in cuttlefish syntax, a throwaway bootstrap user with a random password is used
/// instead and the real user is created by the first reconciliation.
pub fn render_rabbitmq_conf(spec: &AgentSpec, memory_limit: Option<u64>) -> String {
    let first = spec.users.first();
    let user = first.and_then(|u| conf_value(&u.username));
    let pass = first.and_then(|u| conf_value(&u.password));
    let (user, pass) = match (user, pass) {
        (Some(u), Some(p)) => (u, p),
        _ => (
            BOOTSTRAP_USER.to_string(),
            // /dev/urandom cannot realistically fail; the clock is a last resort for a
            // password that lives only until the first reconciliation.
            fsutil::random_hex(24).unwrap_or_else(|_| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                format!("{:x}{:x}", t.as_nanos(), std::process::id())
            }),
        ),
    };
    let fraction = spec
        .memory_high_watermark
        .unwrap_or(DEFAULT_WATERMARK_FRACTION);

    let mut c = String::new();
    let mut line = |k: &str, v: &str| {
        c.push_str(k);
        c.push_str(" = ");
        c.push_str(v);
        c.push('\n');
    };
    line("default_user", &user);
    line("default_pass", &pass);
    line("default_user_tags.administrator", "true");
    line(
        &format!("default_user_tags.{}", crate::rabbitmqctl::MANAGED_TAG),
        "true",
    );
    line("default_vhost", "/");
    line("default_permissions.configure", ".*");
    line("default_permissions.read", ".*");
    line("default_permissions.write", ".*");
    line("loopback_users", "none");
    line("listeners.tcp.default", &AMQP_PORT.to_string());
    line("management.tcp.port", "15672");
    line("mqtt.listeners.tcp.default", "1883");
    line("stomp.listeners.tcp.default", "61613");
    line("web_mqtt.tcp.port", "15675");
    line("web_stomp.tcp.port", "15674");
    line("prometheus.tcp.port", &PROMETHEUS_PORT.to_string());
    line("log.console", "true");
    line("log.console.level", "info");
    line("log.file", "false");
    match memory_limit {
        Some(limit) => {
            line("total_memory_available_override_value", &limit.to_string());
            line(
                "vm_memory_high_watermark.absolute",
                &watermark_bytes(limit, fraction).to_string(),
            );
        }
        None => line("vm_memory_high_watermark.relative", &fraction.to_string()),
    }
    let mut out =
        String::from("# Written by the Berth broker agent at every start; edits are lost.\n");
    out.push_str(&c);
    if let Some(extra) = spec
        .engine_config
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        out.push_str("# From the broker's configuration revision:\n");
        out.push_str(extra.trim_end());
        out.push('\n');
    }
    out
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

/// Write rabbitmq.conf, enabled_plugins and the cookie, and hand the data directory to
/// the engine user. `config_owner` owns the config files (root:rabbitmq in production),
/// `engine_owner` the data directory and cookie.
/// A node that has never booted on this volume: RabbitMQ keeps its database under
/// `mnesia/` in the data directory.
pub fn is_virgin(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("mnesia")).map_or(true, |mut d| d.next().is_none())
}

/// On a virgin node `default_user` creates the first spec user (administrator, tagged as
/// Berth-managed) and nobody else, not even `guest`: with one representable user that is
/// exactly the spec.
pub fn bootstraps_exactly_the_spec_users(spec: &AgentSpec) -> bool {
    match spec.users.as_slice() {
        [only] => conf_value(&only.username).is_some() && conf_value(&only.password).is_some(),
        _ => false,
    }
}

pub fn write_engine_files(
    spec: &AgentSpec,
    memory_limit: Option<u64>,
    paths: &RabbitPaths,
    config_owner: Owner,
    engine_owner: Owner,
) -> anyhow::Result<()> {
    fsutil::write_atomic(
        &paths.conf_dir.join("rabbitmq.conf"),
        render_rabbitmq_conf(spec, memory_limit).as_bytes(),
        0o640,
        Some(config_owner),
    )?;
    fsutil::write_atomic(
        &paths.conf_dir.join("enabled_plugins"),
        ENABLED_PLUGINS.as_bytes(),
        0o644,
        Some(config_owner),
    )?;

    std::fs::create_dir_all(&paths.data_dir)
        .with_context(|| format!("creating {}", paths.data_dir.display()))?;
    let cookie_path = paths.data_dir.join(".erlang.cookie");
    let cookie = match &spec.erlang_cookie {
        Some(c) => c.clone(),
        None => match std::fs::read_to_string(&cookie_path) {
            Ok(existing) if !existing.trim().is_empty() => existing,
            _ => {
                tracing::warn!("spec has no erlang_cookie; generating one for this node");
                fsutil::random_hex(20)?.to_uppercase()
            }
        },
    };
    fsutil::write_atomic(&cookie_path, cookie.as_bytes(), 0o400, Some(engine_owner))?;
    fsutil::chown_recursive(&paths.data_dir, engine_owner)?;
    // Scratch dir: traversable but not listable by the engine user; emptied at every
    // start so a crash can never leave a definitions file (with passwords) behind.
    let _ = std::fs::remove_dir_all(&paths.scratch_dir);
    std::fs::create_dir_all(&paths.scratch_dir)
        .with_context(|| format!("creating {}", paths.scratch_dir.display()))?;
    std::fs::set_permissions(&paths.scratch_dir, std::fs::Permissions::from_mode(0o711))?;
    if paths.log_dir.exists() {
        fsutil::chown_recursive(&paths.log_dir, engine_owner)?;
    }
    Ok(())
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
    pub fn new(paths: RabbitPaths) -> anyhow::Result<RabbitDriver> {
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
            amqp_addr: SocketAddr::from(([127, 0, 0, 1], AMQP_PORT)),
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

impl EngineDriver for RabbitDriver {
    fn prepare(&self, spec: &AgentSpec) -> anyhow::Result<Prepared> {
        let memory_limit = cgroup::read_memory_limit();
        let virgin = is_virgin(&self.paths.data_dir);
        write_engine_files(
            spec,
            memory_limit,
            &self.paths,
            self.config_owner,
            self.engine_owner,
        )
        .context("preparing RabbitMQ files")?;
        let fraction = spec
            .memory_high_watermark
            .unwrap_or(DEFAULT_WATERMARK_FRACTION);
        match memory_limit {
            Some(limit) => tracing::info!(
                limit_bytes = limit,
                watermark_bytes = watermark_bytes(limit, fraction),
                "rendered rabbitmq.conf for the container memory limit"
            ),
            None => tracing::info!(fraction, "rendered rabbitmq.conf (no memory limit found)"),
        }
        Ok(Prepared {
            process: self.process(),
            memory_limit,
            users_settled: virgin && bootstraps_exactly_the_spec_users(spec),
        })
    }

    fn probe(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            amqp_handshake(self.amqp_addr, Duration::from_secs(3)).await?;
            Ok(())
        })
    }

    fn liveness(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let timeout = Duration::from_secs(3);
            tcp_accepts(self.amqp_addr, timeout).await?;
            let prometheus = SocketAddr::new(self.amqp_addr.ip(), PROMETHEUS_PORT);
            http_responds(prometheus, "/berth-agent-liveness", timeout).await?;
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

    fn apply_memory_watermark(
        &self,
        limit: Option<u64>,
        fraction: Option<f64>,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let fraction = fraction.unwrap_or(DEFAULT_WATERMARK_FRACTION);
            let absolute = limit.map(|l| watermark_bytes(l, fraction));
            self.ctl.set_watermark(absolute, fraction).await?;
            Ok(())
        })
    }

    fn current_memory_limit(&self) -> Option<u64> {
        cgroup::read_memory_limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::EngineUser;
    use crate::specfile::tests::sample_spec;

    fn conf_lines(conf: &str) -> Vec<(&str, &str)> {
        conf.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.split_once(" = ").unwrap())
            .collect()
    }

    fn get<'a>(conf: &'a str, key: &str) -> Option<&'a str> {
        conf_lines(conf)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn renders_users_listeners_and_logging() {
        let conf = render_rabbitmq_conf(&sample_spec(), None);
        assert_eq!(get(&conf, "default_user"), Some("admin"));
        assert_eq!(get(&conf, "default_pass"), Some("s3cret-Passw0rd"));
        assert_eq!(get(&conf, "default_user_tags.administrator"), Some("true"));
        assert_eq!(get(&conf, "default_vhost"), Some("/"));
        for p in ["configure", "read", "write"] {
            assert_eq!(get(&conf, &format!("default_permissions.{p}")), Some(".*"));
        }
        assert_eq!(get(&conf, "loopback_users"), Some("none"));
        assert_eq!(get(&conf, "listeners.tcp.default"), Some("5672"));
        assert_eq!(get(&conf, "management.tcp.port"), Some("15672"));
        assert_eq!(get(&conf, "mqtt.listeners.tcp.default"), Some("1883"));
        assert_eq!(get(&conf, "stomp.listeners.tcp.default"), Some("61613"));
        assert_eq!(get(&conf, "web_mqtt.tcp.port"), Some("15675"));
        assert_eq!(get(&conf, "web_stomp.tcp.port"), Some("15674"));
        assert_eq!(get(&conf, "prometheus.tcp.port"), Some("15692"));
        assert_eq!(get(&conf, "log.console"), Some("true"));
        assert_eq!(get(&conf, "log.console.level"), Some("info"));
        assert_eq!(get(&conf, "log.file"), Some("false"));
        // no duplicate keys
        let keys: Vec<_> = conf_lines(&conf).into_iter().map(|(k, _)| k).collect();
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(keys.len(), unique.len());
    }

    #[test]
    fn memory_limit_gives_absolute_watermark() {
        let conf = render_rabbitmq_conf(&sample_spec(), Some(1 << 30));
        assert_eq!(
            get(&conf, "total_memory_available_override_value"),
            Some("1073741824")
        );
        // 0.4 × 1 GiB, rounded down
        assert_eq!(
            get(&conf, "vm_memory_high_watermark.absolute"),
            Some("429496729")
        );
        assert_eq!(get(&conf, "vm_memory_high_watermark.relative"), None);
    }

    #[test]
    fn spec_fraction_is_used() {
        let mut spec = sample_spec();
        spec.memory_high_watermark = Some(0.5);
        let conf = render_rabbitmq_conf(&spec, Some(4 << 30));
        assert_eq!(
            get(&conf, "vm_memory_high_watermark.absolute"),
            Some("2147483648")
        );
        let conf = render_rabbitmq_conf(&spec, None);
        assert_eq!(get(&conf, "vm_memory_high_watermark.relative"), Some("0.5"));
        assert_eq!(get(&conf, "total_memory_available_override_value"), None);
    }

    #[test]
    fn no_limit_uses_default_relative_fraction() {
        let conf = render_rabbitmq_conf(&sample_spec(), None);
        assert_eq!(get(&conf, "vm_memory_high_watermark.relative"), Some("0.4"));
        assert_eq!(get(&conf, "vm_memory_high_watermark.absolute"), None);
    }

    #[test]
    fn only_first_user_goes_into_conf() {
        let mut spec = sample_spec();
        spec.users.push(EngineUser {
            username: "second".into(),
            password: "second-password-1".into(),
            admin: false,
        });
        let conf = render_rabbitmq_conf(&spec, None);
        assert_eq!(get(&conf, "default_user"), Some("admin"));
        assert!(!conf.contains("second"));
    }

    #[test]
    fn awkward_passwords_are_quoted_or_replaced() {
        assert_eq!(conf_value("plain-Pass1").as_deref(), Some("plain-Pass1"));
        assert_eq!(conf_value("with space").as_deref(), Some("with space"));
        assert_eq!(conf_value("has#hash").as_deref(), Some("'has#hash'"));
        assert_eq!(conf_value(" lead").as_deref(), Some("' lead'"));
        assert_eq!(conf_value("'quoted").as_deref(), None);
        assert_eq!(conf_value("a#b'c").as_deref(), None);
        assert_eq!(conf_value("line\nbreak"), None);
        assert_eq!(conf_value(""), None);

        let mut spec = sample_spec();
        spec.users[0].password = "it's#tricky".into();
        let conf = render_rabbitmq_conf(&spec, None);
        assert_eq!(get(&conf, "default_user"), Some(BOOTSTRAP_USER));
        assert!(!conf.contains("tricky"));
        assert!(get(&conf, "default_pass").unwrap().len() >= 32);
    }

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

    #[test]
    fn writes_files_with_modes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = RabbitPaths {
            conf_dir: dir.path().join("etc"),
            data_dir: dir.path().join("data"),
            log_dir: dir.path().join("log"),
            scratch_dir: dir.path().join("run"),
            ..RabbitPaths::default()
        };
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
            ENABLED_PLUGINS
        );
        assert_eq!(std::fs::read_to_string(&cookie).unwrap(), "COOKIEVALUE1234");
        assert_eq!(std::fs::metadata(&cookie).unwrap().mode() & 0o777, 0o400);

        // Without a cookie in the spec the existing one is kept.
        let mut spec = sample_spec();
        spec.erlang_cookie = None;
        write_engine_files(&spec, None, &paths, me, me).unwrap();
        assert_eq!(std::fs::read_to_string(&cookie).unwrap(), "COOKIEVALUE1234");
    }

    #[test]
    fn configuration_revision_is_appended_after_berths_keys() {
        let mut spec = crate::specfile::tests::sample_spec();
        spec.engine_config = Some("# tenant\nheartbeat = 30\n".into());
        let conf = render_rabbitmq_conf(&spec, Some(1 << 30));
        let managed = conf.find("listeners.tcp.default").unwrap();
        let tenant = conf.find("heartbeat = 30").unwrap();
        assert!(tenant > managed);
        assert!(conf.ends_with("heartbeat = 30\n"));
    }

    #[test]
    fn a_virgin_node_with_one_plain_user_needs_no_reconciliation() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_virgin(dir.path()));
        std::fs::create_dir_all(dir.path().join("mnesia/rabbit@x")).unwrap();
        assert!(!is_virgin(dir.path()));
        let spec = crate::specfile::tests::sample_spec();
        assert_eq!(spec.users.len(), 1);
        assert!(bootstraps_exactly_the_spec_users(&spec));
        let mut two = spec.clone();
        two.users.push(two.users[0].clone());
        two.users[1].username = "second".into();
        assert!(!bootstraps_exactly_the_spec_users(&two));
        let conf = render_rabbitmq_conf(&spec, None);
        assert!(conf.contains("default_user_tags.berth-managed = true"));
    }
}
