//! Who is calling, and may they: every `/v1/` request carries either a valid SigV4
//! signature (service `mq`) made with an active access key Berth issued, or a console
//! session cookie (`http::session`; non-safe methods then also need the CSRF token).
//! The middleware reads the body (it is part of the signature, and may carry `_csrf`),
//! builds the [`Caller`], maps the request to an [`Action`] and asks
//! [`app::authorize`](crate::app::authorize); handlers get the [`Caller`] from the
//! request extensions and the body untouched. The response carries the [`Caller`] too
//! (for the audit log), and a refreshed session cookie when one is due.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::session;
use super::sigv4::{self, SigV4Error};
use super::ApiState;
use crate::app::{authorize, Action, Caller, Principal, Role};
use crate::domain::AccountId;
use crate::error::Error;

/// Largest request body accepted (configuration data is the biggest legitimate one).
const MAX_BODY: usize = 2 * 1024 * 1024;

fn auth_error(e: SigV4Error) -> Error {
    Error::AuthFailure {
        code: e.aws_code(),
        message: e.message(),
    }
}

/// What a request to `path` with `method` does, for the authorization rules: Berth's
/// identity routes are [`Action::Admin`] (the audit log [`Action::ReadAudit`]; a
/// broker's destinations and logs read with safe methods and write otherwise); on the
/// Amazon MQ API safe methods read and every other method writes.
pub fn action_for(method: &Method, path: &str) -> Action {
    if path == "/v1/berth/audit-events" || path.starts_with("/v1/berth/audit-events/") {
        Action::ReadAudit
    } else if is_broker_view_path(path) || is_monitoring_path(path) {
        // a broker's queues and topics (listing reads, sending and peeking write), logs,
        // metrics and cost; alarms and webhooks likewise
        if session::is_safe(method) {
            Action::Read
        } else {
            Action::Write
        }
    } else if path.starts_with("/v1/berth/") || path == "/v1/berth" {
        Action::Admin
    } else if session::is_safe(method) {
        Action::Read
    } else {
        Action::Write
    }
}

/// Alarms, webhooks and cost (`app::alarms`, `app::webhooks`, `app::metering`).
fn is_monitoring_path(path: &str) -> bool {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    under("/v1/berth/alarms") || under("/v1/berth/webhooks") || under("/v1/berth/cost")
}

/// `/v1/berth/brokers/{id}/` + destinations, logs, metrics or cost, and everything
/// below them.
fn is_broker_view_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/berth/brokers/") else {
        return false;
    };
    match rest.split_once('/') {
        Some((id, tail)) => {
            !id.is_empty()
                && ["destinations", "logs", "metrics", "cost"]
                    .iter()
                    .any(|v| tail == *v || tail.strip_prefix(v).is_some_and(|r| r.starts_with('/')))
        }
        None => false,
    }
}

/// The authenticated caller, as the response carries it for the audit log.
#[derive(Clone, Debug)]
pub struct AuthenticatedCaller(pub Caller);

/// Authenticates and authorizes a request; on success the [`Caller`] is in its
/// extensions.
pub async fn authenticate(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let action = action_for(req.method(), req.uri().path());
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Error::bad_request(
                "body",
                format!("The request body must be at most {MAX_BODY} bytes."),
            )
            .into_response()
        }
    };
    let use_session = !parts.headers.contains_key(header::AUTHORIZATION)
        && session::cookie_token(&parts.headers).is_some();
    let (caller, refreshed) = if use_session {
        match by_session(&state, &parts, &bytes).await {
            Ok(v) => v,
            Err((e, caller)) => return refused(e, caller),
        }
    } else {
        match by_signature(&state, &parts, &bytes).await {
            Ok(c) => (c, None),
            Err(e) => return e.into_response(),
        }
    };
    if let Err(e) = authorize(&caller, action) {
        return refused(e, Some(caller));
    }
    let mut parts = parts;
    parts.extensions.insert(caller.clone());
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if let Some(c) = refreshed {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp.extensions_mut().insert(AuthenticatedCaller(caller));
    resp
}

fn refused(e: Error, caller: Option<Caller>) -> Response {
    let mut resp = e.into_response();
    if let Some(c) = caller {
        resp.extensions_mut().insert(AuthenticatedCaller(c));
    }
    resp
}

/// The caller of a valid session (and the CSRF token for a non-safe method), plus a
/// refreshed cookie when due.
async fn by_session(
    state: &ApiState,
    parts: &Parts,
    body: &Bytes,
) -> Result<(Caller, Option<HeaderValue>), (Error, Option<Caller>)> {
    let token = session::cookie_token(&parts.headers).unwrap_or_default();
    let resolved = session::resolve(state, &token)
        .await
        .map_err(|e| (e, None))?;
    let caller = resolved
        .session
        .caller(state.identity.settings.region.clone());
    if !session::is_safe(&parts.method) {
        session::check_csrf(&resolved.session, &parts.headers, body)
            .map_err(|e| (e, Some(caller.clone())))?;
    }
    let refreshed = session::refreshed_cookie(state, &resolved, &parts.headers)
        .map_err(|e| (e, Some(caller.clone())))?;
    Ok((caller, refreshed))
}

async fn by_signature(state: &ApiState, parts: &Parts, bytes: &Bytes) -> Result<Caller, Error> {
    let auth = sigv4::parse_authorization(&parts.headers).map_err(auth_error)?;
    let region = state
        .app
        .regions
        .get(&auth.credential.region)
        .ok_or_else(|| auth_error(SigV4Error::WrongRegion(auth.credential.region.clone())))?;
    let key = state
        .app
        .store
        .access_key_fetch(&auth.credential.access_key_id)
        .await?
        // A deactivated key is refused exactly like an unknown one.
        .filter(|k| k.active)
        .ok_or_else(|| auth_error(SigV4Error::UnknownAccessKey))?;
    let secret = state
        .app
        .secrets
        .open(&key.secret_enc)
        .map_err(|e| Error::internal("opening access key secret", e))?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    sigv4::verify(
        &parts.method,
        path_and_query,
        &parts.headers,
        bytes,
        &auth,
        &secret,
        chrono::Utc::now(),
    )
    .map_err(auth_error)?;
    let account = AccountId::parse(&key.account_id)
        .map_err(|e| Error::internal("stored account id", anyhow::anyhow!(e)))?;
    let role = Role::from_db(&key.role)?;
    state.app.store.access_key_touch(&key.access_key_id).await?;
    let mut caller = Caller::new(account, region);
    caller.principal = Principal::AccessKey {
        access_key_id: key.access_key_id,
    };
    caller.role = role;
    Ok(caller)
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| auth_error(SigV4Error::Missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_maps_to_an_action() {
        for (method, path, action) in [
            (Method::GET, "/v1/brokers", Action::Read),
            (Method::HEAD, "/v1/brokers/b-1", Action::Read),
            (Method::POST, "/v1/brokers", Action::Write),
            (Method::PUT, "/v1/brokers/b-1/users/u", Action::Write),
            (Method::DELETE, "/v1/tags/arn", Action::Write),
            (Method::PATCH, "/v1/configurations/c-1", Action::Write),
            (Method::GET, "/v1/berth/access-keys", Action::Admin),
            (Method::POST, "/v1/berth/console-users", Action::Admin),
            (Method::GET, "/v1/berth/audit-events", Action::ReadAudit),
            (
                Method::GET,
                "/v1/berth/brokers/b-1/destinations",
                Action::Read,
            ),
            (
                Method::POST,
                "/v1/berth/brokers/b-1/destinations/queue/q/messages",
                Action::Write,
            ),
            (
                Method::POST,
                "/v1/berth/brokers/b-1/destinations/queue/q/peek",
                Action::Write,
            ),
            (Method::GET, "/v1/berth/brokers/b-1/logs", Action::Read),
            (Method::GET, "/v1/berth/brokers/b-1/logsx", Action::Admin),
            (Method::GET, "/v1/berth/brokers/b-1/metrics", Action::Read),
            (
                Method::GET,
                "/v1/berth/brokers/b-1/metrics/CpuUtilization",
                Action::Read,
            ),
            (Method::GET, "/v1/berth/brokers/b-1/metricsx", Action::Admin),
            (Method::GET, "/v1/berth/brokers/b-1/other", Action::Admin),
            (Method::GET, "/v1/berth/alarms", Action::Read),
            (Method::POST, "/v1/berth/alarms", Action::Write),
            (Method::DELETE, "/v1/berth/webhooks/wh-1", Action::Write),
            (
                Method::GET,
                "/v1/berth/webhooks/wh-1/deliveries",
                Action::Read,
            ),
            (Method::GET, "/v1/berth/cost", Action::Read),
            (Method::GET, "/v1/berth/brokers/b-1/cost", Action::Read),
            (Method::GET, "/v1/berth/alarmsx", Action::Admin),
            (
                Method::GET,
                "/v1/berth/brokers//destinations",
                Action::Admin,
            ),
        ] {
            assert_eq!(action_for(&method, path), action, "{method} {path}");
        }
    }
}
