//! WebSocket session logic over in-memory channels (no sockets): ordering, heartbeats,
//! control messages, closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use origin_discovery::api::ws::{close, session, SessionContext, SessionEnd};
use origin_discovery::metrics::Metrics;
use origin_discovery_core::hub::{Hub, Subscription};
use origin_discovery_core::messages::Message as Push;
use origin_discovery_core::model::{Delta, PoolChange, PoolId, Snapshot};
use origin_discovery_testkit::fixtures::origin;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn pool() -> PoolId {
    PoolId::new("demo", "origin")
}

struct Harness {
    hub: Arc<Hub>,
    out: mpsc::Receiver<Message>,
    input: mpsc::Sender<Result<Message, Infallible>>,
    shutdown: CancellationToken,
    task: JoinHandle<SessionEnd>,
}

fn start(heartbeat: Duration) -> Harness {
    let hub = Arc::new(Hub::new("e1", 64));
    hub.apply(PoolChange::Added {
        pool: pool(),
        revision: 1,
        origins: vec![origin("a")],
    });
    let (out_tx, out) = mpsc::channel(16);
    let (input, in_rx) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let sub = Subscription::new(hub.pool(&pool()).unwrap(), None);
    let ctx = SessionContext::new(heartbeat, shutdown.clone(), &Metrics::new());
    let task = tokio::spawn(async move {
        let mut sink = out_tx;
        let mut stream = in_rx;
        session(&mut sink, &mut stream, sub, ctx).await
    });
    Harness {
        hub,
        out,
        input,
        shutdown,
        task,
    }
}

async fn recv(h: &mut Harness) -> Message {
    tokio::time::timeout(Duration::from_secs(30), h.out.next())
        .await
        .expect("a frame in time")
        .expect("session open")
}

async fn recv_json(h: &mut Harness) -> Push {
    match recv(h).await {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn recv_close(h: &mut Harness) -> u16 {
    match recv(h).await {
        Message::Close(Some(f)) => f.code,
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
        },
        received: Instant::now(),
    });
}

#[tokio::test]
async fn snapshot_first_then_deltas_in_revision_order() {
    let mut h = start(Duration::from_secs(60));
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
    let mut h = start(Duration::from_secs(5));
    recv_json(&mut h).await;
    let t0 = tokio::time::Instant::now();
    assert_eq!(recv_json(&mut h).await, Push::Heartbeat { revision: 1 });
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    assert_eq!(recv_json(&mut h).await, Push::Heartbeat { revision: 1 });
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
}

#[tokio::test]
async fn ping_control_message_gets_a_pong() {
    let mut h = start(Duration::from_secs(60));
    recv_json(&mut h).await;
    h.input
        .send(Ok(Message::Text(r#"{"type":"ping"}"#.into())))
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
        let mut h = start(Duration::from_secs(60));
        recv_json(&mut h).await;
        h.input.send(Ok(Message::Text(bad.into()))).await.unwrap();
        assert_eq!(recv_close(&mut h).await, close::POLICY, "{bad}");
        assert_eq!(h.task.await.unwrap(), SessionEnd::Closed(close::POLICY));
    }
}

#[tokio::test]
async fn binary_message_closes_with_1008() {
    let mut h = start(Duration::from_secs(60));
    recv_json(&mut h).await;
    h.input
        .send(Ok(Message::Binary(vec![1, 2, 3].into())))
        .await
        .unwrap();
    assert_eq!(recv_close(&mut h).await, close::POLICY);
}

#[tokio::test]
async fn oversized_client_message_closes_with_1009() {
    let mut h = start(Duration::from_secs(60));
    recv_json(&mut h).await;
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(2000));
    h.input.send(Ok(Message::Text(big.into()))).await.unwrap();
    assert_eq!(recv_close(&mut h).await, close::TOO_BIG);
}

#[tokio::test]
async fn shutdown_closes_with_1001_going_away() {
    let mut h = start(Duration::from_secs(60));
    recv_json(&mut h).await;
    h.shutdown.cancel();
    match recv(&mut h).await {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, close::GOING_AWAY);
            assert_eq!(f.reason.as_str(), "going away");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.task.await.unwrap(), SessionEnd::Closed(close::GOING_AWAY));
}

#[tokio::test]
async fn removed_pool_sends_a_final_message_and_closes_normally() {
    let mut h = start(Duration::from_secs(60));
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
    let mut h = start(Duration::from_secs(60));
    recv_json(&mut h).await;
    drop(h.input);
    assert_eq!(h.task.await.unwrap(), SessionEnd::ClientGone);
}

/// A socket whose send buffer never drains.
struct Stuck;

impl futures::Sink<Message> for Stuck {
    type Error = Infallible;
    fn poll_ready(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Pending
    }
    fn start_send(self: std::pin::Pin<&mut Self>, _: Message) -> Result<(), Infallible> {
        Ok(())
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Pending
    }
    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn subscriber_that_never_reads_is_disconnected_after_the_write_timeout_and_never_delays_others(
) {
    let hub = Arc::new(Hub::new("e1", 64));
    hub.apply(PoolChange::Added {
        pool: pool(),
        revision: 1,
        origins: vec![origin("a")],
    });
    let ctx = SessionContext::new(
        Duration::from_secs(5),
        CancellationToken::new(),
        &Metrics::new(),
    );
    let stuck_sub = Subscription::new(hub.pool(&pool()).unwrap(), None);
    let (_keep_open, stuck_in) = mpsc::channel::<Result<Message, Infallible>>(1);
    let stuck_ctx = ctx.clone();
    let stuck = tokio::spawn(async move {
        let mut sink = Stuck;
        let mut stream = stuck_in;
        session(&mut sink, &mut stream, stuck_sub, stuck_ctx).await
    });
    // A healthy subscriber on the same pool.
    let (out_tx, mut out) = mpsc::channel(1024);
    let (_input, in_rx) = mpsc::channel::<Result<Message, Infallible>>(1);
    let fast_sub = Subscription::new(hub.pool(&pool()).unwrap(), None);
    tokio::spawn(async move {
        let mut sink = out_tx;
        let mut stream = in_rx;
        session(&mut sink, &mut stream, fast_sub, ctx).await
    });
    out.next().await.unwrap(); // snapshot
    for r in 2..=200 {
        push(&hub, r);
        match out.next().await.unwrap() {
            Message::Text(t) => assert!(t.contains(&format!("\"revision\":{r}"))),
            other => panic!("{other:?}"),
        }
    }
    let started = tokio::time::Instant::now();
    assert_eq!(stuck.await.unwrap(), SessionEnd::WriteFailed);
    assert!(started.elapsed() <= origin_discovery::api::WRITE_TIMEOUT);
}
