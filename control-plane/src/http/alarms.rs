//! Berth's alarm routes (`/v1/berth/alarms`): create, list, describe, delete and the
//! transition history (`app::alarms`). Reads are for every role, changes for admins and
//! operators.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::parse_json;
use super::ApiState;
use crate::app::alarms::{self, Alarm, NewAlarm};
use crate::app::Caller;
use crate::error::Error;
use crate::wire::{timestamp, ErrorBody};

pub const TAG: &str = "alarms";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_alarm, list_alarms))
        .routes(routes!(describe_alarm, delete_alarm))
        .routes(routes!(list_alarm_history))
}

/// A new alarm.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAlarmRequest {
    /// Unique in the account, 1–255 characters.
    pub name: Option<String>,
    pub broker_id: Option<String>,
    /// One of Berth's metric names (Amazon MQ's), e.g. `ConsumerCount`.
    pub metric_name: Option<String>,
    /// Series must carry these dimensions (`Node`, `Queue`, `Topic`, `VirtualHost`).
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Average, Minimum, Maximum, Sum or SampleCount.
    pub statistic: Option<String>,
    /// GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold or
    /// LessThanOrEqualToThreshold.
    pub comparison: Option<String>,
    pub threshold: Option<f64>,
    /// At least 10.
    pub period_seconds: Option<i64>,
    /// 1–100.
    pub evaluation_periods: Option<i64>,
    /// Webhooks notified on every transition (besides the account's `allAlarms` ones).
    #[serde(default)]
    pub webhook_ids: Vec<String>,
}

/// An alarm and its state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmView {
    pub alarm_id: String,
    pub name: String,
    pub broker_id: String,
    /// A built-in alarm (metrics collection stopped): listed, not deletable.
    pub built_in: bool,
    pub metric_name: String,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: String,
    pub comparison: String,
    pub threshold: f64,
    pub period_seconds: u64,
    pub evaluation_periods: u32,
    pub webhook_ids: Vec<String>,
    /// OK, ALARM or INSUFFICIENT_DATA.
    pub state: String,
    pub state_reason: String,
    pub state_changed_at: String,
    pub created_at: String,
}

impl From<Alarm> for AlarmView {
    fn from(a: Alarm) -> Self {
        Self {
            alarm_id: a.id,
            name: a.name,
            broker_id: a.broker_id,
            built_in: a.builtin,
            metric_name: a.metric_name,
            dimensions: a.dimensions,
            statistic: a.rule.statistic.as_str().into(),
            comparison: a.rule.comparison.as_str().into(),
            threshold: a.rule.threshold,
            period_seconds: a.rule.period.as_secs(),
            evaluation_periods: a.rule.evaluation_periods,
            webhook_ids: a.webhook_ids,
            state: a.state.as_str().into(),
            state_reason: a.state_reason,
            state_changed_at: timestamp(a.state_changed_at),
            created_at: timestamp(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListAlarmsResponse {
    pub alarms: Vec<AlarmView>,
}

/// One state transition.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmTransitionView {
    pub time: String,
    pub old_state: String,
    pub new_state: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmHistoryResponse {
    /// Newest first.
    pub transitions: Vec<AlarmTransitionView>,
}

/// Creates an alarm on a metric of one of the caller's brokers.
#[utoipa::path(post, path = "/v1/berth/alarms", tag = TAG, operation_id = "CreateAlarm",
    request_body = CreateAlarmRequest,
    responses(
        (status = 200, body = AlarmView),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 409, description = "ConflictException: the name is taken", body = ErrorBody),
    ))]
async fn create_alarm(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<AlarmView>, Error> {
    let r: CreateAlarmRequest = parse_json(&body)?;
    let new = NewAlarm {
        name: r.name,
        broker_id: r.broker_id,
        metric_name: r.metric_name,
        dimensions: r.dimensions,
        statistic: r.statistic,
        comparison: r.comparison,
        threshold: r.threshold,
        period_seconds: r.period_seconds,
        evaluation_periods: r.evaluation_periods,
        webhook_ids: r.webhook_ids,
    };
    Ok(Json(
        alarms::alarm_create(&state.app, &caller, new).await?.into(),
    ))
}

/// Lists the account's alarms, built-in ones included.
#[utoipa::path(get, path = "/v1/berth/alarms", tag = TAG, operation_id = "ListAlarms",
    responses((status = 200, body = ListAlarmsResponse)))]
async fn list_alarms(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<ListAlarmsResponse>, Error> {
    let list = alarms::alarm_list(&state.app, &caller).await?;
    Ok(Json(ListAlarmsResponse {
        alarms: list.into_iter().map(AlarmView::from).collect(),
    }))
}

/// Describes an alarm.
#[utoipa::path(get, path = "/v1/berth/alarms/{alarm_id}", tag = TAG, operation_id = "DescribeAlarm",
    params(("alarm_id" = String, Path, description = "Alarm id, al-<uuid>")),
    responses(
        (status = 200, body = AlarmView),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn describe_alarm(
    State(state): State<ApiState>,
    caller: Caller,
    Path(alarm_id): Path<String>,
) -> Result<Json<AlarmView>, Error> {
    Ok(Json(
        alarms::alarm_describe(&state.app, &caller, &alarm_id)
            .await?
            .into(),
    ))
}

/// Deletes an alarm (built-in alarms cannot be deleted).
#[utoipa::path(delete, path = "/v1/berth/alarms/{alarm_id}", tag = TAG, operation_id = "DeleteAlarm",
    params(("alarm_id" = String, Path, description = "Alarm id, al-<uuid>")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "BadRequestException: a built-in alarm", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn delete_alarm(
    State(state): State<ApiState>,
    caller: Caller,
    Path(alarm_id): Path<String>,
) -> Result<StatusCode, Error> {
    alarms::alarm_delete(&state.app, &caller, &alarm_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The alarm's state transitions, newest first.
#[utoipa::path(get, path = "/v1/berth/alarms/{alarm_id}/history", tag = TAG,
    operation_id = "ListAlarmHistory",
    params(("alarm_id" = String, Path, description = "Alarm id, al-<uuid>")),
    responses(
        (status = 200, body = AlarmHistoryResponse),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn list_alarm_history(
    State(state): State<ApiState>,
    caller: Caller,
    Path(alarm_id): Path<String>,
) -> Result<Json<AlarmHistoryResponse>, Error> {
    let rows = alarms::alarm_history(&state.app, &caller, &alarm_id).await?;
    Ok(Json(AlarmHistoryResponse {
        transitions: rows
            .into_iter()
            .map(|r| AlarmTransitionView {
                time: timestamp(r.at),
                old_state: r.old_state,
                new_state: r.new_state,
                reason: r.reason,
            })
            .collect(),
    }))
}
