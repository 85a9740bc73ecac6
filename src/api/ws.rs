//! `GET /v1/pools/{ns}/{svc}/watch`: WebSocket push.
//!
//! The session logic ([`session`]) is generic over `Sink`/`Stream` of WebSocket messages so
//! it is tested without sockets; [`watch`] does the HTTP checks and the upgrade.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, Result};
use super::{
    origin_allowed, pool_id, query_pairs, resume_params, ApiState, ClientAddr, MAX_CONTROL_MESSAGE,
    WRITE_TIMEOUT,
};
use crate::metrics::{Metrics, TransportLabels};
use axum::extract::ConnectInfo;
use origin_discovery_core::hub::{FrameKind, Subscription};
use origin_discovery_core::messages::{ClientMessage, Message as Msg};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// Close codes used by the server.
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

/// Hard limit on any incoming WebSocket message (the transport drops the connection past
/// it); messages above [`MAX_CONTROL_MESSAGE`] but within it get a clean 1009 close.
const TRANSPORT_LIMIT: usize = 64 * 1024;

/// Initial read buffer per session.
const READ_BUFFER: usize = 4 * 1024;

/// Bound on a session's unwritten output (one frame is in flight at a time; a snapshot of a
/// very large pool is the biggest).
const MAX_WRITE_BUFFER: usize = 16 * 1024 * 1024;

const TRANSPORT: TransportLabels = TransportLabels {
    transport: "websocket",
};

/// The upgrade handler.
#[utoipa::path(
    get,
    path = "/v1/pools/{ns}/{svc}/watch",
    summary = "Subscribe over WebSocket",
    description = super::openapi::WATCH_DOC,
    tag = "push",
    params(
        super::openapi::PoolPath,
        super::openapi::ResumeQuery,
        super::openapi::WatchHeaders
    ),
    responses(super::openapi::WatchResponses)
)]
pub async fn watch(
    State(state): State<ApiState>,
    Path((ns, svc)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    ConnectInfo(addr): ClientAddr,
    headers: HeaderMap,
    upgrade: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let id = pool_id(&ns, &svc)?;
    let resume = resume_params(&query_pairs(query.as_deref()))?;
    let channel = state.hub.pool(&id).ok_or(ApiError::UnknownPool(id))?;
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !origin_allowed(&state.config, origin, host) {
        return Err(ApiError::ForbiddenOrigin(
            origin.unwrap_or_default().to_string(),
        ));
    }
    let upgrade = upgrade.map_err(|e| ApiError::UpgradeRequired(e.to_string()))?;
    let gauge = state.metrics.subscribers.get_or_create(&TRANSPORT).clone();
    let permit = state.limiter.acquire(addr.ip(), gauge).inspect_err(|_| {
        state.metrics.rejected.get_or_create(&TRANSPORT).inc();
    })?;
    let sub = Subscription::new(channel, resume.as_ref().map(|(e, r)| (e.as_str(), *r)));
    let ctx = SessionContext::new(
        state.config.heartbeat_interval,
        state.shutdown.clone(),
        &state.metrics,
    );
    let sessions = state.sessions.clone();
    Ok(upgrade
        // Subscribers mostly listen: a small read buffer keeps idle sessions cheap (the
        // default 128 KiB per connection would dominate memory at 10,000 subscribers), and
        // frames are written eagerly, one at a time.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(TRANSPORT_LIMIT)
        .max_frame_size(TRANSPORT_LIMIT)
        .on_upgrade(move |socket: WebSocket| {
            sessions.track_future(async move {
                let _permit = permit;
                let (mut sink, mut stream) = socket.split();
                let end = session(&mut sink, &mut stream, sub, ctx).await;
                tracing::debug!(client = %addr, ?end, "websocket session ended");
            })
        }))
}

/// What a session needs besides its sockets.
#[derive(Clone, Debug)]
pub struct SessionContext {
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Process shutdown.
    pub shutdown: CancellationToken,
    /// This transport's push latency histogram, resolved once per session (not per frame).
    push_latency: Histogram,
    /// This transport's catch-up snapshot counter.
    resets: Counter,
}

impl SessionContext {
    /// A context recording into `metrics`.
    pub fn new(heartbeat: Duration, shutdown: CancellationToken, metrics: &Metrics) -> Self {
        Self {
            heartbeat,
            shutdown,
            push_latency: metrics.push_latency.get_or_create(&TRANSPORT).clone(),
            resets: metrics.resets.get_or_create(&TRANSPORT).clone(),
        }
    }
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

/// Runs one subscription over a WebSocket until the client leaves, the pool is removed,
/// the client misbehaves, or the process shuts down.
pub async fn session<S, R, E>(
    sink: &mut S,
    stream: &mut R,
    mut sub: Subscription,
    ctx: SessionContext,
) -> SessionEnd
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = std::result::Result<Message, E>> + Unpin,
{
    // The heartbeat ticks at a fixed rate and is skipped when a frame went out recently:
    // cheaper than re-arming a timer for every frame of every subscriber.
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + ctx.heartbeat, ctx.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_write = tokio::time::Instant::now();
    let mut first = true;
    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => {
                return close(sink, close::GOING_AWAY, "going away").await;
            }
            incoming = stream.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return SessionEnd::ClientGone,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Binary(_))) => {
                    return close(sink, close::POLICY, "binary messages are not accepted").await;
                }
                Some(Ok(Message::Text(text))) => {
                    if text.len() > MAX_CONTROL_MESSAGE {
                        return close(sink, close::TOO_BIG, "control messages are at most 1024 bytes").await;
                    }
                    match ClientMessage::parse(&text) {
                        Some(ClientMessage::Ping) => {
                            let pong = Msg::Pong { revision: sub.revision() }.encode();
                            if !send(sink, pong).await {
                                return SessionEnd::WriteFailed;
                            }
                        }
                        None => return close(sink, close::POLICY, "expected {\"type\":\"ping\"}").await,
                    }
                }
            },
            frame = sub.next() => {
                let Some(frame) = frame else {
                    return close(sink, close::NORMAL, "pool removed").await;
                };
                if frame.kind == FrameKind::Snapshot && !first {
                    ctx.resets.inc();
                }
                first = false;
                if !send(sink, frame.bytes).await {
                    return SessionEnd::WriteFailed;
                }
                if let Some(received) = frame.received {
                    ctx.push_latency.observe(received.elapsed().as_secs_f64());
                }
                if frame.kind == FrameKind::Removed {
                    return close(sink, close::NORMAL, "pool removed").await;
                }
                last_write = tokio::time::Instant::now();
            }
            _ = heartbeat.tick() => {
                if last_write.elapsed() < ctx.heartbeat {
                    continue;
                }
                let hb = Msg::Heartbeat { revision: sub.revision() }.encode();
                if !send(sink, hb).await {
                    return SessionEnd::WriteFailed;
                }
            }
        }
    }
}

/// Sends one text frame. The write timeout's timer is only armed when the socket cannot
/// take the frame at once (the common case needs no timer per frame and subscriber).
async fn send<S: Sink<Message> + Unpin>(sink: &mut S, bytes: bytes::Bytes) -> bool {
    let Ok(text) = Utf8Bytes::try_from(bytes) else {
        return false;
    };
    let mut sending = sink.send(Message::Text(text));
    if let std::task::Poll::Ready(result) = futures::poll!(&mut sending) {
        return result.is_ok();
    }
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sending).await,
        Ok(Ok(()))
    )
}

async fn close<S: Sink<Message> + Unpin>(
    sink: &mut S,
    code: u16,
    reason: &'static str,
) -> SessionEnd {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
    SessionEnd::Closed(code)
}
