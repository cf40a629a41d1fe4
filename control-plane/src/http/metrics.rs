//! Berth's metric history routes (`app::metrics`): the series of a broker and the
//! datapoints of one metric. Reads, so every role (see [`super::auth::action_for`]).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use crate::app::metrics::{self, DatapointsQuery};
use crate::app::Caller;
use crate::error::Error;
use crate::wire::ErrorBody;

pub const TAG: &str = "metrics";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_metrics))
        .routes(routes!(get_metric_data))
}

/// One series: a metric with one set of dimensions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSeriesView {
    pub metric_name: String,
    /// Beyond `Broker`: `Node` always, `Queue`/`Topic`/`VirtualHost` for destinations.
    pub dimensions: BTreeMap<String, String>,
    /// CloudWatch unit (`Count`, `Percent`, `Bytes`, `Count/Second`, …).
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_value: Option<f64>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListMetricsResponse {
    pub metrics: Vec<MetricSeriesView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatapointView {
    /// Start of the period, RFC 3339.
    pub timestamp: String,
    pub value: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetMetricDataResponse {
    pub metric_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub stat: String,
    pub period: i64,
    /// Which stored resolution answered: `raw`, `1m` or `1h`.
    pub resolution: String,
    pub start_time: String,
    pub end_time: String,
    /// Oldest first; periods without samples are left out.
    pub datapoints: Vec<DatapointView>,
}

/// Query of GetMetricData; `dimension.<Name>=<value>` (Node, Queue, Topic, VirtualHost)
/// filters the series, any number of times.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // documents the query; the handler reads the raw query string
pub struct MetricDataQuery {
    /// RFC 3339; default: an hour before endTime.
    pub start_time: Option<String>,
    /// RFC 3339; default: now.
    pub end_time: Option<String>,
    /// Seconds: 1, 5, 10, 30 (raw retention only) or a multiple of 60 (of 3600 beyond
    /// the 1-minute retention); default 60. At most 1440 datapoints.
    pub period: Option<String>,
    /// Average (default), Minimum, Maximum, Sum or SampleCount.
    pub stat: Option<String>,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Lists the broker's metric series with their newest values.
#[utoipa::path(get, path = "/v1/berth/brokers/{broker_id}/metrics", tag = TAG,
    operation_id = "ListMetrics",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>")),
    responses(
        (status = 200, body = ListMetricsResponse),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn list_metrics(
    State(state): State<ApiState>,
    caller: Caller,
    Path(broker_id): Path<String>,
) -> Result<Json<ListMetricsResponse>, Error> {
    let series = metrics::metrics_series(&state.app, &caller, &broker_id).await?;
    Ok(Json(ListMetricsResponse {
        metrics: series
            .into_iter()
            .map(|s| MetricSeriesView {
                metric_name: s.name,
                dimensions: s.dimensions,
                unit: s.unit,
                last_value: s.last_value,
                last_timestamp: s.last_ts.map(rfc3339),
            })
            .collect(),
    }))
}

/// The datapoints of one metric of the broker: raw samples within raw retention, else
/// 1-minute, else 1-hour roll-ups.
#[utoipa::path(get, path = "/v1/berth/brokers/{broker_id}/metrics/{metric_name}", tag = TAG,
    operation_id = "GetMetricData",
    params(
        ("broker_id" = String, Path, description = "Broker id, b-<uuid>"),
        ("metric_name" = String, Path, description = "Amazon MQ metric name, e.g. MessageReadyCount"),
        MetricDataQuery,
    ),
    responses(
        (status = 200, body = GetMetricDataResponse),
        (status = 400, description = "BadRequestException: unknown metric, bad range, period or stat, too many datapoints", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn get_metric_data(
    State(state): State<ApiState>,
    caller: Caller,
    Path((broker_id, metric_name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<GetMetricDataResponse>, Error> {
    let mut q = DatapointsQuery::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "startTime" => q.start_time = Some(v),
            "endTime" => q.end_time = Some(v),
            "period" => q.period = Some(v),
            "stat" => q.stat = Some(v),
            other => match other.strip_prefix("dimension.") {
                Some(name) => q.dimensions.push((name.to_owned(), v)),
                None => {
                    return Err(Error::bad_request(
                        other,
                        format!("Unknown query parameter {other:?}."),
                    ))
                }
            },
        }
    }
    let d = metrics::metrics_datapoints(
        &state.app,
        &caller,
        &state.metrics.retention,
        &broker_id,
        &metric_name,
        q,
        chrono::Utc::now(),
    )
    .await?;
    Ok(Json(GetMetricDataResponse {
        metric_name: d.name,
        unit: d.unit,
        stat: d.stat.as_str().to_owned(),
        period: d.period,
        resolution: d.resolution.as_str().to_owned(),
        start_time: rfc3339(d.start),
        end_time: rfc3339(d.end),
        datapoints: d
            .points
            .into_iter()
            .map(|(ts, value)| DatapointView {
                timestamp: rfc3339(ts),
                value,
            })
            .collect(),
    }))
}
