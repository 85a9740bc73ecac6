//! The listener: an accept loop serving HTTP/1.1 connections with the REST router, which
//! can be stopped (listener closed, every connection cut, as when an apiserver goes away)
//! and started again on the same address.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::Instrument;

use super::rest;
use super::Shared;

/// A running listener.
pub(crate) struct Server {
    /// Cancelled to stop accepting and cut every connection.
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Binds with `SO_REUSEADDR` so a restart can take the same port at once.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(rest::handle).with_state(shared)
}

impl Server {
    /// Serves on `listener` until stopped or until the simulator shuts down.
    pub(crate) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Self {
        let stop = shared.cancel.child_token();
        let addr = shared.addr;
        let task = tokio::spawn(
            accept_loop(listener, router(shared), stop.clone())
                .instrument(tracing::info_span!("sim_server", %addr)),
        );
        Self { stop, task }
    }

    /// Closes the listener and every open connection, and waits for that to finish.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, router: Router, stop: CancellationToken) {
    // Connections live in this set so stopping the server ends them all.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            res = listener.accept() => match res {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let router = router.clone();
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            router.clone().oneshot(req.map(axum::body::Body::new))
                        });
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await
                        {
                            tracing::trace!(error = %e, "sim: connection ended with error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "sim: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}
