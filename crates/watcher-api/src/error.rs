//! Watcher's error body: `{"error_message": "<JSON string>"}` whose string
//! holds `{"faultcode", "faultstring", "debuginfo"}`. python-watcherclient
//! decodes both levels, so the inner object must be a string.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use watcher_store::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, id } => {
                ApiError::not_found(format!("{kind} {id} could not be found"))
            }
            StoreError::Conflict { .. }
            | StoreError::NameTaken { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::PlanNotRunning { .. }
            | StoreError::NotOwner { .. } => ApiError::conflict(e.to_string()),
            StoreError::IllegalTransition { .. } | StoreError::Invalid(_) => {
                ApiError::bad_request(e.to_string())
            }
            StoreError::Database(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "store error behind an API request");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("The database answered with an error ({e}); the watcherd log has the details."),
                )
            }
            StoreError::Unavailable(_) | StoreError::Closed => {
                tracing::warn!(error = %e, "database unavailable behind an API request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("The database is not available right now ({e}); retry shortly."),
                )
            }
        }
    }
}

/// A refusal from a middleware, before any handler: `code` with
/// Watcher's error body saying `message`.
pub(crate) fn refuse(code: StatusCode, message: &str) -> Response {
    ApiError::new(code, message.to_string()).into_response()
}

/// Renders the body for `status` and `message`.
pub fn error_body(status: StatusCode, message: &str) -> String {
    let inner = json!({
        "faultcode": if status.is_server_error() { "Server" } else { "Client" },
        "faultstring": message,
        "debuginfo": null,
    });
    json!({ "error_message": inner.to_string() }).to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            error_body(self.status, &self.message),
        )
            .into_response()
    }
}
