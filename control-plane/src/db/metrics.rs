//! Metric history: series, raw points, roll-ups and each node's newest report
//! (`migrations/0011_metrics.sql`).
//!
//! Writes are batched: a collected report is one series upsert for the series not yet
//! known (UNNEST arrays), then one transaction with a multi-row points insert (which also
//! moves each series' last value) and the report upsert. Roll-ups are recomputed from
//! their source rows with `INSERT … ON CONFLICT DO UPDATE`, so recomputing a bucket gives
//! the same row. Series rows are not tied to broker rows: history outlives the broker.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::DataStore;
use crate::error::{Error, ResultExt};

/// Dimensions of a series (beyond the implicit `Broker`), sorted by name.
pub type Dimensions = BTreeMap<String, String>;

/// Resolution of a stored statistic, in seconds (1-minute and 1-hour roll-ups).
pub const MINUTE: i32 = 60;
pub const HOUR: i32 = 3600;

/// A series to make sure of: name, dimensions, unit (CloudWatch spelling).
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    pub name: String,
    pub dimensions: Dimensions,
    pub unit: String,
}

/// A stored series as the series list shows it.
#[derive(Debug, Clone)]
pub struct SeriesRow {
    pub id: i64,
    pub name: String,
    pub dimensions: Dimensions,
    pub unit: String,
    pub last_value: Option<f64>,
    pub last_ts: Option<DateTime<Utc>>,
}

/// Where datapoints are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Raw,
    Rollup(i32),
}

impl Source {
    /// The table, the statistics of its rows `p` (count, sum, minimum, maximum) and the
    /// condition keeping one resolution (its value in parameter `param`).
    fn sql(self, param: &str) -> (&'static str, &'static str, String) {
        match self {
            Self::Raw => (
                "metric_points",
                "count(*), sum(p.value), min(p.value), max(p.value)",
                String::new(),
            ),
            Self::Rollup(_) => (
                "metric_rollups",
                "sum(p.sample_count)::bigint, sum(p.sum), min(p.minimum), max(p.maximum)",
                format!("AND p.resolution_secs = {param}"),
            ),
        }
    }
}

/// One bucket of a datapoints query: its start and the statistics of its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub ts: DateTime<Utc>,
    pub sample_count: i64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
}

/// Rows removed by one retention pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub points: u64,
    pub minute_rollups: u64,
    pub hour_rollups: u64,
    pub series: u64,
}

/// A node's newest stored report.
#[derive(Debug, Clone)]
pub struct StoredReport {
    pub collected_at: DateTime<Utc>,
    pub report: serde_json::Value,
}

fn parse_dimensions(v: serde_json::Value, series: i64) -> Result<Dimensions, Error> {
    serde_json::from_value(v).map_err(|e| {
        Error::internal(
            format!("stored dimensions of metric series {series}"),
            anyhow::Error::from(e),
        )
    })
}

fn dimensions_json(d: &Dimensions) -> String {
    serde_json::to_string(d).unwrap_or_else(|_| "{}".into())
}

impl DataStore {
    /// The ids of `series` of `broker_id` (created when missing), keyed as given.
    pub async fn metric_series_ensure(
        &self,
        account_id: &str,
        broker_id: &str,
        series: &[SeriesSpec],
    ) -> Result<Vec<(i64, String, Dimensions)>, Error> {
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        let dims: Vec<String> = series
            .iter()
            .map(|s| dimensions_json(&s.dimensions))
            .collect();
        let units: Vec<&str> = series.iter().map(|s| s.unit.as_str()).collect();
        // DO UPDATE (not NOTHING) so existing rows are returned too.
        let rows: Vec<(i64, String, serde_json::Value)> = sqlx::query_as(
            "INSERT INTO metric_series (account_id, broker_id, name, dimensions, unit) \
             SELECT $1, $2, n, d::jsonb, u FROM UNNEST($3::text[], $4::text[], $5::text[]) AS x(n, d, u) \
             ON CONFLICT (broker_id, name, dimensions) DO UPDATE SET unit = EXCLUDED.unit \
             RETURNING id, name, dimensions",
        )
        .bind(account_id)
        .bind(broker_id)
        .bind(&names)
        .bind(&dims)
        .bind(&units)
        .fetch_all(self.pool())
        .await
        .context_internal("upserting metric series")?;
        rows.into_iter()
            .map(|(id, name, d)| Ok((id, name, parse_dimensions(d, id)?)))
            .collect()
    }

    /// Stores one collected report: its points (one per series id, at `ts`), each
    /// series' last value, and the report as the node's newest.
    #[allow(clippy::too_many_arguments)]
    pub async fn metric_report_store(
        &self,
        account_id: &str,
        broker_id: &str,
        node: u32,
        ts: DateTime<Utc>,
        series_ids: &[i64],
        values: &[f64],
        report: &serde_json::Value,
    ) -> Result<(), Error> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .context_internal("storing a metric report")?;
        if !series_ids.is_empty() {
            sqlx::query(
                "WITH p AS ( \
                   INSERT INTO metric_points (series_id, ts, value) \
                   SELECT s, $2, v FROM UNNEST($1::bigint[], $3::float8[]) AS x(s, v) \
                   ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value \
                   RETURNING series_id, value) \
                 UPDATE metric_series m SET last_value = p.value, last_ts = $2 \
                 FROM p WHERE m.id = p.series_id AND (m.last_ts IS NULL OR m.last_ts <= $2)",
            )
            .bind(series_ids)
            .bind(ts)
            .bind(values)
            .execute(&mut *tx)
            .await
            .context_internal("storing metric points")?;
        }
        sqlx::query(
            "INSERT INTO metric_reports (broker_id, node, account_id, collected_at, report) \
             VALUES ($1, $2, $3, now(), $4) \
             ON CONFLICT (broker_id, node) DO UPDATE \
             SET account_id = EXCLUDED.account_id, collected_at = EXCLUDED.collected_at, \
                 report = EXCLUDED.report",
        )
        .bind(broker_id)
        .bind(node as i32)
        .bind(account_id)
        .bind(report)
        .execute(&mut *tx)
        .await
        .context_internal("storing the metric report")?;
        tx.commit()
            .await
            .context_internal("storing a metric report")
    }

    /// Whether `account_id` has history of `broker_id` (also of a deleted broker).
    pub async fn metric_series_exist(
        &self,
        account_id: &str,
        broker_id: &str,
    ) -> Result<bool, Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM metric_series WHERE broker_id = $1 AND account_id = $2)",
        )
        .bind(broker_id)
        .bind(account_id)
        .fetch_one(self.pool())
        .await
        .context_internal("looking up metric history")
    }

    /// Every series of a broker that `account_id` owns, by name and dimensions.
    pub async fn metric_series_list(
        &self,
        account_id: &str,
        broker_id: &str,
    ) -> Result<Vec<SeriesRow>, Error> {
        type Row = (
            i64,
            String,
            serde_json::Value,
            String,
            Option<f64>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, dimensions, unit, last_value, last_ts FROM metric_series \
             WHERE broker_id = $1 AND account_id = $2 ORDER BY name, dimensions::text",
        )
        .bind(broker_id)
        .bind(account_id)
        .fetch_all(self.pool())
        .await
        .context_internal("listing metric series")?;
        rows.into_iter()
            .map(|(id, name, d, unit, last_value, last_ts)| {
                Ok(SeriesRow {
                    id,
                    name,
                    dimensions: parse_dimensions(d, id)?,
                    unit,
                    last_value,
                    last_ts,
                })
            })
            .collect()
    }

    /// The statistics of `name` of a broker in `[start, end)` by buckets of
    /// `period_secs` from `start`, over every series whose dimensions contain `filter`
    /// (several nodes or queues are combined), read from `source`. Also the unit of the
    /// first matching series.
    #[allow(clippy::too_many_arguments)]
    pub async fn metric_buckets(
        &self,
        account_id: &str,
        broker_id: &str,
        name: &str,
        filter: &Dimensions,
        source: Source,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        period_secs: i64,
    ) -> Result<Vec<Bucket>, Error> {
        let (table, stats, only) = source.sql("$8");
        let resolution = match source {
            Source::Raw => 0,
            Source::Rollup(r) => r,
        };
        let sql = format!(
            "SELECT date_bin(make_interval(secs => $7), p.ts, $5) AS b, {stats} \
             FROM metric_series s JOIN {table} p ON p.series_id = s.id \
             WHERE s.broker_id = $1 AND s.account_id = $2 AND s.name = $3 AND s.dimensions @> $4::jsonb \
               AND {destinations} AND p.ts >= $5 AND p.ts < $6 {only} \
             GROUP BY b ORDER BY b",
            destinations = destination_rule("s.dimensions", "$4")
        );
        let rows: Vec<(DateTime<Utc>, i64, f64, f64, f64)> = sqlx::query_as(&sql)
            .bind(broker_id)
            .bind(account_id)
            .bind(name)
            .bind(dimensions_json(filter))
            .bind(start)
            .bind(end)
            .bind(period_secs as f64)
            .bind(resolution)
            .fetch_all(self.pool())
            .await
            .context_internal("reading metric datapoints")?;
        Ok(rows
            .into_iter()
            .map(|(ts, sample_count, sum, minimum, maximum)| Bucket {
                ts,
                sample_count,
                sum,
                minimum,
                maximum,
            })
            .collect())
    }

    /// The unit of the first series of `name` of a broker whose dimensions contain
    /// `filter`, if there is one.
    pub async fn metric_unit(
        &self,
        account_id: &str,
        broker_id: &str,
        name: &str,
        filter: &Dimensions,
    ) -> Result<Option<String>, Error> {
        sqlx::query_scalar(&format!(
            "SELECT unit FROM metric_series WHERE broker_id = $1 AND account_id = $2 \
             AND name = $3 AND dimensions @> $4::jsonb AND {} ORDER BY id LIMIT 1",
            destination_rule("dimensions", "$4")
        ))
        .bind(broker_id)
        .bind(account_id)
        .bind(name)
        .bind(dimensions_json(filter))
        .fetch_optional(self.pool())
        .await
        .context_internal("reading a metric's unit")
    }

    /// The oldest raw point (where a first roll-up pass starts).
    pub async fn metric_points_oldest(&self) -> Result<Option<DateTime<Utc>>, Error> {
        sqlx::query_scalar("SELECT min(ts) FROM metric_points")
            .fetch_one(self.pool())
            .await
            .context_internal("reading the oldest metric point")
    }

    /// Recomputes the roll-ups of `resolution` (1 minute: from raw points, 1 hour: from
    /// the 1-minute roll-ups) of the buckets starting in `[from, to)`. Returns the rows
    /// written.
    pub async fn metric_rollup(
        &self,
        resolution: i32,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let source = if resolution == MINUTE {
            Source::Raw
        } else {
            Source::Rollup(MINUTE)
        };
        let (table, stats, only) = source.sql("$4");
        let done = sqlx::query(&format!(
            "INSERT INTO metric_rollups (series_id, resolution_secs, ts, sample_count, sum, minimum, maximum) \
             SELECT p.series_id, $3, date_bin(make_interval(secs => $3::float8), p.ts, TIMESTAMPTZ 'epoch') AS b, {stats} \
             FROM {table} p WHERE p.ts >= $1 AND p.ts < $2 {only} GROUP BY p.series_id, b \
             ON CONFLICT (series_id, resolution_secs, ts) DO UPDATE \
             SET sample_count = EXCLUDED.sample_count, sum = EXCLUDED.sum, \
                 minimum = EXCLUDED.minimum, maximum = EXCLUDED.maximum"
        ))
        .bind(from)
        .bind(to)
        .bind(resolution)
        .bind(MINUTE)
        .execute(self.pool())
        .await
        .context_internal("rolling metric history up")?;
        Ok(done.rows_affected())
    }

    /// Deletes raw points before `raw`, 1-minute roll-ups before `minute`, 1-hour
    /// roll-ups before `hour`, reports collected before `raw`, then the series with
    /// nothing left.
    pub async fn metric_retention(
        &self,
        raw: DateTime<Utc>,
        minute: DateTime<Utc>,
        hour: DateTime<Utc>,
    ) -> Result<Removed, Error> {
        let ctx = "applying metric retention";
        let points = sqlx::query("DELETE FROM metric_points WHERE ts < $1")
            .bind(raw)
            .execute(self.pool())
            .await
            .context_internal(ctx)?
            .rows_affected();
        let mut rollups = [0u64; 2];
        for (i, (resolution, before)) in [(MINUTE, minute), (HOUR, hour)].into_iter().enumerate() {
            rollups[i] =
                sqlx::query("DELETE FROM metric_rollups WHERE resolution_secs = $1 AND ts < $2")
                    .bind(resolution)
                    .bind(before)
                    .execute(self.pool())
                    .await
                    .context_internal(ctx)?
                    .rows_affected();
        }
        sqlx::query("DELETE FROM metric_reports WHERE collected_at < $1")
            .bind(raw)
            .execute(self.pool())
            .await
            .context_internal(ctx)?;
        // A series created in this very moment has its first point in the same
        // transaction, so "no points, no roll-ups" means nothing is left.
        let series = sqlx::query(
            "DELETE FROM metric_series s WHERE created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM metric_points p WHERE p.series_id = s.id) \
             AND NOT EXISTS (SELECT 1 FROM metric_rollups r WHERE r.series_id = s.id)",
        )
        .bind(raw)
        .execute(self.pool())
        .await
        .context_internal(ctx)?
        .rows_affected();
        Ok(Removed {
            points,
            minute_rollups: rollups[0],
            hour_rollups: rollups[1],
            series,
        })
    }

    /// A node's newest report, if one is stored.
    pub async fn metric_report_latest(
        &self,
        broker_id: &str,
        node: u32,
    ) -> Result<Option<StoredReport>, Error> {
        let row: Option<(DateTime<Utc>, serde_json::Value)> = sqlx::query_as(
            "SELECT collected_at, report FROM metric_reports WHERE broker_id = $1 AND node = $2",
        )
        .bind(broker_id)
        .bind(node as i32)
        .fetch_optional(self.pool())
        .await
        .context_internal("reading a metric report")?;
        Ok(row.map(|(collected_at, report)| StoredReport {
            collected_at,
            report,
        }))
    }

    /// When the newest report of any node was collected.
    pub async fn metric_reports_newest(&self) -> Result<Option<DateTime<Utc>>, Error> {
        sqlx::query_scalar("SELECT max(collected_at) FROM metric_reports")
            .fetch_one(self.pool())
            .await
            .context_internal("reading the newest metric report")
    }

    /// Number of brokers in each state.
    pub async fn broker_count_by_state(&self) -> Result<Vec<(String, i64)>, Error> {
        sqlx::query_as("SELECT state, count(*) FROM brokers GROUP BY state ORDER BY state")
            .fetch_all(self.pool())
            .await
            .context_internal("counting brokers by state")
    }

    /// Name and engine type of each of `ids` that still exists.
    pub async fn broker_names(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, (String, String)>, Error> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, name, engine_type FROM brokers WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(self.pool())
                .await
                .context_internal("reading broker names")?;
        Ok(rows
            .into_iter()
            .map(|(id, name, engine)| (id, (name, engine)))
            .collect())
    }
}

/// SQL condition: a series of one queue or topic (a `Queue` or `Topic` dimension) matches
/// only a filter that names a queue or topic; without one, a query reads the broker-level
/// series (of every node, or of the `Node` it names), as CloudWatch keeps them apart.
pub(crate) fn destination_rule(series_dims: &str, filter: &str) -> String {
    format!(
        "(({filter}::jsonb ?| array['Queue','Topic']) OR NOT ({series_dims} ?| array['Queue','Topic']))"
    )
}
