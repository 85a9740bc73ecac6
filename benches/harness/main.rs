//! The benchmark harness: `scripts/bench.sh [--quick]` (→ `cargo bench --bench harness --
//! [--quick]`). See BENCHMARKS.md for what it measures and the latest full-run numbers.
//!
//! The simulated Kubernetes API server runs in this process; the controller runs as its
//! own process (the release binary, `origin-discovery run --kubeconfig …`), so its CPU is
//! separate from the subscribers' and its RSS is its own, while the simulator's
//! `SimEvent.at` and the subscribers' arrival `Instant`s share one clock.
//!
//! Phases:
//! 1. push latency (WebSocket at each size, then SSE), origin-discovery and the nchan peer
//!    in alternating rounds (the nchan subscribers live in a second process, see
//!    `agent.rs`), signal lead at EndpointSlice delay 0, RSS idle and with the largest
//!    WebSocket fleet, snapshot throughput vs nginx (wrk);
//! 2. signal lead at EndpointSlice delay 1 s (fresh simulator and controller);
//! 3. RSS while watching many pods (fresh simulator and controller);
//! 4. the index microbenchmark, in process.
//!
//! Under `cargo test` (no `--bench` argument) it only runs a tiny index smoke check, so the
//! project's test command builds it without needing wrk, nginx or a release build; the
//! harness proper runs via `make bench-quick` / `scripts/bench.sh --quick`.

mod agent;
mod cluster;
mod index_bench;
mod nchan;
mod procs;
mod push;
mod report;
mod scrape;
mod stats;
mod subscribers;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kube_sim::Sim;
use origin_discovery_core::model::PoolId;

use agent::Agent;
use cluster::NS;
use nchan::Nchan;
use procs::Controller;
use report::{CpuRow, LeadRow, Machine, Memory, PeerRow, PushRow, Report, Throughput};
use stats::Summary;
use subscribers::{Fleet, Observer, Server, Transport};

/// Sizes of one run.
struct Plan {
    quick: bool,
    /// `perf record` on the controller during the largest WebSocket step's rounds (and
    /// the report goes to `target/`, not `BENCHMARKS.md`).
    perf: bool,
    ws_sizes: Vec<usize>,
    sse_sizes: Vec<usize>,
    rounds: usize,
    lead_subscribers: usize,
    lead_rounds: usize,
    pod_pools: usize,
    pods_per_pool: usize,
    /// wrk time per server, split into `wrk_rounds` alternating rounds of whole seconds.
    wrk_seconds: u64,
    wrk_rounds: u32,
    index_events: usize,
}

impl Plan {
    fn new(quick: bool, perf: bool) -> Plan {
        if quick {
            Plan {
                quick,
                perf: false,
                ws_sizes: vec![100],
                sse_sizes: vec![100],
                rounds: 4,
                lead_subscribers: 100,
                lead_rounds: 2,
                pod_pools: 10,
                pods_per_pool: 100,
                wrk_seconds: 2,
                wrk_rounds: 2,
                index_events: 5_000,
            }
        } else {
            Plan {
                quick,
                perf,
                ws_sizes: vec![100, 1_000, 10_000],
                sse_sizes: vec![1_000, 10_000],
                rounds: 10,
                lead_subscribers: 100,
                lead_rounds: 6,
                pod_pools: 50,
                pods_per_pool: 100,
                wrk_seconds: 12,
                wrk_rounds: 3,
                index_events: 20_000,
            }
        }
    }
}

/// Origins in the push-latency pool.
const POOL_SIZE: usize = 10;
/// Its Service.
const POOL_SVC: &str = "origin";
/// wrk shape, the same for the controller and nginx.
const WRK_THREADS: u32 = 2;
const WRK_CONNECTIONS: u32 = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, addr] = args.as_slice() {
        if flag == agent::FLAG {
            return agent_main(addr);
        }
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without `--bench`.
        let r = index_bench::run(2, 50, 200);
        if let Err(e) = nchan::check_message() {
            eprintln!("harness smoke: {e:#}");
            return ExitCode::FAILURE;
        }
        println!(
            "harness smoke: index {} origins, mean {:.0} ns/event; run scripts/bench.sh for the benchmarks",
            r.origins, r.mean_ns
        );
        return ExitCode::SUCCESS;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let perf = args.iter().any(|a| a == "--perf");
    match rlimit::increase_nofile_limit(u64::MAX) {
        // 10,000 subscribers: ~10,100 descriptors here (client sockets), in the nchan
        // agent and in the controller and nchan, which inherit this limit.
        Ok(n) if n < 12_000 && !quick => {
            eprintln!("bench: open-files limit is only {n}; 10,000 subscribers need ~10,100")
        }
        Ok(_) => {}
        Err(e) => eprintln!("bench: could not raise the open-files limit: {e}"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    match runtime.block_on(run(Plan::new(quick, perf))) {
        Ok(path) => {
            println!("bench: report written to {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The nchan agent's process (see `agent.rs`): serves the harness until its stdin closes.
fn agent_main(addr: &str) -> ExitCode {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nchan agent: bad address {addr:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    match runtime.block_on(agent::serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nchan agent: failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn log(msg: impl AsRef<str>) {
    eprintln!(
        "bench [{}]: {}",
        chrono::Utc::now().format("%H:%M:%S"),
        msg.as_ref()
    );
}

async fn run(plan: Plan) -> Result<PathBuf> {
    let started = Instant::now();
    let started_utc = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let machine = Machine::read();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir()?;

    let (push, lead0, throughput, mem_subs) = phase_push(&plan, tmp.path()).await?;
    let lead1 = phase_lead(&plan, tmp.path(), Duration::from_secs(1)).await?;
    let (pods, pools, rss_pods, sync_seconds) = phase_pods(&plan, tmp.path()).await?;
    log("index microbenchmark");
    let index = index_bench::run(50, 100, plan.index_events);

    let (md_path, svg_path, plot_rel) = if plan.quick || plan.perf {
        let dir = root.join("target");
        std::fs::create_dir_all(&dir)?;
        let name = if plan.quick {
            "bench-quick"
        } else {
            "bench-perf"
        };
        (
            dir.join(format!("{name}.md")),
            dir.join(format!("{name}-push-latency.svg")),
            format!("{name}-push-latency.svg"),
        )
    } else {
        std::fs::create_dir_all(root.join("docs"))?;
        (
            root.join("BENCHMARKS.md"),
            root.join("docs/push-latency.svg"),
            "docs/push-latency.svg".to_string(),
        )
    };
    let report = Report {
        quick: plan.quick,
        command: match (plan.quick, plan.perf) {
            (true, _) => "scripts/bench.sh --quick".into(),
            (false, true) => "scripts/bench.sh --perf".into(),
            (false, false) => "scripts/bench.sh".into(),
        },
        started: started_utc,
        seconds: started.elapsed().as_secs_f64(),
        machine,
        push,
        leads: vec![lead0, lead1],
        throughput,
        memory: Memory {
            rss_idle: mem_subs.rss_idle,
            subscribers: mem_subs.subscribers,
            rss_subscribed: mem_subs.rss_subscribed,
            nchan: Some((mem_subs.nchan_idle, mem_subs.nchan_subscribed)),
            pods,
            pools,
            rss_pods,
            sync_seconds,
        },
        index,
        plot: plot_rel,
        findings: (!plan.quick).then(|| appendices(root)),
    };
    report.plot(&svg_path).context("drawing the plot")?;
    std::fs::write(&md_path, report.markdown())?;
    for t in report.targets() {
        let v = match t.met {
            _ if report.quick => "(quick run: sizes below the targets')",
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        println!(
            "bench: {}: {} (target {}) {v}",
            t.what, t.measured, t.target
        );
    }
    println!("bench: total {:.0} s", started.elapsed().as_secs_f64());
    Ok(md_path)
}

/// Starts a simulator with one pool of [`POOL_SIZE`] origins and a controller for it.
async fn pool_stack(dir: &Path, slice_delay: Duration, tag: &str) -> Result<(Sim, Controller)> {
    let sim = Sim::start(cluster::sim_config(slice_delay)).await?;
    cluster::base(&sim)?;
    cluster::service(&sim, POOL_SVC)?;
    for i in 0..POOL_SIZE {
        cluster::pod(&sim, POOL_SVC, &format!("{POOL_SVC}-{i}"), i)?;
    }
    let kubeconfig = dir.join(format!("{tag}.kubeconfig"));
    sim.write_kubeconfig(&kubeconfig)?;
    let mut ctl = Controller::start(&kubeconfig)?;
    ctl.wait_ready(Duration::from_secs(30)).await?;
    cluster::wait_ready_origins(ctl.api, POOL_SIZE as u64, Duration::from_secs(30)).await?;
    Ok((sim, ctl))
}

fn pool_id() -> PoolId {
    PoolId::new(NS, POOL_SVC)
}

/// RSS readings of the push phase, bytes.
struct SubscriberMemory {
    rss_idle: u64,
    subscribers: usize,
    rss_subscribed: u64,
    nchan_idle: u64,
    nchan_subscribed: u64,
}

type PushPhase = (Vec<PushRow>, LeadRow, Throughput, SubscriberMemory);

/// The push peer while the push phase runs: nchan and the agent holding its fleet.
struct Peer {
    nchan: Nchan,
    agent: Agent,
}

async fn phase_push(plan: &Plan, dir: &Path) -> Result<PushPhase> {
    log("push phase: starting the simulator, the controller and nchan");
    let (sim, mut ctl) = pool_stack(dir, Duration::ZERO, "push").await?;
    let nchan = Nchan::start(&dir.join("nchan"), procs::free_port()?).await?;
    let agent = Agent::start(nchan.addr)?;
    let mut peer = Peer { nchan, agent };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = ctl.rss()?;
    let nchan_idle = peer.nchan.rss()?;
    let observer = Observer::start(ctl.api, &pool_id()).await?;
    let mut rounds = push::Rounds {
        sim: &sim,
        svc: POOL_SVC.into(),
        size: POOL_SIZE,
        replaced: 0,
        slice_wait: Duration::from_secs(5),
    };
    let ours = Server::OriginDiscovery {
        api: ctl.api,
        pool: pool_id(),
    };
    let mut rows = Vec::new();
    let mut lead0 = Vec::new();
    let mut memory = SubscriberMemory {
        rss_idle,
        subscribers: 0,
        rss_subscribed: 0,
        nchan_idle,
        nchan_subscribed: 0,
    };
    let mut fleet = Fleet::new(Transport::WebSocket, ours.clone());
    let largest = plan.ws_sizes.iter().copied().max().unwrap_or(0);
    for &n in &plan.ws_sizes {
        log(format!(
            "push phase: {n} WebSocket subscribers to each server"
        ));
        fleet.grow_to(n).await?;
        peer.agent.connect(Transport::WebSocket, n).await?;
        ctl.proc.check_alive()?;
        peer.nchan.check_alive()?;
        if n == largest {
            tokio::time::sleep(Duration::from_secs(3)).await;
            memory.subscribers = n;
            memory.rss_subscribed = ctl.rss()?;
            memory.nchan_subscribed = peer.nchan.rss()?;
        }
        let perf = if plan.perf && n == largest {
            let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-perf.data");
            log(format!(
                "push phase: perf record on the controller → {}",
                out.display()
            ));
            Some(procs::Perf::start(ctl.proc.pid(), &out)?)
        } else {
            None
        };
        let (row, leads) =
            measure(plan, &mut rounds, &observer, &fleet, &ctl, Some(&mut peer)).await?;
        drop(perf);
        if n == plan.lead_subscribers {
            lead0 = leads;
        }
        rows.push(row);
    }
    fleet.close().await;
    peer.agent.close().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut sse = Fleet::new(Transport::Sse, ours);
    for &n in &plan.sse_sizes {
        log(format!("push phase: {n} SSE subscribers to each server"));
        sse.grow_to(n).await?;
        peer.agent.connect(Transport::Sse, n).await?;
        let (row, _) = measure(plan, &mut rounds, &observer, &sse, &ctl, Some(&mut peer)).await?;
        rows.push(row);
    }
    sse.close().await;
    peer.agent.close().await?;
    observer.close().await;
    peer.nchan.check_alive()?;
    drop(peer);
    tokio::time::sleep(Duration::from_secs(1)).await;

    log("throughput: wrk against the controller and nginx");
    let path = format!("/v1/pools/{NS}/{POOL_SVC}");
    let (status, body) = procs::http_get(ctl.api, &path).await?;
    anyhow::ensure!(status == 200, "snapshot GET answered {status}");
    let nginx = procs::Nginx::start(&dir.join("nginx"), &path, &body, procs::free_port()?).await?;
    // Alternating rounds, so that a slow spell of the shared machine hits both servers.
    let round = Duration::from_secs(plan.wrk_seconds / u64::from(plan.wrk_rounds));
    let ctl_url = format!("http://{}{path}", ctl.api);
    let nginx_url = format!("http://{}{path}", nginx.addr);
    let (mut controller, mut nginx_rounds) = (Vec::new(), Vec::new());
    for _ in 0..plan.wrk_rounds {
        for (url, results) in [(&ctl_url, &mut controller), (&nginx_url, &mut nginx_rounds)] {
            let url = url.clone();
            let result = tokio::task::spawn_blocking(move || {
                procs::wrk(&url, WRK_THREADS, WRK_CONNECTIONS, round)
            })
            .await??;
            results.push(result);
        }
    }
    let controller = procs::WrkResult::combine(&controller);
    let nginx_result = procs::WrkResult::combine(&nginx_rounds);
    drop(nginx);
    ctl.proc.check_alive()?;
    drop(ctl);
    sim.shutdown().await;
    let throughput = Throughput {
        rounds: plan.wrk_rounds,
        threads: WRK_THREADS,
        connections: WRK_CONNECTIONS,
        seconds: plan.wrk_seconds,
        body_bytes: body.len(),
        controller,
        nginx: nginx_result,
    };
    let lead = LeadRow {
        delay_ms: 0,
        subscribers: plan.lead_subscribers,
        rounds: plan.rounds,
        lead: Summary::of(&lead0),
    };
    Ok((rows, lead, throughput, memory))
}

fn log_round(who: &str, i: usize, latencies_ms: &[f64], missing: usize) {
    let s = Summary::of(latencies_ms);
    log(format!(
        "  round {i} {who}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, missing {missing}",
        s.p50, s.p99, s.max
    ));
}

/// Runs `plan.rounds` rounds against `fleet` and, alternating with them, as many rounds
/// of the peer (if given) at the same message sizes; returns the latency row and the
/// leads.
async fn measure(
    plan: &Plan,
    rounds: &mut push::Rounds<'_>,
    observer: &Observer,
    fleet: &Fleet,
    ctl: &Controller,
    mut peer: Option<&mut Peer>,
) -> Result<(PushRow, Vec<f64>)> {
    let (transport, label) = match fleet.transport() {
        Transport::WebSocket => ("WebSocket", "websocket"),
        Transport::Sse => ("SSE", "sse"),
    };
    let before = scrape::push_latency(ctl.admin, label).await?;
    let mut lat = Vec::new();
    let mut leads = Vec::new();
    let mut missing = 0;
    let mut peer_lat = Vec::new();
    let mut peer_missing = 0;
    let mut frame_bytes = (usize::MAX, 0);
    // CPU ms summed over the rounds: controller, harness, nchan, agent.
    let mut cpu = [0.0_f64; 4];
    let me = std::process::id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..plan.rounds {
        let cpu0 = [procs::cpu_ms(ctl.proc.pid())?, procs::cpu_ms(me)?];
        let out = rounds.round(i, observer, fleet).await?;
        log_round("origin-discovery", i, &out.latencies_ms, out.missing);
        frame_bytes = (
            frame_bytes.0.min(out.frame_bytes),
            frame_bytes.1.max(out.frame_bytes),
        );
        lat.extend(out.latencies_ms);
        leads.extend(out.leads_ms);
        missing += out.missing;
        // The replacement pod's delta reaches every subscriber before the next round of
        // either server starts, so one server's fan-out never overlaps the other's round.
        let settled = observer.state.borrow().revision;
        fleet
            .wait_for(settled, Duration::from_secs(60))
            .await
            .context("waiting for the replacement's delta to reach every subscriber")?;
        cpu[0] += procs::cpu_ms(ctl.proc.pid())? - cpu0[0];
        cpu[1] += procs::cpu_ms(me)? - cpu0[1];
        if let Some(p) = peer.as_deref_mut() {
            let cpu0 = [p.nchan.cpu_ms()?, procs::cpu_ms(p.agent.pid())?];
            let (l, m) = p.agent.round(out.frame_bytes).await?;
            cpu[2] += p.nchan.cpu_ms()? - cpu0[0];
            cpu[3] += procs::cpu_ms(p.agent.pid())? - cpu0[1];
            log_round("nchan", i, &l, m);
            peer_lat.extend(l);
            peer_missing += m;
        }
    }
    let per_round = |ms: f64| ms / plan.rounds.max(1) as f64;
    // The observer's frames are in the controller's histogram too (one per revision).
    let inside = scrape::push_latency(ctl.admin, label).await?.since(&before);
    let row = PushRow {
        transport,
        subscribers: fleet.len(),
        rounds: plan.rounds,
        latency: Summary::of(&lat),
        missing,
        inside_mean_ms: inside.mean_ms(),
        inside_p99_bound_ms: inside.quantile_bound_ms(0.99),
        frame_bytes: if frame_bytes.0 == usize::MAX {
            (0, 0)
        } else {
            frame_bytes
        },
        nchan: peer.is_some().then(|| PeerRow {
            latency: Summary::of(&peer_lat),
            missing: peer_missing,
        }),
        cpu: CpuRow {
            controller_ms: per_round(cpu[0]),
            harness_ms: per_round(cpu[1]),
            nchan_ms: peer.is_some().then(|| per_round(cpu[2])),
            agent_ms: peer.is_some().then(|| per_round(cpu[3])),
        },
    };
    Ok((row, leads))
}

async fn phase_lead(plan: &Plan, dir: &Path, delay: Duration) -> Result<LeadRow> {
    log(format!("lead phase: EndpointSlice delay {delay:?}"));
    let (sim, mut ctl) = pool_stack(dir, delay, "lead").await?;
    let observer = Observer::start(ctl.api, &pool_id()).await?;
    let server = Server::OriginDiscovery {
        api: ctl.api,
        pool: pool_id(),
    };
    let mut fleet = Fleet::new(Transport::WebSocket, server);
    fleet.grow_to(plan.lead_subscribers).await?;
    let mut rounds = push::Rounds {
        sim: &sim,
        svc: POOL_SVC.into(),
        size: POOL_SIZE,
        replaced: 0,
        slice_wait: delay + Duration::from_secs(5),
    };
    let lead_plan = Plan {
        rounds: plan.lead_rounds,
        ..Plan::new(plan.quick, false)
    };
    let (_, leads) = measure(&lead_plan, &mut rounds, &observer, &fleet, &ctl, None).await?;
    fleet.close().await;
    observer.close().await;
    ctl.proc.check_alive()?;
    drop(ctl);
    sim.shutdown().await;
    Ok(LeadRow {
        delay_ms: delay.as_millis() as u64,
        subscribers: plan.lead_subscribers,
        rounds: plan.lead_rounds,
        lead: Summary::of(&leads),
    })
}

async fn phase_pods(plan: &Plan, dir: &Path) -> Result<(usize, usize, u64, f64)> {
    let pods = plan.pod_pools * plan.pods_per_pool;
    log(format!(
        "pods phase: {pods} pods in {} pools",
        plan.pod_pools
    ));
    let sim = Sim::start(cluster::sim_config(Duration::ZERO)).await?;
    cluster::base(&sim)?;
    cluster::pools(&sim, plan.pod_pools, plan.pods_per_pool).await?;
    let kubeconfig = dir.join("pods.kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let t0 = Instant::now();
    let mut ctl = Controller::start(&kubeconfig)?;
    ctl.wait_ready(Duration::from_secs(60)).await?;
    cluster::wait_ready_origins(ctl.api, pods as u64, Duration::from_secs(180)).await?;
    let sync = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = ctl.rss()?;
    ctl.proc.check_alive()?;
    drop(ctl);
    sim.shutdown().await;
    Ok((pods, plan.pod_pools, rss, sync))
}

/// Hand-written sections appended to the full report, in this order: the push-path
/// findings, then results measured by other runs than this harness (each file says how
/// to regenerate it). Missing files are skipped.
const APPENDICES: &[&str] = &[
    "benches/harness/FINDINGS.md",
    "docs/soak.md",
    "docs/probe-benchmark.md",
    "docs/ranking-simulation.md",
];

fn appendices(root: &Path) -> String {
    APPENDICES
        .iter()
        .filter_map(|p| std::fs::read_to_string(root.join(p)).ok())
        .map(|text| text.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n\n")
}
