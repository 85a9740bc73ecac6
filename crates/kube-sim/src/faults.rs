//! Fault injection: the ways a real apiserver misbehaves that clients must survive.
//!
//! [`Faults`] is a cheap handle over shared state the HTTP layer consults on every
//! request (fail, stall) and every watch (drop, 410 at start).

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::store::Store;

/// Shared fault state.
pub(crate) struct FaultState {
    /// Requests still to fail.
    fail_remaining: AtomicU32,
    /// Status code for failed requests.
    fail_code: AtomicU16,
    /// Whether the next watch starts with 410 Gone.
    gone_next_watch: AtomicBool,
    /// Requests (and watch deliveries) wait until this instant.
    stall_until: Mutex<Option<Instant>>,
    /// Bumped to end every open watch stream.
    drop_watches: watch::Sender<u64>,
}

impl FaultState {
    pub(crate) fn new() -> Self {
        Self {
            fail_remaining: AtomicU32::new(0),
            fail_code: AtomicU16::new(500),
            gone_next_watch: AtomicBool::new(false),
            stall_until: Mutex::new(None),
            drop_watches: watch::channel(0).0,
        }
    }

    /// Takes one pending injected failure, if any, returning its status code.
    pub(crate) fn take_failure(&self) -> Option<u16> {
        self.fail_remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| self.fail_code.load(Ordering::SeqCst))
    }

    /// Takes the pending "410 on next watch" flag.
    pub(crate) fn take_gone(&self) -> bool {
        self.gone_next_watch.swap(false, Ordering::SeqCst)
    }

    /// The instant until which responses are held, if in the future.
    pub(crate) fn stalled_until(&self) -> Option<Instant> {
        let until = *self.stall_until.lock().unwrap_or_else(|e| e.into_inner());
        until.filter(|u| *u > Instant::now())
    }

    /// A receiver that changes whenever watches are dropped.
    pub(crate) fn watch_drops(&self) -> watch::Receiver<u64> {
        self.drop_watches.subscribe()
    }

    /// Ends every open watch stream.
    pub(crate) fn drop_all_watches(&self) {
        self.drop_watches.send_modify(|n| *n += 1);
    }
}

/// Fault injection handle (from [`Sim::faults`](super::Sim::faults)).
#[derive(Clone)]
pub struct Faults {
    pub(crate) state: Arc<FaultState>,
    pub(crate) store: Arc<Store>,
}

impl Faults {
    /// Ends every open watch stream now (clean end of the HTTP body, as when an
    /// apiserver restarts its watch cache). Clients re-watch from their last version.
    pub fn drop_watches(&self) {
        self.state.drop_all_watches();
    }

    /// Answers the next `n` API requests with `status_code` (5xx or 429) and a matching
    /// `Status` body (429 and 503 carry `Retry-After: 1`). `/sim/` control calls are
    /// never failed.
    pub fn fail_next(&self, n: u32, status_code: u16) {
        self.state.fail_code.store(status_code, Ordering::SeqCst);
        self.state.fail_remaining.store(n, Ordering::SeqCst);
    }

    /// Makes the next watch request start with a 410 Gone `ERROR` event and end, as an
    /// apiserver does for a compacted version.
    pub fn gone_next_watch(&self) {
        self.state.gone_next_watch.store(true, Ordering::SeqCst);
    }

    /// Holds every response, and every event delivery on open watches, for `d` from now.
    pub fn stall(&self, d: Duration) {
        *self
            .state
            .stall_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + d);
    }

    /// Forgets the event history: any watch resuming from an earlier version gets 410.
    pub fn compact_history(&self) {
        self.store.compact();
    }
}
