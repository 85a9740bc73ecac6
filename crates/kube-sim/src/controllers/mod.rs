//! The cluster's own controllers, emulated: the EndpointSlice controller, a kubelet (with
//! the scheduler's node assignment), and node heartbeats plus the node lifecycle
//! controller. Each is one task that follows the store's change broadcast, keeps its
//! timers in a `Timers` queue, and ends when the simulator's cancellation token fires.

pub mod endpointslices;
pub mod kubelet;
pub mod nodes;
pub mod slice_plan;

use std::collections::BTreeMap;

use tokio::time::Instant;

/// A queue of timed actions, earliest first. Its size is bounded by the number of objects
/// with a pending action (one entry per pod or node and action kind).
pub(crate) struct Timers<T> {
    queue: BTreeMap<(Instant, u64), T>,
    seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self {
            queue: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<T> Timers<T> {
    /// Schedules `item` at `at`.
    pub(crate) fn insert(&mut self, at: Instant, item: T) {
        self.seq += 1;
        self.queue.insert((at, self.seq), item);
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns everything due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Vec<T> {
        let later = self.queue.split_off(&(now, u64::MAX));
        std::mem::replace(&mut self.queue, later)
            .into_values()
            .collect()
    }
}

/// Sleeps until `at`, or forever when there is nothing scheduled.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
