//! Static files: the live dashboard at `/` and the JavaScript client under `/client/`.

use axum::Router;

use super::ApiState;

/// Routes for the dashboard and client files.
pub fn router() -> Router<ApiState> {
    Router::new()
}
