//! `GET /healthz`: 200 once migrations ran, the database answers and the reconciler has
//! completed a sweep; 503 otherwise.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;

pub async fn healthz(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let db = state.app.store.ping().await.is_ok();
    let reconciler = state.app.nudger.is_up();
    let ok = db && reconciler;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "status": if ok { "ok" } else { "starting" }, "database": db, "reconciler": reconciler }),
        ),
    )
}
