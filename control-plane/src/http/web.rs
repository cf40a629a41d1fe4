//! The root of the site, which sends visitors to the web console (`http::console`), and
//! the installation CA certificate at `/ca.pem`.

use axum::response::Redirect;
use axum::routing::get;
use axum::Router;

use super::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
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
