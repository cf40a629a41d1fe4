//! Account and access-key statements.

use super::DataStore;
use crate::error::{Error, ResultExt};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessKeyRow {
    pub access_key_id: String,
    pub account_id: String,
    pub secret_enc: Vec<u8>,
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
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, account_id, secret_enc, description) VALUES ($1, $2, $3, $4)",
        )
        .bind(access_key_id)
        .bind(account_id)
        .bind(secret_enc)
        .bind(description)
        .execute(&self.pool)
        .await
        .context_internal("creating access key")?;
        Ok(())
    }

    pub async fn access_key_fetch(
        &self,
        access_key_id: &str,
    ) -> Result<Option<AccessKeyRow>, Error> {
        sqlx::query_as("SELECT access_key_id, account_id, secret_enc FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await
            .context_internal("fetching access key")
    }

    pub async fn access_key_count(&self) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT count(*) FROM access_keys")
            .fetch_one(&self.pool)
            .await
            .context_internal("counting access keys")
    }
}
