//! Account and access-key statements.

use chrono::{DateTime, Utc};

use super::DataStore;
use crate::error::{Error, ResultExt};

/// An access key as SigV4 verification needs it (the secret still sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessKeyRow {
    pub access_key_id: String,
    pub account_id: String,
    pub secret_enc: Vec<u8>,
    pub role: String,
    pub active: bool,
}

/// An access key as lists show it: never the secret.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessKeyInfoRow {
    pub access_key_id: String,
    pub account_id: String,
    pub description: String,
    pub role: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl DataStore {
    /// Creates the account if it does not exist.
    pub async fn account_ensure(&self, id: &str, name: &str) -> Result<(), Error> {
        sqlx::query("INSERT INTO accounts (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(id)
            .bind(name)
            .execute(&self.pool)
            .await
            .context_internal("creating account")?;
        Ok(())
    }

    pub async fn access_key_create(
        &self,
        access_key_id: &str,
        account_id: &str,
        secret_enc: &[u8],
        description: &str,
        role: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, account_id, secret_enc, description, role) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(access_key_id)
        .bind(account_id)
        .bind(secret_enc)
        .bind(description)
        .bind(role)
        .execute(&self.pool)
        .await
        .context_internal("creating access key")?;
        Ok(())
    }

    /// The key as SigV4 verification needs it: from the key cache when it holds it
    /// ([`super::cache`] keeps it exact), else from the table (and then cached).
    pub async fn access_key_fetch(
        &self,
        access_key_id: &str,
    ) -> Result<Option<AccessKeyRow>, Error> {
        let keys = &self.caches().keys;
        if let Some(row) = keys.get(access_key_id) {
            return Ok(Some(row));
        }
        let generation = keys.generation();
        let row: Option<AccessKeyRow> = sqlx::query_as(
            "SELECT access_key_id, account_id, secret_enc, role, active FROM access_keys WHERE access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await
        .context_internal("fetching access key")?;
        if let Some(row) = &row {
            keys.put(generation, access_key_id, row.clone());
        }
        Ok(row)
    }

    pub async fn access_key_count(&self) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT count(*) FROM access_keys")
            .fetch_one(&self.pool)
            .await
            .context_internal("counting access keys")
    }

    /// The account's keys, oldest first.
    pub async fn access_key_list(&self, account_id: &str) -> Result<Vec<AccessKeyInfoRow>, Error> {
        sqlx::query_as(
            "SELECT access_key_id, account_id, description, role, active, created_at, last_used_at
             FROM access_keys WHERE account_id = $1 ORDER BY created_at, access_key_id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .context_internal("listing access keys")
    }

    /// One of the account's keys.
    pub async fn access_key_info(
        &self,
        account_id: &str,
        access_key_id: &str,
    ) -> Result<Option<AccessKeyInfoRow>, Error> {
        sqlx::query_as(
            "SELECT access_key_id, account_id, description, role, active, created_at, last_used_at
             FROM access_keys WHERE account_id = $1 AND access_key_id = $2",
        )
        .bind(account_id)
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await
        .context_internal("fetching access key")
    }

    /// Activates or deactivates one of the account's keys; false when there is none.
    pub async fn access_key_set_active(
        &self,
        account_id: &str,
        access_key_id: &str,
        active: bool,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE access_keys SET active = $3 WHERE account_id = $1 AND access_key_id = $2",
        )
        .bind(account_id)
        .bind(access_key_id)
        .bind(active)
        .execute(&self.pool)
        .await
        .context_internal("updating access key")?;
        // The trigger's notification follows; this caller sees the change at once.
        self.caches().keys.invalidate_all();
        Ok(done.rows_affected() == 1)
    }

    /// Deletes one of the account's keys; false when there is none.
    pub async fn access_key_delete(
        &self,
        account_id: &str,
        access_key_id: &str,
    ) -> Result<bool, Error> {
        let done =
            sqlx::query("DELETE FROM access_keys WHERE account_id = $1 AND access_key_id = $2")
                .bind(account_id)
                .bind(access_key_id)
                .execute(&self.pool)
                .await
                .context_internal("deleting access key")?;
        self.caches().keys.invalidate_all();
        Ok(done.rows_affected() == 1)
    }

    /// Records that the key signed a request; written at most once a minute per key
    /// (and asked of the database at most that often by this process).
    pub async fn access_key_touch(&self, access_key_id: &str) -> Result<(), Error> {
        if !self.caches().touches.due(access_key_id) {
            return Ok(());
        }
        sqlx::query(
            "UPDATE access_keys SET last_used_at = now() WHERE access_key_id = $1
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(access_key_id)
        .execute(&self.pool)
        .await
        .context_internal("recording access key use")?;
        Ok(())
    }
}
