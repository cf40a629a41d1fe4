//! Console users, their sessions and the installation's signing keys.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{is_unique_violation, DataStore};
use crate::error::{Error, ResultExt};

/// A console user as stored (the password only as its PHC hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsoleUserRow {
    pub id: Uuid,
    pub account_id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A session with the user it belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub account_id: String,
    pub role: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What changing or deleting a console user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserChange {
    Done,
    NotFound,
    /// Refused: the user is the account's last admin.
    LastAdmin,
}

const USER_COLUMNS: &str = "id, account_id, username, password_hash, role, created_at, updated_at";

impl DataStore {
    /// Creates a console user; a taken username is a 409.
    pub async fn console_user_create(
        &self,
        id: Uuid,
        account_id: &str,
        username: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO console_users (id, account_id, username, password_hash, role) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(account_id)
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, "console_users_account_username_key") {
                Error::conflict(
                    "username",
                    format!("A console user named {username} already exists."),
                )
            } else {
                Error::internal("creating console user", e)
            }
        })?;
        Ok(())
    }

    pub async fn console_user_by_name(
        &self,
        account_id: &str,
        username: &str,
    ) -> Result<Option<ConsoleUserRow>, Error> {
        sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM console_users WHERE account_id = $1 AND username = $2"
        ))
        .bind(account_id)
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .context_internal("fetching console user")
    }

    /// The account's console users, by name.
    pub async fn console_user_list(&self, account_id: &str) -> Result<Vec<ConsoleUserRow>, Error> {
        sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM console_users WHERE account_id = $1 ORDER BY username"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .context_internal("listing console users")
    }

    /// Changes the role and/or the password hash of one of the account's users, unless
    /// that would leave the account without an admin. A new password revokes the user's
    /// sessions.
    pub async fn console_user_update(
        &self,
        account_id: &str,
        username: &str,
        role: Option<&str>,
        password_hash: Option<&str>,
    ) -> Result<UserChange, Error> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context_internal("updating console user")?;
        let admins = lock_admins(&mut tx, account_id).await?;
        let Some(current): Option<String> = sqlx::query_scalar(
            "SELECT role FROM console_users WHERE account_id = $1 AND username = $2 FOR UPDATE",
        )
        .bind(account_id)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await
        .context_internal("updating console user")?
        else {
            return Ok(UserChange::NotFound);
        };
        if current == "admin" && role.is_some_and(|r| r != "admin") && admins <= 1 {
            return Ok(UserChange::LastAdmin);
        }
        sqlx::query(
            "UPDATE console_users SET role = COALESCE($3, role),
                 password_hash = COALESCE($4, password_hash), updated_at = now()
             WHERE account_id = $1 AND username = $2",
        )
        .bind(account_id)
        .bind(username)
        .bind(role)
        .bind(password_hash)
        .execute(&mut *tx)
        .await
        .context_internal("updating console user")?;
        if password_hash.is_some() {
            // A new password ends every session of the old one.
            sqlx::query(
                "UPDATE console_sessions SET revoked_at = now()
                 WHERE revoked_at IS NULL AND user_id =
                   (SELECT id FROM console_users WHERE account_id = $1 AND username = $2)",
            )
            .bind(account_id)
            .bind(username)
            .execute(&mut *tx)
            .await
            .context_internal("revoking sessions")?;
        }
        tx.commit()
            .await
            .context_internal("updating console user")?;
        Ok(UserChange::Done)
    }

    /// Deletes one of the account's users (and its sessions), never the last admin.
    pub async fn console_user_delete(
        &self,
        account_id: &str,
        username: &str,
    ) -> Result<UserChange, Error> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context_internal("deleting console user")?;
        let admins = lock_admins(&mut tx, account_id).await?;
        let role: Option<String> = sqlx::query_scalar(
            "SELECT role FROM console_users WHERE account_id = $1 AND username = $2 FOR UPDATE",
        )
        .bind(account_id)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await
        .context_internal("deleting console user")?;
        match role.as_deref() {
            None => return Ok(UserChange::NotFound),
            Some("admin") if admins <= 1 => return Ok(UserChange::LastAdmin),
            Some(_) => {}
        }
        sqlx::query("DELETE FROM console_users WHERE account_id = $1 AND username = $2")
            .bind(account_id)
            .bind(username)
            .execute(&mut *tx)
            .await
            .context_internal("deleting console user")?;
        tx.commit()
            .await
            .context_internal("deleting console user")?;
        Ok(UserChange::Done)
    }

    pub async fn console_user_count(&self) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT count(*) FROM console_users")
            .fetch_one(&self.pool)
            .await
            .context_internal("counting console users")
    }

    pub async fn session_create(
        &self,
        id: Uuid,
        user_id: Uuid,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO console_sessions (id, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(user_id)
        .bind(csrf_token)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .context_internal("creating session")?;
        Ok(())
    }

    /// A session with its user's current name, account and role.
    pub async fn session_fetch(&self, id: Uuid) -> Result<Option<SessionRow>, Error> {
        sqlx::query_as(
            "SELECT s.id, s.user_id, u.username, u.account_id, u.role, s.csrf_token,
                    s.created_at, s.expires_at, s.revoked_at
             FROM console_sessions s JOIN console_users u ON u.id = s.user_id
             WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context_internal("fetching session")
    }

    /// Revokes a session; false when it was not active.
    pub async fn session_revoke(&self, id: Uuid) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE console_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .context_internal("revoking session")?;
        Ok(done.rows_affected() == 1)
    }

    /// The sealed key named `name`: the stored one, or `make()`'s, stored now. Every
    /// process on this database ends up with the same key.
    pub async fn signing_key_load_or_insert(
        &self,
        name: &str,
        make: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        if let Some(k) = self.signing_key_fetch(name).await? {
            return Ok(k);
        }
        sqlx::query(
            "INSERT INTO signing_keys (name, key_enc) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(make())
        .execute(&self.pool)
        .await
        .context_internal("storing signing key")?;
        self.signing_key_fetch(name).await?.ok_or_else(|| {
            Error::internal("loading signing key", anyhow::anyhow!("{name} vanished"))
        })
    }

    async fn signing_key_fetch(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        sqlx::query_scalar("SELECT key_enc FROM signing_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .context_internal("loading signing key")
    }
}

/// Locks the account's admin rows (so two concurrent changes cannot both remove "the
/// other" admin) and counts them.
async fn lock_admins(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    account_id: &str,
) -> Result<i64, Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM console_users WHERE account_id = $1 AND role = 'admin' FOR UPDATE",
    )
    .bind(account_id)
    .fetch_all(&mut **tx)
    .await
    .context_internal("locking admins")?;
    Ok(ids.len() as i64)
}
