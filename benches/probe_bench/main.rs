//! The active prober's cost: `cargo bench --bench probe_bench` probes 5,000 HTTP origins at
//! the default flags (`--probe-interval 500ms --probe-timeout 250ms`) and reports the
//! prober's CPU (percent of one core) and RSS. The target (docs/DESIGN.md, "Active
//! probes"): at most half a core.
//!
//! - The origins are 5,000 loopback listeners in a child process (this binary re-run with
//!   `--serve`), so their CPU is not counted: one port on 5,000 addresses 127.0.x.y (like
//!   pods: one container port, many pod IPs), each a minimal keep-alive HTTP/1.1 responder
//!   answering `200 OK` with `Origin-Load`.
//! - The prober is the real one (`origin_discovery::probe::Prober::start`, on the thread and
//!   single-threaded runtime of its own it runs on in the controller), reading its targets from a real index (one pool, slices of 100 endpoints) and
//!   applying every result to it; only the Kubernetes side is absent.
//! - After a warm-up (every target probed and connected), CPU is `utime + stime` of this
//!   process over the measured window, RSS is `VmRSS` at its end; the open descriptors show
//!   that each origin keeps one connection.
//!
//! Under `cargo test` (no `--bench` argument) it runs a small smoke check instead (50
//! origins, 1.5 s), asserting that every probe succeeded over reused connections.
//! The full run's numbers go to stdout and `target/probe-bench.json`.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use origin_discovery::config::{Cli, Command as Cmd};
use origin_discovery::metrics::{Metrics, ProbeResultLabels};
use origin_discovery::shared::Shared;
use origin_discovery_core::hub::Hub;
use origin_discovery_core::index::IndexConfig;
use origin_discovery_core::model::{Load, PoolId};
use origin_discovery_core::signals::{
    EndpointInfo, PortChoice, ProbeKind, ProbeMode, ProbeSpec, ServiceInfo, SliceInfo, SlicePort,
    Stamp,
};

/// `/proc/<pid>/stat` times are in USER_HZ, which Linux fixes at 100.
const USER_HZ: f64 = 100.0;

struct Plan {
    origins: usize,
    interval: &'static str,
    timeout: &'static str,
    warmup: Duration,
    measure: Duration,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        return match serve(n) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("probe_bench --serve: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let full = args.iter().any(|a| a == "--bench");
    // PROBE_BENCH_ORIGINS: another size for the full run (e.g. to find where a slow machine
    // starts to fall behind).
    let origins = std::env::var("PROBE_BENCH_ORIGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let plan = if full {
        Plan {
            origins,
            interval: "500ms",
            timeout: "250ms",
            warmup: Duration::from_secs(3),
            measure: Duration::from_secs(20),
        }
    } else {
        Plan {
            origins: 50,
            interval: "100ms",
            timeout: "250ms",
            warmup: Duration::from_millis(500),
            measure: Duration::from_millis(1_500),
        }
    };
    match run(&plan, full) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("probe_bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The listeners' addresses: 127.0.x.y from 127.0.1.1 on, skipping .0 and .255.
fn origin_ip(i: usize) -> Ipv4Addr {
    let (x, y) = (1 + i / 254, 1 + i % 254);
    Ipv4Addr::new(127, 0, x as u8, y as u8)
}

fn run(plan: &Plan, full: bool) -> Result<()> {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("probe_bench: could not raise the open-files limit: {e}");
    }
    let (mut child, port, ips) = start_origins(plan.origins)?;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(measure(plan, port, &ips, child.id()));
    let _ = child.kill();
    let _ = child.wait();
    let report = result?;
    println!("{}", report.text(plan));
    if full {
        let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        let path = std::path::Path::new(&dir).join("probe-bench.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report.json(plan))?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("written to {}", path.display());
    }
    report.check(plan)
}

/// Starts the child serving `n` origins; returns it, the port and the addresses bound.
fn start_origins(n: usize) -> Result<(Child, u16, Vec<Ipv4Addr>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--serve", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the origins process")?;
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut port = 0;
    let mut ips = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(p) = line.strip_prefix("PORT ") {
            port = p.parse()?;
        } else if let Some(ip) = line.strip_prefix("IP ") {
            ips.push(ip.parse()?);
        } else if line == "READY" {
            break;
        }
    }
    if port == 0 || ips.len() != n {
        let _ = child.kill();
        bail!("the origins process bound {} of {n} listeners", ips.len());
    }
    Ok((child, port, ips))
}

/// Child: binds `n` listeners (one port on many loopback addresses) and answers HTTP until
/// its stdin closes (the bench ended or died).
fn serve(n: usize) -> Result<()> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    // Two threads: the origins must answer faster than the prober asks, also on a busy
    // machine, or the bench measures their latency instead of the prober.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut listeners = Vec::with_capacity(n);
        let first = tokio::net::TcpListener::bind((origin_ip(0), 0)).await?;
        let port = first.local_addr()?.port();
        let mut out = std::io::stdout().lock();
        writeln!(out, "PORT {port}")?;
        writeln!(out, "IP {}", origin_ip(0))?;
        listeners.push(first);
        let mut i = 1;
        while listeners.len() < n && i < 60_000 {
            // An address whose port some other process holds is skipped.
            if let Ok(l) = tokio::net::TcpListener::bind((origin_ip(i), port)).await {
                writeln!(out, "IP {}", origin_ip(i))?;
                listeners.push(l);
            }
            i += 1;
        }
        writeln!(out, "READY")?;
        out.flush()?;
        drop(out);
        for l in listeners {
            tokio::spawn(async move {
                while let Ok((sock, _)) = l.accept().await {
                    tokio::spawn(respond(sock));
                }
            });
        }
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await?;
        anyhow::Ok(())
    })
}

async fn respond(mut sock: tokio::net::TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        match buf.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => {
                buf.drain(..i + 4);
                let r = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\norigin-load: 0.5\r\n\r\n";
                if sock.write_all(r).await.is_err() {
                    return;
                }
            }
            None => match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

struct Report {
    origins: usize,
    cpu_percent: f64,
    rss_mib: f64,
    origins_cpu_percent: f64,
    probes_per_second: f64,
    healthy: u64,
    unhealthy: u64,
    timeout: u64,
    error: u64,
    open_fds: usize,
    loads_seen: usize,
    listed: usize,
}

async fn measure(plan: &Plan, port: u16, ips: &[Ipv4Addr], child: u32) -> Result<Report> {
    let args = match Cli::try_parse_from([
        "origin-discovery",
        "run",
        "--probe-interval",
        plan.interval,
        "--probe-timeout",
        plan.timeout,
    ])?
    .command
    {
        Cmd::Run(run) => run.controller,
        _ => unreachable!("a run command line"),
    };
    let metrics = Metrics::new();
    let shared = Arc::new(Shared::new(
        IndexConfig {
            epoch: "bench".into(),
            node_lease_grace: Duration::from_secs(20),
        },
        Arc::new(Hub::new("bench", 64)),
        metrics.clone(),
    ));
    let pool = PoolId::new("bench", "origins");
    let stamp = Stamp::now();
    shared.update(|idx| {
        idx.apply_service(
            ServiceInfo {
                pool: pool.clone(),
                port: PortChoice::Name("http".into()),
                url_template: None,
                probe: ProbeSpec {
                    mode: ProbeMode::On(ProbeKind::Http),
                    ..ProbeSpec::default()
                },
            },
            stamp,
        );
        for (s, chunk) in ips.chunks(100).enumerate() {
            idx.apply_slice(
                SliceInfo {
                    service: pool.clone(),
                    name: format!("origins-{s}"),
                    ports: vec![SlicePort {
                        name: "http".into(),
                        port,
                    }],
                    endpoints: chunk
                        .iter()
                        .map(|ip| EndpointInfo {
                            address: ip.to_string(),
                            pod: Some(format!("origin-{ip}")),
                            node: None,
                            zone: None,
                            hostname: None,
                            ready: true,
                            serving: true,
                            terminating: false,
                        })
                        .collect(),
                },
                stamp,
            );
        }
    });
    let prober =
        tokio::spawn(origin_discovery::probe::Prober::start(shared.clone(), args.probe).wait());
    tokio::time::sleep(plan.warmup).await;
    let count = |result| {
        metrics
            .probe_results
            .get_or_create(&ProbeResultLabels {
                pool: pool.to_string(),
                result,
            })
            .get()
    };
    let before = (
        count("healthy"),
        cpu_seconds("self")?,
        cpu_seconds(&child.to_string())?,
    );
    let started = Instant::now();
    tokio::time::sleep(plan.measure).await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = (
        count("healthy"),
        cpu_seconds("self")?,
        cpu_seconds(&child.to_string())?,
    );
    let rss_mib = rss_kib()? / 1024.0;
    let open_fds = std::fs::read_dir("/proc/self/fd")?.count();
    if prober.is_finished() {
        bail!("the prober stopped: {:?}", prober.await);
    }
    prober.abort();
    let mut loads_seen = 0;
    let mut listed = 0;
    shared.stage(|idx| {
        let origins = idx.origins(&pool).unwrap_or_default();
        loads_seen = origins
            .iter()
            .filter(|o| o.load == Load::quantize(0.5))
            .count();
        listed = origins.len();
    });
    Ok(Report {
        origins: ips.len(),
        cpu_percent: 100.0 * (after.1 - before.1) / elapsed,
        rss_mib,
        origins_cpu_percent: 100.0 * (after.2 - before.2) / elapsed,
        probes_per_second: (after.0 - before.0) as f64 / elapsed,
        healthy: count("healthy"),
        unhealthy: count("unhealthy"),
        timeout: count("timeout"),
        error: count("error"),
        open_fds,
        loads_seen,
        listed,
    })
}

/// `utime + stime` of a process (`self` or a pid), in seconds.
fn cpu_seconds(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`, which may contain spaces.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f[11].parse()?, f[12].parse()?);
    Ok((utime + stime) / USER_HZ)
}

fn rss_kib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS")?.parse()?)
}

impl Report {
    fn text(&self, plan: &Plan) -> String {
        format!(
            "probe bench: {} HTTP origins, --probe-interval {} --probe-timeout {}, measured {:?}\n\
             | prober CPU | prober RSS | probes/s | open fds | origins' CPU (other process) |\n\
             |---|---|---|---|---|\n\
             | {:.1} % of a core | {:.1} MiB | {:.0} | {} | {:.1} % |\n\
             results: {} healthy, {} unhealthy, {} timeout, {} error; Origin-Load kept for {} origins; {} listed",
            self.origins,
            plan.interval,
            plan.timeout,
            plan.measure,
            self.cpu_percent,
            self.rss_mib,
            self.probes_per_second,
            self.open_fds,
            self.origins_cpu_percent,
            self.healthy,
            self.unhealthy,
            self.timeout,
            self.error,
            self.loads_seen,
            self.listed,
        )
    }

    fn json(&self, plan: &Plan) -> serde_json::Value {
        serde_json::json!({
            "origins": self.origins,
            "probeInterval": plan.interval,
            "probeTimeout": plan.timeout,
            "measuredSeconds": plan.measure.as_secs_f64(),
            "proberCpuPercentOfOneCore": self.cpu_percent,
            "proberRssMiB": self.rss_mib,
            "probesPerSecond": self.probes_per_second,
            "openFds": self.open_fds,
            "originsProcessCpuPercent": self.origins_cpu_percent,
            "results": {"healthy": self.healthy, "unhealthy": self.unhealthy, "timeout": self.timeout, "error": self.error},
            "originLoadKept": self.loads_seen,
            "listed": self.listed,
            "machineCores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        })
    }

    /// What must hold for the numbers to mean anything: every origin probed at about the
    /// configured rate, all healthy, listed, over one connection each.
    fn check(&self, plan: &Plan) -> Result<()> {
        let interval = humantime::parse_duration(plan.interval)?.as_secs_f64();
        let expected = self.origins as f64 / interval;
        if self.probes_per_second < 0.8 * expected {
            bail!(
                "{:.0} probes/s, expected about {expected:.0}: the prober falls behind",
                self.probes_per_second
            );
        }
        if self.unhealthy + self.timeout + self.error > 0 || self.listed != self.origins {
            bail!("not every probe succeeded or not every origin is listed");
        }
        if self.loads_seen != self.origins {
            bail!(
                "Origin-Load kept for {} of {} origins",
                self.loads_seen,
                self.origins
            );
        }
        // One kept-alive connection per origin, plus a few dozen for the runtime and stdio.
        if self.open_fds > self.origins + 100 {
            bail!(
                "{} descriptors open for {} origins: connections are not reused",
                self.open_fds,
                self.origins
            );
        }
        Ok(())
    }
}
