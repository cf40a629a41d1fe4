//! The web console, embedded in the binary (no build step; a placeholder page for
//! now), and the installation CA certificate at `/ca.pem`.

use axum::response::Html;
use axum::routing::get;
use axum::Router;

use super::ApiState;

const INDEX: &str = include_str!("../../../web/index.html");

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/ca.pem", get(ca_pem))
}

/// The installation CA's certificate, which clients trust to verify broker TLS
/// endpoints. Public information: no authentication.
async fn ca_pem(
    axum::extract::State(state): axum::extract::State<ApiState>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        state.app.ca_pem.to_string(),
    )
}
