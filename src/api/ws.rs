//! `GET /v1/pools/{ns}/{svc}/watch`: WebSocket push (RFC 6455).
//!
//! [`watch`] does the HTTP checks and answers the upgrade itself (`101` with
//! `Sec-WebSocket-Accept`); the connection's socket is then taken back from hyper
//! ([`super::serve::ConnectionHandle::take_over`]) and runs the shared push driver
//! ([`super::push::run`]) over [`WsTransport`]. The framing is minimal because the server
//! only ever sends unmasked, unfragmented text frames (each message framed once and shared
//! by every subscriber), close frames and pong frames. Client frames are parsed with
//! tungstenite's [`FrameHeader`] by [`WsReader`], which accepts what a subscriber may send
//! and closes on anything else:
//!
//! - masked frames only, no reserved bits (no extension is negotiated): else 1002;
//! - text messages (fragmented or not) of at most [`MAX_CONTROL_MESSAGE`] bytes that are
//!   `{"type":"ping"}`: else 1009 (too big), 1007 (not UTF-8) or 1008 (anything else);
//!   binary messages: 1008;
//! - ping frames get a pong frame, pong frames are ignored, a close frame is answered
//!   with a close frame carrying the client's code and the connection ends;
//! - a frame over [`TRANSPORT_LIMIT`]: the connection is dropped at once.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::client_addr::ClientIp;
use super::error::{ApiError, Result};
use super::push::{self, transport, Incoming, Reader, Transport};
use super::serve::{ConnectionHandle, Socket};
use super::{origin_allowed, pool_id, query_pairs, resume_params, ApiState, MAX_CONTROL_MESSAGE};
use origin_discovery_core::hub::{Encoded, Subscription, Wire};
use origin_discovery_core::messages::{ClientMessage, Message as Msg};

pub use super::push::{close, SessionContext, SessionEnd};

/// Hard limit on any incoming WebSocket frame: beyond it the connection is dropped.
/// Frames above [`MAX_CONTROL_MESSAGE`] but within it get a clean close (1009, or 1008
/// for binary); their payload is never buffered.
pub const TRANSPORT_LIMIT: u64 = 64 * 1024;

/// Largest control frame payload (RFC 6455, 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

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
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
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
    let accept = accept_key(&headers).map_err(|e| ApiError::UpgradeRequired(e.into()))?;
    let Some(Extension(connection)) = connection else {
        return Err(ApiError::UpgradeRequired(
            "this connection cannot be upgraded".into(),
        ));
    };
    push::start::<WsTransport>(&state, &connection, client, channel, resume)?;
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response())
}

/// Checks the opening handshake (RFC 6455, 4.2.1) and derives `Sec-WebSocket-Accept`.
fn accept_key(headers: &HeaderMap) -> std::result::Result<HeaderValue, &'static str> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::CONNECTION, "upgrade") {
        return Err("Connection header did not include 'upgrade'");
    }
    if !has_token(header::UPGRADE, "websocket") {
        return Err("Upgrade header did not include 'websocket'");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err("Sec-WebSocket-Version must be 13");
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| !k.is_empty())
        .ok_or("Sec-WebSocket-Key header missing")?;
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    HeaderValue::from_str(&accept).map_err(|_| "Sec-WebSocket-Key header invalid")
}

/// Runs one subscription over an upgraded WebSocket connection (`early`: client bytes
/// already read past the handshake) until the client leaves, the pool is removed, the
/// client misbehaves, a write times out, or the process shuts down.
pub async fn session(
    socket: Socket,
    early: Bytes,
    sub: Subscription,
    ctx: SessionContext,
) -> SessionEnd {
    push::run::<WsTransport>(socket, early, sub, &ctx).await
}

/// WebSocket framing: every message is one text frame.
pub struct WsTransport;

impl Transport for WsTransport {
    const NAME: &'static str = transport::WEBSOCKET;
    const WIRE: Wire = Wire::WebSocket;
    const PREAMBLE: &'static [u8] = b"";
    const CLOSE_HANDSHAKE: bool = true;
    type Reader = WsReader;

    fn frame(message: &Encoded, _epoch: &str) -> Bytes {
        server_frame(OpCode::Data(Data::Text), message.json())
    }

    fn heartbeat(revision: u64) -> Bytes {
        server_frame(
            OpCode::Data(Data::Text),
            &Msg::Heartbeat { revision }.encode(),
        )
    }

    fn pong(revision: u64) -> Option<Bytes> {
        Some(server_frame(
            OpCode::Data(Data::Text),
            &Msg::Pong { revision }.encode(),
        ))
    }

    fn close(code: u16, reason: &str) -> Option<Bytes> {
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        Some(server_frame(OpCode::Control(Control::Close), &payload))
    }
}

/// One unmasked, final server frame.
pub fn server_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: None,
    };
    let len = payload.len() as u64;
    let mut out = Vec::with_capacity(header.len(len) + payload.len());
    header
        .format(len, &mut out)
        .expect("formatting into a Vec cannot fail");
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// The parser of client frames. Between reads it keeps at most one incomplete frame that
/// it will read (≤ 14 header bytes + [`MAX_CONTROL_MESSAGE`]) and one fragmented message
/// (≤ [`MAX_CONTROL_MESSAGE`]); payloads it rejects or skips are never buffered.
#[derive(Debug, Default)]
pub struct WsReader {
    /// The start of a frame not complete yet.
    partial: Vec<u8>,
    /// Payload bytes still to skip (while closing).
    skip: u64,
    /// The text message being assembled from fragments.
    fragments: Option<Vec<u8>>,
    /// A close, violation or drop was reported: nothing more is.
    done: bool,
}

/// One step of the parser.
enum Step {
    /// The frame is incomplete; keep the bytes from where it starts.
    More,
    /// `n` bytes were consumed.
    Consumed(usize),
    /// Stop parsing (after reporting a close, violation or drop; or the client's close
    /// answer while closing).
    Stop,
}

impl WsReader {
    fn feed(&mut self, data: &[u8], closing: bool, out: &mut Vec<Incoming>) -> bool {
        if self.done && !closing {
            return false;
        }
        let mut data = data;
        if self.skip > 0 {
            let n = self.skip.min(data.len() as u64) as usize;
            self.skip -= n as u64;
            data = &data[n..];
        }
        let mut buf = std::mem::take(&mut self.partial);
        let input: &[u8] = if buf.is_empty() {
            data
        } else {
            buf.extend_from_slice(data);
            &buf
        };
        let mut at = 0;
        let mut stopped = false;
        while at < input.len() {
            if self.done && !closing {
                // Reported an end: what follows is read while closing (kept below).
                break;
            }
            match self.step(&input[at..], closing, out) {
                Step::More => break,
                Step::Consumed(n) => at += n,
                Step::Stop => {
                    stopped = true;
                    break;
                }
            }
        }
        if !stopped && at < input.len() && self.skip == 0 {
            self.partial = input[at..].to_vec();
        }
        stopped
    }

    fn step(&mut self, input: &[u8], closing: bool, out: &mut Vec<Incoming>) -> Step {
        let mut cursor = std::io::Cursor::new(input);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Step::More,
            Err(_) if closing => return Step::Stop,
            Err(_) => return self.stop(out, violation(close::PROTOCOL, "unknown opcode")),
        };
        let head = cursor.position() as usize;
        let available = (input.len() - head) as u64;
        if closing {
            if header.opcode == OpCode::Control(Control::Close) {
                return Step::Stop;
            }
            // Skip the payload, whatever its size.
            if available >= len {
                return Step::Consumed(head + len as usize);
            }
            self.skip = len - available;
            return Step::Consumed(input.len());
        }
        if len > TRANSPORT_LIMIT {
            return self.stop(out, Incoming::Drop);
        }
        let Some(mask) = header.mask else {
            let refusal = violation(close::PROTOCOL, "client frames must be masked");
            return self.refuse(out, refusal, head, len, available);
        };
        if header.rsv1 || header.rsv2 || header.rsv3 {
            let refusal = violation(close::PROTOCOL, "no extension was negotiated");
            return self.refuse(out, refusal, head, len, available);
        }
        let fragmented = self.fragments.as_ref().map_or(0, Vec::len) as u64;
        let refusal = match header.opcode {
            OpCode::Control(_) if !header.is_final || len > MAX_CONTROL_PAYLOAD => Some(violation(
                close::PROTOCOL,
                "control frames are final and at most 125 bytes",
            )),
            OpCode::Control(_) => None,
            OpCode::Data(Data::Binary) => {
                Some(violation(close::POLICY, "binary messages are not accepted"))
            }
            OpCode::Data(Data::Text) if self.fragments.is_some() => Some(violation(
                close::PROTOCOL,
                "a new message inside a fragmented one",
            )),
            OpCode::Data(Data::Continue) if self.fragments.is_none() => Some(violation(
                close::PROTOCOL,
                "a continuation frame without a message",
            )),
            OpCode::Data(_) if fragmented + len > MAX_CONTROL_MESSAGE as u64 => Some(violation(
                close::TOO_BIG,
                "control messages are at most 1024 bytes",
            )),
            OpCode::Data(_) => None,
        };
        if let Some(refusal) = refusal {
            return self.refuse(out, refusal, head, len, available);
        }
        if available < len {
            return Step::More;
        }
        let mut payload = input[head..head + len as usize].to_vec();
        unmask(&mut payload, mask);
        let consumed = Step::Consumed(head + len as usize);
        match header.opcode {
            OpCode::Control(Control::Ping) => {
                out.push(Incoming::Reply(server_frame(
                    OpCode::Control(Control::Pong),
                    &payload,
                )));
                consumed
            }
            OpCode::Control(Control::Close) => {
                let closed = match payload.len() {
                    0 => Incoming::Closed(None),
                    1 => violation(close::PROTOCOL, "a close frame with a 1-byte payload"),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        if sendable_close_code(code) {
                            Incoming::Closed(Some(code))
                        } else {
                            violation(close::PROTOCOL, "an invalid close code")
                        }
                    }
                };
                if matches!(closed, Incoming::Closed(_)) {
                    return self.stop(out, closed);
                }
                self.refuse(out, closed, head, len, available)
            }
            OpCode::Control(_) => consumed,
            OpCode::Data(_) => {
                let message = match self.fragments.take() {
                    Some(mut start) => {
                        start.extend_from_slice(&payload);
                        start
                    }
                    None => payload,
                };
                if !header.is_final {
                    self.fragments = Some(message);
                    return consumed;
                }
                match std::str::from_utf8(&message).map(ClientMessage::parse) {
                    Ok(Some(ClientMessage::Ping)) => {
                        out.push(Incoming::Ping);
                        consumed
                    }
                    Ok(None) => {
                        let refusal = violation(close::POLICY, "expected {\"type\":\"ping\"}");
                        self.refuse(out, refusal, head, len, available)
                    }
                    Err(_) => {
                        let refusal = violation(close::INVALID_DATA, "text messages must be UTF-8");
                        self.refuse(out, refusal, head, len, available)
                    }
                }
            }
        }
    }

    /// Reports a refused frame, and skips its payload (never buffered) so that what the
    /// client sends after it is read as frames while closing.
    fn refuse(
        &mut self,
        out: &mut Vec<Incoming>,
        refusal: Incoming,
        head: usize,
        len: u64,
        available: u64,
    ) -> Step {
        out.push(refusal);
        self.done = true;
        self.fragments = None;
        if available >= len {
            Step::Consumed(head + len as usize)
        } else {
            self.skip = len - available;
            Step::Consumed(head + available as usize)
        }
    }

    fn stop(&mut self, out: &mut Vec<Incoming>, last: Incoming) -> Step {
        out.push(last);
        self.done = true;
        self.fragments = None;
        Step::Stop
    }
}

impl Reader for WsReader {
    fn input(&mut self, data: &[u8], out: &mut Vec<Incoming>) {
        self.feed(data, false, out);
    }

    fn input_closing(&mut self, data: &[u8]) -> bool {
        if !self.done {
            // The first frames after our close are read as frames too.
            self.done = true;
            self.fragments = None;
        }
        self.feed(data, true, &mut Vec::new())
    }
}

fn violation(code: u16, reason: &'static str) -> Incoming {
    Incoming::Violation(code, reason)
}

/// Close codes an endpoint may send (RFC 6455, 7.4).
fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

#[cfg(test)]
#[path = "ws_tests.rs"]
mod tests;
