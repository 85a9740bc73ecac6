//! `GET /v1/pools/{ns}/{svc}/events`: Server-Sent Events carrying the WebSocket messages.
//!
//! Each message is one event with `id: <epoch>-<revision>` and a single `data:` line (the
//! compact JSON has no newlines); heartbeats are comment lines. `Last-Event-ID` (or
//! `?epoch=&revision=`) resumes like the WebSocket does.
//!
//! The stream is close-delimited: hyper writes the response head (`HTTP/1.0 200`, so no
//! chunked encoding and no keep-alive), then hands the socket to the shared push driver
//! ([`super::push::run`]), which writes every event as the same bytes to every subscriber
//! (framed once per message). The stream ends when the session does (the socket closes).
//! Clients send nothing after the request; whatever they send is discarded, and their
//! end of stream ends the session.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Version};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;

use super::client_addr::ClientIp;
use super::error::{ApiError, Result};
use super::push::{self, transport, Incoming, Reader, Transport};
use super::serve::ConnectionHandle;
use super::{pool_id, query_pairs, resume_params, ApiState};
use origin_discovery_core::hub::{Encoded, Wire};

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
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let id = pool_id(&ns, &svc)?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(parse_event_id(v.to_str().unwrap_or(""))?),
        None => resume_params(&query_pairs(query.as_deref()))?,
    };
    let channel = state.hub.pool(&id).ok_or(ApiError::UnknownPool(id))?;
    let head = [
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
    ];
    if method == Method::HEAD {
        return Ok(head.into_response());
    }
    let Some(Extension(connection)) = connection else {
        return Err(ApiError::UpgradeRequired(
            "this connection cannot carry an event stream".into(),
        ));
    };
    push::start::<SseTransport>(&state, &connection, client, channel, resume)?;
    // An HTTP/1.0 response of unknown length is close-delimited: hyper writes the head,
    // ends the exchange when the (empty) body does, and lets go of the socket.
    let mut response = (
        head,
        [(header::CONNECTION, HeaderValue::from_static("close"))],
        Body::from_stream(futures::stream::empty::<
            std::result::Result<Bytes, std::io::Error>,
        >()),
    )
        .into_response();
    *response.version_mut() = Version::HTTP_10;
    Ok(response)
}

/// `<epoch>-<revision>` as sent in `id:`.
fn parse_event_id(id: &str) -> Result<(String, u64)> {
    let bad = || ApiError::bad("Last-Event-ID", "expected <epoch>-<revision>");
    let (epoch, revision) = id.rsplit_once('-').ok_or_else(bad)?;
    Ok((epoch.to_string(), revision.parse().map_err(|_| bad())?))
}

/// SSE framing: `id:` + `data:` events, `: heartbeat` comments.
pub struct SseTransport;

impl Transport for SseTransport {
    const NAME: &'static str = transport::SSE;
    const WIRE: Wire = Wire::Sse;
    const PREAMBLE: &'static [u8] = RETRY;
    const CLOSE_HANDSHAKE: bool = false;
    type Reader = Discard;

    fn frame(message: &Encoded, epoch: &str) -> Bytes {
        event(epoch, message.revision(), message.json())
    }

    fn heartbeat(revision: u64) -> Bytes {
        Bytes::from(format!(": heartbeat {revision}\n\n"))
    }

    fn pong(_revision: u64) -> Option<Bytes> {
        None
    }

    fn close(_code: u16, _reason: &str) -> Option<Bytes> {
        None
    }
}

/// Written once, before the first event: browsers reconnect an EventSource after 500 ms
/// (the default would be about 3 s).
const RETRY: &[u8] = b"retry: 500\n";

/// One event: `id: <epoch>-<revision>\ndata: <json>\n\n`.
pub fn event(epoch: &str, revision: u64, json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + epoch.len() + 32);
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(epoch.as_bytes());
    out.push(b'-');
    out.extend_from_slice(revision.to_string().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// SSE clients send nothing after their request: anything they do send is discarded.
#[derive(Debug, Default)]
pub struct Discard;

impl Reader for Discard {
    fn input(&mut self, _data: &[u8], _out: &mut Vec<Incoming>) {}

    fn input_closing(&mut self, _data: &[u8]) -> bool {
        false
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

    #[test]
    fn events_carry_the_id_and_one_data_line() {
        assert_eq!(
            &event("e1", 7, br#"{"type":"delta"}"#)[..],
            b"id: e1-7\ndata: {\"type\":\"delta\"}\n\n"
        );
        assert_eq!(RETRY, b"retry: 500\n");
        assert_eq!(&SseTransport::heartbeat(3)[..], b": heartbeat 3\n\n");
    }
}
