//! A private, on-demand PostgreSQL cluster for development and tests.
//!
//! Berth's control plane stores its state in Postgres. Developers, tests and
//! CI should not need a hand-configured database server, a password, or the
//! machine-wide Debian cluster (`pg_ctlcluster`); instead this module runs the
//! distribution's own server binaries (`/usr/lib/postgresql/<ver>/bin`, from
//! Debian's `postgresql` package) on a cluster that lives entirely inside one
//! directory the caller chooses, e.g. `./.berth/postgres` or `target/test-pg`.
//!
//! [`EmbeddedPostgres::ensure_running`] creates that cluster with `initdb` when
//! it is missing, starts it when it is not running, and otherwise just reuses
//! it. It is idempotent and safe to call from several processes (or tasks) at
//! once: the check-and-start happens under an exclusive file lock. The server
//! is deliberately *not* stopped on drop, so one server outlives many test
//! processes; call [`EmbeddedPostgres::stop`] to stop it.
//!
//! Layout of `dir`:
//!
//! | path           | what                                                      |
//! |----------------|-----------------------------------------------------------|
//! | `data/`        | the cluster (`PGDATA`), mode 0700, owned by the server user |
//! | `run/`         | the unix socket directory, mode 0700, owned by the server user |
//! | `password`     | the `postgres` role's password, mode 0600, owned by *our* user (root), not the server user |
//! | `port`         | the TCP port recorded for this cluster                    |
//! | `postgres.log` | the server log (`pg_ctl -l`)                              |
//! | `.lock`        | the lock file serialising `ensure_running`/`stop`         |
//!
//! # Who can connect
//!
//! The server listens on `127.0.0.1` and on a unix socket in `run/` only.
//! Every local user can reach `127.0.0.1`, so TCP logins need the password
//! (`scram-sha-256`, also set as `password_encryption`): a random 256-bit
//! secret that `ensure_running` keeps in `dir/password` and puts in
//! [`EmbeddedPostgres::url`]. The role gets it as a SCRAM verifier computed
//! here, so the plain password never reaches the server (nor its log).
//!
//! The unix socket stays `trust`: `run/` is mode 0700 and owned by the server
//! user, so only that user and root can reach the socket, and both can read
//! and rewrite the cluster's files anyway; trust there grants nothing new. It
//! is how `ensure_running` sets the password (`peer` would need an ident map
//! from root to `postgres`, for no gain).
//!
//! `pg_hba.conf` starts with a version marker. Clusters from before the
//! password (trust on `127.0.0.1`, no `password` file) are migrated by
//! `ensure_running`, under the lock, whether it starts the server or reuses a
//! running one: it gives the role the password first (over the socket), then
//! rewrites `pg_hba.conf` and reloads, and waits until passwordless TCP logins
//! are refused, so a URL it hands out works at every moment.
//!
//! `initdb` and `postgres` refuse to run as root. When this process runs as
//! root, every server command runs as Debian's unprivileged `postgres` user
//! (through `runuser`) and the cluster's files are owned by that user; the
//! directories above `dir` must therefore be traversable by it. Those owned by
//! root that are not get one POSIX ACL entry, `u:postgres:x` (search only: no
//! listing, no reading; their owner and other bits are left as they were, the
//! group bits then show the ACL mask `--x`); others are an error. When not
//! running as root, the commands run as the current user.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::{fchown, lchown, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::unistd::{getegid, geteuid, Gid, Uid, User};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::Connection;
use tokio::process::Command;
use xattr::FileExt;

/// Name of the unprivileged user the server runs as when we are root.
const PG_USER: &str = "postgres";
/// Where Debian installs the server binaries, one `<ver>/bin` per version.
const DEBIAN_PG_LIB: &str = "/usr/lib/postgresql";
/// How long `ensure_running`/`stop` wait for another process's lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a server that is already running may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// `sun_path` holds 108 bytes including the trailing NUL.
const MAX_SOCKET_PATH: usize = 107;
/// `max_connections` of the server (the test suites open many pools).
const MAX_CONNECTIONS: u32 = 300;
/// How long a `pg_hba.conf` reload may take to show (it is asynchronous).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The file in `dir` holding the `postgres` role's password.
const PASSWORD_FILE: &str = "password";
/// Random bytes in a password (written as hex: nothing to escape in URLs or SQL).
const PASSWORD_BYTES: usize = 32;
/// First line of the `pg_hba.conf` we write; another first line means an
/// older cluster (trust on TCP) to migrate.
const HBA_MARKER: &str = "# berth-embedded-pg hba v2";
/// The `pg_hba.conf` of every cluster: password on TCP, trust on the unix
/// socket (whose directory only the server user and root can enter).
const HBA: &str = "# berth-embedded-pg hba v2 (written by Berth's embedded_pg; do not edit)\n\
# Password (SCRAM) on 127.0.0.1; trust on the unix socket, whose directory\n\
# (run/, mode 0700) only the server user and root can enter.\n\
# TYPE  DATABASE     USER  ADDRESS       METHOD\n\
local   all          all                 trust\n\
host    all          all   127.0.0.1/32  scram-sha-256\n\
local   replication  all                 trust\n\
host    replication  all   127.0.0.1/32  scram-sha-256\n";

/// A private PostgreSQL cluster in a directory, started on demand.
#[derive(Debug, Clone)]
pub struct EmbeddedPostgres {
    dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<RunAs>,
    password: Password,
    started_here: bool,
}

/// The `postgres` role's password; `Debug` does not show it.
#[derive(Clone, Default)]
struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The user server commands run as when this process is root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

impl EmbeddedPostgres {
    /// Ensure a private Postgres cluster lives in `dir` and is running.
    ///
    /// The cluster is created with `initdb` if missing, owned by the
    /// `postgres` user when we are root; the server listens on `127.0.0.1`
    /// (password logins only) and a socket directory inside `dir` (trust,
    /// reachable by root and the server user only). If a server (started by
    /// this or another process) is already running on `dir`, it is reused
    /// ([`started_by_us`](Self::started_by_us) tells which). The port is
    /// `port` if given, else the one recorded in `dir/port`, else a free one,
    /// which is then recorded. A cluster from before passwords is migrated
    /// (see the module doc). Idempotent and safe under concurrent callers.
    pub async fn ensure_running(dir: &Path, port: Option<u16>) -> anyhow::Result<Self> {
        let run_as = run_as()?;
        let dir = prepare_dir(dir, run_as).await?;
        let pg = Self::layout(dir, run_as, 0);
        pg.check_socket_path_len(port.unwrap_or(65535))?;

        let _lock = lock_dir(&pg.dir, run_as).await?;
        pg.fix_ownership()?;

        if !pg.data_dir.join("PG_VERSION").exists() {
            pg.initdb().await?;
        }
        let pg = Self {
            bin: pg_bin_for(&pg.data_dir)?,
            password: pg.load_or_create_password()?,
            ..pg
        };

        if let Some(running) = pg.running_port().await? {
            if let Some(wanted) = port {
                if wanted != running {
                    bail!(
                        "the Postgres server for {} is already running on port {running}, \
                         but port {wanted} was requested; stop it first",
                        pg.dir.display()
                    );
                }
            }
            let pg = Self {
                port: running,
                ..pg
            };
            pg.wait_ready(READY_TIMEOUT).await?;
            pg.record_port()?;
            pg.secure().await?;
            return Ok(pg);
        }

        let (mut port, origin) = match port {
            Some(p) => (p, "requested".to_string()),
            None => match pg.recorded_port()? {
                Some(p) => (p, format!("recorded in {}", pg.port_file().display())),
                None => (pick_free_port()?, "picked".to_string()),
            },
        };
        // A picked port is free only until someone else's connection takes it (it comes
        // from the kernel's ephemeral range): pick again a few times.
        let free = |p: u16| TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)).map(drop);
        if origin == "picked" {
            for _ in 0..5 {
                if free(port).is_ok() {
                    break;
                }
                port = pick_free_port()?;
            }
        }
        if let Err(e) = free(port) {
            bail!(
                "cannot start Postgres for {}: port {port} ({origin}) on 127.0.0.1 is in use \
                 by another process ({e}); free it, or pass another port \
                 (the recorded port lives in {})",
                pg.dir.display(),
                pg.port_file().display()
            );
        }
        let pg = Self {
            port,
            started_here: true,
            ..pg
        };
        pg.check_socket_path_len(port)?;
        pg.start().await?;
        pg.record_port()?;
        pg.secure().await?;
        Ok(pg)
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DB`, for the superuser.
    ///
    /// It holds the password: do not log it.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{PG_USER}:{}@127.0.0.1:{}/{}",
            percent_encode(&self.password.0),
            self.port,
            percent_encode(db)
        )
    }

    /// Whether the `ensure_running` call that returned this started the
    /// server, rather than reusing one that was already running (started by
    /// an earlier call, or by another process).
    pub fn started_by_us(&self) -> bool {
        self.started_here
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster (`data/`, `run/`, `port`, ...).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The unix socket directory (usable as `host=` in libpq terms).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Stop the server (`pg_ctl stop -m fast`); a no-op if it is not running.
    ///
    /// Not called on drop: the server is meant to outlive test processes.
    pub async fn stop(&self) -> anyhow::Result<()> {
        let _lock = lock_dir(&self.dir, self.run_as).await?;
        if self.running_port().await?.is_none() {
            return Ok(());
        }
        let out = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .output()
            .await
            .context("running pg_ctl stop")?;
        if !out.status.success() {
            bail!(
                "pg_ctl stop failed for {}: {}",
                self.data_dir.display(),
                describe_output(&out)
            );
        }
        Ok(())
    }

    /// Create database `name` (a quoted identifier) unless it already exists.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<()> {
        if name.is_empty() || name.len() > 63 || name.contains('\0') {
            bail!("invalid database name {name:?}: must be 1 to 63 bytes, without NUL");
        }
        let opts = self.tcp_options(&self.password.0);
        let mut conn = PgConnection::connect_with(&opts)
            .await
            .with_context(|| format!("connecting to Postgres on 127.0.0.1:{}", self.port))?;
        let sql = format!("CREATE DATABASE {}", quote_ident(name));
        let result = sqlx::query(&sql).execute(&mut conn).await;
        let _ = conn.close().await;
        match result {
            Ok(_) => Ok(()),
            // 42P04 duplicate_database; 23505 when a concurrent CREATE won the race.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) =>
            {
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("creating database {name:?}")),
        }
    }

    fn layout(dir: PathBuf, run_as: Option<RunAs>, port: u16) -> Self {
        Self {
            data_dir: dir.join("data"),
            socket_dir: dir.join("run"),
            log_file: dir.join("postgres.log"),
            bin: PathBuf::new(),
            dir,
            port,
            run_as,
            password: Password::default(),
            started_here: false,
        }
    }

    /// Under the lock: give the server user what it needs in `dir` (the data
    /// directory may have been copied in, or left by a root-run tool).
    fn fix_ownership(&self) -> anyhow::Result<()> {
        if !self.socket_dir.exists() {
            make_private_dir(&self.socket_dir, self.run_as)?;
        }
        // The unix socket is `trust`: only its directory keeps other users out.
        let socket_meta = fs::symlink_metadata(&self.socket_dir)
            .with_context(|| format!("stat {}", self.socket_dir.display()))?;
        if !socket_meta.is_dir() {
            bail!("{} is not a directory", self.socket_dir.display());
        }
        if socket_meta.mode() & 0o777 != 0o700 {
            fs::set_permissions(&self.socket_dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("chmod 0700 {}", self.socket_dir.display()))?;
        }
        let Some(run_as) = self.run_as else {
            return Ok(());
        };
        chown_to(&self.socket_dir, Some(run_as))?;
        if self.log_file.exists() {
            chown_to(&self.log_file, Some(run_as))?;
        }
        if let Ok(meta) = fs::metadata(&self.data_dir) {
            if meta.uid() != run_as.uid.as_raw() {
                chown_recursive(&self.data_dir, run_as)?;
            }
            if meta.mode() & 0o777 != 0o700 {
                fs::set_permissions(&self.data_dir, fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("chmod 0700 {}", self.data_dir.display()))?;
            }
        }
        Ok(())
    }

    fn port_file(&self) -> PathBuf {
        self.dir.join("port")
    }

    fn recorded_port(&self) -> anyhow::Result<Option<u16>> {
        let file = self.port_file();
        match fs::read_to_string(&file) {
            Ok(s) => {
                let p = s.trim().parse::<u16>().ok().filter(|p| *p != 0);
                p.map(Some)
                    .ok_or_else(|| anyhow!("{} does not hold a port: {s:?}", file.display()))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
        }
    }

    fn record_port(&self) -> anyhow::Result<()> {
        if self.recorded_port().ok().flatten() == Some(self.port) {
            return Ok(());
        }
        let file = self.port_file();
        let tmp = self.dir.join("port.tmp");
        write_new_file(&tmp, format!("{}\n", self.port).as_bytes(), 0o644)?;
        chown_to(&tmp, self.run_as)?;
        fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))
    }

    fn password_file(&self) -> PathBuf {
        self.dir.join(PASSWORD_FILE)
    }

    /// The password in `dir/password`, or a new random one written there
    /// (mode 0600, owned by us; `dir` belongs to the server user, so a file
    /// that is not exactly that, e.g. a symlink, is replaced, not trusted).
    fn load_or_create_password(&self) -> anyhow::Result<Password> {
        let path = self.password_file();
        match File::open(&path) {
            Ok(mut file) => {
                let meta = file
                    .metadata()
                    .with_context(|| format!("stat {}", path.display()))?;
                let mut text = String::new();
                let private = meta.is_file()
                    && meta.uid() == geteuid().as_raw()
                    && meta.mode() & 0o077 == 0
                    && meta.len() <= 1024
                    && file.read_to_string(&mut text).is_ok();
                let text = text.trim();
                if private && is_password(text) {
                    return Ok(Password(text.to_string()));
                }
                tracing::warn!(
                    file = %path.display(),
                    "not a private password file of this user; replacing it with a new password"
                );
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let password = new_password();
        let tmp = self.dir.join(format!("{PASSWORD_FILE}.tmp"));
        write_new_file(&tmp, format!("{password}\n").as_bytes(), 0o600)?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(Password(password))
    }

    /// TCP connection options as `postgres` with `password`, ignoring the
    /// caller's `PG*` environment (`PGPASSWORD`, `PGSSLMODE`, ...).
    fn tcp_options(&self, password: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(PG_USER)
            .password(password)
            .database("postgres")
            .ssl_mode(PgSslMode::Disable)
    }

    /// Whether a TCP login with `password` succeeds (`false`: refused).
    async fn tcp_login(&self, password: &str) -> anyhow::Result<bool> {
        match PgConnection::connect_with(&self.tcp_options(password)).await {
            Ok(conn) => {
                let _ = conn.close().await;
                Ok(true)
            }
            // 28P01 invalid_password, 28000 invalid_authorization_specification.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("28P01") | Some("28000")) =>
            {
                Ok(false)
            }
            Err(e) => {
                Err(e).with_context(|| format!("connecting to Postgres on 127.0.0.1:{}", self.port))
            }
        }
    }

    /// A superuser connection over the unix socket (trust).
    async fn socket_connection(&self) -> anyhow::Result<PgConnection> {
        let opts = PgConnectOptions::new_without_pgpass()
            .socket(&self.socket_dir)
            .port(self.port)
            .username(PG_USER)
            .database("postgres");
        PgConnection::connect_with(&opts).await.with_context(|| {
            format!(
                "connecting to Postgres on its unix socket in {}",
                self.socket_dir.display()
            )
        })
    }

    /// Make the running server accept TCP logins with our password only.
    ///
    /// Usually two logins show it already does. Otherwise (a new cluster, or
    /// one made before passwords) the role gets the password first, then
    /// `pg_hba.conf` demands it, so a URL from us works throughout.
    async fn secure(&self) -> anyhow::Result<()> {
        let hba_current = self.hba_is_current()?;
        let trusts_tcp = self.tcp_login("").await?;
        if hba_current && !trusts_tcp && self.tcp_login(&self.password.0).await? {
            return Ok(());
        }

        let mut conn = self.socket_connection().await?;
        let result = async {
            // In postgresql.auto.conf (one statement each: ALTER SYSTEM refuses
            // to run in a transaction); max_connections too, as postgresql.conf
            // says 100 and a reload would complain about it.
            for setting in [
                "password_encryption = 'scram-sha-256'".to_string(),
                format!("max_connections = {MAX_CONNECTIONS}"),
            ] {
                sqlx::raw_sql(&format!("ALTER SYSTEM SET {setting}"))
                    .execute(&mut conn)
                    .await
                    .with_context(|| format!("ALTER SYSTEM SET {setting}"))?;
            }
            let verifier = scram_verifier(&self.password.0);
            sqlx::raw_sql(&format!("ALTER ROLE {PG_USER} PASSWORD '{verifier}'"))
                .execute(&mut conn)
                .await
                .context("setting the postgres role's password")?;
            if !hba_current {
                tracing::info!(
                    dir = %self.dir.display(),
                    "embedded Postgres: requiring a password on TCP (was trust)"
                );
                self.write_hba(&self.data_dir)?;
            }
            sqlx::raw_sql("SELECT pg_reload_conf()")
                .execute(&mut conn)
                .await
                .context("reloading the Postgres configuration")?;
            anyhow::Ok(())
        }
        .await;
        let _ = conn.close().await;
        result?;

        // The postmaster rereads pg_hba.conf on SIGHUP, asynchronously.
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        while self.tcp_login("").await? {
            if Instant::now() > deadline {
                bail!(
                    "the Postgres server for {} still lets TCP logins in without a password \
                     after reloading {}\n--- tail of {} ---\n{}",
                    self.dir.display(),
                    self.data_dir.join("pg_hba.conf").display(),
                    self.log_file.display(),
                    log_tail(&self.log_file)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !self.tcp_login(&self.password.0).await? {
            bail!(
                "the Postgres server for {} refuses the password in {}\n--- tail of {} ---\n{}",
                self.dir.display(),
                self.password_file().display(),
                self.log_file.display(),
                log_tail(&self.log_file)
            );
        }
        Ok(())
    }

    fn hba_is_current(&self) -> anyhow::Result<bool> {
        let path = self.data_dir.join("pg_hba.conf");
        match fs::read_to_string(&path) {
            Ok(s) => Ok(s.lines().next().is_some_and(|l| l.starts_with(HBA_MARKER))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Write our `pg_hba.conf` into the cluster `data` (atomically).
    fn write_hba(&self, data: &Path) -> anyhow::Result<()> {
        let hba = data.join("pg_hba.conf");
        let tmp = data.join("pg_hba.conf.berth-tmp");
        write_new_file(&tmp, HBA.as_bytes(), 0o600)?;
        chown_to(&tmp, self.run_as)?;
        fs::rename(&tmp, &hba).with_context(|| format!("writing {}", hba.display()))
    }

    fn check_socket_path_len(&self, port: u16) -> anyhow::Result<()> {
        let sock = self.socket_dir.join(format!(".s.PGSQL.{port}.lock"));
        let len = sock.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            bail!(
                "the Postgres unix socket path {} is {len} bytes, over the {MAX_SOCKET_PATH}-byte \
                 limit of unix sockets; use a shorter directory than {}",
                sock.display(),
                self.dir.display()
            );
        }
        Ok(())
    }

    /// Create the cluster in `data.tmp`, then rename it to `data`, so that an
    /// interrupted `initdb` never leaves a half-made cluster behind.
    async fn initdb(&self) -> anyhow::Result<()> {
        if self.data_dir.exists() {
            let mut entries = fs::read_dir(&self.data_dir)
                .with_context(|| format!("reading {}", self.data_dir.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{} exists and is not a Postgres cluster (no PG_VERSION); \
                     remove it to let a new cluster be created",
                    self.data_dir.display()
                );
            }
            fs::remove_dir(&self.data_dir)
                .with_context(|| format!("removing empty {}", self.data_dir.display()))?;
        }
        let bin = find_pg_bin()?;
        let tmp = self.dir.join("data.tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        }
        make_private_dir(&tmp, self.run_as)?;

        let out = self
            .command(&bin.join("initdb"))
            .arg("-D")
            .arg(&tmp)
            .args([
                "-U",
                PG_USER,
                "-A",
                "trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .output()
            .await
            .with_context(|| format!("running {}", bin.join("initdb").display()))?;
        if !out.status.success() {
            bail!(
                "initdb failed for {}: {}",
                tmp.display(),
                describe_output(&out)
            );
        }

        // Password on TCP from the first start on; `secure` sets the password.
        self.write_hba(&tmp)?;

        fs::rename(&tmp, &self.data_dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), self.data_dir.display()))
    }

    /// The port of the server running on this cluster, if there is one.
    ///
    /// A `postmaster.pid` whose process is gone, or whose PID now belongs to
    /// another process (e.g. after a machine restart), is stale: it and the
    /// socket lock files are removed so that the next start succeeds.
    async fn running_port(&self) -> anyhow::Result<Option<u16>> {
        let pid_file = self.data_dir.join("postmaster.pid");
        let contents = match fs::read_to_string(&pid_file) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", pid_file.display())),
        };
        let lines: Vec<&str> = contents.lines().collect();
        let pid = lines.first().and_then(|l| l.trim().parse::<i64>().ok());
        let port = lines.get(3).and_then(|l| l.trim().parse::<u16>().ok());

        let status = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("status")
            .output()
            .await
            .context("running pg_ctl status")?;
        let alive = status.status.success()
            && pid.is_some_and(|pid| is_postmaster_of(pid.unsigned_abs(), &self.data_dir));

        match (alive, port) {
            (true, Some(port)) => Ok(Some(port)),
            (true, None) => {
                // The postmaster writes the port shortly after the PID; wait for it.
                let deadline = Instant::now() + READY_TIMEOUT;
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let s = fs::read_to_string(&pid_file).unwrap_or_default();
                    if let Some(p) = s.lines().nth(3).and_then(|l| l.trim().parse().ok()) {
                        return Ok(Some(p));
                    }
                    if Instant::now() > deadline {
                        bail!(
                            "{} names a live server but no port; see {}",
                            pid_file.display(),
                            self.log_file.display()
                        );
                    }
                }
            }
            (false, _) => {
                remove_if_exists(&pid_file)?;
                if let Ok(entries) = fs::read_dir(&self.socket_dir) {
                    for entry in entries.flatten() {
                        let name = entry.file_name();
                        let name = name.to_string_lossy();
                        if name.starts_with(".s.PGSQL.") {
                            remove_if_exists(&entry.path())?;
                        }
                    }
                }
                Ok(None)
            }
        }
    }

    async fn start(&self) -> anyhow::Result<()> {
        let socket_dir = self.socket_dir.to_str().ok_or_else(|| {
            anyhow!(
                "socket directory {} is not UTF-8",
                self.socket_dir.display()
            )
        })?;
        if socket_dir.contains('\'') {
            bail!(
                "socket directory {} contains a single quote, which pg_ctl cannot pass on",
                self.socket_dir.display()
            );
        }
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k '{socket_dir}' -c unix_socket_permissions=0700 \
             -c max_connections={MAX_CONNECTIONS} -c fsync=on",
            self.port
        );
        let out = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .await
            .context("running pg_ctl start")?;
        if !out.status.success() {
            bail!(
                "pg_ctl start failed for {} on port {}: {}\n--- tail of {} ---\n{}",
                self.data_dir.display(),
                self.port,
                describe_output(&out),
                self.log_file.display(),
                log_tail(&self.log_file)
            );
        }
        self.wait_ready(Duration::from_secs(10)).await
    }

    /// Wait until the server accepts connections on 127.0.0.1:port.
    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self
                .pg_command("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", PG_USER, "-d", "postgres", "-t", "2"])
                .output()
                .await
                .context("running pg_isready")?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the Postgres server for {} does not accept connections on 127.0.0.1:{} \
                     (pg_isready exit {:?})\n--- tail of {} ---\n{}",
                    self.dir.display(),
                    self.port,
                    out.status.code(),
                    self.log_file.display(),
                    log_tail(&self.log_file)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn pg_command(&self, program: &str) -> Command {
        self.command(&self.bin.join(program))
    }

    /// A command run as the server user, from a directory it can read.
    fn command(&self, program: &Path) -> Command {
        command_as(program, self.run_as, &self.dir)
    }
}

/// Find the newest installed `/usr/lib/postgresql/*/bin`, or `$BERTH_PG_BIN`.
pub fn find_pg_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("BERTH_PG_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        if !bin.join("pg_ctl").is_file() {
            bail!(
                "BERTH_PG_BIN={} has no pg_ctl in it; point it at a PostgreSQL bin directory",
                bin.display()
            );
        }
        return Ok(bin);
    }
    let entries = fs::read_dir(DEBIAN_PG_LIB).with_context(|| {
        format!(
            "no PostgreSQL server installed ({DEBIAN_PG_LIB} is missing); \
             install it with `apt-get install postgresql`, or set BERTH_PG_BIN"
        )
    })?;
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in entries.flatten() {
        let bin = entry.path().join("bin");
        let Some(version) = parse_version(&entry.file_name()) else {
            continue;
        };
        if !bin.join("pg_ctl").is_file() || !bin.join("initdb").is_file() {
            continue;
        }
        if best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin).ok_or_else(|| {
        anyhow!(
            "no PostgreSQL server binaries under {DEBIAN_PG_LIB}/*/bin; \
             install them with `apt-get install postgresql`, or set BERTH_PG_BIN"
        )
    })
}

/// The binaries for an existing cluster: those of its major version when
/// installed (a cluster only runs under the version that created it), else
/// [`find_pg_bin`].
fn pg_bin_for(data_dir: &Path) -> anyhow::Result<PathBuf> {
    if std::env::var_os("BERTH_PG_BIN").is_some_and(|v| !v.is_empty()) {
        return find_pg_bin();
    }
    let version_file = data_dir.join("PG_VERSION");
    let version = fs::read_to_string(&version_file)
        .with_context(|| format!("reading {}", version_file.display()))?;
    let version = version.trim();
    let bin = Path::new(DEBIAN_PG_LIB).join(version).join("bin");
    if bin.join("pg_ctl").is_file() {
        return Ok(bin);
    }
    bail!(
        "the cluster in {} was created by PostgreSQL {version}, whose binaries ({}) are not \
         installed; install postgresql-{version}, set BERTH_PG_BIN, or remove the cluster",
        data_dir.display(),
        bin.display()
    )
}

fn parse_version(name: &OsStr) -> Option<Vec<u32>> {
    name.to_str()?
        .split('.')
        .map(|part| part.parse().ok())
        .collect()
}

/// `Some` when we are root and server commands must run as `postgres`.
fn run_as() -> anyhow::Result<Option<RunAs>> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name(PG_USER)
        .context("looking up the postgres user")?
        .ok_or_else(|| {
            anyhow!(
                "running as root, but there is no `{PG_USER}` user to run the server as \
                 (initdb/postgres refuse to run as root); install Debian's PostgreSQL \
                 with `apt-get install postgresql`"
            )
        })?;
    Ok(Some(RunAs {
        uid: user.uid,
        gid: user.gid,
    }))
}

fn command_as(program: &Path, run_as: Option<RunAs>, cwd: &Path) -> Command {
    let mut cmd = match run_as {
        Some(_) => {
            let mut c = Command::new("runuser");
            c.args(["-u", PG_USER, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    // Our cwd may be unreadable by the server user (e.g. /root), which initdb
    // and pg_ctl dislike; and PG* settings from the caller must not leak in.
    cmd.current_dir(cwd)
        .stdin(Stdio::null())
        .env_remove("PGDATA")
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .env_remove("PGUSER")
        .env_remove("PGDATABASE")
        .env_remove("PGOPTIONS")
        .kill_on_drop(false);
    cmd
}

/// Create `dir` (and parents), make it the server user's, and check that the
/// server user can reach it; root-owned ancestors in the way get the ACL
/// entry `u:postgres:x`. Returns its canonical path.
async fn prepare_dir(dir: &Path, run_as: Option<RunAs>) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let Some(run_as) = run_as else {
        return Ok(dir);
    };
    chown_to(&dir, Some(run_as))?;

    if postgres_can(&["-x", "-w"], &dir).await? {
        return Ok(dir);
    }
    // Top down, as a directory is only reachable through its parents.
    for ancestor in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
        if postgres_can(&["-x"], ancestor).await? {
            continue;
        }
        let cannot = |why: String| {
            anyhow!(
                "the `{PG_USER}` user cannot traverse {} (mode {:o}){why}, so the Postgres \
                 server cannot reach {}; allow it (e.g. `chmod o+x {}`) or choose a directory \
                 elsewhere (e.g. under /tmp)",
                ancestor.display(),
                fs::metadata(ancestor)
                    .map(|m| m.permissions().mode() & 0o7777)
                    .unwrap_or(0),
                dir.display(),
                ancestor.display()
            )
        };
        match grant_search(ancestor, run_as.uid) {
            Ok(()) => {}
            Err(GrantError::NotOurs(owner)) => {
                return Err(cannot(format!(
                    " and it belongs to uid {owner}, not to us, so it gets no ACL from us"
                )))
            }
            Err(GrantError::Refused(why)) => return Err(cannot(format!(": {why}"))),
        }
        if !postgres_can(&["-x"], ancestor).await? {
            return Err(cannot(" even with the ACL entry u:postgres:x".into()));
        }
        tracing::info!(
            dir = %ancestor.display(),
            "granted the postgres user search permission (ACL u:{PG_USER}:x) on a directory \
             above the embedded Postgres"
        );
    }
    if !postgres_can(&["-x", "-w"], &dir).await? {
        bail!(
            "the `{PG_USER}` user cannot write to {}; choose a directory elsewhere",
            dir.display()
        );
    }
    Ok(dir)
}

/// Whether the postgres user passes `test <flags...> path`.
async fn postgres_can(flags: &[&str], path: &Path) -> anyhow::Result<bool> {
    let mut args: Vec<OsString> = Vec::new();
    for (i, flag) in flags.iter().enumerate() {
        if i > 0 {
            args.push("-a".into());
        }
        args.push((*flag).into());
        args.push(path.as_os_str().to_owned());
    }
    let status = Command::new("runuser")
        .args(["-u", PG_USER, "--", "test"])
        .args(&args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .context("running runuser (util-linux) to check directory access")?;
    Ok(status.success())
}

fn make_private_dir(path: &Path, run_as: Option<RunAs>) -> anyhow::Result<()> {
    fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", path.display()))?;
    chown_to(path, run_as)
}

/// Give `path` to the server user; a symlink (the server user can plant one
/// in `dir`) is changed itself, never its target.
fn chown_to(path: &Path, run_as: Option<RunAs>) -> anyhow::Result<()> {
    if let Some(r) = run_as {
        lchown(path, Some(r.uid.as_raw()), Some(r.gid.as_raw()))
            .with_context(|| format!("chown {PG_USER} {}", path.display()))?;
    }
    Ok(())
}

fn chown_recursive(path: &Path, run_as: RunAs) -> anyhow::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
    };
    lchown(path, Some(run_as.uid.as_raw()), Some(run_as.gid.as_raw()))
        .with_context(|| format!("chown {PG_USER} {}", path.display()))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
            let entry = entry.with_context(|| format!("reading {}", path.display()))?;
            chown_recursive(&entry.path(), run_as)?;
        }
    }
    Ok(())
}

/// Holds the exclusive lock on `dir/.lock` until dropped.
struct DirLock {
    _file: File,
}

async fn lock_dir(dir: &Path, run_as: Option<RunAs>) -> anyhow::Result<DirLock> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    chown_to(&path, run_as)?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                if Instant::now() > deadline {
                    bail!(
                        "timed out after {:?} waiting for the lock {} held by another process",
                        LOCK_TIMEOUT,
                        path.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// Whether `pid` is a live process whose working directory is `data_dir`: the
/// postmaster chdirs into its data directory, so this tells our server apart
/// from an unrelated process that got the PID after a restart.
fn is_postmaster_of(pid: u64, data_dir: &Path) -> bool {
    let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd")) else {
        return false;
    };
    let data = fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    cwd == data
}

fn pick_free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .context("binding 127.0.0.1:0 to pick a free port")?;
    Ok(listener.local_addr()?.port())
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing stale {}", path.display())),
    }
}

fn describe_output(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

fn log_tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(s) => {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

/// Write a new file with `mode`, replacing whatever was at `path` without
/// following it (it may be a symlink planted by the server user).
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    remove_if_exists(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // Whatever the umask did.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    fchown(&file, Some(geteuid().as_raw()), Some(getegid().as_raw()))
        .with_context(|| format!("chown {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// A new random password: [`PASSWORD_BYTES`] from the OS, in hex.
fn new_password() -> String {
    use rand::RngCore;
    let mut raw = [0u8; PASSWORD_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_password(s: &str) -> bool {
    s.len() == 2 * PASSWORD_BYTES && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The SCRAM-SHA-256 verifier Postgres stores for `password` (what
/// `PQencryptPasswordConn` makes), so the server never sees the password itself.
fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// The access ACL xattr, in the kernel's format (`linux/posix_acl_xattr.h`):
/// a version, then (tag, perm, id) entries sorted by tag and id. It is what
/// `setfacl` writes; written here to need neither libacl nor the `acl` tools.
const ACL_XATTR: &str = "system.posix_acl_access";
const ACL_XATTR_VERSION: u32 = 2;
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const ACL_UNDEFINED_ID: u32 = u32::MAX;
const ACL_EXECUTE: u16 = 0x01;

/// One ACL entry; the derived order (tag, then id) is the kernel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct AclEntry {
    tag: u16,
    id: u32,
    perm: u16,
}

fn parse_acl(bytes: &[u8]) -> Option<Vec<AclEntry>> {
    let (version, rest) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != ACL_XATTR_VERSION || rest.len() % 8 != 0 {
        return None;
    }
    Some(
        rest.chunks_exact(8)
            .map(|c| AclEntry {
                tag: u16::from_le_bytes([c[0], c[1]]),
                perm: u16::from_le_bytes([c[2], c[3]]),
                id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

fn encode_acl(entries: &[AclEntry]) -> Vec<u8> {
    let mut out = ACL_XATTR_VERSION.to_le_bytes().to_vec();
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        out.extend_from_slice(&e.id.to_le_bytes());
    }
    out
}

/// `acl` (or, when `None`, the ACL that `mode` stands for) plus search
/// permission for user `uid`, and nothing more: the mask gains `x` only when
/// that lets no other entry search too.
fn acl_with_search(
    acl: Option<Vec<AclEntry>>,
    mode: u32,
    uid: u32,
) -> Result<Vec<AclEntry>, String> {
    let bits = |shift: u32| ((mode >> shift) & 0o7) as u16;
    let mut acl = acl.unwrap_or_else(|| {
        vec![
            AclEntry {
                tag: ACL_USER_OBJ,
                id: ACL_UNDEFINED_ID,
                perm: bits(6),
            },
            AclEntry {
                tag: ACL_GROUP_OBJ,
                id: ACL_UNDEFINED_ID,
                perm: bits(3),
            },
            AclEntry {
                tag: ACL_OTHER,
                id: ACL_UNDEFINED_ID,
                perm: bits(0),
            },
        ]
    });
    match acl.iter_mut().find(|e| e.tag == ACL_USER && e.id == uid) {
        Some(e) => e.perm |= ACL_EXECUTE,
        None => acl.push(AclEntry {
            tag: ACL_USER,
            id: uid,
            perm: ACL_EXECUTE,
        }),
    }
    match acl.iter().position(|e| e.tag == ACL_MASK) {
        Some(i) if acl[i].perm & ACL_EXECUTE == 0 => {
            // The group class: the owning group, named users and groups.
            let in_group_class =
                |e: &AclEntry| !matches!(e.tag, ACL_USER_OBJ | ACL_MASK | ACL_OTHER);
            let is_ours = |e: &AclEntry| e.tag == ACL_USER && e.id == uid;
            let others_search = acl
                .iter()
                .any(|e| in_group_class(e) && !is_ours(e) && e.perm & ACL_EXECUTE != 0);
            if others_search {
                return Err(
                    "its ACL masks out search permission for other entries, which \
                            adding u:postgres:x would grant"
                        .into(),
                );
            }
            acl[i].perm |= ACL_EXECUTE;
        }
        Some(_) => {}
        None => {
            // No mask yet: the group class was just the owning group, which
            // keeps its permissions under a mask of those plus `x`.
            let group = acl
                .iter()
                .find(|e| e.tag == ACL_GROUP_OBJ)
                .map_or(0, |e| e.perm);
            acl.push(AclEntry {
                tag: ACL_MASK,
                id: ACL_UNDEFINED_ID,
                perm: group | ACL_EXECUTE,
            });
        }
    }
    acl.sort();
    Ok(acl)
}

enum GrantError {
    /// Owned by this uid, not by us.
    NotOurs(u32),
    Refused(String),
}

/// Add the ACL entry `u:<uid>:x` to directory `path`, which must be ours.
fn grant_search(path: &Path, uid: Uid) -> Result<(), GrantError> {
    let refused = |what: &str, e: std::io::Error| GrantError::Refused(format!("{what}: {e}"));
    // One descriptor for the owner check and the change.
    let dir = File::open(path).map_err(|e| refused("opening it", e))?;
    let meta = dir.metadata().map_err(|e| refused("stat", e))?;
    if meta.uid() != geteuid().as_raw() {
        return Err(GrantError::NotOurs(meta.uid()));
    }
    let current = match dir.get_xattr(ACL_XATTR) {
        Ok(Some(bytes)) => Some(parse_acl(&bytes).ok_or_else(|| {
            GrantError::Refused("its ACL is in a format this version does not know".into())
        })?),
        Ok(None) => None,
        Err(e) => return Err(refused("reading its ACL", e)),
    };
    let acl = acl_with_search(current, meta.mode(), uid.as_raw()).map_err(GrantError::Refused)?;
    dir.set_xattr(ACL_XATTR, &encode_acl(&acl)).map_err(|e| {
        refused(
            "setting the ACL entry u:postgres:x (does the filesystem support ACLs?)",
            e,
        )
    })
}

/// Quote an SQL identifier: `"` around it, inner `"` doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under /tmp (world-traversable, so the postgres user
    /// reaches it), whose server is stopped and files removed on drop.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = PathBuf::from(format!(
                "/tmp/berth-pg-{name}-{}-{nanos}",
                std::process::id()
            ));
            Self(path)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let data = self.0.join("data");
            if data.join("postmaster.pid").exists() {
                if let Ok(bin) = find_pg_bin() {
                    let mut cmd = if geteuid().is_root() {
                        let mut c = std::process::Command::new("runuser");
                        c.args(["-u", PG_USER, "--"]).arg(bin.join("pg_ctl"));
                        c
                    } else {
                        std::process::Command::new(bin.join("pg_ctl"))
                    };
                    let _ = cmd
                        .current_dir("/")
                        .arg("-D")
                        .arg(&data)
                        .args(["-m", "immediate", "-w", "stop"])
                        .output();
                }
            }
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    async fn select_one(url: &str) -> anyhow::Result<i32> {
        let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
        let v: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        conn.close().await?;
        Ok(v)
    }

    fn postmaster_pid(pg: &EmbeddedPostgres) -> u64 {
        let s = fs::read_to_string(pg.data_dir.join("postmaster.pid")).unwrap();
        s.lines().next().unwrap().trim().parse().unwrap()
    }

    #[test]
    fn finds_binaries() {
        let bin = find_pg_bin().unwrap();
        assert!(bin.join("initdb").is_file(), "{}", bin.display());
    }

    #[test]
    fn quoting_and_urls() {
        assert_eq!(quote_ident("berth"), "\"berth\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        let pg = EmbeddedPostgres {
            password: Password("0a1b".into()),
            ..EmbeddedPostgres::layout(PathBuf::from("/x"), None, 5433)
        };
        assert_eq!(
            pg.url("berth"),
            "postgres://postgres:0a1b@127.0.0.1:5433/berth"
        );
        assert_eq!(
            pg.url("a b/c"),
            "postgres://postgres:0a1b@127.0.0.1:5433/a%20b%2Fc"
        );
        assert!(!format!("{pg:?}").contains("0a1b"), "{pg:?}");
        assert!(HBA.starts_with(HBA_MARKER));
        let p = new_password();
        assert!(is_password(&p), "{p}");
        assert_ne!(p, new_password());
        assert_eq!(parse_version(OsStr::new("15")), Some(vec![15]));
        assert!(parse_version(OsStr::new("9.6")) < parse_version(OsStr::new("15")));
        assert_eq!(parse_version(OsStr::new("latest")), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lifecycle() {
        let tmp = TestDir::new("life");
        let dir = tmp.0.join("nested/postgres");

        // Two concurrent callers: both succeed, on the same port, one server.
        let (a, b) = tokio::join!(
            EmbeddedPostgres::ensure_running(&dir, None),
            EmbeddedPostgres::ensure_running(&dir, None)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.port(), b.port());
        let pid = postmaster_pid(&a);
        assert_eq!(
            fs::read_to_string(dir.join("port")).unwrap().trim(),
            a.port().to_string()
        );
        if geteuid().is_root() {
            use std::os::unix::fs::MetadataExt;
            let meta = fs::metadata(dir.join("data")).unwrap();
            assert_eq!(meta.mode() & 0o777, 0o700);
            let pg_uid = User::from_name(PG_USER).unwrap().unwrap().uid.as_raw();
            assert_eq!(meta.uid(), pg_uid);
        }

        // Create a database (twice: the second is a no-op) and query it.
        a.create_database("berth_test").await.unwrap();
        b.create_database("berth_test").await.unwrap();
        a.create_database("odd \"name\"").await.unwrap();
        assert_eq!(select_one(&a.url("berth_test")).await.unwrap(), 1);
        assert_eq!(select_one(&a.url("odd \"name\"")).await.unwrap(), 1);

        // A later call reuses the running server; asking for another port fails.
        let c = EmbeddedPostgres::ensure_running(&dir, None).await.unwrap();
        assert_eq!(c.port(), a.port());
        assert_eq!(postmaster_pid(&c), pid);
        let other = a.port().wrapping_add(1).max(1024);
        let err = EmbeddedPostgres::ensure_running(&dir, Some(other))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("already running"), "{err:#}");

        // Stop; stopping again is a no-op.
        a.stop().await.unwrap();
        a.stop().await.unwrap();
        assert!(select_one(&a.url("postgres")).await.is_err());

        // The recorded port taken by someone else: a clear error.
        let squatter = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, a.port())).unwrap();
        let err = EmbeddedPostgres::ensure_running(&dir, None)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("in use"), "{err:#}");
        drop(squatter);

        // Restart on the recorded port; the database survived.
        let d = EmbeddedPostgres::ensure_running(&dir, None).await.unwrap();
        assert_eq!(d.port(), a.port());
        assert_eq!(select_one(&d.url("berth_test")).await.unwrap(), 1);

        // A machine restart: the postmaster died without cleaning up, and its
        // PID now belongs to an unrelated live process of the same user, so
        // `pg_ctl status` (and postgres itself) would take it for a server.
        let pid = postmaster_pid(&d);
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while select_one(&d.url("postgres")).await.is_ok() || is_postmaster_of(pid, &d.data_dir) {
            assert!(Instant::now() < deadline, "postmaster did not die");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let the backends notice the postmaster's death and exit.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pid_file = d.data_dir.join("postmaster.pid");
        let stale = fs::read_to_string(&pid_file).unwrap();
        let mut impostor = if geteuid().is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", PG_USER, "--", "sleep", "120"]);
            c
        } else {
            let mut c = std::process::Command::new("sleep");
            c.arg("120");
            c
        };
        let mut impostor = impostor.current_dir("/").spawn().unwrap();
        // runuser forks: the sleeping postgres-owned process is its child.
        let impostor_pid = if geteuid().is_root() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let children =
                    fs::read_to_string(format!("/proc/{0}/task/{0}/children", impostor.id()))
                        .unwrap_or_default();
                if let Some(p) = children.split_whitespace().next() {
                    break p.to_string();
                }
                assert!(Instant::now() < deadline, "no child of runuser");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } else {
            impostor.id().to_string()
        };
        let stale = stale.replacen(&pid.to_string(), &impostor_pid, 1);
        fs::write(&pid_file, stale).unwrap();
        let status = d
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&d.data_dir)
            .arg("status")
            .output()
            .await
            .unwrap();
        assert!(status.status.success(), "pg_ctl status should be fooled");
        let e = EmbeddedPostgres::ensure_running(&dir, None).await;
        let _ = impostor.kill();
        let _ = impostor.wait();
        let e = e.unwrap();
        assert_eq!(e.port(), d.port());
        assert_ne!(postmaster_pid(&e).to_string(), impostor_pid);
        assert_eq!(select_one(&e.url("berth_test")).await.unwrap(), 1);

        e.stop().await.unwrap();
        assert!(!pid_file.exists());
    }

    /// Runs `psql -c 'select 1'` as the `nobody` user; its stderr if it fails.
    async fn psql_as_nobody(host: &str, port: u16, password: Option<&str>) -> Option<String> {
        let mut cmd = Command::new("runuser");
        cmd.args([
            "-u",
            "nobody",
            "--",
            "psql",
            "-h",
            host,
            "-p",
            &port.to_string(),
        ])
        .args([
            "-U", PG_USER, "-d", "postgres", "-w", "-X", "-c", "select 1",
        ])
        .current_dir("/")
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .env_remove("PGSERVICE");
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        let out = cmd.output().await.unwrap();
        (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// A login over TCP without our password is refused (and this tells
    /// it apart from the server not answering).
    async fn assert_tcp_needs_password(pg: &EmbeddedPostgres) {
        assert!(!pg.tcp_login("").await.unwrap());
        assert!(!pg.tcp_login("not-the-password").await.unwrap());
        let no_password = PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(pg.port())
            .username(PG_USER)
            .database("postgres");
        let err = PgConnection::connect_with(&no_password).await.unwrap_err();
        assert!(
            matches!(&err, sqlx::Error::Database(e) if e.code().as_deref() == Some("28P01")),
            "{err:?}"
        );
        assert_eq!(select_one(&pg.url("postgres")).await.unwrap(), 1);
    }

    /// Make `pg`'s cluster look like one from before passwords: the old
    /// trust `pg_hba.conf`, no password file, a role without a password.
    async fn make_old_style(pg: &EmbeddedPostgres) {
        let mut conn = pg.socket_connection().await.unwrap();
        sqlx::raw_sql("ALTER ROLE postgres PASSWORD NULL")
            .execute(&mut conn)
            .await
            .unwrap();
        fs::write(
            pg.data_dir.join("pg_hba.conf"),
            "# Written by Berth's embedded_pg: trust on the unix socket and 127.0.0.1 only.\n\
             # TYPE  DATABASE     USER  ADDRESS       METHOD\n\
             local   all          all                 trust\n\
             host    all          all   127.0.0.1/32  trust\n\
             local   replication  all                 trust\n\
             host    replication  all   127.0.0.1/32  trust\n",
        )
        .unwrap();
        fs::remove_file(pg.password_file()).unwrap();
        sqlx::raw_sql("SELECT pg_reload_conf()")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        while !pg.tcp_login("").await.unwrap() {
            assert!(
                Instant::now() < deadline,
                "the old pg_hba.conf did not load"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_berth_can_log_in() {
        let tmp = TestDir::new("auth");
        let dir = tmp.0.join("pg");
        let a = EmbeddedPostgres::ensure_running(&dir, None).await.unwrap();
        assert!(a.started_by_us());
        let b = EmbeddedPostgres::ensure_running(&dir, None).await.unwrap();
        assert!(!b.started_by_us());
        assert_eq!(b.url("x"), a.url("x"));
        assert_tcp_needs_password(&a).await;
        a.create_database("auth_test").await.unwrap();
        assert_eq!(select_one(&a.url("auth_test")).await.unwrap(), 1);

        // The password file: ours alone.
        let meta = fs::symlink_metadata(a.password_file()).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.uid(), geteuid().as_raw());
        let hba = fs::read_to_string(a.data_dir.join("pg_hba.conf")).unwrap();
        assert!(!hba.contains("127.0.0.1/32  trust"), "{hba}");

        if geteuid().is_root() {
            // Other local users: no password over TCP, no way into the socket.
            let err = psql_as_nobody("127.0.0.1", a.port(), None).await.unwrap();
            assert!(err.contains("no password supplied"), "{err}");
            let err = psql_as_nobody("127.0.0.1", a.port(), Some("guess"))
                .await
                .unwrap();
            assert!(err.contains("password authentication failed"), "{err}");
            let socket = a.socket_dir().to_str().unwrap();
            let err = psql_as_nobody(socket, a.port(), None).await.unwrap();
            assert!(err.contains("Permission denied"), "{err}");
            // Nor can the server user read the password.
            let read = std::process::Command::new("runuser")
                .args(["-u", PG_USER, "--", "cat"])
                .arg(a.password_file())
                .current_dir("/")
                .output()
                .unwrap();
            assert!(!read.status.success());
            // With the password, psql gets in too (as any user would).
            let pw = fs::read_to_string(a.password_file()).unwrap();
            assert_eq!(
                psql_as_nobody("127.0.0.1", a.port(), Some(pw.trim())).await,
                None
            );
        }

        // A cluster made before passwords, migrated while running.
        make_old_style(&a).await;
        let c = EmbeddedPostgres::ensure_running(&dir, None).await.unwrap();
        assert!(!c.started_by_us());
        assert_eq!(c.port(), a.port());
        assert_ne!(c.url("x"), a.url("x"), "a new password");
        assert_tcp_needs_password(&c).await;
        assert_eq!(select_one(&c.url("auth_test")).await.unwrap(), 1);
        assert!(select_one(&a.url("auth_test")).await.is_err());
        // Once migrated, a reuse keeps the password.
        let d = EmbeddedPostgres::ensure_running(&dir, None).await.unwrap();
        assert_eq!(d.url("x"), c.url("x"));

        // ... and migrated when it was stopped.
        make_old_style(&d).await;
        d.stop().await.unwrap();
        let e = EmbeddedPostgres::ensure_running(&dir, None).await.unwrap();
        assert!(e.started_by_us());
        assert_tcp_needs_password(&e).await;
        assert_eq!(select_one(&e.url("auth_test")).await.unwrap(), 1);
        assert!(select_one(&d.url("auth_test")).await.is_err());

        // A password file that is not a private file of ours is replaced.
        let other = tmp.0.join("planted");
        fs::write(&other, format!("{}\n", "ab".repeat(PASSWORD_BYTES))).unwrap();
        fs::remove_file(e.password_file()).unwrap();
        std::os::unix::fs::symlink(&other, e.password_file()).unwrap();
        let f = EmbeddedPostgres::ensure_running(&dir, None).await.unwrap();
        assert!(!fs::symlink_metadata(f.password_file())
            .unwrap()
            .is_symlink());
        assert!(!f.url("x").contains(&"ab".repeat(PASSWORD_BYTES)));
        assert_tcp_needs_password(&f).await;
        f.stop().await.unwrap();
    }

    #[test]
    fn scram_verifier_format() {
        let v = scram_verifier("secret");
        let rest = v.strip_prefix("SCRAM-SHA-256$4096:").unwrap();
        let (salt, keys) = rest.split_once('$').unwrap();
        let (stored, server) = keys.split_once(':').unwrap();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(salt).unwrap().len(), 16);
        assert_eq!(b64.decode(stored).unwrap().len(), 32);
        assert_eq!(b64.decode(server).unwrap().len(), 32);
        assert_ne!(scram_verifier("secret"), v, "a new salt each time");
    }

    #[test]
    fn acl_gains_search_for_one_user_only() {
        let e = |tag, id, perm| AclEntry { tag, id, perm };
        let u = ACL_UNDEFINED_ID;
        // A plain 0750 directory.
        let acl = acl_with_search(None, 0o750, 106).unwrap();
        assert_eq!(
            acl,
            vec![
                e(ACL_USER_OBJ, u, 7),
                e(ACL_USER, 106, 1),
                e(ACL_GROUP_OBJ, u, 5),
                e(ACL_MASK, u, 5),
                e(ACL_OTHER, u, 0),
            ]
        );
        assert_eq!(parse_acl(&encode_acl(&acl)), Some(acl.clone()));
        // Idempotent.
        assert_eq!(acl_with_search(Some(acl.clone()), 0o750, 106).unwrap(), acl);
        // An entry for the user without x gets x; others stay as they are.
        let acl = vec![
            e(ACL_USER_OBJ, u, 7),
            e(ACL_USER, 5, 4),
            e(ACL_USER, 106, 4),
            e(ACL_GROUP_OBJ, u, 0),
            e(ACL_MASK, u, 4),
            e(ACL_OTHER, u, 0),
        ];
        let out = acl_with_search(Some(acl), 0o740, 106).unwrap();
        assert!(out.contains(&e(ACL_USER, 106, 5)));
        assert!(out.contains(&e(ACL_USER, 5, 4)));
        assert!(out.contains(&e(ACL_MASK, u, 5)));
        // A mask that hides someone else's x is not widened.
        let acl = vec![
            e(ACL_USER_OBJ, u, 7),
            e(ACL_USER, 5, 7),
            e(ACL_GROUP_OBJ, u, 0),
            e(ACL_MASK, u, 0),
            e(ACL_OTHER, u, 0),
        ];
        assert!(acl_with_search(Some(acl), 0o700, 106).is_err());
        assert_eq!(parse_acl(&[1, 0, 0, 0]), None);
    }

    /// Reads the access ACL of `path`.
    fn acl_of(path: &Path) -> Option<Vec<AclEntry>> {
        xattr::get_deref(path, ACL_XATTR)
            .unwrap()
            .map(|b| parse_acl(&b).unwrap())
    }

    #[tokio::test]
    async fn unreachable_parent_gets_an_acl_entry() {
        if !geteuid().is_root() {
            return;
        }
        let tmp = TestDir::new("private");
        fs::create_dir_all(&tmp.0).unwrap();
        fs::set_permissions(&tmp.0, fs::Permissions::from_mode(0o700)).unwrap();
        let pg = EmbeddedPostgres::ensure_running(&tmp.0.join("pg"), None)
            .await
            .unwrap();
        assert_tcp_needs_password(&pg).await;
        pg.stop().await.unwrap();

        // Owner and others as before; the group bits show the mask, --x, but
        // the owning group still has nothing; postgres may search only.
        let mode = fs::metadata(&tmp.0).unwrap().mode() & 0o7777;
        assert_eq!(mode & 0o7707, 0o700, "{mode:o}");
        let pg_uid = User::from_name(PG_USER).unwrap().unwrap().uid.as_raw();
        let u = ACL_UNDEFINED_ID;
        let e = |tag, id, perm| AclEntry { tag, id, perm };
        assert_eq!(
            acl_of(&tmp.0).unwrap(),
            vec![
                e(ACL_USER_OBJ, u, 7),
                e(ACL_USER, pg_uid, 1),
                e(ACL_GROUP_OBJ, u, 0),
                e(ACL_MASK, u, 1),
                e(ACL_OTHER, u, 0),
            ]
        );
        assert!(postgres_can(&["-x"], &tmp.0).await.unwrap());
        assert!(!postgres_can(&["-r"], &tmp.0).await.unwrap());
        let nobody = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "test", "-x"])
            .arg(&tmp.0)
            .current_dir("/")
            .status()
            .unwrap();
        assert!(!nobody.success());
        // Starting again changes nothing.
        let again = EmbeddedPostgres::ensure_running(&tmp.0.join("pg"), None)
            .await
            .unwrap();
        assert_eq!(acl_of(&tmp.0).unwrap().len(), 5);
        again.stop().await.unwrap();
    }

    #[tokio::test]
    async fn unreachable_parent_of_another_user_is_a_clear_error() {
        if !geteuid().is_root() {
            return;
        }
        let tmp = TestDir::new("others");
        fs::create_dir_all(&tmp.0).unwrap();
        fs::set_permissions(&tmp.0, fs::Permissions::from_mode(0o700)).unwrap();
        let nobody = User::from_name("nobody").unwrap().unwrap();
        std::os::unix::fs::chown(&tmp.0, Some(nobody.uid.as_raw()), None).unwrap();
        let err = EmbeddedPostgres::ensure_running(&tmp.0.join("pg"), None)
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("cannot traverse"), "{msg}");
        assert!(msg.contains(&tmp.0.display().to_string()), "{msg}");
        assert_eq!(acl_of(&tmp.0), None, "no ACL on someone else's directory");
        assert_eq!(fs::metadata(&tmp.0).unwrap().mode() & 0o7777, 0o700);
    }
}
