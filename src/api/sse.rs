//! `GET /v1/pools/{ns}/{svc}/events`: Server-Sent Events carrying the WebSocket messages.
//!
//! Each message is one event with `id: <epoch>-<revision>` and a single `data:` line (the
//! compact JSON has no newlines); heartbeats are comment lines. `Last-Event-ID` (or
//! `?epoch=&revision=`) resumes like the WebSocket does.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, Result};
use super::limits::Permit;
use super::{pool_id, query_pairs, resume_params, ApiState, ClientAddr};
use crate::metrics::TransportLabels;
use axum::extract::ConnectInfo;
use origin_discovery_core::hub::{FrameKind, Subscription};
use prometheus_client::metrics::histogram::Histogram;

const TRANSPORT: TransportLabels = TransportLabels { transport: "sse" };

/// Browsers reconnect an EventSource after this many milliseconds (default would be ~3 s).
const RETRY_MS: u32 = 500;

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
    ConnectInfo(addr): ClientAddr,
    headers: HeaderMap,
) -> Result<Response> {
    let id = pool_id(&ns, &svc)?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(parse_event_id(v.to_str().unwrap_or(""))?),
        None => resume_params(&query_pairs(query.as_deref()))?,
    };
    let channel = state.hub.pool(&id).ok_or(ApiError::UnknownPool(id))?;
    let gauge = state.metrics.subscribers.get_or_create(&TRANSPORT).clone();
    let permit = state.limiter.acquire(addr.ip(), gauge).inspect_err(|_| {
        state.metrics.rejected.get_or_create(&TRANSPORT).inc();
    })?;
    let sub = Subscription::new(channel, resume.as_ref().map(|(e, r)| (e.as_str(), *r)));
    let period = state.config.heartbeat_interval;
    let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let session = Session {
        sub,
        heartbeat,
        shutdown: state.shutdown.clone(),
        push_latency: state.metrics.push_latency.get_or_create(&TRANSPORT).clone(),
        period,
        last_write: Instant::now(),
        epoch: state.hub.epoch().to_string(),
        started: false,
        done: false,
        _permit: permit,
    };
    let body = futures::stream::unfold(session, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((chunk, s))
    })
    .map(Ok::<_, Infallible>);
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

struct Session {
    sub: Subscription,
    heartbeat: Interval,
    shutdown: CancellationToken,
    push_latency: Histogram,
    period: std::time::Duration,
    last_write: Instant,
    epoch: String,
    started: bool,
    done: bool,
    _permit: Permit,
}

impl Session {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut out = BytesMut::new();
        if !self.started {
            self.started = true;
            out.put_slice(format!("retry: {RETRY_MS}\n").as_bytes());
        }
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return None,
                frame = self.sub.next() => {
                    let frame = frame?;
                    out.put_slice(format!("id: {}-{}\ndata: ", self.epoch, frame.revision).as_bytes());
                    out.put_slice(&frame.bytes);
                    out.put_slice(b"\n\n");
                    if let Some(received) = frame.received {
                        self.push_latency.observe(received.elapsed().as_secs_f64());
                    }
                    if frame.kind == FrameKind::Removed {
                        self.done = true;
                    }
                    self.last_write = Instant::now();
                    break;
                }
                _ = self.heartbeat.tick() => {
                    // Skipped while frames flow (see the WebSocket session).
                    if self.last_write.elapsed() >= self.period {
                        out.put_slice(format!(": heartbeat {}\n\n", self.sub.revision()).as_bytes());
                        break;
                    }
                }
            }
        }
        Some(out.freeze())
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
