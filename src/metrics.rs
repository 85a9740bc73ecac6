//! Prometheus metrics (`/metrics` on the admin port). Names start with `origin_discovery_`;
//! label sets are small and fixed (pool ids are bounded by the number of opted-in Services).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use origin_discovery_core::hub::Hub;
use origin_discovery_core::model::OriginState;

/// Labels of the per-pool origin gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolStateLabels {
    /// `<namespace>/<service>`.
    pub pool: String,
    /// `ready` or `draining`.
    pub state: &'static str,
}

/// Labels naming a transport (`websocket`, `sse`, `longpoll`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    /// Transport name.
    pub transport: &'static str,
}

/// Labels naming a listening port (`api` or `admin`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabels {
    /// Port name.
    pub port: &'static str,
}

/// Labels naming a watched resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// Plural resource name.
    pub resource: &'static str,
}

/// Labels naming a pool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `<namespace>/<service>`.
    pub pool: String,
}

/// Labels of the probe results counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeResultLabels {
    /// `<namespace>/<service>`.
    pub pool: String,
    /// `healthy`, `unhealthy` (an HTTP status other than 2xx/3xx), `timeout` or `error`
    /// (refused, reset, malformed answer).
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs … ~26 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// All metrics of the process.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `origin_discovery_origins{pool,state}`.
    pub origins: Family<PoolStateLabels, Gauge>,
    /// `origin_discovery_subscribers{transport}`: `websocket`, `sse`, `longpoll` (waiting).
    pub subscribers: Family<TransportLabels, Gauge>,
    /// `origin_discovery_push_latency_seconds{transport}`: watch event arrival → frame written.
    pub push_latency: HistogramFamily<TransportLabels>,
    /// `origin_discovery_signal_lead_seconds`: how long before the EndpointSlice caught up
    /// an origin had already been taken out of `ready`.
    pub signal_lead: Histogram,
    /// `origin_discovery_watch_restarts_total{resource}`: relists after the first.
    pub watch_restarts: Family<ResourceLabels, Counter>,
    /// `origin_discovery_watch_errors_total{resource}`.
    pub watch_errors: Family<ResourceLabels, Counter>,
    /// `origin_discovery_watch_events_total{resource}`.
    pub watch_events: Family<ResourceLabels, Counter>,
    /// `origin_discovery_stale`: 1 while pools are flagged stale.
    pub stale: Gauge,
    /// `origin_discovery_subscriber_resets_total{transport}`: snapshots sent to catch up.
    pub resets: Family<TransportLabels, Counter>,
    /// `origin_discovery_rejected_subscribers_total{transport}`: refused by a connection limit.
    pub rejected: Family<TransportLabels, Counter>,
    /// `origin_discovery_probe_results_total{pool,result}`: active probes by outcome.
    pub probe_results: Family<ProbeResultLabels, Counter>,
    /// `origin_discovery_probe_duration_seconds`: how long each probe took (to its timeout).
    pub probe_duration: Histogram,
    /// `origin_discovery_probe_removed_total{pool}`: origins active probes took off the list.
    pub probe_removed: Family<PoolLabels, Counter>,
    /// `origin_discovery_probe_panic{pool}`: 1 while too many of the pool's origins fail
    /// their probes at once and none is removed (docs/DESIGN.md, "Active probes").
    pub probe_panic: Family<PoolLabels, Gauge>,
    /// `origin_discovery_http_connections{port}`: open HTTP connections (upgraded ones too).
    pub connections: Family<PortLabels, Gauge>,
    /// `origin_discovery_http_connections_refused_total{port}`: refused at the connection limit.
    pub connections_refused: Family<PortLabels, Counter>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("origin_discovery");
        let origins = Family::<PoolStateLabels, Gauge>::default();
        registry.register("origins", "Origins per pool and state", origins.clone());
        let subscribers = Family::<TransportLabels, Gauge>::default();
        registry.register(
            "subscribers",
            "Live push subscribers per transport",
            subscribers.clone(),
        );
        let push_latency: HistogramFamily<TransportLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "push_latency_seconds",
            "From the triggering watch event's arrival to the frame being written",
            push_latency.clone(),
        );
        let signal_lead = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        registry.register(
            "signal_lead_seconds",
            "How long before the EndpointSlice caught up an origin had already been taken out of ready",
            signal_lead.clone(),
        );
        let watch_restarts = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "watch_restarts",
            "Watch relists after the first list",
            watch_restarts.clone(),
        );
        let watch_errors = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "watch_errors",
            "Watch errors (the watch retries with backoff)",
            watch_errors.clone(),
        );
        let watch_events = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "watch_events",
            "Watch events received",
            watch_events.clone(),
        );
        let stale = Gauge::default();
        registry.register(
            "stale",
            "1 while the apiserver is unreachable beyond --stale-after",
            stale.clone(),
        );
        let resets = Family::<TransportLabels, Counter>::default();
        registry.register(
            "subscriber_resets",
            "Snapshots sent to subscribers that fell behind",
            resets.clone(),
        );
        let rejected = Family::<TransportLabels, Counter>::default();
        registry.register(
            "rejected_subscribers",
            "Subscriptions refused by a connection limit",
            rejected.clone(),
        );
        let probe_results = Family::<ProbeResultLabels, Counter>::default();
        registry.register(
            "probe_results",
            "Active probes of origins by result",
            probe_results.clone(),
        );
        // 100 µs … ~3.3 s
        let probe_duration = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "probe_duration_seconds",
            "Duration of each active probe, up to its timeout",
            probe_duration.clone(),
        );
        let probe_removed = Family::<PoolLabels, Counter>::default();
        registry.register(
            "probe_removed",
            "Origins active probes took off the list",
            probe_removed.clone(),
        );
        let probe_panic = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "probe_panic",
            "1 while more than --probe-panic-threshold of the pool's origins fail their probes and none is removed",
            probe_panic.clone(),
        );
        let connections = Family::<PortLabels, Gauge>::default();
        registry.register(
            "http_connections",
            "Open HTTP connections per port, upgraded WebSockets included",
            connections.clone(),
        );
        let connections_refused = Family::<PortLabels, Counter>::default();
        registry.register(
            "http_connections_refused",
            "Connections refused at the port's connection limit",
            connections_refused.clone(),
        );
        Self {
            origins,
            subscribers,
            push_latency,
            signal_lead,
            watch_restarts,
            watch_errors,
            watch_events,
            stale,
            resets,
            rejected,
            probe_results,
            probe_duration,
            probe_removed,
            probe_panic,
            connections,
            connections_refused,
            registry: Arc::new(registry),
        }
    }

    /// Refreshes the per-pool gauges from the hub (called at scrape time).
    pub fn refresh(&self, hub: &Hub) {
        self.origins.clear();
        for view in hub.views() {
            for state in [OriginState::Ready, OriginState::Draining] {
                let labels = PoolStateLabels {
                    pool: view.snapshot.pool.to_string(),
                    state: state.as_str(),
                };
                self.origins
                    .get_or_create(&labels)
                    .set(view.snapshot.count(state) as i64);
            }
        }
        self.stale.set(i64::from(hub.is_stale()));
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
