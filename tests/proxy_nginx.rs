//! The controller behind a real nginx (Debian `nginx-light`; `make test-rust` installs it)
//! as reverse proxy, with `--trusted-proxies 127.0.0.1/32`: 5,000 subscribers — WebSocket,
//! SSE and long-poll — from 100 client addresses across 127.0.1.0/24 all pass, each
//! address at the per-IP limit of 50; one more from such an address gets 429 through the
//! proxy on every transport, also when it forges forwarding headers, while a new address
//! passes; and a change reaches every one of them. nginx appends the peer to
//! `X-Forwarded-For` (the default `--forwarded-header`) and passes a client's own
//! `Forwarded` through; a second, small run has nginx set `Forwarded` instead, with
//! `--forwarded-header forwarded`, and a forged `X-Forwarded-For` changes nothing there.
//!
//! nginx runs as a child of the test with its own generated config on loopback and is
//! stopped by PID at the end (also when the test fails). Missing nginx fails the test under
//! `CI=true` and skips it otherwise.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures::StreamExt;
use origin_discovery_testkit::procs;
use origin_discovery_testkit::stack::*;
use origin_discovery_testkit::{eventually, metric, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const ADDRESSES: u8 = 100;
const PER_IP: usize = 50;
const WEBSOCKETS: usize = 2_000;
const SSE: usize = 2_000;
const LONG_POLLS: usize = 1_000;

/// nginx as a child process, stopped (SIGTERM, then SIGKILL) on drop.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts nginx proxying `upstream` on two ports: `X-Forwarded-For` and `Forwarded`.
async fn start_nginx(bin: &Path, upstream: SocketAddr) -> (Nginx, SocketAddr, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    // Workers may run as `nobody` when started by root.
    let _ = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(dir.path())
        .status();
    let (xff, fwd) = (free_port(), free_port());
    let common = format!(
        "proxy_http_version 1.1; proxy_buffering off; proxy_read_timeout 120s; \
         proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; \
         proxy_set_header Host $host; location / {{ proxy_pass http://{upstream}; }}"
    );
    let conf = format!(
        r#"worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 15000; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; "" ""; }}
    server {{
        listen 127.0.0.1:{xff};
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        {common}
    }}
    server {{
        listen 127.0.0.1:{fwd};
        proxy_set_header Forwarded "for=$remote_addr;proto=http";
        {common}
    }}
}}
"#
    );
    let child = procs::spawn_nginx(bin, dir.path(), &conf).expect("nginx starts");
    let mut nginx = Nginx { child, _dir: dir };
    let (xff, fwd) = (
        SocketAddr::from(([127, 0, 0, 1], xff)),
        SocketAddr::from(([127, 0, 0, 1], fwd)),
    );
    let deadline = Instant::now() + WAIT;
    for port in [xff, fwd] {
        while TcpStream::connect(port).await.is_err() {
            assert!(nginx.child.try_wait().unwrap().is_none(), "nginx exited");
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    (nginx, xff, fwd)
}

/// The `n`-th client address: 127.0.1.1 … 127.0.1.100.
fn client(n: usize) -> [u8; 4] {
    [127, 0, 1, 1 + (n % usize::from(ADDRESSES)) as u8]
}

async fn connect(src: [u8; 4], proxy: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((src, 0))).unwrap();
    socket.connect(proxy).await.unwrap()
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn websocket(src: [u8; 4], proxy: SocketAddr) -> Result<Ws, tungstenite::Error> {
    websocket_with(src, proxy, &[]).await
}

/// A WebSocket subscription sending the extra request `headers`.
async fn websocket_with(
    src: [u8; 4],
    proxy: SocketAddr,
    headers: &[(&'static str, &str)],
) -> Result<Ws, tungstenite::Error> {
    let stream = connect(src, proxy).await;
    let mut request = format!("ws://{proxy}/v1/pools/demo/origin/watch").into_client_request()?;
    for (name, value) in headers {
        request
            .headers_mut()
            .append(*name, value.parse().expect("a header value"));
    }
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        request,
        MaybeTlsStream::Plain(stream),
        Some(config),
    )
    .await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.contains("\"type\":\"snapshot\"") => Ok(ws),
        other => panic!("expected the snapshot, got {other:?}"),
    }
}

/// Sends `GET path` and reads until `until` appears (or the server closes); the bytes read.
async fn get(s: &mut TcpStream, path: &str, until: &str) -> String {
    get_with(s, path, "", until).await
}

/// [`get`] with `extra` header lines (each ending in `\r\n`).
async fn get_with(s: &mut TcpStream, path: &str, extra: &str, until: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: discovery\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    read_until(s, until).await
}

async fn read_until(s: &mut TcpStream, until: &str) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains(until) {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    text
}

enum Sub {
    Ws(Box<Ws>),
    Sse(TcpStream),
    Poll(TcpStream),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_subscribers_from_many_addresses_pass_nginx_and_the_per_ip_limit_holds_per_client(
) {
    let Some(nginx_bin) = procs::find_program("nginx") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "nginx is required under CI=true (make test-rust installs nginx-light)"
        );
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    // ~2 descriptors per subscriber in this process (client and server side).
    let limit = rlimit::increase_nofile_limit(32_768).unwrap();
    assert!(limit >= 12_000, "open-files limit {limit} is too low");
    let started = Instant::now();
    let stack = start(
        Duration::ZERO,
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--max-subscribers-per-ip",
            &PER_IP.to_string(),
            "--max-connections",
            "12000",
            "--heartbeat-interval",
            "30s",
        ],
    )
    .await;
    let api: SocketAddr = stack.api.trim_start_matches("http://").parse().unwrap();
    let (nginx, xff, _) = start_nginx(&nginx_bin, api).await;
    eventually("three ready origins", || async {
        let snap = stack.snapshot(&demo()).await;
        snap["origins"]
            .as_array()
            .is_some_and(|o| o.iter().filter(|o| o["state"] == "ready").count() == 3)
    })
    .await;
    let revision = stack.snapshot(&demo()).await["revision"].as_u64().unwrap();
    let total = WEBSOCKETS + SSE + LONG_POLLS;
    // Every address gets 20 WebSockets, 20 SSE streams and 10 long-polls.
    let subs: Vec<Sub> = futures::stream::iter(0..total)
        .map(|i| async move {
            let src = client(i);
            let proxy = xff;
            if i < WEBSOCKETS {
                Sub::Ws(Box::new(websocket(src, proxy).await.expect("a websocket")))
            } else if i < WEBSOCKETS + SSE {
                let mut s = connect(src, proxy).await;
                let got = get(
                    &mut s,
                    "/v1/pools/demo/origin/events",
                    "\"type\":\"snapshot\"",
                )
                .await;
                assert!(got.starts_with("HTTP/1.1 200"), "{got}");
                Sub::Sse(s)
            } else {
                let mut s = connect(src, proxy).await;
                let path = format!("/v1/pools/demo/origin?revision={revision}&wait=60s");
                let req =
                    format!("GET {path} HTTP/1.1\r\nHost: discovery\r\nConnection: close\r\n\r\n");
                s.write_all(req.as_bytes()).await.unwrap();
                Sub::Poll(s)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    eventually("every subscriber admitted", || async {
        let m = stack.metrics().await;
        metric(&m, "origin_discovery_subscribers", &["longpoll"]) == LONG_POLLS as f64
            && metric(&m, "origin_discovery_subscribers", &["websocket"]) == WEBSOCKETS as f64
            && metric(&m, "origin_discovery_subscribers", &["\"sse\""]) == SSE as f64
    })
    .await;
    let connected = started.elapsed();
    // One more from a full address: 429 through the proxy, whatever the transport, and
    // whatever it claims in the headers nginx passes on (`Forwarded`) or appends to.
    let forged = [
        ("forwarded", "for=198.51.100.7"),
        ("x-forwarded-for", "198.51.100.8"),
    ];
    let forged_lines = "Forwarded: for=198.51.100.7\r\nX-Forwarded-For: 198.51.100.8\r\n";
    for headers in [&[][..], &forged[..]] {
        expect_429(websocket_with(client(0), xff, headers).await);
    }
    for extra in ["", forged_lines] {
        let mut s = connect(client(0), xff).await;
        let got = get_with(&mut s, "/v1/pools/demo/origin/events", extra, "\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 429"), "{got}");
        let mut s = connect(client(0), xff).await;
        let path = format!("/v1/pools/demo/origin?revision={revision}&wait=60s");
        let got = get_with(&mut s, &path, extra, "too_many_subscribers").await;
        assert!(got.starts_with("HTTP/1.1 429"), "{got}");
    }
    // A new address passes.
    let mut newcomer = websocket([127, 0, 2, 1], xff)
        .await
        .expect("a new address passes");
    // A change reaches every subscriber through the proxy.
    stack.sim.crash_pod("demo", "origin-0").unwrap();
    let removed = "\"remove\":[\"origin-0\"]";
    let mut readers = tokio::task::JoinSet::new();
    for sub in subs {
        readers.spawn(async move {
            match sub {
                Sub::Ws(mut ws) => loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.contains(removed) => return,
                        Some(Ok(_)) => continue,
                        other => panic!("websocket ended: {other:?}"),
                    }
                },
                Sub::Sse(mut s) => {
                    assert!(read_until(&mut s, removed).await.contains(removed));
                }
                Sub::Poll(mut s) => {
                    let got = read_until(&mut s, "\"origins\"").await;
                    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
                    assert!(!got.contains(&format!("\"revision\":{revision},")), "{got}");
                }
            }
        });
    }
    let mut reached = 0;
    tokio::time::timeout(WAIT * 2, async {
        while let Some(done) = readers.join_next().await {
            done.expect("a subscriber saw the change");
            reached += 1;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {reached} of {total} subscribers saw the change"));
    assert_eq!(reached, total);
    let _ = newcomer.close(None).await;
    println!(
        "{total} subscribers ({WEBSOCKETS} websocket, {SSE} sse, {LONG_POLLS} long-poll) from \
         {ADDRESSES} addresses through nginx: admitted in {connected:?}, all saw the change \
         {:?} after the start",
        started.elapsed()
    );
    drop(nginx);
    stack.shutdown().await;
    behind_a_proxy_that_sets_forwarded(&nginx_bin).await;
}

/// The answer to a subscription beyond the per-IP limit must be 429.
fn expect_429(ws: Result<Ws, tungstenite::Error>) {
    match ws {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        Err(e) => panic!("expected 429, got {e}"),
        Ok(_) => panic!("a subscription beyond the per-IP limit was admitted"),
    }
}

/// With `--forwarded-header forwarded`, nginx's `Forwarded` names the client and a forged
/// `X-Forwarded-For` is ignored: the limit still counts per real client.
async fn behind_a_proxy_that_sets_forwarded(nginx_bin: &Path) {
    let stack = start(
        Duration::ZERO,
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--forwarded-header",
            "forwarded",
            "--max-subscribers-per-ip",
            "2",
        ],
    )
    .await;
    let api: SocketAddr = stack.api.trim_start_matches("http://").parse().unwrap();
    let (nginx, _, fwd) = start_nginx(nginx_bin, api).await;
    let src = [127, 0, 3, 1];
    let mut admitted = Vec::new();
    for _ in 0..2 {
        admitted.push(websocket(src, fwd).await.expect("within the limit"));
    }
    expect_429(websocket_with(src, fwd, &[("x-forwarded-for", "198.51.100.9")]).await);
    admitted.push(
        websocket([127, 0, 3, 2], fwd)
            .await
            .expect("another client passes"),
    );
    for mut ws in admitted {
        let _ = ws.close(None).await;
    }
    drop(nginx);
    stack.shutdown().await;
}
