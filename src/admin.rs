//! The admin port: `/healthz` (process alive), `/readyz` (every watch completed its first
//! list and is still running), `/metrics` (Prometheus/OpenMetrics text).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::Metrics;
use origin_discovery_core::hub::Hub;

#[derive(Clone)]
struct AdminState {
    hub: Arc<Hub>,
    metrics: Metrics,
}

/// The admin router.
pub fn router(hub: Arc<Hub>, metrics: Metrics) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { hub, metrics })
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.hub.is_synced() {
        (StatusCode::OK, Json(serde_json::json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({"status": "not ready", "reason": "watches have not all completed their first list"}),
            ),
        )
    }
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    s.metrics.refresh(&s.hub);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}
