//! What one run measured, as plain rows: the harness fills them, the targets, the tables
//! and the plot read them.

use crate::index_bench::IndexResult;
use crate::procs::WrkResult;
use crate::stats::Summary;

/// Bytes in a KiB.
pub const KIB: f64 = 1024.0;
/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// Push latency at one subscriber count and transport, origin-discovery and (where
/// measured) nchan, in rounds alternating between the two.
#[derive(Clone, Debug)]
pub struct PushRow {
    /// `WebSocket` or `SSE`.
    pub transport: &'static str,
    /// Measured subscribers (per server).
    pub subscribers: usize,
    /// Rounds (per server).
    pub rounds: usize,
    /// origin-discovery, pod event in the simulator → frame read, over all subscribers ×
    /// rounds, ms.
    pub latency: Summary,
    /// origin-discovery arrivals that never came.
    pub missing: usize,
    /// The controller's own histogram over the same rounds (event arrival in the
    /// controller → frame written): mean, ms.
    pub inside_mean_ms: f64,
    /// Same: upper bound of the bucket holding p99, ms.
    pub inside_p99_bound_ms: f64,
    /// Smallest and largest delta frame of the rounds, bytes (nchan's messages have the
    /// same sizes, round by round).
    pub frame_bytes: (usize, usize),
    /// nchan at the same size and transport, if measured.
    pub nchan: Option<PeerRow>,
    /// CPU time per round of each process involved.
    pub cpu: CpuRow,
}

impl PushRow {
    /// origin-discovery p99 / nchan p99, if nchan was measured.
    pub fn p99_ratio(&self) -> Option<f64> {
        self.nchan
            .as_ref()
            .map(|n| self.latency.p99 / n.latency.p99.max(1e-9))
    }

    /// origin-discovery p50 / nchan p50, if nchan was measured.
    pub fn p50_ratio(&self) -> Option<f64> {
        self.nchan
            .as_ref()
            .map(|n| self.latency.p50 / n.latency.p50.max(1e-9))
    }
}

/// The push peer's (nchan's) latency over its rounds.
#[derive(Clone, Debug)]
pub struct PeerRow {
    /// Just before the publish POST was written → message read, over all subscribers ×
    /// rounds, ms.
    pub latency: Summary,
    /// Arrivals that never came.
    pub missing: usize,
}

/// On-CPU time per round, ms, averaged over the rounds (`procs::cpu_ms`). An
/// origin-discovery round fans out two deltas (the change, then the replacement pod) and
/// runs the simulator; an nchan round fans out one message.
#[derive(Clone, Debug, Default)]
pub struct CpuRow {
    /// The controller, during origin-discovery's rounds.
    pub controller_ms: f64,
    /// The harness process (simulator, origin-discovery's subscribers, the observer),
    /// during origin-discovery's rounds.
    pub harness_ms: f64,
    /// nginx + nchan (master and workers), during nchan's rounds.
    pub nchan_ms: Option<f64>,
    /// The agent (nchan's subscribers and the publisher), during nchan's rounds.
    pub agent_ms: Option<f64>,
}

/// Signal lead at one EndpointSlice delay.
#[derive(Clone, Debug)]
pub struct LeadRow {
    /// The simulator's EndpointSlice delay, ms.
    pub delay_ms: u64,
    /// Subscribers.
    pub subscribers: usize,
    /// Rounds.
    pub rounds: usize,
    /// Slice event − delta arrival, ms, over all subscribers × rounds.
    pub lead: Summary,
}

/// Snapshot GET throughput, controller vs nginx.
#[derive(Clone, Debug)]
pub struct Throughput {
    /// Alternating rounds per server (the duration is split over them).
    pub rounds: u32,
    /// wrk threads.
    pub threads: u32,
    /// wrk connections.
    pub connections: u32,
    /// wrk duration per server, all rounds, s.
    pub seconds: u64,
    /// Bytes of the snapshot body.
    pub body_bytes: usize,
    /// Against the controller.
    pub controller: WrkResult,
    /// Against nginx.
    pub nginx: WrkResult,
}

impl Throughput {
    /// Controller requests/s ÷ nginx requests/s.
    pub fn ratio(&self) -> f64 {
        self.controller.rps / self.nginx.rps.max(1e-9)
    }
}

/// Memory figures.
#[derive(Clone, Debug)]
pub struct Memory {
    /// RSS with no subscribers, bytes.
    pub rss_idle: u64,
    /// Idle subscribers connected for the second reading.
    pub subscribers: usize,
    /// RSS with them, bytes.
    pub rss_subscribed: u64,
    /// nginx + nchan (master and workers) with no subscribers and with as many idle
    /// WebSocket subscribers, bytes, for reference.
    pub nchan: Option<(u64, u64)>,
    /// Watched pods (all ready origins).
    pub pods: usize,
    /// Pools they are spread over.
    pub pools: usize,
    /// RSS while watching them, bytes.
    pub rss_pods: u64,
    /// Time from controller start to every origin listed ready, s.
    pub sync_seconds: f64,
}

impl Memory {
    /// (subscribed − idle) / subscribers, bytes.
    pub fn per_subscriber(&self) -> f64 {
        per_subscriber(self.rss_idle, self.rss_subscribed, self.subscribers)
    }

    /// The same for nchan, if measured.
    pub fn nchan_per_subscriber(&self) -> Option<f64> {
        self.nchan
            .map(|(idle, subscribed)| per_subscriber(idle, subscribed, self.subscribers))
    }
}

fn per_subscriber(idle: u64, subscribed: u64, n: usize) -> f64 {
    subscribed.saturating_sub(idle) as f64 / n.max(1) as f64
}

/// Everything one run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// `--quick`.
    pub quick: bool,
    /// The command that produced it.
    pub command: String,
    /// UTC start time.
    pub started: String,
    /// Wall time of the run, s.
    pub seconds: f64,
    /// Machine facts.
    pub machine: super::Machine,
    /// Push latency rows.
    pub push: Vec<PushRow>,
    /// Signal lead rows.
    pub leads: Vec<LeadRow>,
    /// Snapshot throughput.
    pub throughput: Throughput,
    /// Memory.
    pub memory: Memory,
    /// Index microbenchmark.
    pub index: IndexResult,
    /// File name of the plot, relative to the report.
    pub plot: String,
    /// Hand-written sections appended to the full report: the profiles and evidence behind
    /// any missed target (`benches/harness/FINDINGS.md`), and results of other runs (soak,
    /// probes, ranking simulation; `main.rs`, `APPENDICES`).
    pub findings: Option<String>,
}
