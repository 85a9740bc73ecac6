//! The operator CLI (docs/DESIGN.md, "Operator CLI and API description"): `get pools`,
//! `get origins NS/SVC`, `watch NS/SVC` and `pick NS/SVC --key K` against a running server's
//! public API, in the same binary as the controller but without its runtime: one
//! current-thread tokio runtime, a plain HTTP/1 client ([`http`]) and a WebSocket client
//! for `watch` ([`watch`]).
//!
//! Exit codes (also in `--help` and the README, "Operating it"):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (`watch`: interrupted with Ctrl-C) |
//! | 1 | server or transport error: unreachable, timed out, connection lost, unexpected answer |
//! | 2 | usage: bad arguments or flags (also a 400 `bad_parameter` from the server) |
//! | 3 | not found: unknown pool (or, for `watch`, the pool was removed) |
//! | 4 | the server is not ready (503 `not_synced`) or full (429): retry later |

pub mod http;
pub mod table;
pub mod watch;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::config::Command;
use http::Server;
use origin_discovery_core::model::{Origin, PoolId, Snapshot};

/// Default `--server`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Exit codes, see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 1: server or transport error.
    Server = 1,
    /// 2: usage error.
    Usage = 2,
    /// 3: unknown pool.
    NotFound = 3,
    /// 4: not ready / over a limit.
    Unavailable = 4,
}

/// A CLI failure: one line on stderr and an exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub exit: Exit,
    /// The line (without the `error: ` prefix).
    pub message: String,
}

impl CliError {
    /// A failure with `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

/// Result of CLI operations.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// Aligned columns with more detail.
    Wide,
    /// The server's JSON (`watch`: one JSON object per line).
    Json,
}

/// Flags every CLI command takes.
#[derive(Clone, Debug, Args)]
pub struct ClientArgs {
    /// Public API base URL of an origin-discovery server (http only).
    #[arg(long, env = "ORIGIN_DISCOVERY_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// How long connecting and each request may take.
    #[arg(long, default_value = "10s", value_parser = crate::config::parse_positive_duration)]
    pub request_timeout: Duration,
}

/// `get`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct GetArgs {
    /// What to list.
    #[command(subcommand)]
    pub what: GetWhat,
}

/// What `get` lists.
#[derive(Debug, Subcommand)]
pub enum GetWhat {
    /// Every pool with its revision and origin counts.
    #[command(after_help = EXIT_CODES)]
    Pools(PoolsArgs),
    /// A pool's origins: ID, STATE, ZONE, NODE, ADDRESS, URL, AGE.
    #[command(after_help = EXIT_CODES)]
    Origins(OriginsArgs),
}

/// `get pools`.
#[derive(Debug, Args)]
pub struct PoolsArgs {
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `get origins`.
#[derive(Debug, Args)]
pub struct OriginsArgs {
    /// The pool, `NAMESPACE/SERVICE`.
    #[arg(value_name = "NS/SVC")]
    pub pool: PoolId,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `watch`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct WatchArgs {
    /// The pool, `NAMESPACE/SERVICE`.
    #[arg(value_name = "NS/SVC")]
    pub pool: PoolId,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `pick`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct PickArgs {
    /// The pool, `NAMESPACE/SERVICE`.
    #[arg(value_name = "NS/SVC")]
    pub pool: PoolId,
    /// Affinity key (e.g. the stream id).
    #[arg(long)]
    pub key: String,
    /// Preferred zone: its origins rank first.
    #[arg(long)]
    pub zone: Option<String>,
    /// How many targets (1 to 1000; server default 3).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: Option<u32>,
    /// Origin ids to skip (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

const EXIT_CODES: &str = "Exit codes: 0 ok, 1 server or transport error, 2 usage, \
    3 unknown pool, 4 server not ready or full (retry later).";

/// Runs a CLI command (`get`, `watch`, `pick`) and returns its exit code.
pub fn main(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(Exit::Server as u8);
        }
    };
    let mut out = std::io::stdout().lock();
    let result = runtime.block_on(async {
        match command {
            Command::Get(GetArgs {
                what: GetWhat::Pools(a),
            }) => get_pools(&a.client, &mut out).await,
            Command::Get(GetArgs {
                what: GetWhat::Origins(a),
            }) => get_origins(&a, &mut out).await,
            Command::Pick(a) => pick(&a, &mut out).await,
            Command::Watch(a) => watch::run(&a, &mut out).await,
            _ => Err(CliError::new(Exit::Usage, "not a CLI command")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.exit as u8)
        }
    }
}

/// Writes to stdout; a closed pipe (`… | head`) ends the command quietly.
pub(crate) fn emit(out: &mut impl Write, text: &str) -> Result<()> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(CliError::new(Exit::Server, format!("writing output: {e}"))),
    }
}

fn pretty(json: &serde_json::Value) -> String {
    serde_json::to_string_pretty(json).expect("JSON values serialize") + "\n"
}

/// `GET /v1/pools` row (`origin_discovery_core::hub::PoolSummary`).
#[derive(Debug, Deserialize)]
struct PoolRow {
    pool: PoolId,
    revision: u64,
    ready: u64,
    draining: u64,
}

async fn get_pools(args: &ClientArgs, out: &mut impl Write) -> Result<()> {
    let server = Server::new(args)?;
    let body = server.get_json("/v1/pools", None).await?;
    if args.output == Output::Json {
        return emit(out, &pretty(&body));
    }
    #[derive(Deserialize)]
    struct Pools {
        pools: Vec<PoolRow>,
    }
    let pools: Pools = server.decode(body)?;
    if pools.pools.is_empty() {
        eprintln!("No pools.");
        return Ok(());
    }
    let mut t = table::Table::new(["POOL", "REVISION", "READY", "DRAINING"]);
    for p in &pools.pools {
        t.row([
            p.pool.to_string(),
            p.revision.to_string(),
            p.ready.to_string(),
            p.draining.to_string(),
        ]);
    }
    emit(out, &t.render())
}

async fn get_origins(args: &OriginsArgs, out: &mut impl Write) -> Result<()> {
    let server = Server::new(&args.client)?;
    let path = format!("/v1/pools/{}/{}", args.pool.namespace, args.pool.name);
    let body = server.get_json(&path, Some(&args.pool)).await?;
    if args.client.output == Output::Json {
        return emit(out, &pretty(&body));
    }
    let snapshot: Snapshot = server.decode(body)?;
    if snapshot.stale {
        eprintln!(
            "warning: {} is stale: the controller has lost the Kubernetes API",
            snapshot.pool
        );
    }
    if snapshot.origins.is_empty() {
        eprintln!(
            "No origins in {} (revision {}).",
            snapshot.pool, snapshot.revision
        );
        return Ok(());
    }
    emit(
        out,
        &table::origins(&snapshot.origins, args.client.output, chrono::Utc::now()),
    )
}

async fn pick(args: &PickArgs, out: &mut impl Write) -> Result<()> {
    let server = Server::new(&args.client)?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("key", &args.key);
    if let Some(zone) = &args.zone {
        query.append_pair("zone", zone);
    }
    if let Some(count) = args.count {
        query.append_pair("count", &count.to_string());
    }
    if !args.exclude.is_empty() {
        query.append_pair("exclude", &args.exclude.join(","));
    }
    let path = format!(
        "/v1/pools/{}/{}/pick?{}",
        args.pool.namespace,
        args.pool.name,
        query.finish()
    );
    let body = server.get_json(&path, Some(&args.pool)).await?;
    if args.client.output == Output::Json {
        return emit(out, &pretty(&body));
    }
    #[derive(Deserialize)]
    struct Pick {
        pool: PoolId,
        revision: u64,
        targets: Vec<Origin>,
    }
    let pick: Pick = server.decode(body)?;
    if pick.targets.is_empty() {
        eprintln!(
            "No ready origin in {} (revision {}).",
            pick.pool, pick.revision
        );
        return Ok(());
    }
    emit(
        out,
        &table::targets(&pick.targets, args.client.output, chrono::Utc::now()),
    )
}
