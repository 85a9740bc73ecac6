//! Test kit for origin-discovery's tests and benchmarks.
//!
//! - [`client`]: the Rust push client (WebSocket subscription that applies snapshots and
//!   deltas and detects gaps).
//! - [`fixtures`]: ready-made domain values (from `origin-discovery-core`).
//! - [`http`]: a small HTTP/1.1 GET client, so tests need no HTTP client dependency.
//! - [`procs`]: finding and starting the peer programs (nginx).
//! - [`stack`]: a simulated cluster plus the real controller in process, and ways to observe
//!   both; [`eventually`] and [`metric`] for what has no event to wait on.
//!
//! Waits are bounded by [`WAIT`] and panic when it passes, like assertions.

pub mod client;
pub mod http;
pub mod procs;
pub mod stack;

pub use origin_discovery_core::fixtures;

use std::time::Duration;

/// Upper bound for any single wait of the kit (the simulator's waits use the same).
pub const WAIT: Duration = kube_sim::testing::WAIT;

/// Polls `check` every 20 ms until it holds; panics after [`WAIT`]. For conditions that no
/// event announces (an HTTP endpoint's answer); prefer waiting on an event where one exists.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sum of a metric's samples (Prometheus text) whose line contains every one of `labels`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
