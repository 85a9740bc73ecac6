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
