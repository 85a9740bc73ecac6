//! Child processes of the harness (the controller, nginx, wrk) and small loopback HTTP
//! helpers. Every child is owned by a guard that stops it on drop (SIGTERM, then SIGKILL
//! after a bounded wait), so a failing or panicking run leaves nothing behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use origin_discovery_testkit::procs;

/// The release controller binary cargo built for this bench target.
pub const CONTROLLER_BIN: &str = env!("CARGO_BIN_EXE_origin-discovery");

/// A child process stopped (SIGTERM, then SIGKILL after a grace period) when dropped.
pub struct Guard {
    name: &'static str,
    child: Child,
    grace: Duration,
}

impl Guard {
    /// Takes ownership of `child`; 5 s grace between SIGTERM and SIGKILL.
    pub fn new(name: &'static str, child: Child) -> Self {
        Self::with_grace(name, child, Duration::from_secs(5))
    }

    /// Takes ownership of `child` with a custom grace period (for a process that has
    /// work to finish after SIGTERM, like `perf record` writing its data file).
    pub fn with_grace(name: &'static str, child: Child, grace: Duration) -> Self {
        Self { name, child, grace }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited unexpectedly: {status}", self.name);
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM via kill(1): graceful for the controller, fast shutdown for nginx.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "bench: {} ignored SIGTERM for {:?}; killing it",
            self.name, self.grace
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The controller running as its own process against the simulator.
pub struct Controller {
    /// The process.
    pub proc: Guard,
    /// Public API address.
    pub api: SocketAddr,
    /// Admin address.
    pub admin: SocketAddr,
}

impl Controller {
    /// Starts `origin-discovery run` with the simulator's kubeconfig on loopback port 0 and
    /// reads the bound addresses from its JSON start-up log line (bounded wait).
    pub fn start(kubeconfig: &Path) -> Result<Controller> {
        let mut child = Command::new(CONTROLLER_BIN)
            .args(["run", "--kubeconfig"])
            .arg(kubeconfig)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                // Every subscriber of the benchmark comes from 127.0.0.1.
                "--max-subscribers",
                "100000",
                "--max-subscribers-per-ip",
                "100000",
                "--log-format",
                "json",
                "--log-level",
                "info",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {CONTROLLER_BIN} (run scripts/bench.sh)"))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let proc = Guard::new("controller", child);
        let bound = procs::wait_started(stderr, Duration::from_secs(30), |line| {
            if line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\"") {
                eprintln!("controller: {line}");
            }
        })
        .map_err(anyhow::Error::msg)?;
        Ok(Controller {
            proc,
            api: bound.api,
            admin: bound.admin,
        })
    }

    /// Waits (bounded) until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.proc.check_alive()?;
            if let Ok((200, _)) = http_get(self.admin, "/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the controller was not ready within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident set size in bytes.
    pub fn rss(&self) -> Result<u64> {
        rss_of(self.proc.pid())
    }
}

/// CPU time a process has used so far (all its current threads), ms: the sum of each
/// thread's on-CPU time from `/proc/<pid>/task/<tid>/schedstat` (ns resolution). Work the
/// kernel does in a thread's context — its syscalls, and loopback softirq processing that
/// runs on the way out of them — counts for that thread.
pub fn cpu_ms(pid: u32) -> Result<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        ns += stat
            .split_whitespace()
            .next()
            .context("empty schedstat")?
            .parse::<u64>()?;
    }
    Ok(ns as f64 / 1e6)
}

/// `VmRSS` of a process, in bytes.
pub fn rss_of(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?;
    Ok(kb * 1024)
}

/// A plain HTTP/1.1 GET on loopback (`Connection: close`); returns status and body.
/// Blocking I/O on a blocking thread, 5 s timeouts.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>)> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || -> Result<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("no end of headers")?;
        let head = String::from_utf8_lossy(&buf[..split]).to_string();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            bail!("unexpected chunked response for {path}");
        }
        let status: u16 = head.split_whitespace().nth(1).context("status")?.parse()?;
        Ok((status, buf[split + 4..].to_vec()))
    })
    .await?
}

/// nginx serving one static file on loopback, as a non-daemon child with its own config,
/// temp dirs and logs under `dir`.
pub struct Nginx {
    /// The process (kept for its drop).
    _proc: Guard,
    /// Its address.
    pub addr: SocketAddr,
}

impl Nginx {
    /// Serves `body` at `url_path` with `Content-Type: application/json` on `port`.
    pub async fn start(dir: &Path, url_path: &str, body: &[u8], port: u16) -> Result<Nginx> {
        let root = dir.join("root");
        let file = root.join(url_path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().expect("a path with a parent"))?;
        std::fs::write(&file, body)?;
        for sub in ["tmp", "logs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        // Workers may run as `nobody` when started by root: let them read the tree.
        let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
        let d = dir.display();
        let conf = format!(
            r#"worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ default_type application/json; }}
    }}
}}
"#,
            root = root.display()
        );
        let mut proc = spawn_nginx(dir, &conf, "nginx")?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            proc.check_alive()?;
            if let Ok((200, got)) = http_get(addr, url_path).await {
                if got == body {
                    return Ok(Nginx { _proc: proc, addr });
                }
                bail!("nginx served different bytes");
            }
            if Instant::now() > deadline {
                bail!("nginx did not serve {url_path} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A free loopback port (bound and released; good enough on a quiet loopback).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts nginx in the foreground with `conf` (written to `dir/nginx.conf`) and prefix
/// `dir`, its stderr passed through; `name` names it in errors and its guard.
pub fn spawn_nginx(dir: &Path, conf: &str, name: &'static str) -> Result<Guard> {
    let child = procs::spawn_nginx(&which("nginx")?, dir, conf)
        .with_context(|| format!("starting {name}"))?;
    Ok(Guard::new(name, child))
}

/// Finds a program on PATH (or the sbin directories Debian puts nginx in).
pub fn which(name: &str) -> Result<PathBuf> {
    procs::find_program(name)
        .with_context(|| format!("{name} is not installed (scripts/bench.sh installs it)"))
}

/// One wrk result.
#[derive(Clone, Debug, Default)]
pub struct WrkResult {
    /// Requests per second.
    pub rps: f64,
    /// Mean latency, ms.
    pub mean_ms: f64,
    /// p50 latency, ms.
    pub p50_ms: f64,
    /// p99 latency, ms.
    pub p99_ms: f64,
    /// Max latency, ms.
    pub max_ms: f64,
    /// Non-2xx/3xx responses plus socket errors.
    pub errors: u64,
}

impl WrkResult {
    /// Rounds of equal length as one result: requests/s, mean and errors over all of them
    /// (mean, mean, sum), p50 and p99 the rounds' medians, max the largest.
    pub fn combine(rounds: &[WrkResult]) -> WrkResult {
        let n = rounds.len().max(1) as f64;
        let median = |f: fn(&WrkResult) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        WrkResult {
            rps: rounds.iter().map(|r| r.rps).sum::<f64>() / n,
            mean_ms: rounds.iter().map(|r| r.mean_ms).sum::<f64>() / n,
            p50_ms: median(|r| r.p50_ms),
            p99_ms: median(|r| r.p99_ms),
            max_ms: rounds.iter().map(|r| r.max_ms).fold(0.0, f64::max),
            errors: rounds.iter().map(|r| r.errors).sum(),
        }
    }
}

/// Runs wrk (bounded: its duration + 30 s) and parses its `--latency` report.
pub fn wrk(url: &str, threads: u32, connections: u32, duration: Duration) -> Result<WrkResult> {
    let child = Command::new(which("wrk")?)
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            "--latency",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting wrk")?;
    let mut guard = Guard::new("wrk", child);
    let mut stdout = guard.child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(duration + Duration::from_secs(30))
        .context("wrk did not finish in time")?;
    let status = guard.child.wait()?;
    if !status.success() {
        bail!("wrk failed ({status}):\n{out}");
    }
    parse_wrk(&out).with_context(|| format!("parsing wrk output:\n{out}"))
}

fn parse_wrk(out: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse()?,
            ["Latency", mean, _stdev, max, ..] => {
                r.mean_ms = wrk_ms(mean)?;
                r.max_ms = wrk_ms(max)?;
            }
            ["50%", v] => r.p50_ms = wrk_ms(v)?,
            ["99%", v] => r.p99_ms = wrk_ms(v)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                for w in rest {
                    if let Ok(n) = w.trim_end_matches(',').parse::<u64>() {
                        r.errors += n;
                    }
                }
            }
            _ => {}
        }
    }
    if r.rps == 0.0 {
        bail!("no Requests/sec line");
    }
    Ok(r)
}

fn wrk_ms(v: &str) -> Result<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("unknown wrk duration {v}")
    };
    Ok(num.parse::<f64>()? * scale)
}

/// `perf record` attached to a running process, stopped (and its data file finished)
/// when dropped.
pub struct Perf {
    _proc: Guard,
}

impl Perf {
    /// Starts `perf record` on `pid`, sampling at 999 Hz with DWARF call graphs (the
    /// release build keeps line tables but no frame pointers), writing to `out`.
    pub fn start(pid: u32, out: &Path) -> Result<Perf> {
        let _ = std::fs::remove_file(out);
        let child = Command::new(which("perf")?)
            .args(["record", "-F", "999", "--call-graph", "dwarf,16384", "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting perf record")?;
        let mut proc = Guard::with_grace("perf", child, Duration::from_secs(120));
        // perf writes the file's header once it has attached.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(out).map_or(0, |m| m.len()) == 0 {
            proc.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "perf record did not start writing {} within 10 s",
                    out.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Perf { _proc: proc })
    }
}
