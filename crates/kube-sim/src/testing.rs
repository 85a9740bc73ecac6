//! Helpers for tests of controllers that run against the simulator: a fast configuration,
//! waits on committed changes with a timeout, and a raw HTTP exchange without client retries.
//!
//! The waits panic when they time out, like assertions: they are meant for test code.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::{SimConfig, SimEvent};

/// Upper bound for any single wait of these helpers.
pub const WAIT: Duration = Duration::from_secs(15);

/// Small delays so a test suite stays fast: pods start in 50 ms, leases renew every 100 ms,
/// a dead node turns `Unknown` after 400 ms, bookmarks every 200 ms, 1 s default grace.
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

/// Waits until `check` holds, re-checking after every burst of committed changes (and at
/// least every 50 ms, for time-based conditions); panics after [`WAIT`].
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
            panic!("timed out after {WAIT:?} waiting for {what}");
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), rx.recv()).await;
        // Re-check once per burst of changes, not once per change.
        while !matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
        ) {}
    }
}

/// Waits for the next committed change matching `pred`; panics after [`WAIT`].
pub async fn next_event(
    rx: &mut broadcast::Receiver<SimEvent>,
    what: &str,
    mut pred: impl FnMut(&SimEvent) -> bool,
) -> SimEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return ev,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => panic!("simulator events closed while waiting for {what}: {e}"),
            Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
        }
    }
}

/// The answer of [`tcp_request`].
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// Status code (0 when the status line did not parse).
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body text (as sent: not de-chunked).
    pub body: String,
}

impl RawResponse {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A one-shot HTTP/1.1 exchange over a plain TCP socket with `Connection: close` — no
/// client retries (kube's client retries 429/503/504), for checking exact answers.
/// Panics when the exchange does not complete within [`WAIT`].
pub async fn tcp_request(addr: SocketAddr, method: &str, path: &str) -> RawResponse {
    let mut s = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("request written");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("response read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_string(),
    }
}
