//! Simulated broker agents: one loopback listener per broker on its pinned agent port,
//! answering `GET /metrics` with a RabbitMQ-shaped [`MetricsReport`] and `GET /logs`
//! with a growing general log, both only with the broker's bearer token. Every metrics
//! request's arrival time is recorded, so the bench can tell collection rounds apart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use agent_contract::logs::{LogLine, LogPage, LogStream, MAX_LOG_PAGE};
use agent_contract::metrics::{dims, names, MetricsReport, Sample, Unit};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::epoch_secs;

/// Lines a freshly booted RabbitMQ writes before it settles (its boot banner and plugin
/// start-up), then one more line every [`LOG_EVERY_SECS`].
const BOOT_LINES: u64 = 60;
const LOG_EVERY_SECS: f64 = 10.0;

/// One simulated broker.
pub struct SimBroker {
    pub broker_id: String,
    pub token: String,
    pub port: u16,
}

/// What the simulated agents saw, shared by all listeners.
#[derive(Default)]
pub struct SimLog {
    /// Arrival time (epoch seconds) of every authorised `/metrics` request.
    pub metrics_at: Mutex<Vec<f64>>,
    pub logs_requests: AtomicU64,
    pub refused: AtomicU64,
}

impl SimLog {
    pub fn metrics_count(&self) -> usize {
        self.metrics_at.lock().unwrap().len()
    }

    pub fn clear(&self) {
        self.metrics_at.lock().unwrap().clear();
        self.logs_requests.store(0, Ordering::SeqCst);
        self.refused.store(0, Ordering::SeqCst);
    }
}

struct Agent {
    broker: SimBroker,
    queues: usize,
    started: Instant,
    asked: AtomicU64,
    log: Arc<SimLog>,
}

impl Agent {
    fn authorised(&self, headers: &HeaderMap) -> bool {
        let ok = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            == Some(self.broker.token.as_str());
        if !ok {
            self.log.refused.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}

/// Starts one listener per broker (ports must be free); returns when all are bound.
pub async fn start(brokers: Vec<SimBroker>, queues: usize, log: Arc<SimLog>) {
    for broker in brokers {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", broker.port))
            .await
            .unwrap_or_else(|e| panic!("binding simulated agent port {}: {e}", broker.port));
        let agent = Arc::new(Agent {
            broker,
            queues,
            started: Instant::now(),
            asked: AtomicU64::new(0),
            log: log.clone(),
        });
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/logs", get(logs))
            .with_state(agent);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
}

async fn metrics(State(a): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    if !a.authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let now = epoch_secs();
    a.log.metrics_at.lock().unwrap().push(now);
    let tick = a.asked.fetch_add(1, Ordering::Relaxed);
    Json(rabbitmq_report(
        &a.broker.broker_id,
        a.queues,
        tick,
        (now * 1000.0) as i64,
    ))
    .into_response()
}

async fn logs(
    State(a): State<Arc<Agent>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !a.authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    a.log.logs_requests.fetch_add(1, Ordering::Relaxed);
    let stream = q
        .get("stream")
        .and_then(|s| LogStream::parse(s))
        .unwrap_or(LogStream::General);
    let after: u64 = q.get("after").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: u64 = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_LOG_PAGE as u64)
        .min(MAX_LOG_PAGE as u64);
    let last = match stream {
        LogStream::General => {
            BOOT_LINES + (a.started.elapsed().as_secs_f64() / LOG_EVERY_SECS) as u64
        }
        LogStream::Audit => 0,
    };
    let now_ms = (epoch_secs() * 1000.0) as i64;
    let lines = (after + 1..=last.min(after + limit))
        .map(|seq| LogLine {
            seq,
            timestamp_ms: now_ms,
            message: format!(
                "2026-01-01 00:00:00.000000+00:00 [info] <0.{seq}.0> accepting AMQP connection 172.18.0.1:{} -> 172.18.0.2:5672",
                40000 + seq % 20000
            ),
        })
        .collect();
    Json(LogPage {
        stream,
        epoch: format!("sim-{}", a.broker.broker_id),
        first_seq: u64::from(last > 0),
        last_seq: last,
        lines,
    })
    .into_response()
}

/// A report shaped like a real RabbitMQ 4.0 agent's (`broker-agent`'s container
/// sampler, `/api/overview`, `/api/nodes/<node>` and `/api/queues`): 8 container
/// samples, 11 overview samples, 5 node samples with `Node=rabbit@…`, and 4 samples per
/// queue with `Queue` and `VirtualHost`. Values move a little from call to call.
pub fn rabbitmq_report(broker_id: &str, queues: usize, tick: u64, ts_ms: i64) -> MetricsReport {
    let t = tick as f64;
    let wobble = |base: f64, span: f64| base + span * ((t * 0.37).sin() * 0.5 + 0.5);
    let node = format!("rabbit@{}", &broker_id[..broker_id.len().min(20)]);
    let mut samples = vec![
        Sample::new(
            names::SYSTEM_CPU_UTILIZATION,
            wobble(2.0, 3.0),
            Unit::Percent,
        ),
        Sample::new(names::MEMORY_USED, wobble(140e6, 20e6), Unit::Bytes),
        Sample::new(
            names::MEMORY_LIMIT,
            4.0 * 1024.0 * 1024.0 * 1024.0,
            Unit::Bytes,
        ),
        Sample::new(names::DISK_USED, wobble(12e6, 1e6), Unit::Bytes),
        Sample::new(names::DISK_FREE, 180e9, Unit::Bytes),
        Sample::new(names::NETWORK_IN, 1e5 + t * 4096.0, Unit::Bytes),
        Sample::new(names::NETWORK_OUT, 2e5 + t * 8192.0, Unit::Bytes),
        Sample::new(names::OOM_KILLS, 0.0, Unit::Count),
        Sample::new(names::QUEUE_COUNT, queues as f64, Unit::Count),
        Sample::new(names::EXCHANGE_COUNT, 7.0, Unit::Count),
        Sample::new(
            names::CONNECTION_COUNT,
            wobble(2.0, 2.0).round(),
            Unit::Count,
        ),
        Sample::new(names::CHANNEL_COUNT, wobble(2.0, 2.0).round(), Unit::Count),
        Sample::new(names::CONSUMER_COUNT, queues as f64, Unit::Count),
        Sample::new(
            names::MESSAGE_COUNT,
            wobble(10.0, 40.0).round(),
            Unit::Count,
        ),
        Sample::new(
            names::MESSAGE_READY_COUNT,
            wobble(8.0, 30.0).round(),
            Unit::Count,
        ),
        Sample::new(
            names::MESSAGE_UNACKNOWLEDGED_COUNT,
            wobble(2.0, 10.0).round(),
            Unit::Count,
        ),
        Sample::new(names::PUBLISH_RATE, wobble(5.0, 20.0), Unit::CountPerSecond),
        Sample::new(names::CONFIRM_RATE, wobble(5.0, 20.0), Unit::CountPerSecond),
        Sample::new(names::ACK_RATE, wobble(5.0, 20.0), Unit::CountPerSecond),
    ];
    for (name, v, unit) in [
        (names::RABBITMQ_MEM_USED, wobble(120e6, 20e6), Unit::Bytes),
        (names::RABBITMQ_MEM_LIMIT, 1.6e9, Unit::Bytes),
        (names::RABBITMQ_DISK_FREE, 180e9, Unit::Bytes),
        (names::RABBITMQ_DISK_FREE_LIMIT, 50e6, Unit::Bytes),
        (
            names::RABBITMQ_FD_USED,
            wobble(40.0, 5.0).round(),
            Unit::Count,
        ),
    ] {
        samples.push(Sample::new(name, v, unit).with(dims::NODE, &node));
    }
    for q in 0..queues {
        let queue = format!("orders-{q}");
        for (name, v) in [
            (names::MESSAGE_COUNT, wobble(3.0, 10.0).round()),
            (names::MESSAGE_READY_COUNT, wobble(2.0, 8.0).round()),
            (
                names::MESSAGE_UNACKNOWLEDGED_COUNT,
                wobble(1.0, 2.0).round(),
            ),
            (names::CONSUMER_COUNT, 1.0),
        ] {
            samples.push(
                Sample::new(name, v, Unit::Count)
                    .with(dims::QUEUE, &queue)
                    .with(dims::VIRTUAL_HOST, "/"),
            );
        }
    }
    MetricsReport {
        broker_id: broker_id.to_owned(),
        node: 0,
        timestamp_ms: ts_ms,
        samples,
        engine_error: None,
    }
}
