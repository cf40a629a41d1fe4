//! The agents to observe: every node of every broker that has containers, with the
//! base URL of its agent and the broker's agent token, found in one query.

use agent_contract::EngineState;

use crate::crypto::SecretBox;
use crate::db::nodes::parse_engine_state;
use crate::db::DataStore;
use crate::domain::profile::AGENT_PROTOCOL;
use crate::domain::BrokerId;
use crate::error::{Error, ResultExt};
use crate::reconcile::broker::agent_host;

/// One node's agent.
#[derive(Clone)]
pub struct NodeTarget {
    pub broker_id: BrokerId,
    pub account_id: String,
    pub node: u32,
    /// e.g. `http://127.0.0.1:21007`.
    pub base: String,
    pub token: String,
    /// The engine state the reconciler last stored for the node (None: not known).
    pub engine_state: Option<EngineState>,
}

impl std::fmt::Debug for NodeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTarget")
            .field("broker_id", &self.broker_id)
            .field("node", &self.node)
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Which nodes to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Every node of a broker whose containers may exist (not being created for the
    /// first time, not being deleted): logs are wanted most when the engine fails.
    WithContainers,
    /// Nodes whose agent last reported Ready or Standby (metrics).
    Serving,
}

#[derive(sqlx::FromRow)]
struct Row {
    broker_id: String,
    account_id: String,
    node: i32,
    host_port: i32,
    agent_token_enc: Vec<u8>,
    engine_state: Option<String>,
    unreachable: bool,
}

/// The targets of `which`, ordered by broker and node. A row that cannot be used (bad
/// id, token that does not open) is skipped with a warning, never an error for the rest.
pub async fn broker_targets(
    store: &DataStore,
    secrets: &SecretBox,
    publish_host: &str,
    which: Which,
) -> Result<Vec<NodeTarget>, Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT b.id AS broker_id, b.account_id, p.node, p.host_port, b.agent_token_enc, \
                n.engine_state, (n.unreachable_since IS NOT NULL) AS unreachable \
         FROM brokers b \
         JOIN broker_ports p ON p.broker_id = b.id AND p.protocol = $1 \
         LEFT JOIN broker_nodes n ON n.broker_id = b.id AND n.node = p.node \
         WHERE b.state NOT IN ('DELETION_IN_PROGRESS', 'CREATION_FAILED') \
         ORDER BY b.id, p.node",
    )
    .bind(AGENT_PROTOCOL)
    .fetch_all(store.pool())
    .await
    .context_internal("listing observation targets")?;
    let host = agent_host(publish_host);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let state = (!r.unreachable)
            .then(|| r.engine_state.as_deref().and_then(parse_engine_state))
            .flatten();
        if which == Which::Serving
            && !matches!(state, Some(EngineState::Ready | EngineState::Standby))
        {
            continue;
        }
        let (Ok(broker_id), Ok(node)) = (BrokerId::parse(&r.broker_id), u32::try_from(r.node))
        else {
            tracing::warn!(broker = %r.broker_id, node = r.node, "skipping an unusable observation target");
            continue;
        };
        let token = match secrets.open(&r.agent_token_enc) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(broker = %r.broker_id, error = %e, "agent token does not open");
                continue;
            }
        };
        out.push(NodeTarget {
            broker_id,
            account_id: r.account_id,
            node,
            base: format!("http://{host}:{}", r.host_port),
            token,
            engine_state: state,
        });
    }
    Ok(out)
}
