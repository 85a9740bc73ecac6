//! Command line and environment configuration, parsed once into types.
//!
//! Every flag can also come from an `ORIGIN_DISCOVERY_<FLAG>` environment variable
//! (repeatable flags take a comma-separated list there). A bad value is one clear line on
//! stderr and exit code 2 (clap's usage error), never a panic.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

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
    /// Operator CLI: list pools (`get pools`) or a pool's origins (`get origins NS/SVC`).
    Get(crate::cli::GetArgs),
    /// Operator CLI: print each change of a pool as it arrives, with its lag.
    Watch(crate::cli::WatchArgs),
    /// Operator CLI: ranked reconnect targets for a key, as clients get them.
    Pick(crate::cli::PickArgs),
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Kubeconfig file; without it, `KUBECONFIG` or `~/.kube/config`, then the in-cluster
    /// service account.
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
    #[arg(long, env = "ORIGIN_DISCOVERY_CHAOS", value_parser = parse_positive_duration)]
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
    #[arg(long, env = "ORIGIN_DISCOVERY_NAMESPACE", value_parser = parse_namespace)]
    pub namespace: Option<String>,

    /// Label selector narrowing the pod watch on the server side (e.g. `app=origin`).
    #[arg(long, env = "ORIGIN_DISCOVERY_POD_SELECTOR", value_parser = parse_label_selector)]
    pub pod_selector: Option<String>,

    /// Mark pools `stale` after a watch has been failing this long (apiserver unreachable,
    /// or answering errors).
    #[arg(long, env = "ORIGIN_DISCOVERY_STALE_AFTER", default_value = "30s", value_parser = parse_positive_duration)]
    pub stale_after: Duration,

    /// Interval of WebSocket/SSE heartbeats.
    #[arg(long, env = "ORIGIN_DISCOVERY_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_positive_duration)]
    pub heartbeat_interval: Duration,

    /// Watch Nodes and node Leases and remove origins on dead nodes.
    #[arg(long, env = "ORIGIN_DISCOVERY_NODE_SIGNALS")]
    pub node_signals: bool,

    /// With node signals: a node whose Lease was not renewed for this long counts as dead.
    #[arg(long, env = "ORIGIN_DISCOVERY_NODE_LEASE_GRACE", default_value = "20s", value_parser = parse_positive_duration)]
    pub node_lease_grace: Duration,

    /// Most concurrent subscribers (WebSocket + SSE + waiting long-polls).
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_MAX_SUBSCRIBERS",
        default_value_t = 20_000,
        value_parser = parse_count
    )]
    pub max_subscribers: usize,

    /// Most concurrent subscribers from one client IP (see `--trusted-proxies`).
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_MAX_SUBSCRIBERS_PER_IP",
        default_value_t = 1_000,
        value_parser = parse_count
    )]
    pub max_subscribers_per_ip: usize,

    /// Most open HTTP connections on the public port (subscribers included); beyond it a
    /// new connection gets 503 `too_many_connections` and is closed.
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_MAX_CONNECTIONS",
        default_value_t = 25_000,
        value_parser = parse_count
    )]
    pub max_connections: usize,

    /// Proxies (CIDRs, comma-separated) whose `Forwarded` / `X-Forwarded-For` headers name
    /// the client: the rightmost address not in this list is the client, for the limits and
    /// the logs. Without it, the socket peer is the client.
    #[arg(
        long,
        value_name = "CIDR,...",
        env = "ORIGIN_DISCOVERY_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<Cidr>,

    /// The forwarding header the trusted proxies set, and the only one believed:
    /// `x-forwarded-for` (nginx, ingress-nginx, most load balancers) or `forwarded`
    /// (RFC 7239). The other is ignored: a proxy that sets one usually passes the other on
    /// from the client untouched, so believing it would let a client pick its address.
    #[arg(
        long,
        env = "ORIGIN_DISCOVERY_FORWARDED_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub forwarded_header: ForwardedHeader,

    /// A connection must send its complete request header within this time (and an idle
    /// keep-alive connection is closed after it), on both ports.
    #[arg(long, env = "ORIGIN_DISCOVERY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,

    /// A push write (WebSocket or SSE) the client has not taken within this time ends the
    /// session and drops its connection: a dead or stuck subscriber frees its slot.
    #[arg(long, env = "ORIGIN_DISCOVERY_WRITE_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub write_timeout: Duration,

    /// Largest request head (request line + headers) on both ports, e.g. `65536`, `64KiB`;
    /// larger requests get 431. At least 8KiB.
    #[arg(long, env = "ORIGIN_DISCOVERY_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = parse_header_bytes)]
    pub max_header_bytes: usize,

    /// Deltas kept per pool for resuming subscribers.
    #[arg(long, env = "ORIGIN_DISCOVERY_DELTA_LOG", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub delta_log: u32,

    /// Allowed browser origin for CORS and WebSocket `Origin` checks (repeatable, or `*`),
    /// as a browser sends it: `scheme://host[:port]`, no path.
    #[arg(
        long = "cors-allow-origin",
        env = "ORIGIN_DISCOVERY_CORS_ALLOW_ORIGIN",
        value_delimiter = ',',
        value_parser = parse_cors_origin
    )]
    pub cors_allow_origins: Vec<String>,

    /// How long shutdown may take before the process exits anyway.
    #[arg(long, env = "ORIGIN_DISCOVERY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
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

/// The forwarding header that names the client behind `--trusted-proxies`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …`.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1, …` (RFC 7239).
    Forwarded,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Longest duration any flag accepts: far beyond any sensible setting, and far from the
/// overflow of `Instant + Duration`.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses `250ms`, `5s`, `1m30s` (humantime syntax), at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 500ms, 5s, 1m)"))?;
    if d > MAX_DURATION {
        return Err("must be at most 24h".into());
    }
    Ok(d)
}

/// Like [`parse_duration`], but zero is refused: for intervals, timeouts and periods.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be greater than zero".into()),
        d => Ok(d),
    }
}

/// A count limit: a positive integer.
pub fn parse_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a positive integer".into()),
    }
}

/// Smallest `--max-header-bytes` (hyper's smallest read buffer).
pub const MIN_HEADER_BYTES: usize = 8 * 1024;
/// Largest `--max-header-bytes`.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// A byte size: `65536`, `64KiB`, `1MiB` (binary units; `K`/`KB`/`M`/`MB` mean the same),
/// from [`MIN_HEADER_BYTES`] to [`MAX_HEADER_BYTES`].
pub fn parse_header_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit_size = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err("expected a size such as 65536, 64KiB or 1MiB".into()),
    };
    let n = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit_size))
        .ok_or("expected a size such as 65536, 64KiB or 1MiB")?;
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&n) {
        return Err(format!(
            "must be from {MIN_HEADER_BYTES} (8KiB) to {MAX_HEADER_BYTES} (1MiB) bytes"
        ));
    }
    Ok(n)
}

/// A namespace name (RFC 1123 label, as Kubernetes requires).
pub fn parse_namespace(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err("expected a namespace name (lower-case letters, digits and '-', at most 63)".into())
    }
}

/// A label selector in the apiserver's `labelSelector` syntax (`app=origin`,
/// `tier in (a,b)`, `!canary`), checked with the parser the simulated apiserver uses
/// (kube 5 has selector types but no parser for the string form).
pub fn parse_label_selector(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty (omit the flag to watch every pod)".into());
    }
    kube_sim::selector::LabelSelector::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// `*`, or a browser origin exactly as an `Origin` header carries it:
/// `http(s)://host[:port]`, lower-case, without path, query or trailing slash.
pub fn parse_cors_origin(s: &str) -> Result<String, String> {
    if s == "*" {
        return Ok(s.to_string());
    }
    let hint =
        "expected * or an origin such as https://app.example.com (scheme://host[:port], no path)";
    let url = url::Url::parse(s).map_err(|e| format!("{e}: {hint}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(hint.into());
    }
    let origin = url.origin().ascii_serialization();
    if origin != s {
        return Err(format!("{hint} (did you mean {origin}?)"));
    }
    Ok(origin)
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a /32
/// (or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as a
    /// dual-stack listener reports IPv4 peers) match as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = prefix % 8;
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a CIDR (expected e.g. 10.0.0.0/8 or fd00::/8)");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        let cidr = Cidr { addr, prefix };
        if host_bits_set(addr, prefix) {
            return Err(format!("{s:?} has host bits set beyond /{prefix}"));
        }
        Ok(cidr)
    }
}

fn host_bits_set(addr: IpAddr, prefix: u8) -> bool {
    let bytes: Vec<u8> = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    bytes.iter().enumerate().any(|(i, b)| {
        let bit = i * 8;
        let keep = usize::from(prefix).saturating_sub(bit).min(8);
        let mask = if keep == 8 { 0 } else { 0xffu8 >> keep };
        b & mask != 0
    })
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cli {
    /// Parses and validates the command line: [`Parser::try_parse_from`] plus the checks
    /// that involve several flags. Every failure is a usage error (exit code 2).
    pub fn parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Self::try_parse_from(args)?;
        let controller = match &cli.command {
            Command::Run(a) => &a.controller,
            Command::Dev(a) => &a.controller,
            Command::RbacRules(_) | Command::Get(_) | Command::Watch(_) | Command::Pick(_) => {
                return Ok(cli)
            }
        };
        controller
            .check()
            .map_err(|msg| Self::command().error(ErrorKind::ArgumentConflict, msg))?;
        Ok(cli)
    }
}

impl ControllerArgs {
    /// Checks between flags: every `--service` inside `--namespace`.
    pub fn check(&self) -> Result<(), String> {
        if let Some(ns) = &self.namespace {
            if let Some(other) = self.services.iter().find(|p| p.namespace != *ns) {
                return Err(format!("--service {other} is outside --namespace {ns}"));
            }
        }
        Ok(())
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

    fn refused(flag: &str, value: &str) -> String {
        let args = ["origin-discovery", "run", flag, value];
        match Cli::try_parse_from(args) {
            Ok(_) => panic!("{flag} {value:?} was accepted"),
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{flag} {value:?}");
                e.to_string()
            }
        }
    }

    fn accepted(extra: &[&str]) -> ControllerArgs {
        let mut args = vec!["origin-discovery", "run"];
        args.extend_from_slice(extra);
        match Cli::parse_args(args).unwrap().command {
            Command::Run(run) => run.controller,
            _ => unreachable!(),
        }
    }

    #[test]
    fn zero_negative_and_huge_durations_are_refused_for_every_interval_and_timeout() {
        for flag in [
            "--heartbeat-interval",
            "--stale-after",
            "--node-lease-grace",
            "--shutdown-timeout",
            "--header-read-timeout",
            "--write-timeout",
        ] {
            assert!(refused(flag, "0s").contains("greater than zero"), "{flag}");
            refused(flag, "-1s");
            assert!(refused(flag, "400d").contains("at most 24h"), "{flag}");
        }
        let err = Cli::try_parse_from(["origin-discovery", "dev", "--chaos", "0s"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        // `dev --endpointslice-delay 0s` is the default and stays valid.
        assert!(
            Cli::try_parse_from(["origin-discovery", "dev", "--endpointslice-delay", "0s"]).is_ok()
        );
    }

    #[test]
    fn counts_must_be_positive() {
        for flag in [
            "--max-subscribers",
            "--max-subscribers-per-ip",
            "--max-connections",
        ] {
            refused(flag, "0");
            refused(flag, "-3");
            refused(flag, "many");
        }
    }

    #[test]
    fn header_bytes_take_units_within_bounds() {
        assert_eq!(accepted(&[]).max_header_bytes, 64 * 1024);
        assert_eq!(
            accepted(&["--max-header-bytes", "16384"]).max_header_bytes,
            16384
        );
        assert_eq!(
            accepted(&["--max-header-bytes", "1MiB"]).max_header_bytes,
            1 << 20
        );
        assert_eq!(
            accepted(&["--max-header-bytes", "32k"]).max_header_bytes,
            32 << 10
        );
        refused("--max-header-bytes", "1KiB");
        refused("--max-header-bytes", "2MiB");
        refused("--max-header-bytes", "lots");
    }

    #[test]
    fn trusted_proxies_are_cidrs() {
        let args = accepted(&["--trusted-proxies", "10.0.0.0/8,fd00::/8,192.168.1.7"]);
        let ps = &args.trusted_proxies;
        assert_eq!(ps.len(), 3);
        assert!(ps[0].contains("10.200.3.4".parse().unwrap()));
        assert!(!ps[0].contains("11.0.0.1".parse().unwrap()));
        assert!(
            ps[0].contains("::ffff:10.1.1.1".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(ps[1].contains("fd12::1".parse().unwrap()));
        assert!(!ps[1].contains("10.0.0.1".parse().unwrap()));
        assert!(ps[2].contains("192.168.1.7".parse().unwrap()));
        assert!(!ps[2].contains("192.168.1.8".parse().unwrap()));
        assert_eq!(ps[2].to_string(), "192.168.1.7/32");
        let partial: Cidr = "172.16.0.0/12".parse().unwrap();
        assert!(partial.contains("172.31.255.255".parse().unwrap()));
        assert!(!partial.contains("172.32.0.0".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "nope",
            "10.0.0.1/8",
            "::/129",
            "",
        ] {
            refused("--trusted-proxies", bad);
        }
    }

    #[test]
    fn the_forwarded_header_is_one_of_two() {
        assert_eq!(
            accepted(&[]).forwarded_header,
            ForwardedHeader::XForwardedFor
        );
        let args = accepted(&["--forwarded-header", "forwarded"]);
        assert_eq!(args.forwarded_header, ForwardedHeader::Forwarded);
        for bad in ["x-real-ip", "both", ""] {
            refused("--forwarded-header", bad);
        }
    }

    #[test]
    fn cors_origins_must_be_exact_browser_origins() {
        let args = accepted(&[
            "--cors-allow-origin",
            "https://app.example.com,http://localhost:3000",
        ]);
        assert_eq!(
            args.cors_allow_origins,
            vec!["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(
            accepted(&["--cors-allow-origin", "*"]).cors_allow_origins,
            vec!["*"]
        );
        assert!(refused("--cors-allow-origin", "https://app.example.com/")
            .contains("did you mean https://app.example.com?"));
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "ftp://files.example.com",
            "https://App.Example.com",
            "https://bad host",
        ] {
            refused("--cors-allow-origin", bad);
        }
    }

    #[test]
    fn pod_selector_and_namespace_syntax_is_checked() {
        for ok in ["app=origin", "app in (a,b),!canary", "tier!=edge,env"] {
            assert_eq!(
                accepted(&["--pod-selector", ok]).pod_selector.as_deref(),
                Some(ok)
            );
        }
        for bad in ["app in (a", "=x", "", "app=origin,", "app=a b", "two words"] {
            refused("--pod-selector", bad);
        }
        accepted(&["--namespace", "media-1"]);
        for bad in ["Media", "-x", "a_b", ""] {
            refused("--namespace", bad);
        }
    }

    #[test]
    fn a_service_outside_the_namespace_is_a_usage_error() {
        let args = [
            "origin-discovery",
            "run",
            "--namespace",
            "media",
            "--service",
            "other/origin",
        ];
        let err = Cli::parse_args(args).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains("--service other/origin is outside --namespace media"),
            "{err}"
        );
        accepted(&["--namespace", "media", "--service", "media/origin"]);
        let dev = [
            "origin-discovery",
            "dev",
            "--namespace",
            "demo",
            "--service",
            "x/y",
        ];
        assert_eq!(Cli::parse_args(dev).unwrap_err().exit_code(), 2);
    }
}
