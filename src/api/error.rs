//! The one error type of the public API: a stable JSON body `{"error":{"code","message"}}`
//! with a fitting status. Details are logged, not leaked.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use origin_discovery_core::model::PoolId;

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or header is malformed (400).
    #[error("invalid parameter {name:?}: {reason}")]
    BadParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No such pool (404).
    #[error("unknown pool {0}")]
    UnknownPool(PoolId),
    /// No such route (404).
    #[error("no route for {0}")]
    NotFound(String),
    /// Wrong method for a route (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A browser origin not in `--cors-allow-origin` (403).
    #[error("origin {0:?} is not allowed")]
    ForbiddenOrigin(String),
    /// A connection limit was hit (429).
    #[error("{0}")]
    TooManySubscribers(&'static str),
    /// A watch URL was requested without a WebSocket upgrade (426).
    #[error("WebSocket upgrade required: {0}")]
    UpgradeRequired(String),
    /// The controller has not completed its first full sync yet (503).
    #[error("not ready: the first full sync with the Kubernetes API has not completed")]
    NotSynced,
}

impl ApiError {
    /// Shorthand for [`ApiError::BadParameter`].
    pub fn bad(name: &'static str, reason: impl Into<String>) -> Self {
        Self::BadParameter {
            name,
            reason: reason.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadParameter { .. } => (StatusCode::BAD_REQUEST, "bad_parameter"),
            Self::UnknownPool(_) => (StatusCode::NOT_FOUND, "unknown_pool"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::ForbiddenOrigin(_) => (StatusCode::FORBIDDEN, "forbidden_origin"),
            Self::TooManySubscribers(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_subscribers"),
            Self::UpgradeRequired(_) => (StatusCode::UPGRADE_REQUIRED, "upgrade_required"),
            Self::NotSynced => (StatusCode::SERVICE_UNAVAILABLE, "not_synced"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        tracing::debug!(status = status.as_u16(), code, error = %self, "request failed");
        let body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}

/// Result alias for handlers.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
