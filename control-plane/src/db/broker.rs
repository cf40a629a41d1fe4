//! Broker, broker-user and broker-port statements.

use std::collections::HashSet;
use std::net::TcpListener;

use rand::Rng;

use super::model::{BrokerRow, BrokerUpdate, NewBroker, PortRow, UserRow};
use super::{is_unique_violation, DataStore};
use crate::domain::{BrokerId, BrokerState, Scope};
use crate::error::{Error, ResultExt};

/// A broker whose maintenance window may be due.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MaintenanceCandidate {
    pub id: String,
    pub maintenance_day: String,
    pub maintenance_time: String,
    pub maintenance_time_zone: String,
    pub last_maintenance_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Has pending changes (else it is a candidate for `autoMinorVersionUpgrade` only).
    pub pending: bool,
}

/// Where broker host ports come from.
#[derive(Debug, Clone)]
pub struct PortPool {
    pub publish_host: String,
    pub start: u16,
    pub end: u16,
}

/// Result of a create: a fresh broker, or the one an earlier request with the same
/// `creatorRequestId` made.
#[derive(Debug)]
pub enum Created {
    New(BrokerRow),
    Existing(BrokerRow),
}

const BROKER_COLUMNS: &str = "id, account_id, name, engine_type, engine_version, deployment_mode, \
     host_instance_type, storage_type, authentication_strategy, publicly_accessible, \
     auto_minor_version_upgrade, maintenance_day, maintenance_time, maintenance_time_zone, \
     logs_general, tags, creator_request_id, state, state_reason, agent_token_enc, \
     erlang_cookie_enc, created_at, state_changed_at, pending_host_instance_type, \
     pending_engine_version, security_groups, reboot_requested_at, configuration_id, \
     configuration_revision, pending_configuration_id, pending_configuration_revision, \
     configuration_history, region, subnet_ids, logs_audit";

impl DataStore {
    /// Inserts a broker with its users and pinned host ports, atomically. Ports are
    /// allocated under a table lock so concurrent creates never share one.
    pub async fn broker_create(&self, new: NewBroker, pool: &PortPool) -> Result<Created, Error> {
        if let Some(token) = &new.creator_request_id {
            if let Some(existing) = self.broker_fetch_by_request_id(&new.scope, token).await? {
                return Ok(Created::Existing(existing));
            }
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .context_internal("begin broker_create")?;
        let insert = sqlx::query(
            "INSERT INTO brokers (id, account_id, name, engine_type, engine_version, deployment_mode, \
             host_instance_type, storage_type, authentication_strategy, publicly_accessible, \
             auto_minor_version_upgrade, maintenance_day, maintenance_time, maintenance_time_zone, \
             logs_general, tags, creator_request_id, state, agent_token_enc, erlang_cookie_enc, \
             configuration_id, configuration_revision, region, subnet_ids, security_groups, logs_audit) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26)",
        )
        .bind(new.id.as_str())
        .bind(new.scope.account.as_str())
        .bind(&new.name)
        .bind(&new.engine_type)
        .bind(&new.engine_version)
        .bind(&new.deployment_mode)
        .bind(&new.host_instance_type)
        .bind(&new.storage_type)
        .bind(&new.authentication_strategy)
        .bind(new.publicly_accessible)
        .bind(new.auto_minor_version_upgrade)
        .bind(&new.maintenance_day)
        .bind(&new.maintenance_time)
        .bind(&new.maintenance_time_zone)
        .bind(new.logs_general)
        .bind(sqlx::types::Json(&new.tags))
        .bind(&new.creator_request_id)
        .bind(BrokerState::CreationInProgress.as_wire())
        .bind(&new.agent_token_enc)
        .bind(&new.erlang_cookie_enc)
        .bind(new.configuration.as_ref().map(|c| c.id.clone()))
        .bind(new.configuration.as_ref().map(|c| c.revision))
        .bind(new.scope.region.as_str())
        .bind(sqlx::types::Json(&new.subnet_ids))
        .bind(sqlx::types::Json(&new.security_groups))
        .bind(new.logs_audit)
        .execute(&mut *tx)
        .await;
        if let Err(e) = insert {
            if is_unique_violation(&e, "brokers_account_region_name_key") {
                return Err(Error::conflict(
                    "brokerName",
                    format!("Broker name {} already exists in this account.", new.name),
                ));
            }
            if is_unique_violation(&e, "brokers_creator_request_id_key") {
                drop(tx);
                let existing = self
                    .broker_fetch_by_request_id(
                        &new.scope,
                        new.creator_request_id.as_deref().unwrap_or_default(),
                    )
                    .await?
                    .ok_or_else(|| {
                        Error::internal("creator request id raced", anyhow::anyhow!("vanished"))
                    })?;
                return Ok(Created::Existing(existing));
            }
            return Err(Error::internal("inserting broker", e));
        }
        for u in &new.users {
            sqlx::query(
                "INSERT INTO broker_users (broker_id, username, password_enc, console_access, groups) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(new.id.as_str())
            .bind(&u.username)
            .bind(&u.password_enc)
            .bind(u.console_access)
            .bind(sqlx::types::Json(&u.groups))
            .execute(&mut *tx)
            .await
            .context_internal("inserting broker user")?;
        }
        allocate_ports(&mut tx, &new.id, &new.ports, pool).await?;
        tx.commit().await.context_internal("commit broker_create")?;
        let row = self.broker_fetch_unscoped(&new.id).await?.ok_or_else(|| {
            Error::internal(
                "broker vanished after insert",
                anyhow::anyhow!("{}", new.id),
            )
        })?;
        Ok(Created::New(row))
    }

    async fn broker_fetch_by_request_id(
        &self,
        scope: &Scope,
        token: &str,
    ) -> Result<Option<BrokerRow>, Error> {
        sqlx::query_as(&format!(
            "SELECT {BROKER_COLUMNS} FROM brokers WHERE account_id = $1 AND region = $3 \
             AND creator_request_id = $2"
        ))
        .bind(scope.account.as_str())
        .bind(token)
        .bind(scope.region.as_str())
        .fetch_optional(&self.pool)
        .await
        .context_internal("fetching broker by creator request id")
    }

    /// A broker as its owner sees it; another account's or region's broker is simply
    /// absent.
    pub async fn broker_fetch(
        &self,
        scope: &Scope,
        id: &BrokerId,
    ) -> Result<Option<BrokerRow>, Error> {
        sqlx::query_as(&format!(
            "SELECT {BROKER_COLUMNS} FROM brokers WHERE id = $1 AND account_id = $2 AND region = $3"
        ))
        .bind(id.as_str())
        .bind(scope.account.as_str())
        .bind(scope.region.as_str())
        .fetch_optional(&self.pool)
        .await
        .context_internal("fetching broker")
    }

    /// The broker with its users, ports and nodes, if `scope` owns it: from the broker
    /// cache when it holds it ([`super::cache`] keeps it exact), else read (and cached).
    pub async fn broker_bundle(
        &self,
        scope: &Scope,
        id: &BrokerId,
    ) -> Result<Option<super::model::BrokerBundle>, Error> {
        let cache = &self.caches().brokers;
        let owned = |b: &super::model::BrokerBundle| {
            b.row.account_id == scope.account.as_str() && b.row.region == scope.region.as_str()
        };
        if let Some(b) = cache.get(id.as_str()) {
            return Ok(owned(&b).then_some(b));
        }
        let generation = cache.generation();
        let Some(row) = self.broker_fetch(scope, id).await? else {
            return Ok(None);
        };
        let bundle = super::model::BrokerBundle {
            row,
            users: self.broker_users(id).await?,
            ports: self.broker_ports(id).await?,
            nodes: self.broker_nodes(id).await?,
        };
        cache.put(generation, id.as_str(), bundle.clone());
        Ok(Some(bundle))
    }

    /// A broker regardless of owner: for the reconciler only.
    pub async fn broker_fetch_unscoped(&self, id: &BrokerId) -> Result<Option<BrokerRow>, Error> {
        sqlx::query_as(&format!(
            "SELECT {BROKER_COLUMNS} FROM brokers WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .context_internal("fetching broker")
    }

    /// One page of a scope's brokers in creation order, after broker `after`.
    pub async fn broker_list(
        &self,
        scope: &Scope,
        after: Option<&BrokerId>,
        limit: i64,
    ) -> Result<Vec<BrokerRow>, Error> {
        sqlx::query_as(&format!(
            "SELECT {BROKER_COLUMNS} FROM brokers WHERE account_id = $1 AND region = $4 AND \
             ($2::text IS NULL OR (created_at, id) > (SELECT created_at, id FROM brokers WHERE id = $2)) \
             ORDER BY created_at, id LIMIT $3"
        ))
        .bind(scope.account.as_str())
        .bind(after.map(|a| a.as_str()))
        .bind(limit)
        .bind(scope.region.as_str())
        .fetch_all(&self.pool)
        .await
        .context_internal("listing brokers")
    }

    pub async fn broker_exists(&self, scope: &Scope, id: &BrokerId) -> Result<bool, Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM brokers WHERE id = $1 AND account_id = $2 AND region = $3)",
        )
        .bind(id.as_str())
        .bind(scope.account.as_str())
        .bind(scope.region.as_str())
        .fetch_one(&self.pool)
        .await
        .context_internal("checking broker")
    }

    pub async fn broker_count(&self, scope: &Scope) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT count(*) FROM brokers WHERE account_id = $1 AND region = $2")
            .bind(scope.account.as_str())
            .bind(scope.region.as_str())
            .fetch_one(&self.pool)
            .await
            .context_internal("counting brokers")
    }

    /// Every broker id, for the reconciler's sweep.
    pub async fn broker_ids_all(&self) -> Result<Vec<BrokerId>, Error> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM brokers ORDER BY created_at")
            .fetch_all(&self.pool)
            .await
            .context_internal("listing broker ids")?;
        Ok(ids.into_iter().map(BrokerId::from_db).collect())
    }

    /// Compare-and-set of the lifecycle state: moves to `to` only from one of `from`
    /// and only along a legal edge. Returns whether the row changed.
    pub async fn broker_transition(
        &self,
        id: &BrokerId,
        from: &[BrokerState],
        to: BrokerState,
        reason: Option<&str>,
    ) -> Result<bool, Error> {
        let from: Vec<&str> = from
            .iter()
            .filter(|f| f.can_transition_to(to))
            .map(|f| f.as_wire())
            .collect();
        if from.is_empty() {
            return Ok(false);
        }
        let res = sqlx::query(
            "UPDATE brokers SET state = $2, state_reason = $3, state_changed_at = now() \
             WHERE id = $1 AND state = ANY($4)",
        )
        .bind(id.as_str())
        .bind(to.as_wire())
        .bind(reason)
        .bind(&from)
        .execute(&self.pool)
        .await
        .context_internal("updating broker state")?;
        self.caches().brokers.invalidate(id.as_str());
        Ok(res.rows_affected() == 1)
    }

    /// Removes the row (users and ports cascade). Only for brokers being deleted.
    pub async fn broker_delete_row(&self, id: &BrokerId) -> Result<bool, Error> {
        let res = sqlx::query("DELETE FROM brokers WHERE id = $1 AND state = $2")
            .bind(id.as_str())
            .bind(BrokerState::DeletionInProgress.as_wire())
            .execute(&self.pool)
            .await
            .context_internal("deleting broker row")?;
        self.caches().brokers.invalidate(id.as_str());
        Ok(res.rows_affected() == 1)
    }

    /// Applies UpdateBroker's changes (immediate settings and pending ones).
    pub async fn broker_update(&self, id: &BrokerId, u: &BrokerUpdate) -> Result<(), Error> {
        let mut q = sqlx::QueryBuilder::new("UPDATE brokers SET id = id");
        if let Some(v) = &u.pending_host_instance_type {
            q.push(", pending_host_instance_type = ")
                .push_bind(v.clone());
        }
        if let Some(v) = &u.pending_engine_version {
            q.push(", pending_engine_version = ").push_bind(v.clone());
        }
        if let Some(v) = u.auto_minor_version_upgrade {
            q.push(", auto_minor_version_upgrade = ").push_bind(v);
        }
        if let Some((day, time, tz)) = &u.maintenance {
            q.push(", maintenance_day = ").push_bind(day.clone());
            q.push(", maintenance_time = ").push_bind(time.clone());
            q.push(", maintenance_time_zone = ").push_bind(tz.clone());
        }
        if let Some(v) = u.logs_general {
            q.push(", logs_general = ").push_bind(v);
        }
        if let Some(v) = u.logs_audit {
            q.push(", logs_audit = ").push_bind(v);
        }
        if let Some(v) = &u.security_groups {
            q.push(", security_groups = ")
                .push_bind(sqlx::types::Json(v.clone()));
        }
        if let Some(v) = &u.pending_configuration {
            q.push(", pending_configuration_id = ")
                .push_bind(v.as_ref().map(|c| c.id.clone()));
            q.push(", pending_configuration_revision = ")
                .push_bind(v.as_ref().map(|c| c.revision));
        }
        q.push(" WHERE id = ").push_bind(id.as_str());
        q.build()
            .execute(&self.pool)
            .await
            .context_internal("updating broker")?;
        self.caches().brokers.invalidate(id.as_str());
        Ok(())
    }

    /// RUNNING (or CRITICAL_ACTION_REQUIRED) → REBOOT_IN_PROGRESS, stamping the request.
    pub async fn broker_request_reboot(&self, id: &BrokerId) -> Result<bool, Error> {
        let res = sqlx::query(
            "UPDATE brokers SET state = $2, reboot_requested_at = now(), state_changed_at = now() \
             WHERE id = $1 AND state = ANY($3)",
        )
        .bind(id.as_str())
        .bind(BrokerState::RebootInProgress.as_wire())
        .bind([
            BrokerState::Running.as_wire(),
            BrokerState::CriticalActionRequired.as_wire(),
        ])
        .execute(&self.pool)
        .await
        .context_internal("requesting reboot")?;
        self.caches().brokers.invalidate(id.as_str());
        Ok(res.rows_affected() == 1)
    }

    /// Records a failed health check; returns since when the engine has been unhealthy.
    pub async fn broker_mark_unhealthy(
        &self,
        id: &BrokerId,
    ) -> Result<chrono::DateTime<chrono::Utc>, Error> {
        sqlx::query_scalar(
            "UPDATE brokers SET unhealthy_since = COALESCE(unhealthy_since, now()) WHERE id = $1 RETURNING unhealthy_since",
        )
        .bind(id.as_str())
        .fetch_one(&self.pool)
        .await
        .context_internal("marking broker unhealthy")
    }

    pub async fn broker_mark_healthy(&self, id: &BrokerId) -> Result<(), Error> {
        sqlx::query("UPDATE brokers SET unhealthy_since = NULL WHERE id = $1 AND unhealthy_since IS NOT NULL")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .context_internal("marking broker healthy")?;
        Ok(())
    }

    /// Makes pending settings current (at reboot or in the maintenance window). Idempotent.
    pub async fn broker_apply_pending(&self, id: &BrokerId) -> Result<(), Error> {
        // The configuration first: the old current revision goes to the history.
        sqlx::query(
            "UPDATE brokers SET \
               configuration_history = CASE WHEN configuration_id IS NULL THEN configuration_history \
                 ELSE configuration_history || jsonb_build_array(jsonb_build_object('id', configuration_id, 'revision', configuration_revision)) END, \
               configuration_id = pending_configuration_id, \
               configuration_revision = pending_configuration_revision, \
               pending_configuration_id = NULL, pending_configuration_revision = NULL \
             WHERE id = $1 AND pending_configuration_id IS NOT NULL",
        )
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .context_internal("applying pending configuration")?;
        sqlx::query(
            "UPDATE brokers SET \
               host_instance_type = COALESCE(pending_host_instance_type, host_instance_type), \
               engine_version = COALESCE(pending_engine_version, engine_version), \
               pending_host_instance_type = NULL, pending_engine_version = NULL \
             WHERE id = $1 AND (pending_host_instance_type IS NOT NULL OR pending_engine_version IS NOT NULL)",
        )
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .context_internal("applying pending changes")?;
        self.caches().brokers.invalidate(id.as_str());
        Ok(())
    }

    /// RUNNING brokers with pending changes or automatic minor upgrades: candidates for
    /// their maintenance window.
    pub async fn broker_maintenance_candidates(&self) -> Result<Vec<MaintenanceCandidate>, Error> {
        sqlx::query_as(
            "SELECT id, maintenance_day, maintenance_time, maintenance_time_zone, last_maintenance_at, pending FROM ( \
               SELECT *, (pending_host_instance_type IS NOT NULL OR pending_engine_version IS NOT NULL \
                 OR pending_configuration_id IS NOT NULL) AS pending FROM brokers WHERE state = 'RUNNING') b \
             WHERE pending OR auto_minor_version_upgrade",
        )
        .fetch_all(&self.pool)
        .await
        .context_internal("listing maintenance candidates")
    }

    /// Starts maintenance (a reboot) unless this window was already used.
    pub async fn broker_start_maintenance(
        &self,
        id: &BrokerId,
        window_start: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, Error> {
        let res = sqlx::query(
            "UPDATE brokers SET state = 'REBOOT_IN_PROGRESS', reboot_requested_at = now(), \
               last_maintenance_at = now(), state_changed_at = now() \
             WHERE id = $1 AND state = 'RUNNING' AND (last_maintenance_at IS NULL OR last_maintenance_at < $2)",
        )
        .bind(id.as_str())
        .bind(window_start)
        .execute(&self.pool)
        .await
        .context_internal("starting maintenance")?;
        self.caches().brokers.invalidate(id.as_str());
        Ok(res.rows_affected() == 1)
    }

    pub async fn user_create(
        &self,
        broker: &BrokerId,
        user: &super::model::NewUser,
        max_users: i64,
    ) -> Result<(), Error> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context_internal("begin user_create")?;
        // Serialize user changes of this broker.
        sqlx::query("SELECT id FROM brokers WHERE id = $1 FOR UPDATE")
            .bind(broker.as_str())
            .execute(&mut *tx)
            .await
            .context_internal("locking broker")?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM broker_users WHERE broker_id = $1")
                .bind(broker.as_str())
                .fetch_one(&mut *tx)
                .await
                .context_internal("counting users")?;
        if count >= max_users {
            return Err(Error::bad_request(
                "username",
                format!("A broker can have at most {max_users} users."),
            ));
        }
        let res = sqlx::query(
            "INSERT INTO broker_users (broker_id, username, password_enc, console_access, groups, pending_change) \
             VALUES ($1, $2, $3, $4, $5, 'CREATE')",
        )
        .bind(broker.as_str())
        .bind(&user.username)
        .bind(&user.password_enc)
        .bind(user.console_access)
        .bind(sqlx::types::Json(&user.groups))
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e, "broker_users_pkey") => {
                return Err(Error::conflict(
                    "username",
                    format!("User {} already exists on this broker.", user.username),
                ));
            }
            Err(e) => return Err(Error::internal("inserting user", e)),
        }
        tx.commit().await.context_internal("commit user_create")?;
        self.caches().brokers.invalidate(broker.as_str());
        Ok(())
    }

    /// Records an UpdateUser; `None` fields stay as they are. False when no such user.
    pub async fn user_update(
        &self,
        broker: &BrokerId,
        username: &str,
        password_enc: Option<&[u8]>,
        console_access: Option<bool>,
        groups: Option<&[String]>,
    ) -> Result<bool, Error> {
        let res = sqlx::query(
            "UPDATE broker_users SET \
               password_enc = COALESCE($3, password_enc), \
               console_access = COALESCE($4, console_access), \
               groups = COALESCE($5, groups), \
               pending_change = CASE WHEN pending_change = 'CREATE' THEN 'CREATE' ELSE 'UPDATE' END, \
               change_seq = nextval('user_change_seq') \
             WHERE broker_id = $1 AND username = $2 AND pending_change IS DISTINCT FROM 'DELETE'",
        )
        .bind(broker.as_str())
        .bind(username)
        .bind(password_enc)
        .bind(console_access)
        .bind(groups.map(sqlx::types::Json))
        .execute(&self.pool)
        .await
        .context_internal("updating user")?;
        self.caches().brokers.invalidate(broker.as_str());
        Ok(res.rows_affected() == 1)
    }

    /// Marks a user for deletion. False when no such user (or already being deleted).
    pub async fn user_mark_deleted(
        &self,
        broker: &BrokerId,
        username: &str,
    ) -> Result<bool, Error> {
        let res = sqlx::query(
            "UPDATE broker_users SET pending_change = 'DELETE', change_seq = nextval('user_change_seq') \
             WHERE broker_id = $1 AND username = $2 AND pending_change IS DISTINCT FROM 'DELETE'",
        )
        .bind(broker.as_str())
        .bind(username)
        .execute(&self.pool)
        .await
        .context_internal("deleting user")?;
        self.caches().brokers.invalidate(broker.as_str());
        Ok(res.rows_affected() == 1)
    }

    /// The agent applied every change up to `seq`: drop deleted users, clear the rest.
    pub async fn users_confirm(&self, broker: &BrokerId, seq: i64) -> Result<(), Error> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context_internal("begin users_confirm")?;
        sqlx::query("DELETE FROM broker_users WHERE broker_id = $1 AND pending_change = 'DELETE' AND change_seq <= $2")
            .bind(broker.as_str())
            .bind(seq)
            .execute(&mut *tx)
            .await
            .context_internal("dropping deleted users")?;
        sqlx::query(
            "UPDATE broker_users SET pending_change = NULL \
             WHERE broker_id = $1 AND pending_change IS NOT NULL AND change_seq <= $2",
        )
        .bind(broker.as_str())
        .bind(seq)
        .execute(&mut *tx)
        .await
        .context_internal("confirming users")?;
        tx.commit().await.context_internal("commit users_confirm")?;
        self.caches().brokers.invalidate(broker.as_str());
        Ok(())
    }

    pub async fn broker_tags_set(
        &self,
        id: &BrokerId,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), Error> {
        sqlx::query("UPDATE brokers SET tags = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(sqlx::types::Json(tags))
            .execute(&self.pool)
            .await
            .context_internal("updating broker tags")?;
        self.caches().brokers.invalidate(id.as_str());
        Ok(())
    }

    pub async fn broker_users(&self, id: &BrokerId) -> Result<Vec<UserRow>, Error> {
        sqlx::query_as(
            "SELECT broker_id, username, password_enc, console_access, groups, pending_change, change_seq FROM broker_users \
             WHERE broker_id = $1 ORDER BY username",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .context_internal("listing broker users")
    }

    /// Pins a host port for every (node, protocol) in `wanted` that has none yet (a
    /// broker created before an engine gained a listener, or a node added later).
    pub async fn broker_ports_ensure(
        &self,
        id: &BrokerId,
        wanted: &[(i32, &'static str)],
        pool: &PortPool,
    ) -> Result<Vec<PortRow>, Error> {
        let have = self.broker_ports(id).await?;
        let missing: Vec<(i32, &'static str)> = wanted
            .iter()
            .filter(|(n, p)| !have.iter().any(|r| r.node == *n && r.protocol == *p))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(have);
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .context_internal("begin broker_ports_ensure")?;
        allocate_ports(&mut tx, id, &missing, pool).await?;
        tx.commit()
            .await
            .context_internal("commit broker_ports_ensure")?;
        self.caches().brokers.invalidate(id.as_str());
        self.broker_ports(id).await
    }

    pub async fn broker_ports(&self, id: &BrokerId) -> Result<Vec<PortRow>, Error> {
        sqlx::query_as("SELECT host_port, node, protocol FROM broker_ports WHERE broker_id = $1 ORDER BY node, protocol")
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await
            .context_internal("listing broker ports")
    }
}

/// Picks `n` distinct ports from the pool that no broker holds and that are free on the
/// host right now. Starts at a random offset so parallel installations rarely collide.
/// Pins free host ports for `pairs` of broker `id` inside `tx`, under a table lock so
/// concurrent allocations never share a port. A pair that already has one is skipped.
async fn allocate_ports(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: &BrokerId,
    pairs: &[(i32, &'static str)],
    pool: &PortPool,
) -> Result<(), Error> {
    sqlx::query("LOCK TABLE broker_ports IN EXCLUSIVE MODE")
        .execute(&mut **tx)
        .await
        .context_internal("locking broker_ports")?;
    let used: Vec<i32> = sqlx::query_scalar("SELECT host_port FROM broker_ports")
        .fetch_all(&mut **tx)
        .await
        .context_internal("reading used ports")?;
    let chosen = choose_ports(pool, &used.into_iter().collect(), pairs.len())?;
    for ((node, protocol), port) in pairs.iter().zip(chosen) {
        sqlx::query(
            "INSERT INTO broker_ports (host_port, broker_id, node, protocol) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (broker_id, node, protocol) DO NOTHING",
        )
        .bind(i32::from(port))
        .bind(id.as_str())
        .bind(node)
        .bind(protocol)
        .execute(&mut **tx)
        .await
        .context_internal("inserting broker port")?;
    }
    Ok(())
}

fn choose_ports(pool: &PortPool, used: &HashSet<i32>, n: usize) -> Result<Vec<u16>, Error> {
    let span = u32::from(pool.end - pool.start) + 1;
    let offset = rand::thread_rng().gen_range(0..span);
    let mut chosen = Vec::with_capacity(n);
    for i in 0..span {
        if chosen.len() == n {
            break;
        }
        let port = pool.start + ((offset + i) % span) as u16;
        if used.contains(&i32::from(port)) {
            continue;
        }
        if TcpListener::bind((pool.publish_host.as_str(), port)).is_ok() {
            chosen.push(port);
        }
    }
    if chosen.len() < n {
        return Err(Error::internal(
            "allocating broker ports",
            anyhow::anyhow!("port range {}-{} is exhausted", pool.start, pool.end),
        ));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_distinct_unused_ports() {
        let pool = PortPool {
            publish_host: "127.0.0.1".into(),
            start: 40100,
            end: 40109,
        };
        let used: HashSet<i32> = [40100, 40101].into_iter().collect();
        let ports = choose_ports(&pool, &used, 8).unwrap();
        let set: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(set.len(), 8);
        assert!(!set.contains(&40100) && !set.contains(&40101));
        assert!(choose_ports(&pool, &used, 9).is_err());
    }
}
