//! Watch streams: newline-delimited JSON watch events over a chunked HTTP body.
//!
//! A stream replays what the store handed it at start (current objects or the kept
//! changes after the requested version), then follows the store's broadcast, filtered by
//! kind, namespace and selectors. With selectors, an object moving out of (into) the
//! selection is sent as `DELETED` (`ADDED`), as the apiserver does.
//!
//! Backpressure: the stream is pulled by the connection, so a slow client only holds its
//! broadcast receiver back. When the receiver lags beyond the broadcast buffer the stream
//! ends (the client re-watches from its last version, or relists after 410); memory never
//! grows with a slow client.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use super::faults::FaultState;
use super::format::Format;
use super::resources::ResourceDef;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{EventType, SimEvent};

/// What a watch selects.
pub(crate) struct WatchFilter {
    /// The kind.
    pub def: &'static ResourceDef,
    /// Namespace, or all.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl WatchFilter {
    fn selects(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches_object(obj)
    }

    /// The event this watcher sees for a change, if any.
    fn translate(&self, ev: &SimEvent) -> Option<(&'static str, Arc<Value>)> {
        if ev.group != self.def.group || ev.resource != self.def.plural {
            return None;
        }
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != ev.namespace)
        {
            return None;
        }
        let now = self.selects(&ev.object);
        let before = ev.old.as_deref().map(|o| self.selects(o));
        let kind = match (ev.event_type, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Deleted, _, true) => "DELETED",
            (EventType::Modified, Some(true) | None, true) => "MODIFIED",
            (EventType::Modified, Some(false), true) => "ADDED",
            (EventType::Modified, Some(true), false) => "DELETED",
            _ => return None,
        };
        Some((kind, ev.object.clone()))
    }
}

/// Everything a stream needs, owned by the response body.
pub(crate) struct WatchStream {
    pub filter: WatchFilter,
    pub replay: VecDeque<SimEvent>,
    pub rx: broadcast::Receiver<SimEvent>,
    /// Highest version this stream has seen (replayed or received), for bookmarks.
    pub last_rv: u64,
    /// When the stream ends (`timeoutSeconds`).
    pub deadline: Instant,
    pub bookmarks: Option<Interval>,
    /// Send the "initial events end" bookmark after the replay (`sendInitialEvents`).
    pub initial_events_end: bool,
    pub drops: watch::Receiver<u64>,
    pub faults: Arc<FaultState>,
    pub cancel: CancellationToken,
    /// How objects are rendered (Tables for kubectl `get -w`, metadata only, …).
    pub format: Format,
    pub done: bool,
}

/// A bookmark interval that does not fire at once.
pub(crate) fn bookmark_interval(every: Duration) -> Interval {
    let every = every.max(Duration::from_millis(10));
    let mut i = tokio::time::interval_at(Instant::now() + every, every);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// The single `ERROR` event a watch gets for an expired version.
pub(crate) fn error_line(err: &ApiError) -> Bytes {
    line("ERROR", &err.to_status())
}

impl WatchStream {
    fn render(&self, kind: &str, obj: &Arc<Value>) -> Bytes {
        line(kind, &self.format.one(self.filter.def, obj, "Metadata"))
    }

    fn bookmark(&self, initial_end: bool) -> Bytes {
        let mut obj = json!({
            "kind": self.filter.def.kind,
            "apiVersion": self.filter.def.api_version(),
            "metadata": {"resourceVersion": self.last_rv.to_string()},
        });
        if initial_end {
            obj["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line("BOOKMARK", &obj)
    }

    async fn hold_if_stalled(&self) {
        if let Some(until) = self.faults.stalled_until() {
            tokio::time::sleep_until(until).await;
        }
    }

    /// The next chunk to write, or `None` when the stream ends.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        while let Some(ev) = self.replay.pop_front() {
            self.last_rv = self.last_rv.max(ev.resource_version);
            if let Some((kind, obj)) = self.filter.translate(&ev) {
                self.hold_if_stalled().await;
                return Some(self.render(kind, &obj));
            }
        }
        if self.initial_events_end {
            self.initial_events_end = false;
            return Some(self.bookmark(true));
        }
        loop {
            let tick = async {
                match self.bookmarks.as_mut() {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = self.drops.changed() => break,
                _ = tokio::time::sleep_until(self.deadline) => break,
                _ = tick => {
                    self.hold_if_stalled().await;
                    return Some(self.bookmark(false));
                }
                r = self.rx.recv() => match r {
                    Ok(ev) => {
                        self.last_rv = self.last_rv.max(ev.resource_version);
                        if let Some((kind, obj)) = self.filter.translate(&ev) {
                            self.hold_if_stalled().await;
                            return Some(self.render(kind, &obj));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "sim: slow watch client disconnected");
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
        self.done = true;
        None
    }

    /// The HTTP response streaming this watch.
    pub(crate) fn into_response(self) -> Response {
        let stream = futures::stream::unfold(self, |mut st| async move {
            st.next_chunk()
                .await
                .map(|chunk| (Ok::<_, Infallible>(chunk), st))
        });
        watch_response(Body::from_stream(stream))
    }
}

/// A 200 watch response with the given body.
pub(crate) fn watch_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, private"),
            ),
        ],
        body,
    )
        .into_response()
}
