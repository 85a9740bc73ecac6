//! Shared helpers for the simulator tests: a fast configuration, raw HTTP calls through
//! the kube client, and waiting for a condition on simulator events with a timeout.
#![allow(dead_code)]

use std::time::Duration;

use axum::http::Request;
use http_body_util::BodyExt;
use origin_discovery::sim::{Sim, SimConfig, SimEvent};
use serde_json::Value;
use tokio::sync::broadcast;

/// Upper bound for any single wait in the tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// Small delays so the whole suite stays fast.
pub fn fast_config() -> SimConfig {
    SimConfig {
        pod_startup_delay: Duration::from_millis(50),
        lease_renew_interval: Duration::from_millis(100),
        node_monitor_grace: Duration::from_millis(400),
        bookmark_interval: Duration::from_millis(200),
        default_grace_period: Duration::from_secs(1),
        ..SimConfig::default()
    }
}

/// Starts a simulator with [`fast_config`].
pub async fn start() -> Sim {
    Sim::start(fast_config()).await.expect("sim starts")
}

/// Waits until `check` holds, re-checking after every committed change (and at least
/// every 50 ms for time-based conditions), failing the test after [`WAIT`].
pub async fn until<F: FnMut() -> bool>(
    rx: &mut broadcast::Receiver<SimEvent>,
    what: &str,
    mut check: F,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check() {
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            panic!("timed out waiting for {what}");
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), rx.recv()).await;
        // Re-check once per burst of changes, not once per change.
        while !matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
        ) {}
    }
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

/// A one-shot HTTP/1.1 exchange over a plain TCP socket (no client retries, unlike
/// kube's client, which retries 429/503/504): status code, headers (lower-cased) and
/// body text.
pub async fn tcp_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (code, headers, body.to_string())
}
