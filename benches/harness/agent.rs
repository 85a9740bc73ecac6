//! The peer agent: a second process of this same harness binary (`--nchan-agent
//! <addr>`) that holds the nchan subscriber fleet, publishes, and measures the peer's
//! rounds, driven by the harness over its stdin/stdout, one JSON line per command and per
//! reply.
//!
//! Why a second process: the open-files hard limit here is 20,000 and cannot be raised
//! (no `CAP_SYS_RESOURCE`), while alternating rounds between the two servers needs both
//! fleets connected at once — 10,000 sockets to the controller plus 10,000 to nchan. Each
//! process holds one fleet. The agent measures with its own clock (publish → arrival,
//! both `Instant`s of the agent), so no timestamps cross the process boundary, and runs
//! the very same fleet code ([`crate::subscribers`]) as the harness.
//!
//! The harness owns the agent as a [`Guard`]ed child; closing its stdin ends it.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::nchan::{self, Publisher};
use crate::procs::Guard;
use crate::subscribers::{Fleet, Server, Transport};

/// The command-line flag that turns the harness binary into the agent.
pub const FLAG: &str = "--nchan-agent";

/// A command from the harness.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    /// Grow the fleet (of `transport`; a fleet of the other transport must be closed
    /// first) to `n` subscribers and confirm every one with a warm-up publish.
    Connect { transport: Transport, n: usize },
    /// Publish one message of `bytes` bytes and report every subscriber's latency.
    Round { bytes: usize },
    /// Close the fleet.
    Close,
}

/// The agent's answer to one [`Request`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    /// Set when the command failed; the rest is then empty.
    error: Option<String>,
    /// `Round`: per subscriber, arrival − just before the POST, ms.
    latencies_ms: Vec<f64>,
    /// `Round`: subscribers that never got the message.
    missing: usize,
}

/// The harness's handle on a running agent. Fields drop in order: stdin first (the
/// agent sees end of input, closes its fleet and exits), then the process guard.
pub struct Agent {
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    proc: Guard,
}

impl Agent {
    /// Starts the agent for the nchan server at `addr`.
    pub fn start(addr: SocketAddr) -> Result<Agent> {
        let exe = std::env::current_exe().context("the harness's own path")?;
        let mut child = Command::new(exe)
            .args([FLAG, &addr.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the nchan agent")?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(Agent {
            stdin: tokio::process::ChildStdin::from_std(stdin)?,
            stdout: BufReader::new(tokio::process::ChildStdout::from_std(stdout)?).lines(),
            proc: Guard::new("nchan agent", child),
        })
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    async fn call(&mut self, req: &Request, within: Duration) -> Result<Reply> {
        let mut line = serde_json::to_string(req)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let answer = tokio::time::timeout(within, self.stdout.next_line())
            .await
            .with_context(|| format!("the nchan agent did not answer {req:?} within {within:?}"))??
            .context("the nchan agent exited")?;
        let reply: Reply = serde_json::from_str(&answer).context("the nchan agent's reply")?;
        if let Some(e) = reply.error {
            bail!("nchan agent: {e}");
        }
        Ok(reply)
    }

    /// Grows the agent's fleet to `n` subscribers over `transport` (bounded).
    pub async fn connect(&mut self, transport: Transport, n: usize) -> Result<()> {
        self.call(&Request::Connect { transport, n }, Duration::from_secs(240))
            .await?;
        Ok(())
    }

    /// Runs one peer round with a message of `bytes` bytes: `(latencies ms, missing)`.
    pub async fn round(&mut self, bytes: usize) -> Result<(Vec<f64>, usize)> {
        let r = self
            .call(&Request::Round { bytes }, Duration::from_secs(90))
            .await?;
        Ok((r.latencies_ms, r.missing))
    }

    /// Closes the agent's fleet (bounded).
    pub async fn close(&mut self) -> Result<()> {
        self.call(&Request::Close, Duration::from_secs(60)).await?;
        Ok(())
    }
}

/// The agent's main loop: serves requests from stdin until it closes.
pub async fn serve(addr: SocketAddr) -> Result<()> {
    let mut publisher = Publisher::connect(addr).await?;
    let mut fleet: Option<Fleet> = None;
    let mut seq = 0u64;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => handle(req, addr, &mut fleet, &mut publisher, &mut seq)
                .await
                .unwrap_or_else(|e| Reply {
                    error: Some(format!("{e:#}")),
                    ..Reply::default()
                }),
            Err(e) => Reply {
                error: Some(format!("bad request {line:?}: {e}")),
                ..Reply::default()
            },
        };
        let mut out = serde_json::to_string(&reply)?;
        out.push('\n');
        stdout.write_all(out.as_bytes()).await?;
        stdout.flush().await?;
    }
    if let Some(f) = fleet.take() {
        f.close().await;
    }
    Ok(())
}

async fn handle(
    req: Request,
    addr: SocketAddr,
    fleet: &mut Option<Fleet>,
    publisher: &mut Publisher,
    seq: &mut u64,
) -> Result<Reply> {
    match req {
        Request::Connect { transport, n } => {
            let f = fleet.get_or_insert_with(|| Fleet::new(transport, Server::Nchan { addr }));
            if f.transport() != transport {
                bail!("close the {:?} fleet first", f.transport());
            }
            f.grow_to(n).await?;
            nchan::warm_up(f, publisher, seq).await?;
            Ok(Reply::default())
        }
        Request::Round { bytes } => {
            let f = fleet.as_ref().context("no fleet connected")?;
            let out = nchan::round(f, publisher, seq, bytes).await?;
            Ok(Reply {
                latencies_ms: out.latencies_ms,
                missing: out.missing,
                ..Reply::default()
            })
        }
        Request::Close => {
            if let Some(f) = fleet.take() {
                f.close().await;
            }
            Ok(Reply::default())
        }
    }
}
