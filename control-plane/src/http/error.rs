//! The only place where [`Error`] becomes an HTTP response.
//!
//! Amazon MQ's error shape: the status code of the modeled exception, header
//! `x-amzn-ErrorType: <Name>Exception`, and a JSON body with `errorAttribute` and
//! `message` (botocore reads exactly these). Internal errors are logged with their
//! full cause chain and shown to the caller only as a generic message.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
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
            Error::AccessDenied { .. } => (StatusCode::FORBIDDEN, "AccessDeniedException"),
            Error::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException")
            }
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFoundException"),
            Error::Conflict { .. } => (StatusCode::CONFLICT, "ConflictException"),
            Error::RequestTimeout { .. } => {
                (StatusCode::REQUEST_TIMEOUT, "RequestTimeoutException")
            }
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
        if let Error::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from((*retry_after_secs).max(1)),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

/// Largest plain-text rejection body read to become a `message`.
const MAX_REJECTION_TEXT: usize = 4096;

/// Gives the error shape to a 4xx that a layer below answered without it: axum's
/// extractor rejections (undecodable percent-encoding or invalid UTF-8 in the path, a
/// query string that does not parse, a body over the limit) and the method router's
/// 405. Their plain text becomes the `message`; the status stays, and the
/// `x-amzn-ErrorType` follows it (`BadRequestException` for 4xx Amazon MQ does not
/// model). Headers such as `Allow` are kept.
pub async fn shape_client_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if !resp.status().is_client_error() || resp.headers().contains_key(ERROR_TYPE_HEADER) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        format!(
            "{}.",
            parts.status.canonical_reason().unwrap_or("Bad Request")
        )
    } else {
        text
    };
    let kind = match parts.status {
        StatusCode::UNAUTHORIZED => "UnauthorizedException",
        StatusCode::FORBIDDEN => "ForbiddenException",
        StatusCode::NOT_FOUND => "NotFoundException",
        StatusCode::REQUEST_TIMEOUT => "RequestTimeoutException",
        StatusCode::CONFLICT => "ConflictException",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequestsException",
        _ => "BadRequestException",
    };
    let shaped = axum::Json(ErrorBody {
        error_attribute: None,
        message: &message,
    })
    .into_response();
    let (shaped, body) = shaped.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(shaped.headers);
    parts
        .headers
        .insert(ERROR_TYPE_HEADER, HeaderValue::from_static(kind));
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::body::Body;
    use axum::extract::{Path, Query};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Page {
        max: u32,
    }

    fn app() -> Router {
        Router::new()
            .route("/b/{id}", get(|Path(id): Path<String>| async move { id }))
            .route("/q", get(|Query(_): Query<Page>| async { "ok" }))
            .route(
                "/shaped",
                get(|| async { Error::conflict("name", "taken") }),
            )
            .layer(axum::middleware::from_fn(shape_client_errors))
    }

    async fn call(
        uri: &str,
        method: &str,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 16).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn invalid_utf8_in_the_path_is_a_shaped_400() {
        let (status, headers, body) = call("/b/%FF%FE", "GET").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[ERROR_TYPE_HEADER], "BadRequestException");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_bad_query_and_a_wrong_method_are_shaped_too() {
        let (status, headers, body) = call("/q?max=lots", "GET").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[ERROR_TYPE_HEADER], "BadRequestException");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );

        let (status, headers, body) = call("/q", "DELETE").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[ERROR_TYPE_HEADER], "BadRequestException");
        assert!(headers.contains_key(header::ALLOW));
        assert_eq!(body["message"], "Method Not Allowed.");
    }

    #[tokio::test]
    async fn shaped_errors_and_successes_pass_untouched() {
        let (status, headers, body) = call("/shaped", "GET").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(headers[ERROR_TYPE_HEADER], "ConflictException");
        assert_eq!(body["errorAttribute"], "name");
        let (status, _, _) = call("/b/abc", "GET").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn access_denied_and_too_many_requests_have_their_shape() {
        let resp = Error::AccessDenied {
            message: "no".into(),
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()[ERROR_TYPE_HEADER], "AccessDeniedException");
        let resp = Error::TooManyRequests {
            message: "slow down".into(),
            retry_after_secs: 42,
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            resp.headers()[ERROR_TYPE_HEADER],
            "TooManyRequestsException"
        );
        assert_eq!(resp.headers()[header::RETRY_AFTER], "42");
    }

    #[tokio::test]
    async fn a_request_timeout_is_a_shaped_408() {
        let resp = Error::RequestTimeout {
            message: "too slow".into(),
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(resp.headers()[ERROR_TYPE_HEADER], "RequestTimeoutException");
    }
}
