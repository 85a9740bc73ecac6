//! `GET /v1/pools`, `GET /v1/pools/{ns}/{svc}` (snapshot, ETag, long-poll) and `…/pick`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng;

use super::client_addr::ClientIp;
use super::error::{ApiError, Result};
use super::push::{self, transport};
use super::{param, pool_id, query_pairs, ApiState};
use origin_discovery_core::hub::{PoolChannel, PoolView};
use origin_discovery_core::pick::{self, PickRequest};

/// Longest long-poll `wait`.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// Most ids in a pick's `exclude`.
pub const MAX_EXCLUDE: usize = 100;
/// Longest pick `key`, in bytes.
pub const MAX_KEY: usize = 1024;

/// `GET /v1/pools`.
#[utoipa::path(
    get,
    path = "/v1/pools",
    summary = "List pools",
    description = super::openapi::LIST_DOC,
    tag = "pools",
    responses(super::openapi::ListResponses)
)]
pub async fn list(State(state): State<ApiState>) -> Response {
    #[derive(serde::Serialize)]
    struct Pools {
        pools: Vec<origin_discovery_core::hub::PoolSummary>,
    }
    Json(Pools {
        pools: state.hub.summaries(),
    })
    .into_response()
}

fn channel(state: &ApiState, ns: &str, svc: &str) -> Result<Arc<PoolChannel>> {
    let id = pool_id(ns, svc)?;
    state.hub.pool(&id).ok_or(ApiError::UnknownPool(id))
}

/// `GET /v1/pools/{ns}/{svc}[?revision=N&wait=D]`: the snapshot, with `ETag`; with
/// `If-None-Match` equal to the current tag → 304; with `revision` and `wait`, waits until
/// the revision differs from N or the wait (plus up to wait/16 random jitter, spreading the
/// re-polls of many clients) ends. A waiting long-poll is a subscriber (transport
/// `longpoll`) under the subscriber limits (429 beyond them); on shutdown it answers at
/// once with the current snapshot.
#[utoipa::path(
    get,
    path = "/v1/pools/{ns}/{svc}",
    summary = "Snapshot of a pool, with ETag and long-poll",
    description = super::openapi::SNAPSHOT_DOC,
    tag = "pools",
    params(
        super::openapi::PoolPath,
        super::openapi::PollQuery,
        super::openapi::PollHeaders
    ),
    responses(super::openapi::SnapshotResponses)
)]
pub async fn snapshot(
    State(state): State<ApiState>,
    Path((ns, svc)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<Response> {
    let pairs = query_pairs(query.as_deref());
    let revision = param(&pairs, "revision")
        .map(|r| {
            r.parse::<u64>()
                .map_err(|_| ApiError::bad("revision", "expected a non-negative integer"))
        })
        .transpose()?;
    let wait = param(&pairs, "wait").map(parse_wait).transpose()?;
    let channel = channel(&state, &ns, &svc)?;
    let mut view = channel.current();
    if let Some(wait) = wait.filter(|w| !w.is_zero()) {
        let after = revision.unwrap_or(view.snapshot.revision);
        if view.snapshot.revision == after {
            let _permit = push::admit(&state, client.0, transport::LONGPOLL)?;
            let jitter = rand::rng().random_range(0..=wait.as_millis() as u64 / 16);
            let deadline = tokio::time::Instant::now() + wait + Duration::from_millis(jitter);
            let mut rx = channel.watch();
            loop {
                let current = rx.borrow_and_update().clone();
                if current.snapshot.revision != after || current.removed {
                    view = current;
                    break;
                }
                // Woken by a new revision; not by the deadline, the channel's end or shutdown
                // (then the answer is what there is).
                let woken = tokio::select! {
                    changed = tokio::time::timeout_at(deadline, rx.changed()) => matches!(changed, Ok(Ok(()))),
                    _ = state.shutdown.cancelled() => false,
                };
                if !woken {
                    view = channel.current();
                    break;
                }
            }
        }
    }
    if view.removed {
        return Err(ApiError::UnknownPool(view.snapshot.pool.clone()));
    }
    Ok(snapshot_response(&view, &headers))
}

/// The snapshot GET in front of the router ([`super::app`]): a plain `GET
/// /v1/pools/{ns}/{svc}` — no query, no `Origin`, a synced hub and a live pool — is
/// answered from the view's prepared body and ETag, without routing, extractors or
/// middleware. Anything else (long-polls, CORS, errors, percent-encoded names) declines
/// and goes to the router, whose answer is the same for the requests taken here.
pub fn fast_snapshot<B>(state: &ApiState, req: &axum::http::Request<B>) -> Option<Response> {
    if req.method() != axum::http::Method::GET || req.uri().query().is_some() {
        return None;
    }
    let (ns, svc) = req
        .uri()
        .path()
        .strip_prefix("/v1/pools/")?
        .split_once('/')?;
    if svc.contains(['/', '%']) || ns.contains('%') {
        return None;
    }
    let headers = req.headers();
    if headers.contains_key(header::ORIGIN) || !state.hub.is_synced() {
        return None;
    }
    let view = state.hub.pool(&pool_id(ns, svc).ok()?)?.current();
    if view.removed {
        return None;
    }
    // Without `Origin` the router's CORS layer would have added only its `Vary`.
    let mut response = snapshot_response(&view, headers);
    response
        .headers_mut()
        .insert(header::VARY, super::CORS_VARY);
    Some(response)
}

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

/// The snapshot (or 304) from the view's bytes, prepared once per revision: the body and
/// the ETag are shared, the other headers are static.
fn snapshot_response(view: &PoolView, headers: &HeaderMap) -> Response {
    let etag = view.etag_bytes();
    let matches = headers.get(header::IF_NONE_MATCH).is_some_and(|v| {
        v.as_bytes().split(|b| *b == b',').any(|t| {
            let t = t.trim_ascii();
            t == etag || t == b"*"
        })
    });
    let etag = HeaderValue::from_maybe_shared(etag).expect("etags are ASCII");
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mut response = Response::new(Body::from(view.snapshot_body()));
    let h = response.headers_mut();
    h.reserve(3);
    h.insert(header::CONTENT_TYPE, APPLICATION_JSON);
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, NO_CACHE);
    response
}

/// `30s`, `500ms`, `1m` or plain seconds; at most [`MAX_WAIT`].
fn parse_wait(s: &str) -> Result<Duration> {
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|_| ApiError::bad("wait", "expected a duration such as 30s or 500ms"))?,
    };
    if d > MAX_WAIT {
        return Err(ApiError::bad("wait", "at most 300s"));
    }
    Ok(d)
}

/// `GET /v1/pools/{ns}/{svc}/pick?key=K&zone=Z&exclude=a,b&count=N`.
#[utoipa::path(
    get,
    path = "/v1/pools/{ns}/{svc}/pick",
    summary = "Ranked reconnect targets for a key",
    description = super::openapi::PICK_DOC,
    tag = "pools",
    params(super::openapi::PoolPath, super::openapi::PickQuery),
    responses(super::openapi::PickResponses)
)]
pub async fn pick(
    State(state): State<ApiState>,
    Path((ns, svc)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let pairs = query_pairs(query.as_deref());
    let key = param(&pairs, "key").ok_or_else(|| ApiError::bad("key", "required"))?;
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(ApiError::bad(
            "key",
            format!("must be 1 to {MAX_KEY} bytes"),
        ));
    }
    let zone = param(&pairs, "zone").filter(|z| !z.is_empty());
    let exclude: Vec<String> = param(&pairs, "exclude")
        .map(|e| {
            e.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if exclude.len() > MAX_EXCLUDE {
        return Err(ApiError::bad(
            "exclude",
            format!("at most {MAX_EXCLUDE} ids"),
        ));
    }
    let count = match param(&pairs, "count") {
        None => pick::DEFAULT_COUNT,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|c| (1..=pick::MAX_COUNT).contains(c))
            .ok_or_else(|| {
                ApiError::bad(
                    "count",
                    format!("expected an integer from 1 to {}", pick::MAX_COUNT),
                )
            })?,
    };
    let view = channel(&state, &ns, &svc)?.current();
    let targets = pick::rank(
        &view.snapshot.origins,
        &PickRequest {
            key,
            zone,
            exclude: &exclude,
            count,
        },
    );
    let body = serde_json::json!({"pool": view.snapshot.pool, "revision": view.snapshot.revision, "targets": targets});
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_accepts_durations_and_plain_seconds_up_to_the_max() {
        assert_eq!(parse_wait("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_wait("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_wait("12").unwrap(), Duration::from_secs(12));
        assert!(parse_wait("301s").is_err());
        assert!(parse_wait("soon").is_err());
    }
}
