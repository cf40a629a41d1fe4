//! HTTP surface: router assembly and cross-cutting layers.
//!
//! `/v1/...` is the Amazon MQ wire API; `/healthz` is for operators; `/` serves the web
//! console (embedded, no build step).

pub mod auth;
pub mod body;
pub mod brokers;
pub mod catalogue;
pub mod configurations;
pub mod docs;
pub mod error;
pub mod health;
pub mod sigv4;
pub mod tags;
pub mod users;
pub mod web;

use std::time::Duration;

use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
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
    )
)]
struct ApiDoc;

/// The routes of the Amazon MQ API with their OpenAPI description.
fn api_router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(brokers::routes())
        .merge(catalogue::routes())
        .merge(configurations::routes())
        .merge(tags::routes())
        .merge(users::routes())
}

/// The OpenAPI document of the control plane, generated from the code.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = api_router().split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api
}

/// State shared by handlers.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub app: AppContext,
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

async fn not_found() -> Error {
    Error::not_found(
        "path",
        "The requested resource or operation does not exist.",
    )
}

pub fn router(state: ApiState) -> Router {
    let request_id = HeaderName::from_static("x-amzn-requestid");
    let (api, _) = api_router().split_for_parts();
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ));
    Router::new()
        .merge(api)
        .route("/healthz", get(health::healthz))
        .merge(web::routes())
        .merge(docs::routes())
        .fallback(not_found)
        .with_state(state)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, UuidRequestId))
}
