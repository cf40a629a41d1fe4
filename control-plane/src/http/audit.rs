//! Records every mutating `/v1/` call in the audit log, whatever its outcome, once the
//! caller is known (a request that fails authentication belongs to no account and is
//! not recorded). The operation is the route's OpenAPI `operationId` (`CreateBroker`,
//! `CreateAccessKey`…), so no route needs its own bookkeeping; the resource comes from
//! the path parameters, or for a create from the id in the answer. Request bodies are
//! never looked at.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;

use super::auth::AuthenticatedCaller;
use super::error::ERROR_TYPE_HEADER;
use super::session;
use crate::app::audit::{self, AuditRecord};
use crate::app::AppContext;

/// Largest answer read back for the id of a created resource.
const MAX_ANSWER: usize = 64 * 1024;

/// What the audit layer needs: the store, and each route's operation name.
#[derive(Clone, Debug)]
pub struct AuditState {
    pub app: Arc<AppContext>,
    operations: Arc<HashMap<(Method, String), String>>,
}

impl AuditState {
    /// Operation names from the OpenAPI document (`(method, path template)` →
    /// `operationId`).
    pub fn new(app: Arc<AppContext>, api: &utoipa::openapi::OpenApi) -> Self {
        let mut operations = HashMap::new();
        for (path, item) in &api.paths.paths {
            let ops = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, op) in ops {
                if let Some(id) = op.as_ref().and_then(|o| o.operation_id.clone()) {
                    operations.insert((method, path.clone()), id);
                }
            }
        }
        Self {
            app,
            operations: Arc::new(operations),
        }
    }
}

/// Resource type named by a path parameter or a collection segment.
fn resource_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "broker_id" | "brokers" => "Broker",
        "username" | "users" => "User",
        "configuration_id" | "configurations" | "configuration_revision" => "Configuration",
        "resource_arn" | "tags" => "Tags",
        "access_key_id" | "access-keys" => "AccessKey",
        "console_username" | "console-users" => "ConsoleUser",
        _ => return None,
    })
}

/// The resource type and id (path parameter values joined with `/`) of a request.
pub fn resource_of(template: &str, path: &str) -> (Option<String>, Option<String>) {
    let mut kind = None;
    let mut ids = Vec::new();
    for (t, p) in template.split('/').zip(path.split('/')) {
        if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            kind = resource_type(name).or(kind);
            let value = percent_decode(p);
            ids.push(value);
        } else if let Some(k) = resource_type(t) {
            kind = Some(k);
        }
    }
    let id = (!ids.is_empty()).then(|| ids.join("/"));
    (kind.map(str::to_owned), id)
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// The id a create answered with (`brokerId`, `accessKeyId`, `username`, else `id`).
fn created_id(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["brokerId", "accessKeyId", "username", "id"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|x| x.as_str()).map(str::to_owned))
}

/// The middleware: runs the request, then records it if it was a change.
pub async fn record(State(state): State<AuditState>, req: Request, next: Next) -> Response {
    if session::is_safe(req.method()) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let source = session::source_address(req.extensions());
    let resp = next.run(req).await;
    let Some(AuthenticatedCaller(caller)) = resp.extensions().get::<AuthenticatedCaller>().cloned()
    else {
        return resp;
    };
    let template = template.unwrap_or_else(|| path.clone());
    let operation = state
        .operations
        .get(&(method.clone(), template.clone()))
        .cloned()
        .unwrap_or_else(|| format!("{method} {template}"));
    let (resource_type, mut resource_id) = resource_of(&template, &path);
    let status = resp.status();
    let error_code = resp
        .headers()
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut resp = resp;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if resource_id.is_none() && method == Method::POST && status.is_success() && is_json {
        let (parts, body) = resp.into_parts();
        match axum::body::to_bytes(body, MAX_ANSWER).await {
            Ok(bytes) => {
                resource_id = created_id(&bytes);
                resp = Response::from_parts(parts, Body::from(bytes));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read an answer for the audit log");
                resp = Response::from_parts(parts, Body::empty());
            }
        }
    }
    let mut r = AuditRecord::for_caller(&caller, operation, source);
    r.resource_type = resource_type;
    r.resource_id = resource_id;
    r.status = status.as_u16();
    r.error_code = error_code;
    audit::record(&state.app, r).await;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_come_from_the_path() {
        assert_eq!(
            resource_of("/v1/brokers", "/v1/brokers"),
            (Some("Broker".into()), None)
        );
        assert_eq!(
            resource_of("/v1/brokers/{broker_id}/reboot", "/v1/brokers/b-1/reboot"),
            (Some("Broker".into()), Some("b-1".into()))
        );
        assert_eq!(
            resource_of(
                "/v1/brokers/{broker_id}/users/{username}",
                "/v1/brokers/b-1/users/al%20ice"
            ),
            (Some("User".into()), Some("b-1/al ice".into()))
        );
        assert_eq!(
            resource_of(
                "/v1/berth/access-keys/{access_key_id}/deactivate",
                "/v1/berth/access-keys/AKIA1/deactivate"
            ),
            (Some("AccessKey".into()), Some("AKIA1".into()))
        );
        assert_eq!(
            created_id(br#"{"brokerArn":"x","brokerId":"b-9"}"#).as_deref(),
            Some("b-9")
        );
    }
}
