//! `GET /v1/pools/{ns}/{svc}/watch`: WebSocket push.
//!
//! [`watch`] does the HTTP checks and the upgrade; the session is the shared push driver
//! ([`super::push::run`]) over [`WsTransport`], which only turns messages into text frames
//! and client frames into [`Incoming`] actions. [`session`] runs it over any
//! `Sink`/`Stream` of WebSocket messages, so it is tested without sockets.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures::{Sink, SinkExt, Stream, StreamExt};

use super::client_addr::ClientIp;
use super::error::{ApiError, Result};
use super::push::{self, transport, Gone, Incoming, Outgoing, Transport};
use super::{origin_allowed, pool_id, query_pairs, resume_params, ApiState, MAX_CONTROL_MESSAGE};
use origin_discovery_core::hub::Subscription;
use origin_discovery_core::messages::{ClientMessage, Message as Msg};

pub use super::push::{close, SessionContext, SessionEnd};

/// Hard limit on any incoming WebSocket message (the transport drops the connection past
/// it); messages above [`MAX_CONTROL_MESSAGE`] but within it get a clean 1009 close.
const TRANSPORT_LIMIT: usize = 64 * 1024;

/// Initial read buffer per session.
const READ_BUFFER: usize = 4 * 1024;

/// Bound on a session's unwritten output (one frame is in flight at a time; a snapshot of a
/// very large pool is the biggest).
const MAX_WRITE_BUFFER: usize = 16 * 1024 * 1024;

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
    client: ClientIp,
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
    let permit = push::admit(&state, client.0, transport::WEBSOCKET)?;
    let sub = Subscription::new(channel, resume.as_ref().map(|(e, r)| (e.as_str(), *r)));
    let ctx = SessionContext::from_state(&state);
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
                tracing::debug!(%client, ?end, "websocket session ended");
            })
        }))
}

/// Runs one subscription over a WebSocket until the client leaves, the pool is removed,
/// the client misbehaves, a write times out, or the process shuts down.
pub async fn session<S, R, E>(
    sink: &mut S,
    stream: &mut R,
    sub: Subscription,
    ctx: SessionContext,
) -> SessionEnd
where
    S: Sink<Message> + Unpin + Send,
    R: Stream<Item = std::result::Result<Message, E>> + Unpin + Send,
{
    let mut ws = WsTransport { sink, stream };
    push::run(&mut ws, transport::WEBSOCKET, sub, &ctx).await
}

/// WebSocket framing: every message is one text frame; client frames become actions.
pub struct WsTransport<'a, S, R> {
    sink: &'a mut S,
    stream: &'a mut R,
}

impl<S, R, E> Transport for WsTransport<'_, S, R>
where
    S: Sink<Message> + Unpin + Send,
    R: Stream<Item = std::result::Result<Message, E>> + Unpin + Send,
{
    async fn send(&mut self, out: Outgoing<'_>) -> std::result::Result<(), Gone> {
        let bytes = match out {
            Outgoing::Frame(frame) => frame.bytes.clone(),
            Outgoing::Heartbeat(revision) => Msg::Heartbeat { revision }.encode(),
            Outgoing::Pong(revision) => Msg::Pong { revision }.encode(),
        };
        let text = Utf8Bytes::try_from(bytes).map_err(|_| Gone)?;
        self.sink.send(Message::Text(text)).await.map_err(|_| Gone)
    }

    async fn recv(&mut self) -> Incoming {
        match self.stream.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Incoming::Gone,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Ignored,
            Some(Ok(Message::Binary(_))) => {
                Incoming::Violation(close::POLICY, "binary messages are not accepted")
            }
            Some(Ok(Message::Text(text))) => {
                if text.len() > MAX_CONTROL_MESSAGE {
                    return Incoming::Violation(
                        close::TOO_BIG,
                        "control messages are at most 1024 bytes",
                    );
                }
                match ClientMessage::parse(&text) {
                    Some(ClientMessage::Ping) => Incoming::Ping,
                    None => Incoming::Violation(close::POLICY, "expected {\"type\":\"ping\"}"),
                }
            }
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.sink.send(Message::Close(Some(frame))),
        )
        .await;
    }

    fn abort(&mut self) {
        // The session returns and drops the socket, which closes it.
    }
}
