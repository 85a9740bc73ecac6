//! The public HTTP API (docs/DESIGN.md, "Public API"): snapshots and long-polls, ranked picks,
//! WebSocket and SSE push. Every error goes through [`error::ApiError`].

pub mod client_addr;
pub mod error;
mod fanout;
pub mod limits;
pub mod openapi;
pub mod pools;
pub mod push;
pub mod serve;
pub mod sse;
pub mod static_files;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::future::{ready, Ready};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::{Either, MapOk};
use futures::TryFutureExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use crate::metrics::Metrics;
use error::ApiError;
use limits::Limiter;
use origin_discovery_core::hub::Hub;
use origin_discovery_core::model::PoolId;

/// Largest client → server WebSocket message accepted as a control message; larger ones
/// close the session with 1009.
pub const MAX_CONTROL_MESSAGE: usize = 1024;

/// Default of `--write-timeout`: how long one frame may take to be accepted by a
/// subscriber's socket before the subscriber is disconnected as dead (its queue is the
/// socket buffer; nothing else grows).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the public API.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Interval of heartbeats on push transports.
    pub heartbeat_interval: Duration,
    /// Allowed browser origins (`*` allows any); empty means same-origin only.
    pub cors_allow_origins: Vec<String>,
    /// Proxies whose forwarding headers name the client (see [`client_addr`]).
    pub trusted_proxies: Vec<crate::config::Cidr>,
    /// The one forwarding header those proxies set.
    pub forwarded_header: crate::config::ForwardedHeader,
    /// How long a push write may wait for the client (default [`WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            cors_allow_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            forwarded_header: Default::default(),
            write_timeout: WRITE_TIMEOUT,
        }
    }
}

/// Shared state of the API handlers.
#[derive(Clone, Debug)]
pub struct ApiState {
    /// Pool publication.
    pub hub: Arc<Hub>,
    /// Metrics.
    pub metrics: Metrics,
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// Subscriber limits.
    pub limiter: Arc<Limiter>,
    /// Cancelled when the process shuts down: push sessions say goodbye and end.
    pub shutdown: CancellationToken,
    /// Tracks push sessions so shutdown can wait for their Close frames.
    pub sessions: TaskTracker,
}

/// The public router. Serve it with [`serve::serve`], which provides the connection info
/// (subscriber limits are per client IP, see [`client_addr`]); [`app`] adds the snapshot
/// fast path in front of it.
///
/// The `/v1` routes answer 503 until the first full sync ([`SyncGate`]); CORS headers are
/// computed only for requests with an `Origin` header ([`CorsWhenOrigin`]): browsers
/// always send one with cross-origin requests, and nothing else needs them.
pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/v1/pools", get(pools::list))
        .route("/v1/pools/{ns}/{svc}", get(pools::snapshot))
        .route("/v1/pools/{ns}/{svc}/pick", get(pools::pick))
        .route("/v1/pools/{ns}/{svc}/watch", get(ws::watch))
        .route("/v1/pools/{ns}/{svc}/events", get(sse::events))
        .route_layer(SyncGate(state.hub.clone()));
    Router::new()
        .merge(v1)
        .route("/openapi.json", get(openapi::document))
        .merge(static_files::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CorsWhenOrigin(cors(&state.config.cors_allow_origins)))
        .with_state(state)
}

/// What the public port serves: [`router`] behind the snapshot fast path
/// ([`pools::fast_snapshot`]).
pub fn app(state: ApiState) -> serve::App {
    let fast_state = state.clone();
    serve::App::with_fast_path(
        router(state),
        Arc::new(move |req| pools::fast_snapshot(&fast_state, req)),
    )
}

/// 503 until every source completed its first full list: a check in front of the
/// routes, not a middleware (no boxing per request).
#[derive(Clone, Debug)]
pub struct SyncGate(Arc<Hub>);

impl<S> Layer<S> for SyncGate {
    type Service = Gated<S>;
    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            hub: self.0.clone(),
            inner,
        }
    }
}

/// A service behind [`SyncGate`].
#[derive(Clone, Debug)]
pub struct Gated<S> {
    hub: Arc<Hub>,
    inner: S,
}

impl<S, B> Service<Request<B>> for Gated<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !self.hub.is_synced() {
            return Either::Left(ready(Ok(ApiError::NotSynced.into_response())));
        }
        Either::Right(self.inner.call(req))
    }
}

/// The `Vary` header the CORS layer puts on every response it handles. Responses to
/// requests without an `Origin` header skip that layer and carry it too, so that a shared
/// cache never hands a response without CORS headers to a browser's cross-origin request.
pub(crate) const CORS_VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// CORS for requests that carry an `Origin` header; others skip the CORS layer and get
/// only its [`CORS_VARY`].
#[derive(Clone, Debug)]
pub struct CorsWhenOrigin(CorsLayer);

impl<S: Clone> Layer<S> for CorsWhenOrigin {
    type Service = CorsIfOrigin<S>;
    fn layer(&self, inner: S) -> CorsIfOrigin<S> {
        CorsIfOrigin {
            cors: self.0.layer(inner.clone()),
            plain: inner,
        }
    }
}

/// A service behind [`CorsWhenOrigin`].
#[derive(Clone, Debug)]
pub struct CorsIfOrigin<S> {
    plain: S,
    cors: Cors<S>,
}

impl<S, B, R> Service<Request<B>> for CorsIfOrigin<S>
where
    S: Service<Request<B>, Response = axum::http::Response<R>> + Clone,
    R: Default,
{
    type Response = axum::http::Response<R>;
    type Error = S::Error;
    type Future = Either<
        MapOk<S::Future, fn(axum::http::Response<R>) -> axum::http::Response<R>>,
        <Cors<S> as Service<Request<B>>>::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Both wrap the same (cloned) inner service; the routes are always ready.
        match self.plain.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.cors.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.headers().contains_key(header::ORIGIN) {
            Either::Right(self.cors.call(req))
        } else {
            Either::Left(
                self.plain
                    .call(req)
                    .map_ok(with_cors_vary::<R> as fn(_) -> _),
            )
        }
    }
}

fn with_cors_vary<R>(mut response: axum::http::Response<R>) -> axum::http::Response<R> {
    response.headers_mut().append(header::VARY, CORS_VARY);
    response
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(req.uri().path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::ETAG]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// Whether a WebSocket `Origin` header is allowed: no header (native clients), the same
/// host as the request, `*`, or listed in `--cors-allow-origin`.
pub fn origin_allowed(config: &ApiConfig, origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else { return true };
    if config
        .cors_allow_origins
        .iter()
        .any(|o| o == "*" || o == origin)
    {
        return true;
    }
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Parses the `{ns}/{svc}` path parameters into a pool id.
pub fn pool_id(ns: &str, svc: &str) -> Result<PoolId, ApiError> {
    format!("{ns}/{svc}").parse().map_err(|_| {
        ApiError::bad(
            "pool",
            format!("{ns}/{svc} is not a valid namespace/service"),
        )
    })
}

/// Socket peer of a request (set by [`serve::serve`]); limits use [`client_addr::ClientIp`].
pub type ClientAddr = axum::extract::ConnectInfo<SocketAddr>;

/// Query parameters in order, decoded.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The last value of parameter `name`.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `?epoch=E&revision=R` resume parameters (both or neither).
pub fn resume_params(pairs: &[(String, String)]) -> Result<Option<(String, u64)>, ApiError> {
    match (param(pairs, "epoch"), param(pairs, "revision")) {
        (None, None) => Ok(None),
        (Some(e), Some(r)) => {
            let r = r
                .parse()
                .map_err(|_| ApiError::bad("revision", "expected a non-negative integer"))?;
            Ok(Some((e.to_string(), r)))
        }
        (Some(_), None) => Err(ApiError::bad("revision", "required together with epoch")),
        (None, Some(_)) => Err(ApiError::bad("epoch", "required together with revision")),
    }
}
