//! Who is calling: every `/v1/` request must carry a valid SigV4 signature (service
//! `mq`) made with an access key Berth issued. The middleware reads the body (it is part
//! of the signature), verifies, and leaves a [`Caller`] in the request extensions for
//! handlers; the body is handed on untouched.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::sigv4::{self, SigV4Error};
use super::ApiState;
use crate::app::Caller;
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

/// Authenticates a request; on success the [`Caller`] is in its extensions.
pub async fn authenticate(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    match verify_request(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn verify_request(state: &ApiState, req: Request) -> Result<Request, Error> {
    let (mut parts, body) = req.into_parts();
    let auth = sigv4::parse_authorization(&parts.headers).map_err(auth_error)?;
    let region = state
        .app
        .regions
        .get(&auth.credential.region)
        .ok_or_else(|| auth_error(SigV4Error::WrongRegion(auth.credential.region.clone())))?;
    let bytes = to_bytes(body, MAX_BODY).await.map_err(|_| {
        Error::bad_request(
            "body",
            format!("The request body must be at most {MAX_BODY} bytes."),
        )
    })?;
    let key = state
        .app
        .store
        .access_key_fetch(&auth.credential.access_key_id)
        .await?
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
        &bytes,
        &auth,
        &secret,
        chrono::Utc::now(),
    )
    .map_err(auth_error)?;
    let account = AccountId::parse(&key.account_id)
        .map_err(|e| Error::internal("stored account id", anyhow::anyhow!(e)))?;
    parts.extensions.insert(Caller::new(account, region));
    Ok(Request::from_parts(parts, Body::from(bytes)))
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
