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
