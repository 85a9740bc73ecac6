//! The controller's shared state: the origin index, the hub it publishes to, and the health
//! of every source. Sources change the index through [`Shared::stage`] (during a relist) and
//! [`Shared::update`] (which publishes); the API reads the hub.
//!
//! Source health after a failure (the `stale` rule of docs/DESIGN.md, "Origin state"; how
//! it is decided is this module's): a source is failing from
//! its first watch error until the apiserver answers one of *its own* requests again (a
//! 2xx to its re-opened watch or relist, see `sources::observed_client`) or it gets an
//! event. Idle watches surface no events, so the answer to the request is what proves the
//! watch is live again; the apiserver answering `/version` does not. `stale` clears only
//! when no source is failing, i.e. every watch is live.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metrics::{Metrics, PoolLabels};
use origin_discovery_core::hub::Hub;
use origin_discovery_core::index::{Index, IndexConfig, ProbeTarget};
use origin_discovery_core::model::PoolChange;
use origin_discovery_core::signals::{ProbeResult, Stamp};

/// Health of one source (one watched kind).
#[derive(Debug)]
pub struct SourceHealth {
    /// Plural resource name, as in metrics and logs.
    pub resource: &'static str,
    /// Completed its first full list.
    synced: AtomicBool,
    /// Its task is still running.
    alive: AtomicBool,
    /// Since when its watch has been failing, if it is.
    failing_since: Mutex<Option<Instant>>,
    /// Its last failure was the apiserver not answering (connect, reset, timeout) rather
    /// than an error status: a retry waits for the apiserver, not for its back-off.
    unreachable: AtomicBool,
}

impl SourceHealth {
    fn new(resource: &'static str) -> Self {
        Self {
            resource,
            synced: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            failing_since: Mutex::new(None),
            unreachable: AtomicBool::new(false),
        }
    }

    /// Records the end of a full list.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Records that the source task ended; readiness drops.
    pub fn set_dead(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }

    /// Records an answer of the apiserver to this source (an event, or a 2xx to its list
    /// or watch request): its watch is live.
    pub fn ok(&self) {
        let mut f = self.failing_since.lock().expect("health lock poisoned");
        *f = None;
        self.unreachable.store(false, Ordering::Relaxed);
    }

    /// Records a watch error; `unreachable` when the apiserver did not answer at all.
    pub fn failed(&self, at: Instant, unreachable: bool) {
        let mut f = self.failing_since.lock().expect("health lock poisoned");
        f.get_or_insert(at);
        self.unreachable.store(unreachable, Ordering::Relaxed);
    }

    /// Whether the source is failing because the apiserver does not answer.
    fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed)
            && self
                .failing_since
                .lock()
                .expect("health lock poisoned")
                .is_some()
    }

    fn failing_for(&self, now: Instant) -> Duration {
        let f = self.failing_since.lock().expect("health lock poisoned");
        f.map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Shared {
    /// The origin index; locked only for short, non-awaiting sections.
    index: Mutex<Index>,
    /// Where pool revisions are published.
    pub hub: Arc<Hub>,
    /// Process metrics.
    pub metrics: Metrics,
    /// Health of every registered source; readiness and staleness derive from it.
    sources: Mutex<Vec<Arc<SourceHealth>>>,
    /// Bumped when the apiserver answers again after not answering: sources waiting out a
    /// back-off retry at once.
    reachable: watch::Sender<u64>,
}

impl Shared {
    /// A controller with an empty index.
    pub fn new(index: IndexConfig, hub: Arc<Hub>, metrics: Metrics) -> Self {
        Self {
            index: Mutex::new(Index::new(index)),
            hub,
            metrics,
            sources: Mutex::new(Vec::new()),
            reachable: watch::Sender::new(0),
        }
    }

    /// Registers a source; readiness waits for it.
    pub fn register_source(&self, resource: &'static str) -> Arc<SourceHealth> {
        let h = Arc::new(SourceHealth::new(resource));
        self.sources
            .lock()
            .expect("sources lock poisoned")
            .push(h.clone());
        self.hub.set_synced(false);
        h
    }

    /// Applies `f` to the index without publishing: what it changes is published by the next
    /// [`Shared::update`]. A relist stages every listed object and updates once at the end,
    /// so a relist of unchanged objects publishes nothing.
    pub fn stage(&self, f: impl FnOnce(&mut Index)) {
        f(&mut self.index.lock().expect("index lock poisoned"));
    }

    /// Applies `f` to the index and publishes everything changed since the last update. The
    /// hub is updated under the index lock so that every pool's revisions publish in order;
    /// the critical section does no I/O and never awaits.
    pub fn update(&self, f: impl FnOnce(&mut Index)) {
        let mut index = self.index.lock().expect("index lock poisoned");
        f(&mut index);
        let out = index.commit(Stamp::now());
        for lead in out.leads {
            self.metrics.signal_lead.observe(lead.as_secs_f64());
        }
        for pool in out.probe_removed {
            let labels = PoolLabels {
                pool: pool.to_string(),
            };
            self.metrics.probe_removed.get_or_create(&labels).inc();
        }
        for p in out.probe_panic {
            let labels = PoolLabels {
                pool: p.pool.to_string(),
            };
            self.metrics
                .probe_panic
                .get_or_create(&labels)
                .set(i64::from(p.panic));
            let (pool, down, failing, probed) = (&labels.pool, p.down, p.failing, p.probed);
            if p.panic {
                tracing::warn!(%pool, down, failing, probed, "probe panic: too many origins fail their probes at once; removing none of them (is the controller's own network at fault?)");
            } else {
                tracing::info!(%pool, down, failing, probed, "probe panic over: failing origins are removed again");
            }
        }
        for change in out.changes {
            if let PoolChange::Removed { pool, .. } = &change {
                self.metrics.probe_panic.remove(&PoolLabels {
                    pool: pool.to_string(),
                });
            }
            self.hub.apply(change);
        }
    }

    /// The current probe targets, unless they are still those of `known` (the revision the
    /// caller read last); with the revision they belong to.
    pub fn probe_targets(&self, known: Option<u64>) -> Option<(u64, Vec<ProbeTarget>)> {
        let index = self.index.lock().expect("index lock poisoned");
        let revision = index.probe_targets_revision();
        (known != Some(revision)).then(|| (revision, index.probe_targets()))
    }

    /// Applies a batch of probe results and publishes what they changed.
    pub fn apply_probes(&self, results: &[(Arc<ProbeTarget>, ProbeResult)]) {
        let stamp = Stamp::now();
        self.update(|idx| {
            for (target, result) in results {
                idx.apply_probe(target, *result, stamp);
            }
        });
    }

    /// Re-evaluates readiness: every source alive and synced.
    pub fn refresh_ready(&self) {
        let sources = self.sources.lock().expect("sources lock poisoned");
        let ready = !sources.is_empty()
            && sources
                .iter()
                .all(|s| s.alive.load(Ordering::Relaxed) && s.synced.load(Ordering::Relaxed));
        drop(sources);
        self.hub.set_synced(ready);
    }

    /// Whether any source is failing because the apiserver does not answer (then the
    /// staleness task probes it, to end the sources' back-off when it answers).
    pub fn any_unreachable(&self) -> bool {
        let sources = self.sources.lock().expect("sources lock poisoned");
        sources.iter().any(|s| s.is_unreachable())
    }

    /// The apiserver answered again: sources waiting out a back-off after it did not
    /// answer retry at once. Their failures clear only when their own requests are
    /// answered (see the module docs).
    pub fn apiserver_reachable(&self) {
        self.reachable.send_modify(|n| *n += 1);
    }

    /// Notified by [`Shared::apiserver_reachable`].
    pub fn reachable_events(&self) -> watch::Receiver<u64> {
        self.reachable.subscribe()
    }

    /// Re-evaluates staleness: some source failing for longer than `stale_after`.
    pub fn refresh_stale(&self, stale_after: Duration) {
        let now = Instant::now();
        let sources = self.sources.lock().expect("sources lock poisoned");
        let stale = sources.iter().any(|s| s.failing_for(now) > stale_after);
        drop(sources);
        // Under the index lock, like every other publication: a stale flip reads each pool's
        // current view and publishes a copy, which must not interleave with a revision
        // being published (the copy would take the pool back to the previous revision).
        let _index = self.index.lock().expect("index lock poisoned");
        self.hub.set_stale(stale);
        self.metrics.stale.set(i64::from(stale));
    }
}
