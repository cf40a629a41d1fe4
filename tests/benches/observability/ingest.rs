//! Parts 1 and 2: the control plane as its own process collecting from simulated
//! brokers, and one broker-day of history queried through the API and the console.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_contract::EngineState;
use berth::crypto::{random_token, SecretBox};
use berth::db::broker::PortPool;
use berth::db::metrics::{SeriesSpec, HOUR, MINUTE};
use berth::db::model::{NewBroker, NewUser};
use berth::db::nodes::NodeObservation;
use berth::db::DataStore;
use berth::domain::profile::AGENT_PROTOCOL;
use berth::domain::{AccountId, BrokerId, BrokerState, DeploymentMode, Region, Scope};
use chrono::{TimeZone, Utc};
use serde_json::json;

use super::sim::{self, SimBroker, SimLog};
use super::{env_usize, epoch_secs, proc_cpu_secs, proc_status_kb, stats_ms, Row};

/// Agent ports of the simulated brokers (below the kernel's ephemeral range).
pub const SIM_PORTS: (u16, u16) = (12000, 12999);
/// Brokers per account (the API's per-account limit).
const PER_ACCOUNT: usize = 200;
const REGION: &str = "us-east-1";
/// Series per simulated report: 8 container + 11 overview + 5 node, + 4 per queue.
pub fn series_per_report(queues: usize) -> usize {
    24 + 4 * queues
}

/// The `berth` binary measured: `$BERTH_BIN`, else the release build, else the debug one.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        return p.into();
    }
    let release = berth_tests::workspace_root().join("target/release/berth");
    if release.exists() {
        release
    } else {
        berth_tests::berth_bin()
    }
}

/// A running `berth serve` on the bench's database.
pub struct Berth {
    pub child: tokio::process::Child,
    pub base: String,
    pub pid: u32,
    pub metrics_token: String,
    stderr_path: PathBuf,
}

impl Berth {
    /// `berth serve` with metric collection every `interval_ms`, the reconciler parked
    /// (one sweep at start-up, then only on API changes: the simulated brokers have no
    /// containers for it to converge), everything else at its defaults. Its host-port
    /// range is the one port `held` that the bench keeps bound: a start-up sweep that
    /// finds the simulated brokers (on a second start) fails at pinning their engine
    /// ports, before it could create any Docker object for them.
    pub async fn start(db: &str, data_dir: &Path, interval_ms: u64, held: u16) -> Self {
        let metrics_token = random_token();
        // Its warnings (slow statements, slow pool acquires) go to a file, counted later.
        let stderr_path = data_dir.join(format!("berth-{interval_ms}.stderr"));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = tokio::process::Command::new(bin())
            .env("DATABASE_URL", db)
            .env("BERTH_DATA_DIR", data_dir)
            .env("BERTH_LISTEN", "127.0.0.1:0")
            .env("BERTH_PORT_RANGE_START", held.to_string())
            .env("BERTH_PORT_RANGE_END", held.to_string())
            .env("BERTH_RECONCILE_INTERVAL_MS", "86400000")
            .env("BERTH_METRICS_INTERVAL_MS", interval_ms.to_string())
            .env("BERTH_METRICS_TOKEN", &metrics_token)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn berth");
        let pid = child.id().expect("berth pid");
        let base = berth_tests::berth_banner(&mut child, Duration::from_secs(90)).await;
        Self {
            child,
            base,
            pid,
            metrics_token,
            stderr_path,
        }
    }

    /// Warnings the process logged so far, and the kinds (message text) of the first few.
    pub fn warnings(&self) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let warns: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
        let mut kinds: Vec<String> = Vec::new();
        for w in &warns {
            let kind = w
                .split(" WARN ")
                .nth(1)
                .unwrap_or_default()
                .split(['=', '"'])
                .next()
                .unwrap_or_default()
                .trim()
                .chars()
                .take(90)
                .collect::<String>();
            if !kinds.contains(&kind) && kinds.len() < 4 {
                kinds.push(kind);
            }
        }
        (warns.len(), kinds)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// `berth_metric_collector_passes` and `…_failures` from its Prometheus endpoint.
    pub async fn collector_counters(&self, http: &reqwest::Client) -> (f64, f64) {
        let text = http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(&self.metrics_token)
            .send()
            .await
            .expect("Prometheus scrape")
            .text()
            .await
            .unwrap_or_default();
        let value = |name: &str| {
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .sum::<f64>()
        };
        (
            value("berth_metric_collector_passes"),
            value("berth_metric_collector_failures"),
        )
    }
}

/// The bench's installation: database, data dir, simulated brokers.
pub struct Setup {
    pub db: String,
    pub data_dir: tempfile::TempDir,
    pub store: DataStore,
    pub pool: sqlx::PgPool,
    pub brokers: Vec<(String, String)>,
    pub log: Arc<SimLog>,
    pub queues: usize,
    /// The process's whole host-port range, bound here (see [`Berth::start`]).
    pub held: std::net::TcpListener,
}

impl Setup {
    pub fn held_port(&self) -> u16 {
        self.held.local_addr().expect("held port").port()
    }
}

/// Inserts `n` RUNNING single-instance RabbitMQ brokers the way CreateBroker and the
/// reconciler write them (the same `DataStore` calls; the agent token and a user
/// password sealed with the installation's master key from the data dir), each with one
/// pinned agent port in [`SIM_PORTS`] and its node last seen Ready.
async fn insert_brokers(
    store: &DataStore,
    secrets: &SecretBox,
    n: usize,
    logs_on: bool,
) -> Vec<SimBroker> {
    let pool = PortPool {
        publish_host: "127.0.0.1".into(),
        start: SIM_PORTS.0,
        end: SIM_PORTS.1,
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let account = AccountId::parse(&format!("{:012}", i / PER_ACCOUNT)).unwrap();
        let id = BrokerId::generate();
        let token = random_token();
        let layout = berth::domain::nodes::layout(&id, DeploymentMode::SingleInstance, REGION);
        let node = &layout.nodes[0];
        let new = NewBroker {
            id: id.clone(),
            scope: Scope {
                account,
                region: Region::parse(REGION).unwrap(),
            },
            name: format!("sim-{i:04}"),
            engine_type: "RABBITMQ".into(),
            engine_version: "4.0".into(),
            deployment_mode: "SINGLE_INSTANCE".into(),
            host_instance_type: "mq.m7g.medium".into(),
            storage_type: "EBS".into(),
            authentication_strategy: "SIMPLE".into(),
            publicly_accessible: false,
            auto_minor_version_upgrade: true,
            maintenance_day: "SUNDAY".into(),
            maintenance_time: "03:00".into(),
            maintenance_time_zone: "UTC".into(),
            logs_general: logs_on,
            logs_audit: false,
            tags: Default::default(),
            creator_request_id: None,
            agent_token_enc: secrets.seal(&token),
            erlang_cookie_enc: secrets.seal(&random_token()),
            users: vec![NewUser {
                username: "app".into(),
                password_enc: secrets.seal("correct-horse-9"),
                console_access: false,
                groups: Vec::new(),
            }],
            configuration: None,
            subnet_ids: Vec::new(),
            security_groups: Vec::new(),
            ports: vec![(node.index as i32, AGENT_PROTOCOL)],
        };
        store
            .broker_create(new, &pool)
            .await
            .unwrap_or_else(|e| panic!("inserting simulated broker {i}: {e}"));
        store
            .broker_transition(
                &id,
                &[BrokerState::CreationInProgress],
                BrokerState::Running,
                None,
            )
            .await
            .expect("RUNNING");
        store
            .node_observe(
                &id,
                node.index,
                &node.zone,
                &NodeObservation::Reported {
                    state: EngineState::Ready,
                    last_error: None,
                    cluster_running: None,
                    alarms: Vec::new(),
                },
            )
            .await
            .expect("node Ready");
        let port = store
            .broker_ports(&id)
            .await
            .expect("ports")
            .into_iter()
            .find(|p| p.protocol == AGENT_PROTOCOL)
            .expect("agent port")
            .host_port;
        out.push(SimBroker {
            broker_id: id.as_str().to_owned(),
            token,
            port: u16::try_from(port).expect("port"),
        });
    }
    out
}

/// A fresh database and data dir, a first `berth serve` (migrations, master key), the
/// simulated brokers inserted and their agents listening. Returns the running process.
pub async fn setup(n: usize, first_interval_ms: u64) -> (Setup, Berth) {
    let db = berth_tests::fresh_database().await;
    let data_dir = tempfile::tempdir().expect("tempdir");
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let held_port = held.local_addr().expect("held port").port();
    let berth = Berth::start(&db, data_dir.path(), first_interval_ms, held_port).await;
    // The bench's own connections are named, so they are not counted as the process's.
    let bench_url = format!("{db}?application_name=bench");
    let store = DataStore::connect(&bench_url).await.expect("bench store");
    let pool = sqlx::PgPool::connect(&bench_url).await.expect("bench pool");
    // The key the process sealed its own secrets with (it wrote master.key on start).
    let secrets = SecretBox::load_or_create(None, data_dir.path()).expect("master key");
    let queues = env_usize("BERTH_BENCH_OBS_QUEUES", 3);
    let logs_on = std::env::var("BERTH_BENCH_OBS_LOGS").map_or(true, |v| v != "0");
    let t = epoch_secs();
    let sims = insert_brokers(&store, &secrets, n, logs_on).await;
    println!(
        "  inserted {n} RUNNING brokers (agent ports {}-{}, general logs {}) in {:.1} s",
        SIM_PORTS.0,
        SIM_PORTS.1,
        if logs_on { "on" } else { "off" },
        epoch_secs() - t
    );
    let brokers = sims
        .iter()
        .map(|s| (s.broker_id.clone(), s.token.clone()))
        .collect();
    let log = Arc::new(SimLog::default());
    sim::start(sims, queues, log.clone()).await;
    (
        Setup {
            db,
            data_dir,
            store,
            pool,
            brokers,
            log,
            queues,
            held,
        },
        berth,
    )
}

/// One interval's measurement.
pub struct IngestResult {
    pub interval_s: u64,
    pub rounds: usize,
    pub cycle_s: f64,
    pub round_s: Vec<f64>,
    pub samples_per_round: Vec<i64>,
    pub reports_per_round: Vec<i64>,
    pub cpu_pct: f64,
    pub pg_cpu_pct: f64,
    pub rss_mb: f64,
    pub hwm_mb: f64,
    pub passes: f64,
    pub failures: f64,
    pub warnings: usize,
    pub warning_kinds: Vec<String>,
    pub refused: u64,
    pub logs_requests: u64,
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Postgres backends serving the process's connections to the bench database.
async fn pg_backends(pool: &sqlx::PgPool) -> Vec<u32> {
    sqlx::query_scalar::<_, i32>(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND backend_type = 'client backend' AND application_name <> 'bench'",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default()
    .into_iter()
    .filter_map(|p| u32::try_from(p).ok())
    .collect()
}

fn cpu_of(pids: &[u32]) -> std::collections::HashMap<u32, f64> {
    pids.iter()
        .filter_map(|p| proc_cpu_secs(*p).map(|c| (*p, c)))
        .collect()
}

/// Measures `rounds` collection cycles of the running process: CPU over exactly those
/// cycles (from the first request of round 1 to the first of round `rounds + 1`), and
/// per round its duration (first request → last report stored) and the rows it stored.
pub async fn measure(
    s: &Setup,
    berth: &Berth,
    interval_s: u64,
    rounds: usize,
    http: &reqwest::Client,
) -> IngestResult {
    let n = s.brokers.len();
    // Start between passes: after 2 s without a metrics request.
    loop {
        let before = s.log.metrics_count();
        tokio::time::sleep(Duration::from_secs(2)).await;
        if s.log.metrics_count() == before {
            break;
        }
    }
    s.log.clear();
    let cycle_timeout = Duration::from_secs(interval_s * 3 + 120);
    wait_for("first collection round", cycle_timeout, || {
        s.log.metrics_count() > 0
    })
    .await;
    let t0 = epoch_secs();
    let cpu0 = proc_cpu_secs(berth.pid).expect("berth cpu");
    // Postgres backends are per connection; this process's pool may still be opening.
    let pg0 = cpu_of(&pg_backends(&s.pool).await);
    let (passes0, failures0) = berth.collector_counters(http).await;
    let mut round_s = Vec::new();
    let mut samples = Vec::new();
    let mut reports = Vec::new();
    for k in 1..=rounds {
        wait_for("a collection round", cycle_timeout, || {
            s.log.metrics_count() >= k * n
        })
        .await;
        let (start, last) = {
            let at = s.log.metrics_at.lock().unwrap();
            let chunk = &at[(k - 1) * n..k * n];
            (
                chunk.iter().copied().fold(f64::INFINITY, f64::min),
                chunk.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let since = Utc.timestamp_millis_opt((start * 1000.0) as i64).unwrap();
        let until = Utc
            .timestamp_millis_opt((last * 1000.0) as i64 + 1000)
            .unwrap();
        // Stored when every node's report of this round is in (or 30 s passed).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (stored, newest) = loop {
            let (c, newest): (i64, Option<chrono::DateTime<Utc>>) = sqlx::query_as(
                "SELECT count(*), max(collected_at) FROM metric_reports WHERE collected_at >= $1",
            )
            .bind(since)
            .fetch_one(&s.pool)
            .await
            .expect("reports");
            if c as usize >= n || tokio::time::Instant::now() > deadline {
                break (c, newest);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let points: i64 =
            sqlx::query_scalar("SELECT count(*) FROM metric_points WHERE ts >= $1 AND ts < $2")
                .bind(since - chrono::Duration::milliseconds(5))
                .bind(until)
                .fetch_one(&s.pool)
                .await
                .expect("points");
        let done = newest.map_or(f64::NAN, |t| t.timestamp_millis() as f64 / 1000.0);
        round_s.push(done - start);
        samples.push(points);
        reports.push(stored);
    }
    wait_for("the cycle after the last round", cycle_timeout, || {
        s.log.metrics_count() > rounds * n
    })
    .await;
    let t1 = epoch_secs();
    let cpu1 = proc_cpu_secs(berth.pid).expect("berth cpu");
    // Backends opened during the window count whole; one closed during it is lost.
    let pg1 = cpu_of(&pg_backends(&s.pool).await);
    let pg_delta: f64 = pg1
        .iter()
        .map(|(p, c1)| c1 - pg0.get(p).copied().unwrap_or(0.0))
        .sum();
    let (passes1, failures1) = berth.collector_counters(http).await;
    let (warnings, warning_kinds) = berth.warnings();
    IngestResult {
        interval_s,
        rounds,
        cycle_s: (t1 - t0) / rounds as f64,
        round_s,
        samples_per_round: samples,
        reports_per_round: reports,
        cpu_pct: 100.0 * (cpu1 - cpu0) / (t1 - t0),
        pg_cpu_pct: 100.0 * pg_delta / (t1 - t0),
        rss_mb: proc_status_kb(berth.pid, "VmRSS").unwrap_or(f64::NAN) / 1024.0,
        hwm_mb: proc_status_kb(berth.pid, "VmHWM").unwrap_or(f64::NAN) / 1024.0,
        passes: passes1 - passes0,
        failures: failures1 - failures0,
        warnings,
        warning_kinds,
        refused: s.log.refused.load(std::sync::atomic::Ordering::Relaxed),
        logs_requests: s
            .log
            .logs_requests
            .load(std::sync::atomic::Ordering::Relaxed),
    }
}

pub fn print_ingest(r: &IngestResult, n: usize, queues: usize) {
    let med = |v: &[f64]| super::median(v);
    let samples: Vec<f64> = r.samples_per_round.iter().map(|x| *x as f64).collect();
    let reports: Vec<f64> = r.reports_per_round.iter().map(|x| *x as f64).collect();
    println!(
        "  interval {} s, {n} brokers x {} series, {} rounds, cycle {:.1} s:",
        r.interval_s,
        series_per_report(queues),
        r.rounds,
        r.cycle_s
    );
    println!(
        "    round (first request -> last report stored): {}",
        r.round_s
            .iter()
            .map(|x| format!("{x:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "    stored per round: {:.0} points, {:.0} reports (expected {} and {n})",
        med(&samples),
        med(&reports),
        n * series_per_report(queues)
    );
    println!(
        "    berth CPU {:.2} % of one core (goal <= 5 %), its Postgres backends {:.2} %; RSS {:.1} MB (peak {:.1} MB)",
        r.cpu_pct, r.pg_cpu_pct, r.rss_mb, r.hwm_mb
    );
    println!(
        "    in the window: collector passes {} / failed nodes {} (its Prometheus counters); /logs requests {}; refused tokens {}",
        r.passes, r.failures, r.logs_requests, r.refused
    );
    println!(
        "    warnings logged by the process since its start: {} {:?}",
        r.warnings, r.warning_kinds
    );
}

// ---------------------------------------------------------------------------------------
// Part 2: one broker-day

pub struct HistoryResult {
    pub rows: Vec<(String, Vec<f64>, usize)>,
    pub series: usize,
    pub insert_s: f64,
}

/// Gives the first broker of the default account a day of history at the default
/// interval (60 s): the collector's two `DataStore` calls per report, then the
/// Maintainer's roll-ups of each hour right after it is written (so the process's own
/// retention, which drops raw points older than 6 h, cannot remove them first).
async fn fill_day(s: &Setup, broker: &str, now: chrono::DateTime<Utc>) -> (usize, f64) {
    let t = epoch_secs();
    let account = "000000000000";
    let start = now - chrono::Duration::hours(24);
    let start = Utc.timestamp_opt(start.timestamp() / 60 * 60, 0).unwrap();
    let probe = sim::rabbitmq_report(broker, s.queues, 0, 0);
    let specs: Vec<SeriesSpec> = probe
        .samples
        .iter()
        .map(|x| {
            let mut d = x.dimensions.clone();
            d.entry("Node".into()).or_insert_with(|| "0".into());
            SeriesSpec {
                name: x.name.clone(),
                dimensions: d,
                unit: serde_json::to_value(x.unit)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            }
        })
        .collect();
    let ids = s
        .store
        .metric_series_ensure(account, broker, &specs)
        .await
        .expect("series");
    // The ids in the order of the report's samples.
    let order: Vec<i64> = specs
        .iter()
        .map(|sp| {
            ids.iter()
                .find(|(_, n, d)| *n == sp.name && *d == sp.dimensions)
                .expect("series id")
                .0
        })
        .collect();
    for hour in 0..24 {
        let from = start + chrono::Duration::hours(hour);
        let to = from + chrono::Duration::hours(1);
        for _attempt in 0..3 {
            for m in 0..60 {
                let ts = from + chrono::Duration::minutes(m);
                if ts >= now {
                    break;
                }
                let r = sim::rabbitmq_report(
                    broker,
                    s.queues,
                    (hour * 60 + m) as u64,
                    ts.timestamp_millis(),
                );
                let values: Vec<f64> = r.samples.iter().map(|x| x.value).collect();
                s.store
                    .metric_report_store(account, broker, 0, ts, &order, &values, &json!(r))
                    .await
                    .expect("day of points");
            }
            s.store
                .metric_rollup(MINUTE, from, to.min(now))
                .await
                .expect("1-minute roll-up");
            let have: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM metric_rollups r JOIN metric_series m ON m.id = r.series_id \
                 WHERE m.broker_id = $1 AND r.resolution_secs = 60 AND r.ts >= $2 AND r.ts < $3",
            )
            .bind(broker)
            .bind(from)
            .bind(to)
            .fetch_one(&s.pool)
            .await
            .expect("roll-up count");
            let minutes = ((to.min(now) - from).num_seconds() / 60) as usize;
            if have as usize >= minutes * order.len() {
                break;
            }
        }
    }
    s.store
        .metric_rollup(
            HOUR,
            Utc.timestamp_opt(start.timestamp() / 3600 * 3600, 0)
                .unwrap(),
            now,
        )
        .await
        .expect("1-hour roll-up");
    (order.len(), epoch_secs() - t)
}

pub async fn history(s: &Setup, berth: &Berth, http: &reqwest::Client) -> HistoryResult {
    let n = env_usize("BERTH_BENCH_OBS_QUERIES", 200);
    let broker = s.brokers[0].0.clone();
    let now = Utc::now();
    let (series, insert_s) = fill_day(s, &broker, now).await;
    let signer = berth_tests::Signer::from_credentials_file(&s.data_dir.path().join("credentials"));
    let mut rows = Vec::new();
    // What an API user or the console's 1 d chart asks: one metric, one day.
    for (label, period, min_points) in [
        (
            "GetMetricData, 1 d, period 600 (console 1 d line)",
            600,
            140,
        ),
        ("GetMetricData, 1 d, period 60 (1,440 points)", 60, 1400),
    ] {
        let url = format!(
            "{}/v1/berth/brokers/{broker}/metrics/MessageReadyCount?startTime={}&endTime={}&period={period}&stat=Average",
            berth.base,
            (now - chrono::Duration::hours(24)).format("%Y-%m-%dT%H:%M:%SZ"),
            now.format("%Y-%m-%dT%H:%M:%SZ"),
        );
        let mut points = 0;
        let mut ms = Vec::with_capacity(n);
        for _ in 0..n {
            let t = std::time::Instant::now();
            let resp = signer.send(http, reqwest::Method::GET, &url, None).await;
            assert_eq!(resp.status(), 200, "{url}");
            let v: serde_json::Value = resp.json().await.unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            points = v["datapoints"].as_array().map_or(0, Vec::len);
        }
        assert!(
            points >= min_points,
            "{label}: {points} datapoints, a day of history was expected"
        );
        rows.push((label.to_owned(), ms, points));
    }
    // The console's metrics page for 1 d: every chart of the RabbitMQ dashboard in one
    // request (rendered server-side).
    let password =
        std::fs::read_to_string(s.data_dir.path().join("console-password")).expect("password");
    let login = http
        .post(format!("{}/auth/login", berth.base))
        .json(&json!({"username": "admin", "password": password.trim()}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200, "console login");
    let cookie = berth_tests::session_cookie(&login).expect("session cookie");
    let page = format!("{}/console/brokers/{broker}/metrics?range=1d", berth.base);
    let mut charts = 0;
    let mut ms = Vec::new();
    for _ in 0..n.div_ceil(4) {
        let t = std::time::Instant::now();
        let resp = http
            .get(&page)
            .header("cookie", format!("berth_session={cookie}"))
            .send()
            .await
            .expect("console page");
        assert_eq!(resp.status(), 200, "{page}");
        let body = resp.text().await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        charts = body.matches("<svg").count();
    }
    assert!(charts > 0, "the console page drew no chart");
    rows.push((
        format!("console metrics page, 1 d ({charts} charts, one request)"),
        ms,
        charts,
    ));
    HistoryResult {
        rows,
        series,
        insert_s,
    }
}

pub fn print_history(h: &HistoryResult, summary: &mut Vec<Row>) {
    println!(
        "  one broker-day: {} series x 1,440 minutes written and rolled up in {:.1} s",
        h.series, h.insert_s
    );
    for (label, ms, _) in &h.rows {
        let (p50, p99, max) = stats_ms(ms);
        println!(
            "    {label:<58} n={:<4} p50 {p50:>6.1} ms  p99 {p99:>6.1} ms  max {max:>6.1} ms  (goal <= 50 ms)",
            ms.len()
        );
        summary.push(Row::new(
            label,
            format!("p50 {p50:.1} / p99 {p99:.1} / max {max:.1} ms"),
            "<= 50 ms",
            p99 <= 50.0,
        ));
    }
}
