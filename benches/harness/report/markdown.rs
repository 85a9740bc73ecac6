//! The Markdown report: targets with verdicts, the measurement tables, the method
//! (`method.md`) and, in the full run, the hand-written findings.

use std::fmt::Write as _;

use super::rows::{Report, KIB, MIB};

/// How the numbers are made (static text of the report).
const METHOD: &str = include_str!("method.md");

fn verdict(quick: bool, ok: bool) -> &'static str {
    match (quick, ok) {
        (true, _) => "— (quick run)",
        (false, true) => "**met**",
        (false, false) => "**missed**",
    }
}

impl Report {
    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        self.header(&mut s);
        self.targets_table(&mut s);
        self.push_tables(&mut s);
        self.lead_table(&mut s);
        self.throughput_table(&mut s);
        self.memory_table(&mut s);
        self.index_table(&mut s);
        s.push('\n');
        s.push_str(METHOD);
        if let Some(f) = &self.findings {
            let _ = writeln!(s, "\n{}", f.trim_end());
        }
        s
    }

    fn header(&self, s: &mut String) {
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
             noisy; the controller, nchan, the harness (simulator + subscribers), wrk and \
             nginx all share the same {} cores over loopback.\n",
            m.cores, m.cpu, m.mem_gib, m.kernel, m.load, m.cores
        );
    }

    fn targets_table(&self, s: &mut String) {
        let _ = writeln!(s, "## Targets\n");
        let _ = writeln!(
            s,
            "| what | target | measured | verdict |\n|---|---|---|---|"
        );
        for t in self.targets() {
            let v = match t.met {
                Some(ok) => verdict(self.quick, ok),
                None => "not measured",
            };
            let _ = writeln!(s, "| {} | {} | {} | {v} |", t.what, t.target, t.measured);
        }
    }

    fn push_tables(&self, s: &mut String) {
        let _ = writeln!(s, "\n## Push latency\n");
        let _ = writeln!(
            s,
            "**origin-discovery:** pod watch event committed in the simulator \
             (`SimEvent.at`) → delta frame read by each subscriber, over all subscribers × \
             rounds (rounds alternate a container crash and a graceful delete; each is \
             followed by a replacement pod). The last column is the controller's own \
             `origin_discovery_push_latency_seconds` over the same rounds (every delta of the \
             rounds, replacements included; watch event arrival in the controller → frame \
             written; p99 at histogram-bucket resolution), which separates the time spent \
             inside the controller from the simulator → controller watch hop and the \
             subscribers' scheduling.\n"
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
        let _ = writeln!(
            s,
            "\n**nchan** (nginx + `libnginx-mod-nchan`, 2 workers), same subscriber code, \
             rounds alternating with origin-discovery's: just before the publish POST is \
             written (on an open keep-alive connection) → message read by each subscriber. \
             Each message has the size of the origin-discovery delta frame of the round \
             before it.\n"
        );
        let _ = writeln!(
            s,
            "| transport | subscribers | rounds | samples | min ms | p50 ms | p99 ms | max ms | missing | message bytes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.push {
            let Some(n) = &r.nchan else { continue };
            let l = &n.latency;
            let peer = if r.transport == "SSE" {
                "EventSource"
            } else {
                r.transport
            };
            let _ = writeln!(
                s,
                "| {peer} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {}–{} |",
                r.subscribers,
                r.rounds,
                l.n,
                l.min,
                l.p50,
                l.p99,
                l.max,
                n.missing,
                r.frame_bytes.0,
                r.frame_bytes.1
            );
        }
        let _ = writeln!(
            s,
            "\n**Ratio** origin-discovery ÷ nchan (below 1: origin-discovery is faster; \
             the target is p99 ≤ 0.5×).\n"
        );
        let _ = writeln!(
            s,
            "| transport | subscribers | p50 ratio | p99 origin-discovery ms | p99 nchan ms | p99 ratio |\n|---|---:|---:|---:|---:|---:|"
        );
        for r in &self.push {
            let (Some(n), Some(p50), Some(p99)) = (&r.nchan, r.p50_ratio(), r.p99_ratio()) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {} | {p50:.2}× | {:.2} | {:.2} | **{p99:.2}×** |",
                r.transport, r.subscribers, r.latency.p99, n.latency.p99
            );
        }
        let _ = writeln!(s, "\n![push latency against subscribers]({})\n", self.plot);
        let _ = writeln!(
            s,
            "**CPU per round** (on-CPU ms of every thread, from `/proc/<pid>/task/*/schedstat`, \
             averaged over the rounds). An origin-discovery round fans out two deltas \
             (the change, then the replacement pod) and runs the simulator in the harness; \
             an nchan round fans out one message. The receiving side's share shows how much \
             of the 2 cores the subscribers themselves take.\n"
        );
        let _ = writeln!(
            s,
            "| transport | subscribers | controller | harness (simulator + subscribers) | nchan (master + workers) | agent (nchan's subscribers) |\n|---|---:|---:|---:|---:|---:|"
        );
        let opt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} ms"));
        for r in &self.push {
            let c = &r.cpu;
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} ms | {:.1} ms | {} | {} |",
                r.transport,
                r.subscribers,
                c.controller_ms,
                c.harness_ms,
                opt(c.nchan_ms),
                opt(c.agent_ms)
            );
        }
    }

    fn lead_table(&self, s: &mut String) {
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
    }

    fn throughput_table(&self, s: &mut String) {
        let t = &self.throughput;
        let _ = writeln!(s, "\n## Snapshot throughput\n");
        let _ = writeln!(
            s,
            "`wrk -t{} -c{} --latency` against `GET /v1/pools/bench/origin` ({} bytes, \
             10 origins) and against nginx (2 workers, `sendfile`, access log off) serving the \
             identical bytes as a static file, alternating in {} rounds of {:.1} s per server \
             ({} s each in all). Requests/s and mean are the rounds' mean, p50 and p99 their \
             median, max the largest.\n",
            t.threads,
            t.connections,
            t.body_bytes,
            t.rounds,
            t.seconds as f64 / f64::from(t.rounds),
            t.seconds
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
        let _ = writeln!(s, "\nRatio: {:.2}× nginx.\n", t.ratio());
    }

    fn memory_table(&self, s: &mut String) {
        let mem = &self.memory;
        let _ = writeln!(s, "## Memory (VmRSS)\n");
        let _ = writeln!(s, "| process, state | RSS |\n|---|---:|");
        let _ = writeln!(
            s,
            "| controller, 1 pool of 10 origins, no subscribers | {:.1} MiB |",
            mem.rss_idle as f64 / MIB
        );
        let _ = writeln!(
            s,
            "| controller, same, {} idle WebSocket subscribers | {:.1} MiB ({:.1} KiB per subscriber) |",
            mem.subscribers,
            mem.rss_subscribed as f64 / MIB,
            mem.per_subscriber() / KIB
        );
        if let (Some((idle, subscribed)), Some(per)) = (mem.nchan, mem.nchan_per_subscriber()) {
            let _ = writeln!(
                s,
                "| nchan (master + 2 workers), no subscribers | {:.1} MiB |",
                idle as f64 / MIB
            );
            let _ = writeln!(
                s,
                "| nchan, {} idle WebSocket subscribers | {:.1} MiB ({:.1} KiB per subscriber) |",
                mem.subscribers,
                subscribed as f64 / MIB,
                per / KIB
            );
        }
        let _ = writeln!(
            s,
            "| controller, {} pods in {} pools, all ready, no subscribers (synced in {:.1} s) | {:.1} MiB |",
            mem.pods,
            mem.pools,
            mem.sync_seconds,
            mem.rss_pods as f64 / MIB
        );
    }

    fn index_table(&self, s: &mut String) {
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
            "| | mean | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n\
             | index event | {:.2} µs | {:.2} µs | {:.2} µs | {:.2} µs |\n\
             | fixed computation of the same median | | {:.2} µs | {:.2} µs | |",
            i.mean_ns / 1e3,
            i.p50_ns / 1e3,
            i.p99_ns / 1e3,
            i.max_ns / 1e3,
            i.fixed_p50_ns / 1e3,
            i.fixed_p99_ns / 1e3,
        );
        let _ = writeln!(
            s,
            "\nThe second row times a fixed integer loop (no allocation, no memory traffic) \
             as long as the median event, the same way and number of times, right after: \
             its p99 is the tail interrupts, preemption and a shared virtual CPU add by \
             themselves. It touches no memory, so cache and memory-bandwidth interference \
             from other jobs, which the index's events do feel, does not show in it. The \
             verdict is on the index's own numbers."
        );
    }
}
