//! What the sources tell the origin index: small, kube-free digests of Kubernetes objects.
//!
//! The conversions from Kubernetes objects into these live in [`crate::convert`]; the index
//! ([`crate::index`]) only ever sees these types, so it can be tested without an apiserver.

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::model::PoolId;

/// When a signal was received: the watch event's arrival, not any timestamp inside the object.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    /// Monotonic arrival time, for latency and lead measurements.
    pub at: Instant,
    /// Wall-clock arrival time, reported as an origin's `since`.
    pub wall: DateTime<Utc>,
}

impl Stamp {
    /// The current moment.
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// Which port of the Service's endpoints to advertise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortChoice {
    /// The EndpointSlice port with this name (`""` for a Service's single unnamed port).
    Name(String),
    /// The EndpointSlice port with this number.
    Number(u16),
}

/// A Service that is a pool (labelled `origin-discovery.io/enabled: "true"` or named with
/// `--service`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `<namespace>/<name>` of the Service.
    pub pool: PoolId,
    /// Port to advertise (annotation `origin-discovery.io/port`, else the first port).
    pub port: PortChoice,
    /// Annotation `origin-discovery.io/url-template`, if any.
    pub url_template: Option<String>,
    /// Active probe annotations (docs/DESIGN.md, "Active probes").
    pub probe: ProbeSpec,
}

/// How the controller probes an origin itself (docs/DESIGN.md, "Active probes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// A TCP connect. Note: a stopped (SIGSTOP) or deadlocked process still completes TCP
    /// handshakes through the kernel's listen backlog, so only HTTP detects it.
    Tcp,
    /// `GET <path>` with `Host: <address>:<port>`; 2xx/3xx is healthy.
    Http,
}

/// Whether a pool is probed: its `origin-discovery.io/probe` annotation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProbeMode {
    /// No (valid) annotation: `--probe-default` decides.
    #[default]
    Default,
    /// `none`: never probed, whatever the default.
    Off,
    /// `tcp` or `http`.
    On(ProbeKind),
}

/// A pool's probe annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    /// `origin-discovery.io/probe`.
    pub mode: ProbeMode,
    /// `origin-discovery.io/probe-path` (HTTP only), default `/`.
    pub path: String,
    /// `origin-discovery.io/probe-port`; `None` probes the advertised port.
    pub port: Option<PortChoice>,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        Self {
            mode: ProbeMode::Default,
            path: "/".into(),
            port: None,
        }
    }
}

/// One probe's verdict on an origin, as the prober reports it to the index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeResult {
    /// HTTP 2xx/3xx or TCP connected, within the timeout.
    pub healthy: bool,
    /// The `Origin-Load` response header (0.0–1.0), when a healthy HTTP answer carried a
    /// valid one.
    pub load: Option<f64>,
}

/// One port of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePort {
    /// Port name; `""` when unnamed.
    pub name: String,
    /// Port number on the endpoints.
    pub port: u16,
}

/// One endpoint of an EndpointSlice, with its KEP-1672 conditions resolved
/// (unset `ready`/`serving` count as true, unset `terminating` as false, as the API says).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// First address of the endpoint.
    pub address: String,
    /// Name of the pod behind it (`targetRef` of kind Pod), if any.
    pub pod: Option<String>,
    /// `nodeName`.
    pub node: Option<String>,
    /// `zone`.
    pub zone: Option<String>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
}

impl EndpointInfo {
    /// Identity of the endpoint within its Service: the pod name, or the address.
    pub fn id(&self) -> &str {
        self.pod.as_deref().unwrap_or(&self.address)
    }
}

/// An EndpointSlice, attributed to its Service by the `kubernetes.io/service-name` label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// The Service this slice belongs to.
    pub service: PoolId,
    /// The slice's own name.
    pub name: String,
    /// Its ports.
    pub ports: Vec<SlicePort>,
    /// Its endpoints.
    pub endpoints: Vec<EndpointInfo>,
}

/// The pod-level facts that can take an origin out of `ready` before its slice does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// `metadata.deletionTimestamp` is set: graceful deletion has begun.
    pub deleting: bool,
    /// Ready condition False, a terminated container, or phase Failed/Succeeded.
    pub down: bool,
    /// Annotation `origin-discovery.io/url`, if present and a valid URL.
    pub url: Option<String>,
    /// Annotation `origin-discovery.io/weight` when valid (1 to `MAX_WEIGHT`), else 1.
    pub weight: u32,
    /// Annotation `origin-discovery.io/load` when valid; a probe's `Origin-Load` wins over it.
    pub load: Option<LoadSample>,
}

/// A load report (pod annotation or probe header) before quantization: a fraction in
/// [0, 1] kept in millionths, so signals stay exactly comparable (a relist of an unchanged
/// pod is a no-op). The index turns samples into the published [`crate::model::Load`] with
/// hysteresis (docs/DESIGN.md, "Weights and load").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LoadSample(u32);

impl LoadSample {
    /// One in millionths.
    pub const ONE: u32 = 1_000_000;

    /// A fraction in [0, 1], rounded to millionths; `None` for NaN, infinities and values
    /// outside [0, 1].
    pub fn from_fraction(fraction: f64) -> Option<Self> {
        (0.0..=1.0)
            .contains(&fraction)
            // fraction × 10^6 ∈ [0, 10^6]: the cast cannot truncate.
            .then(|| Self((fraction * f64::from(Self::ONE)).round() as u32))
    }

    /// Parses a decimal fraction such as `"0.42"` (surrounding whitespace allowed).
    pub fn parse(s: &str) -> Result<Self, String> {
        let f: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("expected a number from 0 to 1, got {s:?}"))?;
        Self::from_fraction(f).ok_or_else(|| format!("expected a number from 0 to 1, got {s:?}"))
    }

    /// The sample in millionths, 0 to [`LoadSample::ONE`].
    pub fn millionths(self) -> u32 {
        self.0
    }
}

/// Health of a node, from its Ready condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeReady {
    /// Ready=True (or no condition reported yet).
    Ready,
    /// Ready=False or Ready=Unknown.
    NotReady,
}
