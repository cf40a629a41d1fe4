//! Metric history and Prometheus, on the in-memory runtime with a fake agent whose
//! `GET /metrics` answers what the test sets: collection stores points, queries return
//! them (raw, 1-minute and 1-hour), roll-ups equal hand-computed statistics and are
//! idempotent, retention drops old rows, bad queries are 400s naming the limit, another
//! account gets 404, the Prometheus scrape parses and counts brokers by state, service
//! discovery lists every node of a pair, and a failing node never stops a pass.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_contract::metrics::{MetricsReport, Sample, Unit};
use agent_contract::{AgentSpec, HealthReport};
use async_trait::async_trait;
use berth::agent_client::{AgentCallError, AgentClient};
use berth::observe::collector::{Collector, CollectorConfig, Maintainer};
use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use serde_json::Value;

use berth_tests::{
    rabbitmq_broker, spawn_app_on, wait_until, Signer, TestApp, ACTIVEMQ_IMAGE, RABBITMQ_IMAGE,
};

const TOKEN: &str = "prometheus-scrape-token-1";

/// Ready on every node; `GET /metrics` answers the scripted samples at the scripted
/// time (default: now), except on the bases told to fail.
#[derive(Default)]
struct MetricsAgent {
    script: Mutex<Script>,
}

#[derive(Default, Clone)]
struct Script {
    samples: Vec<Sample>,
    timestamp: Option<DateTime<Utc>>,
    failing: HashSet<String>,
}

impl MetricsAgent {
    fn set(&self, samples: Vec<Sample>, timestamp: Option<DateTime<Utc>>) {
        let mut s = self.script.lock().unwrap();
        s.samples = samples;
        s.timestamp = timestamp;
    }

    fn fail(&self, base: String) {
        self.script.lock().unwrap().failing.insert(base);
    }
}

#[async_trait]
impl AgentClient for MetricsAgent {
    async fn put_spec(
        &self,
        base: &str,
        token: &str,
        _: &AgentSpec,
    ) -> anyhow::Result<HealthReport> {
        self.health(base, token).await
    }

    async fn health(&self, base: &str, token: &str) -> anyhow::Result<HealthReport> {
        crate::reconciler::ReadyAgent.health(base, token).await
    }

    async fn metrics(&self, base: &str, _token: &str) -> Result<MetricsReport, AgentCallError> {
        let s = self.script.lock().unwrap().clone();
        if s.failing.contains(base) {
            return Err(AgentCallError::Failed(anyhow::anyhow!(
                "connection refused"
            )));
        }
        Ok(MetricsReport {
            broker_id: String::new(),
            node: 0,
            timestamp_ms: s.timestamp.unwrap_or_else(Utc::now).timestamp_millis(),
            samples: s.samples,
            engine_error: None,
        })
    }
}

async fn metrics_app(
    agent: Arc<MetricsAgent>,
    tweak: impl FnOnce(&mut berth::config::Settings),
) -> TestApp {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
        ACTIVEMQ_IMAGE,
    ]));
    spawn_app_on(runtime, agent, tweak).await
}

fn cpu(v: f64) -> Sample {
    Sample::new("CpuUtilization", v, Unit::Percent)
}

fn ready(queue: &str, v: f64) -> Sample {
    Sample::new("MessageReadyCount", v, Unit::Count)
        .with("Queue", queue)
        .with("VirtualHost", "/")
}

fn t(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// GET `path` with query `params`, signed by `signer`: status and JSON body.
async fn get_as(
    app: &TestApp,
    signer: &Signer,
    path: &str,
    params: &[(&str, String)],
) -> (u16, Value) {
    let url = reqwest::Url::parse_with_params(&format!("{}{path}", app.address), params).unwrap();
    let resp = signer
        .send(&app.http, reqwest::Method::GET, url.as_str(), None)
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str, params: &[(&str, String)]) -> (u16, Value) {
    get_as(app, &app.signer, path, params).await
}

/// The datapoints' values of a query that must succeed.
async fn values(app: &TestApp, path: &str, params: &[(&str, String)]) -> (Vec<f64>, Value) {
    let (status, v) = get(app, path, params).await;
    assert_eq!(status, 200, "{path} {params:?}: {v}");
    let vals = v["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    (vals, v)
}

async fn expect_400(
    app: &TestApp,
    path: &str,
    params: &[(&str, String)],
    attribute: &str,
    says: &str,
) {
    let (status, v) = get(app, path, params).await;
    assert_eq!(status, 400, "{params:?}: {v}");
    assert_eq!(v["errorAttribute"], attribute, "{params:?}: {v}");
    let m = v["message"].as_str().unwrap_or_default();
    assert!(m.contains(says), "{params:?}: {m}");
}

/// A Prometheus route with an optional bearer token: status and body.
async fn scrape_raw(app: &TestApp, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = app.http.get(format!("{}{path}", app.address));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn scrape(app: &TestApp, path: &str) -> prometheus_parse::Scrape {
    let (status, text) = scrape_raw(app, path, Some(TOKEN)).await;
    assert_eq!(status, 200, "{path}: {text}");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("scrape parses")
}

fn gauge(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .and_then(|x| match x.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

async fn pool(app: &TestApp) -> sqlx::PgPool {
    sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap()
}

async fn serving_broker(app: &TestApp, name: &str) -> String {
    let id = app
        .create_broker(&rabbitmq_broker(name, "admin-user", "s3cret-Passw0rd-x"))
        .await;
    app.wait_for_state(&id, "RUNNING", Duration::from_secs(60))
        .await;
    id
}

#[tokio::test]
async fn collected_samples_are_listed_queried_and_scraped() {
    let agent = Arc::new(MetricsAgent::default());
    agent.set(vec![cpu(42.0), ready("orders", 5.0)], None);
    let app = metrics_app(agent.clone(), |s| {
        s.metrics_interval_ms = 200;
        s.metrics_token = Some(TOKEN.into());
    })
    .await;
    let id = serving_broker(&app, "metered").await;
    let list = format!("/v1/berth/brokers/{id}/metrics");
    wait_until(Duration::from_secs(30), || async {
        get(&app, &list, &[]).await.1["metrics"]
            .as_array()
            .is_some_and(|m| m.len() == 2 && m.iter().all(|s| s["lastValue"].is_number()))
    })
    .await
    .expect("both series collected");
    let (_, v) = get(&app, &list, &[]).await;
    let cpu_series = &v["metrics"][0];
    assert_eq!(cpu_series["metricName"], "CpuUtilization", "{v}");
    assert_eq!(cpu_series["dimensions"], serde_json::json!({"Node": "0"}));
    assert_eq!(cpu_series["unit"], "Percent");
    assert_eq!(cpu_series["lastValue"], 42.0);
    assert_eq!(
        v["metrics"][1]["dimensions"],
        serde_json::json!({"Node": "0", "Queue": "orders", "VirtualHost": "/"})
    );

    // A new value arrives; the raw datapoints show both.
    agent.set(vec![cpu(80.0), ready("orders", 5.0)], None);
    wait_until(Duration::from_secs(30), || async {
        get(&app, &list, &[]).await.1["metrics"][0]["lastValue"] == 80.0
    })
    .await
    .expect("the new value collected");
    let now = Utc::now();
    let range = |stat: &str| {
        vec![
            ("startTime", t(now - Span::minutes(10))),
            ("endTime", t(now + Span::minutes(1))),
            ("period", "600".to_owned()),
            ("stat", stat.to_owned()),
        ]
    };
    let data = format!("{list}/CpuUtilization");
    let (max, v) = values(&app, &data, &range("Maximum")).await;
    assert_eq!(v["resolution"], "raw");
    assert_eq!(v["unit"], "Percent");
    assert_eq!(max.iter().cloned().fold(f64::MIN, f64::max), 80.0, "{v}");
    let (min, _) = values(&app, &data, &range("Minimum")).await;
    assert_eq!(min.iter().cloned().fold(f64::MAX, f64::min), 42.0);
    let (counts, _) = values(&app, &data, &range("SampleCount")).await;
    let db = pool(&app).await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM metric_points p JOIN metric_series s ON s.id = p.series_id \
         WHERE s.broker_id = $1 AND s.name = 'CpuUtilization' AND p.ts < $2",
    )
    .bind(&id)
    .bind(now + Span::minutes(1))
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(counts.iter().sum::<f64>() >= 2.0);
    assert!(
        counts.iter().sum::<f64>() <= stored as f64,
        "{counts:?} vs {stored}"
    );

    // Dimension filters.
    let queue_data = format!("{list}/MessageReadyCount");
    let mut q = range("Maximum");
    q.push(("dimension.Queue", "orders".into()));
    assert_eq!(values(&app, &queue_data, &q).await.0.last(), Some(&5.0));
    q.pop();
    q.push(("dimension.Queue", "elsewhere".into()));
    assert!(values(&app, &queue_data, &q).await.0.is_empty());

    // Bad queries are 400s that say what is wrong.
    let day_ago = t(now - Span::hours(48));
    expect_400(
        &app,
        &format!("{list}/NoSuchMetric"),
        &[],
        "metricName",
        "Unknown metric",
    )
    .await;
    expect_400(
        &app,
        &data,
        &[("startTime", t(now)), ("endTime", t(now - Span::hours(1)))],
        "startTime",
        "before the endTime",
    )
    .await;
    expect_400(
        &app,
        &data,
        &[("period", "7".into())],
        "period",
        "multiple of 60",
    )
    .await;
    expect_400(
        &app,
        &data,
        &[
            ("startTime", day_ago.clone()),
            ("endTime", t(now)),
            ("period", "60".into()),
        ],
        "period",
        "at most 1440 datapoints",
    )
    .await;
    expect_400(
        &app,
        &data,
        &[
            ("startTime", t(now - Span::hours(7))),
            ("endTime", t(now - Span::hours(6))),
            ("period", "10".into()),
        ],
        "period",
        "under 60 seconds",
    )
    .await;
    expect_400(&app, &data, &[("stat", "Median".into())], "stat", "Average").await;
    expect_400(
        &app,
        &data,
        &[("dimension.Colour", "red".into())],
        "dimension",
        "Unknown dimension",
    )
    .await;
    expect_400(
        &app,
        &data,
        &[("startTime", "yesterday".into())],
        "startTime",
        "RFC 3339",
    )
    .await;

    // Another account sees neither the series nor the data.
    let other = app.signer_for_account("111122223333").await;
    assert_eq!(get_as(&app, &other, &list, &[]).await.0, 404);
    assert_eq!(get_as(&app, &other, &data, &range("Average")).await.0, 404);

    // Prometheus: the token is required; the scrape parses.
    assert_eq!(scrape_raw(&app, "/metrics", None).await.0, 401);
    assert_eq!(
        scrape_raw(&app, "/metrics", Some("wrong-token-wrong-token"))
            .await
            .0,
        401
    );
    let (_, text) = scrape_raw(&app, "/metrics", Some(TOKEN)).await;
    // (prometheus-parse skips lines whose label values hold braces, as route templates do)
    assert!(
        text.lines().any(
            |l| l.starts_with("berth_http_request_duration_seconds_count{")
                && l.contains(r#"route="/v1/berth/brokers/{broker_id}/metrics""#)
                && l.contains(r#"status="200""#)
        ),
        "no latency histogram of the metrics route:\n{text}"
    );
    let s = scrape(&app, "/metrics").await;
    assert_eq!(
        gauge(&s, "berth_brokers", &[("state", "RUNNING")]),
        Some(1.0)
    );
    assert_eq!(
        gauge(&s, "berth_brokers", &[("state", "CREATION_FAILED")]),
        Some(0.0)
    );
    assert!(gauge(&s, "berth_metric_collector_passes_total", &[]).unwrap() >= 2.0);
    let age = gauge(&s, "berth_metric_last_collection_age_seconds", &[]).unwrap();
    assert!((0.0..30.0).contains(&age), "{age}");
    assert!(s
        .samples
        .iter()
        .any(|x| x.metric == "berth_reconcile_step_duration_seconds"));
    let node = scrape(&app, &format!("/v1/berth/prometheus/brokers/{id}/nodes/0")).await;
    assert_eq!(gauge(&node, "amazonmq_CpuUtilization", &[]), Some(80.0));
    assert_eq!(
        gauge(
            &node,
            "amazonmq_MessageReadyCount",
            &[("Queue", "orders"), ("VirtualHost", "/")]
        ),
        Some(5.0)
    );
    let missing = format!("/v1/berth/prometheus/brokers/{id}/nodes/4");
    assert_eq!(scrape_raw(&app, &missing, Some(TOKEN)).await.0, 404);

    // One broker-day at 1-minute resolution: a deleted broker's history (its series
    // keep the account), 3 nodes and 50 queues of 1440 roll-ups each.
    let gone = format!("b-{}", uuid::Uuid::new_v4());
    let day_start = (now - Span::hours(24))
        .duration_trunc(Span::minutes(1))
        .unwrap();
    sqlx::query(
        "WITH s AS ( \
           INSERT INTO metric_series (account_id, broker_id, name, dimensions, unit) \
           SELECT '000000000000', $1, 'CpuUtilization', jsonb_build_object('Node', n::text), 'Percent' \
             FROM generate_series(0, 2) n \
           UNION ALL \
           SELECT '000000000000', $1, 'MessageReadyCount', \
                  jsonb_build_object('Node', n::text, 'Queue', 'q' || q, 'VirtualHost', '/'), 'Count' \
             FROM generate_series(0, 2) n, generate_series(1, 50) q \
           RETURNING id, (dimensions->>'Node')::int AS node) \
         INSERT INTO metric_rollups (series_id, resolution_secs, ts, sample_count, sum, minimum, maximum) \
         SELECT s.id, 60, $2 + make_interval(mins => m), 2, 2 * (s.node + 1), s.node + 0.5, s.node + 1.5 \
         FROM s, generate_series(0, 1439) m",
    )
    .bind(&gone)
    .bind(day_start)
    .execute(&db)
    .await
    .unwrap();
    let day = vec![
        ("startTime", t(day_start)),
        ("endTime", t(day_start + Span::hours(24))),
        ("period", "60".to_owned()),
    ];
    let day_path = format!("/v1/berth/brokers/{gone}/metrics/CpuUtilization");
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (vals, v) = values(&app, &day_path, &day).await;
        took.push(started.elapsed());
        assert_eq!(v["resolution"], "1m");
        assert_eq!(vals.len(), 1440);
        // (2·1 + 2·2 + 2·3) / (2 + 2 + 2) over the three nodes
        assert!(
            vals.iter().all(|x| (x - 2.0).abs() < 1e-9),
            "{:?}",
            &vals[..3]
        );
    }
    took.sort();
    // The same query on the store alone (what the database spends).
    let store = berth::db::DataStore::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let mut in_db = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let rows = store
            .metric_buckets(
                "000000000000",
                &gone,
                "CpuUtilization",
                &BTreeMap::new(),
                berth::db::metrics::Source::Rollup(60),
                day_start,
                day_start + Span::hours(24),
                60,
            )
            .await
            .unwrap();
        in_db.push(started.elapsed());
        assert_eq!(rows.len(), 1440);
    }
    in_db.sort();
    // What any signed request costs here (a 400 answered before the history is read).
    let mut baseline = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _) = get(&app, &format!("/v1/berth/brokers/{gone}/metrics/Nope"), &[]).await;
        baseline.push(started.elapsed());
        assert_eq!(status, 400);
    }
    baseline.sort();
    println!(
        "one broker-day (1440 × 1-minute, 3 nodes of 153 series): through the API median {:?} (max {:?}), \
         the store query alone median {:?} (max {:?}), a signed request answered without it median {:?}",
        took[2], took[4], in_db[2], in_db[4], baseline[2]
    );
    // Printed for the log only: how fast it must be (≤ 50 ms) is the observability
    // bench's `history` part, measured without the rest of the suite beside it.
    let mut q7 = day.clone();
    q7[2].1 = "300".into();
    q7.push(("dimension.Queue", "q7".into()));
    q7.push(("stat", "Maximum".into()));
    let (vals, _) = values(
        &app,
        &format!("/v1/berth/brokers/{gone}/metrics/MessageReadyCount"),
        &q7,
    )
    .await;
    assert_eq!(vals.len(), 288);
    assert!(vals.iter().all(|x| *x == 3.5), "{:?}", &vals[..3]);
    assert_eq!(get_as(&app, &other, &day_path, &day).await.0, 404);
    app.stop().await;
}

/// Points at `ts` with `samples`, through the collector (one pass).
async fn collect_at(
    collector: &Collector,
    agent: &MetricsAgent,
    ts: DateTime<Utc>,
    samples: Vec<Sample>,
) {
    agent.set(samples, Some(ts));
    let o = collector.collect_once().await.unwrap();
    assert_eq!((o.collected, o.failed), (1, 0));
}

async fn rollup_rows(db: &sqlx::PgPool) -> Vec<(i64, i32, DateTime<Utc>, i64, f64, f64, f64)> {
    sqlx::query_as(
        "SELECT series_id, resolution_secs, ts, sample_count, sum, minimum, maximum \
         FROM metric_rollups ORDER BY 1, 2, 3",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn rollups_match_hand_computed_statistics_and_retention_drops_old_rows() {
    let agent = Arc::new(MetricsAgent::default());
    let app = metrics_app(agent.clone(), |s| {
        s.metrics_raw_retention_secs = 3600;
        s.metrics_minute_retention_secs = 3 * 3600;
    })
    .await;
    let id = serving_broker(&app, "rolled").await;
    let settings = &app.settings;
    let store = berth::db::DataStore::connect(settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let secrets = berth::crypto::SecretBox::load_or_create(
        settings.master_key.as_deref(),
        &settings.data_dir,
    )
    .unwrap();
    let collector = Collector::new(
        store.clone(),
        secrets,
        agent.clone(),
        CollectorConfig {
            interval: Duration::ZERO,
            timeout: Duration::from_secs(5),
            concurrency: 4,
            publish_host: "127.0.0.1".into(),
        },
    );
    let now = Utc::now();
    let minute = |t: DateTime<Utc>| t.duration_trunc(Span::minutes(1)).unwrap();
    let hour = |t: DateTime<Utc>| t.duration_trunc(Span::hours(1)).unwrap();
    // Two minutes two hours ago (1-minute roll-ups), an hour five hours ago (1-hour
    // roll-ups), and a recent minute (stays raw).
    let a = minute(now - Span::hours(2));
    for (s, v) in [(0, 1.0), (20, 2.0), (40, 6.0), (60, 10.0), (90, 20.0)] {
        collect_at(&collector, &agent, a + Span::seconds(s), vec![cpu(v)]).await;
    }
    let b = hour(now - Span::hours(5));
    for (m, v) in [(0, 4.0), (30, 8.0), (59, 9.0)] {
        collect_at(&collector, &agent, b + Span::minutes(m), vec![cpu(v)]).await;
    }
    let c = minute(now - Span::minutes(10));
    for (s, v) in [(0, 3.0), (30, 5.0)] {
        collect_at(&collector, &agent, c + Span::seconds(s), vec![cpu(v)]).await;
    }
    let db = pool(&app).await;
    let raw_count = |before: DateTime<Utc>| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM metric_points WHERE ts < $1")
                .bind(before)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(raw_count(now - Span::hours(1)).await, 8);

    let retention = settings.metrics_retention();
    let out = Maintainer::new(store.clone(), retention)
        .pass(now)
        .await
        .unwrap();
    assert_eq!(out.minute_rollups, 2 + 3 + 1, "{out:?}");
    assert_eq!(out.removed.points, 8, "{out:?}");
    assert_eq!(
        raw_count(now - Span::hours(1)).await,
        0,
        "raw rows past retention stay"
    );
    assert_eq!(raw_count(now).await, 2, "recent raw rows are kept");
    // Minute roll-ups of hour b are past the 3 h retention; its hour remains.
    assert_eq!(out.removed.minute_rollups, 3, "{out:?}");

    let data = format!("/v1/berth/brokers/{id}/metrics/CpuUtilization");
    let q = |start: DateTime<Utc>, span: Span, period: i64, stat: &str| {
        vec![
            ("startTime", t(start)),
            ("endTime", t(start + span)),
            ("period", period.to_string()),
            ("stat", stat.to_owned()),
        ]
    };
    let (avg, v) = values(&app, &data, &q(a, Span::minutes(2), 60, "Average")).await;
    assert_eq!(v["resolution"], "1m");
    assert_eq!(avg, vec![3.0, 15.0]); // (1+2+6)/3, (10+20)/2
    let points: Vec<&str> = v["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(points, vec![t(a), t(a + Span::minutes(1))]);
    assert_eq!(
        values(&app, &data, &q(a, Span::minutes(2), 120, "Average"))
            .await
            .0,
        vec![39.0 / 5.0]
    );
    assert_eq!(
        values(&app, &data, &q(a, Span::minutes(2), 60, "Maximum"))
            .await
            .0,
        vec![6.0, 20.0]
    );
    assert_eq!(
        values(&app, &data, &q(a, Span::minutes(2), 60, "Minimum"))
            .await
            .0,
        vec![1.0, 10.0]
    );
    assert_eq!(
        values(&app, &data, &q(a, Span::minutes(2), 60, "SampleCount"))
            .await
            .0,
        vec![3.0, 2.0]
    );
    assert_eq!(
        values(&app, &data, &q(a, Span::minutes(2), 60, "Sum"))
            .await
            .0,
        vec![9.0, 30.0]
    );
    expect_400(
        &app,
        &data,
        &q(a, Span::minutes(2), 30, "Average"),
        "period",
        "under 60 seconds",
    )
    .await;

    let (avg, v) = values(&app, &data, &q(b, Span::hours(1), 3600, "Average")).await;
    assert_eq!(v["resolution"], "1h");
    assert_eq!(avg, vec![7.0]); // (4+8+9)/3
    assert_eq!(
        values(&app, &data, &q(b, Span::hours(1), 3600, "Maximum"))
            .await
            .0,
        vec![9.0]
    );
    expect_400(
        &app,
        &data,
        &q(b, Span::hours(1), 600, "Average"),
        "period",
        "multiple of 3600",
    )
    .await;

    // Recent data comes from raw points.
    let (avg, v) = values(&app, &data, &q(c, Span::minutes(1), 60, "Average")).await;
    assert_eq!((v["resolution"].as_str(), avg), (Some("raw"), vec![4.0]));

    // Recomputing gives the same rows (a fresh maintainer starts at the oldest point).
    let before = rollup_rows(&db).await;
    let again = Maintainer::new(store.clone(), retention)
        .pass(now)
        .await
        .unwrap();
    assert!(again.minute_rollups >= 1, "{again:?}");
    assert_eq!(rollup_rows(&db).await, before);

    // Long after, nothing is left, and the series go too.
    let later = now + Span::days(500);
    let gone = Maintainer::new(store.clone(), retention)
        .pass(later)
        .await
        .unwrap();
    assert_eq!(gone.removed.series, 1, "{gone:?}");
    let series: i64 = sqlx::query_scalar("SELECT count(*) FROM metric_series")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(series, 0);
    assert!(rollup_rows(&db).await.is_empty());

    // Without a metrics token the Prometheus routes are off.
    assert_eq!(scrape_raw(&app, "/metrics", Some(TOKEN)).await.0, 404);
    assert_eq!(
        scrape_raw(&app, "/v1/berth/prometheus/targets", None)
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn discovery_lists_every_node_of_a_pair_and_a_failing_node_never_stops_a_pass() {
    let agent = Arc::new(MetricsAgent::default());
    agent.set(vec![cpu(12.0)], None);
    let app = metrics_app(agent.clone(), |s| {
        s.metrics_interval_ms = 200;
        s.metrics_token = Some(TOKEN.into());
    })
    .await;
    let id = app
        .create_broker(&berth_tests::ha::pair_request("paired"))
        .await;
    let db = pool(&app).await;
    let agent_port = |node: i32| {
        let db = db.clone();
        let id = id.clone();
        async move {
            sqlx::query_scalar::<_, i32>(
                "SELECT host_port FROM broker_ports WHERE broker_id = $1 AND node = $2 AND protocol = $3",
            )
            .bind(&id)
            .bind(node)
            .bind(berth::domain::profile::AGENT_PROTOCOL)
            .fetch_optional(&db)
            .await
            .unwrap()
        }
    };
    wait_until(Duration::from_secs(30), || async {
        agent_port(1).await.is_some()
    })
    .await
    .expect("node 1 has its ports");
    agent.fail(format!("http://127.0.0.1:{}", agent_port(1).await.unwrap()));
    let failures = |s: &prometheus_parse::Scrape| {
        gauge(s, "berth_metric_collector_failures_total", &[]).unwrap_or(0.0)
    };
    let failed_before = failures(&scrape(&app, "/metrics").await);

    // Node 0 is collected although node 1's agent fails on every pass.
    let node0 = format!("/v1/berth/prometheus/brokers/{id}/nodes/0");
    wait_until(Duration::from_secs(60), || async {
        scrape_raw(&app, &node0, Some(TOKEN)).await.0 == 200
    })
    .await
    .expect("node 0 collected");
    assert_eq!(
        gauge(&scrape(&app, &node0).await, "amazonmq_CpuUtilization", &[]),
        Some(12.0)
    );
    let node1 = format!("/v1/berth/prometheus/brokers/{id}/nodes/1");
    assert_eq!(scrape_raw(&app, &node1, Some(TOKEN)).await.0, 404);
    wait_until(Duration::from_secs(30), || async {
        failures(&scrape(&app, "/metrics").await) > failed_before
    })
    .await
    .expect("node 1's failures counted");

    let (status, text) = scrape_raw(&app, "/v1/berth/prometheus/targets", Some(TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    let groups: Vec<Value> = serde_json::from_str(&text).unwrap();
    let ours: Vec<&Value> = groups
        .iter()
        .filter(|g| g["labels"]["broker_id"] == id.as_str())
        .collect();
    assert_eq!(ours.len(), 2, "{text}");
    let host = app.address.trim_start_matches("http://");
    for (n, g) in ours.iter().enumerate() {
        let labels: BTreeMap<String, String> = serde_json::from_value(g["labels"].clone()).unwrap();
        assert_eq!(g["targets"], serde_json::json!([host]));
        assert_eq!(labels["node"], n.to_string());
        assert_eq!(labels["broker_name"], "paired");
        assert_eq!(labels["engine"], "ACTIVEMQ");
        assert_eq!(labels["account"], "000000000000");
        assert_eq!(
            labels["__metrics_path__"],
            format!("/v1/berth/prometheus/brokers/{id}/nodes/{n}")
        );
    }
    assert_eq!(
        scrape_raw(&app, "/v1/berth/prometheus/targets", None)
            .await
            .0,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn the_console_charts_a_brokers_history_without_its_queues_in_the_totals() {
    let agent = Arc::new(MetricsAgent::default());
    let app = metrics_app(agent.clone(), |s| s.metrics_interval_ms = 200).await;
    let id = serving_broker(&app, "charted").await;
    let mib = 1024.0 * 1024.0;
    // The broker-level depth (7) next to one queue's (5): a chart of the broker must
    // show 7, not their sum or average.
    agent.set(
        vec![
            Sample::new("MessageReadyCount", 7.0, Unit::Count),
            ready("orders", 5.0),
            Sample::new("MemoryUsed", 100.0 * mib, Unit::Bytes),
            Sample::new("RabbitMQMemLimit", 400.0 * mib, Unit::Bytes),
        ],
        None,
    );
    let list = format!("/v1/berth/brokers/{id}/metrics");
    // A report's series are listed before its points commit (two statements): wait for
    // both, the broker's and the queue's depth points.
    wait_until(Duration::from_secs(30), || async {
        let series = get(&app, &list, &[]).await.1["metrics"]
            .as_array()
            .is_some_and(|m| m.len() == 4);
        let broker = values(&app, &format!("{list}/MessageReadyCount"), &[])
            .await
            .0;
        let orders = values(
            &app,
            &format!("{list}/MessageReadyCount"),
            &[("dimension.Queue", "orders".to_owned())],
        )
        .await
        .0;
        series && !broker.is_empty() && !orders.is_empty()
    })
    .await
    .expect("all series collected, with points");
    // The API's broker-level query leaves the queue's series out too.
    let (depth, v) = values(&app, &format!("{list}/MessageReadyCount"), &[]).await;
    assert!(!depth.is_empty() && depth.iter().all(|d| *d == 7.0), "{v}");
    let (queue, v) = values(
        &app,
        &format!("{list}/MessageReadyCount"),
        &[("dimension.Queue", "orders".to_owned())],
    )
    .await;
    assert!(!queue.is_empty() && queue.iter().all(|d| *d == 5.0), "{v}");

    let session = app
        .console_user_session("000000000000", "watcher", berth::app::Role::Viewer)
        .await;
    let page = |range: &'static str| {
        let session = session.clone();
        let app = &app;
        let id = id.clone();
        async move {
            let resp = session
                .request(
                    &app.http,
                    reqwest::Method::GET,
                    &format!("{}/console/brokers/{id}/metrics?range={range}", app.address),
                    false,
                )
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    for range in ["1d", "1w"] {
        // Longer ranges read roll-ups (none yet: they cover closed minutes only).
        let (status, html) = page(range).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("id=\"chart-depth\""), "{html}");
        assert!(
            html.contains(&format!(
                "href=\"/console/brokers/{id}/metrics?range={range}\" aria-current=\"page\""
            )),
            "{html}"
        );
    }
    {
        let range = "1h";
        let (status, html) = page(range).await;
        assert_eq!(status, 200, "{html}");
        let depth = html
            .split("id=\"chart-depth\"")
            .nth(1)
            .and_then(|rest| rest.split("</figure>").next())
            .unwrap_or_else(|| panic!("no depth chart in {html}"));
        assert!(depth.contains("<polyline"), "{depth}");
        assert!(depth.contains("ready 7"), "{depth}");
        let memory = html
            .split("id=\"chart-memory\"")
            .nth(1)
            .and_then(|rest| rest.split("</figure>").next())
            .unwrap();
        assert!(memory.contains("watermark 400 MiB"), "{memory}");
        assert!(memory.contains("working set 100 MiB"), "{memory}");
        // A chart without history says so instead of drawing nothing.
        assert!(html.contains("CPU: no data"), "{html}");
        assert!(
            html.contains(&format!(
                "href=\"/console/brokers/{id}/metrics?range={range}\" aria-current=\"page\""
            )),
            "{html}"
        );
    }
    app.stop().await;
}
