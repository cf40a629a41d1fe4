//! The metric collector and the history's upkeep.
//!
//! [`Collector`]: every `metrics_interval_ms` (0 = off) it asks every serving node's
//! agent for `GET /metrics` ([`broker_targets`] with [`Which::Serving`]), a bounded number
//! at once, each within a timeout, and stores each report (`db::metrics`): the `Node`
//! dimension is added (the node index) unless a sample has one; series ids are cached in
//! memory so a report costs one points insert, not a query per sample. A failing agent
//! never stops a pass; failures are counted ([`crate::instruments`]).
//!
//! [`Maintainer`]: every `metrics_rollup_interval_ms` (0 = off) it recomputes the 1-minute
//! roll-ups of closed minutes from raw points and the 1-hour roll-ups of closed hours from
//! the 1-minute ones, then applies [`Retention`]. Its first pass starts at the oldest raw
//! point; later passes recompute the last bucket or two again (late samples). Retention
//! cuts at bucket boundaries, so a bucket is recomputed either from all its rows or not
//! at all: recomputing never shrinks a stored roll-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_contract::metrics::{dims, MetricsReport};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::targets::{broker_targets, NodeTarget, Which};
use crate::agent_client::AgentClient;
use crate::crypto::SecretBox;
use crate::db::metrics::{Dimensions, Removed, SeriesSpec, HOUR, MINUTE};
use crate::db::DataStore;
use crate::error::Error;

/// How long metric history is kept at each resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Duration,
    pub minute: Duration,
    pub hour: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            raw: Duration::from_secs(6 * 3600),
            minute: Duration::from_secs(15 * 86_400),
            hour: Duration::from_secs(455 * 86_400),
        }
    }
}

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Zero: no collection.
    pub interval: Duration,
    pub timeout: Duration,
    pub concurrency: usize,
    pub publish_host: String,
}

/// What one collection pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassOutcome {
    /// Nodes whose report was stored.
    pub collected: usize,
    /// Nodes whose agent failed, timed out, or whose report could not be stored.
    pub failed: usize,
}

/// Series key in the cache: broker, metric name, dimensions (with `Node`).
type SeriesKey = (String, String, Dimensions);

pub struct Collector {
    store: DataStore,
    secrets: SecretBox,
    agent: Arc<dyn AgentClient>,
    config: CollectorConfig,
    series: Mutex<HashMap<SeriesKey, i64>>,
}

impl Collector {
    pub fn new(
        store: DataStore,
        secrets: SecretBox,
        agent: Arc<dyn AgentClient>,
        config: CollectorConfig,
    ) -> Self {
        Self {
            store,
            secrets,
            agent,
            config,
            series: Mutex::default(),
        }
    }

    /// Collects every `interval` until `cancel` fires (returns at once when off).
    pub async fn run(self, cancel: CancellationToken) {
        if self.config.interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
            match self.collect_once().await {
                Ok(o) if o.failed > 0 => {
                    tracing::debug!(collected = o.collected, failed = o.failed, "metric pass")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "metric collection failed"),
            }
        }
    }

    /// One pass over every serving node.
    pub async fn collect_once(&self) -> Result<PassOutcome, Error> {
        let targets = broker_targets(
            &self.store,
            &self.secrets,
            &self.config.publish_host,
            Which::Serving,
        )
        .await?;
        let results: Vec<bool> = futures_util::stream::iter(targets)
            .map(|t| self.collect_node(t))
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let collected = results.iter().filter(|ok| **ok).count();
        let outcome = PassOutcome {
            collected,
            failed: results.len() - collected,
        };
        crate::instruments::global().collector_pass(outcome.failed as u64);
        Ok(outcome)
    }

    /// Asks one node and stores its report; false when that failed (logged).
    async fn collect_node(&self, t: NodeTarget) -> bool {
        let report = match tokio::time::timeout(
            self.config.timeout,
            self.agent.metrics(&t.base, &t.token),
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(broker = %t.broker_id, node = t.node, error = %e, "agent metrics failed");
                return false;
            }
            Err(_) => {
                tracing::debug!(broker = %t.broker_id, node = t.node, "agent metrics timed out");
                return false;
            }
        };
        let mut stored = self.store_report(&t, &report).await;
        if stored.is_err() {
            // A cached id may be gone (retention in another process): forget them, retry once.
            self.forget(t.broker_id.as_str());
            stored = self.store_report(&t, &report).await;
        }
        match stored {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(broker = %t.broker_id, node = t.node, error = %format!("{e:#}"), "storing a metric report failed");
                false
            }
        }
    }

    fn forget(&self, broker: &str) {
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| k.0 != broker);
    }

    async fn store_report(&self, t: &NodeTarget, report: &MetricsReport) -> Result<(), Error> {
        let broker = t.broker_id.as_str();
        let node = t.node.to_string();
        // Finite values only, one per series (the last wins).
        let mut samples: HashMap<(String, Dimensions), (f64, String)> = HashMap::new();
        for s in report.samples.iter().filter(|s| s.value.is_finite()) {
            let mut d = s.dimensions.clone();
            d.entry(dims::NODE.to_owned())
                .or_insert_with(|| node.clone());
            let unit = serde_json::to_value(s.unit)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "None".into());
            samples.insert((s.name.clone(), d), (s.value, unit));
        }
        let missing: Vec<SeriesSpec> = {
            let cache = self.series.lock().unwrap_or_else(|e| e.into_inner());
            samples
                .iter()
                .filter(|((name, d), _)| {
                    !cache.contains_key(&(broker.to_owned(), name.clone(), d.clone()))
                })
                .map(|((name, d), (_, unit))| SeriesSpec {
                    name: name.clone(),
                    dimensions: d.clone(),
                    unit: unit.clone(),
                })
                .collect()
        };
        let created = self
            .store
            .metric_series_ensure(&t.account_id, broker, &missing)
            .await?;
        let (ids, values): (Vec<i64>, Vec<f64>) = {
            let mut cache = self.series.lock().unwrap_or_else(|e| e.into_inner());
            for (id, name, d) in created {
                cache.insert((broker.to_owned(), name, d), id);
            }
            samples
                .iter()
                .filter_map(|((name, d), (v, _))| {
                    cache
                        .get(&(broker.to_owned(), name.clone(), d.clone()))
                        .map(|id| (*id, *v))
                })
                .unzip()
        };
        let ts = Utc
            .timestamp_millis_opt(report.timestamp_ms)
            .single()
            .unwrap_or_else(Utc::now);
        let json = serde_json::to_value(report)
            .map_err(|e| Error::internal("encoding a metric report", anyhow::Error::from(e)))?;
        self.store
            .metric_report_store(&t.account_id, broker, t.node, ts, &ids, &values, &json)
            .await
    }
}

/// Start of the bucket of `resolution` seconds that `t` falls in.
fn floor(t: DateTime<Utc>, resolution: i32) -> DateTime<Utc> {
    let r = i64::from(resolution);
    let secs = t.timestamp().div_euclid(r) * r;
    Utc.timestamp_opt(secs, 0).single().unwrap_or(t)
}

fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What one upkeep pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpkeepOutcome {
    pub minute_rollups: u64,
    pub hour_rollups: u64,
    pub removed: Removed,
}

/// Roll-ups and retention (see the module docs).
pub struct Maintainer {
    store: DataStore,
    retention: Retention,
    /// Where the next pass starts recomputing (None: at the oldest raw point).
    next: Option<DateTime<Utc>>,
}

impl Maintainer {
    pub fn new(store: DataStore, retention: Retention) -> Self {
        Self {
            store,
            retention,
            next: None,
        }
    }

    /// Runs a pass every `interval` until `cancel` fires (returns at once when zero).
    pub async fn run(mut self, interval: Duration, cancel: CancellationToken) {
        if interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.pass(Utc::now()).await {
                tracing::warn!(error = %format!("{e:#}"), "metric roll-up or retention failed");
            }
        }
    }

    /// One pass as of `now`: roll-ups of the buckets closed by `now`, then retention.
    pub async fn pass(&mut self, now: DateTime<Utc>) -> Result<UpkeepOutcome, Error> {
        let minute_end = floor(now, MINUTE);
        let start = match self.next {
            Some(t) => Some(t),
            None => self.store.metric_points_oldest().await?,
        };
        let mut out = UpkeepOutcome::default();
        if let Some(start) = start.map(|s| floor(s, MINUTE)).filter(|s| *s < minute_end) {
            out.minute_rollups = self.store.metric_rollup(MINUTE, start, minute_end).await?;
            out.hour_rollups = self
                .store
                .metric_rollup(HOUR, floor(start, HOUR), floor(now, HOUR))
                .await?;
        }
        // The last closed minute again next time (samples that arrive late).
        self.next = Some(minute_end - chrono::Duration::seconds(i64::from(MINUTE)));
        out.removed = self
            .store
            .metric_retention(
                floor(before(now, self.retention.raw), MINUTE),
                floor(before(now, self.retention.minute), HOUR),
                floor(before(now, self.retention.hour), HOUR),
            )
            .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_their_boundary() {
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 10, 59, 59).unwrap();
        assert_eq!(
            floor(t, MINUTE),
            Utc.with_ymd_and_hms(2026, 3, 4, 10, 59, 0).unwrap()
        );
        assert_eq!(
            floor(t, HOUR),
            Utc.with_ymd_and_hms(2026, 3, 4, 10, 0, 0).unwrap()
        );
        assert_eq!(floor(floor(t, HOUR), HOUR), floor(t, HOUR));
    }
}
