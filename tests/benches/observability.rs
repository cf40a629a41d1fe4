//! Observability overhead benchmark (`make bench` runs it after the others): what metric
//! and log collection cost, against the budget.
//!
//! 1. **ingest**: `berth serve` as its own process (the release binary when built; see
//!    [`ingest::bin`]) on a fresh Postgres database, with 1,000 RUNNING single-instance
//!    RabbitMQ brokers inserted through the control plane's own `DataStore` calls (agent
//!    tokens sealed with the master key the process wrote to its data dir), each with its
//!    agent port (12000–12999) answered by a simulated agent in this process
//!    (`observability/sim.rs`: a RabbitMQ-shaped report of 36 series, a growing general
//!    log, the bearer token checked). Measured per collection interval (60 s, the
//!    default, and 10 s; one process each): the process's CPU (utime + stime from
//!    `/proc`, % of one core) over whole collection cycles, its RSS, each round's
//!    duration (first agent request → last report stored) and the rows it stored, and
//!    the CPU of the Postgres backends serving the process. Goal: ≤ 5 % of one core.
//!    The reconciler is parked (one sweep at start, then only on API changes) and the
//!    process's host-port range is one port the bench holds, so it can never create
//!    containers for the simulated brokers (a second start's sweep fails at pinning
//!    their engine ports and logs one warning per broker, before the measured window). Log
//!    collection (10 s), roll-ups and retention (60 s), alarm evaluation and metering run
//!    at their defaults, so the number is everything observation costs the process.
//! 2. **history**: in the same database, the first broker gets a full day of history at
//!    the default interval (the collector's store calls, then the Maintainer's roll-ups),
//!    then `BERTH_BENCH_OBS_QUERIES` (default 200) sequential SigV4-signed
//!    GetMetricData calls for one day of one metric (period 600 as the console's 1 d
//!    chart, and period 60: 1,440 points), and a quarter as many loads of the console's
//!    1 d metrics page (the whole dashboard in one request): p50 / p99 / max against the
//!    goal ≤ 50 ms.
//! 3. **agent**: a real RabbitMQ 4.0 broker created through the API (Berth in-process,
//!    reconciler at its default 1 s cadence), its agent (the container's PID 1 on the
//!    host's `/proc`) observed for `BERTH_BENCH_OBS_AGENT_MINUTES` (default 3) minutes
//!    not polled, then as long with `/metrics` polled every 10 s: agent CPU and RSS, and
//!    the engine's CPU (every other process of the container) for scale. Goals: RSS ≤
//!    10 MB, CPU ≤ 1 % of one core.
//!
//! Knobs: `BERTH_BENCH_OBS` (default `ingest,history,agent`), `BERTH_BENCH_OBS_BROKERS`
//! (1000), `BERTH_BENCH_OBS_INTERVALS` (seconds, `60,10`), `BERTH_BENCH_OBS_ROUNDS`
//! (collection cycles measured per interval, 2), `BERTH_BENCH_OBS_QUEUES` (queues per
//! simulated broker, 3), `BERTH_BENCH_OBS_LOGS` (`0`: brokers without general logs),
//! `BERTH_BIN` (the `berth` binary to measure).
//!
//! CPU times are read in clock ticks of 1/100 s (Linux's USER_HZ), as the other benches.

#[path = "observability/agent.rs"]
mod agent;
#[path = "observability/ingest.rs"]
mod ingest;
#[path = "observability/sim.rs"]
mod sim;

use std::time::{SystemTime, UNIX_EPOCH};

fn env_usize(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Fields of `/proc/PID/stat` after `(comm)`: index 0 is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn field(f: &[String], n: usize) -> f64 {
    f.get(n - 3).and_then(|x| x.parse().ok()).unwrap_or(0.0)
}

/// utime + stime of `pid`, seconds.
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    Some((field(&f, 14) + field(&f, 15)) / 100.0)
}

/// CPU seconds of `pid` and everything under it: each live process's utime + stime
/// plus cutime + cstime (its children that exited and were reaped).
fn proc_tree_cpu_secs(pid: u32) -> f64 {
    let mut total = 0.0;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Some(f) = stat_fields(p) {
            total += (field(&f, 14) + field(&f, 15) + field(&f, 16) + field(&f, 17)) / 100.0;
        }
        todo.extend(children(p));
    }
    total
}

/// Direct children of `pid` (by the parent field of every process's stat).
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat_fields(*p).is_some_and(|f| field(&f, 4) as u32 == pid))
        .collect()
}

/// A `kB` line of `/proc/PID/status` (e.g. `VmRSS`), in kB.
fn proc_status_kb(pid: u32, key: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// p50, p99 (nearest rank) and max of a series.
fn stats_ms(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let rank = ((0.99 * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    (median(&s), s[rank], s[s.len() - 1])
}

/// A line of the summary table.
pub struct Row {
    measure: String,
    value: String,
    goal: String,
    met: bool,
}

impl Row {
    fn new(measure: &str, value: String, goal: &str, met: bool) -> Self {
        Self {
            measure: measure.to_owned(),
            value,
            goal: goal.to_owned(),
            met,
        }
    }
}

fn print_summary(rows: &[Row]) {
    println!();
    println!("Summary:");
    let w0 = rows.iter().map(|r| r.measure.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.goal.len()).max().unwrap_or(0);
    println!(
        "  {:<w0$} | {:<w1$} | {:<w2$} | met",
        "measure", "value", "goal"
    );
    println!(
        "  {}-|-{}-|-{}-|----",
        "-".repeat(w0),
        "-".repeat(w1),
        "-".repeat(w2)
    );
    for r in rows {
        println!(
            "  {:<w0$} | {:<w1$} | {:<w2$} | {}",
            r.measure,
            r.value,
            r.goal,
            if r.met { "yes" } else { "NO" }
        );
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let which = std::env::var("BERTH_BENCH_OBS").unwrap_or_else(|_| "ingest,history,agent".into());
    let mut summary = Vec::new();
    println!(
        "Observability overhead benchmark ({} cores, load {}):",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    if which.contains("ingest") || which.contains("history") {
        let n = env_usize("BERTH_BENCH_OBS_BROKERS", 1000);
        let intervals: Vec<u64> = std::env::var("BERTH_BENCH_OBS_INTERVALS")
            .unwrap_or_else(|_| "60,10".into())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .filter(|s| *s > 0)
            .collect();
        let rounds = env_usize("BERTH_BENCH_OBS_ROUNDS", 2).max(1);
        let http = reqwest::Client::new();
        println!();
        println!("1. Control-plane ingest ({}):", ingest::bin().display());
        let first = intervals.first().copied().unwrap_or(60);
        let (setup, mut berth) = ingest::setup(n, first * 1000).await;
        if which.contains("ingest") {
            for (i, interval) in intervals.iter().enumerate() {
                if i > 0 {
                    berth.stop().await;
                    berth = ingest::Berth::start(
                        &setup.db,
                        setup.data_dir.path(),
                        interval * 1000,
                        setup.held_port(),
                    )
                    .await;
                }
                let r = ingest::measure(&setup, &berth, *interval, rounds, &http).await;
                ingest::print_ingest(&r, n, setup.queues);
                summary.push(Row::new(
                    &format!("control plane, {n} brokers, {interval} s interval: CPU"),
                    format!(
                        "{:.2} % of one core (+ Postgres backends {:.2} %), RSS {:.0} MB, round {:.1} s",
                        r.cpu_pct,
                        r.pg_cpu_pct,
                        r.rss_mb,
                        median(&r.round_s)
                    ),
                    "<= 5 %",
                    r.cpu_pct <= 5.0,
                ));
            }
        }
        if which.contains("history") {
            println!();
            println!("2. History query for one broker-day (same database, the process running):");
            let h = ingest::history(&setup, &berth, &http).await;
            ingest::print_history(&h, &mut summary);
        }
        berth.stop().await;
    }
    if which.contains("agent") {
        println!();
        println!("3. Agent overhead with collection on (real RabbitMQ 4.0 broker):");
        agent::run(&mut summary).await;
    }
    print_summary(&summary);
}
