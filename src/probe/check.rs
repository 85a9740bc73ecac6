//! One probe of one origin: a TCP connect, or an HTTP `GET` over a kept-alive connection.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The shared HTTP client: hyper-util's pooled client, keeping at most one idle
/// connection per origin (`ip:port`), so each HTTP target reuses one socket.
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Response header an origin may report its load in (0.0–1.0).
pub const LOAD_HEADER: &str = "origin-load";

/// Most body bytes read from a probe answer; a longer body is dropped with its connection
/// (the next probe opens a new one).
pub const MAX_BODY: usize = 64 * 1024;

/// What one probe found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Connected (TCP) or 2xx/3xx (HTTP), with the reported load if any.
    Healthy(Option<f64>),
    /// An HTTP answer other than 2xx/3xx.
    Unhealthy,
    /// No answer within the timeout.
    Timeout,
    /// Refused, reset, unreachable, or not HTTP.
    Error,
}

impl Outcome {
    /// The `result` label of `origin_discovery_probe_results_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Healthy(_) => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// The client every HTTP probe shares. Idle connections outlive a few probe intervals, so
/// an origin probed every `interval` keeps its one connection.
pub fn http_client(interval: Duration, timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(timeout));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .pool_idle_timeout((interval * 3).max(Duration::from_secs(2)))
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// `http://<address>:<port><path>`: hyper sets `Host` from it, so `Host` is the origin's
/// address.
pub fn probe_uri(addr: SocketAddr, path: &str) -> Option<Uri> {
    format!("http://{addr}{path}").parse().ok()
}

/// A TCP connect; healthy as soon as the handshake completes.
pub async fn tcp(addr: SocketAddr) -> Outcome {
    match tokio::net::TcpStream::connect(addr).await {
        Ok(_) => Outcome::Healthy(None),
        Err(_) => Outcome::Error,
    }
}

/// `GET uri`: 2xx/3xx is healthy. The body is read (up to [`MAX_BODY`]) so the connection
/// goes back to the pool for the next probe.
pub async fn http(client: &HttpClient, uri: &Uri) -> Outcome {
    let request = hyper::Request::get(uri.clone())
        .header(hyper::header::USER_AGENT, "origin-discovery-probe")
        .body(Empty::new())
        .expect("a GET with a parsed URI is a valid request");
    let response = match client.request(request).await {
        Ok(r) => r,
        Err(_) => return Outcome::Error,
    };
    let status = response.status();
    let load = response
        .headers()
        .get(LOAD_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_load);
    // A body that fails or is too long only costs the connection; the status stands.
    let _ = Limited::new(response.into_body(), MAX_BODY).collect().await;
    if status.is_success() || status.is_redirection() {
        Outcome::Healthy(load)
    } else {
        Outcome::Unhealthy
    }
}

/// An `Origin-Load` value: a finite number within 0.0–1.0, else ignored.
pub fn parse_load(value: &str) -> Option<f64> {
    let v: f64 = value.trim().parse().ok()?;
    (v.is_finite() && (0.0..=1.0).contains(&v)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_header_values_outside_zero_to_one_are_ignored() {
        assert_eq!(parse_load("0.25"), Some(0.25));
        assert_eq!(parse_load(" 1 "), Some(1.0));
        assert_eq!(parse_load("0"), Some(0.0));
        for bad in ["1.5", "-0.1", "NaN", "inf", "high", ""] {
            assert_eq!(parse_load(bad), None, "{bad}");
        }
    }

    #[test]
    fn probe_uris_bracket_ipv6_and_keep_the_path() {
        let v4: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        assert_eq!(
            probe_uri(v4, "/healthz?x=1").unwrap().to_string(),
            "http://10.0.0.1:8080/healthz?x=1"
        );
        let v6: SocketAddr = "[fd00::1]:80".parse().unwrap();
        assert_eq!(
            probe_uri(v6, "/").unwrap().authority().unwrap().as_str(),
            "[fd00::1]:80"
        );
    }
}
