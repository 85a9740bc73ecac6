//! The one push session driver behind WebSocket and SSE (docs/DESIGN.md, "WebSocket
//! messages"): it pulls [`Frame`]s from a [`Subscription`], writes them in revision order,
//! sends heartbeats, answers control messages, closes on removal, misbehaviour or
//! shutdown, and records the push metrics. Transports only frame: a [`Transport`] gets
//! the pre-encoded message bytes (shared by every subscriber of a revision) and writes
//! them its own way — WebSocket text frames ([`super::ws`]), SSE `id:`/`data:` events and
//! `: heartbeat` comments ([`super::sse`]).
//!
//! Slow consumers: one write is in flight per session, and a subscriber's queue is the
//! socket's buffer; a subscriber that falls behind skips to the latest state through its
//! `Subscription` (deltas from the log, or a fresh snapshot — counted as a reset). A write
//! the transport has not taken within the write timeout ends the session and drops its
//! connection ([`SessionEnd::WriteFailed`]), so a dead client frees its slot in bounded time.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::limits::Permit;
use super::{ApiState, WRITE_TIMEOUT};
use crate::metrics::{Metrics, TransportLabels};
use origin_discovery_core::hub::{Frame, FrameKind, Subscription};

/// Close codes of push sessions (WebSocket close frames; SSE streams just end).
pub mod close {
    /// Normal closure: the pool was removed.
    pub const NORMAL: u16 = 1000;
    /// Going away: the server shuts down.
    pub const GOING_AWAY: u16 = 1001;
    /// Policy violation: the client sent something that is not a control message.
    pub const POLICY: u16 = 1008;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
}

/// Subscriber transports, as named in metrics (`transport` label) and the limiter.
pub mod transport {
    /// WebSocket push.
    pub const WEBSOCKET: &str = "websocket";
    /// Server-Sent Events push.
    pub const SSE: &str = "sse";
    /// A long-poll waiting for a revision.
    pub const LONGPOLL: &str = "longpoll";
}

/// What the driver asks a transport to write.
#[derive(Clone, Copy, Debug)]
pub enum Outgoing<'a> {
    /// A subscription frame: a snapshot, delta, stale or removed message.
    Frame(&'a Frame),
    /// Nothing was written for a heartbeat interval; the subscriber is at this revision.
    Heartbeat(u64),
    /// The answer to a client's ping, at this revision.
    Pong(u64),
}

/// What the client did, as a transport reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// The client closed the connection or went away.
    Gone,
    /// A `{"type":"ping"}` control message.
    Ping,
    /// Something the protocol ignores (WebSocket ping/pong frames).
    Ignored,
    /// Something not allowed: close with this code and reason.
    Violation(u16, &'static str),
}

/// The client cannot be written to any more.
#[derive(Debug)]
pub struct Gone;

/// One push transport: framing and the socket, nothing else.
pub trait Transport: Send {
    /// Writes one message; resolves once the transport took it (it may sit in a buffer).
    /// The driver bounds the wait with the write timeout.
    fn send(&mut self, out: Outgoing<'_>) -> impl Future<Output = Result<(), Gone>> + Send;
    /// The client's next action. A transport without a client → server channel resolves
    /// only with [`Incoming::Gone`]. Must be cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Incoming> + Send;
    /// Ends the session politely with a close code (bounded in time).
    fn close(&mut self, code: u16, reason: &'static str) -> impl Future<Output = ()> + Send;
    /// Ends the session at once after a write timed out: drop the connection.
    fn abort(&mut self);
}

/// Why a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client closed or went away.
    ClientGone,
    /// We closed with this code.
    Closed(u16),
    /// A frame could not be written in time (dead or hopelessly slow subscriber).
    WriteFailed,
}

/// What a session needs besides its transport and subscription.
#[derive(Clone, Debug)]
pub struct SessionContext {
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// How long one write may wait for the transport before the subscriber is dropped.
    pub write_timeout: Duration,
    /// Process shutdown: sessions close with 1001.
    pub shutdown: CancellationToken,
    metrics: Metrics,
}

impl SessionContext {
    /// A context recording into `metrics`, with the [`WRITE_TIMEOUT`].
    pub fn new(heartbeat: Duration, shutdown: CancellationToken, metrics: &Metrics) -> Self {
        Self {
            heartbeat,
            write_timeout: WRITE_TIMEOUT,
            shutdown,
            metrics: metrics.clone(),
        }
    }

    /// The same with another write timeout.
    pub fn with_write_timeout(mut self, write_timeout: Duration) -> Self {
        self.write_timeout = write_timeout;
        self
    }

    /// The context of the API's sessions.
    pub fn from_state(state: &ApiState) -> Self {
        Self::new(
            state.config.heartbeat_interval,
            state.shutdown.clone(),
            &state.metrics,
        )
        .with_write_timeout(state.config.write_timeout)
    }
}

/// Admits one subscriber of `transport` from `ip` under the limits, or refuses it (429,
/// counted in `rejected_subscribers_total`). The permit keeps the `subscribers` gauge.
pub fn admit(
    state: &ApiState,
    ip: std::net::IpAddr,
    transport: &'static str,
) -> Result<Permit, ApiError> {
    let labels = TransportLabels { transport };
    let gauge = state.metrics.subscribers.get_or_create(&labels).clone();
    state.limiter.acquire(ip, gauge).inspect_err(|_| {
        state.metrics.rejected.get_or_create(&labels).inc();
    })
}

/// Runs one subscription over `transport` (named `name` in the metrics) until the client
/// leaves, the pool is removed, the client misbehaves, a write times out, or the process
/// shuts down.
pub async fn run<T: Transport>(
    transport: &mut T,
    name: &'static str,
    mut sub: Subscription,
    ctx: &SessionContext,
) -> SessionEnd {
    // Resolved once per session, not per frame.
    let labels = TransportLabels { transport: name };
    let push_latency = ctx.metrics.push_latency.get_or_create(&labels).clone();
    let resets = ctx.metrics.resets.get_or_create(&labels).clone();
    // The heartbeat ticks at a fixed rate and is skipped when a frame went out recently:
    // cheaper than re-arming a timer for every frame of every subscriber.
    let mut heartbeat = tokio::time::interval_at(Instant::now() + ctx.heartbeat, ctx.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_write = Instant::now();
    let mut first = true;
    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => {
                transport.close(close::GOING_AWAY, "going away").await;
                return SessionEnd::Closed(close::GOING_AWAY);
            }
            incoming = transport.recv() => match incoming {
                Incoming::Gone => return SessionEnd::ClientGone,
                Incoming::Ignored => {}
                Incoming::Ping => {
                    let pong = Outgoing::Pong(sub.revision());
                    if !write(transport, pong, ctx.write_timeout).await {
                        return SessionEnd::WriteFailed;
                    }
                }
                Incoming::Violation(code, reason) => {
                    transport.close(code, reason).await;
                    return SessionEnd::Closed(code);
                }
            },
            frame = sub.next() => {
                let Some(frame) = frame else {
                    transport.close(close::NORMAL, "pool removed").await;
                    return SessionEnd::Closed(close::NORMAL);
                };
                if frame.kind == FrameKind::Snapshot && !first {
                    resets.inc();
                }
                first = false;
                if !write(transport, Outgoing::Frame(&frame), ctx.write_timeout).await {
                    return SessionEnd::WriteFailed;
                }
                if let Some(received) = frame.received {
                    push_latency.observe(received.elapsed().as_secs_f64());
                }
                if frame.kind == FrameKind::Removed {
                    transport.close(close::NORMAL, "pool removed").await;
                    return SessionEnd::Closed(close::NORMAL);
                }
                last_write = Instant::now();
            }
            _ = heartbeat.tick() => {
                if last_write.elapsed() < ctx.heartbeat {
                    continue;
                }
                if !write(transport, Outgoing::Heartbeat(sub.revision()), ctx.write_timeout).await {
                    return SessionEnd::WriteFailed;
                }
            }
        }
    }
}

/// Writes one message; on failure or timeout the transport is aborted. The timer is only
/// armed when the transport cannot take the message at once (the common case needs no
/// timer per frame and subscriber).
async fn write<T: Transport>(transport: &mut T, out: Outgoing<'_>, timeout: Duration) -> bool {
    let ok = {
        let sending = transport.send(out);
        tokio::pin!(sending);
        match futures::poll!(&mut sending) {
            std::task::Poll::Ready(result) => result.is_ok(),
            std::task::Poll::Pending => {
                matches!(tokio::time::timeout(timeout, sending).await, Ok(Ok(())))
            }
        }
    };
    if !ok {
        transport.abort();
    }
    ok
}
