//! The report: Markdown tables with each target marked met/missed, and the push-latency
//! plot (SVG, drawn with plotters).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use crate::index_bench::IndexResult;
use crate::procs::WrkResult;
use crate::stats::Summary;

/// Push latency at one subscriber count.
#[derive(Clone, Debug)]
pub struct PushRow {
    /// `WebSocket` or `SSE`.
    pub transport: &'static str,
    /// Measured subscribers.
    pub subscribers: usize,
    /// Rounds.
    pub rounds: usize,
    /// Over all subscribers × rounds, ms.
    pub latency: Summary,
    /// Arrivals that never came.
    pub missing: usize,
    /// The controller's own histogram over the same rounds (event arrival in the
    /// controller → frame written): mean, ms.
    pub inside_mean_ms: f64,
    /// Same: upper bound of the bucket holding p99, ms.
    pub inside_p99_bound_ms: f64,
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
    /// wrk threads.
    pub threads: u32,
    /// wrk connections.
    pub connections: u32,
    /// wrk duration, s.
    pub seconds: u64,
    /// Bytes of the snapshot body.
    pub body_bytes: usize,
    /// Against the controller.
    pub controller: WrkResult,
    /// Against nginx.
    pub nginx: WrkResult,
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
    /// Watched pods (all ready origins).
    pub pods: usize,
    /// Pools they are spread over.
    pub pools: usize,
    /// RSS while watching them, bytes.
    pub rss_pods: u64,
    /// Time from controller start to every origin listed ready, s.
    pub sync_seconds: f64,
}

/// Machine facts.
#[derive(Clone, Debug)]
pub struct Machine {
    /// `nproc`.
    pub cores: usize,
    /// CPU model.
    pub cpu: String,
    /// MemTotal, GiB.
    pub mem_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Load average at start.
    pub load: String,
}

impl Machine {
    /// Reads /proc.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            mem_gib: mem_kb / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            load: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
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
    pub machine: Machine,
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
    /// Hand-written analysis appended to the full report (`benches/harness/FINDINGS.md`):
    /// the profiles and evidence behind any missed target.
    pub findings: Option<String>,
}

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

fn verdict(quick: bool, ok: bool) -> &'static str {
    match (quick, ok) {
        (true, _) => "— (quick run)",
        (false, true) => "**met**",
        (false, false) => "**missed**",
    }
}

impl Report {
    /// Targets as `(what, target, measured, met)`.
    pub fn targets(&self) -> Vec<(String, String, String, Option<bool>)> {
        let mut t = Vec::new();
        for (subs, limit) in [(1_000, 5.0), (10_000, 50.0)] {
            let row = self
                .push
                .iter()
                .find(|r| r.transport == "WebSocket" && r.subscribers == subs);
            t.push((
                format!("push p99, {subs} WebSocket subscribers"),
                format!("≤ {limit} ms"),
                row.map_or("not measured".into(), |r| {
                    format!("{:.2} ms", r.latency.p99)
                }),
                row.map(|r| r.latency.p99 <= limit && r.missing == 0),
            ));
        }
        let ratio = self.throughput.controller.rps / self.throughput.nginx.rps.max(1e-9);
        t.push((
            "snapshot GET throughput vs nginx".into(),
            "≥ 0.5×".into(),
            format!("{ratio:.2}×"),
            Some(ratio >= 0.5),
        ));
        let m = &self.memory;
        let per_sub = m.rss_subscribed.saturating_sub(m.rss_idle) as f64 / m.subscribers as f64;
        t.push((
            format!("RSS per idle subscriber ({} subscribers)", m.subscribers),
            "≤ 16 KiB".into(),
            format!("{:.1} KiB", per_sub / KIB),
            Some(per_sub <= 16.0 * KIB),
        ));
        t.push((
            format!("RSS watching {} pods", m.pods),
            "≤ 80 MiB".into(),
            format!("{:.1} MiB", m.rss_pods as f64 / MIB),
            Some(m.rss_pods as f64 <= 80.0 * MIB),
        ));
        let i = &self.index;
        t.push((
            format!("index cost per event, {} origins", i.origins),
            "≤ 20 µs".into(),
            format!(
                "mean {:.2} µs, p99 {:.2} µs",
                i.mean_ns / 1e3,
                i.p99_ns / 1e3
            ),
            Some(i.mean_ns <= 20_000.0 && i.p99_ns <= 20_000.0),
        ));
        t
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let title = if self.quick {
            "Benchmarks (quick smoke run — small sizes, not the published numbers)"
        } else {
            "Benchmarks"
        };
        let _ = writeln!(s, "# {title}\n");
        let _ = writeln!(
            s,
            "Produced by `{}` on {} in {:.0} s. Regenerate with the same command; \
             the harness is `benches/harness/`, the method is described below.\n",
            self.command, self.started, self.seconds
        );
        let _ = writeln!(
            s,
            "Machine: {} cores ({}), {:.1} GiB memory, Linux {}, load average at start {}. \
             The machine was shared with other jobs during the run, so absolute numbers are \
             noisy; the controller, the harness (simulator + subscribers), wrk and nginx all \
             share the same {} cores over loopback.\n",
            m.cores, m.cpu, m.mem_gib, m.kernel, m.load, m.cores
        );
        let _ = writeln!(s, "## Targets\n");
        let _ = writeln!(
            s,
            "| what | target | measured | verdict |\n|---|---|---|---|"
        );
        for (what, target, measured, met) in self.targets() {
            let v = match met {
                Some(ok) => verdict(self.quick, ok),
                None => "not measured",
            };
            let _ = writeln!(s, "| {what} | {target} | {measured} | {v} |");
        }
        let _ = writeln!(s, "\n## Push latency\n");
        let _ = writeln!(
            s,
            "Pod watch event committed in the simulator (`SimEvent.at`) → delta frame read by \
             each subscriber, over all subscribers × rounds (rounds alternate a container crash \
             and a graceful delete; each is followed by a replacement pod). The last column is the controller's own \
             `origin_discovery_push_latency_seconds` over the same rounds (every delta of the rounds, replacements included; watch event \
             arrival in the controller → frame written; p99 at histogram-bucket resolution), \
             which separates the time spent inside the controller from the simulator → \
             controller watch hop and the subscribers' scheduling.\n"
        );
        let _ = writeln!(
            s,
            "| transport | subscribers | rounds | samples | min ms | p50 ms | p99 ms | max ms | missing | controller-internal mean / p99 ≤ ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.push {
            let l = &r.latency;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.2} / {:.2} |",
                r.transport,
                r.subscribers,
                r.rounds,
                l.n,
                l.min,
                l.p50,
                l.p99,
                l.max,
                r.missing,
                r.inside_mean_ms,
                r.inside_p99_bound_ms
            );
        }
        let _ = writeln!(s, "\n![push latency against subscribers]({})\n", self.plot);
        let _ = writeln!(s, "## Signal lead\n");
        let _ = writeln!(
            s,
            "EndpointSlice change committed in the simulator minus the subscriber's delta \
             arrival (positive: the subscriber knew first), per subscriber × round.\n"
        );
        let _ = writeln!(
            s,
            "| EndpointSlice delay | subscribers | rounds | min ms | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.leads {
            let l = &r.lead;
            let _ = writeln!(
                s,
                "| {} ms | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.delay_ms, r.subscribers, r.rounds, l.min, l.p50, l.p99, l.max
            );
        }
        let t = &self.throughput;
        let _ = writeln!(s, "\n## Snapshot throughput\n");
        let _ = writeln!(
            s,
            "`wrk -t{} -c{} -d{}s --latency` against `GET /v1/pools/bench/origin` ({} bytes, \
             10 origins) and, right after, against nginx (2 workers, `sendfile`, access log \
             off) serving the identical bytes as a static file.\n",
            t.threads, t.connections, t.seconds, t.body_bytes
        );
        let _ = writeln!(
            s,
            "| server | requests/s | mean ms | p50 ms | p99 ms | max ms | errors |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for (name, r) in [("origin-discovery", &t.controller), ("nginx", &t.nginx)] {
            let _ = writeln!(
                s,
                "| {name} | {:.0} | {:.3} | {:.3} | {:.3} | {:.2} | {} |",
                r.rps, r.mean_ms, r.p50_ms, r.p99_ms, r.max_ms, r.errors
            );
        }
        let _ = writeln!(
            s,
            "\nRatio: {:.2}× nginx.\n",
            t.controller.rps / t.nginx.rps.max(1e-9)
        );
        let mem = &self.memory;
        let _ = writeln!(s, "## Memory (controller VmRSS)\n");
        let _ = writeln!(s, "| state | RSS |\n|---|---:|");
        let _ = writeln!(
            s,
            "| 1 pool of 10 origins, no subscribers | {:.1} MiB |",
            mem.rss_idle as f64 / MIB
        );
        let _ = writeln!(
            s,
            "| same, {} idle WebSocket subscribers | {:.1} MiB ({:.1} KiB per subscriber) |",
            mem.subscribers,
            mem.rss_subscribed as f64 / MIB,
            mem.rss_subscribed.saturating_sub(mem.rss_idle) as f64 / mem.subscribers as f64 / KIB
        );
        let _ = writeln!(
            s,
            "| {} pods in {} pools, all ready, no subscribers (synced in {:.1} s) | {:.1} MiB |",
            mem.pods,
            mem.pools,
            mem.sync_seconds,
            mem.rss_pods as f64 / MIB
        );
        let i = &self.index;
        let _ = writeln!(s, "\n## Index cost\n");
        let _ = writeln!(
            s,
            "In-process `Index::apply_pod` + `Index::commit`, one pod flipping up/down per \
             event, {} origins in {} pools, {} events.\n",
            i.origins, i.pools, i.events
        );
        let _ = writeln!(
            s,
            "| mean | p50 | p99 | max |\n|---:|---:|---:|---:|\n| {:.2} µs | {:.2} µs | {:.2} µs | {:.2} µs |",
            i.mean_ns / 1e3,
            i.p50_ns / 1e3,
            i.p99_ns / 1e3,
            i.max_ns / 1e3
        );
        s.push_str(METHOD);
        if let Some(f) = &self.findings {
            let _ = writeln!(s, "\n{}", f.trim_end());
        }
        s
    }

    /// Draws push latency (p50, p99, max; WebSocket lines, SSE points) against
    /// subscriber count, both axes logarithmic, with the targets marked.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let hi = self
            .push
            .iter()
            .map(|r| r.latency.max)
            .fold(60.0_f64, f64::max)
            * 2.0;
        let lo = self
            .push
            .iter()
            .map(|r| r.latency.p50)
            .fold(1.0_f64, f64::min)
            .max(0.01)
            / 2.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "origin-discovery push latency (pod event → delta received)",
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((50.0_f64..20_000.0_f64).log_scale(), (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("subscribers")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| short(*y))
            .draw()?;
        let ws: Vec<&PushRow> = self
            .push
            .iter()
            .filter(|r| r.transport == "WebSocket")
            .collect();
        let series: [Series; 3] = [
            ("WebSocket p50", BLUE, |s| s.p50),
            ("WebSocket p99", RED, |s| s.p99),
            ("WebSocket max", BLACK, |s| s.max),
        ];
        for (label, color, pick) in series {
            let pts: Vec<(f64, f64)> = ws
                .iter()
                .map(|r| (r.subscribers as f64, pick(&r.latency).max(lo)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        let sse: Vec<&PushRow> = self.push.iter().filter(|r| r.transport == "SSE").collect();
        for (label, color, pick) in [
            (
                "SSE p50",
                BLUE,
                (|s: &Summary| s.p50) as fn(&Summary) -> f64,
            ),
            ("SSE p99", RED, |s| s.p99),
            ("SSE max", BLACK, |s| s.max),
        ] {
            chart
                .draw_series(sse.iter().map(|r| {
                    TriangleMarker::new(
                        (r.subscribers as f64, pick(&r.latency).max(lo)),
                        6,
                        color.filled(),
                    )
                }))?
                .label(label)
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 5, color.filled()));
        }
        let green = RGBColor(0, 150, 0);
        chart
            .draw_series(
                [(1_000.0, 5.0), (10_000.0, 50.0)]
                    .into_iter()
                    .map(|p| Cross::new(p, 7, green.stroke_width(2))),
            )?
            .label("p99 target")
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, green.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// How the numbers are made (static text of the report).
const METHOD: &str = r#"
## Method

- **Command.** `scripts/bench.sh` runs the full benchmark: about 1.5 minutes after the
  build, and it writes this file and `docs/push-latency.svg`. `scripts/bench.sh --quick`
  (`make bench-quick`, part of `make test`) runs small sizes and writes
  `target/bench-quick.md` instead. The script installs `wrk` and `nginx` with `apt-get`
  when they are missing, and builds the release profile (`cargo bench --no-run`; the first
  build takes several minutes on 2 cores). It raises `ulimit -n` to the hard limit, and the
  harness raises its soft limit itself and passes it on to the controller. It runs
  `cargo bench --bench harness -- [--quick]` in its own process group under a timeout, and
  stops that whole group on exit, so no controller, nginx or wrk is left running.
- **Processes.** The simulated API server (`kube_sim`) runs inside the
  harness. The controller is the release binary running as its own process:
  `origin-discovery run --kubeconfig <simulator> --listen 127.0.0.1:0 --admin-listen
  127.0.0.1:0 --max-subscribers 100000 --max-subscribers-per-ip 100000 --log-format json`.
  The harness reads the bound addresses from its start-up log line. All other flags keep
  their defaults, so heartbeats go out every 5 s. Because the simulator is in the harness,
  `SimEvent.at` and the subscribers' arrival times come from the same monotonic clock.
- **Push latency.** One pool, `bench/origin`, with 10 origins; the simulated kubelet
  starts pods in 200 ms. WebSocket subscribers are added in steps, 100 → 1,000 → 10,000,
  on one controller: the earlier subscribers stay connected and are measured too. Then
  they are closed and the SSE subscribers connect. Each round picks a ready origin.
  Even rounds crash it (container terminated, Ready=False); odd rounds delete it with a
  1 s grace period. The start of the measurement is the pod's `Modified` event in the
  simulator (`SimEvent.at`). An extra, fully decoding subscriber, not counted, finds the
  revision that carries the change (the origin removed, or upserted as `draining`). For
  every subscriber, the latency is the `Instant` that revision's frame was read (taken
  before any parsing) minus the start. After each round a replacement pod is created
  (and a crashed pod deleted), and the round waits until the pool has 10 ready origins
  again. The harness's WebSocket subscribers use a 4 KiB read buffer (see the findings
  below).
- **Signal lead.** The start is the first EndpointSlice event of the Service in which
  the origin's endpoint is not ready (crash), terminating (delete), or gone; the lead is
  that event's `at` minus each subscriber's arrival time. With a delay of 0, the simulated
  EndpointSlice controller commits within about a millisecond of the pod change, before
  the controller → subscriber hop completes, so the lead is slightly negative: there is
  nothing to get ahead of. With a 1 s delay, the subscribers know about 1 s before the
  EndpointSlice changes. The lead is measured on a separate simulator and controller with
  100 WebSocket subscribers.
- **Snapshot throughput.** `wrk` runs with the same threads, connections and duration,
  first against the controller and then against nginx, which the harness starts as a
  non-daemon child. nginx has its own config, temp and log directories in a temporary
  directory, 2 workers, `sendfile`, and the access log off, and it serves the bytes the
  controller just returned, as a static file at the same path with
  `Content-Type: application/json`.
- **Memory.** `VmRSS` of the controller from `/proc/<pid>/status`. The idle reading is
  taken 2 s after the pool synced, with no subscribers. The subscribed reading is taken
  3 s after the 10,000th WebSocket subscriber received its snapshot, and per subscriber =
  (subscribed − idle) / 10,000. The pods reading uses a fresh controller on a fresh
  simulator with 50 labelled Services × 100 pods, all ready, taken 3 s after the
  controller lists all 5,000 origins as ready.
- **Index.** In process: `origin_discovery_core::index::Index` with 50 pools × 100 origins in
  EndpointSlices of 100 endpoints, with a URL template. Each event flips one
  pseudo-random pod between up and down, so every event yields a delta. `apply_pod` and
  `commit` are timed together with `Instant`, over 20,000 events.
- **Noise.** Other jobs shared the machine during the run. Compare runs on the same
  machine, not single numbers.
"#;

/// Which statistic of a [`Summary`] a plotted series shows.
type Pick = fn(&Summary) -> f64;
/// A plotted series: label, colour, statistic.
type Series = (&'static str, RGBColor, Pick);

/// A tick label with a sensible number of digits.
fn short(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
