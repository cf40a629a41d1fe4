//! The web console, embedded in the binary (no build step). A placeholder page for now.

use axum::response::Html;
use axum::routing::get;
use axum::Router;

use super::ApiState;

const INDEX: &str = include_str!("../../../web/index.html");

pub fn routes() -> Router<ApiState> {
    Router::new().route("/", get(|| async { Html(INDEX) }))
}
