//! Log collection (control-plane/src/observe/logs.rs), the logs API and the console logs
//! page, on the fake runtime with a fake agent whose logs the tests write: order without
//! gaps or repeats across passes and a restart, epoch changes, dropped lines, streams
//! turned off, search/tail/pages, bad parameters, other accounts, `logs.audit` per
//! engine, retention, and escaping on the page.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_contract::logs::{LogLine, LogPage, LogStream};
use agent_contract::{AgentSpec, HealthReport};
use async_trait::async_trait;
use berth::agent_client::{AgentCallError, AgentClient};
use berth::app::Role;
use berth::observe::logs::{LogCollector, LogCollectorConfig, PassReport};
use berth::observe::targets::{broker_targets, Which};
use berth::runtime::fake::FakeRuntime;
use serde_json::{json, Value};

use berth_tests::{
    activemq_broker, rabbitmq_broker, spawn_app_on, wait_until, TestApp, ACTIVEMQ_IMAGE,
    RABBITMQ_IMAGE,
};

use crate::reconciler::ReadyAgent;

/// One stream of one node as the fake agent keeps it.
struct Store {
    epoch: String,
    last_seq: u64,
    lines: Vec<LogLine>,
}

impl Store {
    fn new(epoch: &str) -> Self {
        Self {
            epoch: epoch.into(),
            last_seq: 0,
            lines: Vec::new(),
        }
    }
}

/// An agent that reports Ready and serves the logs the test wrote, keyed by agent base
/// URL (one per node) and stream.
#[derive(Default)]
struct LogAgent {
    stores: Mutex<HashMap<(String, LogStream), Store>>,
    /// Every `logs` call: base, stream, after.
    calls: Mutex<Vec<(String, LogStream, u64)>>,
    /// Bases that answer 500.
    failing: Mutex<HashSet<String>>,
}

impl LogAgent {
    fn with_store<R>(&self, base: &str, stream: LogStream, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut stores = self.stores.lock().unwrap();
        f(stores
            .entry((base.to_owned(), stream))
            .or_insert_with(|| Store::new("epoch-1")))
    }

    /// Appends lines read at `timestamp_ms`.
    fn push_at(&self, base: &str, stream: LogStream, timestamp_ms: i64, messages: &[String]) {
        self.with_store(base, stream, |s| {
            for m in messages {
                s.last_seq += 1;
                s.lines.push(LogLine {
                    seq: s.last_seq,
                    timestamp_ms,
                    message: m.clone(),
                });
            }
        })
    }

    fn push(&self, base: &str, stream: LogStream, messages: &[String]) {
        self.push_at(
            base,
            stream,
            chrono::Utc::now().timestamp_millis(),
            messages,
        )
    }

    /// The size cap: the oldest `n` lines go.
    fn drop_oldest(&self, base: &str, stream: LogStream, n: usize) {
        self.with_store(base, stream, |s| {
            s.lines.drain(..n.min(s.lines.len()));
        })
    }

    /// The agent lost its store and numbers from 1 under `epoch`.
    fn lose_store(&self, base: &str, stream: LogStream, epoch: &str) {
        self.with_store(base, stream, |s| *s = Store::new(epoch))
    }

    fn calls(&self) -> Vec<(String, LogStream, u64)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl AgentClient for LogAgent {
    async fn health(&self, base: &str, token: &str) -> anyhow::Result<HealthReport> {
        ReadyAgent.health(base, token).await
    }

    async fn put_spec(
        &self,
        base: &str,
        token: &str,
        spec: &AgentSpec,
    ) -> anyhow::Result<HealthReport> {
        ReadyAgent.put_spec(base, token, spec).await
    }

    async fn logs(
        &self,
        base: &str,
        _token: &str,
        stream: LogStream,
        after: u64,
        limit: usize,
    ) -> Result<LogPage, AgentCallError> {
        self.calls
            .lock()
            .unwrap()
            .push((base.to_owned(), stream, after));
        if self.failing.lock().unwrap().contains(base) {
            return Err(AgentCallError::Status {
                status: 500,
                message: "engine log unreadable".into(),
            });
        }
        Ok(self.with_store(base, stream, |s| LogPage {
            stream,
            epoch: s.epoch.clone(),
            first_seq: s.lines.first().map_or(0, |l| l.seq),
            last_seq: s.last_seq,
            lines: s
                .lines
                .iter()
                .filter(|l| l.seq > after)
                .take(limit)
                .cloned()
                .collect(),
        }))
    }
}

fn runtime() -> Arc<FakeRuntime> {
    Arc::new(FakeRuntime::with_images(&[RABBITMQ_IMAGE, ACTIVEMQ_IMAGE]))
}

async fn app_on(
    runtime: Arc<FakeRuntime>,
    agent: Arc<LogAgent>,
    tweak: impl FnOnce(&mut berth::config::Settings),
) -> TestApp {
    spawn_app_on(runtime, agent, tweak).await
}

/// A collector on the app with small pages (3 lines), so a pass reads several.
fn collector(app: &TestApp) -> LogCollector {
    let mut config = LogCollectorConfig::from_settings(&app.settings);
    config.page_size = 3;
    config.pages_per_pass = 4;
    config.concurrency = 2;
    LogCollector::for_context(app.application().context(), config)
}

/// The agent base URL of every node of broker `id`, by node index.
async fn bases(app: &TestApp, id: &str) -> Vec<String> {
    let ctx = app.application().context();
    let targets = broker_targets(&ctx.store, &ctx.secrets, "127.0.0.1", Which::WithContainers)
        .await
        .unwrap();
    let mut nodes: Vec<(u32, String)> = targets
        .into_iter()
        .filter(|t| t.broker_id.as_str() == id)
        .map(|t| (t.node, t.base))
        .collect();
    nodes.sort();
    assert!(!nodes.is_empty(), "no agent targets for {id}");
    nodes.into_iter().map(|(_, b)| b).collect()
}

fn lines(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i}")).collect()
}

async fn get_logs(app: &TestApp, id: &str, query: &str) -> (u16, Value) {
    let resp = app
        .get(&format!("/v1/berth/brokers/{id}/logs?{query}"))
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn messages(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {v}"))
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

/// Every stored message of the broker matching `query`, oldest first (startFromHead,
/// followed through `nextForwardToken` until it stops moving).
async fn all_messages(app: &TestApp, id: &str, query: &str) -> Vec<String> {
    let (status, mut page) =
        get_logs(app, id, &format!("startFromHead=true&maxResults=4&{query}")).await;
    assert_eq!(status, 200, "{page}");
    let mut out = messages(&page);
    loop {
        let token = page["nextForwardToken"].as_str().unwrap().to_owned();
        let (status, next) =
            get_logs(app, id, &format!("maxResults=4&nextToken={token}&{query}")).await;
        assert_eq!(status, 200, "{next}");
        if messages(&next).is_empty() {
            assert_eq!(next["nextForwardToken"], token.as_str());
            return out;
        }
        out.extend(messages(&next));
        page = next;
    }
}

async fn create_with_logs(app: &TestApp, name: &str, logs: Value) -> String {
    let mut body = rabbitmq_broker(name, "admin-user", "s3cret-Passw0rd-x");
    body["logs"] = logs;
    app.create_broker(&body).await
}

/// An app on `rt` with `tweak`, and one RabbitMQ broker collecting its general log: the
/// agent, the app, the broker id and its node's agent base URL.
async fn one_broker(
    rt: Arc<FakeRuntime>,
    name: &str,
    tweak: impl FnOnce(&mut berth::config::Settings),
) -> (Arc<LogAgent>, TestApp, String, String) {
    let agent = Arc::new(LogAgent::default());
    let app = app_on(rt, agent.clone(), tweak).await;
    let id = create_with_logs(&app, name, json!({"general": true})).await;
    let base = bases(&app, &id).await.remove(0);
    (agent, app, id, base)
}

fn pair_broker(name: &str, logs: Value) -> Value {
    let mut body = activemq_broker(
        name,
        json!([{"username": "app", "password": "correct-horse-9"}]),
    );
    body["deploymentMode"] = "ACTIVE_STANDBY_MULTI_AZ".into();
    body["hostInstanceType"] = "mq.m5.large".into();
    body["storageType"] = "EFS".into();
    body["logs"] = logs;
    body
}

async fn pass(c: &LogCollector) -> PassReport {
    c.pass().await
}

#[tokio::test]
async fn lines_arrive_in_order_once_across_passes_and_a_restart() {
    let rt = runtime();
    let (agent, mut app, id, base) = one_broker(rt.clone(), "ordered", |_| {}).await;

    agent.push(&base, LogStream::General, &lines("line", 1..=7));
    let r = pass(&collector(&app)).await;
    assert_eq!((r.streams, r.lines, r.failures), (1, 7, 0), "{r:?}");
    agent.push(&base, LogStream::General, &lines("line", 8..=11));
    assert_eq!(pass(&collector(&app)).await.lines, 4);
    assert_eq!(
        pass(&collector(&app)).await.lines,
        0,
        "nothing new, nothing stored"
    );
    assert_eq!(all_messages(&app, &id, "").await, lines("line", 1..=11));

    // A restart: the cursor is in the database, not in the process.
    app.restart_on(rt.clone(), agent.clone()).await;
    let calls_before = agent.calls().len();
    agent.push(&base, LogStream::General, &lines("line", 12..=14));
    assert_eq!(pass(&collector(&app)).await.lines, 3);
    let after_restart = &agent.calls()[calls_before];
    assert_eq!(
        after_restart.2, 11,
        "the new process asked from the stored cursor"
    );
    assert_eq!(all_messages(&app, &id, "").await, lines("line", 1..=14));
    let (_, page) = get_logs(&app, &id, "").await;
    assert_eq!(page["collection"][0]["lastSeq"], 14);
    assert_eq!(page["collection"][0]["droppedLines"], 0);
    // Newest first by default, with the sequence numbers the agent gave.
    assert_eq!(page["events"][0]["message"], "line 14");
    assert_eq!(page["events"][0]["seq"], 14);
    assert_eq!(page["events"][0]["node"], 0);
    assert_eq!(page["events"][0]["stream"], "general");
    assert!(page["events"][0]["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
}

#[tokio::test]
async fn the_collector_task_runs_when_turned_on() {
    let (agent, app, id, base) =
        one_broker(runtime(), "scheduled", |s| s.logs_interval_ms = 100).await;
    agent.push(&base, LogStream::General, &lines("tick", 1..=5));
    wait_until(Duration::from_secs(20), || async {
        messages(&get_logs(&app, &id, "").await.1).len() == 5
    })
    .await
    .expect("the collector task stored the lines");
    agent.push(&base, LogStream::General, &lines("tick", 6..=6));
    wait_until(Duration::from_secs(20), || async {
        messages(&get_logs(&app, &id, "").await.1)
            .first()
            .map(String::as_str)
            == Some("tick 6")
    })
    .await
    .expect("and the next one");
    assert_eq!(all_messages(&app, &id, "").await, lines("tick", 1..=6));
}

#[tokio::test]
async fn a_new_epoch_starts_over_and_dropped_lines_are_counted() {
    let (agent, app, id, base) = one_broker(runtime(), "epochs", |_| {}).await;
    let c = collector(&app);

    agent.push(&base, LogStream::General, &lines("old", 1..=5));
    assert_eq!(pass(&c).await.lines, 5);
    // The agent lost its store: its numbering starts again at 1 under a new epoch.
    agent.lose_store(&base, LogStream::General, "epoch-2");
    agent.push(&base, LogStream::General, &lines("new", 1..=2));
    assert_eq!(pass(&c).await.lines, 2);
    let mut expected = lines("old", 1..=5);
    expected.extend(lines("new", 1..=2));
    assert_eq!(all_messages(&app, &id, "").await, expected);
    let (_, page) = get_logs(&app, &id, "").await;
    assert_eq!(page["collection"][0]["lastSeq"], 2);
    assert_eq!(page["events"][0]["seq"], 2);

    // Ten more lines, of which the agent's cap dropped the oldest six before a pass.
    agent.push(&base, LogStream::General, &lines("new", 3..=12));
    agent.drop_oldest(&base, LogStream::General, 8); // new 1..=2 (collected) and 3..=8
    assert_eq!(pass(&c).await.lines, 4);
    expected.extend(lines("new", 9..=12));
    assert_eq!(all_messages(&app, &id, "").await, expected);
    let (_, page) = get_logs(&app, &id, "").await;
    assert_eq!(page["collection"][0]["droppedLines"], 6, "{page}");
    assert_eq!(page["collection"][0]["lastSeq"], 12);
    // A later pass does not count them again.
    assert_eq!(pass(&c).await.lines, 0);
    let (_, page) = get_logs(&app, &id, "").await;
    assert_eq!(page["collection"][0]["droppedLines"], 6);
}

#[tokio::test]
async fn only_streams_turned_on_are_collected_and_a_failing_agent_stops_nothing() {
    let agent = Arc::new(LogAgent::default());
    let app = app_on(runtime(), agent.clone(), |_| {}).await;
    let off = create_with_logs(&app, "quiet", json!({"general": false})).await;
    let audit = app
        .create_broker(&pair_broker(
            "audited",
            json!({"general": false, "audit": true}),
        ))
        .await;
    let broken = create_with_logs(&app, "broken", json!({"general": true})).await;
    let off_base = bases(&app, &off).await.remove(0);
    let audit_bases = bases(&app, &audit).await;
    let broken_base = bases(&app, &broken).await.remove(0);
    agent.push(&off_base, LogStream::General, &lines("off", 1..=3));
    for b in &audit_bases {
        agent.push(b, LogStream::General, &lines("general", 1..=2));
        agent.push(b, LogStream::Audit, &lines("audit", 1..=2));
    }
    agent.failing.lock().unwrap().insert(broken_base.clone());

    let r = pass(&collector(&app)).await;
    assert_eq!((r.streams, r.lines, r.failures), (3, 4, 1), "{r:?}");
    let asked: HashSet<(String, LogStream)> =
        agent.calls().into_iter().map(|(b, s, _)| (b, s)).collect();
    assert!(!asked.iter().any(|(b, _)| b == &off_base), "{asked:?}");
    assert!(!asked.contains(&(audit_bases[0].clone(), LogStream::General)));
    assert!(asked.contains(&(audit_bases[1].clone(), LogStream::Audit)));
    assert!(messages(&get_logs(&app, &off, "").await.1).is_empty());
    assert!(messages(&get_logs(&app, &broken, "").await.1).is_empty());
    let mut audit_lines = all_messages(&app, &audit, "").await;
    audit_lines.sort();
    assert_eq!(audit_lines, ["audit 1", "audit 1", "audit 2", "audit 2"]);

    // Turned on later (UpdateBroker): collected from the start of the agent's store.
    let resp = app
        .put_json(
            &format!("/v1/brokers/{off}"),
            &json!({"logs": {"general": true}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    agent.failing.lock().unwrap().clear();
    let r = pass(&collector(&app)).await;
    assert_eq!(r.failures, 0, "{r:?}");
    assert_eq!(all_messages(&app, &off, "").await, lines("off", 1..=3));
    assert_eq!(all_messages(&app, &broken, "").await, Vec::<String>::new());
}

#[tokio::test]
async fn search_filters_pages_and_tail() {
    let agent = Arc::new(LogAgent::default());
    let app = app_on(runtime(), agent.clone(), |_| {}).await;
    let id = app
        .create_broker(&pair_broker(
            "searched",
            json!({"general": true, "audit": true}),
        ))
        .await;
    let b = bases(&app, &id).await;
    let old = chrono::Utc::now().timestamp_millis() - 3_600_000;
    agent.push_at(&b[0], LogStream::General, old, &["an hour ago".to_owned()]);
    agent.push(
        &b[0],
        LogStream::General,
        &[
            "WARN disk 50% full".to_owned(),
            "disk 500 MB free".to_owned(),
            "error_code=7".to_owned(),
            "errorXcode=8".to_owned(),
            "path C:\\temp".to_owned(),
        ],
    );
    agent.push(&b[1], LogStream::General, &lines("standby", 1..=3));
    agent.push(
        &b[1],
        LogStream::Audit,
        &["admin deleted queue orders".to_owned()],
    );
    pass(&collector(&app)).await;

    let find = |q: &'static str| {
        let app = &app;
        let id = id.clone();
        async move { all_messages(app, &id, q).await }
    };
    assert_eq!(find("contains=50%25").await, ["WARN disk 50% full"]);
    assert_eq!(find("contains=_code").await, ["error_code=7"]);
    assert_eq!(
        find("contains=ERROR").await,
        ["error_code=7", "errorXcode=8"]
    );
    assert_eq!(find("contains=C:%5Ctemp").await, ["path C:\\temp"]);
    assert_eq!(find("contains=.%2A").await, Vec::<String>::new());
    assert_eq!(find("node=1&stream=general").await, lines("standby", 1..=3));
    assert_eq!(find("stream=audit").await, ["admin deleted queue orders"]);
    assert_eq!(find("node=0").await.len(), 6);
    let now = chrono::Utc::now().timestamp_millis();
    let since = format!("startTime={}&node=0", now - 600_000);
    assert_eq!(all_messages(&app, &id, &since).await.len(), 5);
    let until = format!("endTime={}", now - 600_000);
    assert_eq!(all_messages(&app, &id, &until).await, ["an hour ago"]);

    // Newest first, two at a time, through nextToken: the same lines in reverse.
    let mut forward = all_messages(&app, &id, "").await;
    assert_eq!(forward.len(), 10);
    let mut backward = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page) = get_logs(&app, &id, &format!("maxResults=2&nextToken={token}")).await;
        assert_eq!(status, 200, "{page}");
        backward.extend(messages(&page));
        match page["nextToken"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
    }
    forward.reverse();
    assert_eq!(backward, forward);

    // Tail: the forward token of the newest page returns only what comes later.
    let (_, newest) = get_logs(&app, &id, "maxResults=1").await;
    let tail = newest["nextForwardToken"].as_str().unwrap().to_owned();
    let (_, none_yet) = get_logs(&app, &id, &format!("nextToken={tail}")).await;
    assert!(messages(&none_yet).is_empty());
    assert_eq!(none_yet["nextForwardToken"], tail.as_str());
    agent.push(&b[1], LogStream::General, &lines("standby", 4..=5));
    pass(&collector(&app)).await;
    let (_, new) = get_logs(&app, &id, &format!("nextToken={tail}")).await;
    assert_eq!(messages(&new), lines("standby", 4..=5));
}

#[tokio::test]
async fn bad_parameters_are_400s_and_other_accounts_see_nothing() {
    let (agent, app, id, base) = one_broker(runtime(), "guarded", |_| {}).await;
    agent.push(&base, LogStream::General, &lines("secret-ish", 1..=2));
    pass(&collector(&app)).await;

    let long = "x".repeat(1025);
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    for (query, attribute) in [
        ("stream=debug".to_owned(), "stream"),
        ("node=1".to_owned(), "node"),
        ("node=-1".to_owned(), "node"),
        ("node=zero".to_owned(), "node"),
        ("maxResults=0".to_owned(), "maxResults"),
        ("maxResults=1001".to_owned(), "maxResults"),
        ("maxResults=ten".to_owned(), "maxResults"),
        ("nextToken=%21%21".to_owned(), "nextToken"),
        (format!("nextToken={}", b64("z:1")), "nextToken"),
        (format!("nextToken={}", b64("f:-4")), "nextToken"),
        ("startTime=yesterday".to_owned(), "startTime"),
        ("endTime=-5".to_owned(), "endTime"),
        ("startTime=2000&endTime=1000".to_owned(), "endTime"),
        ("startFromHead=yes".to_owned(), "startFromHead"),
        (format!("contains={long}"), "contains"),
    ] {
        let (status, body) = get_logs(&app, &id, &query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["errorAttribute"], attribute, "{query}: {body}");
    }
    assert_eq!(get_logs(&app, &id, "maxResults=1000").await.0, 200);
    assert_eq!(get_logs(&app, "b-nope", "").await.0, 404);

    let url = format!("{}/v1/berth/brokers/{id}/logs", app.address);
    let other = app.signer_for_account("111122223333").await;
    let get_as = |signer: berth_tests::Signer| {
        let (http, url) = (app.http.clone(), url.clone());
        async move { signer.send(&http, reqwest::Method::GET, &url, None).await }
    };
    assert_eq!(get_as(other).await.status(), 404);
    // Every role of the broker's own account reads them.
    let viewer = app.signer_with_role("000000000000", Role::Viewer).await;
    let resp = get_as(viewer).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(messages(&v).len(), 2);
}

#[tokio::test]
async fn audit_logs_are_for_activemq_only() {
    let agent = Arc::new(LogAgent::default());
    let app = app_on(runtime(), agent, |_| {}).await;
    let mut body = rabbitmq_broker("rabbit-audit", "admin-user", "s3cret-Passw0rd-x");
    body["logs"] = json!({"general": true, "audit": true});
    let resp = app.post_json("/v1/brokers", &body).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["errorAttribute"], "logs", "{err}");

    let rabbit = create_with_logs(&app, "rabbit", json!({"general": true, "audit": false})).await;
    let (_, d) = app.describe(&rabbit).await;
    assert_eq!(d["logs"]["general"], true);
    assert!(d["logs"].get("audit").is_none(), "{}", d["logs"]);
    let resp = app
        .put_json(
            &format!("/v1/brokers/{rabbit}"),
            &json!({"logs": {"audit": true}}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["errorAttribute"], "logs");

    let mut amq = activemq_broker(
        "amq-audit",
        json!([{"username": "app", "password": "correct-horse-9"}]),
    );
    amq["logs"] = json!({"audit": true});
    let amq = app.create_broker(&amq).await;
    let (_, d) = app.describe(&amq).await;
    assert_eq!(d["logs"]["audit"], true, "{}", d["logs"]);
    assert_eq!(d["logs"]["general"], false);
    assert_eq!(
        d["logs"]["auditLogGroup"],
        format!("/aws/amazonmq/broker/{amq}/audit")
    );
    let resp = app
        .put_json(
            &format!("/v1/brokers/{amq}"),
            &json!({"logs": {"audit": false, "general": true}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["logs"], json!({"general": true, "audit": false}));
    let (_, d) = app.describe(&amq).await;
    assert_eq!(d["logs"]["audit"], false);
    assert_eq!(d["logs"]["general"], true);
}

#[tokio::test]
async fn retention_keeps_each_brokers_newest_lines_and_drops_old_ones() {
    let agent = Arc::new(LogAgent::default());
    let app = app_on(runtime(), agent.clone(), |s| {
        s.logs_max_lines = 5;
        s.logs_max_age_hours = 24;
    })
    .await;
    let a = create_with_logs(&app, "kept-a", json!({"general": true})).await;
    let b = create_with_logs(&app, "kept-b", json!({"general": true})).await;
    let base_a = bases(&app, &a).await.remove(0);
    let base_b = bases(&app, &b).await.remove(0);
    let two_days_ago = chrono::Utc::now().timestamp_millis() - 48 * 3_600_000;
    agent.push_at(
        &base_b,
        LogStream::General,
        two_days_ago,
        &lines("stale", 1..=2),
    );
    agent.push(&base_a, LogStream::General, &lines("a", 1..=9));
    agent.push(&base_b, LogStream::General, &lines("b", 1..=2));
    let c = collector(&app);
    while pass(&c).await.lines > 0 {}
    assert_eq!(all_messages(&app, &a, "").await.len(), 9);
    assert_eq!(c.prune().await.unwrap(), 4 + 2);
    assert_eq!(all_messages(&app, &a, "").await, lines("a", 5..=9));
    assert_eq!(all_messages(&app, &b, "").await, lines("b", 1..=2));
}

#[tokio::test]
async fn the_console_logs_page_escapes_lines_and_pages_back() {
    let (agent, app, id, base) = one_broker(runtime(), "console-logs", |_| {}).await;
    agent.push(&base, LogStream::General, &lines("filler", 1..=104));
    agent.push(
        &base,
        LogStream::General,
        &["user typed <script>alert(1)</script> & left".to_owned()],
    );
    let c = collector(&app);
    while pass(&c).await.lines > 0 {}

    let session = app
        .console_user_session("000000000000", "reader", Role::Viewer)
        .await;
    let get = |path: String| {
        let session = session.clone();
        let app = &app;
        async move {
            let resp = session
                .request(
                    &app.http,
                    reqwest::Method::GET,
                    &format!("{}{path}", app.address),
                    false,
                )
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (status, broker_page) = get(format!("/console/brokers/{id}")).await;
    assert_eq!(status, 200);
    assert!(broker_page.contains(&format!("href=\"/console/brokers/{id}/logs\"")));

    let (status, page) = get(format!("/console/brokers/{id}/logs")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("user typed &#60;script&#62;alert(1)&#60;/script&#62; &#38; left")
            || page.contains("user typed &lt;script&gt;alert(1)&lt;/script&gt; &amp; left"),
        "{page}"
    );
    assert!(!page.contains("<script>alert(1)"));
    assert!(page.contains("Collected streams: general"));
    assert_eq!(
        page.matches("filler ").count(),
        99,
        "100 lines a page, newest first"
    );
    let older = page
        .split("id=\"older-lines\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("an Older lines link")
        .replace("&amp;", "&");
    let (status, older_page) = get(older).await;
    assert_eq!(status, 200);
    assert_eq!(older_page.matches("filler ").count(), 5);
    assert!(older_page.contains("filler 1<") && !older_page.contains("older-lines"));

    let (status, found) = get(format!("/console/brokers/{id}/logs?contains=alert&node=0")).await;
    assert_eq!(status, 200);
    assert_eq!(found.matches("filler ").count(), 0);
    assert!(found.contains("alert(1)"));
    let (status, bad) = get(format!("/console/brokers/{id}/logs?node=7")).await;
    assert_eq!(status, 400, "{bad}");
}
