//! The origin index: merges signals per origin into one state and produces each pool's
//! next revision as a delta.
//!
//! Pure state, no I/O: sources call `apply_*` / `delete_*` / `reset_*` with what they
//! received and when, then [`Index::commit`] returns what changed since the last commit.
//! Work is proportional to the origins a signal touches: every mutation marks only the
//! affected `(pool, endpoint)` pairs dirty, and `commit` recomputes just those.
//!
//! The rules (docs/DESIGN.md, "Origin state — ahead of the EndpointSlice"):
//! - an origin is `ready` only when its slice endpoint is ready **and** no pod or node
//!   signal contradicts it;
//! - the first signal of trouble wins: pod deletion → `draining`; pod down (Ready=False,
//!   terminated container, phase Failed/Succeeded), pod gone, node not ready or its lease
//!   expired → removed; slice `serving && terminating` → `draining`; anything else → removed.
//! - applying an unchanged object changes nothing, so a relist never flaps origins.
//! - active probes (docs/DESIGN.md, "Active probes") are one more pod-level signal:
//!   `--probe-failures` consecutive failures remove an origin, and it is listed again only
//!   after `--probe-successes` consecutive successes *and* a ready slice; when more than
//!   `--probe-panic-threshold` percent of a pool's probed origins are failing at once, none
//!   of them is removed (the prober's own network is suspect), so probes never empty a pool.
//!   Probe state is forgotten when the endpoint leaves the slices (or changes address).
//!
//!
//! Weights and load (docs/DESIGN.md, "Weights and load"): an origin's `weight` is its pod's
//! annotation; its `load` comes from [`Index::set_load`] (the prober's `Origin-Load`) or else
//! the pod's load annotation, through a [`LoadFilter`] per origin (quantized, hysteresis, at
//! most one change per [`LOAD_HOLD`]).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::model::{Delta, Load, Origin, OriginState, PoolChange, PoolId};
use crate::signals::{
    EndpointInfo, LoadSample, NodeReady, PodInfo, PortChoice, ProbeKind, ProbeMode, ProbeResult,
    ServiceInfo, SliceInfo, SlicePort, Stamp,
};

/// Index options.
#[derive(Clone, Debug)]
pub struct IndexConfig {
    /// Process epoch stamped on every delta.
    pub epoch: Arc<str>,
    /// With node signals: a node whose lease was not renewed for this long is dead.
    pub node_lease_grace: Duration,
}

/// What one [`Index::commit`] produced.
#[derive(Debug, Default)]
pub struct Commit {
    /// Per-pool changes, in no particular order across pools.
    pub changes: Vec<PoolChange>,
    /// Signal lead observations: for each origin a pod/node signal took out of `ready`
    /// before its EndpointSlice did, how long the slice took to catch up.
    pub leads: Vec<Duration>,
    /// One entry per origin an active probe took off the list.
    pub probe_removed: Vec<PoolId>,
    /// Pools that entered or left probe panic mode.
    pub probe_panic: Vec<ProbePanic>,
}

/// How probe results become origin state (docs/DESIGN.md, "Active probes"); set with
/// [`Index::set_probe_policy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbePolicy {
    /// How pools without a probe annotation are probed (`--probe-default`; `None`: not).
    pub default: Option<ProbeKind>,
    /// Consecutive failures that remove an origin (`--probe-failures`, at least 1).
    pub failures: u32,
    /// Consecutive successes that let it back (`--probe-successes`, at least 1).
    pub successes: u32,
    /// Percent, 0–100 (`--probe-panic-threshold`): while more than this share of a pool's
    /// probed origins — or all of them — are failing, none of them is removed.
    pub panic_threshold: u8,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        Self {
            default: None,
            failures: 2,
            successes: 1,
            panic_threshold: 50,
        }
    }
}

/// One origin to probe: an EndpointSlice address (never a URL), with its pool's settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProbeTarget {
    /// The pool.
    pub pool: PoolId,
    /// The endpoint's id in the pool (pod name, or the address).
    pub id: String,
    /// The endpoint address from the slice (IPv4 or IPv6, not bracketed).
    pub address: String,
    /// `origin-discovery.io/probe-port` resolved on the endpoint's slice, else the
    /// advertised port.
    pub port: u16,
    /// TCP or HTTP.
    pub kind: ProbeKind,
    /// HTTP request path (`origin-discovery.io/probe-path`).
    pub path: String,
}

/// A pool entering or leaving probe panic mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbePanic {
    /// The pool.
    pub pool: PoolId,
    /// In panic mode now.
    pub panic: bool,
    /// Origins down by their probes.
    pub down: usize,
    /// Origins failing their probes (down, or their last probe failed).
    pub failing: usize,
    /// Origins probed (endpoints the slices list ready or serving).
    pub probed: usize,
}

/// A pod's key: namespace and name.
type PodKey = (String, String);

/// The index. See the module docs.
#[derive(Debug)]
pub struct Index {
    config: IndexConfig,
    /// Every Service we know slices or pool settings for, keyed by `<ns>/<name>`.
    services: HashMap<PoolId, ServiceEntry>,
    /// Pod-level facts of every watched pod.
    pods: HashMap<PodKey, PodInfo>,
    /// Pods deleted from the pod watch that some slice still names (cleared when no slice
    /// names them any more, or the pod is re-created).
    gone_pods: HashSet<PodKey>,
    /// Which Services' slices reference each pod (with reference counts across slices).
    pod_refs: HashMap<PodKey, HashMap<String, u32>>,
    /// Node health; only filled when node signals are on.
    nodes: HashMap<String, NodeHealth>,
    /// Origins to recompute at the next commit.
    dirty: HashMap<PoolId, Dirty>,
    /// Pools opted in or out since the last commit.
    membership: HashSet<PoolId>,
    /// Last revision of pools that disappeared, so a returning pool keeps counting up.
    retired: HashMap<PoolId, u64>,
    /// How probe results count.
    probe_policy: ProbePolicy,
    /// Bumped whenever the set of probe targets may have changed.
    targets_revision: u64,
}

#[derive(Debug, Default)]
struct ServiceEntry {
    /// Present while the Service is a pool.
    pool: Option<PoolState>,
    /// All its EndpointSlices by name.
    slices: HashMap<String, Slice>,
}

#[derive(Debug, PartialEq)]
struct Slice {
    ports: Vec<SlicePort>,
    endpoints: HashMap<String, EndpointInfo>,
    /// How many endpoints are ready or serving (probe targets, for the panic threshold).
    live: usize,
}

#[derive(Debug)]
struct PoolState {
    info: ServiceInfo,
    revision: u64,
    /// What clients currently see, keyed by endpoint id.
    published: HashMap<String, Origin>,
    /// Origins a pod/node signal took out while their slice still said ready, and when.
    lead_pending: HashMap<String, Instant>,
    /// Set until the pool's first revision has been announced.
    announced: bool,
    /// Active probe state per endpoint id, for endpoints a probe reported on.
    probes: HashMap<String, ProbeState>,
    /// How many entries of `probes` are down and still probe targets.
    probes_down: usize,
    /// How many are failing ([`ProbeState::failing`]): what the hold is decided on.
    probes_failing: usize,
    /// Probe panic mode: too many of `probes` are down, so none is removed.
    probe_panic: bool,
    /// Removals held: too many are failing at once. An origin that goes down meanwhile is
    /// `held` (kept listed); the ones that were down before stay removed (unless `probe_panic`).
    probe_hold: bool,
    /// The panic mode last reported in a [`Commit`].
    probe_panic_reported: bool,
    /// Load reports and filters of the listed origins, keyed like `published`.
    loads: HashMap<String, LoadState>,
    /// The endpoint count the three per-origin maps were last sized for ([`PoolState::reserve`]).
    sized_for: usize,
}

/// What the probes said about one endpoint lately.
#[derive(Debug)]
struct ProbeState {
    /// What was probed; a result for anything else is stale and ignored.
    target: ProbeTarget,
    /// The endpoint is a probe target (its slice says ready or serving); results that
    /// arrive while it is not are ignored, so the last verdict holds until it is again.
    active: bool,
    /// Consecutive failures.
    failures: u32,
    /// Consecutive successes.
    successes: u32,
    /// Taken out by probes (kept listed while the pool is in panic mode).
    down: bool,
    /// Down, but it went down while the pool's removals were held, so still listed until
    /// the hold ends.
    held: bool,
    /// When its endpoint left every slice while down: the verdict is kept for
    /// [`PROBE_VERDICT_RETENTION`], so an endpoint moving between slices (gone from one
    /// before it is in the other) does not come back listed with its probes forgotten.
    left: Option<Instant>,
}

/// How long a down probe verdict outlives its endpoint leaving every slice (see
/// [`ProbeState`]'s `left`); [`Index::tick`] forgets it after that.
pub const PROBE_VERDICT_RETENTION: Duration = Duration::from_secs(30);

impl ProbeState {
    /// Down, or on its way there (its last probe failed), and a target. The hold counts
    /// these, not only the down ones: when a whole pool fails at once, its origins reach
    /// `--probe-failures` one by one (the schedules are jittered), and counting only the
    /// down ones would remove the first half before the pool counts as failing.
    fn failing(&self) -> bool {
        self.active && (self.down || self.failures > 0)
    }

    /// Counted in `probes_down`.
    fn counted_down(&self) -> bool {
        self.active && self.down
    }

    /// Whether the endpoint is a probe target. Successes count in a row while it is: one
    /// from before its slice said not ready says nothing about the restarted process.
    fn set_active(&mut self, active: bool) {
        self.active = active;
        if !active {
            self.successes = 0;
        }
    }
}

#[derive(Debug, Default)]
struct LoadState {
    /// The latest probe report (`Origin-Load`); wins over the pod annotation when present.
    probe: Option<LoadSample>,
    filter: LoadFilter,
}

/// At most one published load change per origin per this long (docs/DESIGN.md, "Weights
/// and load").
pub const LOAD_HOLD: Duration = Duration::from_secs(5);

/// Millionths per load step (1/20).
const STEP: i64 = (LoadSample::ONE / Load::STEPS as u32) as i64;

/// Turns an origin's load samples into the load clients see: quantized to steps of 1/20
/// ([`Load::quantize`]), with a dead band and a hold. Pure logic; time comes from the caller.
///
/// - A sample replaces the published level only when it lies at least 3/4 of a step (0.0375)
///   away from it — a quarter step past the rounding boundary — so a load hovering at a
///   boundary does not flap; it then publishes the nearest step.
/// - Unknown → known and known → unknown change at once (subject to the hold).
/// - At most one change per [`LOAD_HOLD`]: a change wanted sooner is held, and
///   [`LoadFilter::observe`] publishes it (re-evaluated on the then-current sample) once the
///   hold is over; [`LoadFilter::release_at`] says when.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadFilter {
    published: Option<Load>,
    changed_at: Option<Instant>,
    held: bool,
}

impl LoadFilter {
    /// What clients currently see.
    pub fn published(&self) -> Option<Load> {
        self.published
    }

    /// Feeds the current sample (`None`: no report) at `now`; returns the load to publish.
    pub fn observe(&mut self, sample: Option<LoadSample>, now: Instant) -> Option<Load> {
        let wanted = match (sample, self.published) {
            (None, _) => None,
            (Some(s), Some(p))
                if (i64::from(s.millionths()) - i64::from(p.steps()) * STEP).abs()
                    < STEP * 3 / 4 =>
            {
                Some(p)
            }
            (Some(s), _) => Some(nearest_step(s)),
        };
        if wanted == self.published {
            self.held = false;
            return self.published;
        }
        if self
            .changed_at
            .is_some_and(|at| now.saturating_duration_since(at) < LOAD_HOLD)
        {
            self.held = true;
            return self.published;
        }
        self.published = wanted;
        self.changed_at = Some(now);
        self.held = false;
        self.published
    }

    /// When a held change may be published, if one is held.
    pub fn release_at(&self) -> Option<Instant> {
        self.changed_at
            .filter(|_| self.held)
            .map(|at| at + LOAD_HOLD)
    }
}

/// The nearest 1/20 step to a sample, halves up: `⌊(millionths + STEP/2) / STEP⌋`.
fn nearest_step(s: LoadSample) -> Load {
    let steps = (i64::from(s.millionths()) + STEP / 2) / STEP;
    Load::from_steps(steps as u8).expect("a sample is at most one")
}

#[derive(Debug, Default)]
struct Dirty {
    all: bool,
    ids: HashSet<String>,
    /// The earliest signal among those this pool's next revision reflects.
    first_received: Option<Stamp>,
}

/// How long a deleted node is remembered as dead. Long enough for its pods to be deleted
/// (the pod garbage collector removes pods of a deleted node within seconds) and for their
/// endpoints to leave the slices; after that the entry goes, so node churn does not grow
/// the index.
pub const DELETED_NODE_RETENTION: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
struct NodeHealth {
    ready: Option<NodeReady>,
    /// Last observed lease `renewTime` value and when we saw it change.
    lease: Option<(String, Instant)>,
    /// Lease expired as of the last [`Index::tick`], or deleted.
    lease_expired: bool,
    /// When the Node was deleted, while it is remembered (see [`DELETED_NODE_RETENTION`]).
    deleted: Option<Instant>,
}

impl NodeHealth {
    fn dead(&self) -> bool {
        self.ready == Some(NodeReady::NotReady) || self.lease_expired || self.deleted.is_some()
    }
}

/// An endpoint's recomputed origin (if listed; its `load` still unset), its slice-level
/// verdict and its pod's load annotation; `None` when no slice lists it with the pool's port.
type Computed = Option<(Option<Origin>, SliceVerdict, Option<LoadSample>)>;

/// The slice-level verdict on one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SliceVerdict {
    Absent,
    Draining,
    Ready,
}

impl Index {
    /// An empty index.
    pub fn new(config: IndexConfig) -> Self {
        Self {
            config,
            services: HashMap::new(),
            pods: HashMap::new(),
            gone_pods: HashSet::new(),
            pod_refs: HashMap::new(),
            nodes: HashMap::new(),
            dirty: HashMap::new(),
            membership: HashSet::new(),
            retired: HashMap::new(),
            probe_policy: ProbePolicy::default(),
            targets_revision: 0,
        }
    }

    /// Ids of the current pools.
    pub fn pools(&self) -> impl Iterator<Item = &PoolId> {
        self.services
            .iter()
            .filter(|(_, e)| e.pool.is_some())
            .map(|(id, _)| id)
    }

    /// A Service is (still) a pool with these settings.
    pub fn apply_service(&mut self, info: ServiceInfo, stamp: Stamp) {
        let id = info.pool.clone();
        let entry = self.services.entry(id.clone()).or_default();
        match &mut entry.pool {
            Some(pool) if pool.info == info => return,
            Some(pool) => {
                if pool.info.probe != info.probe || pool.info.port != info.port {
                    pool.clear_probes();
                }
                pool.info = info;
            }
            None => {
                let revision = self.retired.remove(&id).unwrap_or(0);
                entry.pool = Some(PoolState {
                    info,
                    revision,
                    published: HashMap::new(),
                    lead_pending: HashMap::new(),
                    announced: false,
                    probes: HashMap::new(),
                    probes_down: 0,
                    probes_failing: 0,
                    probe_panic: false,
                    probe_hold: false,
                    probe_panic_reported: false,
                    loads: HashMap::new(),
                    sized_for: 0,
                });
            }
        }
        self.targets_revision += 1;
        self.mark_all(&id, stamp);
    }

    /// A Service is gone or no longer opted in: its pool disappears.
    pub fn delete_service(&mut self, pool: &PoolId) {
        if let Some(entry) = self.services.get_mut(pool) {
            if let Some(state) = entry.pool.take() {
                // Only a pool clients were told about needs its removal announced.
                if state.announced {
                    self.retired.insert(pool.clone(), state.revision);
                    self.membership.insert(pool.clone());
                }
            }
            if entry.slices.is_empty() {
                self.services.remove(pool);
            }
            self.targets_revision += 1;
        }
    }

    /// Keeps only the pools in `keep` (after a relist of Services).
    pub fn reset_services(&mut self, keep: &HashSet<PoolId>) {
        let gone: Vec<PoolId> = self
            .pools()
            .filter(|p| !keep.contains(*p))
            .cloned()
            .collect();
        for pool in gone {
            self.delete_service(&pool);
        }
    }

    /// An EndpointSlice was added or changed.
    pub fn apply_slice(&mut self, slice: SliceInfo, stamp: Stamp) {
        let SliceInfo {
            service,
            name,
            ports,
            endpoints,
        } = slice;
        let endpoints: HashMap<String, EndpointInfo> = endpoints
            .into_iter()
            .map(|e| (e.id().to_string(), e))
            .collect();
        let live = endpoints
            .values()
            .filter(|e| slice_verdict(e) != SliceVerdict::Absent)
            .count();
        let new = Slice {
            ports,
            endpoints,
            live,
        };
        let entry = self.services.entry(service.clone()).or_default();
        let old = entry.slices.remove(&name);
        if old.as_ref() == Some(&new) {
            entry.slices.insert(name, new);
            return;
        }
        let touched = changed_ids(old.as_ref(), Some(&new));
        let new_pods: Vec<String> = new.pods().collect();
        entry.slices.insert(name, new);
        if let Some(old) = &old {
            self.unref_pods(&service, old.pods());
        }
        self.ref_pods(&service, new_pods);
        self.targets_revision += 1;
        self.prune_probes(&service, &touched, stamp);
        self.mark(&service, touched, stamp);
    }

    /// An EndpointSlice was deleted.
    pub fn delete_slice(&mut self, service: &PoolId, name: &str, stamp: Stamp) {
        let Some(entry) = self.services.get_mut(service) else {
            return;
        };
        let Some(old) = entry.slices.remove(name) else {
            return;
        };
        if entry.pool.is_none() && entry.slices.is_empty() {
            self.services.remove(service);
        }
        self.unref_pods(service, old.pods());
        let touched = changed_ids(Some(&old), None);
        self.targets_revision += 1;
        self.prune_probes(service, &touched, stamp);
        self.mark(service, touched, stamp);
    }

    /// Keeps only the slices in `keep` (after a relist of EndpointSlices).
    pub fn reset_slices(&mut self, keep: &HashSet<(PoolId, String)>, stamp: Stamp) {
        let gone: Vec<(PoolId, String)> = self
            .services
            .iter()
            .flat_map(|(svc, e)| e.slices.keys().map(move |n| (svc.clone(), n.clone())))
            .filter(|k| !keep.contains(k))
            .collect();
        for (svc, name) in gone {
            self.delete_slice(&svc, &name, stamp);
        }
    }

    /// A pod was added or changed.
    pub fn apply_pod(&mut self, pod: PodInfo, stamp: Stamp) {
        let key = (pod.namespace.clone(), pod.name.clone());
        if self.pods.get(&key) == Some(&pod) {
            return;
        }
        self.gone_pods.remove(&key);
        self.pods.insert(key.clone(), pod);
        self.mark_pod(&key, stamp);
    }

    /// A pod was deleted: it no longer serves, whatever its slice still says.
    pub fn delete_pod(&mut self, namespace: &str, name: &str, stamp: Stamp) {
        let key = (namespace.to_string(), name.to_string());
        let known = self.pods.remove(&key).is_some();
        // Remember the deletion while some slice still names the pod, so the slice alone
        // cannot keep it listed.
        let tombstoned = self.pod_refs.contains_key(&key) && self.gone_pods.insert(key.clone());
        if known || tombstoned {
            self.mark_pod(&key, stamp);
        }
    }

    /// Keeps only the pods in `keep` (after a relist of Pods).
    pub fn reset_pods(&mut self, keep: &HashSet<(String, String)>, stamp: Stamp) {
        let gone: Vec<PodKey> = self
            .pods
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for (ns, name) in gone {
            self.delete_pod(&ns, &name, stamp);
        }
    }

    /// A load report for one endpoint of `pool` (`endpoint`: its id, i.e. the pod name, or
    /// the address for an endpoint without a pod): the prober calls this with every probe
    /// result, `load` being the `Origin-Load` header (`None` when absent or not a number in
    /// [0, 1]; the pod's load annotation applies then). Reports for endpoints that are not
    /// listed are dropped (the next report after the origin is listed counts). A change held
    /// by [`LOAD_HOLD`] is published by the first report (or [`Index::tick`]) after the hold.
    pub fn set_load(&mut self, pool: &PoolId, endpoint: &str, load: Option<f64>, stamp: Stamp) {
        let sample = load.and_then(LoadSample::from_fraction);
        let Some(state) = self.services.get_mut(pool).and_then(|e| e.pool.as_mut()) else {
            return;
        };
        if !state.published.contains_key(endpoint) {
            return;
        }
        let entry = state.loads.entry(endpoint.to_string()).or_default();
        // A repeated report still counts once a held change is due, so a prober reporting
        // every interval needs no `tick` to publish it.
        let due = entry.filter.release_at().is_some_and(|t| t <= stamp.at);
        if entry.probe == sample && !due {
            return;
        }
        entry.probe = sample;
        self.mark(pool, vec![endpoint.to_string()], stamp);
    }

    /// A node's Ready condition was observed (node signals).
    pub fn apply_node(&mut self, name: &str, ready: NodeReady, stamp: Stamp) {
        let health = self.nodes.entry(name.to_string()).or_default();
        let was_dead = health.dead();
        health.ready = Some(ready);
        health.deleted = None;
        if health.dead() != was_dead {
            self.mark_node(name, stamp);
        }
    }

    /// A node was deleted (node signals): its origins are gone with it. The node is
    /// remembered as dead for [`DELETED_NODE_RETENTION`], then forgotten by [`Index::tick`].
    pub fn delete_node(&mut self, name: &str, stamp: Stamp) {
        let health = self.nodes.entry(name.to_string()).or_default();
        let was_dead = health.dead();
        health.deleted.get_or_insert(stamp.at);
        if !was_dead {
            self.mark_node(name, stamp);
        }
    }

    /// Keeps only the nodes in `keep` (after a relist of Nodes): the others were deleted.
    pub fn reset_nodes(&mut self, keep: &HashSet<String>, stamp: Stamp) {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(name, h)| h.ready.is_some() && h.deleted.is_none() && !keep.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.delete_node(&name, stamp);
        }
    }

    /// A node lease was observed with this `renewTime` (node signals). The lease counts as
    /// renewed when the value changes, measured by our own clock (immune to clock skew).
    pub fn apply_lease(&mut self, node: &str, renew_time: Option<String>, stamp: Stamp) {
        let health = self.nodes.entry(node.to_string()).or_default();
        let renewed = match (&health.lease, renew_time) {
            (Some((old, _)), Some(new)) if *old == new => false,
            (_, Some(new)) => {
                health.lease = Some((new, stamp.at));
                true
            }
            (_, None) => false,
        };
        if renewed && (health.lease_expired || health.ready.is_none()) {
            let was_dead = health.dead();
            health.lease_expired = false;
            if health.ready.is_none() {
                // Remembered as deleted only for its lease's deletion (no Node object seen):
                // a lease renewed again revives it.
                health.deleted = None;
            }
            if was_dead {
                self.mark_node(node, stamp);
            }
        }
    }

    /// A node's lease was deleted (node signals): nothing renews it, so the node counts as
    /// dead until a lease is renewed again (a re-created lease clears it at once).
    pub fn delete_lease(&mut self, node: &str, stamp: Stamp) {
        let health = self.nodes.entry(node.to_string()).or_default();
        let was_dead = health.dead();
        health.lease = None;
        health.lease_expired = true;
        if health.ready.is_none() {
            // No Node object seen: nothing but this entry would ever remove it, so it is
            // remembered like a deleted node ([`DELETED_NODE_RETENTION`]), not forever.
            health.deleted.get_or_insert(stamp.at);
        }
        if !was_dead {
            self.mark_node(node, stamp);
        }
    }

    /// Keeps only the leases of the nodes in `keep` (after a relist of Leases).
    pub fn reset_leases(&mut self, keep: &HashSet<String>, stamp: Stamp) {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(name, h)| h.lease.is_some() && !keep.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.delete_lease(&name, stamp);
        }
    }

    /// Re-evaluates lease expiry, forgets deleted nodes and departed probe verdicts past
    /// their retention and publishes load changes whose [`LOAD_HOLD`] is over; call
    /// periodically (every second).
    pub fn tick(&mut self, stamp: Stamp) {
        for pool in self.services.values_mut().filter_map(|e| e.pool.as_mut()) {
            // Not counted (not targets), so nothing to recount.
            pool.probes.retain(|_, p| {
                p.left.is_none_or(|at| {
                    stamp.at.saturating_duration_since(at) < PROBE_VERDICT_RETENTION
                })
            });
        }
        let held: Vec<(PoolId, String)> = self
            .services
            .iter()
            .filter_map(|(id, e)| Some((id, e.pool.as_ref()?)))
            .flat_map(|(id, p)| {
                p.loads
                    .iter()
                    .filter(|(_, l)| l.filter.release_at().is_some_and(|t| t <= stamp.at))
                    .map(move |(o, _)| (id.clone(), o.clone()))
            })
            .collect();
        for (pool, id) in held {
            self.mark(&pool, vec![id], stamp);
        }
        let forgotten: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, h)| {
                h.deleted.is_some_and(|at| {
                    stamp.at.saturating_duration_since(at) >= DELETED_NODE_RETENTION
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in forgotten {
            // Unknown from now on, so no longer dead: whatever still runs there is re-evaluated.
            self.nodes.remove(&name);
            self.mark_node(&name, stamp);
        }
        let grace = self.config.node_lease_grace;
        let expired: Vec<String> = self
            .nodes
            .iter_mut()
            .filter_map(|(name, h)| {
                let (_, seen) = h.lease.as_ref()?;
                let expired = stamp.at.saturating_duration_since(*seen) > grace;
                (expired && !h.lease_expired).then(|| {
                    h.lease_expired = true;
                    name.clone()
                })
            })
            .collect();
        for node in expired {
            self.mark_node(&node, stamp);
        }
    }

    /// Sets how probe results count (the prober does, once, at start). A changed policy
    /// forgets every probe state.
    pub fn set_probe_policy(&mut self, policy: ProbePolicy, stamp: Stamp) {
        if policy == self.probe_policy {
            return;
        }
        self.probe_policy = policy;
        self.targets_revision += 1;
        let pools: Vec<PoolId> = self.pools().cloned().collect();
        for id in pools {
            if let Some(pool) = self.services.get_mut(&id).and_then(|e| e.pool.as_mut()) {
                pool.clear_probes();
            }
            self.mark_all(&id, stamp);
        }
    }

    /// Changes whenever [`Index::probe_targets`] may return something else; the prober
    /// re-reads the targets only then.
    pub fn probe_targets_revision(&self) -> u64 {
        self.targets_revision
    }

    /// Every endpoint to probe: in pools whose probe annotation (or `--probe-default`) asks
    /// for probes, each endpoint a slice lists ready or serving, at its slice address.
    pub fn probe_targets(&self) -> Vec<ProbeTarget> {
        let mut out = Vec::new();
        for (pool_id, entry) in &self.services {
            let Some(pool) = &entry.pool else { continue };
            let Some(kind) = self.probe_kind(&pool.info) else {
                continue;
            };
            // The best report of each endpoint across the slices, as `compute` picks it.
            let mut best: HashMap<&str, (SliceVerdict, &EndpointInfo, u16)> = HashMap::new();
            for s in entry.slices.values() {
                let Some(port) = probe_port(&s.ports, &pool.info) else {
                    continue;
                };
                for (id, e) in &s.endpoints {
                    let v = slice_verdict(e);
                    if best.get(id.as_str()).is_none_or(|(b, _, _)| v > *b) {
                        best.insert(id, (v, e, port));
                    }
                }
            }
            out.extend(
                best.into_iter()
                    .filter(|(_, (v, _, _))| *v != SliceVerdict::Absent)
                    .map(|(id, (_, e, port))| ProbeTarget {
                        pool: pool_id.clone(),
                        id: id.to_string(),
                        address: e.address.clone(),
                        port,
                        kind,
                        path: pool.info.probe.path.clone(),
                    }),
            );
        }
        out
    }

    /// One probe's result for `target`. Results for a target that is no longer current
    /// (the endpoint left, changed address, or the pool's probe settings changed) are
    /// ignored. Changes the origin only when the failure/success counts cross the policy's
    /// thresholds (hysteresis), or the pool enters/leaves panic mode. A healthy answer is
    /// also the origin's load report, passed on to [`Index::set_load`].
    pub fn apply_probe(&mut self, target: &ProbeTarget, result: ProbeResult, stamp: Stamp) {
        let Some(entry) = self.services.get(&target.pool) else {
            return;
        };
        let Some(pool) = &entry.pool else { return };
        let known = match pool.probes.get(&target.id) {
            // Not a target while its slice says not ready: the verdict stays as it was.
            Some(state) if state.target == *target && state.active => true,
            Some(_) => return,
            None => {
                let kind = self.probe_kind(&pool.info);
                let current = kind.and_then(|kind| {
                    let (e, port) = probe_endpoint(&entry.slices, &pool.info, &target.id)?;
                    (slice_verdict(e) != SliceVerdict::Absent
                        && e.address == target.address
                        && port == target.port
                        && kind == target.kind
                        && pool.info.probe.path == target.path)
                        .then_some(())
                });
                if current.is_none() {
                    return;
                }
                false
            }
        };
        let policy = self.probe_policy.clone();
        let entry = self.services.get_mut(&target.pool).expect("checked above");
        let targets = live_endpoints(&entry.slices);
        let pool = entry.pool.as_mut().expect("checked above");
        if !known {
            pool.probes.insert(
                target.id.clone(),
                ProbeState {
                    target: target.clone(),
                    active: true,
                    failures: 0,
                    successes: 0,
                    down: false,
                    held: false,
                    left: None,
                },
            );
        }
        let state = pool.probes.get_mut(&target.id).expect("inserted above");
        let was_down = state.down;
        let before = (state.counted_down(), state.failing());
        if result.healthy {
            state.failures = 0;
            state.successes = state.successes.saturating_add(1);
            if state.down && state.successes >= policy.successes {
                state.down = false;
            }
        } else {
            state.successes = 0;
            state.failures = state.failures.saturating_add(1);
            if !state.down && state.failures >= policy.failures {
                state.down = true;
            }
        }
        let flipped = state.down != was_down;
        let after = (state.counted_down(), state.failing());
        pool.recount(before, after);
        let mut ids = pool.refresh_panic(policy.panic_threshold, targets);
        let hold = pool.probe_hold;
        let state = pool.probes.get_mut(&target.id).expect("inserted above");
        // Gone down while the pool is failing at once: kept listed (see `probe_hold`).
        state.held = state.down && if flipped { hold } else { state.held };
        if flipped {
            ids.push(target.id.clone());
        }
        let pool_id = target.pool.clone();
        self.mark(&pool_id, ids, stamp);
        // A healthy answer is the origin's load report (docs/DESIGN.md, "Weights and load"):
        // its `Origin-Load`, or none (the pod annotation applies then). A failed probe says
        // nothing about load; the last report stands.
        if result.healthy {
            self.set_load(&pool_id, &target.id, result.load, stamp);
        }
    }

    /// Whether a pool is in probe panic mode.
    pub fn probe_panic(&self, pool: &PoolId) -> bool {
        self.services
            .get(pool)
            .and_then(|e| e.pool.as_ref())
            .is_some_and(PoolState::panicking)
    }

    /// The probe kind a pool uses, if it is probed.
    fn probe_kind(&self, info: &ServiceInfo) -> Option<ProbeKind> {
        match info.probe.mode {
            ProbeMode::Default => self.probe_policy.default,
            ProbeMode::Off => None,
            ProbeMode::On(kind) => Some(kind),
        }
    }

    /// Forgets the probe state of the `ids` whose endpoint no longer matches what was probed
    /// (another address or port) or left the slices (a down verdict is kept for
    /// [`PROBE_VERDICT_RETENTION`]), and notes which are targets.
    fn prune_probes(&mut self, service: &PoolId, ids: &[String], stamp: Stamp) {
        let threshold = self.probe_policy.panic_threshold;
        let Some(ServiceEntry {
            pool: Some(pool),
            slices,
        }) = self.services.get_mut(service)
        else {
            return;
        };
        if pool.probes.is_empty() {
            return;
        }
        for id in ids {
            let Some(state) = pool.probes.get_mut(id) else {
                continue;
            };
            let before = (state.counted_down(), state.failing());
            match probe_endpoint(slices, &pool.info, id) {
                Some((e, port))
                    if e.address == state.target.address && port == state.target.port =>
                {
                    state.set_active(slice_verdict(e) != SliceVerdict::Absent);
                    state.left = None;
                    let after = (state.counted_down(), state.failing());
                    pool.recount(before, after);
                }
                None if state.down => {
                    state.set_active(false);
                    state.left.get_or_insert(stamp.at);
                    pool.recount(before, (false, false));
                }
                _ => {
                    pool.probes.remove(id);
                    pool.recount(before, (false, false));
                }
            }
        }
        let ids = pool.refresh_panic(threshold, live_endpoints(slices));
        self.mark(service, ids, stamp);
    }

    /// Recomputes every dirty origin and returns what changed since the last commit.
    pub fn commit(&mut self, stamp: Stamp) -> Commit {
        let mut out = Commit::default();
        for pool in std::mem::take(&mut self.membership) {
            if !self.is_pool(&pool) {
                self.dirty.remove(&pool);
                if let Some(&revision) = self.retired.get(&pool) {
                    out.changes.push(PoolChange::Removed { pool, revision });
                }
            }
        }
        for (pool_id, dirty) in std::mem::take(&mut self.dirty) {
            let Some(entry) = self.services.get(&pool_id) else {
                continue;
            };
            let Some(pool) = &entry.pool else { continue };
            let trigger = dirty.first_received.unwrap_or(stamp);
            let received = trigger.at;
            let ids: Vec<String> = if dirty.all {
                let mut all: HashSet<String> = pool.published.keys().cloned().collect();
                all.extend(
                    entry
                        .slices
                        .values()
                        .flat_map(|s| s.endpoints.keys().cloned()),
                );
                all.into_iter().collect()
            } else {
                dirty.ids.into_iter().collect()
            };
            let computed: Vec<(String, Computed)> = ids
                .into_iter()
                .map(|id| {
                    let o = self.compute(entry, &pool.info, &id, stamp);
                    (id, o)
                })
                .collect();
            let entry = self.services.get_mut(&pool_id).expect("checked above");
            let listed = entry.slices.values().map(|s| s.endpoints.len()).sum();
            let pool = entry.pool.as_mut().expect("checked above");
            pool.reserve(listed);
            let mut upsert = Vec::new();
            let mut remove = Vec::new();
            for (id, next) in computed {
                let prev = pool.published.get(&id);
                let slice_verdict = next.as_ref().map_or(SliceVerdict::Absent, |(_, v, _)| *v);
                let annotated_load = next.as_ref().and_then(|(_, _, l)| *l);
                let mut next = next.and_then(|(o, _, _)| o);
                match &mut next {
                    Some(n) => {
                        let load = pool.loads.entry(id.clone()).or_default();
                        n.load = load.filter.observe(load.probe.or(annotated_load), stamp.at);
                    }
                    None => {
                        pool.loads.remove(&id);
                    }
                }
                // Signal lead bookkeeping: an origin taken out by a pod/node signal while its
                // slice still said ready is "ahead"; the slice catching up ends the lead.
                let next_level = next
                    .as_ref()
                    .map_or(SliceVerdict::Absent, |o| match o.state {
                        OriginState::Ready => SliceVerdict::Ready,
                        OriginState::Draining => SliceVerdict::Draining,
                    });
                if slice_verdict > next_level {
                    pool.lead_pending.entry(id.clone()).or_insert(received);
                } else if let Some(t) = pool.lead_pending.remove(&id) {
                    if slice_verdict < SliceVerdict::Ready {
                        out.leads.push(stamp.at.saturating_duration_since(t));
                    }
                }
                match (prev, next) {
                    (None, None) => {}
                    (Some(p), None) => {
                        if pool.removed_by_probes(&id) {
                            out.probe_removed.push(pool_id.clone());
                        }
                        remove.push(p.id.clone());
                        pool.published.remove(&id);
                    }
                    (prev, Some(mut n)) => {
                        if let Some(p) = prev {
                            if p.state == n.state {
                                n.since = p.since;
                            }
                            if *p == n {
                                continue;
                            }
                            if p.id != n.id {
                                remove.push(p.id.clone());
                            }
                        }
                        upsert.push(n.clone());
                        pool.published.insert(id, n);
                    }
                }
            }
            if pool.panicking() != pool.probe_panic_reported {
                pool.probe_panic_reported = pool.panicking();
                out.probe_panic.push(ProbePanic {
                    pool: pool_id.clone(),
                    panic: pool.panicking(),
                    down: pool.probes_down,
                    failing: pool.probes_failing,
                    probed: live_endpoints(&entry.slices),
                });
            }
            if !pool.announced {
                pool.announced = true;
                pool.revision += 1;
                out.changes.push(PoolChange::Added {
                    pool: pool_id.clone(),
                    revision: pool.revision,
                    origins: sorted(pool.published.values().cloned().collect()),
                });
                continue;
            }
            if upsert.is_empty() && remove.is_empty() {
                continue;
            }
            pool.revision += 1;
            upsert.sort_by(|a, b| a.id.cmp(&b.id));
            remove.sort();
            out.changes.push(PoolChange::Updated {
                delta: Delta {
                    pool: pool_id.clone(),
                    epoch: self.config.epoch.clone(),
                    revision: pool.revision,
                    upsert,
                    remove,
                    received: Some(trigger.wall),
                },
                received,
            });
        }
        out
    }

    /// Current origins of a pool, sorted by id (for tests and diagnostics).
    pub fn origins(&self, pool: &PoolId) -> Option<Vec<Origin>> {
        let p = self.services.get(pool)?.pool.as_ref()?;
        Some(sorted(p.published.values().cloned().collect()))
    }

    fn compute(
        &self,
        entry: &ServiceEntry,
        info: &ServiceInfo,
        id: &str,
        stamp: Stamp,
    ) -> Computed {
        // The best report of this endpoint across all slices of the Service.
        let (endpoint, port) = entry
            .slices
            .values()
            .filter_map(|s| {
                let e = s.endpoints.get(id)?;
                let port = resolve_port(&s.ports, &info.port)?;
                Some((e, port))
            })
            .max_by_key(|(e, _)| slice_verdict(e))?;
        let verdict = slice_verdict(endpoint);
        let mut state = match verdict {
            SliceVerdict::Absent => None,
            SliceVerdict::Draining => Some(OriginState::Draining),
            SliceVerdict::Ready => Some(OriginState::Ready),
        };
        let pod_key = endpoint
            .pod
            .as_ref()
            .map(|name| (info.pool.namespace.clone(), name.clone()));
        let pod = pod_key.as_ref().and_then(|k| self.pods.get(k));
        if pod_key.as_ref().is_some_and(|k| self.gone_pods.contains(k)) {
            // Deleted from the pod watch while the slice still lists it.
            state = None;
        }
        match pod {
            Some(p) if p.down => state = None,
            Some(p) if p.deleting => state = state.map(|_| OriginState::Draining),
            _ => {}
        }
        let node = endpoint
            .node
            .clone()
            .or_else(|| pod.and_then(|p| p.node.clone()));
        if let Some(n) = &node {
            if self.nodes.get(n).is_some_and(NodeHealth::dead) {
                state = None;
            }
        }
        // Active probes: failing (and the pool not in panic mode) → removed.
        if let Some(pool) = &entry.pool {
            if pool.removed_by_probes(id) {
                state = None;
            }
        }
        let origin_id = match &endpoint.pod {
            Some(name) => name.clone(),
            None => host_port(&endpoint.address, port),
        };
        let url = pod.and_then(|p| p.url.clone()).or_else(|| {
            info.url_template.as_ref().map(|t| {
                expand_template(
                    t,
                    &Placeholders {
                        ip: &endpoint.address,
                        port,
                        pod: endpoint.pod.as_deref().unwrap_or(""),
                        namespace: &info.pool.namespace,
                        node: node.as_deref().unwrap_or(""),
                        zone: endpoint.zone.as_deref().unwrap_or(""),
                        hostname: endpoint.hostname.as_deref().unwrap_or(""),
                    },
                )
            })
        });
        let origin = state.map(|state| Origin {
            id: origin_id,
            url,
            ip: endpoint.address.clone(),
            port,
            node,
            zone: endpoint.zone.clone(),
            state,
            since: stamp.wall,
            weight: pod.map_or(1, |p| p.weight),
            load: None,
        });
        Some((origin, verdict, pod.and_then(|p| p.load)))
    }

    fn mark(&mut self, service: &PoolId, ids: Vec<String>, stamp: Stamp) {
        if ids.is_empty() || !self.is_pool(service) {
            return;
        }
        let d = self.dirty.entry(service.clone()).or_default();
        d.first_received.get_or_insert(stamp);
        d.ids.extend(ids);
    }

    fn mark_all(&mut self, service: &PoolId, stamp: Stamp) {
        let d = self.dirty.entry(service.clone()).or_default();
        d.first_received.get_or_insert(stamp);
        d.all = true;
    }

    fn mark_pod(&mut self, key: &PodKey, stamp: Stamp) {
        let Some(services) = self.pod_refs.get(key) else {
            return;
        };
        let services: Vec<PoolId> = services.keys().map(|s| PoolId::new(&key.0, s)).collect();
        for svc in services {
            self.mark(&svc, vec![key.1.clone()], stamp);
        }
    }

    fn mark_node(&mut self, node: &str, stamp: Stamp) {
        // Node events are rare; scanning the slices is cheaper than another index.
        let hits: Vec<(PoolId, String)> = self
            .services
            .iter()
            .filter(|(_, e)| e.pool.is_some())
            .flat_map(|(svc, e)| {
                e.slices
                    .values()
                    .flat_map(|s| s.endpoints.iter())
                    .filter(|(_, ep)| {
                        ep.node.as_deref() == Some(node)
                            || ep.pod.as_ref().is_some_and(|p| {
                                self.pods
                                    .get(&(svc.namespace.clone(), p.clone()))
                                    .is_some_and(|pi| pi.node.as_deref() == Some(node))
                            })
                    })
                    .map(move |(id, _)| (svc.clone(), id.clone()))
            })
            .collect();
        for (svc, id) in hits {
            self.mark(&svc, vec![id], stamp);
        }
    }

    fn is_pool(&self, service: &PoolId) -> bool {
        self.services.get(service).is_some_and(|e| e.pool.is_some())
    }

    fn ref_pods(&mut self, service: &PoolId, pods: impl IntoIterator<Item = String>) {
        for pod in pods {
            let key = (service.namespace.clone(), pod);
            *self
                .pod_refs
                .entry(key)
                .or_default()
                .entry(service.name.clone())
                .or_default() += 1;
        }
    }

    fn unref_pods(&mut self, service: &PoolId, pods: impl IntoIterator<Item = String>) {
        for pod in pods {
            let key = (service.namespace.clone(), pod);
            let Some(refs) = self.pod_refs.get_mut(&key) else {
                continue;
            };
            if let Some(n) = refs.get_mut(&service.name) {
                *n -= 1;
                if *n == 0 {
                    refs.remove(&service.name);
                }
            }
            if refs.is_empty() {
                self.pod_refs.remove(&key);
                // No slice names it any more: its tombstone has done its job.
                self.gone_pods.remove(&key);
            }
        }
    }
}

impl PoolState {
    /// Sizes the per-origin maps for `listed` endpoints when the pool has grown past what
    /// they were sized for, so that origins leaving and coming back in a pool of steady
    /// size do not grow them step by step: each step allocates a new table, and a large
    /// allocation makes glibc's allocator consolidate its free lists, which was most of the
    /// index's p99 (benches/harness/FINDINGS.md, "The index's p99").
    fn reserve(&mut self, listed: usize) {
        if listed <= self.sized_for {
            return;
        }
        self.sized_for = listed;
        self.published
            .reserve(listed.saturating_sub(self.published.len()));
        self.lead_pending
            .reserve(listed.saturating_sub(self.lead_pending.len()));
        self.loads.reserve(listed.saturating_sub(self.loads.len()));
    }

    fn clear_probes(&mut self) {
        self.probes.clear();
        self.probes_down = 0;
        self.probes_failing = 0;
        self.probe_panic = false;
        self.probe_hold = false;
    }

    /// Moves one probe state's counts from `before` to `after` (counted down, failing).
    fn recount(&mut self, before: (bool, bool), after: (bool, bool)) {
        let step = |count: &mut usize, was: bool, is: bool| match (was, is) {
            (false, true) => *count += 1,
            (true, false) => *count -= 1,
            _ => {}
        };
        step(&mut self.probes_down, before.0, after.0);
        step(&mut self.probes_failing, before.1, after.1);
    }

    /// Re-evaluates, against the pool's `targets` (its live endpoints), panic mode (more than
    /// `threshold` % of them, or all, down: every down origin listed) and the hold (as many
    /// failing: origins going down are held, the ones down before stay removed, so that one
    /// failed probe elsewhere does not bring them back). Returns the ids whose listing
    /// changed: every down origin when panic mode flips, the held ones when the hold ends.
    fn refresh_panic(&mut self, threshold: u8, targets: usize) -> Vec<String> {
        let over = |n: usize| n > 0 && (n >= targets || n * 100 > usize::from(threshold) * targets);
        let (panic, hold) = (over(self.probes_down), over(self.probes_failing));
        let mut ids = Vec::new();
        if panic != self.probe_panic {
            self.probe_panic = panic;
            ids.extend(
                self.probes
                    .iter()
                    .filter(|(_, s)| s.down)
                    .map(|(id, _)| id.clone()),
            );
        }
        if hold != self.probe_hold {
            self.probe_hold = hold;
            if !hold {
                for (id, s) in self.probes.iter_mut().filter(|(_, s)| s.held) {
                    s.held = false;
                    ids.push(id.clone());
                }
            }
        }
        ids
    }

    /// Whether the probes take `id` out of the list: down, neither held nor in a pool in
    /// panic mode.
    fn removed_by_probes(&self, id: &str) -> bool {
        !self.probe_panic && self.probes.get(id).is_some_and(|s| s.down && !s.held)
    }

    /// In panic mode or holding removals: what the panic gauge and log report.
    fn panicking(&self) -> bool {
        self.probe_panic || self.probe_hold
    }
}

impl Slice {
    fn pods(&self) -> impl Iterator<Item = String> + '_ {
        self.endpoints.values().filter_map(|e| e.pod.clone())
    }
}

/// Ids whose endpoint differs between two versions of a slice.
fn changed_ids(old: Option<&Slice>, new: Option<&Slice>) -> Vec<String> {
    let ports_changed = old.map(|s| &s.ports) != new.map(|s| &s.ports);
    let get = |s: Option<&Slice>, id: &str| s.and_then(|s| s.endpoints.get(id)).cloned();
    let mut ids = Vec::new();
    for s in [old, new].into_iter().flatten() {
        for id in s.endpoints.keys() {
            if ports_changed || get(old, id) != get(new, id) {
                ids.push(id.clone());
            }
        }
    }
    ids
}

/// Endpoints the slices list ready or serving: the pool's probe targets, counted per slice
/// (an endpoint moving between slices may count twice for a moment).
fn live_endpoints(slices: &HashMap<String, Slice>) -> usize {
    slices.values().map(|s| s.live).sum()
}

fn sorted(mut v: Vec<Origin>) -> Vec<Origin> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

fn slice_verdict(e: &EndpointInfo) -> SliceVerdict {
    if e.ready && !e.terminating {
        SliceVerdict::Ready
    } else if e.serving && e.terminating {
        SliceVerdict::Draining
    } else {
        SliceVerdict::Absent
    }
}

/// The port to probe on a slice: the probe-port annotation resolved on it, else the
/// advertised port; `None` when the slice does not carry the advertised port (such
/// endpoints are not origins) or the probe port.
fn probe_port(ports: &[SlicePort], info: &ServiceInfo) -> Option<u16> {
    let advertised = resolve_port(ports, &info.port)?;
    match &info.probe.port {
        Some(choice) => resolve_port(ports, choice),
        None => Some(advertised),
    }
}

/// The best report of endpoint `id` across `slices` (as `compute` picks it) with the port
/// to probe it on.
fn probe_endpoint<'a>(
    slices: &'a HashMap<String, Slice>,
    info: &ServiceInfo,
    id: &str,
) -> Option<(&'a EndpointInfo, u16)> {
    slices
        .values()
        .filter_map(|s| Some((s.endpoints.get(id)?, probe_port(&s.ports, info)?)))
        .max_by_key(|(e, _)| slice_verdict(e))
}

fn resolve_port(ports: &[SlicePort], choice: &PortChoice) -> Option<u16> {
    match choice {
        PortChoice::Name(name) => ports.iter().find(|p| p.name == *name).map(|p| p.port),
        PortChoice::Number(n) => ports.iter().find(|p| p.port == *n).map(|p| p.port),
    }
}

/// `ip:port`, with IPv6 addresses bracketed.
pub fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Values for the url-template placeholders.
pub struct Placeholders<'a> {
    /// `{ip}`: the endpoint address as is (IPv6 not bracketed).
    pub ip: &'a str,
    /// `{port}`.
    pub port: u16,
    /// `{pod}`.
    pub pod: &'a str,
    /// `{namespace}`.
    pub namespace: &'a str,
    /// `{node}`.
    pub node: &'a str,
    /// `{zone}`.
    pub zone: &'a str,
    /// `{hostname}`.
    pub hostname: &'a str,
}

/// Expands `{ip}` `{port}` `{pod}` `{namespace}` `{node}` `{zone}` `{hostname}`; anything
/// else in braces is left as written.
pub fn expand_template(template: &str, p: &Placeholders<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find('}') else {
            out.push_str(after);
            return out;
        };
        let name = &after[1..end];
        match name {
            "ip" => out.push_str(p.ip),
            "port" => out.push_str(&p.port.to_string()),
            "pod" => out.push_str(p.pod),
            "namespace" => out.push_str(p.namespace),
            "node" => out.push_str(p.node),
            "zone" => out.push_str(p.zone),
            "hostname" => out.push_str(p.hostname),
            _ => out.push_str(&after[..=end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "index_load_tests.rs"]
mod load_tests;
