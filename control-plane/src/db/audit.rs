//! Audit events: appended, listed newest first.

use chrono::{DateTime, Utc};

use super::DataStore;
use crate::error::{Error, ResultExt};

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub account_id: String,
    pub principal_kind: String,
    pub principal_id: String,
    pub principal_name: Option<String>,
    pub operation: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub source_address: Option<String>,
    pub status: i32,
    pub error_code: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEventRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub account_id: String,
    pub principal_kind: String,
    pub principal_id: String,
    pub principal_name: Option<String>,
    pub operation: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub source_address: Option<String>,
    pub status: i32,
    pub error_code: Option<String>,
}

/// Which events a list returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exactly this resource, or a resource under it (`b-1` also finds `b-1/alice`).
    pub resource_id: Option<String>,
    /// Principal id (access key id, console user id) or console username.
    pub principal: Option<String>,
    /// Only events older than this sequence number (the page before).
    pub before_seq: Option<i64>,
}

impl DataStore {
    pub async fn audit_insert(&self, e: &NewAuditEvent) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO audit_events (account_id, principal_kind, principal_id, principal_name,
                 operation, resource_type, resource_id, source_address, status, error_code)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&e.account_id)
        .bind(&e.principal_kind)
        .bind(&e.principal_id)
        .bind(&e.principal_name)
        .bind(&e.operation)
        .bind(&e.resource_type)
        .bind(&e.resource_id)
        .bind(&e.source_address)
        .bind(e.status)
        .bind(&e.error_code)
        .execute(&self.pool)
        .await
        .context_internal("recording audit event")?;
        Ok(())
    }

    /// The account's events matching `filter`, newest first, at most `limit`.
    pub async fn audit_list(
        &self,
        account_id: &str,
        filter: &AuditFilter,
        limit: i64,
    ) -> Result<Vec<AuditEventRow>, Error> {
        sqlx::query_as(
            "SELECT seq, at, account_id, principal_kind, principal_id, principal_name, operation,
                    resource_type, resource_id, source_address, status, error_code
             FROM audit_events
             WHERE account_id = $1
               AND ($2::text IS NULL OR resource_id = $2 OR starts_with(resource_id, $2 || '/'))
               AND ($3::text IS NULL OR principal_id = $3 OR principal_name = $3)
               AND ($4::bigint IS NULL OR seq < $4)
             ORDER BY seq DESC LIMIT $5",
        )
        .bind(account_id)
        .bind(&filter.resource_id)
        .bind(&filter.principal)
        .bind(filter.before_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context_internal("listing audit events")
    }
}
