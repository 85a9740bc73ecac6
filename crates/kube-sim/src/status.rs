//! Kubernetes `Status` errors: every failure the simulator answers over HTTP is one of
//! these, with the `reason`, `code` and `details` the real apiserver sends, so clients
//! (kube-rs, kubectl) take the same code paths they take against a real cluster.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::resources::ResourceDef;

/// An API failure, rendered as a `metav1.Status` body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: u16,
    /// Machine-readable `Status.reason` (`NotFound`, `Conflict`, …).
    pub reason: &'static str,
    /// Human-readable message, worded like the apiserver's.
    pub message: String,
    /// `Status.details`, when the apiserver sends them.
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429 and some 5xx).
    pub retry_after: Option<u64>,
}

fn details(def: &ResourceDef, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": def.plural});
    if !def.group.is_empty() {
        d["group"] = json!(def.group);
    }
    d
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 404 for a named object.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self {
            details: Some(details(def, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", def.qualified()),
            )
        }
    }

    /// 404 for a path that names no resource.
    pub fn not_found_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 when creating an object that exists.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self {
            details: Some(details(def, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", def.qualified()),
            )
        }
    }

    /// 409 for a stale `resourceVersion` (or failed precondition) on a write.
    pub fn conflict(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self {
            details: Some(details(def, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    def.qualified()
                ),
            )
        }
    }

    /// 409 for the standard optimistic-concurrency failure.
    pub fn stale(def: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one field cause.
    pub fn invalid(def: &ResourceDef, name: &str, field: &str, detail: &str) -> Self {
        let mut d = json!({
            "name": name, "kind": def.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": format!("Invalid value: {detail}"), "field": field}],
        });
        if !def.group.is_empty() {
            d["group"] = json!(def.group);
        }
        Self {
            details: Some(d),
            ..Self::new(
                422,
                "Invalid",
                format!(
                    "{} \"{name}\" is invalid: {field}: Invalid value: {detail}",
                    def.kind
                ),
            )
        }
    }

    /// 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 406 for an unsupported `Accept` (protobuf only, for instance).
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 410 for a `resourceVersion` older than the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 for a body over the size limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body exceeds the {limit} byte limit"),
        )
    }

    /// 415 for a patch content type the server does not understand.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format ({content_type:?}) - the simulator accepts application/json, and for PATCH application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"),
        )
    }

    /// 500 for an internal failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// An injected failure with the given code and the reason the apiserver would use.
    pub fn injected(code: u16) -> Self {
        let (reason, message) = match code {
            429 => (
                "TooManyRequests",
                "Too many requests, please try again later.",
            ),
            500 => ("InternalError", "Internal error occurred: injected fault"),
            503 => (
                "ServiceUnavailable",
                "The server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "The server was unable to return a response in the time allotted",
            ),
            _ => ("InternalError", "injected fault"),
        };
        Self {
            retry_after: matches!(code, 429 | 503).then_some(1),
            ..Self::new(code, reason, message)
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code >= 500 {
            tracing::debug!(code = self.code, message = %self.message, "sim: answering error");
        }
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = (
            code,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
