//! The process-wide Prometheus registry (`prometheus-client`) of the control plane
//! itself, served at `GET /metrics` (`http::prometheus`).
//!
//! Instruments: API request latency by route template, method and status (the
//! [`track_http`] middleware), reconcile step durations and the reconciler's work in
//! flight and waiting, collector passes and failed nodes. Gauges that describe the
//! database (brokers by state, age of the newest collected report) are set when
//! scraped ([`Instruments::encode`]).

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~32 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The control plane's instruments.
pub struct Instruments {
    registry: Registry,
    http: Family<HttpLabels, Histogram, fn() -> Histogram>,
    reconcile_step: Histogram,
    reconcile_in_flight: Gauge,
    reconcile_waiting: Gauge,
    collector_passes: Counter,
    collector_failures: Counter,
    brokers: Family<StateLabels, Gauge>,
    last_collection_age: Family<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Scrapes set the database gauges, then encode: one at a time.
    scrape: Mutex<()>,
}

static GLOBAL: LazyLock<Instruments> = LazyLock::new(Instruments::new);

/// The process-wide instruments.
pub fn global() -> &'static Instruments {
    &GLOBAL
}

impl Instruments {
    fn new() -> Self {
        let mut registry = Registry::default();
        let http = Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "berth_http_request_duration_seconds",
            "API request latency by route template, method and status",
            http.clone(),
        );
        let reconcile_step = latency_histogram();
        registry.register(
            "berth_reconcile_step_duration_seconds",
            "Duration of one reconcile step of one broker",
            reconcile_step.clone(),
        );
        let reconcile_in_flight = Gauge::default();
        registry.register(
            "berth_reconcile_in_flight",
            "Brokers whose reconcile step is running",
            reconcile_in_flight.clone(),
        );
        let reconcile_waiting = Gauge::default();
        registry.register(
            "berth_reconcile_waiting",
            "Brokers the last sweep found still busy with their previous step",
            reconcile_waiting.clone(),
        );
        let collector_passes = Counter::default();
        registry.register(
            "berth_metric_collector_passes",
            "Metric collection passes",
            collector_passes.clone(),
        );
        let collector_failures = Counter::default();
        registry.register(
            "berth_metric_collector_failures",
            "Nodes whose metrics could not be collected or stored",
            collector_failures.clone(),
        );
        let brokers = Family::<StateLabels, Gauge>::default();
        registry.register("berth_brokers", "Brokers by state", brokers.clone());
        let last_collection_age = Family::default();
        registry.register(
            "berth_metric_last_collection_age_seconds",
            "Seconds since the newest stored agent report was collected",
            last_collection_age.clone(),
        );
        Self {
            registry,
            http,
            reconcile_step,
            reconcile_in_flight,
            reconcile_waiting,
            collector_passes,
            collector_failures,
            brokers,
            last_collection_age,
            scrape: Mutex::new(()),
        }
    }

    /// A collection pass ended with `failed` failed nodes.
    pub fn collector_pass(&self, failed: u64) {
        self.collector_passes.inc();
        self.collector_failures.inc_by(failed);
    }

    /// A reconcile step starts; the guard records its duration when dropped.
    pub fn reconcile_step(&'static self) -> StepTimer {
        self.reconcile_in_flight.inc();
        StepTimer {
            started: Instant::now(),
            instruments: self,
        }
    }

    /// The last sweep found `n` brokers still busy.
    pub fn reconcile_waiting(&self, n: usize) {
        self.reconcile_waiting
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition (OpenMetrics), with the scrape-time gauges set from
    /// `brokers_by_state` and `last_collection_age_secs`.
    pub fn encode(
        &self,
        brokers_by_state: &[(String, i64)],
        last_collection_age_secs: Option<f64>,
    ) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.brokers.clear();
        use crate::domain::BrokerState as S;
        for state in [
            S::CreationInProgress,
            S::CreationFailed,
            S::DeletionInProgress,
            S::Running,
            S::RebootInProgress,
            S::CriticalActionRequired,
        ] {
            let count = brokers_by_state
                .iter()
                .find(|(s, _)| s == state.as_wire())
                .map_or(0, |(_, n)| *n);
            self.brokers
                .get_or_create(&StateLabels {
                    state: state.as_wire().to_owned(),
                })
                .set(count);
        }
        self.last_collection_age.clear();
        if let Some(age) = last_collection_age_secs {
            self.last_collection_age.get_or_create(&Vec::new()).set(age);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding the control plane's metrics failed");
        }
        out
    }
}

/// Times one reconcile step (see [`Instruments::reconcile_step`]).
pub struct StepTimer {
    started: Instant,
    instruments: &'static Instruments,
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        self.instruments.reconcile_in_flight.dec();
        self.instruments
            .reconcile_step
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// Middleware (a route layer, so the route template is known): records each request's
/// latency by route template, method and status.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    global()
        .http
        .get_or_create(&HttpLabels {
            method,
            route,
            status: resp.status().as_u16().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}
