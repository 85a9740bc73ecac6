//! The one push session driver behind WebSocket and SSE (docs/DESIGN.md, "WebSocket
//! messages"), built for fan-out: a revision's frame is encoded once, framed once per
//! transport, and written as the same bytes to every subscriber's socket.
//!
//! Two writers share a subscriber's socket, never at the same time (its [`Slot`] says
//! which one, under a lock):
//!
//! - **The pool's fan-out writer** ([`super::fanout`]) writes every new revision to all
//!   *live* subscribers: one non-blocking write per socket, no task wake-up, no timer, no
//!   allocation or validation per subscriber. A socket that cannot take the whole frame is
//!   *parked*: the rest of the frame stays with it and its session takes over.
//! - **The session** (one task per subscriber, [`run`]) writes the first frames (snapshot
//!   or resume deltas), catches a parked subscriber up (deltas from the log, or a fresh
//!   snapshot — counted as a reset) with the write timeout armed, then hands it back to the
//!   writer. It also reads the client's bytes only when the socket is readable, answers
//!   pings, sends heartbeats, and closes: on removal, misbehaviour or shutdown.
//!
//! Transports only frame ([`Transport`]): WebSocket text frames ([`super::ws`]), SSE
//! `id:`/`data:` events and `: heartbeat` comments ([`super::sse`]).
//!
//! Slow consumers: a subscriber's queue is its socket buffer plus at most one frame's rest;
//! one that falls behind skips to the latest state through its `Subscription`. A write the
//! socket has not taken within the write timeout ends the session and drops the connection
//! ([`SessionEnd::WriteFailed`]). A client that vanished without a reset (dead node,
//! pulled cable) on a quiet pool never fills its socket, so the socket also gets the write
//! timeout as `TCP_USER_TIMEOUT`: the kernel drops the connection once sent data (a
//! heartbeat at the latest) has gone unacknowledged that long, and the session ends. Either
//! way a dead client frees its slot in bounded time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::client_addr::ClientIp;
use super::error::ApiError;
use super::fanout::{self, Registration};
use super::limits::Permit;
use super::serve::{ConnectionHandle, Socket};
use super::{ApiState, WRITE_TIMEOUT};
use crate::metrics::{Metrics, TransportLabels};
use origin_discovery_core::hub::{Encoded, Frame, FrameKind, PoolChannel, Subscription, Wire};

/// Close codes of push sessions (WebSocket close frames; SSE streams just end).
pub mod close {
    /// Normal closure: the pool was removed.
    pub const NORMAL: u16 = 1000;
    /// Going away: the server shuts down.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error: a frame RFC 6455 does not allow from a client.
    pub const PROTOCOL: u16 = 1002;
    /// A text message that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// Policy violation: the client sent something that is not a control message.
    pub const POLICY: u16 = 1008;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
}

/// Subscriber transports, as named in metrics (`transport` label) and the limiter.
pub mod transport {
    /// WebSocket push.
    pub const WEBSOCKET: &str = "websocket";
    /// Server-Sent Events push.
    pub const SSE: &str = "sse";
    /// A long-poll waiting for a revision.
    pub const LONGPOLL: &str = "longpoll";
}

/// How long a polite close may take: writing the close frame, then waiting for the
/// client's answer.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes read from a client per readiness event (clients send ≤ 1 KiB control messages).
const READ_CHUNK: usize = 2048;

/// What the client did, as a transport's [`Reader`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A `{"type":"ping"}` control message: answered with a pong at the current revision.
    Ping,
    /// Transport-level bytes to send back (a WebSocket pong frame).
    Reply(Bytes),
    /// The client closed (a WebSocket close frame, with its code if any): answered, then
    /// the session ends.
    Closed(Option<u16>),
    /// Something not allowed: close with this code and reason.
    Violation(u16, &'static str),
    /// Beyond anything the transport accepts (a frame over its hard limit): the
    /// connection is dropped at once.
    Drop,
}

/// A transport's parser of client bytes. Bounded: it keeps at most one small frame's
/// worth of bytes between reads.
pub trait Reader: Default + Send + 'static {
    /// Consumes bytes the client sent, in order, and reports what they ask for.
    fn input(&mut self, data: &[u8], out: &mut Vec<Incoming>);
    /// After our close: consumes bytes until the client's close answer; true once it came.
    fn input_closing(&mut self, data: &[u8]) -> bool;
}

/// One push transport: how messages are framed and what client bytes mean. No I/O.
pub trait Transport: Send + Sync + 'static {
    /// Name in metrics and the limiter ([`transport`]).
    const NAME: &'static str;
    /// The cache slot of the transport's framing in every [`Encoded`] message.
    const WIRE: Wire;
    /// Written once, in front of the first frame.
    const PREAMBLE: &'static [u8];
    /// Whether a polite close waits for the client's answer (WebSocket's handshake).
    const CLOSE_HANDSHAKE: bool;
    /// The parser of client bytes.
    type Reader: Reader;
    /// Frames one message. Called once per message: the bytes are shared by every
    /// subscriber of the transport.
    fn frame(message: &Encoded, epoch: &str) -> Bytes;
    /// A heartbeat for a subscriber at `revision`.
    fn heartbeat(revision: u64) -> Bytes;
    /// The answer to a `{"type":"ping"}` at `revision`, if the transport has one.
    fn pong(revision: u64) -> Option<Bytes>;
    /// A close frame, if the transport has one (SSE streams just end).
    fn close(code: u16, reason: &str) -> Option<Bytes>;
}

/// Why a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client closed or went away.
    ClientGone,
    /// We closed with this code.
    Closed(u16),
    /// A frame could not be written in time (dead or hopelessly slow subscriber).
    WriteFailed,
}

/// What a session needs besides its socket and subscription. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionContext(Arc<ContextInner>);

#[derive(Clone, Debug)]
struct ContextInner {
    heartbeat: Duration,
    write_timeout: Duration,
    shutdown: CancellationToken,
    // The two families a session records into, not all of `Metrics`: every session
    // holds its context.
    push_latency: Family<TransportLabels, Histogram, fn() -> Histogram>,
    resets: Family<TransportLabels, Counter>,
}

impl SessionContext {
    /// A context recording into `metrics`, with the [`WRITE_TIMEOUT`].
    pub fn new(heartbeat: Duration, shutdown: CancellationToken, metrics: &Metrics) -> Self {
        Self::with(heartbeat, WRITE_TIMEOUT, shutdown, metrics)
    }

    /// The context of the API's sessions.
    pub fn from_state(state: &ApiState) -> Self {
        Self::with(
            state.config.heartbeat_interval,
            state.config.write_timeout,
            state.shutdown.clone(),
            &state.metrics,
        )
    }

    fn with(
        heartbeat: Duration,
        write_timeout: Duration,
        shutdown: CancellationToken,
        metrics: &Metrics,
    ) -> Self {
        Self(Arc::new(ContextInner {
            heartbeat,
            write_timeout,
            shutdown,
            push_latency: metrics.push_latency.clone(),
            resets: metrics.resets.clone(),
        }))
    }
}

/// Admits one subscriber of `transport` from `ip` under the limits, or refuses it (429,
/// counted in `rejected_subscribers_total`). The permit keeps the `subscribers` gauge.
pub fn admit(
    state: &ApiState,
    ip: std::net::IpAddr,
    transport: &'static str,
) -> Result<Permit, ApiError> {
    let labels = TransportLabels { transport };
    let gauge = state.metrics.subscribers.get_or_create(&labels).clone();
    state.limiter.acquire(ip, gauge).inspect_err(|e| {
        state.metrics.rejected.get_or_create(&labels).inc();
        // The address the limit counted (behind trusted proxies, the forwarded one); debug,
        // since a flood of refusals must not become a flood of log lines.
        tracing::debug!(client = %ip, transport, error = %e, "subscriber refused");
    })
}

/// Admits a subscriber of `T` from `client` (429 beyond the limits) and subscribes it to
/// `channel`; once hyper has written the response head, the connection's socket goes to a
/// session of `T` that holds the admission until it ends.
pub fn start<T: Transport>(
    state: &ApiState,
    connection: &ConnectionHandle,
    client: ClientIp,
    channel: Arc<PoolChannel>,
    resume: Option<(String, u64)>,
) -> Result<(), ApiError>
where
    T::Reader: Sync,
{
    let permit = admit(state, client.0, T::NAME)?;
    let sub = Subscription::new(channel, resume.as_ref().map(|(e, r)| (e.as_str(), *r)));
    let ctx = SessionContext::from_state(state);
    let sessions = state.sessions.clone();
    connection.take_over(Box::new(move |socket, early| {
        sessions.spawn(async move {
            let _permit = permit;
            let end = run::<T>(socket, early, sub, &ctx).await;
            tracing::debug!(%client, transport = T::NAME, ?end, "push session ended");
        });
    }));
    Ok(())
}

/// Has the kernel drop `stream` once data sent on it stays unacknowledged for `after`
/// (`TCP_USER_TIMEOUT`, Linux; see the module docs). A failure only costs that bound, so
/// it is logged, not fatal.
pub(crate) fn drop_when_unacknowledged(stream: &tokio::net::TcpStream, after: Duration) {
    #[cfg(target_os = "linux")]
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(after)) {
        tracing::debug!(error = %e, "TCP_USER_TIMEOUT not set on a push socket");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (stream, after);
}

/// Who writes to a subscriber's socket now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Its session (first frames, catching up, flushing `pending`, closing); the
    /// fan-out writer leaves it alone.
    Session,
    /// The pool's fan-out writer.
    Live,
    /// The writer sent the pool's removal and the close frame (their rest, if the socket
    /// was full, is `pending`); the session finishes the close.
    Removed,
    /// A write failed: the connection is dead.
    Failed,
}

/// A subscriber's write state, shared by its session and the fan-out writer.
#[derive(Debug)]
pub(crate) struct Slot {
    pub mode: Mode,
    /// Revision the subscriber has been sent (or has in `pending`).
    pub revision: u64,
    /// Stale flag it has been sent.
    pub stale: bool,
    /// The unwritten rest of a frame the socket did not take whole.
    pub pending: Option<Bytes>,
    /// For `pending`: when the watch event of its delta arrived (push latency).
    pub pending_received: Option<std::time::Instant>,
    /// When something was last written (heartbeats are sent only after a quiet interval).
    pub last_write: Instant,
}

/// One subscriber as the fan-out writer sees it.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub socket: Socket,
    pub slot: Mutex<Slot>,
    /// Set by the writer when it parked the subscriber, removed the pool, or failed.
    pub wake: Notify,
    pub push_latency: Histogram,
}

impl Subscriber {
    pub fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What became of a write attempted without waiting.
pub(crate) enum Attempt {
    /// The socket took it all.
    Written,
    /// The socket took `n` bytes (maybe 0) and is full.
    Partial(usize),
    /// The connection is dead.
    Failed,
}

/// Writes `pieces` (in order) to `socket` without waiting.
pub(crate) fn try_write(socket: &Socket, pieces: &[&[u8]]) -> Attempt {
    const MAX_PIECES: usize = 4;
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let result = match pieces {
        [one] => socket.stream().try_write(one),
        _ if pieces.len() <= MAX_PIECES => {
            let mut slices = [std::io::IoSlice::new(&[]); MAX_PIECES];
            for (slice, piece) in slices.iter_mut().zip(pieces) {
                *slice = std::io::IoSlice::new(piece);
            }
            socket.stream().try_write_vectored(&slices[..pieces.len()])
        }
        _ => socket.stream().try_write(&rest(pieces, 0)),
    };
    match result {
        Ok(n) if n == total => Attempt::Written,
        Ok(0) if total > 0 => Attempt::Failed,
        Ok(n) => Attempt::Partial(n),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Attempt::Partial(0),
        Err(_) => Attempt::Failed,
    }
}

/// The bytes of `pieces` after the first `skip`, in one buffer.
pub(crate) fn rest(pieces: &[&[u8]], mut skip: usize) -> Bytes {
    let mut out = BytesMut::new();
    for p in pieces {
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        out.extend_from_slice(&p[skip..]);
        skip = 0;
    }
    out.freeze()
}

/// Runs one subscription over `socket` (the client's bytes hyper had already read are
/// `early`) until the client leaves, the pool is removed, the client misbehaves, a write
/// times out, or the process shuts down.
pub async fn run<T: Transport>(
    socket: Socket,
    early: Bytes,
    sub: Subscription,
    ctx: &SessionContext,
) -> SessionEnd {
    let labels = TransportLabels { transport: T::NAME };
    let push_latency = ctx.0.push_latency.get_or_create(&labels).clone();
    let resets = ctx.0.resets.get_or_create(&labels).clone();
    let channel = sub.channel().clone();
    drop_when_unacknowledged(socket.stream(), ctx.0.write_timeout);
    let me = Arc::new(Subscriber {
        socket,
        slot: Mutex::new(Slot {
            mode: Mode::Session,
            revision: sub.revision(),
            stale: sub.stale(),
            pending: None,
            pending_received: None,
            last_write: Instant::now(),
        }),
        wake: Notify::new(),
        push_latency,
    });
    let registration = fanout::register::<T>(&channel, me.clone());
    let mut session = Session::<T> {
        epoch: channel.current().snapshot.epoch.clone(),
        me,
        ctx,
        resets,
        reader: T::Reader::default(),
        incoming: Vec::new(),
        first: true,
        _registration: registration,
    };
    session.reader.input(&early, &mut session.incoming);
    // `early` is a view into hyper's read buffer (8 KiB): held across the session, it
    // would be most of an idle subscriber's memory.
    drop(early);
    session.drive(sub).await
}

struct Session<'a, T: Transport> {
    me: Arc<Subscriber>,
    ctx: &'a SessionContext,
    epoch: Arc<str>,
    resets: Counter,
    reader: T::Reader,
    incoming: Vec<Incoming>,
    /// Nothing written yet (the preamble goes first; a snapshot then is no reset).
    first: bool,
    _registration: Registration<T>,
}

/// What woke an idle session.
enum Event {
    /// Process shutdown.
    Shutdown,
    /// The fan-out writer parked the subscriber, removed the pool, or failed to write.
    Woken,
    /// The client sent something (false: the socket failed).
    Readable(bool),
    /// The heartbeat interval.
    Tick,
}

/// How a step of the session ended, when it did not end the session.
enum Next {
    /// Keep going as before.
    Continue,
    /// The session has to write again (a live write was parked): catch up first.
    CatchUp,
}

impl<T: Transport> Session<'_, T> {
    async fn drive(&mut self, first: Subscription) -> SessionEnd {
        // An idle session waits in the `select!` below; what it awaits only now and then
        // (catching up, answering the client, closing) is boxed while it runs, so that the
        // future every idle subscriber keeps holds only the `select!` state.
        let mut sub = Some(first);
        let shutdown = self.ctx.0.shutdown.clone();
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let heartbeat = self.ctx.0.heartbeat;
        let mut tick = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if let Some(mut s) = sub.take() {
                if let Err(end) = Box::pin(self.catch_up(&mut s)).await {
                    return end;
                }
            }
            if !self.incoming.is_empty() {
                match Box::pin(self.handle_incoming()).await {
                    Ok(Next::Continue) => {}
                    Ok(Next::CatchUp) => {
                        sub = Some(self.resume());
                        continue;
                    }
                    Err(end) => return end,
                }
            }
            let event = tokio::select! {
                biased;
                _ = &mut cancelled => Event::Shutdown,
                _ = self.me.wake.notified() => Event::Woken,
                // `poll_read_ready` keeps only the latest waker: it replaces the one hyper's
                // connection task left on this socket, which would otherwise keep that
                // finished task's memory (≈ 1.5 KiB) alive for the whole session.
                readable = std::future::poll_fn(|cx| self.me.socket.stream().poll_read_ready(cx)) => {
                    Event::Readable(readable.is_ok())
                }
                _ = tick.tick() => Event::Tick,
            };
            match event {
                Event::Shutdown => {
                    return Box::pin(self.close_politely(close::GOING_AWAY, "going away")).await;
                }
                Event::Woken => {
                    let mode = self.me.slot().mode;
                    match mode {
                        Mode::Live => {}
                        Mode::Session => sub = Some(self.resume()),
                        Mode::Removed => return Box::pin(self.finish_removed()).await,
                        Mode::Failed => return SessionEnd::WriteFailed,
                    }
                }
                Event::Readable(ok) => {
                    if !ok || !self.read_input() {
                        return SessionEnd::ClientGone;
                    }
                }
                Event::Tick => match self.heartbeat() {
                    Ok(Next::Continue) => {}
                    Ok(Next::CatchUp) => sub = Some(self.resume()),
                    Err(end) => return end,
                },
            }
        }
    }

    /// A subscription from where the subscriber is (after the writer parked it).
    fn resume(&self) -> Subscription {
        let (revision, stale) = {
            let slot = self.me.slot();
            (slot.revision, slot.stale)
        };
        let channel = self._registration.channel().clone();
        Subscription::resume_at(channel, revision, stale)
    }

    /// Writes what the subscriber is missing until it is current, then hands it to the
    /// fan-out writer.
    async fn catch_up(&mut self, sub: &mut Subscription) -> Result<(), SessionEnd> {
        self.flush_pending().await?;
        loop {
            if self.ctx.0.shutdown.is_cancelled() {
                return Err(self.close_politely(close::GOING_AWAY, "going away").await);
            }
            while let Some(frame) = sub.try_next() {
                self.send_frame(&frame).await?;
                if frame.kind == FrameKind::Removed {
                    return Err(self.close_politely(close::NORMAL, "pool removed").await);
                }
            }
            let mut slot = self.me.slot();
            if sub.is_current() {
                slot.mode = Mode::Live;
                slot.revision = sub.revision();
                slot.stale = sub.stale();
                return Ok(());
            }
        }
    }

    /// Writes the rest of a frame the writer could not write whole.
    async fn flush_pending(&mut self) -> Result<(), SessionEnd> {
        let (pending, received) = {
            let mut slot = self.me.slot();
            (slot.pending.take(), slot.pending_received.take())
        };
        if let Some(bytes) = pending {
            self.write_all(bytes, self.ctx.0.write_timeout).await?;
            if let Some(received) = received {
                self.me
                    .push_latency
                    .observe(received.elapsed().as_secs_f64());
            }
            self.me.slot().last_write = Instant::now();
        }
        Ok(())
    }

    async fn send_frame(&mut self, frame: &Frame) -> Result<(), SessionEnd> {
        if frame.kind == FrameKind::Snapshot && !self.first {
            self.resets.inc();
        }
        let epoch = &self.epoch;
        let framed = frame
            .message
            .framed(T::WIRE, |m| T::frame(m, epoch))
            .clone();
        let bytes = if self.first && !T::PREAMBLE.is_empty() {
            let mut b = BytesMut::with_capacity(T::PREAMBLE.len() + framed.len());
            b.extend_from_slice(T::PREAMBLE);
            b.extend_from_slice(&framed);
            b.freeze()
        } else {
            framed
        };
        self.first = false;
        self.write_all(bytes, self.ctx.0.write_timeout).await?;
        if let Some(received) = frame.received {
            self.me
                .push_latency
                .observe(received.elapsed().as_secs_f64());
        }
        self.me.slot().last_write = Instant::now();
        Ok(())
    }

    /// Writes `bytes` whole, waiting for the socket at most `timeout`. Only while the
    /// session writes ([`Mode::Session`]): the fan-out writer leaves the socket alone.
    async fn write_all(&self, mut bytes: Bytes, timeout: Duration) -> Result<(), SessionEnd> {
        let mut deadline = None;
        loop {
            match try_write(&self.me.socket, &[&bytes]) {
                Attempt::Written => return Ok(()),
                Attempt::Partial(n) => bytes.advance(n),
                Attempt::Failed => return Err(SessionEnd::WriteFailed),
            }
            // The timer is armed only when the socket is full.
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
            match tokio::time::timeout_at(deadline, self.me.socket.stream().writable()).await {
                Ok(Ok(())) => {}
                _ => return Err(SessionEnd::WriteFailed),
            }
        }
    }

    /// Writes `bytes` while the subscriber may be live: under its lock, without waiting.
    /// If the socket does not take them whole, the session takes over writing
    /// ([`Next::CatchUp`]).
    fn write_now(&self, bytes: Bytes) -> Result<Next, SessionEnd> {
        let mut slot = self.me.slot();
        match slot.mode {
            Mode::Live => {}
            // The writer parked it or ended it; the wake-up that follows handles that, and
            // this message is dropped (a heartbeat or an answer that is moot now).
            Mode::Session | Mode::Removed | Mode::Failed => return Ok(Next::Continue),
        }
        match try_write(&self.me.socket, &[&bytes]) {
            Attempt::Written => {
                slot.last_write = Instant::now();
                Ok(Next::Continue)
            }
            Attempt::Partial(n) => {
                slot.mode = Mode::Session;
                slot.pending = Some(bytes.slice(n..));
                Ok(Next::CatchUp)
            }
            Attempt::Failed => {
                slot.mode = Mode::Failed;
                Err(SessionEnd::WriteFailed)
            }
        }
    }

    fn heartbeat(&self) -> Result<Next, SessionEnd> {
        let bytes = {
            let slot = self.me.slot();
            if slot.mode != Mode::Live || slot.last_write.elapsed() < self.ctx.0.heartbeat {
                return Ok(Next::Continue);
            }
            T::heartbeat(slot.revision)
        };
        self.write_now(bytes)
    }

    /// Reads what the client sent (the socket is readable); false if it went away.
    fn read_input(&mut self) -> bool {
        let mut buf = [0u8; READ_CHUNK];
        match self.me.socket.stream().try_read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.reader.input(&buf[..n], &mut self.incoming);
                true
            }
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }

    /// Acts on what the client asked for, in order.
    async fn handle_incoming(&mut self) -> Result<Next, SessionEnd> {
        let mut next = Next::Continue;
        let incoming = std::mem::take(&mut self.incoming);
        for action in incoming {
            let bytes = match action {
                Incoming::Ping => {
                    let revision = self.me.slot().revision;
                    match T::pong(revision) {
                        Some(b) => b,
                        None => continue,
                    }
                }
                Incoming::Reply(bytes) => bytes,
                Incoming::Closed(code) => {
                    // Answer with the client's code (RFC 6455, 5.5.1), then hang up.
                    let code = code.unwrap_or(close::NORMAL);
                    self.take_socket().await;
                    if let Some(frame) = T::close(code, "") {
                        let _ = self.write_all(frame, CLOSE_TIMEOUT).await;
                    }
                    return Err(SessionEnd::ClientGone);
                }
                Incoming::Violation(code, reason) => {
                    return Err(self.close_politely(code, reason).await);
                }
                Incoming::Drop => return Err(SessionEnd::ClientGone),
            };
            if matches!(next, Next::CatchUp) {
                // Parked: whatever else comes is written after the catch-up, in order.
                self.write_all(bytes, self.ctx.0.write_timeout).await?;
                continue;
            }
            next = self.write_now(bytes)?;
            if matches!(next, Next::CatchUp) {
                self.flush_pending().await?;
            }
        }
        Ok(next)
    }

    /// Makes the session the socket's only writer, and writes what the fan-out writer
    /// left unwritten (bounded by [`CLOSE_TIMEOUT`]; the connection is closing anyway).
    async fn take_socket(&mut self) {
        let pending = {
            let mut slot = self.me.slot();
            if slot.mode == Mode::Live {
                slot.mode = Mode::Session;
            }
            slot.pending.take()
        };
        if let Some(bytes) = pending {
            let _ = self.write_all(bytes, CLOSE_TIMEOUT).await;
        }
    }

    /// Ends the session with a close frame and, for WebSocket, waits (bounded) for the
    /// client's answer.
    async fn close_politely(&mut self, code: u16, reason: &'static str) -> SessionEnd {
        self.take_socket().await;
        if self.me.slot().mode != Mode::Failed {
            if let Some(frame) = T::close(code, reason) {
                if self.write_all(frame, CLOSE_TIMEOUT).await.is_ok() && T::CLOSE_HANDSHAKE {
                    self.await_close_answer().await;
                }
            }
        }
        SessionEnd::Closed(code)
    }

    /// The writer sent the removal and the close frame (maybe not all of it).
    async fn finish_removed(&mut self) -> SessionEnd {
        let pending = self.me.slot().pending.take();
        if let Some(bytes) = pending {
            if self.write_all(bytes, CLOSE_TIMEOUT).await.is_err() {
                return SessionEnd::Closed(close::NORMAL);
            }
        }
        if T::CLOSE_HANDSHAKE {
            self.await_close_answer().await;
        }
        SessionEnd::Closed(close::NORMAL)
    }

    /// Reads until the client's close answer or its end of stream, for at most
    /// [`CLOSE_TIMEOUT`]: closing a socket with unread input would reset the connection,
    /// and the client could lose our close frame.
    async fn await_close_answer(&mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            loop {
                if self.me.socket.stream().readable().await.is_err() || self.read_closing() {
                    return;
                }
            }
        })
        .await;
    }

    /// Reads while closing; true once the client answered, left, or failed. (A sync
    /// function: the read buffer lives on the stack, not in every session's future.)
    fn read_closing(&mut self) -> bool {
        let mut buf = [0u8; READ_CHUNK];
        match self.me.socket.stream().try_read(&mut buf) {
            Ok(0) => true,
            Ok(n) => self.reader.input_closing(&buf[..n]),
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn drop_when_unacknowledged_sets_the_sockets_tcp_user_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (_client, (server, _)) = (client.unwrap(), accepted.unwrap());
        let timeout = || socket2::SockRef::from(&server).tcp_user_timeout().unwrap();
        assert_eq!(
            timeout(),
            None,
            "the kernel default: retransmit for ~15 min"
        );
        drop_when_unacknowledged(&server, Duration::from_secs(7));
        assert_eq!(timeout(), Some(Duration::from_secs(7)));
    }
}
