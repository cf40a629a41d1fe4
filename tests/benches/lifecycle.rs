//! Lifecycle benchmark, per engine and version (RabbitMQ 4.3, 4.0, 3.10; ActiveMQ 5.17):
//! how long CreateBroker takes until the broker's primary endpoint accepts a real login,
//! measured from outside like a user, next to the same engine started bare in the same
//! image; DeleteBroker until nothing is left; and a per-step timeline of one create
//! showing where the time goes.
//!
//! Run with `make bench` (or `cargo bench -p berth-tests --bench lifecycle`).
//! - `BERTH_BENCH_ROUNDS` (default 3; `BERTH_BENCH_RUNS` is the old name): rounds per
//!   engine/version.
//! - `BERTH_BENCH_ENGINES` (default: all): e.g. `rabbitmq/4.0,activemq/5.17`.
//!
//! What is measured, per round (all on the same host clock):
//! - **Berth**: from the CreateBroker call until a login succeeds on the endpoint
//!   DescribeBroker lists (RabbitMQ: an AMQP 0-9-1 connection with the broker user via
//!   lapin on `amqp://`; ActiveMQ: STOMP CONNECT → CONNECTED on `stomp://`), plus when
//!   DescribeBroker first said RUNNING. DescribeBroker and the login are polled every
//!   100 ms.
//! - **bare**: the same image with the same CPU/memory/pids limits, the same container
//!   ports published (to ephemeral host ports on the same host IP) and a fresh named
//!   volume on the data dir, like `docker run -d`; the engine's config files are the ones
//!   the agent wrote for a Berth broker of this run (copied out of its container), and
//!   the engine is exec'd directly the way the agent execs it (RabbitMQ: `setpriv …
//!   rabbitmq-server`; ActiveMQ: the JVM's exact argv and environment read from
//!   `/proc` in the Berth container). No agent, no control plane. Timed from
//!   `docker volume create` until the same login succeeds, polled every 100 ms.
//! - **agent only**: the same container, but the image's own entrypoint (the agent) with
//!   the Berth broker's `spec.json`: what the agent adds, without the control plane.
//! - **delete**: from the DeleteBroker call until no container, volume or network with
//!   the broker's label is left (and until DescribeBroker answers 404).
//!
//! The timeline of one create (the round with the median create → ready) merges the
//! API replies, the broker row's timestamps in Postgres, Docker events of the broker's
//! objects, the agent's and the engine's log lines (`docker logs --timestamps`) and the
//! logins; the phase table gives the median of each phase over all rounds. A second
//! summary table splits each create into the engine's boot (the same work in all three
//! setups, and the part that varies with host load) and everything else. The order
//! Berth / bare / agent-only rotates per round so none always runs first on a cold cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, EventsOptions, LogsOptions,
    RemoveContainerOptions, RemoveVolumeOptions, StartContainerOptions, UploadToContainerOptions,
};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use berth::domain::catalogue::ENGINE_VERSIONS;
use berth::domain::EngineType;
use berth_tests::{spawn_app, TestApp};

const USER: &str = "bench-user";
const PASSWORD: &str = "bench-password-123";
/// Cadence of every poll the bench does (DescribeBroker, logins, object listings).
const POLL: Duration = Duration::from_millis(100);
const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// Label on the bench's own bare / agent-only containers and volumes (cleanup).
const BENCH_LABEL: &str = "berth-bench.run";

// ---------------------------------------------------------------------------------------
// What is benchmarked

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Rabbitmq,
    Activemq,
}

#[derive(Clone, Debug)]
struct Target {
    engine: Engine,
    version: &'static str,
    full: &'static str,
    image: &'static str,
    instance: &'static str,
}

impl Target {
    fn key(&self) -> String {
        format!("{}/{}", self.engine_name(), self.version)
    }
    fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Rabbitmq => "rabbitmq",
            Engine::Activemq => "activemq",
        }
    }
    fn wire_engine(&self) -> &'static str {
        match self.engine {
            Engine::Rabbitmq => "RABBITMQ",
            Engine::Activemq => "ACTIVEMQ",
        }
    }
    /// Scheme of the primary plaintext endpoint in DescribeBroker.
    fn scheme(&self) -> &'static str {
        match self.engine {
            Engine::Rabbitmq => "amqp://",
            Engine::Activemq => "stomp://",
        }
    }
    fn protocol(&self) -> &'static str {
        match self.engine {
            Engine::Rabbitmq => "AMQP 0-9-1 login (lapin)",
            Engine::Activemq => "STOMP CONNECT -> CONNECTED",
        }
    }
    fn container_port(&self) -> u16 {
        match self.engine {
            Engine::Rabbitmq => agent_contract::ports::rabbitmq::AMQP,
            Engine::Activemq => agent_contract::ports::activemq::STOMP,
        }
    }
    fn data_dir(&self) -> &'static str {
        match self.engine {
            Engine::Rabbitmq => "/var/lib/rabbitmq",
            Engine::Activemq => "/var/lib/activemq",
        }
    }
    /// The directory with the engine's config files the agent writes, and its parent
    /// (where the tar of it is unpacked again).
    fn conf_dir(&self) -> (&'static str, &'static str) {
        match self.engine {
            Engine::Rabbitmq => ("/etc/rabbitmq", "/etc"),
            Engine::Activemq => (
                "/etc/activemq/instances-enabled/berth",
                "/etc/activemq/instances-enabled",
            ),
        }
    }
    /// Engine log lines that mark its own boot: (mark, every substring the line has).
    fn engine_log_marks(&self) -> &'static [(&'static str, &'static [&'static str])] {
        match self.engine {
            Engine::Rabbitmq => &[
                (M_EN_BOOT, &["Starting RabbitMQ"]),
                (M_EN_UP, &["Server startup complete"]),
            ],
            Engine::Activemq => &[
                (M_EN_BOOT, &["Apache ActiveMQ", "is starting"]),
                (M_EN_UP, &["Apache ActiveMQ", ") started"]),
            ],
        }
    }
}

/// Every version in the catalogue, with the instance type Amazon MQ offers it on
/// (RabbitMQ 4 only on m7g; RabbitMQ 3.10 and ActiveMQ on t3/m5).
fn all_targets() -> Vec<Target> {
    let mut out: Vec<Target> = ENGINE_VERSIONS
        .iter()
        .map(|v| {
            let engine = match v.engine {
                EngineType::Rabbitmq => Engine::Rabbitmq,
                EngineType::Activemq => Engine::Activemq,
            };
            let instance = if v.families.iter().any(|f| f.starts_with("mq.m7g")) {
                "mq.m7g.medium"
            } else {
                "mq.m5.large"
            };
            Target {
                engine,
                version: v.name,
                full: v.full,
                image: v.image,
                instance,
            }
        })
        .collect();
    // RabbitMQ first (newest first), then ActiveMQ.
    out.sort_by_key(|t| t.engine == Engine::Activemq);
    out
}

fn selected_targets() -> Vec<Target> {
    let all = all_targets();
    let Ok(list) = std::env::var("BERTH_BENCH_ENGINES") else {
        return all;
    };
    let keys: Vec<String> = all.iter().map(Target::key).collect();
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|want| {
            all.iter()
                .find(|t| t.key() == want.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| {
                    panic!(
                        "BERTH_BENCH_ENGINES: unknown {want:?}; known: {}",
                        keys.join(",")
                    )
                })
        })
        .collect()
}

fn rounds() -> usize {
    ["BERTH_BENCH_ROUNDS", "BERTH_BENCH_RUNS"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("BERTH_BENCH_ROUNDS={s} is not a number"))
        })
        .unwrap_or(3)
        .max(1)
}

// ---------------------------------------------------------------------------------------
// Timeline marks

const M_CALL: &str = "CreateBroker called";
const M_REPLY: &str = "CreateBroker replied 200";
const M_ROW: &str = "row inserted (brokers.created_at)";
const M_CERT: &str = "certificate issued (reconciler's first step)";
const M_CREATE: &str = "docker: container create";
const M_START: &str = "docker: container start";
const M_AG_START: &str = "agent: spec loaded (\"broker agent starting\")";
const M_AG_LISTEN: &str = "agent: API listening";
const M_AG_RENDER: &str = "agent: engine config rendered";
const M_AG_SPAWN: &str = "agent: engine process spawned";
const M_AG_USERS: &str = "agent: users reconciled";
const M_AG_READY: &str = "agent: engine ready";
const M_EN_FIRST: &str = "engine log: first line";
const M_EN_BOOT: &str = "engine log: boot banner";
const M_EN_UP: &str = "engine log: startup complete";
const M_USABLE: &str = "login OK on the published port (engine usable)";
const M_DB_RUNNING: &str = "RUNNING recorded (brokers.state_changed_at)";
const M_DESCRIBE: &str = "DescribeBroker first says RUNNING";
const M_READY: &str = "login OK on the endpoint DescribeBroker lists";

const AGENT_LOG_MARKS: &[(&str, &[&str])] = &[
    (M_AG_START, &["broker agent starting"]),
    (M_AG_LISTEN, &["agent API listening"]),
    (M_AG_RENDER, &["rendered "]),
    (M_AG_SPAWN, &["engine started"]),
    (M_AG_USERS, &["users reconciled"]),
    (M_AG_READY, &["engine ready"]),
];

/// Named points in time (seconds since the epoch).
#[derive(Clone, Debug, Default)]
struct Marks(Vec<(String, f64)>);

impl Marks {
    fn add(&mut self, label: &str, t: Option<f64>) {
        if let Some(t) = t {
            if self.get(label).is_none() {
                self.0.push((label.to_owned(), t));
            }
        }
    }
    fn get(&self, label: &str) -> Option<f64> {
        self.0.iter().find(|(l, _)| l == label).map(|(_, t)| *t)
    }
    fn span(&self, from: &str, to: &str) -> Option<f64> {
        Some(self.get(to)? - self.get(from)?)
    }
    fn sorted(&self) -> Vec<(String, f64)> {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.1.total_cmp(&b.1));
        v
    }
}

/// Phases of a Berth create; consecutive, so they add up to create → ready.
const BERTH_PHASES: &[(&str, &str, &str)] = &[
    ("CreateBroker API call", M_CALL, M_REPLY),
    (
        "reply -> reconciler's first step (certificate issued)",
        M_REPLY,
        M_CERT,
    ),
    (
        "first step -> container created (network, volume, image check, create)",
        M_CERT,
        M_CREATE,
    ),
    (
        "container created -> started (spec upload, port proxies, start)",
        M_CREATE,
        M_START,
    ),
    (
        "container started -> engine spawned (agent boot, config files)",
        M_START,
        M_AG_SPAWN,
    ),
    (
        "engine spawned -> engine usable (engine boot; bench login poll)",
        M_AG_SPAWN,
        M_USABLE,
    ),
    (
        "engine usable -> agent says ready (agent's readiness probe)",
        M_USABLE,
        M_AG_READY,
    ),
    (
        "agent ready -> RUNNING recorded (reconciler health poll)",
        M_AG_READY,
        M_DB_RUNNING,
    ),
    (
        "RUNNING recorded -> DescribeBroker says RUNNING (bench poll)",
        M_DB_RUNNING,
        M_DESCRIBE,
    ),
    (
        "DescribeBroker RUNNING -> login OK on the listed endpoint",
        M_DESCRIBE,
        M_READY,
    ),
];

// ---------------------------------------------------------------------------------------
// Small helpers

/// The host's 1-minute load average (other work on the host skews the timings).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// CPU time (user + system, s) of this process: in-process Berth plus the bench.
fn cpu_self() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15 (USER_HZ = 100).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    if f.len() > 12 {
        (f[11] + f[12]) / 100.0
    } else {
        f64::NAN
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// Index of the round whose value is the median (the lower one for an even count).
fn median_index(v: &[f64]) -> usize {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    idx[(v.len() - 1) / 2]
}

/// Polls `cond` every [`POLL`] until it holds; returns when it did (epoch seconds).
async fn poll_until<F, Fut>(what: &str, timeout: Duration, mut cond: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return now();
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------
// Logins on the primary endpoint

/// An AMQP 0-9-1 connection with the broker user (then closed).
async fn amqp_login(port: u16) -> bool {
    let uri = format!("amqp://{USER}:{PASSWORD}@127.0.0.1:{port}/%2f");
    let connect = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default());
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(conn)) => {
            let _ = conn.close(200, "bench".into()).await;
            true
        }
        _ => false,
    }
}

/// STOMP 1.2 CONNECT with the broker user, answered by CONNECTED.
async fn stomp_login(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let frame = format!(
            "CONNECT\naccept-version:1.2\nhost:localhost\nlogin:{USER}\npasscode:{PASSWORD}\n\n\0"
        );
        s.write_all(frame.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.contains(&0) && buf.len() < 64 * 1024 {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let start = buf.iter().position(|b| !b.is_ascii_whitespace())?;
        let ok = buf[start..].starts_with(b"CONNECTED");
        if ok {
            let _ = s.write_all(b"DISCONNECT\n\n\0").await;
        }
        Some(ok)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Some(true))
    )
}

async fn login(engine: Engine, port: u16) -> bool {
    match engine {
        Engine::Rabbitmq => amqp_login(port).await,
        Engine::Activemq => stomp_login(port).await,
    }
}

// ---------------------------------------------------------------------------------------
// Docker: events, logs, files, exec

#[derive(Clone, Debug)]
struct DockerEvent {
    t: f64,
    typ: String,
    action: String,
    /// Container / network name, or the volume name.
    name: String,
}

/// Every container, network and volume event of the daemon since the bench started.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<DockerEvent>>>);

impl Events {
    fn start(docker: &bollard::Docker) -> Self {
        let events = Events::default();
        let sink = events.0.clone();
        let docker = docker.clone();
        let since = ((now() as i64) - 2).to_string();
        tokio::spawn(async move {
            let filters = HashMap::from([(
                "type".to_owned(),
                vec!["container".into(), "network".into(), "volume".into()],
            )]);
            let mut stream = docker.events(Some(EventsOptions {
                since: Some(since),
                until: None,
                filters: Some(filters),
            }));
            while let Some(item) = stream.next().await {
                let Ok(ev) = item else {
                    eprintln!("docker events stream failed: {item:?}");
                    break;
                };
                let actor = ev.actor.unwrap_or_default();
                let attrs = actor.attributes.unwrap_or_default();
                let name = attrs.get("name").cloned().or(actor.id).unwrap_or_default();
                let t = ev
                    .time_nano
                    .map(|n| n as f64 / 1e9)
                    .or(ev.time.map(|s| s as f64))
                    .unwrap_or_else(now);
                sink.lock().unwrap().push(DockerEvent {
                    t,
                    typ: ev.typ.map(|t| t.to_string()).unwrap_or_default(),
                    action: ev.action.unwrap_or_default(),
                    name,
                });
            }
        });
        events
    }

    /// Events of objects whose name contains `needle`, in `[from, to]`.
    fn of(&self, needle: &str, from: f64, to: f64) -> Vec<DockerEvent> {
        let mut v: Vec<DockerEvent> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.name.contains(needle) && e.t >= from && e.t <= to)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.t.total_cmp(&b.t));
        v
    }

    /// Adds the first event of each kind as a mark `docker: <type> <action>`.
    fn mark(&self, marks: &mut Marks, needle: &str, from: f64, to: f64) {
        for e in self.of(needle, from, to) {
            if e.action.starts_with("exec_") {
                continue;
            }
            marks.add(&format!("docker: {} {}", e.typ, e.action), Some(e.t));
        }
    }
}

/// `docker logs --timestamps` of a container: (time, line).
async fn log_lines(docker: &bollard::Docker, name: &str) -> Vec<(f64, String)> {
    let opts = LogsOptions {
        stdout: true,
        stderr: true,
        timestamps: true,
        ..Default::default()
    };
    let mut stream = docker.logs(name, Some(opts));
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    text.lines()
        .filter_map(|l| {
            let (ts, rest) = l.split_once(' ')?;
            let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
            Some((t.timestamp_nanos_opt()? as f64 / 1e9, rest.to_owned()))
        })
        .collect()
}

/// An agent line (tracing's `2026-12-01T10:00:00.123456Z  INFO …`), not the engine's.
fn is_agent_line(line: &str) -> bool {
    let first = line.split(' ').next().unwrap_or("");
    first.len() >= 20 && first.as_bytes()[10] == b'T' && first.ends_with('Z')
}

/// The engine's first log line (after the agent spawned it, when there is an agent).
fn mark_first_engine_line(marks: &mut Marks, lines: &[(f64, String)]) {
    let after = marks.get(M_AG_SPAWN).unwrap_or(f64::NEG_INFINITY);
    let t = lines
        .iter()
        .find(|(t, l)| *t >= after && !l.trim().is_empty() && !is_agent_line(l))
        .map(|(t, _)| *t);
    marks.add(M_EN_FIRST, t);
}

fn mark_logs(marks: &mut Marks, lines: &[(f64, String)], patterns: &[(&str, &[&str])]) {
    for (label, needles) in patterns {
        let t = lines
            .iter()
            .find(|(_, l)| needles.iter().all(|n| l.contains(n)))
            .map(|(t, _)| *t);
        marks.add(label, t);
    }
}

async fn download(docker: &bollard::Docker, container: &str, path: &str) -> Vec<u8> {
    let mut stream = docker.download_from_container(
        container,
        Some(DownloadFromContainerOptions { path: path.into() }),
    );
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("copying {path} out: {e}")));
    }
    out
}

async fn upload(docker: &bollard::Docker, container: &str, parent: &str, tar: &[u8]) {
    docker
        .upload_to_container(
            container,
            Some(UploadToContainerOptions {
                path: parent.into(),
                ..Default::default()
            }),
            bollard::body_full(tar.to_vec().into()),
        )
        .await
        .unwrap_or_else(|e| panic!("uploading into {container}:{parent}: {e}"));
}

/// Stdout of `sh -c script` run in `container` as `user`.
async fn exec_output(
    docker: &bollard::Docker,
    container: &str,
    user: &str,
    script: &str,
) -> String {
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions::<String> {
                cmd: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
                attach_stdout: Some(true),
                attach_stderr: Some(false),
                user: Some(user.into()),
                ..Default::default()
            },
        )
        .await
        .expect("docker exec create");
    let mut out = String::new();
    if let StartExecResults::Attached { mut output, .. } = docker
        .start_exec(&exec.id, None)
        .await
        .expect("docker exec")
    {
        while let Some(Ok(chunk)) = output.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
    }
    out
}

/// The host port published for `container_port`, once Docker knows it.
async fn host_port(docker: &bollard::Docker, name: &str, container_port: u16) -> Option<u16> {
    let c = docker.inspect_container(name, None).await.ok()?;
    let key = format!("{container_port}/tcp");
    let from = |m: Option<&HashMap<String, Option<Vec<PortBinding>>>>| {
        m.and_then(|m| m.get(&key).cloned().flatten())
            .and_then(|b| b.into_iter().find_map(|b| b.host_port))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
    };
    from(c.network_settings.as_ref().and_then(|n| n.ports.as_ref())).or_else(|| {
        from(
            c.host_config
                .as_ref()
                .and_then(|h| h.port_bindings.as_ref()),
        )
    })
}

async fn remove_container(docker: &bollard::Docker, name: &str) {
    let _ = docker
        .remove_container(
            name,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await;
}

/// Removes the bench's own containers and volumes when dropped (also on a panic).
struct BenchCleanup(String);

impl Drop for BenchCleanup {
    fn drop(&mut self) {
        let filter = format!("label={BENCH_LABEL}={}", self.0);
        let ids = |args: &[&str]| -> Vec<String> {
            std::process::Command::new("docker")
                .args(args)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let containers = ids(&["ps", "-aq", "--filter", &filter]);
        if !containers.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-fv"])
                .args(&containers)
                .output();
        }
        let volumes = ids(&["volume", "ls", "-q", "--filter", &filter]);
        if !volumes.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["volume", "rm", "-f"])
                .args(&volumes)
                .output();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Berth: CreateBroker -> ready, DeleteBroker -> gone

struct BerthRound {
    /// CreateBroker call -> login OK on the listed endpoint (s).
    ready: f64,
    /// CreateBroker call -> DescribeBroker first says RUNNING (s).
    running: f64,
    create: Marks,
    /// DeleteBroker call -> no labelled object left / DescribeBroker 404 (s).
    gone: f64,
    not_found: f64,
    delete: Marks,
    /// CPU seconds this process (in-process Berth + the bench's polls) used during the create.
    cpu: f64,
}

/// What a bare / agent-only container needs, taken from a RUNNING Berth broker.
struct Captured {
    memory: Option<i64>,
    memory_swap: Option<i64>,
    nano_cpus: Option<i64>,
    pids_limit: Option<i64>,
    /// Container ports Berth publishes (`5672/tcp` …) and the host IP it binds.
    exposed: Vec<String>,
    host_ip: String,
    /// Tar of the engine's config dir as the agent wrote it.
    conf_tar: Vec<u8>,
    /// Tar of `/etc/berth` (the agent's spec).
    spec_tar: Vec<u8>,
    /// Entrypoint and environment of the bare engine.
    bare_cmd: Vec<String>,
    bare_env: Vec<String>,
    /// ActiveMQ: the JVM command line as the agent started it (shown in the output).
    engine_argv: Vec<String>,
}

const BARE_HOSTNAME: &str = "bench-bare";

/// RabbitMQ as the agent starts it (`engine_process` in the agent): the cookie in the
/// data dir, the data dir handed to the engine user, `setpriv` into rabbitmq-server.
const RABBITMQ_BARE: &str = "set -e
printf %s BERTHBENCHCOOKIE0123456789 > /var/lib/rabbitmq/.erlang.cookie
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
[ -d /var/log/rabbitmq ] && chown -R rabbitmq:rabbitmq /var/log/rabbitmq
chmod 0400 /var/lib/rabbitmq/.erlang.cookie
cd /var/lib/rabbitmq
exec /usr/bin/setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- /usr/lib/rabbitmq/bin/rabbitmq-server";

/// ActiveMQ as the agent starts it: the data dir handed to the engine user, then the
/// JVM's argv (read from the Berth container) through `setpriv`.
const ACTIVEMQ_BARE: &str = "set -e
chown -R activemq: /var/lib/activemq
cd /var/lib/activemq
exec /usr/bin/setpriv --reuid=activemq --regid=activemq --init-groups -- \"$@\"";

async fn capture(docker: &bollard::Docker, target: &Target, container: &str) -> Captured {
    let c = docker
        .inspect_container(container, None)
        .await
        .expect("inspect the Berth container");
    let hc = c.host_config.unwrap_or_default();
    let bindings = hc.port_bindings.clone().unwrap_or_default();
    let mut exposed: Vec<String> = bindings.keys().cloned().collect();
    exposed.sort();
    let host_ip = bindings
        .values()
        .flatten()
        .flatten()
        .find_map(|b| b.host_ip.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into());
    let (conf_dir, _) = target.conf_dir();
    let conf_tar = download(docker, container, conf_dir).await;
    let spec_tar = download(docker, container, "/etc/berth").await;
    let (bare_cmd, bare_env, engine_argv) = match target.engine {
        Engine::Rabbitmq => (
            vec!["/bin/sh".into(), "-c".into(), RABBITMQ_BARE.into()],
            vec![
                "HOME=/var/lib/rabbitmq".into(),
                "LANG=C.UTF-8".into(),
                "LC_ALL=C.UTF-8".into(),
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                format!("RABBITMQ_NODENAME=rabbit@{BARE_HOSTNAME}"),
            ],
            vec![],
        ),
        Engine::Activemq => {
            let out = exec_output(
                docker,
                container,
                // As the engine user: /proc/PID/environ of another user needs ptrace.
                "activemq",
                "p=$(pgrep -o -x java) && tr '\\0' '\\n' < /proc/$p/cmdline && echo @@ENV@@ && tr '\\0' '\\n' < /proc/$p/environ",
            )
            .await;
            let (argv, env) = out
                .split_once("@@ENV@@")
                .unwrap_or_else(|| panic!("no java process in {container}: {out}"));
            let lines = |s: &str| -> Vec<String> {
                s.lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            let argv = lines(argv);
            assert!(
                argv.first().is_some_and(|a| a.ends_with("java")),
                "unexpected engine argv {argv:?}"
            );
            let mut cmd: Vec<String> = vec![
                "/bin/sh".into(),
                "-c".into(),
                ACTIVEMQ_BARE.into(),
                "sh".into(),
            ];
            cmd.extend(argv.iter().cloned());
            (cmd, lines(env), argv)
        }
    };
    Captured {
        memory: hc.memory,
        memory_swap: hc.memory_swap,
        nano_cpus: hc.nano_cpus,
        pids_limit: hc.pids_limit,
        exposed,
        host_ip,
        conf_tar,
        spec_tar,
        bare_cmd,
        bare_env,
        engine_argv,
    }
}

async fn berth_round(
    app: &TestApp,
    db: &sqlx::PgPool,
    events: &Events,
    target: &Target,
    round: usize,
    want_capture: bool,
) -> (BerthRound, Option<Captured>) {
    let docker = &app.docker;
    let body = json!({
        "brokerName": format!("bench-{}-{}-{round}", target.engine_name(), target.version.replace('.', "-")),
        "engineType": target.wire_engine(),
        "engineVersion": target.version,
        "deploymentMode": "SINGLE_INSTANCE",
        "hostInstanceType": target.instance,
        "publiclyAccessible": false,
        "autoMinorVersionUpgrade": true,
        "users": [{ "username": USER, "password": PASSWORD }],
        "creatorRequestId": uuid::Uuid::new_v4().to_string(),
    });
    let mut create = Marks::default();
    let cpu0 = cpu_self();
    let t0 = now();
    create.add(M_CALL, Some(t0));
    let id = app.create_broker(&body).await;
    create.add(M_REPLY, Some(now()));
    let container = format!("berth-{id}-0");
    let what = format!("{} broker {id}", target.key());

    // The engine's own readiness, on the published port (known from `docker inspect`
    // before Berth lists the endpoint).
    let usable = async {
        let port = loop {
            if let Some(p) = host_port(docker, &container, target.container_port()).await {
                break p;
            }
            assert!(
                now() - t0 < READY_TIMEOUT.as_secs_f64(),
                "{what}: no container"
            );
            tokio::time::sleep(POLL).await;
        };
        poll_until(&format!("{what}: engine usable"), READY_TIMEOUT, || {
            login(target.engine, port)
        })
        .await
    };
    // What a user sees: DescribeBroker until RUNNING, then a login on the endpoint it lists.
    let user = async {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let (t_running, describe) = loop {
            let (status, v) = app.describe(&id).await;
            if status == 200 {
                match v["brokerState"].as_str() {
                    Some("RUNNING") => break (now(), v),
                    Some("CREATION_FAILED") => panic!("{what} failed: {v}"),
                    _ => {}
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not RUNNING within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(POLL).await;
        };
        let endpoint = describe["brokerInstances"][0]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|e| e.starts_with(target.scheme()))
            .unwrap_or_else(|| panic!("{what}: no {} endpoint in {describe}", target.scheme()))
            .to_owned();
        let port: u16 = endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("{what}: no port in {endpoint}"));
        let t_ready = poll_until(
            &format!("{what}: login on {endpoint}"),
            READY_TIMEOUT,
            || login(target.engine, port),
        )
        .await;
        (t_running, t_ready)
    };
    let (t_usable, (t_running, t_ready)) = tokio::join!(usable, user);
    let cpu = cpu_self() - cpu0;
    create.add(M_USABLE, Some(t_usable));
    create.add(M_DESCRIBE, Some(t_running));
    create.add(M_READY, Some(t_ready));

    let (created_at, state_changed_at): (f64, f64) = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM created_at)::float8, EXTRACT(EPOCH FROM state_changed_at)::float8 \
         FROM brokers WHERE id = $1",
    )
    .bind(&id)
    .fetch_one(db)
    .await
    .expect("broker row");
    create.add(M_ROW, Some(created_at));
    create.add(M_DB_RUNNING, Some(state_changed_at));
    let issued: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM issued_at)::float8 FROM broker_certificates WHERE broker_id = $1",
    )
    .bind(&id)
    .fetch_optional(db)
    .await
    .expect("certificate row");
    create.add(M_CERT, issued);
    let lines = log_lines(docker, &container).await;
    mark_logs(&mut create, &lines, AGENT_LOG_MARKS);
    mark_logs(&mut create, &lines, target.engine_log_marks());
    mark_first_engine_line(&mut create, &lines);
    events.mark(&mut create, &id, t0, t_ready);

    let captured = match want_capture {
        true => Some(capture(docker, target, &container).await),
        false => None,
    };

    // DeleteBroker -> nothing left.
    let mut delete = Marks::default();
    let d0 = now();
    delete.add("DeleteBroker called", Some(d0));
    let status = app.delete(&format!("/v1/brokers/{id}")).await.status();
    assert_eq!(status, 200, "{what}: DeleteBroker");
    delete.add("DeleteBroker replied 200", Some(now()));
    let (mut t_404, mut t_gone) = (None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while t_404.is_none() || t_gone.is_none() {
        if t_404.is_none() && app.describe(&id).await.0 == 404 {
            t_404 = Some(now());
        }
        if t_gone.is_none() && app.docker_objects(&id).await.is_empty() {
            t_gone = Some(now());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still there after DeleteBroker: {:?}",
            app.docker_objects(&id).await
        );
        tokio::time::sleep(POLL).await;
    }
    let (t_404, t_gone) = (t_404.unwrap(), t_gone.unwrap());
    delete.add("DescribeBroker answers 404", Some(t_404));
    delete.add(
        "no container, volume or network with the label left",
        Some(t_gone),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    events.mark(&mut delete, &id, d0, now());

    let round = BerthRound {
        ready: t_ready - t0,
        running: t_running - t0,
        create,
        gone: t_gone - d0,
        not_found: t_404 - d0,
        delete,
        cpu,
    };
    (round, captured)
}

// ---------------------------------------------------------------------------------------
// Bare engine and agent only

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Berth,
    Bare,
    AgentOnly,
}

struct PlainRound {
    /// `docker volume create` -> login OK (s).
    ready: f64,
    marks: Marks,
    /// CPU seconds this process (the bench's polls) used meanwhile.
    cpu: f64,
}

async fn plain_round(
    docker: &bollard::Docker,
    events: &Events,
    target: &Target,
    cap: &Captured,
    variant: Variant,
    name: &str,
) -> PlainRound {
    let labels = HashMap::from([(BENCH_LABEL.to_owned(), std::process::id().to_string())]);
    let volume = format!("{name}-data");
    let mut marks = Marks::default();
    let cpu0 = cpu_self();
    let t0 = now();
    marks.add("docker volume create called", Some(t0));
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(volume.clone()),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .expect("create volume");
    let bindings: HashMap<String, Option<Vec<PortBinding>>> = cap
        .exposed
        .iter()
        .map(|p| {
            let b = PortBinding {
                host_ip: Some(cap.host_ip.clone()),
                host_port: Some(String::new()),
            };
            (p.clone(), Some(vec![b]))
        })
        .collect();
    let (entrypoint, env) = match variant {
        Variant::Bare => (Some(cap.bare_cmd.clone()), Some(cap.bare_env.clone())),
        _ => (None, None),
    };
    let body = ContainerCreateBody {
        image: Some(target.image.into()),
        hostname: Some(BARE_HOSTNAME.into()),
        labels: Some(labels),
        entrypoint,
        env,
        exposed_ports: Some(cap.exposed.clone()),
        host_config: Some(HostConfig {
            memory: cap.memory,
            memory_swap: cap.memory_swap,
            nano_cpus: cap.nano_cpus,
            pids_limit: cap.pids_limit,
            port_bindings: Some(bindings),
            binds: Some(vec![format!("{volume}:{}", target.data_dir())]),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.into()),
                ..Default::default()
            }),
            body,
        )
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    match variant {
        Variant::Bare => upload(docker, name, target.conf_dir().1, &cap.conf_tar).await,
        _ => upload(docker, name, "/etc", &cap.spec_tar).await,
    }
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let port = host_port(docker, name, target.container_port())
        .await
        .unwrap_or_else(|| panic!("{name}: no published port"));
    let what = format!("{} {variant:?} {name}", target.key());
    let t_ok = poll_until(&what, READY_TIMEOUT, || async {
        if login(target.engine, port).await {
            return true;
        }
        // Fail fast when the engine died (a bad bare command line).
        let running = docker
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.running)
            .unwrap_or(false);
        if !running {
            let logs = log_lines(docker, name).await;
            let tail: Vec<&str> = logs
                .iter()
                .rev()
                .take(30)
                .map(|(_, l)| l.as_str())
                .collect();
            panic!(
                "{what}: the container stopped; last log lines (newest first):\n{}",
                tail.join("\n")
            );
        }
        false
    })
    .await;
    let cpu = cpu_self() - cpu0;
    marks.add("login OK on the published port", Some(t_ok));
    // Log lines that come after the login (not timed): wait up to 3 s for them.
    let late = match variant {
        Variant::AgentOnly => M_AG_READY,
        _ => M_EN_UP,
    };
    let timed = marks.clone();
    for _ in 0..30 {
        let lines = log_lines(docker, name).await;
        marks = timed.clone();
        if variant == Variant::AgentOnly {
            mark_logs(&mut marks, &lines, AGENT_LOG_MARKS);
        }
        mark_logs(&mut marks, &lines, target.engine_log_marks());
        mark_first_engine_line(&mut marks, &lines);
        if marks.get(late).is_some() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    events.mark(&mut marks, name, t0, t_ok);
    remove_container(docker, name).await;
    let _ = docker
        .remove_volume(&volume, Some(RemoveVolumeOptions { force: true }))
        .await;
    PlainRound {
        ready: t_ok - t0,
        marks,
        cpu,
    }
}

// ---------------------------------------------------------------------------------------
// Reporting

fn print_marks(title: &str, marks: &Marks, origin: &str) {
    println!("  {title}");
    let sorted = marks.sorted();
    let Some(t0) = marks.get(origin).or(sorted.first().map(|(_, t)| *t)) else {
        return;
    };
    let mut prev = t0;
    println!("    {:>8}  {:>7}  step", "t+ (s)", "Δ (s)");
    for (label, t) in sorted {
        println!("    {:>8.3}  {:>7.3}  {label}", t - t0, t - prev);
        prev = t;
    }
}

/// Median (min–max) of a phase over the rounds that have both marks.
fn phase_stats(rounds: &[&Marks], from: &str, to: &str) -> Option<(f64, f64, f64)> {
    let v: Vec<f64> = rounds.iter().filter_map(|m| m.span(from, to)).collect();
    if v.is_empty() {
        return None;
    }
    let (lo, hi) = min_max(&v);
    Some((median(&v), lo, hi))
}

fn print_phases(title: &str, rounds: &[&Marks], phases: &[(&str, &str, &str)]) {
    println!("  {title}");
    println!("    {:>7}  {:>15}  phase", "median", "min - max");
    for (label, from, to) in phases {
        match phase_stats(rounds, from, to) {
            Some((m, lo, hi)) => println!(
                "    {m:>7.3}  {:>15}  {label}",
                format!("{lo:.3} - {hi:.3}")
            ),
            None => println!("    {:>7}  {:>15}  {label} (marks missing)", "-", "-"),
        }
    }
}

struct TargetResult {
    target: Target,
    berth: Vec<BerthRound>,
    bare: Vec<PlainRound>,
    agent: Vec<PlainRound>,
    limits: String,
}

fn report_target(r: &TargetResult) {
    let t = &r.target;
    println!();
    println!(
        "=== {} ({} {}, {}: {}) — where the time goes ===",
        t.key(),
        t.wire_engine(),
        t.full,
        t.instance,
        r.limits
    );
    let ready: Vec<f64> = r.berth.iter().map(|b| b.ready).collect();
    let mi = median_index(&ready);
    let b = &r.berth[mi];
    print_marks(
        &format!(
            "Timeline of one Berth create (round {mi}, the median one: {:.2} s to a login on the listed endpoint)",
            b.ready
        ),
        &b.create,
        M_CALL,
    );
    let creates: Vec<&Marks> = r.berth.iter().map(|b| &b.create).collect();
    print_phases(
        &format!(
            "Berth create phases over {} rounds (s; they add up to create -> ready)",
            r.berth.len()
        ),
        &creates,
        BERTH_PHASES,
    );
    print_phases(
        "Engine boot inside Berth (s)",
        &creates,
        &[
            (
                "engine spawned -> engine's first log line",
                M_AG_SPAWN,
                M_EN_FIRST,
            ),
            (
                "engine's first log line -> boot banner",
                M_EN_FIRST,
                M_EN_BOOT,
            ),
            (
                "boot banner -> login OK (published port)",
                M_EN_BOOT,
                M_USABLE,
            ),
            (
                "engine spawned -> login OK (published port)",
                M_AG_SPAWN,
                M_USABLE,
            ),
            (
                "(login OK -> engine log 'startup complete')",
                M_USABLE,
                M_EN_UP,
            ),
        ],
    );

    let vol = "docker volume create called";
    let login = "login OK on the published port";
    let bare: Vec<&Marks> = r.bare.iter().map(|p| &p.marks).collect();
    print_phases(
        "Bare engine: same image/limits/ports/config, no agent, no control plane (s)",
        &bare,
        &[
            ("volume create -> container create", vol, M_CREATE),
            (
                "container create -> start (config upload, start)",
                M_CREATE,
                M_START,
            ),
            (
                "volume create -> container start (create, config upload, start)",
                vol,
                M_START,
            ),
            (
                "container start -> engine's first log line",
                M_START,
                M_EN_FIRST,
            ),
            (
                "engine's first log line -> boot banner",
                M_EN_FIRST,
                M_EN_BOOT,
            ),
            ("boot banner -> login OK", M_EN_BOOT, login),
            ("container start -> login OK", M_START, login),
            (
                "(login OK -> engine log 'startup complete')",
                login,
                M_EN_UP,
            ),
            ("total: volume create -> login OK", vol, login),
        ],
    );
    let agent: Vec<&Marks> = r.agent.iter().map(|p| &p.marks).collect();
    print_phases(
        "Agent only: image entrypoint + the broker's spec.json, no control plane (s)",
        &agent,
        &[
            (
                "volume create -> container start (create, spec upload, start)",
                vol,
                M_START,
            ),
            (
                "container start -> engine spawned (agent boot, config files)",
                M_START,
                M_AG_SPAWN,
            ),
            (
                "engine spawned -> engine's first log line",
                M_AG_SPAWN,
                M_EN_FIRST,
            ),
            (
                "engine's first log line -> boot banner",
                M_EN_FIRST,
                M_EN_BOOT,
            ),
            ("boot banner -> login OK", M_EN_BOOT, login),
            ("engine spawned -> login OK", M_AG_SPAWN, login),
            ("(login OK -> agent says ready)", login, M_AG_READY),
            ("total: volume create -> login OK", vol, login),
        ],
    );
    let gone: Vec<f64> = r.berth.iter().map(|b| b.gone).collect();
    let di = median_index(&gone);
    print_marks(
        &format!("Timeline of one delete (round {di}, the median one)"),
        &r.berth[di].delete,
        "DeleteBroker called",
    );
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("  {}", line.join(" | ").trim_end());
        if i == 0 {
            let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("  {}", sep.join("-|-"));
        }
    }
}

/// `median (min-max)` of a series.
fn cell(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (lo, hi) = min_max(v);
    format!("{:.2} ({lo:.2}-{hi:.2})", median(v))
}

fn print_summary(results: &[TargetResult], rounds: usize) {
    println!();
    println!(
        "=== Lifecycle summary: medians over {rounds} rounds per engine/version (min-max), seconds ==="
    );
    let header = [
        "engine/version",
        "login via",
        "Berth create->RUNNING",
        "Berth create->ready",
        "bare->ready",
        "agent-only->ready",
        "ratio Berth/bare",
        "delete->nothing left",
        "delete->404",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in results {
        let ready: Vec<f64> = r.berth.iter().map(|b| b.ready).collect();
        let bare: Vec<f64> = r.bare.iter().map(|b| b.ready).collect();
        let ratio = median(&ready) / median(&bare);
        rows.push(vec![
            r.target.key(),
            r.target.protocol().into(),
            cell(&r.berth.iter().map(|b| b.running).collect::<Vec<_>>()),
            cell(&ready),
            cell(&bare),
            cell(&r.agent.iter().map(|b| b.ready).collect::<Vec<_>>()),
            format!("{ratio:.2} {}", if ratio <= 1.15 { "ok" } else { "> 1.15" }),
            cell(&r.berth.iter().map(|b| b.gone).collect::<Vec<_>>()),
            cell(&r.berth.iter().map(|b| b.not_found).collect::<Vec<_>>()),
        ]);
    }
    print_table(&rows);
    println!("  goal: ratio = median Berth create->ready / median bare->ready <= 1.15");

    println!();
    println!(
        "=== Engine boot vs everything else (medians over rounds, seconds): the engine boot is the \
         same work in all three, so 'everything else' is what Berth adds ==="
    );
    let header = [
        "engine/version",
        "Berth: before engine spawn",
        "Berth: engine boot",
        "Berth: usable->ready",
        "Berth: all but boot",
        "bare: before start",
        "bare: engine boot",
        "agent-only: all but boot",
        "CPU of this process: Berth create / bare",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let vol = "docker volume create called";
    let login = "login OK on the published port";
    for r in results {
        let span = |marks: &Marks, a: &str, b: &str| marks.span(a, b);
        let berth = |a: &str, b: &str| -> Vec<f64> {
            r.berth
                .iter()
                .filter_map(|x| span(&x.create, a, b))
                .collect()
        };
        let boot: Vec<f64> = berth(M_AG_SPAWN, M_USABLE);
        let rest: Vec<f64> = r
            .berth
            .iter()
            .filter_map(|x| Some(x.ready - x.create.span(M_AG_SPAWN, M_USABLE)?))
            .collect();
        let bare = |a: &str, b: &str| -> Vec<f64> {
            r.bare.iter().filter_map(|x| span(&x.marks, a, b)).collect()
        };
        let agent_rest: Vec<f64> = r
            .agent
            .iter()
            .filter_map(|x| Some(x.ready - x.marks.span(M_AG_SPAWN, login)?))
            .collect();
        let cpu_b: Vec<f64> = r.berth.iter().map(|x| x.cpu).collect();
        let cpu_p: Vec<f64> = r.bare.iter().map(|x| x.cpu).collect();
        rows.push(vec![
            r.target.key(),
            cell(&berth(M_CALL, M_AG_SPAWN)),
            cell(&boot),
            cell(&berth(M_USABLE, M_READY)),
            cell(&rest),
            cell(&bare(vol, M_START)),
            cell(&bare(M_START, login)),
            cell(&agent_rest),
            format!("{:.2} / {:.2}", median(&cpu_b), median(&cpu_p)),
        ]);
    }
    print_table(&rows);
}

fn limits_text(cap: &Captured) -> String {
    let cpus = cap.nano_cpus.map(|n| n as f64 / 1e9).unwrap_or(0.0);
    let mem = cap
        .memory
        .map(|m| m as f64 / (1u64 << 30) as f64)
        .unwrap_or(0.0);
    format!(
        "{cpus:.0} vCPU / {mem:.1} GiB, {} published ports",
        cap.exposed.len()
    )
}

// ---------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    let rounds = rounds();
    let targets = selected_targets();
    let app = spawn_app().await;
    let _cleanup = BenchCleanup(std::process::id().to_string());
    for t in &targets {
        if app.docker.inspect_image(t.image).await.is_err() {
            panic!(
                "image {} is missing: run `make images` (make bench does this)",
                t.image
            );
        }
    }
    let db = sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .expect("database");
    let events = Events::start(&app.docker);
    // Let the events stream attach before the first broker.
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!(
        "Berth lifecycle benchmark: {} ({} rounds each)",
        targets
            .iter()
            .map(Target::key)
            .collect::<Vec<_>>()
            .join(", "),
        rounds
    );
    println!(
        "  Berth in-process (bench profile), reconcile sweep every {} ms; TLS listeners {} (the broker \
         certificate is issued on the create path), plaintext listeners {}.",
        app.settings.reconcile_interval_ms, app.settings.tls_listeners, app.settings.plaintext_listeners
    );
    println!(
        "  'ready' = a real login with the broker user on the primary plaintext endpoint: RabbitMQ \
         AMQP 0-9-1 (lapin) on amqp://, ActiveMQ STOMP CONNECT -> CONNECTED on stomp:// (STOMP, not \
         the JMS client in tests/jms: a JVM per attempt cannot poll every 100 ms). Polls: 100 ms."
    );
    println!(
        "  'bare' = same image, same CPU/memory/pids limits, the same container ports published, a \
         fresh volume on the data dir; the engine config files the agent wrote (copied out of a Berth \
         broker of this run) and the engine exec'd directly as the agent execs it; no agent, no \
         control plane; timed from `docker volume create` to the same login."
    );
    println!(
        "  'agent-only' = the same container with the image's own entrypoint (the agent) and the Berth \
         broker's spec.json: the agent's share without the control plane."
    );
    println!(
        "  The host is shared: each round line shows its 1-minute load average; the engine boot \
         varies with it, the steps around it much less (see the second summary table)."
    );

    let mut results = Vec::new();
    for target in &targets {
        let mut berth = Vec::new();
        let mut bare = Vec::new();
        let mut agent = Vec::new();
        let mut captured: Option<Captured> = None;
        for round in 0..rounds {
            // Berth first in round 0 (the others need its files), then rotate.
            let order = match round % 3 {
                0 => [Variant::Berth, Variant::Bare, Variant::AgentOnly],
                1 => [Variant::Bare, Variant::AgentOnly, Variant::Berth],
                _ => [Variant::AgentOnly, Variant::Berth, Variant::Bare],
            };
            for variant in order {
                let name = format!(
                    "berth-bench-{}-{}-{}-{variant:?}-{round}",
                    std::process::id(),
                    target.engine_name(),
                    target.version.replace('.', "-")
                )
                .to_lowercase();
                match variant {
                    Variant::Berth => {
                        let (r, cap) =
                            berth_round(&app, &db, &events, target, round, captured.is_none())
                                .await;
                        if cap.is_some() {
                            captured = cap;
                        }
                        berth.push(r);
                    }
                    Variant::Bare => {
                        let cap = captured.as_ref().expect("captured");
                        bare.push(
                            plain_round(&app.docker, &events, target, cap, variant, &name).await,
                        );
                    }
                    Variant::AgentOnly => {
                        let cap = captured.as_ref().expect("captured");
                        agent.push(
                            plain_round(&app.docker, &events, target, cap, variant, &name).await,
                        );
                    }
                }
            }
            let (b, p, a) = (
                berth.last().unwrap(),
                bare.last().unwrap(),
                agent.last().unwrap(),
            );
            println!(
                "{} round {round}: Berth create->ready {:.2} s (DescribeBroker RUNNING at {:.2} s, engine usable at {:.2} s), \
                 delete->nothing left {:.2} s | bare {:.2} s | agent-only {:.2} s | host load {}",
                target.key(),
                b.ready,
                b.running,
                b.create.span(M_CALL, M_USABLE).unwrap_or(f64::NAN),
                b.gone,
                p.ready,
                a.ready,
                loadavg()
            );
        }
        let cap = captured.expect("captured");
        let result = TargetResult {
            target: target.clone(),
            berth,
            bare,
            agent,
            limits: limits_text(&cap),
        };
        report_target(&result);
        if target.engine == Engine::Activemq {
            println!(
                "  Bare ActiveMQ command (the JVM argv the agent ran): {}",
                cap.engine_argv.join(" ")
            );
        }
        results.push(result);
    }
    print_summary(&results, rounds);
    db.close().await;
    app.stop().await;
}
