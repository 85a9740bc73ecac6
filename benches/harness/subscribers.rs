//! Fleets of push subscribers (WebSocket or SSE) that record, per subscriber, the
//! `Instant` each delta revision arrived — taken right after the frame was read, before
//! any parsing — plus one fully parsing observer that tells the rounds what each revision
//! contained.
//!
//! The same fleet code subscribes to origin-discovery and to the nchan peer
//! ([`Server`]): nchan relays the bytes it is given, so the harness publishes messages
//! shaped like a delta head (`{"type":"delta","revision":<sequence>,…}`) and both servers'
//! frames are timestamped and recorded by the same lines.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use origin_discovery_core::messages::Message;
use origin_discovery_core::model::{Delta, PoolId};
use origin_discovery_testkit::client::{self, PoolState, Watch};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// Push transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// `/watch` (nchan: a WebSocket upgrade of the subscriber location).
    WebSocket,
    /// `/events` (nchan: EventSource on the subscriber location).
    Sse,
}

impl Transport {
    /// Label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "WebSocket",
            Transport::Sse => "SSE",
        }
    }
}

/// The server a fleet subscribes to.
#[derive(Clone, Debug)]
pub enum Server {
    /// origin-discovery's API: `/v1/pools/<ns>/<svc>/watch` and `…/events`. A subscriber
    /// has started when its first message (the snapshot) arrived.
    OriginDiscovery {
        /// API address.
        api: SocketAddr,
        /// The pool.
        pool: PoolId,
    },
    /// The nchan peer's subscriber location (`crate::nchan::SUB_PATH`). A subscriber has
    /// started when the handshake (WebSocket) or the `200` status line (EventSource)
    /// arrived; nchan sends nothing else until the first publish, so the caller confirms
    /// the subscriptions with a warm-up publish (`crate::nchan::warm_up`).
    Nchan {
        /// nginx's address.
        addr: SocketAddr,
    },
}

/// One received delta: revision, arrival, frame bytes.
type Arrival = (u64, Instant, usize);

/// What one subscriber saw: revision, arrival and size per delta.
#[derive(Default)]
pub struct Record {
    deltas: Mutex<Vec<Arrival>>,
}

impl Record {
    /// When revision `rev` arrived, if it did.
    pub fn arrival(&self, rev: u64) -> Option<Instant> {
        self.find(rev).map(|(_, t, _)| t)
    }

    /// Bytes of revision `rev`'s frame (the JSON text), if it arrived.
    pub fn bytes(&self, rev: u64) -> Option<usize> {
        self.find(rev).map(|(_, _, b)| b)
    }

    /// Highest revision received.
    pub fn latest(&self) -> u64 {
        let d = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        d.last().map_or(0, |(r, _, _)| *r)
    }

    fn find(&self, rev: u64) -> Option<Arrival> {
        let d = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        d.iter().rev().find(|(r, _, _)| *r == rev).copied()
    }

    fn push(&self, rev: u64, at: Instant, bytes: usize) {
        let mut d = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        d.push((rev, at, bytes));
    }
}

/// The head of a message, enough to know what it is without decoding origins.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    revision: Option<u64>,
}

/// A set of subscribers to one server over one transport.
pub struct Fleet {
    transport: Transport,
    server: Server,
    /// One record per subscriber, in connection order.
    pub records: Vec<Arc<Record>>,
    started: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: JoinSet<()>,
    cancel: CancellationToken,
}

impl Fleet {
    /// An empty fleet.
    pub fn new(transport: Transport, server: Server) -> Self {
        Self {
            transport,
            server,
            records: Vec::new(),
            started: Arc::new(AtomicUsize::new(0)),
            failed: Arc::new(AtomicUsize::new(0)),
            tasks: JoinSet::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// The fleet's transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Subscribers in the fleet.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Connects more subscribers until there are `n`, at most 200 handshakes at a time,
    /// and waits (bounded) until every one has received its first message.
    pub async fn grow_to(&mut self, n: usize) -> Result<()> {
        let gate = Arc::new(Semaphore::new(200));
        while self.records.len() < n {
            let rec = Arc::new(Record::default());
            self.records.push(rec.clone());
            let (server, cancel) = (self.server.clone(), self.cancel.clone());
            let (started, failed, gate) = (self.started.clone(), self.failed.clone(), gate.clone());
            let transport = self.transport;
            self.tasks.spawn(async move {
                let permit = gate.acquire_owned().await.expect("never closed");
                let start = Start {
                    started,
                    permit: Some(permit),
                };
                let r = match transport {
                    Transport::WebSocket => ws(&server, rec, start, cancel).await,
                    Transport::Sse => sse(&server, rec, start, cancel).await,
                };
                if let Err(e) = r {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("bench: a subscriber failed: {e:#}");
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (ok, bad) = (
                self.started.load(Ordering::Relaxed),
                self.failed.load(Ordering::Relaxed),
            );
            if bad > 0 {
                bail!("{bad} {} subscribers failed", self.transport.label());
            }
            if ok >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {ok} of {n} subscribers started within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Subscribers that failed after starting (a failure mid-run voids its numbers).
    pub fn failures(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until every subscriber has received revision `rev` or a later one;
    /// fails if a subscriber failed or `within` passed.
    pub async fn wait_for(&self, rev: u64, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while self.records.iter().any(|r| r.latest() < rev) {
            if self.failures() > 0 {
                bail!("{} subscribers failed", self.failures());
            }
            if Instant::now() > deadline {
                let behind = self.records.iter().filter(|r| r.latest() < rev).count();
                bail!("{behind} subscribers did not get revision {rev} within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Closes every subscriber and waits (bounded) for their tasks.
    pub async fn close(mut self) {
        self.cancel.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(20), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
        }
    }
}

/// Counts a subscriber as started once, and releases its handshake permit.
struct Start {
    started: Arc<AtomicUsize>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Start {
    fn done(&mut self) {
        if self.permit.take().is_some() {
            self.started.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn ws(
    server: &Server,
    rec: Arc<Record>,
    mut start: Start,
    cancel: CancellationToken,
) -> Result<()> {
    let url = match server {
        Server::OriginDiscovery { api, pool } => {
            client::watch_url(&format!("http://{api}"), pool, None)
        }
        Server::Nchan { addr } => format!("ws://{addr}{}", crate::nchan::SUB_PATH),
    };
    // tungstenite's default 128 KiB read buffer is zero-filled on every read attempt;
    // deltas are a few hundred bytes, so a small buffer keeps the subscribers' own CPU
    // (which shares the machine with the controller) out of the measurement.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true),
    )
    .await
    .context("connect timed out")??;
    if matches!(server, Server::Nchan { .. }) {
        start.done();
    }
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return Ok(());
            }
            m = ws.next() => m,
        };
        let now = Instant::now();
        let Some(msg) = msg else {
            bail!("the server closed the WebSocket");
        };
        match msg? {
            WsMessage::Text(t) => on_message(t.as_str(), now, &rec, &mut start)?,
            WsMessage::Binary(b) => {
                on_message(std::str::from_utf8(&b)?, now, &rec, &mut start)?;
            }
            WsMessage::Close(f) => bail!("closed by the server: {f:?}"),
            _ => {}
        }
    }
}

async fn sse(
    server: &Server,
    rec: Arc<Record>,
    mut start: Start,
    cancel: CancellationToken,
) -> Result<()> {
    let (addr, path, snapshot_first) = match server {
        Server::OriginDiscovery { api, pool } => (
            *api,
            format!("/v1/pools/{}/{}/events", pool.namespace, pool.name),
            true,
        ),
        Server::Nchan { addr } => (*addr, crate::nchan::SUB_PATH.to_string(), false),
    };
    let mut s = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    s.set_nodelay(true)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut lines = BufReader::new(s).lines();
    loop {
        let line = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            l = lines.next_line() => l?,
        };
        let now = Instant::now();
        let Some(line) = line else {
            bail!("the server closed the event stream");
        };
        // origin-discovery's stream is chunked and nchan's is not; either way only `data:`
        // lines matter, and both servers write each event in one piece, so a chunk-size
        // line never splits one.
        if let Some(data) = line.strip_prefix("data: ") {
            on_message(data, now, &rec, &mut start)?;
        } else if line.starts_with("HTTP/1.1 ") {
            if !line.starts_with("HTTP/1.1 200") {
                bail!("SSE refused: {line}");
            }
            if !snapshot_first {
                start.done();
            }
        }
    }
}

fn on_message(text: &str, now: Instant, rec: &Record, start: &mut Start) -> Result<()> {
    let head: Head<'_> = serde_json::from_str(text).context("malformed push message")?;
    match head.kind {
        // origin-discovery's first message is the snapshot: the subscriber has started.
        "snapshot" => start.done(),
        "delta" => rec.push(
            head.revision.context("delta without revision")?,
            now,
            text.len(),
        ),
        _ => {}
    }
    Ok(())
}

/// A fully decoding WebSocket subscriber (the project's own `client::Watch`) that keeps
/// every delta it applied and publishes the resulting pool state.
pub struct Observer {
    /// Every delta received, in order.
    pub history: Arc<Mutex<Vec<Message>>>,
    /// The pool state after the latest message.
    pub state: watch::Receiver<PoolState>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Connects and waits for the first snapshot.
    pub async fn start(api: SocketAddr, pool: &PoolId) -> Result<Observer> {
        let url = client::watch_url(&format!("http://{api}"), pool, None);
        let mut w = Watch::connect(&url).await?;
        w.wait_for(Duration::from_secs(10), |s| !s.epoch.is_empty())
            .await?;
        let (tx, state) = watch::channel(w.state.clone());
        let history = Arc::new(Mutex::new(Vec::new()));
        let h = history.clone();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let task = tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    _ = c.cancelled() => break,
                    m = w.next() => m,
                };
                match m {
                    Ok(Ok(m)) => {
                        if matches!(m, Message::Delta(Delta { .. })) {
                            h.lock().unwrap_or_else(|e| e.into_inner()).push(m);
                        }
                        let _ = tx.send(w.state.clone());
                    }
                    Ok(Err(closed)) => {
                        eprintln!("bench: observer closed: {closed:?}");
                        break;
                    }
                    Err(e) => {
                        eprintln!("bench: observer failed: {e}");
                        break;
                    }
                }
            }
            w.close().await;
        });
        Ok(Observer {
            history,
            state,
            cancel,
            task,
        })
    }

    /// Stops the observer.
    pub async fn close(self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}
