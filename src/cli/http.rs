//! The CLI's HTTP/1 client for the public API: one request at a time, every wait bounded by
//! `--request-timeout`, bodies capped at [`MAX_BODY`], API errors mapped to exit codes.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CliError, ClientArgs, Exit, Result};
use origin_discovery_core::model::PoolId;

/// Largest response body accepted (a snapshot of a very large pool is the biggest).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// A server's public API.
#[derive(Debug)]
pub struct Server {
    /// `http://host:port[/prefix]`, no trailing slash.
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl Server {
    /// Checks `--server` and prepares the client.
    pub fn new(args: &ClientArgs) -> Result<Self> {
        let base = base_url(&args.server)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(args.request_timeout));
        connector.set_nodelay(true);
        Ok(Self {
            base,
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: args.request_timeout,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` (starting with `/`) on the server, as a `ws://` URL.
    pub fn ws_url(&self, path: &str) -> String {
        format!(
            "ws://{}{path}",
            self.base.strip_prefix("http://").unwrap_or(&self.base)
        )
    }

    /// The connect / request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET path` and its JSON body; an API error body becomes a [`CliError`] (`pool` names
    /// the pool a 404 is about).
    pub async fn get_json(&self, path: &str, pool: Option<&PoolId>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| CliError::new(Exit::Usage, format!("invalid URL {url}: {e}")))?;
        let request = hyper::Request::get(uri)
            .header(header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| CliError::new(Exit::Usage, format!("invalid request {url}: {e}")))?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| {
                CliError::new(
                    Exit::Server,
                    format!("cannot reach {}: {}", self.base, root_cause(&e)),
                )
            })?;
        let status = response.status();
        let body = tokio::time::timeout(
            self.timeout,
            Limited::new(response.into_body(), MAX_BODY).collect(),
        )
        .await
        .map_err(|_| self.timed_out())?
        .map_err(|e| {
            CliError::new(
                Exit::Server,
                format!("reading the answer of {}: {e}", self.base),
            )
        })?
        .to_bytes();
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body, pool));
        }
        serde_json::from_slice(&body).map_err(|e| {
            CliError::new(
                Exit::Server,
                format!("{url} did not answer with JSON ({e}): is it an origin-discovery server?"),
            )
        })
    }

    /// Decodes a body into the expected shape.
    pub fn decode<T: DeserializeOwned>(&self, body: Value) -> Result<T> {
        serde_json::from_value(body).map_err(|e| {
            CliError::new(
                Exit::Server,
                format!("unexpected answer from {}: {e}", self.base),
            )
        })
    }

    fn timed_out(&self) -> CliError {
        CliError::new(
            Exit::Server,
            format!(
                "{} did not answer within {:?} (--request-timeout)",
                self.base, self.timeout
            ),
        )
    }
}

/// `--server` as a base URL: `http://host[:port][/prefix]`.
pub fn base_url(server: &str) -> Result<String> {
    let usage = |why: &str| CliError::new(Exit::Usage, format!("--server {server:?}: {why}"));
    let url = url::Url::parse(server).map_err(|e| usage(&e.to_string()))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(usage(
                "https is not supported by the CLI; use the plain-HTTP port (e.g. through \
                 kubectl port-forward)",
            ))
        }
        _ => return Err(usage("expected an http:// URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(usage("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(usage("no query or fragment allowed"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Maps an API error answer (`{"error":{"code","message"}}`) to an exit code and line.
pub fn api_error(status: u16, body: &[u8], pool: Option<&PoolId>) -> CliError {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let e = v.get("error")?;
            Some((
                e.get("code")?.as_str()?.to_string(),
                e.get("message")?.as_str()?.to_string(),
            ))
        });
    let Some((code, message)) = parsed else {
        return CliError::new(
            Exit::Server,
            format!("the server answered HTTP {status} without an API error body"),
        );
    };
    let exit = match (status, code.as_str()) {
        (_, "unknown_pool") => Exit::NotFound,
        (400, _) => Exit::Usage,
        (429 | 503, _) => Exit::Unavailable,
        _ => Exit::Server,
    };
    let message = match (code.as_str(), pool) {
        ("unknown_pool", Some(pool)) => format!("unknown pool {pool}"),
        ("not_found", _) => {
            format!("{message}: the server has no such route (is --server an origin-discovery public API?)")
        }
        ("too_many_subscribers", _) => format!("{message} (HTTP 429 {code}): retry later"),
        _ => message,
    };
    CliError::new(exit, message)
}

/// The innermost error message (`connection refused`, not `client error (Connect)`).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_http_without_a_trailing_slash() {
        assert_eq!(
            base_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("http://d.example:80/discovery/").unwrap(),
            "http://d.example/discovery"
        );
        for bad in [
            "127.0.0.1:8080",
            "https://d.example",
            "ftp://x",
            "http://x/?a=1",
            "",
        ] {
            assert_eq!(base_url(bad).unwrap_err().exit, Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn api_errors_map_to_exit_codes() {
        let body = |code: &str| format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
        let pool = PoolId::new("demo", "x");
        let e = api_error(404, body("unknown_pool").as_bytes(), Some(&pool));
        assert_eq!(
            (e.exit, e.message.as_str()),
            (Exit::NotFound, "unknown pool demo/x")
        );
        assert_eq!(
            api_error(400, body("bad_parameter").as_bytes(), None).exit,
            Exit::Usage
        );
        assert_eq!(
            api_error(503, body("not_synced").as_bytes(), None).exit,
            Exit::Unavailable
        );
        assert_eq!(
            api_error(429, body("too_many_subscribers").as_bytes(), None).exit,
            Exit::Unavailable
        );
        assert_eq!(
            api_error(404, body("not_found").as_bytes(), None).exit,
            Exit::Server
        );
        assert_eq!(api_error(502, b"<html>", None).exit, Exit::Server);
    }
}
