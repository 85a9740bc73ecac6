//! The push contract over Server-Sent Events, on real sockets against the simulator: resume
//! by `?epoch=&revision=` (missed deltas only, or a snapshot past the delta log or from
//! another epoch), the stream ending after `removed`, on shutdown, and — for a waiting
//! long-poll — the answer at once on shutdown. (`Last-Event-ID`, heartbeats and the first
//! event: tests/api_ws_socket.rs and tests/api_http.rs; the write timeout:
//! tests/api_connections.rs.)

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use origin_discovery_testkit::stack::*;
use origin_discovery_testkit::WAIT;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One SSE stream read from a raw socket: its events (`id`, parsed `data`) as they come.
struct Events {
    socket: TcpStream,
    buffered: String,
    head_read: bool,
}

/// What the stream did next.
#[derive(Debug)]
enum Next {
    Event {
        id: String,
        data: Value,
    },
    /// The server closed the stream.
    End,
}

impl Events {
    /// `GET /v1/pools/demo/origin/events{query}`.
    async fn open(stack: &Stack, query: &str) -> Self {
        let addr = stack.api.trim_start_matches("http://");
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("GET /v1/pools/demo/origin/events{query} HTTP/1.1\r\nHost: test\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        Self {
            socket,
            buffered: String::new(),
            head_read: false,
        }
    }

    /// The next event or the end of the stream (heartbeat comments skipped), within [`WAIT`].
    async fn next(&mut self) -> Next {
        tokio::time::timeout(WAIT, self.read_next())
            .await
            .expect("an event or the end of the stream in time")
    }

    async fn read_next(&mut self) -> Next {
        loop {
            if !self.head_read {
                if let Some(end) = self.buffered.find("\r\n\r\n") {
                    let head = self.buffered[..end].to_string();
                    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
                    self.buffered.drain(..end + 4);
                    self.head_read = true;
                }
            }
            if self.head_read {
                while let Some(end) = self.buffered.find("\n\n") {
                    let block: String = self.buffered.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(str::to_string)
                    };
                    if let (Some(id), Some(data)) = (field("id: "), field("data: ")) {
                        let data = serde_json::from_str(&data).expect("data is one JSON message");
                        return Next::Event { id, data };
                    }
                    // `retry:` alone, or a `: heartbeat` comment.
                }
            }
            let mut buf = [0u8; 4096];
            match self.socket.read(&mut buf).await {
                Ok(0) | Err(_) => return Next::End,
                Ok(n) => self
                    .buffered
                    .push_str(std::str::from_utf8(&buf[..n]).unwrap()),
            }
        }
    }

    /// The next event, which must be of `kind`.
    async fn expect(&mut self, kind: &str) -> (String, Value) {
        match self.next().await {
            Next::Event { id, data } if data["type"] == kind => (id, data),
            other => panic!("expected a {kind} event, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn sse_resume_by_query_replays_only_the_missed_deltas_in_order() {
    let stack = start(Duration::ZERO, &[]).await;
    let mut w = stack.ready_demo_watch().await;
    let (epoch, revision) = (w.state.epoch.clone(), w.state.revision);
    stack.crash_and_wait(&mut w, "origin-0").await;
    stack.crash_and_wait(&mut w, "origin-1").await;
    let mut events = Events::open(&stack, &format!("?epoch={epoch}&revision={revision}")).await;
    for expected in [revision + 1, revision + 2] {
        let (id, delta) = events.expect("delta").await;
        assert_eq!(delta["revision"], expected);
        assert_eq!(id, format!("{epoch}-{expected}"));
    }
    // Then live: the next change is the next revision, no snapshot in between.
    stack.crash_and_wait(&mut w, "origin-2").await;
    let (_, delta) = events.expect("delta").await;
    assert_eq!(delta["revision"], revision + 3);
    assert_eq!(delta["remove"], serde_json::json!(["origin-2"]));
    stack.shutdown().await;
}

#[tokio::test]
async fn sse_resume_past_the_delta_log_or_from_another_epoch_gets_a_snapshot() {
    let stack = start(Duration::ZERO, &["--delta-log", "1"]).await;
    let mut w = stack.ready_demo_watch().await;
    let (epoch, revision) = (w.state.epoch.clone(), w.state.revision);
    stack.crash_and_wait(&mut w, "origin-0").await;
    stack.crash_and_wait(&mut w, "origin-1").await;
    for query in [
        format!("?epoch={epoch}&revision={revision}"),
        format!("?epoch=another-epoch&revision={}", revision + 1),
    ] {
        let mut events = Events::open(&stack, &query).await;
        let (id, snapshot) = events.expect("snapshot").await;
        assert_eq!(snapshot["revision"], revision + 2, "{query}");
        assert_eq!(snapshot["origins"].as_array().unwrap().len(), 1, "{query}");
        assert_eq!(id, format!("{epoch}-{}", revision + 2));
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn sse_stream_ends_after_the_removed_event_when_the_pool_goes_away() {
    let stack = start(Duration::ZERO, &[]).await;
    stack.ready_demo_watch().await;
    let mut events = Events::open(&stack, "").await;
    events.expect("snapshot").await;
    stack.sim.delete::<Service>(Some("demo"), "origin").unwrap();
    loop {
        match events.next().await {
            Next::Event { data, .. } if data["type"] == "removed" => break,
            Next::Event { data, .. } => assert_ne!(data["type"], "snapshot", "{data}"),
            Next::End => panic!("the stream ended before the removed event"),
        }
    }
    assert!(
        matches!(events.next().await, Next::End),
        "nothing after removed: the stream ends"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_sse_streams_and_answers_waiting_long_polls_at_once() {
    let mut stack = start(Duration::ZERO, &["--shutdown-timeout", "5s"]).await;
    let w = stack.ready_demo_watch().await;
    let revision = w.state.revision;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut events = Events::open(&stack, "").await;
        events.expect("snapshot").await;
        streams.push(events);
    }
    let addr = stack.api.trim_start_matches("http://").to_string();
    let mut poll = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /v1/pools/demo/origin?revision={revision}&wait=60s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    );
    poll.write_all(request.as_bytes()).await.unwrap();
    // The long-poll is waiting (counted as a subscriber) before the shutdown starts.
    origin_discovery_testkit::eventually("the long-poll waits", || async {
        origin_discovery_testkit::metric(
            &stack.metrics().await,
            "origin_discovery_subscribers",
            &["longpoll"],
        ) == 1.0
    })
    .await;
    let running = stack.running.take().unwrap();
    let started = tokio::time::Instant::now();
    running.shutdown.cancel();
    let wait = tokio::spawn(running.wait());
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, poll.read_to_end(&mut answer))
        .await
        .expect("the long-poll is answered on shutdown")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("\"revision\":{revision}")),
        "{answer}"
    );
    for mut events in streams {
        loop {
            match events.next().await {
                Next::End => break,
                Next::Event { data, .. } => assert_ne!(data["type"], "snapshot", "{data}"),
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "ended by the shutdown, not by its deadline: {:?}",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(6), wait)
        .await
        .expect("exits within the deadline")
        .unwrap()
        .unwrap();
    stack.sim.shutdown().await;
}
