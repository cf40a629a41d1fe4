//! Alarms, their history, webhooks and the webhook delivery queue (migration 0012); the
//! metric history alarms read (`metric_series`/`metric_points`/`metric_reports`, written
//! by the collector, only read here).

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::DataStore;
use crate::error::{Error, ResultExt};

/// An alarm as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlarmRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub broker_id: String,
    pub builtin: Option<String>,
    pub metric_name: String,
    pub dimensions: Json<serde_json::Value>,
    pub statistic: String,
    pub comparison: String,
    pub threshold: f64,
    pub period_secs: i32,
    pub evaluation_periods: i32,
    pub webhook_ids: Json<serde_json::Value>,
    pub state: String,
    pub state_reason: String,
    pub state_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A transition as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlarmHistoryRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub old_state: String,
    pub new_state: String,
    pub reason: String,
}

/// A webhook as stored (the secret sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: String,
    pub account_id: String,
    pub url: String,
    pub description: String,
    pub all_alarms: bool,
    pub secret_enc: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// A notification to enqueue for one hook.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: uuid::Uuid,
    pub webhook_id: String,
    pub event: String,
    pub body: String,
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: uuid::Uuid,
    pub webhook_id: String,
    pub event: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The notification sent (its JSON names the alarm).
    pub body: String,
}

/// A delivery claimed for sending, with its hook's URL and sealed secret.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: uuid::Uuid,
    pub webhook_id: String,
    pub body: String,
    pub attempts: i32,
    pub url: String,
    pub secret_enc: Vec<u8>,
}

/// A serving broker and when its metrics were last collected.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CollectionAge {
    pub broker_id: String,
    pub account_id: String,
    pub broker_name: String,
    pub created_at: DateTime<Utc>,
    pub collected_at: Option<DateTime<Utc>>,
}

/// An alarm's move from one state to another.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub id: &'a str,
    pub account: &'a str,
    pub old: &'a str,
    pub new: &'a str,
    pub reason: &'a str,
    pub at: DateTime<Utc>,
}

/// How a send attempt ended.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Delivered {
        status_code: i32,
    },
    Retry {
        status_code: Option<i32>,
        error: String,
        at: DateTime<Utc>,
    },
    GaveUp {
        status_code: Option<i32>,
        error: String,
    },
}

impl DataStore {
    /// Inserts an alarm; a duplicate name in the account is a 409.
    pub async fn alarm_insert(&self, a: &AlarmRow) -> Result<(), Error> {
        let res = sqlx::query(
            "INSERT INTO alarms (id, account_id, name, broker_id, builtin, metric_name, dimensions,
                 statistic, comparison, threshold, period_secs, evaluation_periods, webhook_ids,
                 state, state_reason, state_changed_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (broker_id, builtin) WHERE builtin IS NOT NULL DO NOTHING",
        )
        .bind(&a.id)
        .bind(&a.account_id)
        .bind(&a.name)
        .bind(&a.broker_id)
        .bind(&a.builtin)
        .bind(&a.metric_name)
        .bind(&a.dimensions)
        .bind(&a.statistic)
        .bind(&a.comparison)
        .bind(a.threshold)
        .bind(a.period_secs)
        .bind(a.evaluation_periods)
        .bind(&a.webhook_ids)
        .bind(&a.state)
        .bind(&a.state_reason)
        .bind(a.state_changed_at)
        .bind(a.created_at)
        .execute(self.pool())
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if super::is_unique_violation(&e, "alarms_account_name_key") => {
                Err(Error::conflict(
                    "name",
                    format!("An alarm named {:?} already exists.", a.name),
                ))
            }
            Err(e) => Err(Error::internal("creating an alarm", e)),
        }
    }

    /// The account's alarms (every account's when `account` is `None`), oldest first.
    pub async fn alarm_list(&self, account: Option<&str>) -> Result<Vec<AlarmRow>, Error> {
        sqlx::query_as(
            "SELECT * FROM alarms WHERE ($1::text IS NULL OR account_id = $1)
             ORDER BY created_at, id",
        )
        .bind(account)
        .fetch_all(self.pool())
        .await
        .context_internal("listing alarms")
    }

    pub async fn alarm_fetch(&self, account: &str, id: &str) -> Result<Option<AlarmRow>, Error> {
        sqlx::query_as("SELECT * FROM alarms WHERE account_id = $1 AND id = $2")
            .bind(account)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .context_internal("reading an alarm")
    }

    /// Deletes a user-defined alarm (built-in ones stay); whether one was deleted.
    pub async fn alarm_delete(&self, account: &str, id: &str) -> Result<bool, Error> {
        let res =
            sqlx::query("DELETE FROM alarms WHERE account_id = $1 AND id = $2 AND builtin IS NULL")
                .bind(account)
                .bind(id)
                .execute(self.pool())
                .await
                .context_internal("deleting an alarm")?;
        Ok(res.rows_affected() == 1)
    }

    /// Moves the alarm from `old` to `new` (if it is still in `old`), records the
    /// transition and enqueues `deliveries`, in one transaction. Whether it moved.
    pub async fn alarm_transition(
        &self,
        t: &Transition<'_>,
        deliveries: &[NewDelivery],
    ) -> Result<bool, Error> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .context_internal("alarm transition")?;
        let moved = sqlx::query(
            "UPDATE alarms SET state = $3, state_reason = $4, state_changed_at = $5
             WHERE id = $1 AND state = $2",
        )
        .bind(t.id)
        .bind(t.old)
        .bind(t.new)
        .bind(t.reason)
        .bind(t.at)
        .execute(&mut *tx)
        .await
        .context_internal("alarm transition")?
        .rows_affected()
            == 1;
        if !moved {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO alarm_history (alarm_id, at, old_state, new_state, reason)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(t.id)
        .bind(t.at)
        .bind(t.old)
        .bind(t.new)
        .bind(t.reason)
        .execute(&mut *tx)
        .await
        .context_internal("recording an alarm transition")?;
        for d in deliveries {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, webhook_id, account_id, event, body)
                 SELECT $1, id, account_id, $3, $4 FROM webhooks WHERE id = $2 AND account_id = $5",
            )
            .bind(d.id)
            .bind(&d.webhook_id)
            .bind(&d.event)
            .bind(&d.body)
            .bind(t.account)
            .execute(&mut *tx)
            .await
            .context_internal("enqueueing a notification")?;
        }
        tx.commit().await.context_internal("alarm transition")?;
        Ok(true)
    }

    /// The alarm's transitions, newest first.
    pub async fn alarm_history(&self, id: &str) -> Result<Vec<AlarmHistoryRow>, Error> {
        sqlx::query_as(
            "SELECT seq, at, old_state, new_state, reason FROM alarm_history
             WHERE alarm_id = $1 ORDER BY seq DESC LIMIT 1000",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await
        .context_internal("listing alarm history")
    }

    /// Removes built-in alarms of brokers that no longer exist.
    pub async fn alarm_builtin_prune(&self) -> Result<(), Error> {
        sqlx::query(
            "DELETE FROM alarms a WHERE builtin IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM brokers b WHERE b.id = a.broker_id)",
        )
        .execute(self.pool())
        .await
        .context_internal("pruning built-in alarms")?;
        Ok(())
    }

    /// Every RUNNING broker with the newest collection time of any of its nodes.
    pub async fn metric_collection_ages(&self) -> Result<Vec<CollectionAge>, Error> {
        sqlx::query_as(
            "SELECT b.id AS broker_id, b.account_id, b.name AS broker_name, b.created_at,
                 (SELECT MAX(r.collected_at) FROM metric_reports r WHERE r.broker_id = b.id)
                     AS collected_at
             FROM brokers b WHERE b.state = 'RUNNING' ORDER BY b.id",
        )
        .fetch_all(self.pool())
        .await
        .context_internal("reading metric collection times")
    }

    /// Samples of the broker's metric whose series carry (at least) `dimensions`, with
    /// `from < ts <= to`.
    pub async fn metric_samples(
        &self,
        broker_id: &str,
        metric: &str,
        dimensions: &serde_json::Value,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, f64)>, Error> {
        sqlx::query_as(&format!(
            "SELECT p.ts, p.value FROM metric_points p
             JOIN metric_series s ON s.id = p.series_id
             WHERE s.broker_id = $1 AND s.name = $2 AND s.dimensions @> $3 AND {}
               AND p.ts > $4 AND p.ts <= $5",
            super::metrics::destination_rule("s.dimensions", "$3")
        ))
        .bind(broker_id)
        .bind(metric)
        .bind(Json(dimensions))
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await
        .context_internal("reading metric samples")
    }

    pub async fn webhook_insert(&self, w: &WebhookRow) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO webhooks (id, account_id, url, description, all_alarms, secret_enc, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&w.id)
        .bind(&w.account_id)
        .bind(&w.url)
        .bind(&w.description)
        .bind(w.all_alarms)
        .bind(&w.secret_enc)
        .bind(w.created_at)
        .execute(self.pool())
        .await
        .context_internal("creating a webhook")?;
        Ok(())
    }

    pub async fn webhook_list(&self, account: &str) -> Result<Vec<WebhookRow>, Error> {
        sqlx::query_as("SELECT * FROM webhooks WHERE account_id = $1 ORDER BY created_at, id")
            .bind(account)
            .fetch_all(self.pool())
            .await
            .context_internal("listing webhooks")
    }

    pub async fn webhook_fetch(
        &self,
        account: &str,
        id: &str,
    ) -> Result<Option<WebhookRow>, Error> {
        sqlx::query_as("SELECT * FROM webhooks WHERE account_id = $1 AND id = $2")
            .bind(account)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .context_internal("reading a webhook")
    }

    pub async fn webhook_delete(&self, account: &str, id: &str) -> Result<bool, Error> {
        let res = sqlx::query("DELETE FROM webhooks WHERE account_id = $1 AND id = $2")
            .bind(account)
            .bind(id)
            .execute(self.pool())
            .await
            .context_internal("deleting a webhook")?;
        Ok(res.rows_affected() == 1)
    }

    /// The hook's deliveries, newest first.
    pub async fn delivery_list(&self, webhook_id: &str) -> Result<Vec<DeliveryRow>, Error> {
        sqlx::query_as(
            "SELECT id, webhook_id, event, status, attempts, next_attempt_at, last_status_code,
                 last_error, created_at, finished_at, body
             FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id LIMIT 1000",
        )
        .bind(webhook_id)
        .fetch_all(self.pool())
        .await
        .context_internal("listing deliveries")
    }

    /// Claims up to `limit` due deliveries: counts the attempt and leases each row for
    /// `lease_ms` (it is not due again meanwhile). Concurrent workers skip locked rows.
    pub async fn delivery_claim(
        &self,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedDelivery>, Error> {
        sqlx::query_as(
            "WITH due AS (
                 SELECT id FROM webhook_deliveries
                 WHERE status = 'PENDING' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             UPDATE webhook_deliveries d
             SET attempts = d.attempts + 1,
                 next_attempt_at = now() + make_interval(secs => $2::float8 / 1000)
             FROM due, webhooks w
             WHERE d.id = due.id AND w.id = d.webhook_id
             RETURNING d.id, d.webhook_id, d.body, d.attempts, w.url, w.secret_enc",
        )
        .bind(limit)
        .bind(lease_ms)
        .fetch_all(self.pool())
        .await
        .context_internal("claiming deliveries")
    }

    /// Records how an attempt ended.
    pub async fn delivery_finish(
        &self,
        id: uuid::Uuid,
        outcome: &DeliveryOutcome,
    ) -> Result<(), Error> {
        let (status, code, error, next) = match outcome {
            DeliveryOutcome::Delivered { status_code } => {
                ("DELIVERED", Some(*status_code), None, None)
            }
            DeliveryOutcome::Retry {
                status_code,
                error,
                at,
            } => ("PENDING", *status_code, Some(error.as_str()), Some(*at)),
            DeliveryOutcome::GaveUp { status_code, error } => {
                ("FAILED", *status_code, Some(error.as_str()), None)
            }
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, last_status_code = $3, last_error = COALESCE($4, last_error),
                 next_attempt_at = COALESCE($5, next_attempt_at),
                 finished_at = CASE WHEN $2 = 'PENDING' THEN NULL ELSE now() END
             WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(code)
        .bind(error)
        .bind(next)
        .execute(self.pool())
        .await
        .context_internal("recording a delivery attempt")?;
        Ok(())
    }
}
