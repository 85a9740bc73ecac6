//! Fleets of push subscribers (WebSocket or SSE) that record, per subscriber, the
//! `Instant` each delta revision arrived — taken right after the frame was read, before
//! any parsing — plus one fully parsing observer that tells the rounds what each revision
//! contained.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use origin_discovery_core::messages::Message;
use origin_discovery_core::model::Delta;
use origin_discovery_core::model::PoolId;
use origin_discovery_testkit::client::{self, PoolState, Watch};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// Push transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `/watch`.
    WebSocket,
    /// `/events`.
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

/// What one subscriber saw: `(revision, arrival)` per delta.
#[derive(Default)]
pub struct Record {
    deltas: Mutex<Vec<(u64, Instant)>>,
}

impl Record {
    /// When revision `rev` arrived, if it did.
    pub fn arrival(&self, rev: u64) -> Option<Instant> {
        let d = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        d.iter().rev().find(|(r, _)| *r == rev).map(|(_, t)| *t)
    }

    /// Highest revision received.
    pub fn latest(&self) -> u64 {
        let d = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        d.last().map_or(0, |(r, _)| *r)
    }

    fn push(&self, rev: u64, at: Instant) {
        let mut d = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        d.push((rev, at));
    }
}

/// The head of a message, enough to know what it is without decoding origins.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    revision: Option<u64>,
}

/// A set of subscribers to one pool over one transport.
pub struct Fleet {
    transport: Transport,
    api: SocketAddr,
    pool: PoolId,
    /// One record per subscriber, in connection order.
    pub records: Vec<Arc<Record>>,
    started: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: JoinSet<()>,
    cancel: CancellationToken,
}

impl Fleet {
    /// An empty fleet.
    pub fn new(transport: Transport, api: SocketAddr, pool: PoolId) -> Self {
        Self {
            transport,
            api,
            pool,
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
            let (api, pool, cancel) = (self.api, self.pool.clone(), self.cancel.clone());
            let (started, failed, gate) = (self.started.clone(), self.failed.clone(), gate.clone());
            let transport = self.transport;
            self.tasks.spawn(async move {
                let permit = gate.acquire_owned().await.expect("never closed");
                let r = match transport {
                    Transport::WebSocket => ws(api, &pool, rec, started, permit, cancel).await,
                    Transport::Sse => sse(api, &pool, rec, started, permit, cancel).await,
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

async fn ws(
    api: SocketAddr,
    pool: &PoolId,
    rec: Arc<Record>,
    started: Arc<AtomicUsize>,
    permit: tokio::sync::OwnedSemaphorePermit,
    cancel: CancellationToken,
) -> Result<()> {
    let url = client::watch_url(&format!("http://{api}"), pool, None);
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
    let mut permit = Some(permit);
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
        let text = match msg? {
            WsMessage::Text(t) => t,
            WsMessage::Close(f) => bail!("closed by the server: {f:?}"),
            _ => continue,
        };
        on_message(text.as_str(), now, &rec, &started, &mut permit)?;
    }
}

async fn sse(
    api: SocketAddr,
    pool: &PoolId,
    rec: Arc<Record>,
    started: Arc<AtomicUsize>,
    permit: tokio::sync::OwnedSemaphorePermit,
    cancel: CancellationToken,
) -> Result<()> {
    let mut s = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(api))
        .await
        .context("connect timed out")??;
    s.set_nodelay(true)?;
    let req = format!(
        "GET /v1/pools/{}/{}/events HTTP/1.1\r\nHost: {api}\r\nAccept: text/event-stream\r\n\r\n",
        pool.namespace, pool.name
    );
    s.write_all(req.as_bytes()).await?;
    let mut lines = BufReader::new(s).lines();
    let mut permit = Some(permit);
    loop {
        let line = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            l = lines.next_line() => l?,
        };
        let now = Instant::now();
        let Some(line) = line else {
            bail!("the server closed the event stream");
        };
        // Chunked transfer framing lines are interleaved; only `data:` lines matter, and
        // the server writes each event as one chunk, so they are never split.
        if let Some(data) = line.strip_prefix("data: ") {
            on_message(data, now, &rec, &started, &mut permit)?;
        } else if line.starts_with("HTTP/1.1 ") && !line.starts_with("HTTP/1.1 200") {
            bail!("SSE refused: {line}");
        }
    }
}

fn on_message(
    text: &str,
    now: Instant,
    rec: &Record,
    started: &AtomicUsize,
    permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<()> {
    let head: Head<'_> = serde_json::from_str(text).context("malformed push message")?;
    match head.kind {
        // The first message is the snapshot: the subscriber has started.
        "snapshot" if permit.take().is_some() => {
            started.fetch_add(1, Ordering::Relaxed);
        }
        "delta" => rec.push(head.revision.context("delta without revision")?, now),
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
