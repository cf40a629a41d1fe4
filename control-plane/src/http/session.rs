//! Console sessions on the wire: `POST /auth/login`, `POST /auth/logout`,
//! `GET /auth/session`, the `berth_session` cookie and CSRF checks.
//!
//! The cookie holds a short-lived HS256 JWT (issuer `berth`, audience `berth-console`)
//! naming the user, account, role and session. The session row decides: a revoked or
//! ended session refuses every copy of the cookie. A request more than half-way to its
//! token's expiry gets a fresh cookie (up to the session's absolute end). The cookie is
//! HttpOnly, SameSite=Strict, Path=/, and Secure when the request came over TLS or the
//! configured public URL is https. Non-safe cookie requests carry `X-CSRF-Token` (or the
//! form field `_csrf`) equal to the session's token.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::ApiState;
use crate::app::identity::{self, ActiveSession, LoginAttempt};
use crate::error::Error;
use crate::wire::ErrorBody;

pub const TAG: &str = "console-session";
/// Name of the session cookie.
pub const COOKIE_NAME: &str = "berth_session";
/// Header carrying the CSRF token of a cookie-authenticated write.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Form field carrying it in an `application/x-www-form-urlencoded` body.
pub const CSRF_FIELD: &str = "_csrf";
pub const ISSUER: &str = "berth";
pub const AUDIENCE: &str = "berth-console";

/// The claims of a session token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// Console user id.
    pub sub: String,
    /// Account id.
    pub acct: String,
    pub role: String,
    /// Session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and verifies session tokens with the installation's key (HS256 only).
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Cookies are Secure whatever the request (the public URL is https).
    always_secure: bool,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<key redacted>)")
    }
}

impl SessionKeys {
    pub fn new(secret: &[u8], always_secure: bool) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            always_secure,
        }
    }

    /// Signs `claims` (HS256). Tests use it to make tokens the server would not issue.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| Error::internal("signing session token", e))
    }

    /// The claims of a token with a valid signature, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }

    /// A token for `session`, valid for `ttl` but never past the session's end.
    fn issue(&self, session: &ActiveSession, ttl: Duration) -> Result<(String, i64), Error> {
        let now = Utc::now().timestamp();
        let exp = (now + ttl.as_secs() as i64).min(session.expires_at.timestamp());
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: session.user_id.to_string(),
            acct: session.account.as_str().to_owned(),
            role: session.role.as_str().to_owned(),
            sid: session.session_id.to_string(),
            iat: now,
            exp,
        };
        Ok((self.sign(&claims)?, exp))
    }
}

/// The session-signing key: 32 random bytes made once, stored sealed with the master key.
pub async fn load_signing_key(
    store: &crate::db::DataStore,
    secrets: &crate::crypto::SecretBox,
) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sealed = store
        .signing_key_load_or_insert("console-session", || {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            secrets.seal(&b64.encode(key))
        })
        .await?;
    let key = b64.decode(secrets.open(&sealed)?)?;
    anyhow::ensure!(key.len() == 32, "the session-signing key is not 32 bytes");
    Ok(key)
}

/// The session token in the request's cookies, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE_NAME)
        .map(|c| c.value().to_owned())
}

/// The source address of a request: the TCP peer.
pub fn source_address(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// Extracts the request's source address (never fails).
#[derive(Clone, Copy, Debug)]
pub struct SourceAddress(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(source_address(&parts.extensions)))
    }
}

fn invalid_session() -> Error {
    Error::Unauthorized {
        message: "The console session is not valid or has ended. Sign in again.".into(),
    }
}

/// A verified token and the active session it names.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub claims: Claims,
    pub session: ActiveSession,
}

/// The active session of `token`, or 401.
pub async fn resolve(state: &ApiState, token: &str) -> Result<Resolved, Error> {
    let claims = state.sessions.verify(token).ok_or_else(invalid_session)?;
    let (Ok(sid), Ok(uid)) = (Uuid::parse_str(&claims.sid), Uuid::parse_str(&claims.sub)) else {
        return Err(invalid_session());
    };
    let session = identity::session_active(&state.app, sid, uid)
        .await?
        .ok_or_else(invalid_session)?;
    Ok(Resolved { claims, session })
}

/// Whether `method` needs no CSRF token.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The request's CSRF token equals the session's (constant time), or 403.
pub fn check_csrf(session: &ActiveSession, headers: &HeaderMap, body: &[u8]) -> Result<(), Error> {
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            is_form(headers)
                .then(|| {
                    form_urlencoded::parse(body)
                        .find(|(k, _)| k == CSRF_FIELD)
                        .map(|(_, v)| v.into_owned())
                })
                .flatten()
        });
    match presented {
        Some(t) if bool::from(t.as_bytes().ct_eq(session.csrf_token.as_bytes())) => Ok(()),
        Some(_) => Err(Error::forbidden("The CSRF token does not match the session.")),
        None => Err(Error::forbidden(
            "A cookie-authenticated change must carry the session's CSRF token in X-CSRF-Token (or the form field _csrf).",
        )),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

/// Whether the cookie gets `Secure`: the public URL is https, or this request came over
/// TLS (directly or, as its proxy says, before the proxy).
fn secure(keys: &SessionKeys, headers: &HeaderMap) -> bool {
    keys.always_secure
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(token: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let c = cookie::Cookie::build((COOKIE_NAME, token))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(secure)
        .max_age(time::Duration::seconds(max_age_secs.max(0)))
        .build();
    HeaderValue::from_str(&c.to_string()).expect("a cookie of token characters is a header value")
}

/// A `Set-Cookie` with a fresh token, when `resolved`'s token is past half its life and
/// the session can outlive it.
pub fn refreshed_cookie(
    state: &ApiState,
    resolved: &Resolved,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, Error> {
    let now = Utc::now().timestamp();
    let c = &resolved.claims;
    let half = (c.exp - c.iat) / 2;
    if now < c.exp - half || resolved.session.expires_at.timestamp() <= c.exp {
        return Ok(None);
    }
    let (token, exp) = state
        .sessions
        .issue(&resolved.session, state.identity.settings.session_ttl)?;
    Ok(Some(set_cookie(
        &token,
        exp - now,
        secure(&state.sessions, headers),
    )))
}

/// Who is signed in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub username: String,
    pub account_id: String,
    pub role: String,
    /// Send it as `X-CSRF-Token` (or form field `_csrf`) with every change.
    pub csrf_token: String,
    /// When the current cookie expires (it is refreshed while in use).
    pub expires_at: String,
    /// When the session ends however often it is refreshed.
    pub session_expires_at: String,
}

fn view(session: &ActiveSession, token_exp: i64) -> SessionView {
    let exp = DateTime::<Utc>::from_timestamp(token_exp, 0).unwrap_or(session.expires_at);
    SessionView {
        username: session.username.clone(),
        account_id: session.account.as_str().to_owned(),
        role: session.role.as_str().to_owned(),
        csrf_token: session.csrf_token.clone(),
        expires_at: crate::wire::timestamp(exp),
        session_expires_at: crate::wire::timestamp(session.expires_at),
    }
}

/// Login, as JSON or as an HTML form.
#[derive(Default, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// 12-digit account id; default: the installation's default account.
    pub account: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn parse_login(headers: &HeaderMap, body: &Bytes) -> Result<LoginRequest, Error> {
    let req = parse_login_fields(headers, body)?;
    if req.username.is_empty() {
        return Err(Error::bad_request("username", "username is required."));
    }
    Ok(req)
}

fn parse_login_fields(headers: &HeaderMap, body: &Bytes) -> Result<LoginRequest, Error> {
    if is_form(headers) {
        let mut username = None;
        let mut password = None;
        let mut account = None;
        for (k, v) in form_urlencoded::parse(body.as_ref()) {
            match k.as_ref() {
                "username" => username = Some(v.into_owned()),
                "password" => password = Some(v.into_owned()),
                "account" => account = Some(v.into_owned()),
                _ => {}
            }
        }
        return Ok(LoginRequest {
            username: username
                .ok_or_else(|| Error::bad_request("username", "username is required."))?,
            password: password
                .ok_or_else(|| Error::bad_request("password", "password is required."))?,
            account,
        });
    }
    super::body::parse_json(body)
}

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(session))
}

/// Login: checks the console user's password and sets the `berth_session` cookie.
/// Unknown user and wrong password get the same 401. Too many failures for the username
/// or the source address within the window: 429 with `Retry-After`.
#[utoipa::path(post, path = "/auth/login", tag = TAG, operation_id = "Login",
    request_body(content = LoginRequest, description = "JSON, or application/x-www-form-urlencoded with the same fields"),
    responses(
        (status = 200, body = SessionView, description = "Signed in; Set-Cookie: berth_session"),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 401, description = "UnauthorizedException: Incorrect username or password.", body = ErrorBody),
        (status = 429, description = "TooManyRequestsException, with Retry-After", body = ErrorBody),
    ))]
async fn login(
    State(state): State<ApiState>,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let req = parse_login(&headers, &body)?;
    let session = identity::login(
        &state.app,
        &state.identity,
        LoginAttempt {
            account: req.account.as_deref(),
            username: &req.username,
            password: &req.password,
            source,
        },
    )
    .await?;
    let (token, exp) = state
        .sessions
        .issue(&session, state.identity.settings.session_ttl)?;
    let cookie = set_cookie(
        &token,
        exp - Utc::now().timestamp(),
        secure(&state.sessions, &headers),
    );
    let mut resp = Json(view(&session, exp)).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// Logout: revokes the session (its cookie fails from now on, even replayed) and clears
/// the cookie. Needs the CSRF token.
#[utoipa::path(post, path = "/auth/logout", tag = TAG, operation_id = "Logout",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Optional: `_csrf=<token>` instead of the header"),
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "UnauthorizedException: no valid session", body = ErrorBody),
        (status = 403, description = "ForbiddenException: missing or wrong CSRF token", body = ErrorBody),
    ))]
async fn logout(
    State(state): State<ApiState>,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let token = cookie_token(&headers).ok_or_else(invalid_session)?;
    let resolved = resolve(&state, &token).await?;
    check_csrf(&resolved.session, &headers, &body)?;
    identity::logout(&state.app, &resolved.session, source).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie("", 0, secure(&state.sessions, &headers)),
    );
    Ok(resp)
}

/// Who is signed in, with the CSRF token to send with changes.
#[utoipa::path(get, path = "/auth/session", tag = TAG, operation_id = "GetSession",
    responses(
        (status = 200, body = SessionView),
        (status = 401, description = "UnauthorizedException: no valid session", body = ErrorBody),
    ))]
async fn session(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, Error> {
    let token = cookie_token(&headers).ok_or_else(invalid_session)?;
    let resolved = resolve(&state, &token).await?;
    let refreshed = refreshed_cookie(&state, &resolved, &headers)?;
    let exp = match &refreshed {
        Some(_) => (Utc::now().timestamp() + state.identity.settings.session_ttl.as_secs() as i64)
            .min(resolved.session.expires_at.timestamp()),
        None => resolved.claims.exp,
    };
    let mut resp = Json(view(&resolved.session, exp)).into_response();
    if let Some(c) = refreshed {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn claims(exp_in: i64) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: Uuid::new_v4().to_string(),
            acct: "000000000000".into(),
            role: "admin".into(),
            sid: Uuid::new_v4().to_string(),
            iat: now,
            exp: now + exp_in,
        }
    }

    #[test]
    fn only_hs256_tokens_of_this_key_issuer_and_audience_verify() {
        let keys = SessionKeys::new(&[7; 32], false);
        let good = claims(600);
        assert_eq!(keys.verify(&keys.sign(&good).unwrap()), Some(good.clone()));
        // Expired.
        assert_eq!(keys.verify(&keys.sign(&claims(-5)).unwrap()), None);
        // Another key.
        let other = SessionKeys::new(&[8; 32], false);
        assert_eq!(keys.verify(&other.sign(&good).unwrap()), None);
        // Another HMAC algorithm with the same key.
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let t = jsonwebtoken::encode(
                &Header::new(alg),
                &good,
                &EncodingKey::from_secret(&[7; 32]),
            )
            .unwrap();
            assert_eq!(keys.verify(&t), None, "{alg:?}");
        }
        // alg: none.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(serde_json::to_vec(&good).unwrap())
        );
        assert_eq!(keys.verify(&none), None);
        // Wrong issuer or audience.
        for bad in [
            Claims {
                iss: "someone".into(),
                ..good.clone()
            },
            Claims {
                aud: "api".into(),
                ..good.clone()
            },
        ] {
            assert_eq!(keys.verify(&keys.sign(&bad).unwrap()), None);
        }
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_rooted() {
        let v = set_cookie("tok", 900, true);
        let s = v.to_str().unwrap();
        for part in [
            "berth_session=tok",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Secure",
            "Max-Age=900",
        ] {
            assert!(s.contains(part), "{s}");
        }
        assert!(!set_cookie("tok", 900, false)
            .to_str()
            .unwrap()
            .contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; berth_session=xyz; c=d"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("xyz"));
    }

    #[test]
    fn the_keys_never_show_in_debug() {
        let keys = SessionKeys::new(b"0123456789abcdef0123456789abcdef", false);
        assert!(!format!("{keys:?}").contains("0123"));
    }
}
