//! The only place where [`Error`] becomes an HTTP response.
//!
//! Amazon MQ's error shape: the status code of the modeled exception, header
//! `x-amzn-ErrorType: <Name>Exception`, and a JSON body with `errorAttribute` and
//! `message` (botocore reads exactly these). Internal errors are logged with their
//! full cause chain and shown to the caller only as a generic message.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error_attribute: Option<&'a str>,
    message: &'a str,
}

pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";
/// What a 503 asks the caller to wait before retrying.
const RETRY_AFTER_SECS: &str = "2";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            Error::BadRequest { .. } => (StatusCode::BAD_REQUEST, "BadRequestException"),
            Error::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "UnauthorizedException"),
            Error::Forbidden { .. } => (StatusCode::FORBIDDEN, "ForbiddenException"),
            Error::AuthFailure { code, .. } => (StatusCode::FORBIDDEN, *code),
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFoundException"),
            Error::Conflict { .. } => (StatusCode::CONFLICT, "ConflictException"),
            Error::ServiceUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            Error::Internal { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerErrorException",
            ),
        };
        let message = match &self {
            Error::Internal { context, source } => {
                tracing::error!(context = %context, error = %format!("{source:#}"), "internal error");
                "We encountered an internal error. Please try again.".to_owned()
            }
            Error::ServiceUnavailable { message, source } => {
                tracing::warn!(error = %format!("{source:#}"), "service unavailable");
                message.clone()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error_attribute: self.attribute(),
            message: &message,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut()
            .insert(ERROR_TYPE_HEADER, HeaderValue::from_static(kind));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}
