//! Berth's logs route: `GET /v1/berth/brokers/{broker-id}/logs`, the broker's collected
//! engine logs (`app::logs`), searched or tailed like CloudWatch's GetLogEvents. Every
//! role may read them (see [`super::auth::action_for`]).

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use crate::app::logs::{self, LogQuery};
use crate::app::Caller;
use crate::error::Error;
use crate::wire::{timestamp, ErrorBody};

pub const TAG: &str = "logs";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(get_broker_logs))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct LogsParams {
    /// `general` or `audit` (ActiveMQ); default both.
    pub stream: Option<String>,
    /// Node index (0 for a single instance; 0–1 for a pair, 0–2 for a cluster).
    pub node: Option<String>,
    /// Lines containing this text (case-insensitive, taken literally; at most 1024).
    pub contains: Option<String>,
    /// Lines at or after this time, milliseconds since the Unix epoch.
    pub start_time: Option<String>,
    /// Lines before this time, milliseconds since the Unix epoch.
    pub end_time: Option<String>,
    /// 1–1000, default 100.
    pub max_results: Option<String>,
    /// A `nextToken` (older lines) or `nextForwardToken` (newer lines) of an earlier answer.
    pub next_token: Option<String>,
    /// `true`: oldest first (then poll with `nextForwardToken`); default newest first.
    pub start_from_head: Option<String>,
}

/// One log line.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEventView {
    /// When the agent read the line, milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub message: String,
    pub node: u32,
    /// `general` or `audit`.
    pub stream: String,
    /// The line's number in its node's stream.
    pub seq: u64,
}

/// How collection of one stream of one node stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogCollectionView {
    pub node: u32,
    pub stream: String,
    /// The last sequence number collected.
    pub last_seq: u64,
    /// Lines the node's agent dropped (its size cap) before they were collected.
    pub dropped_lines: u64,
    pub last_collected: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetBrokerLogsResponse {
    pub events: Vec<LogEventView>,
    /// Older lines (newest-first answers only), when there are more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// Pass as `nextToken` to get the lines stored after this answer.
    pub next_forward_token: String,
    pub collection: Vec<LogCollectionView>,
}

/// The broker's collected engine logs: newest first (older pages by `nextToken`), or
/// oldest first with `startFromHead=true`; poll for new lines with `nextForwardToken`.
/// Only the streams turned on in the broker's `logs` are collected.
#[utoipa::path(get, path = "/v1/berth/brokers/{broker_id}/logs", tag = TAG,
    operation_id = "GetBrokerLogs",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>"), LogsParams),
    responses(
        (status = 200, body = GetBrokerLogsResponse),
        (status = 400, description = "BadRequestException: a parameter or token is not valid", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn get_broker_logs(
    State(state): State<ApiState>,
    caller: Caller,
    Path(broker_id): Path<String>,
    Query(q): Query<LogsParams>,
) -> Result<Json<GetBrokerLogsResponse>, Error> {
    let page = logs::logs_search(&state.app, &caller, &broker_id, q.as_query()).await?;
    Ok(Json(GetBrokerLogsResponse {
        events: page
            .events
            .into_iter()
            .map(|e| LogEventView {
                timestamp: e.timestamp.timestamp_millis(),
                message: e.message,
                node: e.node,
                stream: e.stream.as_str().to_owned(),
                seq: e.seq,
            })
            .collect(),
        next_token: page.next_token,
        next_forward_token: page.next_forward_token,
        collection: page
            .collection
            .into_iter()
            .map(|c| LogCollectionView {
                node: c.node,
                stream: c.stream.as_str().to_owned(),
                last_seq: c.last_seq,
                dropped_lines: c.dropped_lines,
                last_collected: timestamp(c.collected_at),
            })
            .collect(),
    }))
}

impl LogsParams {
    pub fn as_query(&self) -> LogQuery<'_> {
        LogQuery {
            stream: self.stream.as_deref(),
            node: self.node.as_deref(),
            contains: self.contains.as_deref(),
            start_time: self.start_time.as_deref(),
            end_time: self.end_time.as_deref(),
            max_results: self.max_results.as_deref(),
            next_token: self.next_token.as_deref(),
            start_from_head: self.start_from_head.as_deref(),
        }
    }
}
