//! Push API over real sockets against the simulator: resume, limits, frame limits, SSE
//! `Last-Event-ID`, shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use origin_discovery_core::messages::Message as Push;
use origin_discovery_core::model::{Delta, Snapshot};
use origin_discovery_testkit::client::{watch_url, Watch};
use origin_discovery_testkit::stack::*;
use origin_discovery_testkit::{eventually, metric, WAIT};
use tokio_tungstenite::tungstenite::{self, Message};

async fn next_non_heartbeat(w: &mut Watch) -> Push {
    loop {
        match w.next_within(WAIT).await.unwrap().unwrap() {
            Push::Heartbeat { .. } => continue,
            m => return m,
        }
    }
}

#[tokio::test]
async fn resume_with_a_small_gap_replays_only_the_missed_deltas() {
    let stack = start(Duration::ZERO, &[]).await;
    let w = stack.ready_demo_watch().await;
    let (epoch, revision) = (w.state.epoch.clone(), w.state.revision);
    w.close().await;
    let mut other = stack.watch(&demo()).await;
    stack.crash_and_wait(&mut other, "origin-0").await;
    stack.crash_and_wait(&mut other, "origin-1").await;
    let url = watch_url(&stack.api, &demo(), Some((&epoch, revision)));
    let mut w = Watch::connect(&url).await.unwrap();
    w.state.epoch = epoch;
    w.state.revision = revision;
    for expected in [revision + 1, revision + 2] {
        match next_non_heartbeat(&mut w).await {
            Push::Delta(Delta { revision, .. }) => assert_eq!(revision, expected),
            other => panic!("expected only the missed deltas, got {other:?}"),
        }
    }
    assert_eq!(
        w.state.origins.len(),
        0,
        "resumed client never saw a snapshot, only deltas"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn resume_past_the_delta_log_or_from_another_epoch_gets_a_snapshot() {
    let stack = start(Duration::ZERO, &["--delta-log", "1"]).await;
    let w = stack.ready_demo_watch().await;
    let (epoch, revision) = (w.state.epoch.clone(), w.state.revision);
    w.close().await;
    let mut other = stack.watch(&demo()).await;
    stack.crash_and_wait(&mut other, "origin-0").await;
    stack.crash_and_wait(&mut other, "origin-1").await;
    for (e, r) in [(&*epoch, revision), ("another-epoch", revision + 1)] {
        let mut w = Watch::connect(&watch_url(&stack.api, &demo(), Some((e, r))))
            .await
            .unwrap();
        match next_non_heartbeat(&mut w).await {
            Push::Snapshot(Snapshot {
                origins,
                revision: rev,
                ..
            }) => {
                assert_eq!(origins.len(), 1);
                assert_eq!(rev, revision + 2);
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }
    stack.shutdown().await;
}

async fn connect_from(src: [u8; 4], api: &str) -> Result<Watch, tungstenite::Error> {
    let addr: SocketAddr = api.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((src, 0))).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = watch_url(api, &demo(), None);
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await?;
    Ok(Watch::from_stream(ws))
}

fn assert_429(r: Result<Watch, tungstenite::Error>, what: &str) {
    match r {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 429, "{what}");
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "too_many_subscribers", "{what}");
        }
        Err(e) => panic!("{what}: expected HTTP 429, got {e}"),
        Ok(_) => panic!("{what}: expected HTTP 429, got a session"),
    }
}

#[tokio::test]
async fn subscriber_limits_are_enforced_before_the_upgrade() {
    let stack = start(
        Duration::ZERO,
        &["--max-subscribers", "2", "--max-subscribers-per-ip", "1"],
    )
    .await;
    let a = connect_from([127, 0, 0, 1], &stack.api).await.unwrap();
    assert_429(
        connect_from([127, 0, 0, 1], &stack.api).await,
        "second from the same IP",
    );
    let b = connect_from([127, 0, 0, 2], &stack.api).await.unwrap();
    assert_429(
        connect_from([127, 0, 0, 3], &stack.api).await,
        "third overall",
    );
    // Leaving frees the slot.
    a.close().await;
    eventually("slot freed", || async {
        connect_from([127, 0, 0, 1], &stack.api).await.is_ok()
    })
    .await;
    assert!(
        metric(
            &stack.metrics().await,
            "origin_discovery_rejected_subscribers_total",
            &["websocket"]
        ) >= 2.0
    );
    drop(b);
    stack.shutdown().await;
}

/// Reads frames until the server's Close frame arrives.
async fn read_close<S>(ws: &mut S) -> tungstenite::protocol::CloseFrame
where
    S: futures::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(f))) => return f.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn oversized_and_invalid_frames_close_the_session_and_the_server_keeps_serving() {
    let stack = start(Duration::ZERO, &[]).await;
    let url = watch_url(&stack.api, &demo(), None);
    // Over the control-message limit: 1009.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.next().await.unwrap().unwrap(); // snapshot
    ws.send(Message::Text("x".repeat(4096).into()))
        .await
        .unwrap();
    let close = read_close(&mut ws).await;
    assert_eq!(u16::from(close.code), 1009);
    // Not a control message: 1008.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::Text(r#"{"type":"subscribe","pool":"x"}"#.into()))
        .await
        .unwrap();
    let close = read_close(&mut ws).await;
    assert_eq!(u16::from(close.code), 1008);
    assert!(!close.reason.is_empty());
    // Beyond the transport limit (64 KiB): the connection is dropped, nothing else happens.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let _ = ws.send(Message::Binary(vec![0u8; 200 * 1024].into())).await;
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the oversized frame ends the session");
    // Still serving.
    let mut w = stack.watch(&demo()).await;
    w.send_text(r#"{"type":"ping"}"#.into()).await.unwrap();
    assert!(matches!(
        next_non_heartbeat(&mut w).await,
        Push::Pong { .. }
    ));
    stack.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_session_with_1001_before_exiting() {
    let mut stack = start(Duration::ZERO, &["--shutdown-timeout", "5s"]).await;
    let mut sessions = vec![];
    for _ in 0..5 {
        sessions.push(stack.watch(&demo()).await);
    }
    let running = stack.running.take().unwrap();
    running.shutdown.cancel();
    let wait = tokio::spawn(running.wait());
    for mut w in sessions {
        let closed = loop {
            match w.next_within(WAIT).await.unwrap() {
                Ok(_) => continue,
                Err(closed) => break closed,
            }
        };
        assert_eq!(closed.code, Some(1001));
        assert_eq!(closed.reason, "going away");
    }
    tokio::time::timeout(Duration::from_secs(6), wait)
        .await
        .expect("exits within the deadline")
        .unwrap()
        .unwrap();
    stack.sim.shutdown().await;
}

#[tokio::test]
async fn sse_streams_the_same_messages_and_resumes_from_last_event_id() {
    use hyper_util::client::legacy::Client;
    let stack = start(Duration::ZERO, &[]).await;
    let mut w = stack.ready_demo_watch().await;
    let client: Client<_, http_body_util::Empty<bytes::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let url = format!("{}/v1/pools/demo/origin/events", stack.api);
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let first = String::from_utf8(
        body.frame()
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let id_line = first
        .lines()
        .find(|l| l.starts_with("id: "))
        .unwrap()
        .to_string();
    let last_id = id_line.trim_start_matches("id: ").to_string();
    assert_eq!(last_id, format!("{}-{}", w.state.epoch, w.state.revision));
    assert!(first.contains("\"type\":\"snapshot\""));
    drop(body);
    stack.crash_and_wait(&mut w, "origin-2").await;
    let req = hyper::Request::get(url.as_str())
        .header("last-event-id", last_id)
        .body(http_body_util::Empty::new())
        .unwrap();
    let mut body = client.request(req).await.unwrap().into_body();
    let text = loop {
        let chunk = String::from_utf8(
            body.frame()
                .await
                .unwrap()
                .unwrap()
                .into_data()
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        if chunk.contains("data: ") {
            break chunk;
        }
    };
    assert!(
        text.contains(&format!("id: {}-{}\n", w.state.epoch, w.state.revision)),
        "{text}"
    );
    assert!(
        text.contains("\"type\":\"delta\""),
        "resumed with the missed delta only: {text}"
    );
    assert!(text.contains("\"remove\":[\"origin-2\"]"), "{text}");
    stack.shutdown().await;
}
