//! The data store: every SQL statement of the control plane lives under this module.
//!
//! Methods are named resource first, then verb (`broker_create`, `broker_list`), so
//! grepping a prefix finds every operation on a resource. Row types live in [`model`]
//! and are distinct from API views.

pub mod account;
pub mod alarms;
pub mod audit;
pub mod broker;
pub mod cache;
pub mod configuration;
pub mod identity;
pub mod logs;
pub mod metering;
pub mod metrics;
pub mod model;
pub mod nodes;
pub mod tls;

use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

use crate::error::{Error, ResultExt};

/// Embedded migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Default wait for a pooled connection.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Clone, Debug)]
pub struct DataStore {
    pool: PgPool,
    caches: std::sync::Arc<cache::Caches>,
}

impl DataStore {
    /// Connects and runs pending migrations, with the default connection timeout.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, DEFAULT_TIMEOUT).await
    }

    /// Connects and runs pending migrations. Once running, a statement that cannot get a
    /// connection within `timeout` fails (and the request is answered 503): an
    /// unreachable database never holds a caller for long.
    pub async fn connect_with(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(timeout)
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            caches: Default::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The read caches; they serve nothing until a [`cache::ChangeFeed`] runs.
    pub fn caches(&self) -> &cache::Caches {
        &self.caches
    }

    /// The id of this Berth installation (labels every Docker object it creates).
    pub async fn installation_id(&self) -> Result<String, Error> {
        sqlx::query_scalar("SELECT id FROM installation")
            .fetch_one(&self.pool)
            .await
            .context_internal("reading installation id")
    }

    pub async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context_internal("database ping")?;
        Ok(())
    }
}

/// True when `e` is a unique-constraint violation of `constraint`.
pub(crate) fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}
