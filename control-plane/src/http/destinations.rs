//! Berth's destinations routes: the queues and topics of a broker, read through its
//! agent (`app::destinations`). Listing is a read (every role); sending a test message
//! and peeking at a queue are writes (admin, operator): see [`super::auth::action_for`].

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::parse_json;
use super::ApiState;
use crate::app::{destinations, Caller};
use crate::error::Error;
use crate::wire::ErrorBody;

pub const TAG: &str = "destinations";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_destinations))
        .routes(routes!(send_message))
        .routes(routes!(peek_messages))
}

/// A queue or topic with its depth, consumers and rates.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    /// `queue` or `topic` (RabbitMQ: a topic exchange).
    pub kind: String,
    pub name: String,
    /// Messages in the queue (ready + unacknowledged).
    pub messages: u64,
    pub messages_ready: u64,
    pub messages_unacked: u64,
    pub consumers: u64,
    /// Messages per second published (RabbitMQ only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<f64>,
    /// Messages per second delivered (RabbitMQ only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_rate: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListDestinationsResponse {
    pub destinations: Vec<DestinationView>,
}

/// A test message.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// UTF-8 text body (at most 256 KiB).
    pub body: String,
    /// Application properties (RabbitMQ headers, JMS string properties).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Persistent delivery; default true.
    pub persistent: Option<bool>,
}

/// A message read from the head of a queue and left there.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeekedMessageView {
    /// UTF-8 text, or base64 when `bodyBase64` is true.
    pub body: String,
    pub body_base64: bool,
    pub headers: BTreeMap<String, String>,
    pub redelivered: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeekMessagesResponse {
    pub messages: Vec<PeekedMessageView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeekQuery {
    /// 1–10, default 1.
    pub count: Option<String>,
}

/// Lists the broker's queues and topics (through its agent; RabbitMQ refreshes its
/// statistics every few seconds).
#[utoipa::path(get, path = "/v1/berth/brokers/{broker_id}/destinations", tag = TAG,
    operation_id = "ListDestinations",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>")),
    responses(
        (status = 200, body = ListDestinationsResponse),
        (status = 404, description = "NotFoundException", body = ErrorBody),
        (status = 409, description = "ConflictException: the broker is not RUNNING or no node serves", body = ErrorBody),
    ))]
async fn list_destinations(
    State(state): State<ApiState>,
    caller: Caller,
    Path(broker_id): Path<String>,
) -> Result<Json<ListDestinationsResponse>, Error> {
    let list = destinations::destinations_list(&state.app, &caller, &broker_id).await?;
    Ok(Json(ListDestinationsResponse {
        destinations: list
            .into_iter()
            .map(|d| DestinationView {
                kind: d.kind.as_str().to_owned(),
                name: d.name,
                messages: d.messages,
                messages_ready: d.messages_ready,
                messages_unacked: d.messages_unacked,
                consumers: d.consumers,
                publish_rate: d.publish_rate,
                deliver_rate: d.deliver_rate,
            })
            .collect(),
    }))
}

/// Sends a test message to a queue or topic of the broker.
#[utoipa::path(post, path = "/v1/berth/brokers/{broker_id}/destinations/{kind}/{name}/messages",
    tag = TAG, operation_id = "SendTestMessage",
    params(
        ("broker_id" = String, Path, description = "Broker id, b-<uuid>"),
        ("kind" = String, Path, description = "queue or topic"),
        ("name" = String, Path, description = "Destination name"),
    ),
    request_body = SendMessageRequest,
    responses(
        (status = 204, description = "Sent"),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 403, description = "AccessDeniedException: viewers may not send", body = ErrorBody),
        (status = 404, description = "NotFoundException: no such broker or queue", body = ErrorBody),
        (status = 409, description = "ConflictException: the broker is not RUNNING or no node serves", body = ErrorBody),
    ))]
async fn send_message(
    State(state): State<ApiState>,
    caller: Caller,
    Path((broker_id, kind, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let req: SendMessageRequest = parse_json(&body)?;
    let message = agent_contract::TestMessage {
        body: req.body,
        properties: req.properties,
        persistent: req.persistent.unwrap_or(true),
    };
    destinations::destination_send(&state.app, &caller, &broker_id, &kind, &name, message).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads up to `count` messages from the head of a queue without consuming them.
#[utoipa::path(post, path = "/v1/berth/brokers/{broker_id}/destinations/queue/{name}/peek",
    tag = TAG, operation_id = "PeekMessages",
    params(
        ("broker_id" = String, Path, description = "Broker id, b-<uuid>"),
        ("name" = String, Path, description = "Queue name"),
        PeekQuery,
    ),
    responses(
        (status = 200, body = PeekMessagesResponse),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 403, description = "AccessDeniedException: viewers may not peek", body = ErrorBody),
        (status = 404, description = "NotFoundException: no such broker or queue", body = ErrorBody),
        (status = 409, description = "ConflictException: the broker is not RUNNING or no node serves", body = ErrorBody),
    ))]
async fn peek_messages(
    State(state): State<ApiState>,
    caller: Caller,
    Path((broker_id, name)): Path<(String, String)>,
    Query(q): Query<PeekQuery>,
) -> Result<Json<PeekMessagesResponse>, Error> {
    let count = match q.count.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<u32>().map_err(|_| {
            Error::bad_request("count", "The count must be a number from 1 to 10.")
        })?),
    };
    let messages =
        destinations::destination_peek(&state.app, &caller, &broker_id, &name, count).await?;
    Ok(Json(PeekMessagesResponse {
        messages: messages
            .into_iter()
            .map(|m| PeekedMessageView {
                body: m.body,
                body_base64: m.body_base64,
                headers: m.headers,
                redelivered: m.redelivered,
            })
            .collect(),
    }))
}
