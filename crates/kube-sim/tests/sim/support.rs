//! Helpers of the simulator's own tests: a started simulator and raw HTTP calls through
//! the kube client. Waits and the fast configuration come from `kube_sim::testing`.

use axum::http::Request;
use http_body_util::BodyExt;
use kube_sim::testing::{fast_config, WAIT};
use kube_sim::Sim;
use serde_json::Value;

/// Starts a simulator with [`fast_config`].
pub async fn start() -> Sim {
    Sim::start(fast_config()).await.expect("sim starts")
}

/// A raw HTTP exchange with the simulator: status code and parsed JSON body (or
/// `Value::String` for non-JSON bodies).
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req
        .body(kube::client::Body::from(body))
        .expect("request builds");
    let resp = tokio::time::timeout(WAIT, client.send(req))
        .await
        .expect("response in time")
        .expect("response");
    let code = resp.status().as_u16();
    let bytes = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (code, v)
}

/// GET as JSON.
pub async fn get(client: &kube::Client, path: &str) -> (u16, Value) {
    raw(client, "GET", path, None, vec![]).await
}
