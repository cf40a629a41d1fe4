//! The one error type of the control plane.
//!
//! Every fallible path in handlers, the app layer and the store ends in [`Error`].
//! Its mapping to HTTP (status, `x-amzn-ErrorType`, `errorAttribute`, `message`) lives in
//! exactly one place, `http::error`. Internal errors carry their cause chain for the log
//! and show the caller only a generic message.

/// What went wrong, in Amazon MQ's vocabulary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400 `BadRequestException`: the input is invalid.
    #[error("{message}")]
    BadRequest { attribute: String, message: String },
    /// 401 `UnauthorizedException`.
    #[error("{message}")]
    Unauthorized { message: String },
    /// 403 `ForbiddenException`: not allowed (bad or missing signature, …).
    #[error("{message}")]
    Forbidden {
        attribute: Option<String>,
        message: String,
    },
    /// 403 from request authentication (SigV4), with AWS's own error code, e.g.
    /// `InvalidSignatureException` or `UnrecognizedClientException`.
    #[error("{message}")]
    AuthFailure { code: &'static str, message: String },
    /// 403 `AccessDeniedException`: authenticated, but the role does not allow it.
    #[error("{message}")]
    AccessDenied { message: String },
    /// 429 `TooManyRequestsException` with `Retry-After` (e.g. too many failed logins).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// 404 `NotFoundException`.
    #[error("{message}")]
    NotFound { attribute: String, message: String },
    /// 409 `ConflictException`: duplicate name or a state conflict.
    #[error("{message}")]
    Conflict { attribute: String, message: String },
    /// 408 `RequestTimeoutException`: the request (or its body) did not arrive or
    /// complete in time.
    #[error("{message}")]
    RequestTimeout { message: String },
    /// 503 `ServiceUnavailable` with `Retry-After`: a dependency (the database) cannot
    /// be reached right now; the caller should retry.
    #[error("{message}")]
    ServiceUnavailable {
        message: String,
        #[source]
        source: anyhow::Error,
    },
    /// 500 `InternalServerErrorException`: a bug.
    #[error("internal error: {context}")]
    Internal {
        context: String,
        #[source]
        source: anyhow::Error,
    },
}

impl Error {
    pub fn bad_request(attribute: &str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            attribute: attribute.to_owned(),
            message: message.into(),
        }
    }

    pub fn not_found(attribute: &str, message: impl Into<String>) -> Self {
        Self::NotFound {
            attribute: attribute.to_owned(),
            message: message.into(),
        }
    }

    pub fn conflict(attribute: &str, message: impl Into<String>) -> Self {
        Self::Conflict {
            attribute: attribute.to_owned(),
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden {
            attribute: None,
            message: message.into(),
        }
    }

    pub fn broker_not_found(id: &str) -> Self {
        Self::not_found(
            "broker-id",
            format!("Can't find requested broker [{id}]. Make sure your broker exists."),
        )
    }

    /// An internal error, or [`Error::ServiceUnavailable`] when the cause is that the
    /// database cannot be reached.
    pub fn internal(context: impl Into<String>, source: impl Into<anyhow::Error>) -> Self {
        let source = source.into();
        let context = context.into();
        if database_unreachable(&source) {
            return Self::ServiceUnavailable {
                message: format!(
                    "The service is temporarily unavailable ({context}: database unreachable). Please try again."
                ),
                source,
            };
        }
        Self::Internal { context, source }
    }

    /// The `errorAttribute` the caller sees, if any.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            Self::BadRequest { attribute, .. }
            | Self::NotFound { attribute, .. }
            | Self::Conflict { attribute, .. } => Some(attribute),
            Self::Forbidden { attribute, .. } => attribute.as_deref(),
            Self::Unauthorized { .. }
            | Self::AuthFailure { .. }
            | Self::AccessDenied { .. }
            | Self::TooManyRequests { .. }
            | Self::RequestTimeout { .. }
            | Self::ServiceUnavailable { .. }
            | Self::Internal { .. } => None,
        }
    }
}

/// Whether `e` says the database cannot be reached (as opposed to a query failing): no
/// connection could be had in time, the socket failed, or the server is shutting down or
/// starting up (SQLSTATE class 08, 57P01–57P03).
pub fn database_unreachable(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Some(sqlx::Error::Database(db)) => db.code().is_some_and(|c| {
                c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
            }),
            _ => false,
        })
}

/// Wraps a database error with what we were doing.
pub trait ResultExt<T> {
    fn context_internal(self, context: &str) -> Result<T, Error>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn context_internal(self, context: &str) -> Result<T, Error> {
        self.map_err(|e| Error::internal(context, e))
    }
}
