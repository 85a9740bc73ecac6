//! The public router through `oneshot`: every route and every error, no sockets (SSE
//! streams, which take their connection over, on a loopback port).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use origin_discovery::api::serve::{serve, ServeConfig};
use origin_discovery::api::{router, ApiConfig};
use origin_discovery::metrics::Metrics;
use origin_discovery_core::hub::Hub;
use origin_discovery_core::model::{Delta, Origin, OriginState, PoolChange, PoolId};
use origin_discovery_testkit::fixtures::origin_in;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

fn origin(id: &str, zone: &str, state: OriginState) -> Origin {
    Origin {
        url: Some(format!("wss://{id}.example.com/ws")),
        node: Some("node-a".into()),
        ..origin_in(id, Some(zone), state)
    }
}

fn pool() -> PoolId {
    PoolId::new("demo", "origin")
}

fn setup(cors: Vec<String>) -> (Arc<Hub>, Router) {
    let hub = Arc::new(Hub::new("ep0ch", 64));
    hub.apply(PoolChange::Added {
        pool: pool(),
        revision: 1,
        origins: vec![
            origin("origin-0", "zone-a", OriginState::Ready),
            origin("origin-1", "zone-b", OriginState::Ready),
            origin("origin-2", "zone-c", OriginState::Draining),
        ],
    });
    hub.set_synced(true);
    let state = origin_discovery_testkit::stack::api_state(
        hub.clone(),
        ApiConfig {
            heartbeat_interval: Duration::from_secs(5),
            cors_allow_origins: cors,
            ..ApiConfig::default()
        },
    );
    let app = router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    (hub, app)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
    request(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn request(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, body)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

fn push_delta(hub: &Hub, revision: u64) {
    hub.apply(PoolChange::Updated {
        delta: Delta {
            pool: pool(),
            epoch: "ep0ch".into(),
            revision,
            upsert: vec![],
            remove: vec!["origin-1".into()],
            received: None,
        },
        received: Instant::now(),
    });
}

#[tokio::test]
async fn pools_lists_every_pool_with_counts() {
    let (_, app) = setup(vec![]);
    let (status, headers, body) = get(&app, "/v1/pools").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        body,
        serde_json::json!({"pools": [{"pool": "demo/origin", "revision": 1, "ready": 2, "draining": 1}]})
    );
}

#[tokio::test]
async fn api_answers_503_before_the_first_full_sync() {
    let (hub, app) = setup(vec![]);
    hub.set_synced(false);
    for uri in [
        "/v1/pools",
        "/v1/pools/demo/origin",
        "/v1/pools/demo/origin/pick?key=k",
    ] {
        let (status, headers, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(error_code(&body), "not_synced");
        assert!(headers.contains_key(header::RETRY_AFTER));
    }
}

#[tokio::test]
async fn snapshot_has_contract_shape_and_etag() {
    let (_, app) = setup(vec![]);
    let (status, headers, body) = get(&app, "/v1/pools/demo/origin").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::ETAG], "\"ep0ch-1\"");
    assert_eq!(body["pool"], "demo/origin");
    assert_eq!(body["epoch"], "ep0ch");
    assert_eq!(body["revision"], 1);
    assert_eq!(body["stale"], false);
    let o = &body["origins"][0];
    assert_eq!(o["id"], "origin-0");
    assert_eq!(o["state"], "ready");
    assert!(o["since"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_is_304() {
    let (hub, app) = setup(vec![]);
    let req = || {
        Request::get("/v1/pools/demo/origin")
            .header(header::IF_NONE_MATCH, "\"ep0ch-1\"")
            .body(Body::empty())
            .unwrap()
    };
    let (status, headers, body) = request(&app, req()).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(headers[header::ETAG], "\"ep0ch-1\"");
    assert_eq!(body, Value::Null);
    push_delta(&hub, 2);
    let (status, _, body) = request(&app, req()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revision"], 2);
}

#[tokio::test]
async fn unknown_pool_is_404_and_malformed_pool_is_400() {
    let (_, app) = setup(vec![]);
    let (status, _, body) = get(&app, "/v1/pools/demo/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "unknown_pool");
    let (status, _, body) = get(&app, "/v1/pools/Demo/x_y").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("pool"));
    let (status, _, body) = get(&app, "/v1/pools/demo/nope/pick?key=a").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "unknown_pool")
    );
}

#[tokio::test]
async fn unknown_path_is_404_json_and_wrong_method_is_405_json() {
    let (_, app) = setup(vec![]);
    let (status, _, body) = get(&app, "/v2/whatever").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/pools")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = request(&app, req).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn bad_long_poll_parameters_name_the_parameter() {
    let (_, app) = setup(vec![]);
    for (uri, name) in [
        ("/v1/pools/demo/origin?revision=abc", "revision"),
        ("/v1/pools/demo/origin?revision=1&wait=forever", "wait"),
        ("/v1/pools/demo/origin?revision=1&wait=301s", "wait"),
    ] {
        let (status, _, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(name),
            "{uri}: {body}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn long_poll_returns_as_soon_as_the_revision_moves() {
    let (hub, app) = setup(vec![]);
    let h = hub.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        push_delta(&h, 2);
    });
    let started = tokio::time::Instant::now();
    let (status, _, body) = get(&app, "/v1/pools/demo/origin?revision=1&wait=60s").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revision"], 2);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn long_poll_returns_the_unchanged_snapshot_at_the_deadline_with_jitter() {
    let (_, app) = setup(vec![]);
    let started = tokio::time::Instant::now();
    let (status, _, body) = get(&app, "/v1/pools/demo/origin?revision=1&wait=16s").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revision"], 1);
    let waited = started.elapsed();
    // wait plus at most wait/16 of jitter
    assert!(
        waited >= Duration::from_secs(16) && waited <= Duration::from_secs(17),
        "{waited:?}"
    );
}

#[tokio::test]
async fn long_poll_for_an_older_revision_returns_at_once() {
    let (hub, app) = setup(vec![]);
    push_delta(&hub, 2);
    let (status, _, body) = tokio::time::timeout(
        Duration::from_secs(5),
        get(&app, "/v1/pools/demo/origin?revision=1&wait=300s"),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, body["revision"].as_u64()),
        (StatusCode::OK, Some(2))
    );
}

#[tokio::test]
async fn pick_ranks_ready_origins_only_and_honours_zone_exclude_count() {
    let (_, app) = setup(vec![]);
    let (status, _, body) = get(&app, "/v1/pools/demo/origin/pick?key=stream1&count=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["pool"], "demo/origin");
    assert_eq!(body["revision"], 1);
    let ids: Vec<&str> = body["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "draining origin-2 must not be picked");
    let (_, _, body) = get(
        &app,
        "/v1/pools/demo/origin/pick?key=stream1&zone=zone-b&count=1",
    )
    .await;
    assert_eq!(body["targets"][0]["id"], "origin-1");
    let (_, _, body) = get(
        &app,
        "/v1/pools/demo/origin/pick?key=stream1&exclude=origin-0,origin-1",
    )
    .await;
    assert_eq!(body["targets"], serde_json::json!([]));
}

#[tokio::test]
async fn pick_rejects_bad_parameters_by_name() {
    let (_, app) = setup(vec![]);
    let long_key = format!("/v1/pools/demo/origin/pick?key={}", "k".repeat(2000));
    for (uri, name) in [
        ("/v1/pools/demo/origin/pick", "key"),
        ("/v1/pools/demo/origin/pick?key=", "key"),
        (long_key.as_str(), "key"),
        ("/v1/pools/demo/origin/pick?key=a&count=0", "count"),
        ("/v1/pools/demo/origin/pick?key=a&count=lots", "count"),
    ] {
        let (status, _, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(name),
            "{body}"
        );
    }
}

#[tokio::test]
async fn watch_without_upgrade_is_426_and_bad_resume_is_400() {
    let (_, app) = setup(vec![]);
    let (status, _, body) = get(&app, "/v1/pools/demo/origin/watch").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UPGRADE_REQUIRED, "upgrade_required")
    );
    let (status, _, body) = get(&app, "/v1/pools/demo/origin/watch?epoch=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revision"));
    let (status, _, body) = get(&app, "/v1/pools/demo/nope/watch").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "unknown_pool")
    );
}

#[tokio::test]
async fn websocket_from_a_foreign_browser_origin_is_403() {
    let (_, app) = setup(vec!["https://app.example.com".into()]);
    let req = Request::get("/v1/pools/demo/origin/watch")
        .header(header::HOST, "discovery.example.com")
        .header(header::ORIGIN, "https://evil.example.net")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = request(&app, req).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden_origin")
    );
}

#[tokio::test]
async fn cors_headers_follow_the_allow_list() {
    let (_, app) = setup(vec!["https://app.example.com".into()]);
    let req = |origin: &str| {
        Request::get("/v1/pools")
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = request(&app, req("https://app.example.com")).await;
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let (_, headers, _) = request(&app, req("https://other.example.com")).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    let (_, app) = setup(vec!["*".into()]);
    let (_, headers, _) = request(&app, req("https://any.example.com")).await;
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}

#[tokio::test]
async fn sse_rejects_a_malformed_last_event_id() {
    let (_, app) = setup(vec![]);
    let req = Request::get("/v1/pools/demo/origin/events")
        .header("last-event-id", "garbage")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = request(&app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Last-Event-ID"));
}

/// Serves `app` on a loopback port (SSE streams need a connection of their own: the
/// session takes the socket over from hyper) and opens `path` with hyper's client.
async fn open_stream(app: Router, path: &str) -> axum::http::Response<hyper::body::Incoming> {
    use hyper_util::client::legacy::Client;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServeConfig {
        port: "api",
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 64 * 1024,
        max_connections: 10,
    };
    tokio::spawn(async move {
        serve(
            listener,
            app,
            config,
            &Metrics::new(),
            CancellationToken::new(),
        )
        .await
    });
    let client: Client<_, http_body_util::Empty<bytes::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn sse_stream_starts_with_a_snapshot_event() {
    let (_, app) = setup(vec![]);
    let resp = open_stream(app, "/v1/pools/demo/origin/events").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("retry: "), "{text}");
    assert!(
        text.contains("id: ep0ch-1\ndata: {\"type\":\"snapshot\""),
        "{text}"
    );
    assert!(text.ends_with("\n\n"));
}

#[tokio::test]
async fn dashboard_and_client_modules_are_served_with_their_content_types() {
    let (hub, app) = setup(vec![]);
    hub.set_synced(false); // static files do not wait for the sync
    for (uri, ct) in [
        ("/", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/client/index.js", "text/javascript"),
        ("/client/rank.js", "text/javascript"),
    ] {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        assert!(
            resp.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(ct),
            "{uri}"
        );
    }
    let (status, _, body) = get(&app, "/client/../../etc/passwd").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test(start_paused = true)]
async fn sse_heartbeats_are_comment_lines() {
    let (_, app) = setup(vec![]);
    let resp = open_stream(app, "/v1/pools/demo/origin/events").await;
    let mut body = resp.into_body();
    body.frame().await.unwrap().unwrap(); // snapshot
    let started = tokio::time::Instant::now();
    let frame = body.frame().await.unwrap().unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert_eq!(text, ": heartbeat 1\n\n");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}
