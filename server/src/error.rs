//! Errors: the JSON error body every route answers with ([`ApiError`]) and the
//! library-level failures of starting and running the server ([`ServerError`]).
//!
//! Clients (the orchestrator above all) read only `message` and print
//! `HTTP <status> <message>`, so every message says what went wrong in words a
//! person can act on. `code` is the stable, matchable part.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An HTTP error answered as `{"code","message","details"?}` (reference §A7).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// Stable snake_case code, e.g. `unauthorized`.
    pub code: &'static str,
    /// Human text; what the orchestrator shows.
    pub message: String,
    /// Extra data; omitted from the body when `None`.
    pub details: Option<Value>,
}

/// The error message of an [`ApiError`], left in the response extensions so the
/// request logger can add it as the `error` attribute.
#[derive(Debug, Clone)]
pub(crate) struct LoggedError(pub String);

impl ApiError {
    /// An error without details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds `details` to the body.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 `not_found` "Not found": unknown route or method.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found")
    }

    /// 400 `invalid_json` "Invalid JSON body" (also for an empty body).
    pub fn invalid_json() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", "Invalid JSON body")
    }

    /// 400 `invalid_payload` with a message naming the offending field.
    pub fn invalid_payload(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_payload", message)
    }

    /// 403 `read_only` "Server is read-only".
    pub fn read_only() -> Self {
        Self::new(StatusCode::FORBIDDEN, "read_only", "Server is read-only")
    }

    /// 500 `internal_error` "Unexpected server error".
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Unexpected server error",
        )
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Value {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let (Some(details), Some(map)) = (&self.details, body.as_object_mut()) {
            map.insert("details".to_owned(), details.clone());
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        response
            .extensions_mut()
            .insert(LoggedError(self.message.clone()));
        response
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {host}:{port}: {source}")]
    Bind {
        /// Host that was asked for.
        host: String,
        /// Port that was asked for.
        port: u16,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The bound listener has no local address (should not happen for TCP).
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
    /// Accepting or serving connections failed.
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
    /// The token store could not be loaded.
    #[error(transparent)]
    TokenStore(#[from] crate::token_store::TokenStoreError),
    /// The audit log cannot be used where it is configured.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The tokio runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_omits_details_when_none() {
        let err = ApiError::not_found();
        assert_eq!(
            err.body(),
            json!({"code": "not_found", "message": "Not found"})
        );
    }

    #[test]
    fn body_includes_details() {
        let err = ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Insufficient token scope",
        )
        .with_details(json!({"required": "owner", "scope": "viewer"}));
        assert_eq!(err.body()["details"]["required"], "owner");
    }
}
