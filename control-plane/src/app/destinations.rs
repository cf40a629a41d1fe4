//! Queues and topics of the caller's broker, read and written through the broker's
//! agent: the list with depth, consumers and rates, a test message, and a peek at the
//! head of a queue that leaves the messages in place.
//!
//! The broker must be RUNNING (else 409 `ConflictException`). The call goes to a node
//! that serves, as the reconciler last observed it: a node whose engine reported Ready
//! (an active/standby pair's active, any Ready cluster member, the single node); if that
//! agent says it does not serve (409, e.g. a pair that just failed over) the next Ready
//! node is tried. The agent's 404 (no such queue) and 400 (a name the engine refuses)
//! keep their meaning.

use agent_contract::{
    Destination, DestinationKind, DestinationName, EngineState, PeekedMessage, TestMessage,
    MAX_PEEK,
};

use super::{owned_broker, AppContext, Caller};
use crate::agent_client::AgentCallError;
use crate::db::model::BrokerRow;
use crate::domain::BrokerState;
use crate::error::Error;
use crate::reconcile::broker::agent_base_url;

/// A destination kind from the path (`queue` or `topic`), 400 otherwise.
pub fn parse_kind(kind: &str) -> Result<DestinationKind, Error> {
    DestinationKind::parse(kind).map_err(|m| Error::bad_request("kind", capitalise(&m)))
}

/// A destination name from the path, 400 if invalid.
pub fn parse_name(name: &str) -> Result<DestinationName, Error> {
    DestinationName::parse(name).map_err(|m| Error::bad_request("name", capitalise(&m)))
}

fn capitalise(m: &str) -> String {
    let mut c = m.chars();
    match c.next() {
        Some(f) => format!("{}{}.", f.to_uppercase(), c.as_str()),
        None => String::new(),
    }
}

/// Where to reach the agents that serve, in the order to try them.
struct Serving {
    token: String,
    bases: Vec<String>,
}

async fn serving(ctx: &AppContext, row: &BrokerRow) -> Result<Serving, Error> {
    let id = row.broker_id();
    let state = row.state()?;
    if state != BrokerState::Running {
        return Err(Error::conflict(
            "broker-id",
            format!(
                "Broker {id} is {}; its destinations can be read only while it is RUNNING.",
                state.as_wire()
            ),
        ));
    }
    let layout = crate::domain::nodes::layout(&id, row.mode()?, &row.region);
    let nodes = ctx.store.broker_nodes(&id).await?;
    let ports = ctx.store.broker_ports(&id).await?;
    let mut bases = Vec::new();
    for index in layout.indexes() {
        let ready = nodes
            .iter()
            .any(|n| n.node == index as i32 && n.current_state() == Some(EngineState::Ready));
        if ready {
            if let Ok(base) = agent_base_url(&ctx.ports.publish_host, &ports, index) {
                bases.push(base);
            }
        }
    }
    if bases.is_empty() {
        return Err(Error::conflict(
            "broker-id",
            format!("No node of broker {id} serves right now; try again shortly."),
        ));
    }
    let token = ctx
        .secrets
        .open(&row.agent_token_enc)
        .map_err(|e| Error::internal("opening the agent token", e))?;
    Ok(Serving { token, bases })
}

/// The agent's answer as this layer's error.
fn agent_error(e: AgentCallError) -> Error {
    match e {
        AgentCallError::Status {
            status: 404,
            message,
        } => Error::not_found("name", capitalise(&message)),
        AgentCallError::Status {
            status: 400,
            message,
        } => Error::bad_request("name", capitalise(&message)),
        AgentCallError::Status {
            status: 409,
            message,
        } => Error::conflict("broker-id", capitalise(&message)),
        other => Error::internal("calling the broker agent", anyhow::anyhow!("{other}")),
    }
}

/// Runs `call` on each serving node in turn until one does not answer 409.
async fn on_serving_node<T, F, Fut>(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    call: F,
) -> Result<T, Error>
where
    F: Fn(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, AgentCallError>>,
{
    let row = owned_broker(ctx, caller, broker_id).await?;
    let serving = serving(ctx, &row).await?;
    let mut last = None;
    for base in serving.bases {
        match call(base, serving.token.clone()).await {
            Err(e @ AgentCallError::Status { status: 409, .. }) => last = Some(e),
            other => return other.map_err(agent_error),
        }
    }
    Err(agent_error(last.unwrap_or_else(|| {
        AgentCallError::Failed(anyhow::anyhow!("no serving node"))
    })))
}

/// The broker's queues and topics.
pub async fn destinations_list(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
) -> Result<Vec<Destination>, Error> {
    on_serving_node(ctx, caller, broker_id, |base, token| async move {
        ctx.agent.0.destinations(&base, &token).await
    })
    .await
}

/// Send a test message to `kind`/`name` of the broker.
pub async fn destination_send(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    kind: &str,
    name: &str,
    message: TestMessage,
) -> Result<(), Error> {
    let kind = parse_kind(kind)?;
    let name = parse_name(name)?;
    message
        .validate()
        .map_err(|m| Error::bad_request("body", capitalise(&m)))?;
    let (name, message) = (&name, &message);
    on_serving_node(ctx, caller, broker_id, |base, token| async move {
        ctx.agent
            .0
            .send_message(&base, &token, kind, name, message)
            .await
    })
    .await
}

/// Up to `count` (1..=10, default 1) messages from the head of queue `name`, left in
/// the queue.
pub async fn destination_peek(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    name: &str,
    count: Option<u32>,
) -> Result<Vec<PeekedMessage>, Error> {
    let name = parse_name(name)?;
    let count = count.unwrap_or(1);
    if !(1..=MAX_PEEK).contains(&count) {
        return Err(Error::bad_request(
            "count",
            format!("The count must be from 1 to {MAX_PEEK}."),
        ));
    }
    let name = &name;
    on_serving_node(ctx, caller, broker_id, |base, token| async move {
        ctx.agent.0.peek(&base, &token, name, count).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts_are_validated() {
        assert_eq!(parse_kind("queue").unwrap(), DestinationKind::Queue);
        assert!(matches!(
            parse_kind("exchange"),
            Err(Error::BadRequest { .. })
        ));
        assert!(parse_name("orders").is_ok());
        let Err(Error::BadRequest { attribute, message }) = parse_name("a\u{1}b") else {
            panic!("a control character is refused");
        };
        assert_eq!(attribute, "name");
        assert!(message.starts_with("The destination name"), "{message}");
    }

    #[test]
    fn agent_statuses_keep_their_meaning() {
        let st = |status: u16| AgentCallError::Status {
            status,
            message: "no queue named x".into(),
        };
        assert!(matches!(agent_error(st(404)), Error::NotFound { .. }));
        assert!(matches!(agent_error(st(400)), Error::BadRequest { .. }));
        assert!(matches!(agent_error(st(409)), Error::Conflict { .. }));
        assert!(matches!(agent_error(st(502)), Error::Internal { .. }));
    }
}
