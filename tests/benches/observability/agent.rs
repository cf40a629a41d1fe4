//! Part 3: a real RabbitMQ 4.0 broker's agent with and without its `/metrics` polled
//! (after the engine's metrics are readable and `BERTH_BENCH_OBS_AGENT_SETTLE_SECS`,
//! default 60, of settling after its boot).

use std::time::{Duration, Instant};

use berth::crypto::SecretBox;
use berth::domain::profile::AGENT_PROTOCOL;
use berth_tests::{docker_cli, rabbitmq_broker, require_image, spawn_app_with};

use super::{epoch_secs, proc_cpu_secs, proc_status_kb, proc_tree_cpu_secs, Row};

/// One window of the agent's life.
pub struct Window {
    pub label: &'static str,
    pub secs: f64,
    pub polls: usize,
    pub agent_cpu_pct: f64,
    pub engine_cpu_pct: f64,
    pub rss_mb_end: f64,
    pub rss_mb_max: f64,
    pub poll_ms: Vec<f64>,
}

/// The agent's host pid: the container's PID 1, or (with Docker's init) its child.
fn agent_pid(init: u32) -> u32 {
    let comm = |p: u32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    if comm(init).trim().starts_with("broker-agent") {
        return init;
    }
    super::children(init)
        .into_iter()
        .find(|c| comm(*c).trim().starts_with("broker-agent"))
        .unwrap_or(init)
}

async fn window(
    label: &'static str,
    pid: u32,
    length: Duration,
    poll: Option<(&reqwest::Client, &str, &str)>,
) -> Window {
    const EVERY: Duration = Duration::from_secs(10);
    let t0 = epoch_secs();
    let a0 = proc_cpu_secs(pid).expect("agent cpu");
    let e0 = proc_tree_cpu_secs(pid) - a0;
    let start = Instant::now();
    let mut rss_max: f64 = 0.0;
    let mut poll_ms = Vec::new();
    let mut polls = 0;
    while start.elapsed() < length {
        if let Some((http, url, token)) = poll {
            let t = Instant::now();
            let resp = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("agent /metrics");
            assert_eq!(resp.status(), 200, "agent /metrics");
            let _ = resp.bytes().await;
            poll_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            polls += 1;
        }
        rss_max = rss_max.max(proc_status_kb(pid, "VmRSS").unwrap_or(0.0) / 1024.0);
        let next = EVERY.min(length.saturating_sub(start.elapsed()));
        tokio::time::sleep(next).await;
    }
    let t1 = epoch_secs();
    let a1 = proc_cpu_secs(pid).expect("agent cpu");
    let e1 = proc_tree_cpu_secs(pid) - a1;
    let rss_end = proc_status_kb(pid, "VmRSS").unwrap_or(f64::NAN) / 1024.0;
    Window {
        label,
        secs: t1 - t0,
        polls,
        agent_cpu_pct: 100.0 * (a1 - a0) / (t1 - t0),
        engine_cpu_pct: 100.0 * (e1 - e0) / (t1 - t0),
        rss_mb_end: rss_end,
        rss_mb_max: rss_max.max(rss_end),
        poll_ms,
    }
}

pub async fn run(summary: &mut Vec<Row>) {
    let minutes: f64 = std::env::var("BERTH_BENCH_OBS_AGENT_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let length = Duration::from_secs_f64(minutes * 60.0);
    // The reconciler at its default cadence (it asks the agent's /health every sweep).
    let app = spawn_app_with(|s| {
        s.reconcile_interval_ms = berth::config::Settings::default().reconcile_interval_ms;
    })
    .await;
    require_image(&app.docker).await;
    let id = app
        .create_broker(&rabbitmq_broker("obs-agent", "app", "correct-horse-9"))
        .await;
    app.wait_for_state(&id, "RUNNING", Duration::from_secs(300))
        .await;
    let container = docker_cli(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.broker-id={id}"),
    ])
    .await;
    let init: u32 = docker_cli(&["inspect", "-f", "{{.State.Pid}}", &container])
        .await
        .parse()
        .expect("container pid");
    let pid = agent_pid(init);
    let pool = sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .expect("db");
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT agent_token_enc FROM brokers WHERE id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .expect("agent token");
    let token = SecretBox::load_or_create(None, &app.settings.data_dir)
        .expect("master key")
        .open(&sealed)
        .expect("token opens");
    let port: i32 = sqlx::query_scalar(
        "SELECT host_port FROM broker_ports WHERE broker_id = $1 AND protocol = $2",
    )
    .bind(&id)
    .bind(AGENT_PROTOCOL)
    .fetch_one(&pool)
    .await
    .expect("agent port");
    pool.close().await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let http = reqwest::Client::new();
    // Warm-up: until a report has the engine's metrics too (the first answers after a
    // start have no rates, and the management API may not take the agent's user yet).
    let ask = || async {
        http.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("agent /metrics")
            .json::<agent_contract::metrics::MetricsReport>()
            .await
            .expect("a metrics report")
    };
    let warm = Instant::now();
    let mut first = ask().await;
    while first.engine_error.is_some() && warm.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        first = ask().await;
    }
    assert!(!first.samples.is_empty(), "the agent reported no samples");
    let engine_ready_after = warm.elapsed().as_secs_f64();
    let settle = std::env::var("BERTH_BENCH_OBS_AGENT_SETTLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60.0);
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    println!(
        "  broker {id}: agent pid {pid} (container PID 1 = {init}), {} samples per report \
         ({engine_ready_after:.0} s after RUNNING; engine error: {:?}); windows start after {settle:.0} s more",
        first.samples.len(),
        first.engine_error
    );
    let idle = window("not polled", pid, length, None).await;
    let polled = window(
        "/metrics every 10 s",
        pid,
        length,
        Some((&http, &url, &token)),
    )
    .await;
    println!(
        "  {:<22} {:>7} {:>6} {:>11} {:>12} {:>12} {:>12} {:>10}",
        "window",
        "secs",
        "polls",
        "agent CPU",
        "engine CPU",
        "agent/engine",
        "agent RSS",
        "RSS max"
    );
    for w in [&idle, &polled] {
        println!(
            "  {:<22} {:>7.0} {:>6} {:>9.3} % {:>10.2} % {:>12.4} {:>9.2} MB {:>7.2} MB",
            w.label,
            w.secs,
            w.polls,
            w.agent_cpu_pct,
            w.engine_cpu_pct,
            w.agent_cpu_pct / w.engine_cpu_pct,
            w.rss_mb_end,
            w.rss_mb_max
        );
    }
    if !polled.poll_ms.is_empty() {
        let (p50, _, max) = super::stats_ms(&polled.poll_ms);
        println!("  /metrics answer time: median {p50:.1} ms, max {max:.1} ms");
    }
    println!("  goals: agent RSS <= 10 MB, agent CPU <= 1 % of one core at a 10 s interval");
    summary.push(Row::new(
        "agent RSS, /metrics every 10 s (max in window)",
        format!(
            "{:.2} MB (not polled: {:.2} MB)",
            polled.rss_mb_max, idle.rss_mb_max
        ),
        "<= 10 MB",
        polled.rss_mb_max <= 10.0,
    ));
    summary.push(Row::new(
        "agent CPU, /metrics every 10 s",
        format!(
            "{:.3} % of one core (not polled: {:.3} %; engine {:.2} %, ratio {:.3})",
            polled.agent_cpu_pct,
            idle.agent_cpu_pct,
            polled.engine_cpu_pct,
            polled.agent_cpu_pct / polled.engine_cpu_pct
        ),
        "<= 1 %",
        polled.agent_cpu_pct <= 1.0,
    ));
    let resp = app.delete(&format!("/v1/brokers/{id}")).await;
    assert_eq!(resp.status(), 200, "DeleteBroker");
    app.wait_until_gone(&id, Duration::from_secs(120)).await;
}
