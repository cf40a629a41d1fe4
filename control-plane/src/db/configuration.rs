//! Configuration and revision statements.

use chrono::{DateTime, Utc};

use super::{is_unique_violation, DataStore};
use crate::domain::Scope;
use crate::error::{Error, ResultExt};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConfigurationRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub description: String,
    pub engine_type: String,
    pub engine_version: String,
    pub authentication_strategy: String,
    pub tags: sqlx::types::Json<std::collections::BTreeMap<String, String>>,
    pub latest_revision: i32,
    pub created_at: DateTime<Utc>,
    pub region: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevisionRow {
    pub configuration_id: String,
    pub revision: i32,
    pub data: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, account_id, name, description, engine_type, engine_version, \
     authentication_strategy, tags, latest_revision, created_at, region";

/// Amazon MQ's quota of revisions per configuration.
pub const MAX_REVISIONS: i32 = 300;

impl DataStore {
    /// Inserts a configuration with its first revision.
    pub async fn configuration_create(
        &self,
        c: &ConfigurationRow,
        first_revision: &str,
    ) -> Result<(), Error> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context_internal("begin configuration_create")?;
        let res = sqlx::query(
            "INSERT INTO configurations (id, account_id, name, description, engine_type, engine_version, \
             authentication_strategy, tags, region) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&c.id)
        .bind(&c.account_id)
        .bind(&c.name)
        .bind(&c.description)
        .bind(&c.engine_type)
        .bind(&c.engine_version)
        .bind(&c.authentication_strategy)
        .bind(&c.tags)
        .bind(&c.region)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e, "configurations_account_region_name_key") => {
                return Err(Error::conflict(
                    "name",
                    format!(
                        "Configuration name {} already exists in this account.",
                        c.name
                    ),
                ));
            }
            Err(e) => return Err(Error::internal("inserting configuration", e)),
        }
        sqlx::query("INSERT INTO configuration_revisions (configuration_id, revision, data, description) VALUES ($1, 1, $2, $3)")
            .bind(&c.id)
            .bind(first_revision)
            .bind("Auto-generated default for the engine")
            .execute(&mut *tx)
            .await
            .context_internal("inserting first revision")?;
        tx.commit()
            .await
            .context_internal("commit configuration_create")?;
        Ok(())
    }

    pub async fn configuration_fetch(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<Option<ConfigurationRow>, Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM configurations WHERE id = $1 AND account_id = $2 AND region = $3"
        ))
        .bind(id)
        .bind(scope.account.as_str())
        .bind(scope.region.as_str())
        .fetch_optional(&self.pool)
        .await
        .context_internal("fetching configuration")
    }

    pub async fn configuration_list(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ConfigurationRow>, Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM configurations WHERE account_id = $1 AND region = $4 AND \
             ($2::text IS NULL OR (created_at, id) > (SELECT created_at, id FROM configurations WHERE id = $2)) \
             ORDER BY created_at, id LIMIT $3"
        ))
        .bind(scope.account.as_str())
        .bind(after)
        .bind(limit)
        .bind(scope.region.as_str())
        .fetch_all(&self.pool)
        .await
        .context_internal("listing configurations")
    }

    /// Adds the next revision; returns it.
    pub async fn configuration_revision_add(
        &self,
        id: &str,
        data: &str,
        description: &str,
    ) -> Result<RevisionRow, Error> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context_internal("begin revision_add")?;
        let next: i32 = sqlx::query_scalar(
            "UPDATE configurations SET latest_revision = latest_revision + 1 WHERE id = $1 RETURNING latest_revision",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .context_internal("bumping revision")?;
        if next > MAX_REVISIONS {
            return Err(Error::bad_request(
                "data",
                format!("A configuration can have at most {MAX_REVISIONS} revisions."),
            ));
        }
        let row: RevisionRow = sqlx::query_as(
            "INSERT INTO configuration_revisions (configuration_id, revision, data, description) VALUES ($1, $2, $3, $4) \
             RETURNING configuration_id, revision, data, description, created_at",
        )
        .bind(id)
        .bind(next)
        .bind(data)
        .bind(description)
        .fetch_one(&mut *tx)
        .await
        .context_internal("inserting revision")?;
        tx.commit().await.context_internal("commit revision_add")?;
        Ok(row)
    }

    pub async fn configuration_revision_fetch(
        &self,
        id: &str,
        revision: i32,
    ) -> Result<Option<RevisionRow>, Error> {
        sqlx::query_as(
            "SELECT configuration_id, revision, data, description, created_at FROM configuration_revisions \
             WHERE configuration_id = $1 AND revision = $2",
        )
        .bind(id)
        .bind(revision)
        .fetch_optional(&self.pool)
        .await
        .context_internal("fetching revision")
    }

    pub async fn configuration_revisions_list(
        &self,
        id: &str,
        after: i32,
        limit: i64,
    ) -> Result<Vec<RevisionRow>, Error> {
        sqlx::query_as(
            "SELECT configuration_id, revision, data, description, created_at FROM configuration_revisions \
             WHERE configuration_id = $1 AND revision > $2 ORDER BY revision LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context_internal("listing revisions")
    }

    /// Deletes a configuration no broker uses (current or pending).
    pub async fn configuration_delete(&self, scope: &Scope, id: &str) -> Result<bool, Error> {
        let in_use: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM brokers WHERE configuration_id = $1 OR pending_configuration_id = $1)",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .context_internal("checking configuration use")?;
        if in_use {
            return Err(Error::conflict(
                "configuration-id",
                format!("Configuration {id} is used by a broker."),
            ));
        }
        let res = sqlx::query(
            "DELETE FROM configurations WHERE id = $1 AND account_id = $2 AND region = $3",
        )
        .bind(id)
        .bind(scope.account.as_str())
        .bind(scope.region.as_str())
        .execute(&self.pool)
        .await;
        match res {
            Ok(r) => Ok(r.rows_affected() == 1),
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23503") => {
                Err(Error::conflict(
                    "configuration-id",
                    format!("Configuration {id} is used by a broker."),
                ))
            }
            Err(e) => Err(Error::internal("deleting configuration", e)),
        }
    }

    pub async fn configuration_tags_set(
        &self,
        id: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), Error> {
        sqlx::query("UPDATE configurations SET tags = $2 WHERE id = $1")
            .bind(id)
            .bind(sqlx::types::Json(tags))
            .execute(&self.pool)
            .await
            .context_internal("updating configuration tags")?;
        Ok(())
    }
}
