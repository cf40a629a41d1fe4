//! The login page and logout. The form posts here; the console hands it, unchanged, to
//! the session API's own login (`POST /auth/login`, served in-process), so password
//! checks, login limits, auditing and the cookie's flags are exactly the API's.

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::{html, see_other, session, ApiState, Form};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    username: String,
    account: String,
}

/// `GET /console/login`: the form (or the broker list, when already signed in).
pub async fn page(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(token) = session::cookie_token(&headers) {
        if session::resolve(&state, &token).await.is_ok() {
            return see_other("/console/brokers");
        }
    }
    html(
        StatusCode::OK,
        &LoginPage {
            error: None,
            username: String::new(),
            account: String::new(),
        },
    )
}

/// Sends `req` to the session API's routes in-process.
async fn session_api(state: &ApiState, req: Request) -> Response {
    let (router, _) = session::routes().split_for_parts();
    match router.with_state(state.clone()).oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// A request to the session API with the visitor's headers, peer address and `body`.
fn inner_request(path: &str, headers: &HeaderMap, peer: Peer, body: Bytes) -> Request {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .body(Body::from(body))
        .expect("a static request");
    *req.headers_mut() = headers.clone();
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    req.headers_mut().remove(header::CONTENT_LENGTH);
    if let Some(p) = peer {
        req.extensions_mut().insert(p);
    }
    req
}

/// Largest login or logout form accepted.
const MAX_FORM: usize = 64 * 1024;

/// A request's peer address, headers and (small) body.
async fn split(req: Request) -> Result<(Peer, HeaderMap, Bytes), Response> {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .cloned();
    let body = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        super::error_page(
            None,
            &crate::error::Error::bad_request("body", "The form is too large."),
        )
    })?;
    Ok((peer, parts.headers, body))
}

type Peer = Option<ConnectInfo<std::net::SocketAddr>>;

/// The message of an API error response.
async fn message_of(resp: Response) -> String {
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "Signing in did not work. Please try again.".into())
}

/// `POST /console/login`: signs in and goes to the broker list, or shows the form again
/// with the reason (the same words for an unknown user and a wrong password).
pub async fn submit(State(state): State<ApiState>, req: Request) -> Response {
    let (peer, headers, body) = match split(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let form = Form::parse(&body);
    let resp = session_api(&state, inner_request("/auth/login", &headers, peer, body)).await;
    let status = resp.status();
    if status.is_success() {
        let mut out = see_other("/console/brokers");
        for c in resp.headers().get_all(header::SET_COOKIE) {
            out.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        return out;
    }
    let retry = resp.headers().get(header::RETRY_AFTER).cloned();
    let error = match status {
        StatusCode::UNAUTHORIZED => "Incorrect username or password.".to_owned(),
        StatusCode::TOO_MANY_REQUESTS => {
            let secs = retry
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("a few")
                .to_owned();
            format!("Too many failed sign-ins. Try again in {secs} seconds.")
        }
        _ => message_of(resp).await,
    };
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut page = html(
        status,
        &LoginPage {
            error: Some(error),
            username: form.get("username"),
            account: form.get("account"),
        },
    );
    if let Some(r) = retry {
        page.headers_mut().insert(header::RETRY_AFTER, r);
    }
    page
}

/// `POST /console/logout`: ends the session through the session API (which checks the
/// CSRF token) and goes to the login page with the cookie cleared.
pub async fn logout(State(state): State<ApiState>, req: Request) -> Response {
    let (peer, headers, body) = match split(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let resp = session_api(&state, inner_request("/auth/logout", &headers, peer, body)).await;
    let status = resp.status();
    if status.is_success() || status == StatusCode::UNAUTHORIZED {
        let mut out = see_other(super::LOGIN_PATH);
        for c in resp.headers().get_all(header::SET_COOKIE) {
            out.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        return out;
    }
    let message = message_of(resp).await;
    let e = crate::error::Error::forbidden(message);
    super::error_page(None, &e).into_response()
}
