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

use std::time::Duration;

use futures::StreamExt;
use kube::runtime::utils::Backoff as _;
use kube::runtime::watcher::{self, DefaultBackoff, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource, ResourceExt};
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

/// A client for one source's requests that records every 2xx answer as that source's
/// watch being live ([`SourceHealth::ok`]): a re-opened watch on an idle resource yields
/// no event, so the answer to the watch request is the only sign that it is live again.
pub fn observed_client(client: &Client, health: Arc<SourceHealth>) -> Client {
    let inner = client.clone();
    let service = tower::service_fn(move |req: axum::http::Request<kube::client::Body>| {
        let inner = inner.clone();
        let health = health.clone();
        async move {
            let resp = inner.send(req).await?;
            if resp.status().is_success() {
                health.ok();
            }
            Ok::<_, kube::Error>(resp)
        }
    });
    Client::new(service, client.default_namespace())
}

/// Shortest time between two relists after `410 Gone` that skip the back-off.
pub const FREE_RELIST_SPACING: Duration = Duration::from_secs(1);

/// Whether a watch error means the apiserver did not answer at all (rather than answering
/// with an error status).
fn is_unreachable(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => matches!(
            e,
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_)
        ),
        watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => false,
    }
}

/// Runs one source until its watch ends (never, barring bugs): list, then watch, with
/// kube's default back-off on errors and `managedFields` trimmed. During a (re)list,
/// objects are applied without publishing and the result is committed once at the end, so
/// a relist of unchanged objects publishes nothing.
///
/// The back-off (kube's `DefaultBackoff`: 0.8 s doubling to 30 s, jittered) is applied
/// here rather than with `.default_backoff()` so that it can be cut short: while the
/// apiserver did not answer, a source retries as soon as the staleness task sees it answer
/// again ([`Shared::apiserver_reachable`]) — a watch resumes within a probe period of the
/// apiserver's return instead of after the rest of a back-off of up to 30 s. A `410 Gone`
/// relists at once, like client-go's reflector (at most once per [`FREE_RELIST_SPACING`];
/// more often, the back-off applies).
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
        .modify(|obj| {
            obj.managed_fields_mut().clear();
        })
        .boxed();
    let mut backoff = DefaultBackoff::default();
    let mut reachable = shared.reachable_events();
    let mut last_free_relist: Option<std::time::Instant> = None;
    let mut listing: Option<HashSet<S::Key>> = None;
    let mut lists = 0u64;
    while let Some(event) = stream.next().await {
        let stamp = Stamp::now();
        let event = match event {
            Ok(e) => e,
            Err(err) => {
                shared.metrics.watch_errors.get_or_create(&labels).inc();
                let gone = matches!(&err, watcher::Error::WatchError(s) if s.code == 410);
                if gone && last_free_relist.is_none_or(|t| t.elapsed() >= FREE_RELIST_SPACING) {
                    tracing::info!(
                        resource = S::RESOURCE,
                        "watch expired (410 Gone); relisting"
                    );
                    last_free_relist = Some(stamp.at);
                    continue;
                }
                let unreachable = is_unreachable(&err);
                health.failed(stamp.at, unreachable);
                let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(resource = S::RESOURCE, error = %err, ?delay, "watch error; retrying after a back-off");
                // Only a wake-up from now on counts.
                reachable.borrow_and_update();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = reachable.changed(), if unreachable => {
                        tracing::info!(resource = S::RESOURCE, "apiserver answers again; retrying now");
                        backoff.reset();
                    }
                }
                continue;
            }
        };
        backoff.reset();
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
