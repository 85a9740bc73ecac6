//! The fan-out writer: per pool and transport, tasks that write each new revision to every
//! live subscriber ([`super::push`]).
//!
//! A pass frames the revision once (the delta, plus the view's stale or removed message
//! and the close frame when the view carries them), then walks the subscribers: for each
//! live one, one non-blocking write of the same bytes. Nothing per subscriber is
//! allocated, validated or timed; a socket that is full is parked (its session catches it
//! up), one that failed is ended. The subscribers are split over [`shards`] writer tasks so
//! that a fan-out runs on every runtime worker at once.
//!
//! Bounds: one fan-out per pool and transport that has had push subscribers, each with
//! [`shards`] tasks, until the pool is removed; subscribers are bounded by the limiter.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::push::{rest, try_write, Attempt, Mode, Subscriber, Transport};
use origin_discovery_core::hub::{PoolChannel, PoolView, Wire, MAX_CATCH_UP};

/// Most subscribers a pass takes from its shard's list per lock (the lock is never held
/// while writing).
const CHUNK: usize = 128;

/// Writer tasks per fan-out: one per runtime worker (at most 8).
fn shards() -> usize {
    tokio::runtime::Handle::try_current()
        .map(|h| h.metrics().num_workers())
        .unwrap_or(1)
        .clamp(1, 8)
}

type Key = (usize, Wire);

/// The fan-outs of this process, by pool channel and transport. An entry holds its
/// channel alive (inside the fan-out), so a channel's address is never reused while the
/// entry exists; writers remove their entry when they end.
static FANOUTS: LazyLock<Mutex<HashMap<Key, Weak<dyn Any + Send + Sync>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// One pool's fan-out over one transport.
pub(crate) struct Fanout<T> {
    channel: Arc<PoolChannel>,
    epoch: Arc<str>,
    shards: Box<[Mutex<Slab>]>,
    next_shard: AtomicUsize,
    writers: AtomicUsize,
    _transport: PhantomData<fn() -> T>,
}

/// Subscribers of one shard; removal is O(1) by key.
#[derive(Default)]
struct Slab {
    entries: Vec<Option<Arc<Subscriber>>>,
    free: Vec<usize>,
}

impl Slab {
    fn insert(&mut self, sub: Arc<Subscriber>) -> usize {
        match self.free.pop() {
            Some(key) => {
                self.entries[key] = Some(sub);
                key
            }
            None => {
                self.entries.push(Some(sub));
                self.entries.len() - 1
            }
        }
    }

    fn remove(&mut self, key: usize) {
        if self.entries.get_mut(key).and_then(Option::take).is_some() {
            self.free.push(key);
        }
    }
}

/// A subscriber's place in its fan-out; dropping it removes the subscriber (and, with
/// the session's own handle, closes its socket).
pub(crate) struct Registration<T: Transport> {
    fanout: Arc<Fanout<T>>,
    shard: usize,
    key: usize,
}

impl<T: Transport> Registration<T> {
    /// The pool's channel.
    pub fn channel(&self) -> &Arc<PoolChannel> {
        &self.fanout.channel
    }
}

impl<T: Transport> Drop for Registration<T> {
    fn drop(&mut self) {
        lock(&self.fanout.shards[self.shard]).remove(self.key);
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds a subscriber (in [`Mode::Session`]: the writer skips it until its session hands
/// it over) to the fan-out of `channel` over `T`, starting the fan-out if needed.
pub(crate) fn register<T: Transport>(
    channel: &Arc<PoolChannel>,
    sub: Arc<Subscriber>,
) -> Registration<T> {
    let fanout = fanout::<T>(channel);
    let shard = fanout.next_shard.fetch_add(1, Ordering::Relaxed) % fanout.shards.len();
    let key = lock(&fanout.shards[shard]).insert(sub);
    Registration { fanout, shard, key }
}

fn fanout<T: Transport>(channel: &Arc<PoolChannel>) -> Arc<Fanout<T>> {
    let key = (Arc::as_ptr(channel) as usize, T::WIRE);
    let mut all = lock(&FANOUTS);
    if let Some(existing) = all.get(&key).and_then(Weak::upgrade) {
        if let Ok(fanout) = existing.downcast::<Fanout<T>>() {
            return fanout;
        }
    }
    let view = channel.current();
    let shards = shards();
    let fanout = Arc::new(Fanout::<T> {
        channel: channel.clone(),
        epoch: view.snapshot.epoch.clone(),
        shards: (0..shards).map(|_| Mutex::new(Slab::default())).collect(),
        next_shard: AtomicUsize::new(0),
        writers: AtomicUsize::new(shards),
        _transport: PhantomData,
    });
    let erased: Arc<dyn Any + Send + Sync> = fanout.clone();
    all.insert(key, Arc::downgrade(&erased));
    for shard in 0..shards {
        tokio::spawn(write_loop(fanout.clone(), shard, view.clone()));
    }
    fanout
}

/// Removes the fan-out's registry entry when its last writer ends (also when the runtime
/// drops the writers).
struct WriterExit<T: Transport>(Arc<Fanout<T>>);

impl<T: Transport> Drop for WriterExit<T> {
    fn drop(&mut self) {
        if self.0.writers.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let key = (Arc::as_ptr(&self.0.channel) as usize, T::WIRE);
        let mut all = lock(&FANOUTS);
        let ours = all.get(&key).is_some_and(|w| {
            std::ptr::addr_eq(
                w.as_ptr(),
                Arc::as_ptr(&self.0) as *const (dyn Any + Send + Sync),
            )
        });
        if ours {
            all.remove(&key);
        }
    }
}

/// One shard's writer: a pass per new view, until the pool is removed.
async fn write_loop<T: Transport>(fanout: Arc<Fanout<T>>, shard: usize, start: Arc<PoolView>) {
    let _exit = WriterExit(fanout.clone());
    let mut rx = fanout.channel.watch();
    // Views before `start` were written by the subscribers' sessions.
    rx.mark_changed();
    let mut from = start.snapshot.revision;
    let mut pass = Pass::default();
    loop {
        if rx.changed().await.is_err() {
            return;
        }
        let view = rx.borrow_and_update().clone();
        pass.prepare::<T>(&fanout, &view, from);
        pass.run(&fanout.shards[shard], &view);
        from = from.max(view.snapshot.revision);
        if view.removed {
            return;
        }
    }
}

/// What one pass writes, framed once.
#[derive(Default)]
struct Pass {
    /// Revision of the view.
    target: u64,
    /// The writer's previous target: live subscribers are normally there.
    from: u64,
    /// The frames of revisions `from+1 ..= target`, concatenated, if the log covers them.
    deltas: Option<Bytes>,
    /// `starts[i]`: offset in `deltas` of revision `from + 1 + i`.
    starts: Vec<usize>,
    /// The view's stale message, for subscribers whose flag differs.
    stale: Bytes,
    /// The removal message and the close frame.
    removed: Option<Bytes>,
    /// The triggering watch event of `target`'s delta (push latency).
    received: Option<std::time::Instant>,
    /// Taken from the shard per lock.
    chunk: Vec<Arc<Subscriber>>,
}

impl Pass {
    fn prepare<T: Transport>(&mut self, fanout: &Fanout<T>, view: &PoolView, from: u64) {
        let epoch = &*fanout.epoch;
        let frame = |m: &origin_discovery_core::hub::Encoded| {
            m.framed(T::WIRE, |m| T::frame(m, epoch)).clone()
        };
        self.target = view.snapshot.revision;
        self.from = from;
        self.starts.clear();
        self.received = None;
        self.deltas = if self.target <= from {
            Some(Bytes::new())
        } else if self.target == from + 1 {
            view.delta.as_ref().map(|d| {
                self.starts.push(0);
                self.received = view.received;
                frame(d)
            })
        } else {
            None
        };
        if self.deltas.is_none() && self.target > from {
            // The writer fell behind by several revisions: replay them from the log.
            let logged = fanout.channel.deltas_after(from).filter(|d| {
                // Offsets below are by revision: the log must be gapless from `from`.
                d.iter().zip(from + 1..).all(|((r, _), want)| *r == want)
                    && d.len() <= MAX_CATCH_UP
                    && d.iter().any(|(r, _)| *r == self.target)
            });
            if let Some(logged) = logged {
                let mut all = BytesMut::new();
                for (revision, message) in logged.iter().filter(|(r, _)| *r <= self.target) {
                    self.starts.push(all.len());
                    all.extend_from_slice(&frame(message));
                    if *revision == self.target {
                        self.received = view.received;
                    }
                }
                self.deltas = Some(all.freeze());
            }
        }
        self.stale = frame(&view.stale_message());
        self.removed = view.removed.then(|| {
            let mut tail = BytesMut::from(&frame(&view.removed_message())[..]);
            if let Some(close) = T::close(super::push::close::NORMAL, "pool removed") {
                tail.extend_from_slice(&close);
            }
            tail.freeze()
        });
    }

    fn run(&mut self, shard: &Mutex<Slab>, view: &PoolView) {
        let now = Instant::now();
        let stale = view.snapshot.stale;
        let mut next = 0;
        loop {
            {
                let slab = lock(shard);
                if next >= slab.entries.len() {
                    break;
                }
                let end = (next + CHUNK).min(slab.entries.len());
                self.chunk
                    .extend(slab.entries[next..end].iter().flatten().cloned());
                next = end;
            }
            let mut chunk = std::mem::take(&mut self.chunk);
            for sub in chunk.drain(..) {
                self.deliver(&sub, stale, now);
            }
            self.chunk = chunk;
        }
    }

    fn deliver(&self, sub: &Subscriber, stale: bool, now: Instant) {
        let mut slot = sub.slot();
        if slot.mode != Mode::Live || slot.revision > self.target {
            // Not ours now, or already ahead (its session caught it up to a newer view).
            return;
        }
        let deltas: &[u8] = match (&self.deltas, slot.revision) {
            (_, r) if r == self.target => &[],
            (Some(d), r) if r >= self.from => &d[self.starts[(r - self.from) as usize]..],
            _ => {
                // A gap this pass cannot fill: the session catches up (log or snapshot).
                slot.mode = Mode::Session;
                drop(slot);
                sub.wake.notify_one();
                return;
            }
        };
        let mut pieces: [&[u8]; 3] = [&[]; 3];
        let mut n = 0;
        for piece in [
            deltas,
            if slot.stale != stale {
                &self.stale
            } else {
                &[]
            },
            self.removed.as_deref().unwrap_or_default(),
        ] {
            if !piece.is_empty() {
                pieces[n] = piece;
                n += 1;
            }
        }
        if n == 0 {
            return;
        }
        let pieces = &pieces[..n];
        let received = if deltas.is_empty() {
            None
        } else {
            self.received
        };
        slot.revision = self.target;
        slot.stale = stale;
        slot.last_write = now;
        let removed = self.removed.is_some();
        match try_write(&sub.socket, pieces) {
            Attempt::Written => {
                if let Some(received) = received {
                    sub.push_latency.observe(received.elapsed().as_secs_f64());
                }
                if !removed {
                    return;
                }
                slot.mode = Mode::Removed;
            }
            Attempt::Partial(written) => {
                slot.pending = Some(rest(pieces, written));
                slot.pending_received = received;
                slot.mode = if removed {
                    Mode::Removed
                } else {
                    Mode::Session
                };
            }
            Attempt::Failed => slot.mode = Mode::Failed,
        }
        drop(slot);
        sub.wake.notify_one();
    }
}
