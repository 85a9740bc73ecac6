//! Watch sources: one long-lived task per Kubernetes kind, each turning objects into
//! signals for the origin index.

/// One Kubernetes resource the controller watches, with the RBAC it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchedResource {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Plural resource name.
    pub resource: &'static str,
    /// Only watched when node signals are enabled (`--node-signals`).
    pub node_signals_only: bool,
}

/// Every resource any source watches: the single list the chart's RBAC is checked against.
/// The controller only ever gets, lists and watches these.
pub const WATCHED_RESOURCES: &[WatchedResource] = &[
    WatchedResource {
        group: "",
        resource: "services",
        node_signals_only: false,
    },
    WatchedResource {
        group: "discovery.k8s.io",
        resource: "endpointslices",
        node_signals_only: false,
    },
    WatchedResource {
        group: "",
        resource: "pods",
        node_signals_only: false,
    },
    WatchedResource {
        group: "",
        resource: "nodes",
        node_signals_only: true,
    },
    WatchedResource {
        group: "coordination.k8s.io",
        resource: "leases",
        node_signals_only: true,
    },
];

/// Verbs the controller uses on every watched resource.
pub const WATCH_VERBS: &[&str] = &["get", "list", "watch"];

/// RBAC rules (as Kubernetes `PolicyRule` JSON) for the given options, one rule per group.
pub fn rbac_rules(node_signals: bool) -> serde_json::Value {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in WATCHED_RESOURCES
        .iter()
        .filter(|r| node_signals || !r.node_signals_only)
    {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, resources)) => resources.push(r.resource),
            None => groups.push((r.group, vec![r.resource])),
        }
    }
    groups
        .into_iter()
        .map(|(group, mut resources)| {
            resources.sort_unstable();
            serde_json::json!({"apiGroups": [group], "resources": resources, "verbs": WATCH_VERBS})
        })
        .collect()
}

pub mod endpointslices;
pub mod nodes;
pub mod pods;
pub mod services;

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::metrics::ResourceLabels;
use crate::shared::{Shared, SourceHealth};
use origin_discovery_core::index::Index;
use origin_discovery_core::signals::Stamp;

/// Why a source stopped. Sources retry watch errors forever, so any end is fatal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The watch stream ended, which `kube::runtime::watcher` never does on its own.
    #[error("the {0} watch stream ended")]
    StreamEnded(&'static str),
}

/// One watched kind: how its objects become index signals.
pub trait Source: Send + 'static {
    /// The Kubernetes type.
    type K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static;
    /// What identifies an object for relist bookkeeping.
    type Key: Hash + Eq + Send;
    /// Plural resource name (metrics, logs, RBAC).
    const RESOURCE: &'static str;

    /// The object's key, or `None` to ignore it.
    fn key(&self, obj: &Self::K) -> Option<Self::Key>;
    /// An object was listed, added or modified.
    fn apply(&mut self, index: &mut Index, obj: Self::K, stamp: Stamp);
    /// An object was deleted.
    fn delete(&mut self, index: &mut Index, obj: Self::K, stamp: Stamp);
    /// A relist finished: forget every object not in `keep`.
    fn reset(&mut self, index: &mut Index, keep: &HashSet<Self::Key>, stamp: Stamp);
}

/// Runs one source until its watch ends (never, barring bugs): list, then watch, with
/// backoff on errors and `managedFields` trimmed. During a (re)list, objects are applied
/// without publishing and the result is committed once at the end, so a relist of
/// unchanged objects publishes nothing.
pub async fn run<S: Source>(
    mut source: S,
    api: Api<S::K>,
    config: watcher::Config,
    shared: Arc<Shared>,
    health: Arc<SourceHealth>,
) -> Result<(), Error>
where
    S::K: Resource<DynamicType = ()>,
{
    let labels = ResourceLabels {
        resource: S::RESOURCE,
    };
    let mut stream = watcher::watcher(api, config)
        .default_backoff()
        .modify(|obj| {
            obj.managed_fields_mut().clear();
        })
        .boxed();
    let mut listing: Option<HashSet<S::Key>> = None;
    let mut lists = 0u64;
    while let Some(event) = stream.next().await {
        let stamp = Stamp::now();
        let event = match event {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(resource = S::RESOURCE, error = %err, "watch error; retrying with backoff");
                shared.metrics.watch_errors.get_or_create(&labels).inc();
                health.failed(stamp.at);
                continue;
            }
        };
        health.ok();
        shared.metrics.watch_events.get_or_create(&labels).inc();
        match event {
            Event::Init => {
                lists += 1;
                if lists > 1 {
                    shared.metrics.watch_restarts.get_or_create(&labels).inc();
                    tracing::info!(resource = S::RESOURCE, "relisting");
                }
                listing = Some(HashSet::new());
            }
            Event::InitApply(obj) => {
                if let (Some(keys), Some(key)) = (listing.as_mut(), source.key(&obj)) {
                    keys.insert(key);
                }
                shared.stage(|idx| source.apply(idx, obj, stamp));
            }
            Event::InitDone => {
                let keep = listing.take().unwrap_or_default();
                shared.update(|idx| source.reset(idx, &keep, stamp));
                if lists == 1 {
                    tracing::info!(
                        resource = S::RESOURCE,
                        objects = keep.len(),
                        "initial list complete"
                    );
                }
                health.set_synced();
                shared.refresh_ready();
            }
            Event::Apply(obj) => shared.update(|idx| source.apply(idx, obj, stamp)),
            Event::Delete(obj) => shared.update(|idx| source.delete(idx, obj, stamp)),
        }
    }
    Err(Error::StreamEnded(S::RESOURCE))
}
