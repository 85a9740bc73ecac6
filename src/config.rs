//! Command line and environment configuration, parsed once into types.
//!
//! Every flag can also come from an `ORIGIN_DISCOVERY_<FLAG>` environment variable
//! (repeatable flags take a comma-separated list there). A bad value is one clear line on
//! stderr and exit code 2 (clap's usage error), never a panic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::probe::config::ProbeArgs;
use origin_discovery_core::model::PoolId;

/// Kubernetes controller that tells media clients where to reconnect, ahead of kube-proxy.
#[derive(Debug, Parser)]
#[command(name = "origin-discovery", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller against a Kubernetes cluster (in-cluster config or kubeconfig).
    Run(RunArgs),
    /// Run the controller against an embedded simulated cluster (seeded with `demo/origin`).
    Dev(DevArgs),
    /// Print the RBAC rules the controller needs, as JSON (the chart is checked against it).
    RbacRules(RbacArgs),
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Kubeconfig file; without it, in-cluster config or `KUBECONFIG` is used.
    #[arg(long, env = "ORIGIN_DISCOVERY_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Public API listen address.
    #[arg(long, env = "ORIGIN_DISCOVERY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Admin listen address (/healthz, /readyz, /metrics).
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_ADMIN_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub admin_listen: SocketAddr,

    /// Shared controller flags.
    #[command(flatten)]
    pub controller: ControllerArgs,
}

/// Flags of `dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Public API listen address.
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Admin listen address (/healthz, /readyz, /metrics).
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_ADMIN_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub admin_listen: SocketAddr,

    /// Listen address of the simulated Kubernetes API server.
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_SIM_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub sim_listen: SocketAddr,

    /// Where to write the simulator's kubeconfig [default: <tmp>/origin-discovery-dev.kubeconfig].
    #[arg(long, env = "ORIGIN_DISCOVERY_KUBECONFIG_OUT")]
    pub kubeconfig_out: Option<PathBuf>,

    /// How late the simulated EndpointSlice controller applies changes (e.g. `1s`).
    #[arg(long, env = "ORIGIN_DISCOVERY_ENDPOINTSLICE_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub endpointslice_delay: Duration,

    /// Kill a random origin every INTERVAL (crash or graceful delete) and start a replacement.
    #[arg(long, env = "ORIGIN_DISCOVERY_CHAOS", value_parser = parse_duration)]
    pub chaos: Option<Duration>,

    /// Shared controller flags.
    #[command(flatten)]
    pub controller: ControllerArgs,
}

/// Flags of `rbac-rules`.
#[derive(Debug, Args)]
pub struct RbacArgs {
    /// Include the rules for node signals (nodes and leases).
    #[arg(long)]
    pub node_signals: bool,
}

/// Flags shared by `run` and `dev`.
#[derive(Debug, Args, Clone)]
pub struct ControllerArgs {
    /// Watch this Service as a pool even without the enable label (repeatable).
    #[arg(
        long = "service",
        value_name = "NAMESPACE/NAME",
        env = "ORIGIN_DISCOVERY_SERVICE",
        value_delimiter = ','
    )]
    pub services: Vec<PoolId>,

    /// Watch only this namespace (a namespaced Role is then enough).
    #[arg(long, env = "ORIGIN_DISCOVERY_NAMESPACE")]
    pub namespace: Option<String>,

    /// Label selector narrowing the pod watch on the server side (e.g. `app=origin`).
    #[arg(long, env = "ORIGIN_DISCOVERY_POD_SELECTOR")]
    pub pod_selector: Option<String>,

    /// Mark pools `stale` after the apiserver has been unreachable this long.
    #[arg(long, env = "ORIGIN_DISCOVERY_STALE_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub stale_after: Duration,

    /// Interval of WebSocket/SSE heartbeats.
    #[arg(long, env = "ORIGIN_DISCOVERY_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Watch Nodes and node Leases and remove origins on dead nodes.
    #[arg(long, env = "ORIGIN_DISCOVERY_NODE_SIGNALS")]
    pub node_signals: bool,

    /// With node signals: a node whose Lease was not renewed for this long counts as dead.
    #[arg(long, env = "ORIGIN_DISCOVERY_NODE_LEASE_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub node_lease_grace: Duration,

    /// Most concurrent WebSocket + SSE subscribers.
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_MAX_SUBSCRIBERS",
        default_value_t = 20_000
    )]
    pub max_subscribers: usize,

    /// Most concurrent subscribers from one client IP.
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_MAX_SUBSCRIBERS_PER_IP",
        default_value_t = 1_000
    )]
    pub max_subscribers_per_ip: usize,

    /// Deltas kept per pool for resuming subscribers.
    #[arg(long, env = "ORIGIN_DISCOVERY_DELTA_LOG", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub delta_log: u32,

    /// Allowed browser origin for CORS and WebSocket `Origin` checks (repeatable, or `*`).
    #[arg(
        long = "cors-allow-origin",
        env = "ORIGIN_DISCOVERY_CORS_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_allow_origins: Vec<String>,

    /// How long shutdown may take before the process exits anyway.
    #[arg(long, env = "ORIGIN_DISCOVERY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log level or tracing filter (e.g. `info`, `origin_discovery=debug`).
    #[arg(long, env = "ORIGIN_DISCOVERY_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "ORIGIN_DISCOVERY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Active probes of origins (docs/DESIGN.md, "Active probes").
    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Parses `250ms`, `5s`, `1m30s` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 500ms, 5s, 1m)"))
}

/// Like [`parse_duration`], but zero is refused: for intervals, timeouts and periods.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be greater than zero".into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_defaults_are_sane() {
        let cli = Cli::try_parse_from(["origin-discovery", "run"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(run.listen.port(), 8080);
        assert_eq!(run.admin_listen.port(), 9090);
        assert_eq!(run.controller.stale_after, Duration::from_secs(30));
        assert_eq!(run.controller.heartbeat_interval, Duration::from_secs(5));
    }

    #[test]
    fn repeatable_service_flag_parses_pool_ids() {
        let cli = Cli::try_parse_from([
            "origin-discovery",
            "run",
            "--service",
            "a/b",
            "--service",
            "c/d",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(
            run.controller.services,
            vec![PoolId::new("a", "b"), PoolId::new("c", "d")]
        );
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["origin-discovery", "run", "--service", "nope"][..],
            &["origin-discovery", "run", "--stale-after", "soon"],
            &["origin-discovery", "run", "--listen", "localhost"],
            &["origin-discovery", "run", "--log-format", "xml"],
            &["origin-discovery", "dev", "--chaos", "-1s"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
