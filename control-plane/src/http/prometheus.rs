//! Prometheus routes, behind the `metrics_token` bearer token (not SigV4: Prometheus
//! sends a static `Authorization: Bearer` header). Without a token configured they are
//! off and answer 404, so an installation exposes nothing it was not told to.
//!
//! - `GET /metrics`: the control plane's own instruments (`crate::instruments`).
//! - `GET /v1/berth/prometheus/targets`: http_sd JSON, one target group per broker node,
//!   each pointing back at this server's node route.
//! - `GET /v1/berth/prometheus/brokers/{broker_id}/nodes/{node}`: that node's newest
//!   collected report as `amazonmq_<MetricName>` gauges with the sample's dimensions
//!   as labels.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use crate::app::metrics::{prometheus_node_report, prometheus_scrape, prometheus_targets};
use crate::error::Error;
use crate::wire::ErrorBody;

pub const TAG: &str = "prometheus";

/// Content type of the text exposition prometheus-client writes (OpenMetrics 1.0).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(control_plane_metrics))
        .routes(routes!(targets))
        .routes(routes!(node_metrics))
}

/// The route is on and the request carries its token; else 404 (off) or 401.
fn check_token(state: &ApiState, headers: &HeaderMap) -> Result<(), Error> {
    let Some(expected) = state.metrics.prometheus_token.as_deref() else {
        return Err(Error::not_found(
            "path",
            "The requested resource or operation does not exist.",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Error::Unauthorized {
            message: "A valid metrics bearer token is required.".into(),
        })
    }
}

fn exposition(text: String) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
}

/// The control plane's own metrics: API latency, reconcile steps, brokers by state,
/// metric collection.
#[utoipa::path(get, path = "/metrics", tag = TAG, operation_id = "ScrapeControlPlane",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"),
        (status = 401, description = "UnauthorizedException: missing or wrong token", body = ErrorBody),
        (status = 404, description = "No metrics_token configured", body = ErrorBody),
    ))]
async fn control_plane_metrics(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    check_token(&state, &headers)?;
    Ok(exposition(prometheus_scrape(&state.app).await?))
}

/// A Prometheus http_sd target group.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetGroup {
    /// `host:port` of this control plane (as the request reached it).
    pub targets: Vec<String>,
    /// `__metrics_path__` plus broker_id, broker_name, node, engine, account.
    pub labels: BTreeMap<String, String>,
}

/// Prometheus http_sd: one target group per broker node.
#[utoipa::path(get, path = "/v1/berth/prometheus/targets", tag = TAG,
    operation_id = "PrometheusTargets",
    responses(
        (status = 200, body = Vec<TargetGroup>),
        (status = 401, description = "UnauthorizedException", body = ErrorBody),
        (status = 404, description = "No metrics_token configured", body = ErrorBody),
    ))]
async fn targets(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Vec<TargetGroup>>, Error> {
    check_token(&state, &headers)?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let groups = prometheus_targets(&state.app)
        .await?
        .into_iter()
        .map(|t| TargetGroup {
            targets: vec![host.clone()],
            labels: BTreeMap::from([
                (
                    "__metrics_path__".to_owned(),
                    format!(
                        "/v1/berth/prometheus/brokers/{}/nodes/{}",
                        t.broker_id, t.node
                    ),
                ),
                ("broker_id".to_owned(), t.broker_id),
                ("broker_name".to_owned(), t.broker_name),
                ("node".to_owned(), t.node.to_string()),
                ("engine".to_owned(), t.engine),
                ("account".to_owned(), t.account_id),
            ]),
        })
        .collect();
    Ok(Json(groups))
}

/// A Prometheus metric or label name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

type Gauges = Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>;

/// A report as `amazonmq_<name>` gauges (samples with unusable names are left out).
fn report_text(report: &agent_contract::metrics::MetricsReport) -> String {
    let mut families: BTreeMap<&str, Gauges> = BTreeMap::new();
    for s in report.samples.iter().filter(|s| is_name(&s.name)) {
        let labels: Vec<(String, String)> = s
            .dimensions
            .iter()
            .filter(|(k, _)| is_name(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        families
            .entry(s.name.as_str())
            .or_default()
            .get_or_create(&labels)
            .set(s.value);
    }
    let mut registry = Registry::with_prefix("amazonmq");
    for (name, family) in families {
        registry.register(name, format!("Amazon MQ metric {name}"), family);
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "encoding a broker's metrics failed");
    }
    out
}

/// The newest collected report of one node, as Prometheus text.
#[utoipa::path(get, path = "/v1/berth/prometheus/brokers/{broker_id}/nodes/{node}", tag = TAG,
    operation_id = "ScrapeBrokerNode",
    params(
        ("broker_id" = String, Path, description = "Broker id, b-<uuid>"),
        ("node" = u32, Path, description = "Node index"),
    ),
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"),
        (status = 401, description = "UnauthorizedException", body = ErrorBody),
        (status = 404, description = "Off, or nothing collected from that node", body = ErrorBody),
    ))]
async fn node_metrics(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((broker_id, node)): Path<(String, String)>,
) -> Result<Response, Error> {
    check_token(&state, &headers)?;
    let node: u32 = node
        .parse()
        .map_err(|_| Error::bad_request("node", "The node must be a node index (0, 1, 2)."))?;
    let report = prometheus_node_report(&state.app, &broker_id, node).await?;
    Ok(exposition(report_text(&report)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_contract::metrics::{MetricsReport, Sample, Unit};

    #[test]
    fn reports_become_prefixed_gauges_with_dimension_labels() {
        let report = MetricsReport {
            broker_id: "b-1".into(),
            node: 0,
            timestamp_ms: 0,
            samples: vec![
                Sample::new("MessageReadyCount", 3.0, Unit::Count)
                    .with("Queue", "a\"b")
                    .with("VirtualHost", "/"),
                Sample::new("CpuUtilization", 12.5, Unit::Percent),
                Sample::new("bad name", 1.0, Unit::Count),
            ],
            engine_error: None,
        };
        let text = report_text(&report);
        assert!(
            text.contains(r#"amazonmq_MessageReadyCount{Queue="a\"b",VirtualHost="/"} 3.0"#),
            "{text}"
        );
        assert!(text.contains("amazonmq_CpuUtilization 12.5"), "{text}");
        assert!(!text.contains("bad"), "{text}");
    }
}
