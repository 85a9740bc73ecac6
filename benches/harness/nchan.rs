//! The push peer: nginx with the nchan module (Debian `libnginx-mod-nchan` on
//! `nginx-light`), started on loopback with the harness's own config, and the publishing
//! side of a peer round.
//!
//! One channel, [`CHANNEL`]: subscribers connect to [`SUB_PATH`] over WebSocket or
//! EventSource, the harness publishes with an HTTP POST to [`PUB_PATH`]. Every published
//! message is shaped like a delta head (`{"type":"delta","revision":<sequence>,"pad":…}`,
//! padded to the size of the origin-discovery frame it is compared with), so the fleet
//! code that records origin-discovery's deltas records nchan's messages too.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::procs::{self, Guard};
use crate::push::ms;
use crate::subscribers::Fleet;

/// Subscriber location (WebSocket and EventSource).
pub const SUB_PATH: &str = "/sub";
/// Publisher location (HTTP POST publishes, GET answers channel info).
pub const PUB_PATH: &str = "/pub";
/// The one channel both locations use.
const CHANNEL: &str = "bench";
/// Where Debian installs the module.
const MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";
/// Connections per worker: with 2 workers and no accept balancing, one worker may take
/// nearly all of 10,000 subscribers, so each is sized for all of them.
const WORKER_CONNECTIONS: usize = 16_384;

/// nginx + nchan as a non-daemon child with its own config, temp dirs and logs under a
/// directory; stopped (by PID) when dropped.
pub struct Nchan {
    proc: Guard,
    /// Its address.
    pub addr: SocketAddr,
}

impl Nchan {
    /// Starts nginx + nchan on `127.0.0.1:port` with 2 worker processes (like the
    /// machine's 2 cores) and waits (bounded) until the publisher location answers.
    pub async fn start(dir: &Path, port: u16) -> Result<Nchan> {
        anyhow::ensure!(
            Path::new(MODULE).is_file(),
            "{MODULE} is missing: install libnginx-mod-nchan (scripts/bench.sh does)"
        );
        let tmp = dir.join("tmp");
        for sub in [&tmp, &dir.join("logs")] {
            std::fs::create_dir_all(sub)?;
        }
        // Workers run as `nobody` when started by root; request bodies may spill to tmp.
        let _ = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(dir)
            .status();
        let d = dir.display();
        let conf = format!(
            r#"load_module {MODULE};
worker_processes 2;
worker_rlimit_nofile {nofile};
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections {WORKER_CONNECTIONS}; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location = {SUB_PATH} {{
            nchan_subscriber websocket eventsource;
            nchan_channel_id {CHANNEL};
            nchan_subscriber_first_message newest;
        }}
        location = {PUB_PATH} {{
            nchan_publisher http;
            nchan_channel_id {CHANNEL};
            nchan_message_buffer_length 4;
        }}
    }}
}}
"#,
            nofile = 2 * WORKER_CONNECTIONS + 64,
        );
        let mut proc = procs::spawn_nginx(dir, &conf, "nchan")?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            proc.check_alive()?;
            // Channel info: 404 until the channel exists, which still means nchan answers.
            if let Ok((200 | 404, _)) = procs::http_get(addr, PUB_PATH).await {
                return Ok(Nchan { proc, addr });
            }
            if Instant::now() > deadline {
                bail!("nchan did not answer on {addr} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails if nginx has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        self.proc.check_alive()
    }

    /// VmRSS of the master and its workers together, bytes. Pages of nchan's shared
    /// memory zone count once per process that touched them, so this overstates nchan's
    /// footprint a little; it is reported for reference, no target depends on it.
    pub fn rss(&self) -> Result<u64> {
        let master = self.proc.pid();
        let mut total = procs::rss_of(master)?;
        for pid in children_of(master)? {
            total += procs::rss_of(pid).unwrap_or(0);
        }
        Ok(total)
    }

    /// CPU time used so far by the master and its workers together, ms
    /// ([`procs::cpu_ms`]).
    pub fn cpu_ms(&self) -> Result<f64> {
        let master = self.proc.pid();
        let mut total = procs::cpu_ms(master)?;
        for pid in children_of(master)? {
            total += procs::cpu_ms(pid).unwrap_or(0.0);
        }
        Ok(total)
    }
}

/// Processes whose parent is `pid` (from `/proc/<pid>/stat`).
fn children_of(pid: u32) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(child) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so split after its `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    Ok(out)
}

/// A message of exactly `bytes` bytes (or the shortest possible, if `bytes` is smaller)
/// that the fleet records as revision `seq`.
pub fn message(seq: u64, bytes: usize) -> Vec<u8> {
    let bare = format!(r#"{{"type":"delta","revision":{seq},"pad":""}}"#);
    let pad = bytes.saturating_sub(bare.len());
    format!(
        r#"{{"type":"delta","revision":{seq},"pad":"{}"}}"#,
        "x".repeat(pad)
    )
    .into_bytes()
}

/// A keep-alive HTTP/1.1 connection to the publisher location, opened before the
/// rounds so that no round's clock includes a TCP handshake.
pub struct Publisher {
    addr: SocketAddr,
    stream: BufReader<TcpStream>,
}

impl Publisher {
    /// Connects (bounded).
    pub async fn connect(addr: SocketAddr) -> Result<Publisher> {
        let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .context("connecting to nchan's publisher timed out")??;
        s.set_nodelay(true)?;
        Ok(Publisher {
            addr,
            stream: BufReader::new(s),
        })
    }

    /// POSTs `body` to the channel and reads the answer (201 or 202, bounded 10 s).
    /// Returns the `Instant` taken just before the request's first byte was written: the
    /// start of the peer's latency clock.
    pub async fn publish(&mut self, body: &[u8]) -> Result<Instant> {
        let mut req = format!(
            "POST {PUB_PATH} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        let sent = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), async {
            self.stream.get_mut().write_all(&req).await?;
            self.read_response().await
        })
        .await
        .context("nchan did not answer the publish within 10 s")??;
        Ok(sent)
    }

    async fn read_response(&mut self) -> Result<()> {
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("nchan closed the publisher connection");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        if status != "201" && status != "202" {
            bail!(
                "nchan answered the publish with {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }
}

/// The peer's side of one round: what [`round`] measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Per subscriber: arrival − just before the POST was written, ms.
    pub latencies_ms: Vec<f64>,
    /// Subscribers that received a later message but not this one.
    pub missing: usize,
}

/// Publishes until every subscriber of `fleet` has received a message (each attempt
/// waits 2 s; at most 30): nchan registers a subscription asynchronously (with 2
/// workers, through the channel owner's IPC), so a finished handshake alone does not
/// prove the next publish reaches it. `seq` is the last sequence number used.
pub async fn warm_up(fleet: &Fleet, publisher: &mut Publisher, seq: &mut u64) -> Result<()> {
    for _ in 0..30 {
        *seq += 1;
        publisher.publish(&message(*seq, 64)).await?;
        if fleet.wait_for(*seq, Duration::from_secs(2)).await.is_ok() {
            return Ok(());
        }
        if fleet.failures() > 0 {
            bail!("{} nchan subscribers failed", fleet.failures());
        }
    }
    bail!("nchan subscribers still missing messages after 30 warm-up publishes")
}

/// One peer round: publishes message `seq + 1` of `bytes` bytes and waits (bounded 60 s)
/// until every subscriber has it; latencies are measured from just before the POST.
pub async fn round(
    fleet: &Fleet,
    publisher: &mut Publisher,
    seq: &mut u64,
    bytes: usize,
) -> Result<Outcome> {
    *seq += 1;
    let body = message(*seq, bytes);
    let sent = publisher.publish(&body).await?;
    fleet.wait_for(*seq, Duration::from_secs(60)).await?;
    let mut out = Outcome::default();
    for r in &fleet.records {
        match r.arrival(*seq) {
            Some(t) => out.latencies_ms.push(ms(t.saturating_duration_since(sent))),
            None => out.missing += 1,
        }
    }
    Ok(out)
}

/// Checks [`message`] (run by the harness's smoke mode under `cargo test`): padded to
/// the requested size, and read back by the fleet's parser as the right revision.
pub fn check_message() -> Result<()> {
    for (seq, bytes) in [(1, 10), (42, 120), (12_345, 1_415)] {
        let m = message(seq, bytes);
        let shortest = message(seq, 0).len();
        let v: serde_json::Value = serde_json::from_slice(&m)?;
        anyhow::ensure!(
            m.len() == bytes.max(shortest),
            "message({seq}, {bytes}) is {} bytes",
            m.len()
        );
        anyhow::ensure!(
            v["type"] == "delta" && v["revision"] == seq,
            "message({seq}, {bytes}) reads back as {v}"
        );
    }
    Ok(())
}
