//! Metering rows: the brokers to bill (`metered_brokers`, kept by triggers on `brokers`,
//! migration 0012) and their hourly usage records; sums of usage for the cost API.

use chrono::{DateTime, Utc};

use super::DataStore;
use crate::error::{Error, ResultExt};

/// A broker's billable life.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MeteredBrokerRow {
    pub broker_id: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub engine_type: String,
    pub deployment_mode: String,
    pub host_instance_type: String,
    pub storage_type: String,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub metered_until: Option<DateTime<Utc>>,
}

/// One broker's usage in one clock hour.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub hour_start: DateTime<Utc>,
    pub host_instance_type: String,
    pub node_count: i32,
    pub instance_hours: f64,
    pub storage_gb_hours: f64,
    pub instance_cost: f64,
    pub storage_cost: f64,
}

/// Summed usage of a group (a broker, a day, a month).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsageSum {
    /// The broker id, or the period start as RFC 3339.
    pub key: String,
    pub name: Option<String>,
    pub instance_hours: f64,
    pub storage_gb_hours: f64,
    pub instance_cost: f64,
    pub storage_cost: f64,
}

/// How usage sums are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Broker,
    Day,
    Month,
}

impl DataStore {
    /// Brokers with hours still to meter: alive, or deleted after the last complete hour
    /// metered.
    pub async fn metered_pending(&self) -> Result<Vec<MeteredBrokerRow>, Error> {
        sqlx::query_as(
            "SELECT * FROM metered_brokers
             WHERE deleted_at IS NULL OR metered_until IS NULL OR metered_until < deleted_at
             ORDER BY broker_id",
        )
        .fetch_all(self.pool())
        .await
        .context_internal("listing brokers to meter")
    }

    /// The account's metered broker (alive or deleted).
    pub async fn metered_broker_fetch(
        &self,
        account: &str,
        broker_id: &str,
    ) -> Result<Option<MeteredBrokerRow>, Error> {
        sqlx::query_as("SELECT * FROM metered_brokers WHERE account_id = $1 AND broker_id = $2")
            .bind(account)
            .bind(broker_id)
            .fetch_optional(self.pool())
            .await
            .context_internal("reading a metered broker")
    }

    /// Writes (or rewrites) `records` of the broker and moves its `metered_until`, in one
    /// transaction.
    pub async fn usage_write(
        &self,
        broker: &MeteredBrokerRow,
        records: &[UsageRecord],
        metered_until: Option<DateTime<Utc>>,
        computed_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = self.pool().begin().await.context_internal("metering")?;
        for r in records {
            sqlx::query(
                "INSERT INTO usage_records (broker_id, hour_start, account_id, host_instance_type,
                     node_count, instance_hours, storage_gb_hours, instance_cost, storage_cost, computed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (broker_id, hour_start) DO UPDATE SET
                     host_instance_type = EXCLUDED.host_instance_type,
                     node_count = EXCLUDED.node_count,
                     instance_hours = EXCLUDED.instance_hours,
                     storage_gb_hours = EXCLUDED.storage_gb_hours,
                     instance_cost = EXCLUDED.instance_cost,
                     storage_cost = EXCLUDED.storage_cost,
                     computed_at = EXCLUDED.computed_at",
            )
            .bind(&broker.broker_id)
            .bind(r.hour_start)
            .bind(&broker.account_id)
            .bind(&r.host_instance_type)
            .bind(r.node_count)
            .bind(r.instance_hours)
            .bind(r.storage_gb_hours)
            .bind(r.instance_cost)
            .bind(r.storage_cost)
            .bind(computed_at)
            .execute(&mut *tx)
            .await
            .context_internal("writing a usage record")?;
        }
        sqlx::query(
            "UPDATE metered_brokers SET metered_until = GREATEST(metered_until, $2)
             WHERE broker_id = $1",
        )
        .bind(&broker.broker_id)
        .bind(metered_until)
        .execute(&mut *tx)
        .await
        .context_internal("moving metered_until")?;
        tx.commit().await.context_internal("metering")
    }

    /// The account's usage with `hour_start` in `[start, end)`, grouped; `broker` limits
    /// it to one broker.
    pub async fn usage_sum(
        &self,
        account: &str,
        broker: Option<&str>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        group: UsageGroup,
    ) -> Result<Vec<UsageSum>, Error> {
        let (key, name) = match group {
            UsageGroup::Broker => ("u.broker_id", "MIN(m.name)"),
            UsageGroup::Day => (
                "to_char(date_trunc('day', u.hour_start AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                "NULL::text",
            ),
            UsageGroup::Month => (
                "to_char(date_trunc('month', u.hour_start AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                "NULL::text",
            ),
        };
        let sql = format!(
            "SELECT {key} AS key, {name} AS name,
                 SUM(u.instance_hours)::float8 AS instance_hours,
                 SUM(u.storage_gb_hours)::float8 AS storage_gb_hours,
                 SUM(u.instance_cost)::float8 AS instance_cost,
                 SUM(u.storage_cost)::float8 AS storage_cost
             FROM usage_records u JOIN metered_brokers m ON m.broker_id = u.broker_id
             WHERE u.account_id = $1 AND u.hour_start >= $2 AND u.hour_start < $3
               AND ($4::text IS NULL OR u.broker_id = $4)
             GROUP BY 1 ORDER BY 1"
        );
        sqlx::query_as(&sql)
            .bind(account)
            .bind(start)
            .bind(end)
            .bind(broker)
            .fetch_all(self.pool())
            .await
            .context_internal("summing usage")
    }
}
