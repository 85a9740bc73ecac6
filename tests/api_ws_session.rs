//! The WebSocket session over a loopback socket pair (no HTTP, no server): ordering,
//! heartbeats, control messages, closes. The client end is tungstenite's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use origin_discovery::api::serve::Socket;
use origin_discovery::api::ws::{close, session, SessionContext, SessionEnd};
use origin_discovery::metrics::Metrics;
use origin_discovery_core::hub::{Hub, Subscription};
use origin_discovery_core::messages::Message as Push;
use origin_discovery_core::model::{Delta, PoolChange, PoolId, Snapshot};
use origin_discovery_testkit::fixtures::origin;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

type Client = WebSocketStream<TcpStream>;

/// A connected loopback pair `(server end, client end)`; the server end's send buffer
/// and the client end's receive buffer are `buffer` bytes when given.
async fn pair(buffer: Option<u32>) -> (TcpStream, TcpStream) {
    let listen = TcpSocket::new_v4().unwrap();
    if let Some(b) = buffer {
        // Accepted sockets inherit it: the client end.
        listen.set_recv_buffer_size(b).unwrap();
    }
    listen.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener: TcpListener = listen.listen(4).unwrap();
    let connect = TcpSocket::new_v4().unwrap();
    if let Some(b) = buffer {
        connect.set_send_buffer_size(b).unwrap();
    }
    let (server, accepted) = tokio::join!(
        connect.connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    (server.unwrap(), accepted.unwrap().0)
}

async fn client(stream: TcpStream) -> Client {
    WebSocketStream::from_raw_socket(stream, Role::Client, None).await
}

fn pool() -> PoolId {
    PoolId::new("demo", "origin")
}

struct Harness {
    hub: Arc<Hub>,
    ws: Client,
    shutdown: CancellationToken,
    task: JoinHandle<SessionEnd>,
}

/// A hub holding `pool()` at revision 1 with one origin.
fn hub() -> Arc<Hub> {
    let hub = Arc::new(Hub::new("e1", 64));
    hub.apply(PoolChange::Added {
        pool: pool(),
        revision: 1,
        origins: vec![origin("a")],
    });
    hub
}

/// Spawns a session subscribed to `pool()` (from the start) on the server end of a
/// [`pair`] with `buffer`; returns its task and the client end.
async fn spawn_session(
    hub: &Hub,
    buffer: Option<u32>,
    ctx: SessionContext,
) -> (JoinHandle<SessionEnd>, TcpStream) {
    let (server, client_end) = pair(buffer).await;
    let sub = Subscription::new(hub.pool(&pool()).unwrap(), None);
    let task = tokio::spawn(session(Socket::new(server), Bytes::new(), sub, ctx));
    (task, client_end)
}

async fn start(heartbeat: Duration) -> Harness {
    let hub = hub();
    let shutdown = CancellationToken::new();
    let ctx = SessionContext::new(heartbeat, shutdown.clone(), &Metrics::new());
    let (task, client_end) = spawn_session(&hub, None, ctx).await;
    Harness {
        hub,
        ws: client(client_end).await,
        shutdown,
        task,
    }
}

async fn recv(h: &mut Harness) -> Message {
    tokio::time::timeout(Duration::from_secs(30), h.ws.next())
        .await
        .expect("a frame in time")
        .expect("session open")
        .expect("a valid frame")
}

async fn recv_json(h: &mut Harness) -> Push {
    match recv(h).await {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn recv_close(h: &mut Harness) -> u16 {
    match recv(h).await {
        Message::Close(Some(f)) => u16::from(f.code),
        other => panic!("expected close, got {other:?}"),
    }
}

fn push(hub: &Hub, revision: u64) {
    hub.apply(PoolChange::Updated {
        delta: Delta {
            pool: pool(),
            epoch: "e1".into(),
            revision,
            upsert: vec![origin(&format!("o{revision}"))],
            remove: vec![],
            received: None,
        },
        received: Instant::now(),
    });
}

#[tokio::test]
async fn snapshot_first_then_deltas_in_revision_order() {
    let mut h = start(Duration::from_secs(60)).await;
    assert!(matches!(
        recv_json(&mut h).await,
        Push::Snapshot(Snapshot { revision: 1, .. })
    ));
    for r in 2..=4 {
        push(&h.hub, r);
    }
    let mut revisions = vec![];
    for _ in 2..=4 {
        match recv_json(&mut h).await {
            Push::Delta(Delta { revision, .. }) => revisions.push(revision),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(revisions, vec![2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_is_sent_every_interval_when_idle() {
    let mut h = start(Duration::from_secs(5)).await;
    recv_json(&mut h).await;
    let t0 = tokio::time::Instant::now();
    assert_eq!(recv_json(&mut h).await, Push::Heartbeat { revision: 1 });
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    assert_eq!(recv_json(&mut h).await, Push::Heartbeat { revision: 1 });
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
}

#[tokio::test]
async fn ping_control_message_gets_a_pong() {
    let mut h = start(Duration::from_secs(60)).await;
    recv_json(&mut h).await;
    h.ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(recv_json(&mut h).await, Push::Pong { revision: 1 });
}

#[tokio::test]
async fn invalid_client_message_closes_with_1008() {
    for bad in [
        r#"{"type":"subscribe"}"#,
        "not json",
        r#"{"type":"ping","x":1}"#,
    ] {
        let mut h = start(Duration::from_secs(60)).await;
        recv_json(&mut h).await;
        h.ws.send(Message::Text(bad.into())).await.unwrap();
        assert_eq!(recv_close(&mut h).await, close::POLICY, "{bad}");
        assert_eq!(h.task.await.unwrap(), SessionEnd::Closed(close::POLICY));
    }
}

#[tokio::test]
async fn binary_message_closes_with_1008() {
    let mut h = start(Duration::from_secs(60)).await;
    recv_json(&mut h).await;
    h.ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(recv_close(&mut h).await, close::POLICY);
}

#[tokio::test]
async fn oversized_client_message_closes_with_1009() {
    let mut h = start(Duration::from_secs(60)).await;
    recv_json(&mut h).await;
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(2000));
    h.ws.send(Message::Text(big.into())).await.unwrap();
    assert_eq!(recv_close(&mut h).await, close::TOO_BIG);
}

#[tokio::test]
async fn shutdown_closes_with_1001_going_away() {
    let mut h = start(Duration::from_secs(60)).await;
    recv_json(&mut h).await;
    h.shutdown.cancel();
    match recv(&mut h).await {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), close::GOING_AWAY);
            assert_eq!(f.reason.as_str(), "going away");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.task.await.unwrap(), SessionEnd::Closed(close::GOING_AWAY));
}

#[tokio::test]
async fn removed_pool_sends_a_final_message_and_closes_normally() {
    let mut h = start(Duration::from_secs(60)).await;
    recv_json(&mut h).await;
    h.hub.apply(PoolChange::Removed {
        pool: pool(),
        revision: 1,
    });
    assert!(matches!(recv_json(&mut h).await, Push::Removed { .. }));
    assert_eq!(recv_close(&mut h).await, close::NORMAL);
}

#[tokio::test]
async fn client_going_away_ends_the_session() {
    let mut h = start(Duration::from_secs(60)).await;
    recv_json(&mut h).await;
    drop(h.ws);
    assert_eq!(h.task.await.unwrap(), SessionEnd::ClientGone);
}

#[tokio::test(start_paused = true)]
async fn subscriber_that_never_reads_is_disconnected_after_the_write_timeout_and_never_delays_others(
) {
    let hub = hub();
    let ctx = SessionContext::new(
        Duration::from_secs(5),
        CancellationToken::new(),
        &Metrics::new(),
    );
    // A socket whose buffers hold a few KB and whose client never reads.
    let (stuck, _stuck_client) = spawn_session(&hub, Some(4096), ctx.clone()).await;
    // A healthy subscriber on the same pool.
    let (_, fast_client) = spawn_session(&hub, None, ctx).await;
    let mut out = client(fast_client).await;
    out.next().await.unwrap().unwrap(); // snapshot
    for r in 2..=200 {
        push(&hub, r);
        loop {
            match out.next().await.unwrap().unwrap() {
                Message::Text(t) if t.contains("\"heartbeat\"") => continue,
                Message::Text(t) => {
                    assert!(t.contains(&format!("\"revision\":{r}")), "{t}");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let started = tokio::time::Instant::now();
    assert_eq!(stuck.await.unwrap(), SessionEnd::WriteFailed);
    assert!(started.elapsed() <= origin_discovery::api::WRITE_TIMEOUT);
}

async fn read_push(ws: &mut Client) -> Push {
    let next = tokio::time::timeout(Duration::from_secs(30), ws.next());
    match next.await.expect("a frame in time").unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// What a subscriber saw: each message's kind and revision, and whether it was a reset.
fn revision_of(msg: &Push) -> Option<(bool, u64)> {
    match msg {
        Push::Snapshot(s) => Some((true, s.revision)),
        Push::Delta(d) => Some((false, d.revision)),
        _ => None,
    }
}

/// A subscriber whose socket fills up is parked by the fan-out writer and caught up by
/// its session (deltas from the log, or a snapshot once the log no longer covers the
/// gap), then written live again: once it reads again it gets every revision in order,
/// contiguous or reset by a snapshot, up to the last one published; a subscriber that
/// keeps reading gets every delta meanwhile.
#[tokio::test]
async fn a_parked_subscriber_catches_up_in_order_and_ends_at_the_last_revision() {
    const LAST: u64 = 400;
    let hub = hub();
    let ctx = SessionContext::new(
        Duration::from_secs(60),
        CancellationToken::new(),
        &Metrics::new(),
    );
    let (slow_task, slow_client) = spawn_session(&hub, Some(4096), ctx.clone()).await;
    let (_, fast_client) = spawn_session(&hub, None, ctx).await;
    let mut fast = client(fast_client).await;
    let mut slow = client(slow_client).await;
    assert_eq!(revision_of(&read_push(&mut slow).await), Some((true, 1)));
    assert_eq!(revision_of(&read_push(&mut fast).await), Some((true, 1)));
    // The slow client reads nothing while 399 revisions (≈ 60 KB of frames, far more
    // than its socket buffers hold) are published.
    for r in 2..=LAST {
        push(&hub, r);
        assert_eq!(revision_of(&read_push(&mut fast).await), Some((false, r)));
    }
    let mut at = 1;
    let mut resets = 0;
    while at < LAST {
        let Some((reset, revision)) = revision_of(&read_push(&mut slow).await) else {
            continue;
        };
        if reset {
            resets += 1;
            assert!(revision >= at, "a snapshot at {revision} after {at}");
        } else {
            assert_eq!(revision, at + 1, "deltas are contiguous");
        }
        at = revision;
    }
    assert_eq!(at, LAST);
    assert!(resets >= 1, "a gap beyond the 64-delta log is a snapshot");
    // Live again: the next revision reaches both.
    push(&hub, LAST + 1);
    assert_eq!(
        revision_of(&read_push(&mut fast).await),
        Some((false, LAST + 1))
    );
    assert_eq!(
        revision_of(&read_push(&mut slow).await),
        Some((false, LAST + 1))
    );
    assert!(!slow_task.is_finished());
}
