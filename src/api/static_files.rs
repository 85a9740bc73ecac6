//! Static files, embedded in the binary: the live dashboard at `/` and the JavaScript
//! client (unbundled ES modules) under `/client/`, which the dashboard imports.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::ApiState;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `(path under /, content type, body)`.
const DASHBOARD: &[(&str, &str, &str)] = &[
    (
        "dashboard.js",
        JS,
        include_str!("../../clients/js/dashboard/dashboard.js"),
    ),
    (
        "dashboard.css",
        CSS,
        include_str!("../../clients/js/dashboard/dashboard.css"),
    ),
];

/// `(file under /client/, body)`.
const CLIENT: &[(&str, &str)] = &[
    ("index.js", include_str!("../../clients/js/src/index.js")),
    ("rank.js", include_str!("../../clients/js/src/rank.js")),
    (
        "discovery.js",
        include_str!("../../clients/js/src/discovery.js"),
    ),
    (
        "failover.js",
        include_str!("../../clients/js/src/failover.js"),
    ),
    (
        "backoff.js",
        include_str!("../../clients/js/src/backoff.js"),
    ),
];

/// Routes for the dashboard and client files.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route(
            "/",
            get(|| async { file(HTML, include_str!("../../clients/js/dashboard/index.html")) }),
        )
        .route("/{file}", get(dashboard_file))
        .route("/client/{file}", get(client_file))
}

async fn dashboard_file(Path(name): Path<String>) -> Result<Response, ApiError> {
    DASHBOARD
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ct, body)| file(ct, body))
        .ok_or_else(|| ApiError::NotFound(format!("/{name}")))
}

async fn client_file(Path(name): Path<String>) -> Result<Response, ApiError> {
    CLIENT
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, body)| file(JS, body))
        .ok_or_else(|| ApiError::NotFound(format!("/client/{name}")))
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
