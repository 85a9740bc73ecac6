//! The active prober (docs/DESIGN.md, "Active probes"): one more source for the origin
//! index. Kubernetes learns of a frozen process, a dead node or a partition only through
//! its own timers, and a client's socket to such an origin stays open; so the controller
//! probes every origin itself and feeds the verdicts to the index, which removes failing
//! origins like any pod-level signal (hysteresis and panic mode live there, pure).
//!
//! - **Targets** come from the index ([`Shared::probe_targets`]): every endpoint an
//!   EndpointSlice lists ready or serving, at its slice address — never a URL template or
//!   annotation — in pools whose Service asks for probes (`origin-discovery.io/probe`, or
//!   `--probe-default`). They are re-read whenever the index's target revision changes
//!   (checked every half interval).
//! - **Schedule**: one task per target; its first probe comes at a random moment within the
//!   first interval, then one every interval ± 5 %, so probes spread evenly and never
//!   synchronise. A target's probes never overlap (with a timeout longer than the interval
//!   the next one starts when the previous ends).
//! - **Bounds**: at most [`MAX_IN_FLIGHT`] probes run at once; a probe waits for a permit,
//!   so under overload schedules slip rather than pile up. Sockets: one kept-alive
//!   connection per HTTP target (hyper-util's pool, at most one idle connection per
//!   `ip:port`, closed after three idle intervals) plus at most one per in-flight probe —
//!   at most `targets + MAX_IN_FLIGHT` in all. Results pass through a queue of
//!   [`RESULT_QUEUE`] entries to one task that applies them in batches under one index lock;
//!   when the queue is full the probe tasks wait for it (nothing is dropped).
//! - **Cost**: about one task, one timer and one idle socket per target; `benches/probe_bench`
//!   measures 5,000 HTTP origins at the default interval.

pub mod check;
pub mod config;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::metrics::{Metrics, ProbeResultLabels};
use crate::shared::Shared;
use check::{HttpClient, Outcome};
use config::ProbeArgs;
use origin_discovery_core::index::ProbeTarget;
use origin_discovery_core::signals::{ProbeKind, ProbeResult, Stamp};

/// Most probes in flight at once, across all targets.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Capacity of the queue from the probe tasks to the index.
pub const RESULT_QUEUE: usize = 4096;
/// Most results applied under one index lock.
const BATCH: usize = 1024;
/// Each period is the interval times a factor within 1 ± this.
const JITTER: f64 = 0.05;

/// Why the prober stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A probe task panicked (a bug).
    #[error("a probe task panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
}

/// Sets the index's probe policy from the flags and spawns the prober into `tasks` (a
/// critical task: it never ends on its own).
pub fn spawn(tasks: &mut JoinSet<anyhow::Result<()>>, shared: &Arc<Shared>, args: &ProbeArgs) {
    shared.stage(|idx| idx.set_probe_policy(args.policy(), Stamp::now()));
    let shared = shared.clone();
    let args = args.clone();
    tasks.spawn(async move {
        let span = tracing::info_span!("prober");
        tracing::Instrument::instrument(run(shared, args), span)
            .await
            .map_err(anyhow::Error::from)
    });
}

/// Runs the prober: keeps one probe task per target and applies their results.
pub async fn run(shared: Arc<Shared>, args: ProbeArgs) -> Result<(), Error> {
    let (tx, mut rx) = mpsc::channel(RESULT_QUEUE);
    let ctx = Arc::new(Context {
        client: check::http_client(args.probe_interval, args.probe_timeout),
        permits: Semaphore::new(MAX_IN_FLIGHT),
        results: tx,
        interval: args.probe_interval,
        timeout: args.probe_timeout,
        metrics: shared.metrics.clone(),
    });
    tracing::info!(
        default = ?args.probe_default,
        interval = ?args.probe_interval,
        timeout = ?args.probe_timeout,
        failures = args.probe_failures,
        successes = args.probe_successes,
        panic_threshold = args.probe_panic_threshold,
        "active prober started"
    );
    let mut probes: HashMap<Arc<ProbeTarget>, AbortHandle> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut revision = None;
    let period = (args.probe_interval / 2).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut refresh = tokio::time::interval(period);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                if let Some((rev, targets)) = shared.probe_targets(revision) {
                    revision = Some(rev);
                    reconcile(&mut probes, &mut tasks, targets, &ctx);
                }
            }
            // Never 0: `ctx` holds a sender.
            _ = rx.recv_many(&mut batch, BATCH) => {
                shared.apply_probes(&batch);
                batch.clear();
            }
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => {
                match ended {
                    Err(e) if e.is_panic() => return Err(Error::Panicked(e)),
                    _ => {} // aborted: its target went away
                }
            }
        }
    }
}

/// Starts a task for every new target and stops those of targets that went away.
fn reconcile(
    probes: &mut HashMap<Arc<ProbeTarget>, AbortHandle>,
    tasks: &mut JoinSet<()>,
    targets: Vec<ProbeTarget>,
    ctx: &Arc<Context>,
) {
    let wanted: HashMap<Arc<ProbeTarget>, ()> =
        targets.into_iter().map(|t| (Arc::new(t), ())).collect();
    probes.retain(|t, handle| {
        let keep = wanted.contains_key(t);
        if !keep {
            handle.abort();
        }
        keep
    });
    let mut added = 0usize;
    for (target, ()) in wanted {
        if probes.contains_key(&target) {
            continue;
        }
        let handle = tasks.spawn(probe_loop(ctx.clone(), target.clone()));
        probes.insert(target, handle);
        added += 1;
    }
    tracing::debug!(targets = probes.len(), added, "probe targets changed");
}

/// What every probe task shares.
struct Context {
    client: HttpClient,
    permits: Semaphore,
    results: mpsc::Sender<(Arc<ProbeTarget>, ProbeResult)>,
    interval: Duration,
    timeout: Duration,
    metrics: Metrics,
}

/// The result counters of one pool, looked up once per target.
struct Counters {
    healthy: Counter,
    unhealthy: Counter,
    timeout: Counter,
    error: Counter,
}

impl Counters {
    fn new(metrics: &Metrics, target: &ProbeTarget) -> Self {
        let get = |result| {
            metrics
                .probe_results
                .get_or_create(&ProbeResultLabels {
                    pool: target.pool.to_string(),
                    result,
                })
                .clone()
        };
        Self {
            healthy: get("healthy"),
            unhealthy: get("unhealthy"),
            timeout: get("timeout"),
            error: get("error"),
        }
    }

    fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Healthy(_) => &self.healthy,
            Outcome::Unhealthy => &self.unhealthy,
            Outcome::Timeout => &self.timeout,
            Outcome::Error => &self.error,
        }
        .inc();
    }
}

/// Probes one target forever (until aborted), reporting every result.
async fn probe_loop(ctx: Arc<Context>, target: Arc<ProbeTarget>) {
    let counters = Counters::new(&ctx.metrics, &target);
    let addr = target
        .address
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, target.port));
    let uri = addr.and_then(|a| check::probe_uri(a, &target.path));
    let mut next = Instant::now() + ctx.interval.mul_f64(rand::rng().random::<f64>());
    loop {
        tokio::time::sleep_until(next).await;
        let outcome = {
            let _permit = ctx.permits.acquire().await.expect("never closed");
            let started = Instant::now();
            let probe = async {
                match (target.kind, addr, &uri) {
                    (ProbeKind::Tcp, Some(addr), _) => check::tcp(addr).await,
                    (ProbeKind::Http, _, Some(uri)) => check::http(&ctx.client, uri).await,
                    // An address that is not an IP (slices of FQDN type are never targets).
                    _ => Outcome::Error,
                }
            };
            let outcome = tokio::time::timeout(ctx.timeout, probe)
                .await
                .unwrap_or(Outcome::Timeout);
            ctx.metrics
                .probe_duration
                .observe(started.elapsed().as_secs_f64());
            outcome
        };
        counters.count(outcome);
        let result = match outcome {
            Outcome::Healthy(load) => ProbeResult {
                healthy: true,
                load,
            },
            _ => ProbeResult {
                healthy: false,
                load: None,
            },
        };
        if ctx.results.send((target.clone(), result)).await.is_err() {
            return; // the prober is gone
        }
        let factor = 1.0 + JITTER * (2.0 * rand::rng().random::<f64>() - 1.0);
        next += ctx.interval.mul_f64(factor);
        next = next.max(Instant::now());
    }
}
