//! Metric history of a broker (what the collector stored, `observe::collector`): the list
//! of its series and the datapoints of one metric, with CloudWatch's statistics.
//!
//! A query reads raw points when it starts within raw retention, else 1-minute roll-ups
//! when within their retention, else 1-hour roll-ups. Periods are 1, 5, 10 or 30 s
//! (raw points only) or multiples of 60 s (of 3600 s from 1-hour roll-ups); at most
//! [`MAX_DATAPOINTS`] buckets. Dimension filters select every series whose dimensions
//! contain them, and the series selected are combined (an average over nodes is the
//! average of all their samples). An account sees the history of its own brokers,
//! also after a broker was deleted (the series keep the account id).

use chrono::{DateTime, Utc};

use super::{owned_broker, Caller};
use crate::db::metrics::{Bucket, Dimensions, SeriesRow, Source, HOUR, MINUTE};
use crate::error::Error;
use crate::observe::collector::Retention;
use agent_contract::metrics::{dims, names};

/// What the metric routes need besides the context: the retention (which source answers
/// a query) and the bearer token of the Prometheus routes (unset: they are off).
#[derive(Clone, Default)]
pub struct MetricsConfig {
    pub retention: Retention,
    pub prometheus_token: Option<String>,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("retention", &self.retention)
            .field(
                "prometheus_token",
                &self.prometheus_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One node Prometheus should scrape (through the control plane).
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub broker_id: String,
    pub broker_name: String,
    pub engine: String,
    pub account_id: String,
    pub node: u32,
}

/// Every node of every broker with containers, for Prometheus service discovery.
pub async fn prometheus_targets(ctx: &super::AppContext) -> Result<Vec<ScrapeTarget>, Error> {
    let nodes = crate::observe::targets::broker_targets(
        &ctx.store,
        &ctx.secrets,
        "",
        crate::observe::targets::Which::WithContainers,
    )
    .await?;
    let ids: Vec<String> = nodes
        .iter()
        .map(|n| n.broker_id.as_str().to_owned())
        .collect();
    let names = ctx.store.broker_names(&ids).await?;
    Ok(nodes
        .into_iter()
        .filter_map(|n| {
            let (name, engine) = names.get(n.broker_id.as_str())?.clone();
            Some(ScrapeTarget {
                broker_id: n.broker_id.as_str().to_owned(),
                broker_name: name,
                engine,
                account_id: n.account_id,
                node: n.node,
            })
        })
        .collect())
}

/// The newest stored report of a node, or 404.
pub async fn prometheus_node_report(
    ctx: &super::AppContext,
    broker_id: &str,
    node: u32,
) -> Result<agent_contract::metrics::MetricsReport, Error> {
    let id = crate::domain::BrokerId::parse(broker_id)?;
    let stored = ctx
        .store
        .metric_report_latest(id.as_str(), node)
        .await?
        .ok_or_else(|| {
            Error::not_found(
                "node",
                format!("No metrics were collected from node {node} of broker {broker_id}."),
            )
        })?;
    serde_json::from_value(stored.report)
        .map_err(|e| Error::internal("stored metric report", anyhow::Error::from(e)))
}

/// The control plane's own metrics in the text exposition format.
pub async fn prometheus_scrape(ctx: &super::AppContext) -> Result<String, Error> {
    let states = ctx.store.broker_count_by_state().await?;
    let age = ctx
        .store
        .metric_reports_newest()
        .await?
        .map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
    Ok(crate::instruments::global().encode(&states, age))
}

/// Most buckets one query returns.
pub const MAX_DATAPOINTS: i64 = 1440;

/// Periods under a minute (raw points only).
const SHORT_PERIODS: [i64; 4] = [1, 5, 10, 30];

/// Metric names Berth collects (Amazon MQ's).
pub const METRIC_NAMES: &[&str] = &[
    names::CPU_UTILIZATION,
    names::SYSTEM_CPU_UTILIZATION,
    names::MEMORY_USED,
    names::MEMORY_LIMIT,
    names::DISK_USED,
    names::DISK_FREE,
    names::NETWORK_IN,
    names::NETWORK_OUT,
    names::OOM_KILLS,
    names::QUEUE_COUNT,
    names::EXCHANGE_COUNT,
    names::CONNECTION_COUNT,
    names::CHANNEL_COUNT,
    names::CONSUMER_COUNT,
    names::MESSAGE_COUNT,
    names::MESSAGE_READY_COUNT,
    names::MESSAGE_UNACKNOWLEDGED_COUNT,
    names::PUBLISH_RATE,
    names::CONFIRM_RATE,
    names::ACK_RATE,
    names::RABBITMQ_MEM_USED,
    names::RABBITMQ_MEM_LIMIT,
    names::RABBITMQ_DISK_FREE,
    names::RABBITMQ_DISK_FREE_LIMIT,
    names::RABBITMQ_FD_USED,
    names::HEAP_USAGE,
    names::TOTAL_MESSAGE_COUNT,
    names::TOTAL_CONSUMER_COUNT,
    names::TOTAL_PRODUCER_COUNT,
    names::CURRENT_CONNECTIONS_COUNT,
    names::STORE_PERCENT_USAGE,
    names::TEMP_PERCENT_USAGE,
    names::QUEUE_SIZE,
    names::PRODUCER_COUNT,
    names::ENQUEUE_COUNT,
    names::DEQUEUE_COUNT,
];

/// Dimensions a query may filter on (`Broker` is the path's broker).
const DIMENSIONS: [&str; 4] = [dims::NODE, dims::QUEUE, dims::TOPIC, dims::VIRTUAL_HOST];

/// A CloudWatch statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Average,
    Minimum,
    Maximum,
    Sum,
    SampleCount,
}

impl Stat {
    pub const ALL: [Stat; 5] = [
        Self::Average,
        Self::Minimum,
        Self::Maximum,
        Self::Sum,
        Self::SampleCount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Average => "Average",
            Self::Minimum => "Minimum",
            Self::Maximum => "Maximum",
            Self::Sum => "Sum",
            Self::SampleCount => "SampleCount",
        }
    }

    fn of(self, b: &Bucket) -> f64 {
        match self {
            Self::Average => b.sum / b.sample_count.max(1) as f64,
            Self::Minimum => b.minimum,
            Self::Maximum => b.maximum,
            Self::Sum => b.sum,
            Self::SampleCount => b.sample_count as f64,
        }
    }
}

/// A datapoints query as it arrived (the HTTP layer only splits the query string).
#[derive(Debug, Clone, Default)]
pub struct DatapointsQuery {
    /// RFC 3339; default: `end` minus an hour.
    pub start_time: Option<String>,
    /// RFC 3339; default: now.
    pub end_time: Option<String>,
    /// Seconds; default 60.
    pub period: Option<String>,
    /// Default `Average`.
    pub stat: Option<String>,
    /// `dimension.<Name>=<value>` filters.
    pub dimensions: Vec<(String, String)>,
}

/// Which stored resolution answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    OneMinute,
    OneHour,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::OneMinute => "1m",
            Self::OneHour => "1h",
        }
    }
}

/// The datapoints of one metric.
#[derive(Debug, Clone)]
pub struct Datapoints {
    pub name: String,
    pub unit: Option<String>,
    pub stat: Stat,
    pub period: i64,
    pub resolution: Resolution,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// The caller may see the history of `broker_id`: it is theirs, or was.
async fn visible_broker(
    ctx: &super::AppContext,
    caller: &Caller,
    id: &str,
) -> Result<String, Error> {
    let parsed = crate::domain::BrokerId::parse(id)?;
    let account = caller.scope.account.as_str();
    if ctx
        .store
        .metric_series_exist(account, parsed.as_str())
        .await?
    {
        return Ok(parsed.as_str().to_owned());
    }
    owned_broker(ctx, caller, id).await?;
    Ok(parsed.as_str().to_owned())
}

/// Every series of a broker, with its newest value.
pub async fn metrics_series(
    ctx: &super::AppContext,
    caller: &Caller,
    broker_id: &str,
) -> Result<Vec<SeriesRow>, Error> {
    let id = visible_broker(ctx, caller, broker_id).await?;
    ctx.store
        .metric_series_list(caller.scope.account.as_str(), &id)
        .await
}

fn parse_time(s: &str, attribute: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Error::bad_request(
                attribute,
                format!("The {attribute} must be an RFC 3339 time such as 2026-01-31T12:00:00Z; got {s:?}."),
            )
        })
}

fn parse_stat(s: &str) -> Result<Stat, Error> {
    Stat::ALL
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| {
            Error::bad_request(
                "stat",
                format!("The stat must be one of Average, Minimum, Maximum, Sum, SampleCount; got {s:?}."),
            )
        })
}

fn secs(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Picks the source of a query starting at `start` with `period`, or says why none fits.
fn choose_source(
    retention: &Retention,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    period: i64,
) -> Result<(Source, Resolution), Error> {
    let within = |d| start >= now - secs(d);
    if period < 60 {
        if !SHORT_PERIODS.contains(&period) {
            return Err(Error::bad_request(
                "period",
                format!(
                    "The period must be 1, 5, 10, 30 or a multiple of 60 seconds; got {period}."
                ),
            ));
        }
        if !within(retention.raw) {
            return Err(Error::bad_request(
                "period",
                format!(
                    "Periods under 60 seconds are kept for {} seconds only: the startTime must be within them.",
                    retention.raw.as_secs()
                ),
            ));
        }
        return Ok((Source::Raw, Resolution::Raw));
    }
    if period % 60 != 0 {
        return Err(Error::bad_request(
            "period",
            format!("The period must be 1, 5, 10, 30 or a multiple of 60 seconds; got {period}."),
        ));
    }
    if within(retention.raw) {
        return Ok((Source::Raw, Resolution::Raw));
    }
    if within(retention.minute) {
        return Ok((Source::Rollup(MINUTE), Resolution::OneMinute));
    }
    if period % i64::from(HOUR) != 0 {
        return Err(Error::bad_request(
            "period",
            format!(
                "Data older than {} seconds is kept at 1-hour resolution: the period must be a multiple of 3600 seconds; got {period}.",
                retention.minute.as_secs()
            ),
        ));
    }
    Ok((Source::Rollup(HOUR), Resolution::OneHour))
}

/// The datapoints of metric `name` of a broker, as of `now`.
pub async fn metrics_datapoints(
    ctx: &super::AppContext,
    caller: &Caller,
    retention: &Retention,
    broker_id: &str,
    name: &str,
    q: DatapointsQuery,
    now: DateTime<Utc>,
) -> Result<Datapoints, Error> {
    if !METRIC_NAMES.contains(&name) {
        return Err(Error::bad_request(
            "metricName",
            format!("Unknown metric {name:?}: the metric names are Amazon MQ's (e.g. CpuUtilization, MessageReadyCount)."),
        ));
    }
    let end = match &q.end_time {
        Some(s) => parse_time(s, "endTime")?,
        None => now,
    };
    let start = match &q.start_time {
        Some(s) => parse_time(s, "startTime")?,
        None => end - chrono::Duration::hours(1),
    };
    if start >= end {
        return Err(Error::bad_request(
            "startTime",
            "The startTime must be before the endTime.",
        ));
    }
    let period = match &q.period {
        Some(p) => p.parse::<i64>().ok().filter(|p| *p > 0).ok_or_else(|| {
            Error::bad_request(
                "period",
                format!("The period must be a positive number of seconds; got {p:?}."),
            )
        })?,
        None => 60,
    };
    let stat = q.stat.as_deref().map_or(Ok(Stat::Average), parse_stat)?;
    let mut filter = Dimensions::new();
    for (k, v) in q.dimensions {
        if !DIMENSIONS.contains(&k.as_str()) {
            return Err(Error::bad_request(
                "dimension",
                format!(
                    "Unknown dimension {k:?}: the dimensions are Node, Queue, Topic, VirtualHost."
                ),
            ));
        }
        filter.insert(k, v);
    }
    let span = (end - start).num_seconds().max(1);
    let buckets = (span + period - 1) / period;
    if buckets > MAX_DATAPOINTS {
        return Err(Error::bad_request(
            "period",
            format!(
                "A query returns at most {MAX_DATAPOINTS} datapoints; this one would return {buckets}: raise the period or shorten the range."
            ),
        ));
    }
    let (source, resolution) = choose_source(retention, now, start, period)?;
    let id = visible_broker(ctx, caller, broker_id).await?;
    let account = caller.scope.account.as_str();
    let rows = ctx
        .store
        .metric_buckets(account, &id, name, &filter, source, start, end, period)
        .await?;
    let unit = ctx.store.metric_unit(account, &id, name, &filter).await?;
    Ok(Datapoints {
        name: name.to_owned(),
        unit,
        stat,
        period,
        resolution,
        start,
        end,
        points: rows.iter().map(|b| (b.ts, stat.of(b))).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_follow_the_range() {
        let r = Retention::default();
        let now = Utc::now();
        let ago = |h: i64| now - chrono::Duration::hours(h);
        assert_eq!(
            choose_source(&r, now, ago(1), 60).unwrap().1,
            Resolution::Raw
        );
        assert_eq!(
            choose_source(&r, now, ago(1), 10).unwrap().1,
            Resolution::Raw
        );
        assert_eq!(
            choose_source(&r, now, ago(24), 300).unwrap().1,
            Resolution::OneMinute
        );
        assert_eq!(
            choose_source(&r, now, ago(24 * 20), 3600).unwrap().1,
            Resolution::OneHour
        );
        for (start, period) in [
            (ago(24), 10),
            (ago(1), 7),
            (ago(1), 90),
            (ago(24 * 20), 600),
        ] {
            let e = choose_source(&r, now, start, period).unwrap_err();
            assert_eq!(e.attribute(), Some("period"), "{start} {period}");
        }
    }
}
