//! Connection hygiene over real sockets (README "Limits"): half-sent requests are cut,
//! oversized heads get 431, idle keep-alives close, `--max-connections` refuses with a
//! JSON 503, long-polls count as subscribers, an SSE client that stops reading loses
//! its session and its connection after `--write-timeout`, a WebSocket client that stops
//! reading delays no one and is reset (one snapshot) when it reads again; every answer
//! varies on `Origin`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use origin_discovery::api::limits::Limiter;
use origin_discovery::api::serve::{serve, ServeConfig};
use origin_discovery::api::{router, ApiConfig};
use origin_discovery::metrics::Metrics;
use origin_discovery_core::hub::Hub;
use origin_discovery_core::model::{Delta, PoolChange, PoolId};
use origin_discovery_testkit::fixtures::origin;
use origin_discovery_testkit::stack::*;
use origin_discovery_testkit::{eventually, metric, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// Reads until the server closes the connection (EOF or reset); what it sent, or `None`
/// if it is still open after `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

fn status(response: &[u8]) -> u16 {
    String::from_utf8_lossy(response)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn half_sent_request_heads_are_cut_after_the_header_read_timeout_on_both_ports() {
    let stack = start(Duration::ZERO, &["--header-read-timeout", "500ms"]).await;
    let mut conns = Vec::new();
    for target in [addr(&stack.api), addr(&stack.admin)] {
        for _ in 0..100 {
            let mut s = TcpStream::connect(target).await.unwrap();
            s.write_all(b"GET /v1/pools HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
            conns.push(s);
        }
    }
    let started = Instant::now();
    for s in &mut conns {
        let left = WAIT.saturating_sub(started.elapsed());
        assert!(
            closed_within(s, left).await.is_some(),
            "a half-sent request is still open after {:?}",
            started.elapsed()
        );
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "cut after {took:?}");
    // The server keeps serving.
    assert_eq!(stack.get("/v1/pools").await.0, 200);
    stack.shutdown().await;
}

/// Every answer carries the CORS layer's `Vary` once, also when the request has no
/// `Origin` and skips that layer (the snapshot fast path, a 304, the router): a shared
/// cache must not hand an answer without CORS headers to a browser's cross-origin request.
#[tokio::test]
async fn every_answer_varies_on_origin_with_or_without_an_origin_header() {
    let stack = start(
        Duration::ZERO,
        &["--cors-allow-origin", "https://app.example.com"],
    )
    .await;
    stack.wait_ready().await;
    let etag = {
        let mut s = TcpStream::connect(addr(&stack.api)).await.unwrap();
        s.write_all(b"GET /v1/pools/demo/origin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let head = String::from_utf8(closed_within(&mut s, WAIT).await.unwrap()).unwrap();
        head.lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .expect("an ETag")
            .to_string()
    };
    for (request, code) in [
        ("GET /v1/pools/demo/origin", 200),
        ("GET /v1/pools", 200),
        ("GET /v1/pools/demo/origin/pick?key=stream-1", 200),
        ("GET /v1/pools/demo/nope", 404),
    ]
    .into_iter()
    .map(|(r, c)| (format!("{r} HTTP/1.1\r\n"), c))
    .chain([(
        format!("GET /v1/pools/demo/origin HTTP/1.1\r\nIf-None-Match: {etag}\r\n"),
        304,
    )]) {
        for origin in ["", "Origin: https://app.example.com\r\n"] {
            let mut s = TcpStream::connect(addr(&stack.api)).await.unwrap();
            let req = format!("{request}Host: x\r\n{origin}Connection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let got = closed_within(&mut s, WAIT).await.expect("an answer");
            let text = String::from_utf8_lossy(&got);
            let head = text.split("\r\n\r\n").next().unwrap();
            assert_eq!(status(&got), code, "{req}");
            let vary: Vec<&str> = head
                .lines()
                .filter_map(|l| l.strip_prefix("vary: "))
                .collect();
            assert_eq!(
                vary,
                ["origin, access-control-request-method, access-control-request-headers"],
                "{req}"
            );
        }
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let stack = start(Duration::ZERO, &["--header-read-timeout", "500ms"]).await;
    let mut s = TcpStream::connect(addr(&stack.api)).await.unwrap();
    s.write_all(b"GET /v1/pools HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let got = closed_within(&mut s, WAIT).await.expect("closed in time");
    assert_eq!(status(&got), 200, "{}", String::from_utf8_lossy(&got));
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(400) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn request_heads_over_max_header_bytes_get_431_on_both_ports() {
    let stack = start(Duration::ZERO, &[]).await;
    for (target, path) in [
        (addr(&stack.api), "/v1/pools"),
        (addr(&stack.admin), "/healthz"),
    ] {
        // 200 KB in four headers (the default limit is 64 KiB; hyper's own default would
        // take up to ~400 KB, and its limit of 100 headers is not what this checks).
        let mut s = TcpStream::connect(target).await.unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
        for i in 0..4 {
            req.push_str(&format!("X-Pad-{i}: {}\r\n", "x".repeat(50_000)));
        }
        req.push_str("\r\n");
        let _ = s.write_all(req.as_bytes()).await;
        let got = closed_within(&mut s, WAIT)
            .await
            .expect("answered and closed");
        assert_eq!(
            status(&got),
            431,
            "{path}: {}",
            String::from_utf8_lossy(&got)
        );
        // Within the limit: served.
        let pad = "x".repeat(1000);
        let mut s = TcpStream::connect(target).await.unwrap();
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let got = closed_within(&mut s, WAIT).await.unwrap();
        assert_eq!(status(&got), 200, "{path}");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_max_connections_get_a_json_503_and_a_freed_slot_is_reused() {
    let stack = start(Duration::ZERO, &["--max-connections", "4"]).await;
    let api = addr(&stack.api);
    // Four open connections: two WebSockets (they keep their slot after the upgrade) and
    // two idle keep-alive connections.
    let w1 = stack.watch(&demo()).await;
    let _w2 = stack.watch(&demo()).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(api).await.unwrap();
        s.write_all(b"GET /v1/pools HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        assert!(s.read(&mut buf).await.unwrap() > 0);
        idle.push(s);
    }
    let refused = kube_sim::testing::tcp_request(api, "GET", "/v1/pools").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("1"));
    let body: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    // The admin port has its own bound: probes still pass.
    let (code, _) = origin_discovery_testkit::http::get(&format!("{}/readyz", stack.admin))
        .await
        .unwrap();
    assert_eq!(code, 200);
    // A WebSocket leaving frees its slot.
    w1.close().await;
    eventually("a freed connection slot", || async {
        kube_sim::testing::tcp_request(api, "GET", "/v1/pools")
            .await
            .status
            == 200
    })
    .await;
    let m = stack.metrics().await;
    assert!(
        metric(
            &m,
            "origin_discovery_http_connections_refused_total",
            &["port=\"api\""]
        ) >= 1.0
    );
    assert!(metric(&m, "origin_discovery_http_connections{", &["port=\"api\""]) >= 3.0);
    drop(idle);
    stack.shutdown().await;
}

/// The pool's revision once its three origins are ready.
async fn ready_revision(stack: &Stack) -> u64 {
    eventually("three ready origins", || async {
        let snap = stack.snapshot(&demo()).await;
        snap["origins"]
            .as_array()
            .is_some_and(|o| o.iter().filter(|o| o["state"] == "ready").count() == 3)
    })
    .await;
    stack.snapshot(&demo()).await["revision"].as_u64().unwrap()
}

/// Sends a long-poll from `src` and returns the socket once the server has taken it.
async fn long_poll_from(src: [u8; 4], api: SocketAddr, revision: u64) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((src, 0))).unwrap();
    let mut s = socket.connect(api).await.unwrap();
    let req = format!(
        "GET /v1/pools/demo/origin?revision={revision}&wait=60s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn waiting_long_polls_count_as_subscribers_and_get_429_beyond_the_per_ip_limit() {
    let stack = start(Duration::ZERO, &["--max-subscribers-per-ip", "3"]).await;
    let api = addr(&stack.api);
    let revision = ready_revision(&stack).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(long_poll_from([127, 0, 0, 1], api, revision).await);
    }
    eventually("three waiting long-polls", || async {
        metric(
            &stack.metrics().await,
            "origin_discovery_subscribers",
            &["longpoll"],
        ) == 3.0
    })
    .await;
    // The fourth from the same address is refused at once …
    let mut fourth = long_poll_from([127, 0, 0, 1], api, revision).await;
    let got = closed_within(&mut fourth, WAIT)
        .await
        .expect("answered at once");
    assert_eq!(status(&got), 429, "{}", String::from_utf8_lossy(&got));
    assert!(String::from_utf8_lossy(&got).contains("too_many_subscribers"));
    // … and so is a WebSocket from it: one limit for every transport.
    let url = origin_discovery_testkit::client::watch_url(&stack.api, &demo(), None);
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        other => panic!("expected 429 for the WebSocket, got {other:?}"),
    }
    // Another address is not affected.
    let mut other = long_poll_from([127, 0, 0, 2], api, revision).await;
    // A change answers every waiting long-poll and frees the slots.
    stack.sim.crash_pod("demo", "origin-0").unwrap();
    for s in held.iter_mut().chain([&mut other]) {
        let got = closed_within(s, WAIT)
            .await
            .expect("answered on the change");
        assert_eq!(status(&got), 200);
    }
    eventually("long-poll slots freed", || async {
        metric(
            &stack.metrics().await,
            "origin_discovery_subscribers",
            &["longpoll"],
        ) == 0.0
    })
    .await;
    let m = stack.metrics().await;
    assert!(
        metric(
            &m,
            "origin_discovery_rejected_subscribers_total",
            &["longpoll"]
        ) >= 1.0
    );
    stack.shutdown().await;
}

fn pool() -> PoolId {
    PoolId::new("demo", "big")
}

/// The public API served in process from `hub` (no simulator), with `write_timeout`.
struct InProcess {
    api: SocketAddr,
    metrics: Metrics,
    limiter: Arc<Limiter>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    fn start(hub: &Arc<Hub>, write_timeout: Duration) -> Self {
        let state = api_state(
            hub.clone(),
            ApiConfig {
                write_timeout,
                ..ApiConfig::default()
            },
        );
        let (metrics, limiter, shutdown) = (
            state.metrics.clone(),
            state.limiter.clone(),
            state.shutdown.clone(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let api = listener.local_addr().unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let config = ServeConfig {
            port: "api",
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 100,
        };
        let m = metrics.clone();
        let server = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve(listener, router(state), config, &m, shutdown).await }
        });
        Self {
            api,
            metrics,
            limiter,
            shutdown,
            server,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// A delta of `n` origins with long ids (~250 bytes each) at `revision`.
fn big_delta(revision: u64, n: usize) -> PoolChange {
    let upsert = (0..n)
        .map(|i| origin(&format!("extra-{revision}-{i}-{}", "p".repeat(200))))
        .collect();
    PoolChange::Updated {
        delta: Delta {
            pool: pool(),
            epoch: "e1".into(),
            revision,
            upsert,
            remove: vec![],
            received: None,
        },
        received: std::time::Instant::now(),
    }
}

/// A pool of `n` origins with long ids, so that a few snapshots fill the socket buffers.
fn big_pool(hub: &Hub, n: usize) {
    let origins = (0..n)
        .map(|i| origin(&format!("origin-{i:06}-{}", "p".repeat(200))))
        .collect();
    hub.apply(PoolChange::Added {
        pool: pool(),
        revision: 1,
        origins,
    });
}

#[tokio::test]
async fn an_sse_client_that_stops_reading_loses_its_slot_and_connection_after_the_write_timeout() {
    let hub = Arc::new(Hub::new("e1", 8));
    big_pool(&hub, 5_000);
    hub.set_synced(true);
    let server = InProcess::start(&hub, Duration::from_millis(500));
    let (metrics, limiter, api) = (server.metrics.clone(), server.limiter.clone(), server.api);
    // A client with a tiny receive buffer that reads the response head and then nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(api).await.unwrap();
    s.write_all(b"GET /v1/pools/demo/big/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 256];
    let n = s.read(&mut head).await.unwrap();
    assert_eq!(status(&head[..n]), 200);
    assert_eq!(limiter.total(), 1);
    // Every revision is a snapshot for a subscriber this far behind (~1 MB each).
    let connections = || {
        metric(
            &metrics.encode(),
            "origin_discovery_http_connections{",
            &["port=\"api\""],
        )
    };
    assert_eq!(connections(), 1.0);
    let started = Instant::now();
    // ~250 KB per delta: the socket buffers fill after some tens of them (30 MB in all).
    for revision in 2..=120u64 {
        hub.apply(big_delta(revision, 1_000));
        tokio::time::sleep(Duration::from_millis(10)).await;
        if limiter.total() == 0 {
            break;
        }
    }
    eventually("the stuck SSE session ended", || async {
        limiter.total() == 0
    })
    .await;
    eventually("its connection dropped", || async { connections() == 0.0 }).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_client_that_stops_reading_delays_no_one_and_is_reset_when_it_reads_again() {
    let hub = Arc::new(Hub::new("e1", 8));
    big_pool(&hub, 10);
    hub.set_synced(true);
    let server = InProcess::start(&hub, Duration::from_secs(30));
    let url = format!("ws://{}/v1/pools/demo/big/watch", server.api);
    // One client with a tiny receive window that stops reading after its snapshot.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.api).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(&url, stream).await.unwrap();
    let (mut fast, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert!(next_text(&mut slow).await.contains("\"type\":\"snapshot\""));
    assert!(next_text(&mut fast).await.contains("\"type\":\"snapshot\""));
    // 40 deltas of ~250 KB (10 MB): far more than the slow socket's buffers hold. Each
    // reaches the fast client while the slow one's socket stays full.
    for revision in 2..=41u64 {
        hub.apply(big_delta(revision, 1_000));
        let text = next_text(&mut fast).await;
        assert!(
            text.contains(&format!("\"revision\":{revision},")),
            "the reading client got revision {revision} next"
        );
    }
    let resets = || {
        metric(
            &server.metrics.encode(),
            "origin_discovery_subscriber_resets_total",
            &["websocket"],
        )
    };
    assert_eq!(resets(), 0.0);
    // Reading again, the slow one gets the rest its socket held, then — far more than the
    // 8-delta log behind — one fresh snapshot at the latest revision: one reset.
    let caught_up = tokio::time::timeout(WAIT, async {
        loop {
            let text = next_text(&mut slow).await;
            if text.contains("\"type\":\"snapshot\"") {
                return text.contains("\"revision\":41,");
            }
        }
    })
    .await;
    assert_eq!(
        caught_up,
        Ok(true),
        "caught up by a snapshot of revision 41"
    );
    assert_eq!(resets(), 1.0);
    server.stop().await;
}

/// The next text message of a WebSocket client (pings and the like skipped), within [`WAIT`].
async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::StreamExt;
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .expect("a valid frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return text.to_string();
        }
    }
}
