//! Berth's cost routes: the account's metered cost by broker and by day or month
//! (`GET /v1/berth/cost`) and one broker's month-to-date running total
//! (`GET /v1/berth/brokers/{id}/cost`), from `app::metering`.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use crate::app::metering::{self, CostLine, Granularity};
use crate::app::Caller;
use crate::error::Error;
use crate::wire::{timestamp, ErrorBody};

pub const TAG: &str = "cost";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(get_cost))
        .routes(routes!(get_broker_cost))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CostQuery {
    /// `YYYY-MM-DD` or RFC 3339; default: the start of this month (UTC).
    pub start: Option<String>,
    /// Exclusive; default: now.
    pub end: Option<String>,
    /// DAILY (default) or MONTHLY.
    pub granularity: Option<String>,
}

/// Usage and cost of a broker or a period, in USD.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostLineView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_start: Option<String>,
    pub instance_hours: f64,
    pub storage_gb_hours: f64,
    pub cost: f64,
}

impl CostLineView {
    fn broker(l: CostLine) -> Self {
        Self {
            broker_id: Some(l.key),
            broker_name: l.broker_name,
            period_start: None,
            instance_hours: l.instance_hours,
            storage_gb_hours: l.storage_gb_hours,
            cost: l.cost,
        }
    }

    fn period(l: CostLine) -> Self {
        Self {
            broker_id: None,
            broker_name: None,
            period_start: Some(l.key),
            instance_hours: l.instance_hours,
            storage_gb_hours: l.storage_gb_hours,
            cost: l.cost,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostResponse {
    pub start: String,
    pub end: String,
    pub currency: String,
    pub total: f64,
    pub by_broker: Vec<CostLineView>,
    pub by_period: Vec<CostLineView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerCostResponse {
    pub broker_id: String,
    /// Start of the month the running total covers.
    pub month_start: String,
    pub currency: String,
    pub instance_hours: f64,
    pub storage_gb_hours: f64,
    pub cost: f64,
}

/// The account's metered cost in `[start, end)`, by broker and by period.
#[utoipa::path(get, path = "/v1/berth/cost", tag = TAG, operation_id = "GetCost",
    params(CostQuery),
    responses(
        (status = 200, body = CostResponse),
        (status = 400, description = "BadRequestException", body = ErrorBody),
    ))]
async fn get_cost(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<CostQuery>,
) -> Result<Json<CostResponse>, Error> {
    let start = q
        .start
        .as_deref()
        .map(|s| metering::parse_bound(s, "start"))
        .transpose()?;
    let end = q
        .end
        .as_deref()
        .map(|s| metering::parse_bound(s, "end"))
        .transpose()?;
    let granularity = Granularity::parse(q.granularity.as_deref())?;
    let report = metering::cost_report(&state.app, &caller, start, end, granularity).await?;
    Ok(Json(CostResponse {
        start: timestamp(report.start),
        end: timestamp(report.end),
        currency: "USD".into(),
        total: report.total,
        by_broker: report
            .by_broker
            .into_iter()
            .map(CostLineView::broker)
            .collect(),
        by_period: report
            .by_period
            .into_iter()
            .map(CostLineView::period)
            .collect(),
    }))
}

/// A broker's cost this month so far (also for a deleted broker).
#[utoipa::path(get, path = "/v1/berth/brokers/{broker_id}/cost", tag = TAG,
    operation_id = "GetBrokerCost",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>")),
    responses(
        (status = 200, body = BrokerCostResponse),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn get_broker_cost(
    State(state): State<ApiState>,
    caller: Caller,
    Path(broker_id): Path<String>,
) -> Result<Json<BrokerCostResponse>, Error> {
    let (month_start, line) =
        metering::broker_cost(&state.app, &caller, &broker_id, chrono::Utc::now()).await?;
    Ok(Json(BrokerCostResponse {
        broker_id: line.key,
        month_start: timestamp(month_start),
        currency: "USD".into(),
        instance_hours: line.instance_hours,
        storage_gb_hours: line.storage_gb_hours,
        cost: line.cost,
    }))
}
