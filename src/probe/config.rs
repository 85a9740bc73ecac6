//! Flags of the active prober (docs/DESIGN.md, "Active probes"), flattened into the shared
//! controller flags.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::config::parse_positive_duration;
use origin_discovery_core::index::ProbePolicy;
use origin_discovery_core::signals::ProbeKind;

/// How pools without an `origin-discovery.io/probe` annotation are probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProbeDefault {
    /// Not at all.
    None,
    /// TCP connect (does not notice a stopped or deadlocked process).
    Tcp,
    /// HTTP `GET` of `origin-discovery.io/probe-path` (default `/`).
    Http,
}

impl ProbeDefault {
    /// The probe kind, or `None` for no probes.
    pub fn kind(self) -> Option<ProbeKind> {
        match self {
            Self::None => None,
            Self::Tcp => Some(ProbeKind::Tcp),
            Self::Http => Some(ProbeKind::Http),
        }
    }
}

/// Flags of the active prober.
#[derive(Debug, Args, Clone)]
pub struct ProbeArgs {
    /// Probe pools without an `origin-discovery.io/probe` annotation this way. A TCP probe
    /// does not notice a stopped or deadlocked origin (the kernel still completes the
    /// handshake); an HTTP probe does.
    #[arg(long, env = "ORIGIN_DISCOVERY_PROBE_DEFAULT", value_enum, default_value_t = ProbeDefault::None)]
    pub probe_default: ProbeDefault,

    /// How often each probed origin is probed (every origin on its own schedule, jittered).
    #[arg(long, env = "ORIGIN_DISCOVERY_PROBE_INTERVAL", default_value = "500ms", value_parser = parse_positive_duration)]
    pub probe_interval: Duration,

    /// A probe not answered within this long fails.
    #[arg(long, env = "ORIGIN_DISCOVERY_PROBE_TIMEOUT", default_value = "250ms", value_parser = parse_positive_duration)]
    pub probe_timeout: Duration,

    /// Consecutive failed probes that take an origin off the list.
    #[arg(long, env = "ORIGIN_DISCOVERY_PROBE_FAILURES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub probe_failures: u32,

    /// Consecutive successful probes before a removed origin is listed again (its
    /// EndpointSlice must say ready too).
    #[arg(long, env = "ORIGIN_DISCOVERY_PROBE_SUCCESSES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub probe_successes: u32,

    /// Percent (0–100): while more than this share of a pool's probed origins (or all of
    /// them) fail at once, none is removed — the prober's own network is suspect.
    #[arg(long, env = "ORIGIN_DISCOVERY_PROBE_PANIC_THRESHOLD", default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub probe_panic_threshold: u8,
}

impl ProbeArgs {
    /// How the index counts probe results under these flags.
    pub fn policy(&self) -> ProbePolicy {
        ProbePolicy {
            default: self.probe_default.kind(),
            failures: self.probe_failures,
            successes: self.probe_successes,
            panic_threshold: self.probe_panic_threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::{Cli, Command};

    fn parse(extra: &[&str]) -> Result<super::ProbeArgs, clap::Error> {
        let mut argv = vec!["origin-discovery", "run"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Run(run) => Ok(run.controller.probe),
            _ => unreachable!("a run command line"),
        }
    }

    #[test]
    fn defaults_match_the_design() {
        let p = parse(&[]).unwrap();
        assert_eq!(p.probe_default, super::ProbeDefault::None);
        assert_eq!(p.probe_interval.as_millis(), 500);
        assert_eq!(p.probe_timeout.as_millis(), 250);
        assert_eq!((p.probe_failures, p.probe_successes), (2, 1));
        assert_eq!(p.probe_panic_threshold, 50);
        assert_eq!(p.policy().default, None);
    }

    #[test]
    fn flags_parse_into_the_policy() {
        let p = parse(&[
            "--probe-default",
            "http",
            "--probe-interval",
            "1s",
            "--probe-failures",
            "3",
            "--probe-successes",
            "2",
            "--probe-panic-threshold",
            "100",
        ])
        .unwrap();
        let policy = p.policy();
        assert_eq!(
            policy.default,
            Some(origin_discovery_core::signals::ProbeKind::Http)
        );
        assert_eq!((policy.failures, policy.successes), (3, 2));
        assert_eq!(policy.panic_threshold, 100);
        assert_eq!(p.probe_interval.as_secs(), 1);
    }

    #[test]
    fn bad_probe_flags_are_usage_errors() {
        for args in [
            &["--probe-default", "grpc"][..],
            &["--probe-interval", "0s"],
            &["--probe-timeout", "soon"],
            &["--probe-failures", "0"],
            &["--probe-successes", "0"],
            &["--probe-panic-threshold", "101"],
            &["--probe-panic-threshold", "-1"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
