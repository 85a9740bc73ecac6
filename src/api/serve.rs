//! The HTTP/1.1 server of both ports, with connection hygiene (docs/DESIGN.md, "Behind
//! proxies, connection limits"): `axum::serve` exposes none of these bounds.
//!
//! - A client must send its whole request head within `--header-read-timeout`; the same
//!   timer runs while a keep-alive connection sits idle between requests, so an idle
//!   connection is closed after it too (hyper arms it as soon as a response is written).
//! - A request head larger than `--max-header-bytes` is answered 431 and the connection
//!   closed (hyper writes that answer itself, without a body).
//! - At most `max_connections` connections are open; a WebSocket keeps its slot after the
//!   upgrade (the slot travels with the socket). Beyond it a connection is answered 503 with
//!   the JSON error body (`too_many_connections`, `Retry-After: 1`, `Connection: close`)
//!   and closed; at most [`MAX_REFUSALS`] refusals are in flight, beyond that a connection
//!   is closed at once.
//! - HTTP/1.1 only: no h2c (cleartext HTTP/2 by prior knowledge), whose preface and header
//!   reads these bounds would not cover. Ingress controllers speak HTTP/1.1 to backends.
//!
//! - A push session takes its socket back from hyper after its response head
//!   ([`ConnectionHandle::take_over`]): the session writes pre-framed bytes straight to the
//!   socket ([`super::push`]); hyper's buffers are freed. The connection slot travels with
//!   the [`Socket`].
//! - Every accepted socket has `TCP_NODELAY`: responses and push frames are written in one
//!   piece each, and Nagle's algorithm would hold a frame back behind an unacknowledged one.
//! - An optional fast path ([`App::with_fast_path`]) answers the hottest requests (the
//!   snapshot GET) before the router, from bytes prepared once per revision.
//!
//! On shutdown the listener closes, idle connections close at once, and busy ones after
//! their current response (push sessions end themselves with Close 1001 or the end of the
//! event stream; long-polls answer early).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::{Metrics, PortLabels};

/// Most connections being refused at once (each is answered 503 and drained for at most
/// [`REFUSAL_TIMEOUT`]); beyond it a refused connection is closed without an answer.
pub const MAX_REFUSALS: usize = 256;

/// How long a refused connection is given to read its 503.
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Connection bounds of one port.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// `api` or `admin`: the `port` label of the connection metrics, and the logs.
    pub port: &'static str,
    /// Time allowed for a request head, and for an idle keep-alive connection.
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Most open connections.
    pub max_connections: usize,
}

/// What a push session does with the socket it took over: called once, with the socket
/// and the bytes hyper had read past the request head.
pub type Takeover = Box<dyn FnOnce(Socket, Bytes) + Send>;

/// In every request's extensions: closes the request's connection at once (no graceful
/// end), or hands its socket to a push session after the response.
#[derive(Clone)]
pub struct ConnectionHandle {
    kill: CancellationToken,
    takeover: Arc<Mutex<Option<Takeover>>>,
}

impl std::fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHandle").finish_non_exhaustive()
    }
}

impl ConnectionHandle {
    fn new() -> Self {
        Self {
            kill: CancellationToken::new(),
            takeover: Arc::new(Mutex::new(None)),
        }
    }

    /// Drops the connection.
    pub fn close(&self) {
        self.kill.cancel();
    }

    /// After the response to this request is written, hyper lets go of the connection
    /// and `then` gets its socket. The response must end the HTTP exchange: a `101`
    /// upgrade, or a close-delimited (HTTP/1.0) response with an empty body. If the
    /// response cannot be written (the client left), `then` is dropped uncalled.
    pub fn take_over(&self, then: Takeover) {
        *self.takeover.lock().expect("takeover lock poisoned") = Some(then);
    }

    fn taken(&self) -> Option<Takeover> {
        self.takeover.lock().expect("takeover lock poisoned").take()
    }
}

/// A connection's socket after hyper let go of it, holding the connection's slot and its
/// count in `http_connections` until dropped.
#[derive(Debug)]
pub struct Socket {
    stream: TcpStream,
    _counted: Option<Counted>,
}

impl Socket {
    /// A socket outside the server's accounting (tests, tools).
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            _counted: None,
        }
    }

    /// The TCP stream.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// The fast path of an [`App`]: answers a request before the router, or declines.
pub type FastPath = Arc<dyn Fn(&hyper::Request<Incoming>) -> Option<Response> + Send + Sync>;

/// What a port serves: a router, and optionally a fast path tried first.
#[derive(Clone)]
pub struct App {
    router: Router,
    fast: Option<FastPath>,
}

impl App {
    /// Requests the fast path declines go to the router.
    pub fn with_fast_path(router: Router, fast: FastPath) -> Self {
        Self {
            router,
            fast: Some(fast),
        }
    }
}

impl From<Router> for App {
    fn from(router: Router) -> Self {
        Self { router, fast: None }
    }
}

/// The body of the answer beyond `max_connections` (documented with the API's errors).
macro_rules! refusal_body {
    () => {
        "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"the server is at its connection limit\"}}\n"
    };
}
#[cfg(test)]
pub(crate) const REFUSAL_BODY: &[u8] = refusal_body!().as_bytes();

const REFUSAL: &[u8] = concat!(
    "HTTP/1.1 503 Service Unavailable\r\n",
    "content-type: application/json\r\n",
    "retry-after: 1\r\n",
    "connection: close\r\n",
    "content-length: 92\r\n",
    "\r\n",
    refusal_body!()
)
.as_bytes();

/// Serves `router` on `listener` until `shutdown`, then waits for the open connections to
/// end (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: impl Into<App>,
    config: ServeConfig,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let app = app.into();
    let labels = PortLabels { port: config.port };
    let open = metrics.connections.get_or_create(&labels).clone();
    let refused = metrics.connections_refused.get_or_create(&labels).clone();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes)
        .max_buf_size(config.max_header_bytes.max(8 * 1024))
        .keep_alive(true);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Per-connection failures (reset before accept) are nothing to wait
                    // for; out of descriptors or memory is: back off briefly.
                    if !is_connection_error(&e) {
                        tracing::warn!(port = config.port, error = %e, "accept failed; retrying in 100ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.inc();
            if let Ok(permit) = refusals.clone().try_acquire_owned() {
                tokio::spawn(refuse(stream, permit));
            }
            continue;
        };
        // Best effort: a socket that refuses it still works.
        let _ = stream.set_nodelay(true);
        open.inc();
        let io = CountedIo {
            inner: stream,
            counted: Counted {
                open: open.clone(),
                _slot: slot,
            },
        };
        connections.spawn(connection(
            io,
            peer,
            app.clone(),
            builder.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn connection(
    io: CountedIo,
    peer: SocketAddr,
    app: App,
    builder: Arc<http1::Builder>,
    shutdown: CancellationToken,
) {
    let handle = ConnectionHandle::new();
    let kill = handle.kill.clone();
    let taken = handle.clone();
    let App { router, fast } = app;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        if let Some(response) = fast.as_ref().and_then(|fast| fast(&req)) {
            return Either::Left(std::future::ready(Ok::<_, std::convert::Infallible>(
                response,
            )));
        }
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(handle.clone());
        Either::Right(router.clone().oneshot(req))
    });
    // `poll_without_shutdown`: when the HTTP exchange is over (a `101`, a close-delimited
    // response, keep-alive off, the client done), the connection hands its socket back
    // instead of shutting it, so a push session can take it over.
    let mut conn = builder.serve_connection(TokioIo::new(io), service);
    let result = tokio::select! {
        r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
        _ = kill.cancelled() => return,
        _ = shutdown.cancelled() => {
            Pin::new(&mut conn).graceful_shutdown();
            tokio::select! {
                r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
                _ = kill.cancelled() => return,
            }
        }
    };
    if let Err(e) = result {
        // Header timeouts, oversized heads, clients that vanished: the client's problem.
        tracing::debug!(%peer, error = %e, "connection ended with an error");
        return;
    }
    let parts = conn.into_parts();
    let io = parts.io.into_inner();
    match taken.taken() {
        Some(then) => then(
            Socket {
                stream: io.inner,
                _counted: Some(io.counted),
            },
            parts.read_buf,
        ),
        None => {
            let mut io = io;
            let _ = tokio::time::timeout(REFUSAL_TIMEOUT, io.shutdown()).await;
        }
    }
}

async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes: closing a socket with unread input
        // resets the connection, and the client could lose the answer.
        let mut buf = [0u8; 1024];
        while stream.read(&mut buf).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A connection's socket holding its connection slot: the slot is freed when the socket
/// is dropped, also when it lives on in a push session ([`Socket`]).
struct CountedIo {
    inner: TcpStream,
    counted: Counted,
}

/// A connection's slot and its count in the open-connections gauge.
#[derive(Debug)]
struct Counted {
    open: Gauge,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for CountedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_response_with_the_json_error_body() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
    }

    #[test]
    fn connection_errors_of_one_client_do_not_pause_accepting() {
        assert!(is_connection_error(
            &io::ErrorKind::ConnectionAborted.into()
        ));
        assert!(!is_connection_error(&io::Error::from_raw_os_error(24)));
    }
}
