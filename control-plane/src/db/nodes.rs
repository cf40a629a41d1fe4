//! Node statements: each broker node's zone and last observed health.
//!
//! The reconciler records what every node's agent reported (or that it did not answer)
//! and writes only when something changed, so a steady broker costs no write. Rows are
//! created on first observation; a node without a row has simply not been seen yet.

use agent_contract::{EngineAlarm, EngineState};

use super::DataStore;
use crate::domain::BrokerId;
use crate::error::{Error, ResultExt};

/// A node's stored health. `engine_state` is kept as text and parsed fallibly.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    pub node: i32,
    pub zone: String,
    pub engine_state: Option<String>,
    pub last_error: Option<String>,
    pub cluster_running: Option<sqlx::types::Json<Vec<String>>>,
    pub reported_at: Option<chrono::DateTime<chrono::Utc>>,
    pub unreachable_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Engine alarms of the last report, as stored (see [`NodeRow::alarms`]).
    pub alarms: serde_json::Value,
}

impl NodeRow {
    /// The last engine state the agent reported; unknown text reads as none.
    pub fn state(&self) -> Option<EngineState> {
        parse_engine_state(self.engine_state.as_deref()?)
    }

    /// The engine alarms the node last reported while it answers; unreadable JSON reads
    /// as none (nothing stored can break a request).
    pub fn alarms(&self) -> Vec<EngineAlarm> {
        if self.unreachable_since.is_some() {
            return Vec::new();
        }
        serde_json::from_value(self.alarms.clone()).unwrap_or_default()
    }

    /// The engine state as far as it is known now: none while the agent does not answer.
    pub fn current_state(&self) -> Option<EngineState> {
        self.unreachable_since
            .is_none()
            .then(|| self.state())
            .flatten()
    }
}

/// What the reconciler saw of one node this time.
#[derive(Debug, Clone)]
pub enum NodeObservation {
    Reported {
        state: EngineState,
        last_error: Option<String>,
        cluster_running: Option<Vec<String>>,
        alarms: Vec<EngineAlarm>,
    },
    /// The agent did not answer (the error).
    Unreachable(String),
}

/// An engine state as stored (its wire name); unknown text reads as none.
pub fn parse_engine_state(text: &str) -> Option<EngineState> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

fn state_text(state: EngineState) -> String {
    match serde_json::to_value(state) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{state:?}"),
    }
}

impl DataStore {
    /// Serving brokers of `mode` (RUNNING, CRITICAL_ACTION_REQUIRED or rebooting), for
    /// the hung-node watchdog.
    pub async fn broker_ids_serving_in_mode(&self, mode: &str) -> Result<Vec<BrokerId>, Error> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM brokers WHERE deployment_mode = $1 \
             AND state IN ('RUNNING', 'CRITICAL_ACTION_REQUIRED', 'REBOOT_IN_PROGRESS') ORDER BY created_at",
        )
        .bind(mode)
        .fetch_all(&self.pool)
        .await
        .context_internal("listing serving brokers")?;
        Ok(ids.into_iter().map(BrokerId::from_db).collect())
    }

    pub async fn broker_nodes(&self, id: &BrokerId) -> Result<Vec<NodeRow>, Error> {
        sqlx::query_as(
            "SELECT node, zone, engine_state, last_error, cluster_running, reported_at, unreachable_since, alarms \
             FROM broker_nodes WHERE broker_id = $1 ORDER BY node",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .context_internal("reading broker nodes")
    }

    /// Records an observation of node `node`; returns the row as stored. A report
    /// replaces state, error and members and clears `unreachable_since`; an unreachable
    /// agent keeps the last report and starts `unreachable_since` (once). Nothing is
    /// written when nothing changed.
    pub async fn node_observe(
        &self,
        id: &BrokerId,
        node: u32,
        zone: &str,
        seen: &NodeObservation,
    ) -> Result<NodeRow, Error> {
        let node = i32::try_from(node).map_err(|e| Error::internal("node index", e))?;
        let query = match seen {
            NodeObservation::Reported {
                state,
                last_error,
                cluster_running,
                alarms,
            } => sqlx::query_as(
                "INSERT INTO broker_nodes (broker_id, node, zone, engine_state, last_error, cluster_running, reported_at, alarms) \
                 VALUES ($1, $2, $3, $4, $5, $6, now(), $7) \
                 ON CONFLICT (broker_id, node) DO UPDATE SET zone = EXCLUDED.zone, engine_state = EXCLUDED.engine_state, \
                   last_error = EXCLUDED.last_error, cluster_running = EXCLUDED.cluster_running, \
                   reported_at = now(), unreachable_since = NULL, alarms = EXCLUDED.alarms \
                 WHERE broker_nodes.engine_state IS DISTINCT FROM EXCLUDED.engine_state \
                    OR broker_nodes.last_error IS DISTINCT FROM EXCLUDED.last_error \
                    OR broker_nodes.cluster_running IS DISTINCT FROM EXCLUDED.cluster_running \
                    OR broker_nodes.alarms IS DISTINCT FROM EXCLUDED.alarms \
                    OR broker_nodes.zone IS DISTINCT FROM EXCLUDED.zone \
                    OR broker_nodes.unreachable_since IS NOT NULL \
                 RETURNING node, zone, engine_state, last_error, cluster_running, reported_at, unreachable_since, alarms",
            )
            .bind(id.as_str())
            .bind(node)
            .bind(zone)
            .bind(state_text(*state))
            .bind(last_error.as_deref())
            .bind(cluster_running.clone().map(sqlx::types::Json))
            .bind(sqlx::types::Json(alarms.clone())),
            NodeObservation::Unreachable(why) => sqlx::query_as(
                "INSERT INTO broker_nodes (broker_id, node, zone, last_error, unreachable_since) \
                 VALUES ($1, $2, $3, $4, now()) \
                 ON CONFLICT (broker_id, node) DO UPDATE SET last_error = EXCLUDED.last_error, \
                   unreachable_since = COALESCE(broker_nodes.unreachable_since, now()) \
                 WHERE broker_nodes.unreachable_since IS NULL \
                    OR broker_nodes.last_error IS DISTINCT FROM EXCLUDED.last_error \
                 RETURNING node, zone, engine_state, last_error, cluster_running, reported_at, unreachable_since, alarms",
            )
            .bind(id.as_str())
            .bind(node)
            .bind(zone)
            .bind(format!("agent unreachable: {why}")),
        };
        let written: Option<NodeRow> = query
            .fetch_optional(&self.pool)
            .await
            .context_internal("recording node health")?;
        match written {
            Some(row) => {
                self.caches().brokers.invalidate(id.as_str());
                Ok(row)
            }
            None => sqlx::query_as(
                "SELECT node, zone, engine_state, last_error, cluster_running, reported_at, unreachable_since, alarms \
                 FROM broker_nodes WHERE broker_id = $1 AND node = $2",
            )
            .bind(id.as_str())
            .bind(node)
            .fetch_one(&self.pool)
            .await
            .context_internal("reading node health"),
        }
    }
}
