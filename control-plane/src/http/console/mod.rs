//! The web console: server-rendered HTML pages under `/console/`, built from askama
//! templates (`web/templates/`, escaped by default) and one stylesheet and one script
//! (`web/static/`) compiled into the binary.
//!
//! Pages need a console session (the `berth_session` cookie of `http::session`); without
//! a valid one they redirect to the login page. Every form POST carries the session's
//! CSRF token in the `_csrf` field, checked by `session::check_csrf`, and every change is
//! authorized with [`app::authorize`](crate::app::authorize) on the session's
//! [`Caller`] before the app layer runs it: a viewer's forged POST gets a 403 page. Errors
//! render as HTML pages with their 4xx status, never as the API's JSON.

mod alarms;
mod assets;
mod brokers;
pub mod charts;
mod cost;
mod identity;
mod login;
mod logs;
mod metrics;
mod snippets;

use askama::Template;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::error::ERROR_TYPE_HEADER;
use super::session;
use super::ApiState;
use crate::app::identity::ActiveSession;
use crate::app::{authorize, Action, Caller, Role};
use crate::error::Error;

/// The crate version: static asset URLs carry it, so an upgrade fetches them anew.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where pages send a visitor without a session.
pub const LOGIN_PATH: &str = "/console/login";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/brokers") }),
        )
        .route("/console/static/{file}", get(assets::serve))
        .route("/console/login", get(login::page).post(login::submit))
        .route("/console/logout", post(login::logout))
        .route("/console/brokers", get(brokers::list))
        .route(
            "/console/brokers/new",
            get(brokers::wizard).post(brokers::create),
        )
        .route("/console/brokers/{id}", get(brokers::page))
        .route("/console/brokers/{id}/state", get(brokers::state_json))
        .route("/console/brokers/{id}/metrics", get(metrics::page))
        .route("/console/brokers/{id}/logs", get(logs::page))
        .route("/console/brokers/{id}/{action}", post(brokers::action))
        .route(
            "/console/access-keys",
            get(identity::access_keys).post(identity::access_keys_post),
        )
        .route(
            "/console/console-users",
            get(identity::console_users).post(identity::console_users_post),
        )
        .route("/console/audit", get(identity::audit))
        .route("/console/cost", get(cost::page))
        .route("/console/alarms", get(alarms::list).post(alarms::post))
        .route("/console/alarms/{id}", get(alarms::detail))
        .route(
            "/console/webhooks",
            get(alarms::hooks).post(alarms::hooks_post),
        )
        .route("/console/webhooks/{id}", get(alarms::hook_detail))
}

/// The signed-in visitor of a console page: the session and the [`Caller`] it acts as.
/// Without a valid session the extractor answers with a redirect to the login page.
#[derive(Clone, Debug)]
pub struct Console {
    pub session: ActiveSession,
    pub caller: Caller,
    /// A fresh cookie when the current one is past half its life.
    refreshed: Option<HeaderValue>,
}

impl FromRequestParts<ApiState> for Console {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to(LOGIN_PATH).into_response();
        let Some(token) = session::cookie_token(&parts.headers) else {
            return Err(to_login());
        };
        let resolved = match session::resolve(state, &token).await {
            Ok(r) => r,
            Err(Error::Unauthorized { .. }) => return Err(to_login()),
            Err(e) => return Err(error_page(None, &e)),
        };
        let refreshed = session::refreshed_cookie(state, &resolved, &parts.headers)
            .map_err(|e| error_page(None, &e))?;
        let caller = resolved
            .session
            .caller(state.identity.settings.region.clone());
        Ok(Self {
            session: resolved.session,
            caller,
            refreshed,
        })
    }
}

/// What the layout needs of the signed-in user.
#[derive(Clone, Debug)]
pub struct Nav {
    pub username: String,
    pub role: &'static str,
    pub account: String,
    pub csrf: String,
    pub can_write: bool,
    pub can_admin: bool,
    pub can_audit: bool,
    /// Which top-level section is shown (`brokers`, `access-keys`, …).
    pub section: &'static str,
}

impl Console {
    pub fn nav(&self, section: &'static str) -> Nav {
        let role = self.caller.role;
        Nav {
            username: self.session.username.clone(),
            role: role.as_str(),
            account: self.session.account.as_str().to_owned(),
            csrf: self.session.csrf_token.clone(),
            can_write: crate::app::role_allows(role, Action::Write),
            can_admin: role == Role::Admin,
            can_audit: crate::app::role_allows(role, Action::ReadAudit),
            section,
        }
    }

    /// Renders `t` with status 200 (and the refreshed cookie, if any).
    pub fn render<T: Template>(&self, t: &T) -> Response {
        self.with_cookie(html(StatusCode::OK, t))
    }

    /// Adds the refreshed cookie to `resp`.
    pub fn with_cookie(&self, mut resp: Response) -> Response {
        if let Some(c) = &self.refreshed {
            resp.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        resp
    }

    /// The error page for `e`, within the layout.
    pub fn error(&self, e: &Error) -> Response {
        self.with_cookie(error_page(Some(self.nav("")), e))
    }

    /// Checks the CSRF token of a form POST and that the role allows `action`; then the
    /// form's fields.
    pub fn form(&self, headers: &HeaderMap, body: &Bytes, action: Action) -> Result<Form, Error> {
        session::check_csrf(&self.session, headers, body)?;
        authorize(&self.caller, action)?;
        Ok(Form::parse(body))
    }
}

/// The fields of an urlencoded form body.
#[derive(Clone, Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> String {
        self.raw(name).trim().to_owned()
    }

    /// The first value of `name` as typed (passwords, configuration data).
    pub fn raw(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The value of `name`, or `None` when absent or blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    /// Whether a checkbox named `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v != "off")
    }
}

/// `t` rendered as an HTML response with `status`; a 4xx carries `x-amzn-ErrorType`
/// so the API's error shaping leaves the page alone.
pub fn html<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => {
            let mut resp = (
                status,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
                .into_response();
            if status.is_client_error() {
                resp.headers_mut().insert(
                    ERROR_TYPE_HEADER,
                    HeaderValue::from_static("BadRequestException"),
                );
            }
            resp
        }
        Err(e) => Error::internal("rendering a console page", e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    nav: Option<Nav>,
    status: u16,
    title: &'static str,
    message: String,
}

/// The status and title of `e` as a page shows them.
fn status_of(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::BadRequest { .. } => (StatusCode::BAD_REQUEST, "That did not work"),
        Error::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "Sign in again"),
        Error::Forbidden { .. } | Error::AuthFailure { .. } | Error::AccessDenied { .. } => {
            (StatusCode::FORBIDDEN, "Not allowed")
        }
        Error::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, "Not found"),
        Error::Conflict { .. } => (StatusCode::CONFLICT, "That did not work"),
        Error::RequestTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "Too slow"),
        Error::ServiceUnavailable { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable")
        }
        Error::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
    }
}

/// The error page of `e` (internal errors are logged, and shown only generically).
pub fn error_page(nav: Option<Nav>, e: &Error) -> Response {
    let (status, title) = status_of(e);
    let message = match e {
        Error::Internal { context, source } => {
            tracing::error!(error = ?source, "console: {context}");
            "An internal error occurred. Please try again.".to_owned()
        }
        Error::ServiceUnavailable { source, .. } => {
            tracing::warn!(error = ?source, "console: service unavailable");
            e.to_string()
        }
        _ => e.to_string(),
    };
    html(
        status,
        &ErrorPage {
            nav,
            status: status.as_u16(),
            title,
            message,
        },
    )
}

/// A 303 to `to` (after a successful form POST).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The CSS class of a broker state's badge.
pub fn state_class(state: &str) -> &'static str {
    match state {
        "RUNNING" => "ok",
        "CREATION_IN_PROGRESS" | "REBOOT_IN_PROGRESS" | "DELETION_IN_PROGRESS" => "busy",
        "CREATION_FAILED" | "CRITICAL_ACTION_REQUIRED" => "bad",
        _ => "neutral",
    }
}

/// Whether a broker in `state` is changing (its page polls until it is not).
pub fn in_transition(state: &str) -> bool {
    matches!(
        state,
        "CREATION_IN_PROGRESS" | "REBOOT_IN_PROGRESS" | "DELETION_IN_PROGRESS"
    )
}

/// The `x-amzn-ErrorType` name the API would answer `e` with (for the audit log).
fn error_code(e: &Error) -> String {
    match e {
        Error::BadRequest { .. } => "BadRequestException",
        Error::Unauthorized { .. } => "UnauthorizedException",
        Error::Forbidden { .. } => "ForbiddenException",
        Error::AuthFailure { code, .. } => code,
        Error::AccessDenied { .. } => "AccessDeniedException",
        Error::TooManyRequests { .. } => "TooManyRequestsException",
        Error::NotFound { .. } => "NotFoundException",
        Error::Conflict { .. } => "ConflictException",
        Error::RequestTimeout { .. } => "RequestTimeoutException",
        Error::ServiceUnavailable { .. } => "ServiceUnavailable",
        Error::Internal { .. } => "InternalServerErrorException",
    }
    .to_owned()
}

/// A console change for the audit log, as the API records its own.
pub struct Audited<'a> {
    /// The Amazon MQ or Berth operation name (`RebootBroker`, `CreateAccessKey`…).
    pub operation: &'a str,
    /// `Broker`, `User`, `Tags`, `Configuration`, `AccessKey`, `ConsoleUser`.
    pub resource_type: &'a str,
    pub resource_id: Option<String>,
}

impl Console {
    /// Records `what` with its outcome in the audit log.
    pub async fn audit(
        &self,
        state: &ApiState,
        source: Option<std::net::IpAddr>,
        what: Audited<'_>,
        outcome: Result<(), &Error>,
    ) {
        let mut r =
            crate::app::audit::AuditRecord::for_caller(&self.caller, what.operation, source);
        r.resource_type = Some(what.resource_type.to_owned());
        r.resource_id = what.resource_id;
        if let Err(e) = outcome {
            r.status = status_of(e).0.as_u16();
            r.error_code = Some(error_code(e));
        }
        crate::app::audit::record(&state.app, r).await;
    }
}
