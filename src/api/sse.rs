//! `GET /v1/pools/{ns}/{svc}/events`: Server-Sent Events carrying the WebSocket messages.
//!
//! Each message is one event with `id: <epoch>-<revision>` and a single `data:` line (the
//! compact JSON has no newlines); heartbeats are comment lines. `Last-Event-ID` (or
//! `?epoch=&revision=`) resumes like the WebSocket does.
//!
//! The session is the shared push driver ([`super::push::run`]) in a task of its own,
//! writing into a one-chunk channel that the response body drains: the channel is full
//! while the socket is, so the driver's write timeout applies as it does to WebSocket. A
//! timed-out session drops its connection ([`super::serve::ConnectionHandle`]).

use std::convert::Infallible;
use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::client_addr::ClientIp;
use super::error::{ApiError, Result};
use super::push::{self, transport, Gone, Incoming, Outgoing, SessionContext, Transport};
use super::serve::ConnectionHandle;
use super::{pool_id, query_pairs, resume_params, ApiState};
use origin_discovery_core::hub::Subscription;

/// Browsers reconnect an EventSource after this many milliseconds (default would be ~3 s).
const RETRY_MS: u32 = 500;

/// Initial size of a session's event buffer; events are encoded into it and split off, so
/// it is reallocated only when a large snapshot does not fit.
const EVENT_BUFFER: usize = 4 * 1024;

/// The SSE handler.
#[utoipa::path(
    get,
    path = "/v1/pools/{ns}/{svc}/events",
    summary = "Subscribe over Server-Sent Events",
    description = super::openapi::EVENTS_DOC,
    tag = "push",
    params(
        super::openapi::PoolPath,
        super::openapi::ResumeQuery,
        super::openapi::EventHeaders
    ),
    responses(super::openapi::EventsResponses)
)]
pub async fn events(
    State(state): State<ApiState>,
    Path((ns, svc)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    client: ClientIp,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = pool_id(&ns, &svc)?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(parse_event_id(v.to_str().unwrap_or(""))?),
        None => resume_params(&query_pairs(query.as_deref()))?,
    };
    let channel = state.hub.pool(&id).ok_or(ApiError::UnknownPool(id))?;
    let permit = push::admit(&state, client.0, transport::SSE)?;
    let sub = Subscription::new(channel, resume.as_ref().map(|(e, r)| (e.as_str(), *r)));
    let ctx = SessionContext::from_state(&state);
    // One chunk in the channel at a time: the driver's write waits while the body has not
    // taken the previous one.
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let mut sse = SseTransport {
        tx,
        buf: BytesMut::with_capacity(EVENT_BUFFER),
        epoch: state.hub.epoch().to_string(),
        started: false,
        connection: connection.map(|Extension(c)| c),
    };
    state.sessions.spawn(async move {
        let _permit = permit;
        let end = push::run(&mut sse, transport::SSE, sub, &ctx).await;
        tracing::debug!(%client, ?end, "sse session ended");
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(chunk), rx))
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Tell nginx-style proxies not to buffer the stream.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `<epoch>-<revision>` as sent in `id:`.
fn parse_event_id(id: &str) -> Result<(String, u64)> {
    let bad = || ApiError::bad("Last-Event-ID", "expected <epoch>-<revision>");
    let (epoch, revision) = id.rsplit_once('-').ok_or_else(bad)?;
    Ok((epoch.to_string(), revision.parse().map_err(|_| bad())?))
}

/// SSE framing into the response body's channel.
struct SseTransport {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    epoch: String,
    started: bool,
    connection: Option<ConnectionHandle>,
}

impl Transport for SseTransport {
    async fn send(&mut self, out: Outgoing<'_>) -> std::result::Result<(), Gone> {
        let buf = &mut self.buf;
        match out {
            Outgoing::Frame(frame) => {
                buf.reserve(frame.bytes.len() + self.epoch.len() + 48);
                if !self.started {
                    self.started = true;
                    let _ = writeln!(buf, "retry: {RETRY_MS}");
                }
                let _ = write!(buf, "id: {}-{}\ndata: ", self.epoch, frame.revision);
                buf.extend_from_slice(&frame.bytes);
                buf.extend_from_slice(b"\n\n");
            }
            Outgoing::Heartbeat(revision) => {
                let _ = write!(buf, ": heartbeat {revision}\n\n");
            }
            // No client → server channel, so never asked.
            Outgoing::Pong(_) => return Ok(()),
        }
        let chunk = buf.split().freeze();
        self.tx.send(chunk).await.map_err(|_| Gone)
    }

    async fn recv(&mut self) -> Incoming {
        // The body is dropped when the client goes away.
        self.tx.closed().await;
        Incoming::Gone
    }

    async fn close(&mut self, _code: u16, _reason: &'static str) {
        // The stream ends when the transport (its sender) is dropped.
    }

    fn abort(&mut self) {
        if let Some(c) = &self.connection {
            c.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_parse_as_epoch_and_revision() {
        assert_eq!(parse_event_id("abc123-42").unwrap(), ("abc123".into(), 42));
        assert!(parse_event_id("abc").is_err());
        assert!(parse_event_id("abc-x").is_err());
    }
}
