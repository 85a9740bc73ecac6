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
//!   synchronise; after a failed probe the next one comes half an interval later, so a
//!   failing origin is confirmed sooner. A target's probes never overlap (with a timeout
//!   longer than the period the next one starts when the previous ends).
//! - **Bounds**: at most [`MAX_IN_FLIGHT`] probes run at once; a probe waits for a permit,
//!   so under overload schedules slip rather than pile up. Sockets: each HTTP target's
//!   task keeps one connection to its origin (dropped after a failure, a timeout or
//!   `Connection: close`, re-opened by the next probe); a TCP probe holds its socket only
//!   while in flight — at most one socket per target, so `targets` in all, of which at
//!   most [`MAX_IN_FLIGHT`] are busy. Results pass through a queue of
//!   [`RESULT_QUEUE`] entries to one task that applies them in batches under one index lock;
//!   when the queue is full the probe tasks wait for it (nothing is dropped).
//! - **Runtime**: a thread of its own with a single-threaded runtime ([`Prober`]).
//! - **Cost**: one task, one timer, one socket and a small buffer per target;
//!   `benches/probe_bench` measures 5,000 HTTP origins at the default interval.

pub mod check;
pub mod config;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::metrics::{Metrics, PoolLabels, ProbeResultLabels};
use crate::shared::Shared;
use check::{HttpProbe, Outcome};
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

/// When a target's first probe comes: `r` (uniform in [0, 1)) of the way into the first
/// interval, so that the targets' probes spread evenly instead of starting together.
fn first_delay(interval: Duration, r: f64) -> Duration {
    interval.mul_f64(r.clamp(0.0, 1.0))
}

/// The time to a target's next probe: the interval after a healthy answer, half of it after
/// a failure (HAProxy's `fastinter`: the failures that remove a frozen origin come sooner,
/// while a healthy origin costs one probe per interval), times a factor within 1 ± [`JITTER`]
/// from `r` (uniform in [0, 1)), so that schedules never synchronise.
fn period(interval: Duration, healthy: bool, r: f64) -> Duration {
    let base = if healthy { interval } else { interval / 2 };
    base.mul_f64(1.0 + JITTER * (2.0 * r.clamp(0.0, 1.0) - 1.0))
}

/// Why the prober stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A probe task panicked (a bug).
    #[error("a probe task panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
    /// Its thread or runtime could not be started.
    #[error("starting the prober thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// It stopped without an error (its handle was dropped, or it panicked).
    #[error("the prober stopped")]
    Stopped,
}

/// Sets the index's probe policy from the flags, starts the prober and adds a task to
/// `tasks` that ends (with an error) only if the prober does, and stops the prober when it
/// is aborted (a critical task, like the sources).
pub fn spawn(tasks: &mut JoinSet<anyhow::Result<()>>, shared: &Arc<Shared>, args: &ProbeArgs) {
    shared.stage(|idx| idx.set_probe_policy(args.policy(), Stamp::now()));
    let prober = Prober::start(shared.clone(), args.clone());
    tasks.spawn(async move { prober.wait().await.map_err(anyhow::Error::from) });
}

/// A running prober: a thread of its own with a single-threaded tokio runtime, so that its
/// many short probe tasks never wake the API's worker threads (and it can never use more
/// than one core). Dropping the handle stops it.
#[derive(Debug)]
pub struct Prober {
    /// Dropped to stop the prober.
    _stop: oneshot::Sender<()>,
    /// Its result, should it end.
    ended: oneshot::Receiver<Result<(), Error>>,
}

impl Prober {
    /// Starts the prober thread.
    pub fn start(shared: Arc<Shared>, args: ProbeArgs) -> Self {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ended_tx, ended_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("prober".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::Runtime)
                    .and_then(|rt| {
                        let span = tracing::info_span!("prober");
                        rt.block_on(tracing::Instrument::instrument(
                            run(shared, args, stop_rx),
                            span,
                        ))
                    });
                let _ = ended_tx.send(result);
            });
        if let Err(e) = thread {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(Error::Runtime(e)));
            return Self {
                _stop: stop_tx,
                ended: rx,
            };
        }
        Self {
            _stop: stop_tx,
            ended: ended_rx,
        }
    }

    /// Resolves only when the prober ended: with its error, or [`Error::Stopped`].
    pub async fn wait(self) -> Result<(), Error> {
        let Self { _stop, ended } = self;
        match ended.await {
            Ok(Ok(())) | Err(_) => Err(Error::Stopped),
            Ok(Err(e)) => Err(e),
        }
    }
}

/// Runs the prober until `stop` resolves or is dropped: keeps one probe task per target
/// and applies their results.
pub async fn run(
    shared: Arc<Shared>,
    args: ProbeArgs,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), Error> {
    let (tx, mut rx) = mpsc::channel(RESULT_QUEUE);
    let ctx = Arc::new(Context {
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
            _ = &mut stop => return Ok(()),
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
        // The pool's panic gauge exists (at 0) from its first probe target on, so that "not
        // in panic" is a series a query and an alert can see, not a missing one.
        let _ = metrics.probe_panic.get_or_create(&PoolLabels {
            pool: target.pool.to_string(),
        });
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
    let mut http = addr.map(|a| HttpProbe::new(a, &target.path));
    let mut next = Instant::now() + first_delay(ctx.interval, rand::rng().random());
    loop {
        tokio::time::sleep_until(next).await;
        let outcome = {
            let _permit = ctx.permits.acquire().await.expect("never closed");
            let started = Instant::now();
            let probe = async {
                match (target.kind, addr, http.as_mut()) {
                    (ProbeKind::Tcp, Some(addr), _) => check::tcp(addr).await,
                    (ProbeKind::Http, _, Some(http)) => http.probe().await,
                    // An address that is not an IP (slices of FQDN type are never targets).
                    _ => Outcome::Error,
                }
            };
            let outcome = match tokio::time::timeout(ctx.timeout, probe).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // Cut short mid-exchange: the connection's state is unknown.
                    if let Some(http) = http.as_mut() {
                        http.reset();
                    }
                    Outcome::Timeout
                }
            };
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
        next += period(ctx.interval, result.healthy, rand::rng().random());
        next = next.max(Instant::now());
    }
}

#[cfg(test)]
mod schedule_tests {
    use super::*;

    #[test]
    fn first_probes_spread_over_the_interval_and_periods_stay_within_the_jitter() {
        let interval = Duration::from_millis(500);
        assert_eq!(first_delay(interval, 0.0), Duration::ZERO);
        assert_eq!(first_delay(interval, 0.5), Duration::from_millis(250));
        assert!(first_delay(interval, 0.999) < interval);
        // Healthy: 500 ms ± 5 %; failed: the re-check at 250 ms ± 5 %.
        assert_eq!(period(interval, true, 0.0), Duration::from_millis(475));
        assert_eq!(period(interval, true, 0.5), interval);
        assert!(period(interval, true, 0.999_999) <= Duration::from_millis(525));
        assert_eq!(period(interval, false, 0.0), Duration::from_micros(237_500));
        assert_eq!(period(interval, false, 0.5), Duration::from_millis(250));
        // Over many draws the periods really spread (no two schedules lock together).
        let draws: Vec<Duration> = (0..1000)
            .map(|_| period(interval, true, rand::rng().random()))
            .collect();
        let (min, max) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
        assert!(*min >= Duration::from_millis(475) && *max <= Duration::from_millis(525));
        assert!(*max - *min >= Duration::from_millis(40), "{min:?}..{max:?}");
    }
}
