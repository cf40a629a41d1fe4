//! `GET /healthz`: 200 once migrations ran, the database answers and the reconciler has
//! completed a sweep; 503 with the reason otherwise. It answers within the database
//! timeout even when the database is gone, so it is safe for load balancers and
//! `make up`'s wait loop.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;

pub async fn healthz(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let db = state.app.store.ping().await;
    let reconciler = state.app.nudger.is_up();
    let mut reasons = Vec::new();
    if let Err(e) = &db {
        reasons.push(match e {
            crate::error::Error::ServiceUnavailable { .. } => "database unreachable".to_owned(),
            _ => "database query failed".to_owned(),
        });
    }
    if !reconciler {
        reasons.push("reconciler has not completed its first sweep".to_owned());
    }
    let ok = reasons.is_empty();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let label = match (ok, db.is_ok()) {
        (true, _) => "ok",
        (false, false) => "unavailable",
        (false, true) => "starting",
    };
    let mut body = json!({ "status": label, "database": db.is_ok(), "reconciler": reconciler });
    if !ok {
        body["reason"] = json!(reasons.join("; "));
    }
    (status, Json(body))
}
