//! The hub: the current state of every pool, published to readers and subscribers.
//!
//! Each pool has a `watch` channel holding an immutable [`PoolView`] per revision — the
//! latest state, not an event queue — plus a bounded log of recent deltas for resuming
//! subscribers. Every message is serialized once per revision ([`Encoded`], shared by every
//! subscriber), and framed once per wire format (a WebSocket frame, an SSE event) on first
//! use; snapshots, stale and removed messages are serialized lazily, on first request, and
//! then shared.
//!
//! Slow subscribers: a [`Subscription`] only ever holds the latest view. One that falls
//! behind catches up from the delta log when the gap is small and still logged, or gets a
//! fresh snapshot otherwise, so it never delays others and its memory never grows with the
//! number of revisions it missed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;

use crate::messages::Message;
use crate::model::{Origin, OriginState, PoolChange, PoolId, Snapshot};

/// Most deltas a lagging subscriber is replayed before a snapshot is cheaper.
pub const MAX_CATCH_UP: usize = 64;

/// The wire formats a message is framed in; each has one cache slot per [`Encoded`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wire {
    /// A WebSocket text frame (header + payload).
    WebSocket = 0,
    /// A Server-Sent Events event.
    Sse = 1,
}

const WIRES: usize = 2;

/// One push message, serialized once and shared by every subscriber it goes to, with one
/// lazily built copy per [`Wire`] (the transports frame a message once, not once per
/// subscriber). Cloning is a reference-count increment.
#[derive(Clone, Debug)]
pub struct Encoded(Arc<EncodedInner>);

#[derive(Debug)]
struct EncodedInner {
    json: Bytes,
    revision: u64,
    wires: [OnceLock<Bytes>; WIRES],
}

impl Encoded {
    /// Serializes `message`; `revision` is where a subscriber is after receiving it.
    pub fn new(message: &Message, revision: u64) -> Self {
        Self(Arc::new(EncodedInner {
            json: message.encode(),
            revision,
            wires: Default::default(),
        }))
    }

    /// The message's JSON text.
    pub fn json(&self) -> &Bytes {
        &self.0.json
    }

    /// The revision a subscriber is at after this message (the SSE event id's).
    pub fn revision(&self) -> u64 {
        self.0.revision
    }

    /// The message framed for `wire`: built by `frame` on the first call, shared by every
    /// later one. Each wire has one transport, so one framing function per slot.
    pub fn framed(&self, wire: Wire, frame: impl FnOnce(&Encoded) -> Bytes) -> &Bytes {
        self.0.wires[wire as usize].get_or_init(|| frame(self))
    }
}

/// One pool at one revision. Immutable once published.
#[derive(Debug)]
pub struct PoolView {
    /// The pool's list at this revision.
    pub snapshot: Snapshot,
    /// The pool is gone; this is its last view.
    pub removed: bool,
    /// The encoded delta message that produced this revision (`None` for a pool's first view).
    pub delta: Option<Encoded>,
    /// When the watch event behind this revision arrived (push latency start).
    pub received: Option<Instant>,
    snapshot_message: OnceLock<Encoded>,
    stale_message: OnceLock<Encoded>,
    removed_message: OnceLock<Encoded>,
    snapshot_body: OnceLock<Bytes>,
    etag: OnceLock<Bytes>,
}

impl PoolView {
    fn new(snapshot: Snapshot) -> Self {
        Self {
            snapshot,
            removed: false,
            delta: None,
            received: None,
            snapshot_message: OnceLock::new(),
            stale_message: OnceLock::new(),
            removed_message: OnceLock::new(),
            snapshot_body: OnceLock::new(),
            etag: OnceLock::new(),
        }
    }

    /// A copy for a new revision or flag, with fresh caches.
    fn derive(&self) -> Self {
        Self::new(self.snapshot.clone())
    }

    /// `{"type":"snapshot",…}` for WebSocket and SSE, serialized once.
    pub fn snapshot_message(&self) -> Encoded {
        self.snapshot_message
            .get_or_init(|| {
                Encoded::new(
                    &Message::Snapshot(self.snapshot.clone()),
                    self.snapshot.revision,
                )
            })
            .clone()
    }

    /// `{"type":"stale",…}` with this view's flag, for a subscriber at this revision,
    /// serialized once.
    pub fn stale_message(&self) -> Encoded {
        self.stale_message
            .get_or_init(|| stale_message(&self.snapshot, self.snapshot.revision))
            .clone()
    }

    /// `{"type":"removed",…}` at this revision, serialized once.
    pub fn removed_message(&self) -> Encoded {
        self.removed_message
            .get_or_init(|| {
                let snap = &self.snapshot;
                let message = Message::Removed {
                    pool: snap.pool.clone(),
                    epoch: snap.epoch.clone(),
                    revision: snap.revision,
                };
                Encoded::new(&message, snap.revision)
            })
            .clone()
    }

    /// The `GET /v1/pools/{ns}/{svc}` body, serialized once.
    pub fn snapshot_body(&self) -> Bytes {
        self.snapshot_body
            .get_or_init(|| {
                Bytes::from(serde_json::to_vec(&self.snapshot).expect("snapshots always serialize"))
            })
            .clone()
    }

    /// The `ETag` of this view: `"<epoch>-<revision>"`.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.snapshot.epoch, self.snapshot.revision)
    }

    /// [`Self::etag`] as shared bytes, formatted once.
    pub fn etag_bytes(&self) -> Bytes {
        self.etag.get_or_init(|| Bytes::from(self.etag())).clone()
    }
}

/// A pool's publication point.
#[derive(Debug)]
pub struct PoolChannel {
    tx: watch::Sender<Arc<PoolView>>,
    /// Recent deltas `(revision, message)`, oldest first, at most `capacity`.
    log: Mutex<VecDeque<(u64, Encoded)>>,
    capacity: usize,
}

impl PoolChannel {
    /// The current view.
    pub fn current(&self) -> Arc<PoolView> {
        self.tx.borrow().clone()
    }

    /// A receiver of future views (for long-polls and subscriptions).
    pub fn watch(&self) -> watch::Receiver<Arc<PoolView>> {
        self.tx.subscribe()
    }

    /// The logged deltas after `revision` up to the newest, if the log still covers them.
    pub fn deltas_after(&self, revision: u64) -> Option<Vec<(u64, Encoded)>> {
        let log = self.log.lock().expect("delta log lock poisoned");
        let newest = log
            .back()
            .map_or(self.current().snapshot.revision, |(r, _)| *r);
        if revision >= newest {
            return Some(Vec::new());
        }
        let first = log.front()?.0;
        if revision + 1 < first {
            return None;
        }
        Some(log.iter().filter(|(r, _)| *r > revision).cloned().collect())
    }

    fn publish(&self, view: PoolView) {
        if let Some(delta) = &view.delta {
            let mut log = self.log.lock().expect("delta log lock poisoned");
            if log.len() == self.capacity {
                log.pop_front();
            }
            log.push_back((view.snapshot.revision, delta.clone()));
        }
        self.tx.send_replace(Arc::new(view));
    }
}

/// Summary of a pool for `GET /v1/pools`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PoolSummary {
    /// Pool id.
    pub pool: PoolId,
    /// Current revision.
    pub revision: u64,
    /// Ready origins.
    pub ready: usize,
    /// Draining origins.
    pub draining: usize,
}

/// Every pool's channel. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Hub {
    epoch: Arc<str>,
    delta_log: usize,
    pools: RwLock<BTreeMap<PoolId, Arc<PoolChannel>>>,
    stale: AtomicBool,
    synced: watch::Sender<bool>,
}

impl Hub {
    /// An empty hub for process `epoch`, logging `delta_log` deltas per pool.
    pub fn new(epoch: impl Into<Arc<str>>, delta_log: usize) -> Self {
        Self {
            epoch: epoch.into(),
            delta_log: delta_log.max(1),
            pools: RwLock::new(BTreeMap::new()),
            stale: AtomicBool::new(false),
            synced: watch::Sender::new(false),
        }
    }

    /// The process epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// A pool's channel.
    pub fn pool(&self, id: &PoolId) -> Option<Arc<PoolChannel>> {
        self.pools
            .read()
            .expect("hub lock poisoned")
            .get(id)
            .cloned()
    }

    /// Every pool, sorted by id.
    pub fn summaries(&self) -> Vec<PoolSummary> {
        let pools = self.pools.read().expect("hub lock poisoned");
        pools
            .values()
            .map(|c| {
                let s = &c.current().snapshot;
                PoolSummary {
                    pool: s.pool.clone(),
                    revision: s.revision,
                    ready: s.count(OriginState::Ready),
                    draining: s.count(OriginState::Draining),
                }
            })
            .collect()
    }

    /// Current views of every pool.
    pub fn views(&self) -> Vec<Arc<PoolView>> {
        let pools = self.pools.read().expect("hub lock poisoned");
        pools.values().map(|c| c.current()).collect()
    }

    /// Whether every source has completed its first full list.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Records the first full sync (or its loss).
    pub fn set_synced(&self, synced: bool) {
        self.synced.send_replace(synced);
    }

    /// Whether pools are currently flagged stale.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// Flags every pool stale or fresh. Does not bump revisions: the lists did not change.
    pub fn set_stale(&self, stale: bool) {
        if self.stale.swap(stale, Ordering::Relaxed) == stale {
            return;
        }
        let pools = self.pools.read().expect("hub lock poisoned");
        for c in pools.values() {
            let mut view = c.current().derive();
            view.snapshot.stale = stale;
            c.publish(view);
        }
    }

    /// Publishes one index change. Called in commit order (under the index lock), so each
    /// pool's revisions are published in order.
    pub fn apply(&self, change: PoolChange) {
        match change {
            PoolChange::Added {
                pool,
                revision,
                origins,
            } => {
                let view = PoolView::new(Snapshot {
                    pool: pool.clone(),
                    epoch: self.epoch.clone(),
                    revision,
                    stale: self.is_stale(),
                    origins: origins.into(),
                });
                let (tx, _) = watch::channel(Arc::new(view));
                let channel = Arc::new(PoolChannel {
                    tx,
                    log: Mutex::new(VecDeque::new()),
                    capacity: self.delta_log,
                });
                let old = self
                    .pools
                    .write()
                    .expect("hub lock poisoned")
                    .insert(pool, channel);
                if let Some(old) = old {
                    old.publish(removed(&old.current()));
                }
            }
            PoolChange::Updated { delta, received } => {
                let Some(channel) = self.pool(&delta.pool) else {
                    tracing::error!(pool = %delta.pool, "delta for an unknown pool");
                    return;
                };
                let prev = channel.current();
                let mut view = prev.derive();
                view.snapshot.revision = delta.revision;
                view.snapshot.origins =
                    apply_delta(&prev.snapshot.origins, &delta.upsert, &delta.remove);
                let revision = delta.revision;
                view.delta = Some(Encoded::new(&Message::Delta(delta), revision));
                view.received = Some(received);
                channel.publish(view);
            }
            PoolChange::Removed { pool, .. } => {
                let old = self.pools.write().expect("hub lock poisoned").remove(&pool);
                if let Some(old) = old {
                    old.publish(removed(&old.current()));
                }
            }
        }
    }
}

/// `{"type":"stale",…}` with `snap`'s flag, for a subscriber at `revision`.
fn stale_message(snap: &Snapshot, revision: u64) -> Encoded {
    let message = Message::Stale {
        pool: snap.pool.clone(),
        epoch: snap.epoch.clone(),
        revision,
        stale: snap.stale,
    };
    Encoded::new(&message, revision)
}

fn removed(view: &PoolView) -> PoolView {
    let mut v = view.derive();
    v.removed = true;
    v
}

fn apply_delta(prev: &[Origin], upsert: &[Origin], remove: &[String]) -> Arc<[Origin]> {
    let mut by_id: BTreeMap<&str, &Origin> = prev.iter().map(|o| (o.id.as_str(), o)).collect();
    for id in remove {
        by_id.remove(id.as_str());
    }
    for o in upsert {
        by_id.insert(o.id.as_str(), o);
    }
    by_id.into_values().cloned().collect()
}

/// What a subscription sends next.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The message, encoded once for every subscriber it goes to.
    pub message: Encoded,
    /// Revision the subscriber is at after this frame.
    pub revision: u64,
    /// For deltas: when the triggering watch event arrived (push latency start).
    pub received: Option<Instant>,
    /// Which kind of message.
    pub kind: FrameKind,
}

/// Kinds of [`Frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Full list.
    Snapshot,
    /// One revision's change.
    Delta,
    /// Stale flag change.
    Stale,
    /// Pool gone; the last frame of the subscription.
    Removed,
}

/// One subscriber's position in a pool's stream. Transport-agnostic: WebSocket and SSE
/// sessions pull [`Frame`]s from it.
///
/// Bounded by construction: it holds the latest view and at most one catch-up batch
/// (≤ [`MAX_CATCH_UP`] shared [`Encoded`] handles); everything else is shared with the hub.
#[derive(Debug)]
pub struct Subscription {
    channel: Arc<PoolChannel>,
    rx: watch::Receiver<Arc<PoolView>>,
    revision: u64,
    stale: bool,
    pending: VecDeque<Frame>,
    done: bool,
}

impl Subscription {
    /// Subscribes to `channel`. With `resume = Some((epoch, revision))` from the same epoch
    /// and the gap still in the delta log, the first frames are the missed deltas only;
    /// otherwise the first frame is a snapshot.
    pub fn new(channel: Arc<PoolChannel>, resume: Option<(&str, u64)>) -> Self {
        match resume {
            // A resuming client assumes fresh; tell it if the list went stale meanwhile.
            Some((epoch, revision)) if *epoch == *channel.current().snapshot.epoch => {
                Self::resume_at(channel, revision, false)
            }
            _ => {
                let (mut sub, view) = Self::watching(channel, 0, false);
                sub.push_snapshot(&view);
                sub
            }
        }
    }

    /// A subscription for a subscriber that was sent everything up to `revision` of this
    /// epoch with stale flag `stale` (by another writer): the first frames are what it
    /// missed since — deltas from the log, or a snapshot when the log no longer covers
    /// the gap — and nothing if it is current.
    pub fn resume_at(channel: Arc<PoolChannel>, revision: u64, stale: bool) -> Self {
        let (mut sub, view) = Self::watching(channel, revision, stale);
        if revision > view.snapshot.revision {
            // Cannot happen within one epoch; start over rather than trust it.
            sub.push_snapshot(&view);
        } else {
            sub.catch_up(&view);
        }
        sub
    }

    /// A subscription at `revision`/`stale` with nothing pending yet, and the current view.
    fn watching(channel: Arc<PoolChannel>, revision: u64, stale: bool) -> (Self, Arc<PoolView>) {
        let mut rx = channel.watch();
        let view = rx.borrow_and_update().clone();
        let sub = Self {
            channel,
            rx,
            revision,
            stale,
            pending: VecDeque::new(),
            done: false,
        };
        (sub, view)
    }

    /// The revision the subscriber has been sent up to.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The stale flag the subscriber has been sent.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// The pool's channel.
    pub fn channel(&self) -> &Arc<PoolChannel> {
        &self.channel
    }

    /// Whether everything published so far has been handed out: nothing pending, no newer
    /// view, and the pool not gone.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && !self.done && matches!(self.rx.has_changed(), Ok(false))
    }

    /// The next frame to send; `None` once the pool is gone and its `removed` frame was sent.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.pop() {
                return Some(f);
            }
            if self.done {
                return None;
            }
            if self.rx.changed().await.is_err() {
                // The hub dropped the channel without a removal view: treat as removed.
                let view = self.channel.current();
                self.push_removed(&view);
                continue;
            }
            let view = self.rx.borrow_and_update().clone();
            self.catch_up(&view);
        }
    }

    /// The next frame if one is ready now, without waiting for a new revision; `None`
    /// when the subscriber is current (see [`Self::is_current`]) or done.
    pub fn try_next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.pop() {
                return Some(f);
            }
            if self.done {
                return None;
            }
            match self.rx.has_changed() {
                Ok(false) => return None,
                Ok(true) => {
                    let view = self.rx.borrow_and_update().clone();
                    self.catch_up(&view);
                }
                Err(_) => {
                    let view = self.channel.current();
                    self.push_removed(&view);
                }
            }
        }
    }

    fn pop(&mut self) -> Option<Frame> {
        let f = self.pending.pop_front()?;
        if f.kind == FrameKind::Removed {
            self.done = true;
        }
        Some(f)
    }

    fn catch_up(&mut self, view: &PoolView) {
        let snap = &view.snapshot;
        if snap.revision > self.revision {
            let replay = if snap.revision == self.revision + 1 && view.delta.is_some() {
                Some(vec![(snap.revision, view.delta.clone().expect("checked"))])
            } else {
                self.channel.deltas_after(self.revision).filter(|d| {
                    !d.is_empty() && d.len() <= MAX_CATCH_UP && d[0].0 == self.revision + 1
                })
            };
            match replay {
                Some(deltas) => {
                    let last = deltas.len() - 1;
                    for (i, (revision, message)) in deltas.into_iter().enumerate() {
                        let received = if i == last { view.received } else { None };
                        self.pending.push_back(Frame {
                            message,
                            revision,
                            received,
                            kind: FrameKind::Delta,
                        });
                        self.revision = revision;
                    }
                }
                None => self.push_snapshot(view),
            }
        }
        if snap.stale != self.stale {
            self.stale = snap.stale;
            // Normally the subscriber is now at this view's revision and gets the view's
            // shared message; the log can be a revision ahead of the view borrowed.
            let message = if self.revision == snap.revision {
                view.stale_message()
            } else {
                stale_message(snap, self.revision)
            };
            self.pending.push_back(Frame {
                message,
                revision: self.revision,
                received: None,
                kind: FrameKind::Stale,
            });
        }
        if view.removed {
            self.push_removed(view);
        }
    }

    fn push_snapshot(&mut self, view: &PoolView) {
        self.revision = view.snapshot.revision;
        self.stale = view.snapshot.stale;
        self.pending.clear();
        self.pending.push_back(Frame {
            message: view.snapshot_message(),
            revision: view.snapshot.revision,
            received: None,
            kind: FrameKind::Snapshot,
        });
        if view.removed {
            self.push_removed(view);
        }
    }

    fn push_removed(&mut self, view: &PoolView) {
        if self
            .pending
            .back()
            .is_some_and(|f| f.kind == FrameKind::Removed)
        {
            return;
        }
        self.pending.push_back(Frame {
            message: view.removed_message(),
            revision: view.snapshot.revision,
            received: None,
            kind: FrameKind::Removed,
        });
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
