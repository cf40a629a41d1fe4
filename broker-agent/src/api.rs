//! The agent's HTTP API, used only by the control plane.
//!
//! - `GET /health` → [`HealthReport`](agent_contract::HealthReport);
//! - `PUT /spec` → replace the broker's users (and memory tuning) live, and take a
//!   renewed TLS certificate (see [`crate::context`] for what applies when): 200 with
//!   the health report once applied (for a certificate: once every TLS listener serves
//!   it, which for ActiveMQ includes a restart of the broker process, a few seconds),
//!   400 for an invalid or foreign spec (or TLS material that is not a usable
//!   certificate/key pair), 409 while the engine is not Ready, 500 if applying failed
//!   (users: the agent keeps retrying in the background; a certificate: the next
//!   `PUT /spec` with it tries again).
//! - `GET /destinations` → the engine's queues and topics
//!   ([`Destination`](agent_contract::Destination)s);
//! - `POST /destinations/{kind}/{name}/send` with a
//!   [`TestMessage`](agent_contract::TestMessage) → 204;
//! - `POST /destinations/queue/{name}/peek?count=N` (1 ≤ N ≤ 10, default 1) → up to N
//!   [`PeekedMessage`](agent_contract::PeekedMessage)s, left in the queue.
//!
//!   These three: 400 for a bad kind, name, count or message, 404 for an unknown queue,
//!   409 unless the engine is Ready (a standby serves nothing), 502 when the engine
//!   fails or answers something unexpected.
//!
//! - `GET /metrics` → a [`MetricsReport`](agent_contract::metrics::MetricsReport) sampled
//!   now ([`crate::metrics`]; always 200: engine failures are in `engine_error`);
//! - `GET /logs?stream=general|audit&after=N&limit=M` → a
//!   [`LogPage`](agent_contract::logs::LogPage) (`stream` required, `after` default 0,
//!   `limit` 1..=[`MAX_LOG_PAGE`](agent_contract::logs::MAX_LOG_PAGE), default the
//!   maximum): 400 for a bad parameter, 404 when the agent keeps no logs.
//!
//! Every request, including unknown routes, must carry `Authorization: Bearer <token>`
//! with the spec's `agent_token` (compared in constant time); otherwise 401 without any
//! detail, so the API reveals nothing to a caller without the token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

use agent_contract::logs::{LogStream, MAX_LOG_PAGE};
use agent_contract::{DestinationKind, DestinationName, EngineState, TestMessage, MAX_PEEK};

use crate::context::{Agent, UpdateError};
use crate::engine::DestinationError;
use crate::specfile;

/// The API router, authenticated as a whole.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/spec", put(put_spec))
        .route("/metrics", get(metrics))
        .route("/logs", get(logs))
        .route("/destinations", get(list_destinations))
        .route("/destinations/{kind}/{name}/send", post(send_message))
        .route("/destinations/{kind}/{name}/peek", post(peek))
        .layer(middleware::from_fn_with_state(agent.clone(), require_token))
        .with_state(agent)
}

async fn require_token(State(agent): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if agent.token_matches(token) => next.run(req).await,
        _ => {
            let mut resp = StatusCode::UNAUTHORIZED.into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

async fn health(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.state.report()).into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn metrics(State(agent): State<Arc<Agent>>) -> Response {
    Json(crate::metrics::report(&agent).await).into_response()
}

#[derive(serde::Deserialize)]
struct LogsQuery {
    stream: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// The parameters of `GET /logs`, or why not.
fn logs_params(q: &LogsQuery) -> Result<(LogStream, u64, usize), String> {
    let stream = q
        .stream
        .as_deref()
        .and_then(LogStream::parse)
        .ok_or("stream must be general or audit")?;
    let after = match q.after.as_deref() {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| "after must be a sequence number")?,
    };
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => MAX_LOG_PAGE,
        Some(Ok(n)) if (1..=MAX_LOG_PAGE).contains(&n) => n,
        Some(_) => return Err(format!("limit must be a number from 1 to {MAX_LOG_PAGE}")),
    };
    Ok((stream, after, limit))
}

async fn logs(State(agent): State<Arc<Agent>>, Query(query): Query<LogsQuery>) -> Response {
    let (stream, after, limit) = match logs_params(&query) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    if agent.logs().is_none() {
        return error(StatusCode::NOT_FOUND, "this agent keeps no logs".into());
    }
    // Reading a segment is file I/O: off the async threads.
    match tokio::task::spawn_blocking(move || agent.logs().map(|s| s.page(stream, after, limit)))
        .await
    {
        Ok(Some(page)) => Json(page).into_response(),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the logs failed".into(),
        ),
    }
}

async fn put_spec(State(agent): State<Arc<Agent>>, body: Bytes) -> Response {
    // Parsed by hand: axum's JSON rejection would echo serde's message, which can quote
    // a secret value.
    let spec = match specfile::parse(&body) {
        Ok(spec) => spec,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match agent.update_spec(spec).await {
        Ok(report) => Json(report).into_response(),
        Err(e @ UpdateError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ UpdateError::NotReady(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ UpdateError::Failed(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A refused request: its status and message (see [`error`]).
type Refusal = (StatusCode, String);

fn refused((status, message): Refusal) -> Response {
    error(status, message)
}

/// 409 unless the engine is Ready.
fn require_ready(agent: &Agent) -> Result<(), Refusal> {
    match agent.state.state() {
        EngineState::Ready => Ok(()),
        EngineState::Standby => Err((
            StatusCode::CONFLICT,
            "this node is a standby: the active node serves the destinations".into(),
        )),
        other => Err((
            StatusCode::CONFLICT,
            format!("the engine is not ready (it is {other:?})"),
        )),
    }
}

fn destination_error(e: DestinationError) -> Response {
    let status = match &e {
        DestinationError::NotFound(_) => StatusCode::NOT_FOUND,
        DestinationError::Unsupported(_) => StatusCode::BAD_REQUEST,
        DestinationError::Failed(_) => StatusCode::BAD_GATEWAY,
    };
    if status == StatusCode::BAD_GATEWAY {
        tracing::warn!(error = %e, "destination request failed");
    }
    error(status, e.to_string())
}

fn parse_target(kind: &str, name: &str) -> Result<(DestinationKind, DestinationName), Refusal> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    Ok((
        DestinationKind::parse(kind).map_err(bad)?,
        DestinationName::parse(name).map_err(bad)?,
    ))
}

async fn list_destinations(State(agent): State<Arc<Agent>>) -> Response {
    if let Err(r) = require_ready(&agent) {
        return refused(r);
    }
    let spec = agent.spec();
    match agent.driver.destinations(&spec).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => destination_error(e),
    }
}

async fn send_message(
    State(agent): State<Arc<Agent>>,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (kind, name) = match parse_target(&kind, &name) {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    let message: TestMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid message: {e}")),
    };
    if let Err(m) = message.validate() {
        return error(StatusCode::BAD_REQUEST, m);
    }
    if let Err(r) = require_ready(&agent) {
        return refused(r);
    }
    let spec = agent.spec();
    match agent
        .driver
        .send_message(&spec, kind, &name, &message)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => destination_error(e),
    }
}

#[derive(serde::Deserialize)]
struct PeekQuery {
    count: Option<String>,
}

async fn peek(
    State(agent): State<Arc<Agent>>,
    Path((kind, name)): Path<(String, String)>,
    Query(query): Query<PeekQuery>,
) -> Response {
    let (kind, name) = match parse_target(&kind, &name) {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    if kind != DestinationKind::Queue {
        return error(
            StatusCode::BAD_REQUEST,
            "only queues can be peeked at".into(),
        );
    }
    let count = match query.count.as_deref().map(str::parse::<u32>) {
        None => 1,
        Some(Ok(n)) if (1..=MAX_PEEK).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("count must be a number from 1 to {MAX_PEEK}"),
            )
        }
    };
    if let Err(r) = require_ready(&agent) {
        return refused(r);
    }
    let spec = agent.spec();
    match agent.driver.peek(&spec, &name, count).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => destination_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sample_spec, test_agent, TOKEN};
    use agent_contract::{EngineState, EngineUser, HealthReport};
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Vec<u8>, axum::http::HeaderMap) {
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, bytes, headers)
    }

    #[tokio::test]
    async fn health_requires_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _) = test_agent(dir.path());
        let app = router(agent);

        let (status, body, headers) = call(&app, "GET", "/health", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.is_empty());
        assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");

        let (status, body, _) =
            call(&app, "GET", "/health", Some("wrong-token-0123456789"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.is_empty());

        // a prefix of the right token is not the token
        let (status, _, _) = call(&app, "GET", "/health", Some(&TOKEN[..10]), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let (status, body, _) = call(&app, "GET", "/health", Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::OK);
        let report: HealthReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.broker_id, "b-1234");
        assert_eq!(report.state, EngineState::Starting);
    }

    #[tokio::test]
    async fn metrics_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _) = test_agent(dir.path());
        let app = router(agent.clone());
        let (status, _, _) = call(&app, "GET", "/metrics", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body, _) = call(&app, "GET", "/metrics", Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::OK);
        let report: agent_contract::metrics::MetricsReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.broker_id, "b-1234");
        assert!(report.engine_error.unwrap().contains("not ready"));
        // no store
        let (status, _, _) = call(&app, "GET", "/logs?stream=general", Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let store = Arc::new(crate::logstore::LogStore::open(&dir.path().join("logs")).unwrap());
        let (agent, _) = test_agent(dir.path());
        let agent = Arc::new(
            Arc::try_unwrap(agent)
                .ok()
                .unwrap()
                .with_log_store(store.clone()),
        );
        agent
            .engine_output()
            .push(format!("hello with the agent token {TOKEN}").as_bytes());
        agent.engine_output().push(b"second");
        agent.engine_output().end_batch();
        let app = router(agent);
        for uri in [
            "/logs",
            "/logs?stream=nope",
            "/logs?stream=general&after=-1",
            "/logs?stream=general&limit=0",
            "/logs?stream=general&limit=1001",
        ] {
            let (status, _, _) = call(&app, "GET", uri, Some(TOKEN), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        }
        let (status, body, _) = call(
            &app,
            "GET",
            "/logs?stream=general&after=0&limit=1",
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let page: agent_contract::logs::LogPage = serde_json::from_slice(&body).unwrap();
        assert_eq!((page.first_seq, page.last_seq), (1, 2));
        assert_eq!(page.lines.len(), 1);
        assert!(
            !page.lines[0].message.contains(TOKEN),
            "{}",
            page.lines[0].message
        );
        assert_eq!(page.epoch, store.epoch());
    }

    #[tokio::test]
    async fn unknown_routes_are_404_only_with_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _) = test_agent(dir.path());
        let app = router(agent);
        let (status, _, _) = call(&app, "GET", "/nope", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = call(&app, "GET", "/nope", Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn put_spec_statuses() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        let app = router(agent.clone());
        let mut spec = sample_spec();
        spec.users.push(EngineUser {
            username: "second".into(),
            password: "second-password".into(),
            admin: false,
            console_access: false,
            groups: vec![],
        });
        let body = serde_json::to_string(&spec).unwrap();

        let (status, _, _) = call(&app, "PUT", "/spec", None, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let (status, _, _) = call(&app, "PUT", "/spec", Some(TOKEN), Some(body.clone())).await;
        assert_eq!(status, StatusCode::CONFLICT);

        let g = agent.state.engine_started(false);
        agent.state.mark_ready(g);
        let (status, resp, _) = call(&app, "PUT", "/spec", Some(TOKEN), Some(body.clone())).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&resp));
        let report: HealthReport = serde_json::from_slice(&resp).unwrap();
        assert_eq!(report.state, EngineState::Ready);
        assert_eq!(driver.reconciled.lock().unwrap().last().unwrap().len(), 2);

        let mut foreign = spec.clone();
        foreign.broker_id = "b-else".into();
        let (status, _, _) = call(
            &app,
            "PUT",
            "/spec",
            Some(TOKEN),
            Some(serde_json::to_string(&foreign).unwrap()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // malformed JSON: 400 and the message does not echo the value
        let bad = body.replace("\"second-password\"", "424242424242");
        let (status, resp, _) = call(&app, "PUT", "/spec", Some(TOKEN), Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(!String::from_utf8_lossy(&resp).contains("424242424242"));
    }

    #[tokio::test]
    async fn destinations_need_the_token_valid_input_and_a_ready_engine() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _) = test_agent(dir.path());
        let app = router(agent.clone());
        let msg = Some(r#"{"body":"hi"}"#.to_string());

        let (status, _, _) = call(&app, "GET", "/destinations", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // not ready yet: 409 with a message
        let (status, body, _) = call(&app, "GET", "/destinations", Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(String::from_utf8_lossy(&body).contains("not ready"));

        for (uri, body) in [
            ("/destinations/exchange/q/send", msg.clone()),
            ("/destinations/queue/a%01b/send", msg.clone()),
            ("/destinations/queue/q/send", Some("{}".to_string())),
            ("/destinations/topic/q/peek", None),
            ("/destinations/queue/q/peek?count=11", None),
            ("/destinations/queue/q/peek?count=0", None),
        ] {
            let (status, _, _) = call(&app, "POST", uri, Some(TOKEN), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        }

        let g = agent.state.engine_started(false);
        agent.state.mark_ready(g);
        // the fake driver offers no destinations: 400, not a failure
        let (status, _, _) = call(&app, "GET", "/destinations", Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) =
            call(&app, "POST", "/destinations/queue/q/send", Some(TOKEN), msg).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
