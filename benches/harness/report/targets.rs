//! The targets a run is checked against (project issue 13) and the verdicts.
//!
//! Push latency is judged relative to nchan measured in the same run, so machine load
//! moves both sides; the other targets are absolute or relative to nginx.

use super::rows::{Report, KIB, MIB};

/// Subscriber counts at which push p99 is judged, for each transport.
pub const PUSH_TARGET_SIZES: [usize; 2] = [1_000, 10_000];
/// Largest allowed origin-discovery p99 / nchan p99 (WebSocket vs WebSocket, SSE vs
/// EventSource).
pub const PUSH_MAX_RATIO: f64 = 0.5;
/// Smallest allowed controller / nginx snapshot GET requests per second.
const GET_MIN_RATIO: f64 = 1.0;
/// Largest allowed RSS per idle WebSocket subscriber, bytes.
const RSS_PER_SUBSCRIBER_MAX: f64 = 4.0 * KIB;
/// Subscriber count the per-subscriber RSS target is stated for (the full run's
/// largest WebSocket fleet).
const RSS_SUBSCRIBERS: usize = 10_000;
/// Largest allowed RSS while watching the pods phase's pods, bytes.
const RSS_PODS_MAX: f64 = 80.0 * MIB;
/// Largest allowed index cost per event (mean and p99), ns.
const INDEX_MAX_NS: f64 = 20_000.0;

/// One checked target.
#[derive(Clone, Debug)]
pub struct Target {
    /// What is measured.
    pub what: String,
    /// The target, as text.
    pub target: String,
    /// The measurement, as text.
    pub measured: String,
    /// Met or missed; `None` when the run did not measure it.
    pub met: Option<bool>,
}

impl Report {
    /// Every target with its verdict.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        for (transport, peer) in [("WebSocket", "WebSocket"), ("SSE", "EventSource")] {
            for subs in PUSH_TARGET_SIZES {
                let row = self
                    .push
                    .iter()
                    .find(|r| r.transport == transport && r.subscribers == subs);
                let measured = row.and_then(|r| Some((r, r.nchan.as_ref()?, r.p99_ratio()?)));
                t.push(Target {
                    what: format!("push p99, {subs} {transport} subscribers, vs nchan {peer}"),
                    target: format!("≤ {PUSH_MAX_RATIO}× nchan"),
                    measured: measured.map_or("not measured".into(), |(r, n, ratio)| {
                        format!(
                            "{:.2} ms vs {:.2} ms = {ratio:.2}×",
                            r.latency.p99, n.latency.p99
                        )
                    }),
                    met: measured.map(|(r, n, ratio)| {
                        ratio <= PUSH_MAX_RATIO && r.missing == 0 && n.missing == 0
                    }),
                });
            }
        }
        let ratio = self.throughput.ratio();
        t.push(Target {
            what: "snapshot GET throughput vs nginx".into(),
            target: format!("≥ {GET_MIN_RATIO:.1}×"),
            measured: format!("{ratio:.2}×"),
            met: Some(ratio >= GET_MIN_RATIO),
        });
        let m = &self.memory;
        let per_sub = m.per_subscriber();
        t.push(Target {
            what: format!("RSS per idle subscriber ({} subscribers)", m.subscribers),
            target: format!(
                "≤ {:.0} KiB at {RSS_SUBSCRIBERS}",
                RSS_PER_SUBSCRIBER_MAX / KIB
            ),
            measured: format!("{:.1} KiB", per_sub / KIB),
            met: Some(per_sub <= RSS_PER_SUBSCRIBER_MAX),
        });
        t.push(Target {
            what: format!("RSS watching {} pods", m.pods),
            target: format!("≤ {:.0} MiB", RSS_PODS_MAX / MIB),
            measured: format!("{:.1} MiB", m.rss_pods as f64 / MIB),
            met: Some(m.rss_pods as f64 <= RSS_PODS_MAX),
        });
        let i = &self.index;
        t.push(Target {
            what: format!("index cost per event, {} origins", i.origins),
            target: format!("≤ {:.0} µs", INDEX_MAX_NS / 1e3),
            measured: format!(
                "mean {:.2} µs, p99 {:.2} µs (a fixed computation of the same median: p99 {:.2} µs)",
                i.mean_ns / 1e3,
                i.p99_ns / 1e3,
                i.fixed_p99_ns / 1e3
            ),
            met: Some(i.mean_ns <= INDEX_MAX_NS && i.p99_ns <= INDEX_MAX_NS),
        });
        t
    }
}
