//! Metering and cost: usage per broker per clock hour (UTC), priced from a price list.
//!
//! A broker is billed from its creation to its deletion (`metered_brokers`, written by
//! triggers on `brokers`, so a deleted broker keeps its usage). Every hour it existed
//! gets one usage record: instance-hours = the fraction of the hour it existed × its
//! node count (1; 2 for ACTIVE_STANDBY_MULTI_AZ; 3 for CLUSTER_MULTI_AZ) and storage
//! GB-hours = that fraction × the storage it is provisioned with ([`storage_gb`]).
//! Metering is idempotent: an hour metered again rewrites the same record, and the hour
//! still running is rewritten on every pass until it is complete. Time comes in as a
//! `now` parameter, so tests run metering across hour boundaries.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{AppContext, Caller};
use crate::db::metering::{MeteredBrokerRow, UsageGroup, UsageRecord, UsageSum};
use crate::db::DataStore;
use crate::error::Error;

/// Hours in the month Amazon prices storage by (GB-month → GB-hour).
const HOURS_PER_MONTH: f64 = 730.0;

/// Prices in USD: per instance-hour by host instance type, per GB-month by storage type.
/// Multi-node brokers pay the instance price per node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceList {
    pub instance_hour: BTreeMap<String, f64>,
    pub storage_gb_month: BTreeMap<String, f64>,
}

impl Default for PriceList {
    /// Amazon MQ list prices, us-east-1. Only mq.m5.large ($0.276/h) is quoted by the
    /// project's sources; the rest are unverified (README, "Alarms, webhooks and cost").
    fn default() -> Self {
        let instance_hour = [
            ("mq.t3.micro", 0.027),
            ("mq.m5.large", 0.276),
            ("mq.m5.xlarge", 0.552),
            ("mq.m5.2xlarge", 1.104),
            ("mq.m5.4xlarge", 2.208),
            ("mq.m7g.medium", 0.1176),
            ("mq.m7g.large", 0.2352),
            ("mq.m7g.xlarge", 0.4704),
            ("mq.m7g.2xlarge", 0.9408),
            ("mq.m7g.4xlarge", 1.8816),
            ("mq.m7g.8xlarge", 3.7632),
            ("mq.m7g.12xlarge", 5.6448),
            ("mq.m7g.16xlarge", 7.5264),
        ];
        Self {
            instance_hour: instance_hour
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            storage_gb_month: [("EBS".to_owned(), 0.10), ("EFS".to_owned(), 0.30)].into(),
        }
    }
}

impl PriceList {
    /// The price list in `path` (JSON: `{"instanceHour": {...}, "storageGbMonth": {...}}`),
    /// or the built-in one when `path` is `None`.
    pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading price list {}", path.display()))?;
        let list: Self = serde_json::from_str(&text)
            .with_context(|| format!("parsing price list {}", path.display()))?;
        anyhow::ensure!(
            list.instance_hour
                .values()
                .chain(list.storage_gb_month.values())
                .all(|p| p.is_finite() && *p >= 0.0),
            "price list {}: prices must be finite and not negative",
            path.display()
        );
        Ok(list)
    }
}

/// Nodes a broker runs in its deployment mode.
pub fn node_count(deployment_mode: &str) -> i32 {
    match deployment_mode {
        "ACTIVE_STANDBY_MULTI_AZ" => 2,
        "CLUSTER_MULTI_AZ" => 3,
        _ => 1,
    }
}

/// Provisioned storage billed for the whole broker, in GB (anchors §A1/§A3): 20 GB on
/// mq.t3.micro, 200 GB per node otherwise; RabbitMQ 4 cluster nodes get their instance
/// type's default per-node disk; an active/standby pair shares one store.
pub fn storage_gb(deployment_mode: &str, host_instance_type: &str) -> f64 {
    let cluster_node = match host_instance_type {
        "mq.m7g.medium" => 5.0,
        "mq.m7g.large" => 15.0,
        "mq.m7g.xlarge" => 25.0,
        "mq.m7g.2xlarge" => 45.0,
        "mq.m7g.4xlarge" => 90.0,
        "mq.m7g.8xlarge" => 175.0,
        "mq.m7g.12xlarge" => 260.0,
        "mq.m7g.16xlarge" => 345.0,
        _ => 200.0,
    };
    match deployment_mode {
        "CLUSTER_MULTI_AZ" => cluster_node * 3.0,
        _ if host_instance_type == "mq.t3.micro" => 20.0,
        _ => 200.0,
    }
}

/// The clock hour containing `t`.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The fraction of the hour starting at `hour` during which the broker existed (as far
/// as `now`).
pub fn fraction_of_hour(
    created: DateTime<Utc>,
    deleted: Option<DateTime<Utc>>,
    hour: DateTime<Utc>,
    now: DateTime<Utc>,
) -> f64 {
    let end = deleted
        .map_or(now, |d| d.min(now))
        .min(hour + TimeDelta::hours(1));
    let start = created.max(hour);
    if end <= start {
        return 0.0;
    }
    (end - start).num_milliseconds() as f64 / 3_600_000.0
}

/// The usage records of every hour of `b` from its `metered_until` (or creation) up to
/// `now`, and the new `metered_until`: the end of the last complete hour.
pub fn usage_since(
    b: &MeteredBrokerRow,
    prices: &PriceList,
    now: DateTime<Utc>,
) -> (Vec<UsageRecord>, Option<DateTime<Utc>>) {
    let mut hour = b.metered_until.unwrap_or_else(|| hour_of(b.created_at));
    let end = b.deleted_at.map_or(now, |d| d.min(now));
    let nodes = node_count(&b.deployment_mode);
    let gb = storage_gb(&b.deployment_mode, &b.host_instance_type);
    let instance_price = prices
        .instance_hour
        .get(&b.host_instance_type)
        .copied()
        .unwrap_or_default();
    let storage_price = prices
        .storage_gb_month
        .get(&b.storage_type)
        .copied()
        .unwrap_or_default()
        / HOURS_PER_MONTH;
    let mut records = Vec::new();
    let mut complete = b.metered_until;
    while hour < end {
        let fraction = fraction_of_hour(b.created_at, b.deleted_at, hour, now);
        let instance_hours = fraction * f64::from(nodes);
        let storage_gb_hours = fraction * gb;
        records.push(UsageRecord {
            hour_start: hour,
            host_instance_type: b.host_instance_type.clone(),
            node_count: nodes,
            instance_hours,
            storage_gb_hours,
            instance_cost: instance_hours * instance_price,
            storage_cost: storage_gb_hours * storage_price,
        });
        hour += TimeDelta::hours(1);
        if hour <= now {
            complete = Some(hour);
        }
    }
    (records, complete)
}

/// Meters every broker with hours still open, as of `now`. Returns the records written.
pub async fn meter(
    store: &DataStore,
    prices: &PriceList,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let mut written = 0;
    for b in store.metered_pending().await? {
        let (records, until) = usage_since(&b, prices, now);
        store.usage_write(&b, &records, until, now).await?;
        written += records.len();
    }
    Ok(written)
}

/// The metering task: [`meter`] every `interval` until `cancel`.
pub async fn run(
    store: DataStore,
    prices: PriceList,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = meter(&store, &prices, Utc::now()).await {
            tracing::warn!(error = %format!("{e:#}"), "metering pass failed");
        }
    }
}

/// Cost of a group of usage.
#[derive(Clone, Debug, PartialEq)]
pub struct CostLine {
    /// Broker id, or the period's start (RFC 3339).
    pub key: String,
    pub broker_name: Option<String>,
    pub instance_hours: f64,
    pub storage_gb_hours: f64,
    pub cost: f64,
}

impl From<UsageSum> for CostLine {
    fn from(s: UsageSum) -> Self {
        Self {
            key: s.key,
            broker_name: s.name,
            instance_hours: s.instance_hours,
            storage_gb_hours: s.storage_gb_hours,
            cost: s.instance_cost + s.storage_cost,
        }
    }
}

/// The account's cost in `[start, end)`.
#[derive(Clone, Debug)]
pub struct CostReport {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub total: f64,
    pub by_broker: Vec<CostLine>,
    pub by_period: Vec<CostLine>,
}

/// Period a cost report is broken down by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    Daily,
    Monthly,
}

impl Granularity {
    /// `DAILY` (default) or `MONTHLY`.
    pub fn parse(s: Option<&str>) -> Result<Self, Error> {
        match s.map(str::to_ascii_uppercase).as_deref() {
            None | Some("DAILY") => Ok(Self::Daily),
            Some("MONTHLY") => Ok(Self::Monthly),
            Some(_) => Err(Error::bad_request(
                "granularity",
                "The granularity must be DAILY or MONTHLY.",
            )),
        }
    }
}

/// Parses a report bound: `YYYY-MM-DD` (midnight UTC) or RFC 3339.
pub fn parse_bound(s: &str, attribute: &str) -> Result<DateTime<Utc>, Error> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Error::bad_request(
                attribute,
                format!(
                    "The {attribute} must be a date (YYYY-MM-DD) or an RFC 3339 time; got {s:?}."
                ),
            )
        })
}

/// The first instant of `now`'s month (UTC).
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::Datelike;
    chrono::NaiveDate::from_ymd_opt(now.year(), now.month(), 1)
        .unwrap_or(now.date_naive())
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

/// The caller's cost in `[start, end)` (default: this month to date).
pub async fn cost_report(
    ctx: &AppContext,
    caller: &Caller,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    granularity: Granularity,
) -> Result<CostReport, Error> {
    let now = Utc::now();
    let start = start.unwrap_or_else(|| month_start(now));
    let end = end.unwrap_or(now);
    if end <= start {
        return Err(Error::bad_request(
            "end",
            "The end must be after the start.",
        ));
    }
    let account = caller.scope.account.as_str();
    let by_broker = ctx
        .store
        .usage_sum(account, None, start, end, UsageGroup::Broker)
        .await?;
    let group = match granularity {
        Granularity::Daily => UsageGroup::Day,
        Granularity::Monthly => UsageGroup::Month,
    };
    let by_period = ctx
        .store
        .usage_sum(account, None, start, end, group)
        .await?;
    let by_broker: Vec<CostLine> = by_broker.into_iter().map(CostLine::from).collect();
    Ok(CostReport {
        start,
        end,
        total: by_broker.iter().map(|l| l.cost).sum(),
        by_broker,
        by_period: by_period.into_iter().map(CostLine::from).collect(),
    })
}

/// A broker's cost this month to date (also for a deleted broker of the caller's).
pub async fn broker_cost(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, CostLine), Error> {
    let id = crate::domain::BrokerId::parse(broker_id)?;
    let account = caller.scope.account.as_str();
    let broker = ctx
        .store
        .metered_broker_fetch(account, id.as_str())
        .await?
        .ok_or_else(|| Error::broker_not_found(id.as_str()))?;
    let start = month_start(now);
    let line = ctx
        .store
        .usage_sum(
            account,
            Some(&broker.broker_id),
            start,
            now + TimeDelta::hours(1),
            UsageGroup::Broker,
        )
        .await?
        .into_iter()
        .next()
        .map(CostLine::from)
        .unwrap_or(CostLine {
            key: broker.broker_id.clone(),
            broker_name: Some(broker.name.clone()),
            instance_hours: 0.0,
            storage_gb_hours: 0.0,
            cost: 0.0,
        });
    Ok((start, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn broker(mode: &str, created: &str, deleted: Option<&str>) -> MeteredBrokerRow {
        MeteredBrokerRow {
            broker_id: "b-1".into(),
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            name: "n".into(),
            engine_type: "ACTIVEMQ".into(),
            deployment_mode: mode.into(),
            host_instance_type: "mq.m5.large".into(),
            storage_type: "EFS".into(),
            created_at: t(created),
            deleted_at: deleted.map(t),
            metered_until: None,
        }
    }

    #[test]
    fn hours_across_a_boundary_are_split_by_clock_hour() {
        let b = broker("SINGLE_INSTANCE", "2030-01-01T10:30:00Z", None);
        let (records, until) = usage_since(&b, &PriceList::default(), t("2030-01-01T12:15:00Z"));
        let hours: Vec<f64> = records.iter().map(|r| r.instance_hours).collect();
        assert_eq!(hours, vec![0.5, 1.0, 0.25]);
        assert_eq!(until, Some(t("2030-01-01T12:00:00Z")));
        assert!((records[1].instance_cost - 0.276).abs() < 1e-12);
        assert!((records[1].storage_cost - 200.0 * 0.30 / 730.0).abs() < 1e-12);
    }

    #[test]
    fn a_pair_pays_two_nodes_and_a_deleted_broker_stops() {
        let mut b = broker(
            "ACTIVE_STANDBY_MULTI_AZ",
            "2030-01-01T10:00:00Z",
            Some("2030-01-01T11:20:00Z"),
        );
        b.metered_until = Some(t("2030-01-01T11:00:00Z"));
        let (records, until) = usage_since(&b, &PriceList::default(), t("2030-01-01T15:00:00Z"));
        assert_eq!(records.len(), 1);
        assert!((records[0].instance_hours - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(until, Some(t("2030-01-01T12:00:00Z")));
        assert_eq!(node_count("CLUSTER_MULTI_AZ"), 3);
        assert_eq!(storage_gb("CLUSTER_MULTI_AZ", "mq.m7g.large"), 45.0);
        assert_eq!(storage_gb("SINGLE_INSTANCE", "mq.t3.micro"), 20.0);
    }

    #[test]
    fn bounds_and_granularity_parse_or_are_400() {
        assert_eq!(
            parse_bound("2030-01-02", "start").unwrap(),
            t("2030-01-02T00:00:00Z")
        );
        assert_eq!(
            parse_bound("2030-01-02T03:00:00+01:00", "start").unwrap(),
            t("2030-01-02T02:00:00Z")
        );
        assert_eq!(
            parse_bound("yesterday", "start").unwrap_err().attribute(),
            Some("start")
        );
        assert_eq!(
            Granularity::parse(Some("monthly")).unwrap(),
            Granularity::Monthly
        );
        assert!(Granularity::parse(Some("hourly")).is_err());
        assert_eq!(
            month_start(t("2030-03-17T05:00:00Z")),
            t("2030-03-01T00:00:00Z")
        );
    }

    #[test]
    fn a_price_file_replaces_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.json");
        std::fs::write(
            &path,
            r#"{"instanceHour":{"mq.m5.large":1.5},"storageGbMonth":{}}"#,
        )
        .unwrap();
        let list = PriceList::load(Some(&path)).unwrap();
        assert_eq!(list.instance_hour["mq.m5.large"], 1.5);
        std::fs::write(
            &path,
            r#"{"instanceHour":{"mq.m5.large":-1},"storageGbMonth":{}}"#,
        )
        .unwrap();
        assert!(PriceList::load(Some(&path)).is_err());
        assert_eq!(PriceList::load(None).unwrap(), PriceList::default());
    }
}
