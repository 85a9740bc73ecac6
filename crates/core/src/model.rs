//! The domain: pools, origins, snapshots and deltas.
//!
//! Nothing here knows about Kubernetes, HTTP or tokio. These are the shapes the API
//! contract (docs/DESIGN.md, "Pools and origins") fixes; their serde form *is* the wire form.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// Identifies a pool: one Kubernetes Service, written `<namespace>/<service>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
}

impl PoolId {
    /// Builds a pool id from its two parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a `NAMESPACE/NAME` string is not a pool id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected NAMESPACE/NAME, got {0:?}")]
pub struct ParsePoolIdError(String);

impl FromStr for PoolId {
    type Err = ParsePoolIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if is_dns_label(ns) && is_dns_label(name) && !name.contains('/') => {
                Ok(Self::new(ns, name))
            }
            _ => Err(ParsePoolIdError(s.to_string())),
        }
    }
}

/// RFC 1123 label as Kubernetes uses for namespaces and Service names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl Serialize for PoolId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PoolId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether an origin takes new sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OriginState {
    /// Serving and accepting new sessions.
    Ready,
    /// Still serving its current sessions but going away: take no new ones, migrate.
    Draining,
}

impl OriginState {
    /// The lowercase wire name, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Draining => "draining",
        }
    }
}

/// One endpoint of a pool as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Origin {
    /// The pod name, or `ip:port` for an endpoint without a pod behind it.
    pub id: String,
    /// Public URL from the pod annotation or the Service's url-template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Endpoint address (IPv4 or IPv6).
    pub ip: String,
    /// Advertised port.
    pub port: u16,
    /// Node the pod runs on, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Topology zone of that node, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// `ready` or `draining`.
    pub state: OriginState,
    /// When the origin entered its current state (millisecond precision, UTC).
    #[serde(with = "millis_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime, example = "2026-11-22T01:02:03.123Z"))]
    pub since: DateTime<Utc>,
    /// Capacity relative to the pool's other origins, 1 to [`MAX_WEIGHT`] (pod annotation
    /// `origin-discovery.io/weight`); omitted from JSON when 1 (docs/DESIGN.md, "Weights and load").
    #[serde(
        default = "default_weight",
        skip_serializing_if = "is_default_weight",
        deserialize_with = "deserialize_weight"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 10_000, default = 1, example = 2)
    )]
    pub weight: u32,
    /// Last reported load, quantized with hysteresis; omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>, minimum = 0.0, maximum = 1.0, example = 0.35))]
    pub load: Option<Load>,
}

/// Largest origin weight. Keeps the ranking's cross-multiplied scores below 2^53, so
/// JavaScript compares them exactly with plain numbers (README, "Ranking").
pub const MAX_WEIGHT: u32 = 10_000;

fn default_weight() -> u32 {
    1
}

fn is_default_weight(w: &u32) -> bool {
    *w == 1
}

fn deserialize_weight<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let w = u32::deserialize(d)?;
    if (1..=MAX_WEIGHT).contains(&w) {
        Ok(w)
    } else {
        Err(serde::de::Error::custom(format!(
            "weight must be an integer from 1 to {MAX_WEIGHT}, got {w}"
        )))
    }
}

/// An origin's load as clients see it: a multiple of 1/[`Load::STEPS`] from 0 (idle) to 1
/// (full). JSON: the number `steps / 20` (`0.35`). Kept as an integer so origins compare
/// exactly and every implementation of the ranking uses the same value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Load(u8);

impl Load {
    /// Quantization steps between 0 and 1 (step 0.05).
    pub const STEPS: u8 = 20;

    /// The load `steps / 20`; `None` above [`Load::STEPS`].
    pub fn from_steps(steps: u8) -> Option<Self> {
        (steps <= Self::STEPS).then_some(Self(steps))
    }

    /// The nearest step to a fraction in [0, 1]: `round(fraction × 20)`, halves up — the
    /// same IEEE-754 multiplication and rounding as the JavaScript client. `None` for NaN,
    /// infinities and values outside [0, 1].
    pub fn quantize(fraction: f64) -> Option<Self> {
        if !(0.0..=1.0).contains(&fraction) {
            return None;
        }
        // fraction × 20 ∈ [0, 20]: the cast cannot truncate.
        Some(Self((fraction * f64::from(Self::STEPS)).round() as u8))
    }

    /// Steps, 0 to 20.
    pub fn steps(self) -> u8 {
        self.0
    }

    /// The load as a fraction, `steps / 20`.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / f64::from(Self::STEPS)
    }
}

impl Serialize for Load {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.fraction())
    }
}

impl<'de> Deserialize<'de> for Load {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = f64::deserialize(deserializer)?;
        Self::quantize(f).ok_or_else(|| {
            serde::de::Error::custom(format!("load must be a number from 0 to 1, got {f}"))
        })
    }
}

/// A pool's full origin list at one revision: the `GET /v1/pools/{ns}/{svc}` body and,
/// tagged `"type":"snapshot"`, the push message. Cheap to clone (shared epoch and origins).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    /// Which pool.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "demo/origin"))]
    pub pool: PoolId,
    /// Random id of this controller process; revisions only compare within one epoch.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "6f1c2a9e"))]
    pub epoch: Arc<str>,
    /// Counts up by exactly one per change of this pool.
    pub revision: u64,
    /// True while the apiserver has been unreachable for longer than `--stale-after`.
    pub stale: bool,
    /// Origins sorted by id.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Origin>))]
    pub origins: Arc<[Origin]>,
}

impl Snapshot {
    /// Number of origins in `state`.
    pub fn count(&self, state: OriginState) -> usize {
        self.origins.iter().filter(|o| o.state == state).count()
    }
}

/// What changed in a pool from `revision - 1` to `revision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delta {
    /// Which pool.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "demo/origin"))]
    pub pool: PoolId,
    /// Same as the snapshot's epoch.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "6f1c2a9e"))]
    pub epoch: Arc<str>,
    /// The revision this delta produces.
    pub revision: u64,
    /// Origins added or changed (full objects), sorted by id.
    pub upsert: Vec<Origin>,
    /// Ids of origins that left the pool, sorted.
    pub remove: Vec<String>,
    /// When the controller received the signal that triggered this revision (a watch event
    /// or a probe result; its wall clock, millisecond precision, UTC): what the delta's lag is
    /// measured from, removals included (docs/DESIGN.md, "WebSocket messages"). Omitted when
    /// unknown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "millis_rfc3339_opt"
    )]
    // Optional, never null on the wire (`skip_serializing_if`): a non-null string schema.
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = false, format = DateTime, example = "2026-11-22T01:02:03.456Z"))]
    pub received: Option<DateTime<Utc>>,
}

impl Delta {
    /// True when applying this delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty()
    }
}

/// One pool's change, as the origin index produces it and the hub publishes it.
#[derive(Debug)]
pub enum PoolChange {
    /// A Service became a pool; `origins` is its first list (sorted by id).
    Added {
        /// The pool.
        pool: PoolId,
        /// Its first revision.
        revision: u64,
        /// Its origins.
        origins: Vec<Origin>,
    },
    /// A pool moved to `delta.revision`.
    Updated {
        /// The change.
        delta: Delta,
        /// Arrival of the earliest signal folded into this revision (push latency start).
        received: Instant,
    },
    /// A pool disappeared (Service deleted or no longer opted in).
    Removed {
        /// The pool.
        pool: PoolId,
        /// Its last revision.
        revision: u64,
    },
}

/// Serializes timestamps as `2026-11-22T01:02:03.123Z`, the contract's `since` format.
pub mod millis_rfc3339 {
    use super::*;

    /// Serializer half.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    /// Deserializer half; accepts any RFC 3339 timestamp.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// [`millis_rfc3339`] for an optional timestamp (`None` is skipped by the field's
/// `skip_serializing_if`).
pub mod millis_rfc3339_opt {
    use super::*;

    /// Serializer half.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => millis_rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializer half.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "millis_rfc3339")] DateTime<Utc>);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_id_parses_namespace_and_name() {
        let id: PoolId = "demo/origin".parse().unwrap();
        assert_eq!(id, PoolId::new("demo", "origin"));
        assert_eq!(id.to_string(), "demo/origin");
    }

    #[test]
    fn pool_id_rejects_malformed_input() {
        for bad in [
            "",
            "demo",
            "demo/",
            "/origin",
            "a/b/c",
            "Demo/origin",
            "demo/-x",
        ] {
            assert!(bad.parse::<PoolId>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn origin_serializes_to_the_contract_shape() {
        let origin = Origin {
            id: "origin-1".into(),
            url: None,
            ip: "10.1.2.3".into(),
            port: 5080,
            node: Some("node-a".into()),
            zone: None,
            state: OriginState::Draining,
            since: DateTime::parse_from_rfc3339("2026-11-22T01:02:03.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            weight: 1,
            load: None,
        };
        let json = serde_json::to_value(&origin).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id":"origin-1","ip":"10.1.2.3","port":5080,"node":"node-a",
                "state":"draining","since":"2026-11-22T01:02:03.123Z"})
        );
        let back: Origin = serde_json::from_value(json).unwrap();
        assert_eq!(
            (back.weight, back.load),
            (1, None),
            "weight defaults to 1, load to unknown"
        );

        let loaded = Origin {
            weight: 3,
            load: Load::from_steps(7),
            since: back.since,
            ..origin
        };
        let json = serde_json::to_value(&loaded).unwrap();
        assert_eq!(json["weight"], 3);
        assert_eq!(json["load"], 0.35);
        assert_eq!(serde_json::from_value::<Origin>(json).unwrap(), loaded);
    }

    #[test]
    fn weight_and_load_outside_their_ranges_are_rejected() {
        let base = serde_json::json!({"id":"o","ip":"10.0.0.1","port":1,"state":"ready",
            "since":"2026-11-22T01:02:03.123Z"});
        let with = |k: &str, v: serde_json::Value| {
            let mut o = base.clone();
            o[k] = v;
            serde_json::from_value::<Origin>(o)
        };
        for bad in [
            serde_json::json!(0),
            serde_json::json!(MAX_WEIGHT + 1),
            serde_json::json!(-1),
            serde_json::json!(1.5),
        ] {
            assert!(with("weight", bad.clone()).is_err(), "weight {bad}");
        }
        assert_eq!(
            with("weight", serde_json::json!(MAX_WEIGHT))
                .unwrap()
                .weight,
            MAX_WEIGHT
        );
        for bad in [-0.01, 1.01, 7.0] {
            assert!(with("load", serde_json::json!(bad)).is_err(), "load {bad}");
        }
        assert_eq!(
            with("load", serde_json::json!(1)).unwrap().load,
            Load::from_steps(20)
        );
    }

    #[test]
    fn load_quantizes_to_the_nearest_twentieth_halves_up() {
        for (f, steps) in [
            (0.0, 0),
            (0.024, 0),
            (0.025, 1),
            (0.35, 7),
            (0.3749, 7),
            (0.375, 8),
            (0.999, 20),
            (1.0, 20),
        ] {
            assert_eq!(Load::quantize(f).map(Load::steps), Some(steps), "{f}");
        }
        for bad in [f64::NAN, f64::INFINITY, -0.0001, 1.0001] {
            assert_eq!(Load::quantize(bad), None, "{bad}");
        }
        assert_eq!(Load::from_steps(21), None);
    }
}
