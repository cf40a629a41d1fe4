//! HTTP surface: router assembly and cross-cutting layers.
//!
//! `/v1/...` is the Amazon MQ wire API; `/healthz` is for operators; `/` serves the web
//! console (embedded, no build step).

pub mod alarms;
pub mod audit;
pub mod auth;
pub mod body;
pub mod brokers;
pub mod catalogue;
pub mod configurations;
pub mod console;
pub mod cost;
pub mod destinations;
pub mod docs;
pub mod error;
pub mod health;
pub mod identity;
pub mod logs;
pub mod metrics;
pub mod prometheus;
pub mod server;
pub mod session;
pub mod sigv4;
pub mod tags;
pub mod users;
pub mod web;
pub mod webhooks;

use std::time::Duration;

use axum::http::{HeaderName, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppContext;
use crate::error::Error;

/// The API description; paths are added by the routers that serve them.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Berth",
        description = "Amazon MQ-compatible control plane for managed message brokers (REST JSON under /v1/).",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "brokers", description = "Broker lifecycle"),
        (name = "catalogue", description = "Engines, versions and instance types"),
        (name = "configurations", description = "Engine configurations and their revisions"),
        (name = "tags", description = "Tags on brokers and configurations"),
        (name = "users", description = "Broker users, applied live"),
        (name = "access-keys", description = "Berth: access keys of the caller's account (admin)"),
        (name = "console-users", description = "Berth: console users of the caller's account (admin)"),
        (name = "audit", description = "Berth: the audit log of the caller's account (admin, operator)"),
        (name = "console-session", description = "Berth: console sign-in with a session cookie"),
        (name = "destinations", description = "Berth: queues and topics of a broker, read through its agent (list: every role; send, peek: admin, operator)"),
        (name = "logs", description = "Berth: a broker's collected engine logs, searched and tailed (every role)"),
        (name = "alarms", description = "Berth: alarms on broker metrics, with state history (reads: every role; changes: admin, operator)"),
        (name = "webhooks", description = "Berth: signed webhooks notified of alarm transitions, and their delivery log (reads: every role; changes: admin, operator)"),
        (name = "cost", description = "Berth: metered usage and cost of the account's brokers (every role)"),
        (name = "metrics", description = "Berth: metric history of a broker, collected from its agents (every role)"),
        (name = "prometheus", description = "Berth: Prometheus scrape and service discovery, with `Authorization: Bearer <metrics_token>` (404 when no token is configured)"),
    )
)]
struct ApiDoc;

/// The routes of the Amazon MQ API and Berth's `/v1/berth/` extensions, with their
/// OpenAPI description: every one authenticated (SigV4 or session) and authorized.
fn api_router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(brokers::routes())
        .merge(catalogue::routes())
        .merge(configurations::routes())
        .merge(tags::routes())
        .merge(users::routes())
        .merge(identity::routes())
        .merge(destinations::routes())
        .merge(logs::routes())
        .merge(alarms::routes())
        .merge(webhooks::routes())
        .merge(cost::routes())
        .merge(metrics::routes())
}

/// The OpenAPI document of the control plane, generated from the code.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = api_router()
        .merge(session::routes())
        .merge(prometheus::routes())
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api
}

/// State shared by handlers.
#[derive(Clone, Debug)]
pub struct ApiState {
    /// Shared, not copied, per request (cloning it was a visible share of a request).
    pub app: std::sync::Arc<AppContext>,
    /// Console settings, the failed-login limiter.
    pub identity: std::sync::Arc<crate::app::identity::Identity>,
    /// Signs and verifies session cookies.
    pub sessions: std::sync::Arc<session::SessionKeys>,
    /// Metric retention and the Prometheus routes' token.
    pub metrics: std::sync::Arc<crate::app::metrics::MetricsConfig>,
}

#[derive(Clone, Copy, Default)]
struct UuidRequestId;

impl MakeRequestId for UuidRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        uuid::Uuid::new_v4()
            .to_string()
            .parse()
            .ok()
            .map(RequestId::new)
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    Error::internal("handler panicked", anyhow::anyhow!("panic")).into_response()
}

/// Longest a request may take from its head to its response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// 408 `RequestTimeoutException` when the handler runs over [`REQUEST_TIMEOUT`], or when
/// the request body did not arrive within the server's body timeout
/// ([`server::BodyDeadline`]), whatever the handler answered to the failed read.
async fn request_deadlines(req: axum::extract::Request, next: Next) -> Response {
    answer_within(REQUEST_TIMEOUT, req, next).await
}

async fn answer_within(limit: Duration, req: axum::extract::Request, next: Next) -> Response {
    let body = req.extensions().get::<server::BodyDeadline>().cloned();
    let Ok(resp) = tokio::time::timeout(limit, next.run(req)).await else {
        return Error::RequestTimeout {
            message: format!(
                "The request did not complete within {} ms.",
                limit.as_millis()
            ),
        }
        .into_response();
    };
    match body {
        Some(body) if body.expired() => Error::RequestTimeout {
            message: format!(
                "The request body did not arrive within {} ms.",
                body.timeout().as_millis()
            ),
        }
        .into_response(),
        _ => resp,
    }
}

async fn not_found() -> Error {
    Error::not_found(
        "path",
        "The requested resource or operation does not exist.",
    )
}

pub fn router(state: ApiState) -> Router {
    let request_id = HeaderName::from_static("x-amzn-requestid");
    let (api, _) = api_router().split_for_parts();
    let audit = audit::AuditState::new(state.app.clone(), &openapi());
    // Layers run outside in: audit sees the final answer, with the caller auth found.
    let api = api
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route_layer(axum::middleware::from_fn_with_state(audit, audit::record));
    let (console, _) = session::routes().split_for_parts();
    let (prometheus, _) = prometheus::routes().split_for_parts();
    Router::new()
        .merge(api)
        .merge(console)
        .merge(prometheus)
        .route("/healthz", get(health::healthz))
        .merge(web::routes())
        .merge(console::routes())
        .merge(docs::routes())
        .route_layer(axum::middleware::from_fn(crate::instruments::track_http))
        .fallback(not_found)
        .with_state(state)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(request_deadlines))
        .layer(axum::middleware::from_fn(error::shape_client_errors))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, UuidRequestId))
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_slow_handler_gets_a_shaped_408() {
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .layer(axum::middleware::from_fn(|req, next| {
                answer_within(Duration::from_millis(20), req, next)
            }));
        let req = Request::builder().uri("/slow").body(Body::empty()).unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), axum::http::StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            resp.headers()[error::ERROR_TYPE_HEADER],
            "RequestTimeoutException"
        );
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains("20 ms")),
            "{v}"
        );
    }
}
