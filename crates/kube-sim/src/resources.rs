//! The resource table: every kind the simulator serves, with the facts the REST layer,
//! discovery documents and store need about it (group, version, plural, scope, subresources).
//!
//! Adding a kind is adding a row here; storage, selectors, watch and discovery are generic.

/// One served resource (a "kind" in one group/version).
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Kind of one object (`Pod`).
    pub kind: &'static str,
    /// Plural resource name used in URLs (`pods`).
    pub plural: &'static str,
    /// Singular name for discovery (`pod`).
    pub singular: &'static str,
    /// Short names kubectl resolves (`po`).
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether a `status` subresource exists. When it does, writes to the main resource
    /// keep the stored status and writes to `status` keep everything but the status,
    /// as the real apiserver does.
    pub has_status: bool,
    /// Extra field selector labels this kind supports besides `metadata.name` and
    /// `metadata.namespace`. `None` means any field path is accepted (events).
    pub field_labels: Option<&'static [&'static str]>,
}

impl ResourceDef {
    /// `apiVersion` string of objects of this kind (`v1`, `discovery.k8s.io/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Kind of a list of these objects (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `plural` or `plural.group`, as the real apiserver names the resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

/// Every resource the simulator serves.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        namespaced: false,
        has_status: true,
        field_labels: Some(&["status.phase"]),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        namespaced: true,
        has_status: true,
        field_labels: Some(POD_FIELDS),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
        namespaced: true,
        has_status: true,
        field_labels: Some(&[]),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        short_names: &["no"],
        namespaced: false,
        has_status: true,
        field_labels: Some(&["spec.unschedulable"]),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        namespaced: true,
        has_status: false,
        field_labels: None,
    },
    ResourceDef {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        short_names: &[],
        namespaced: true,
        has_status: false,
        field_labels: Some(&["addressType"]),
    },
    ResourceDef {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        short_names: &[],
        namespaced: true,
        has_status: false,
        field_labels: Some(&[]),
    },
];

/// Looks up a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Whether any resource exists in this group/version (to tell 404 "unknown version" apart).
pub fn group_version_known(group: &str, version: &str) -> bool {
    RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
}

/// Looks up a resource by its `apiVersion` and `kind`, as found in an object body.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// Shorthand handles for the kinds the controllers and seed work with.
pub mod kinds {
    use super::{find, ResourceDef};

    /// `v1/namespaces`.
    pub fn namespaces() -> &'static ResourceDef {
        find("", "v1", "namespaces").expect("namespaces in table")
    }
    /// `v1/pods`.
    pub fn pods() -> &'static ResourceDef {
        find("", "v1", "pods").expect("pods in table")
    }
    /// `v1/services`.
    pub fn services() -> &'static ResourceDef {
        find("", "v1", "services").expect("services in table")
    }
    /// `v1/nodes`.
    pub fn nodes() -> &'static ResourceDef {
        find("", "v1", "nodes").expect("nodes in table")
    }
    /// `discovery.k8s.io/v1/endpointslices`.
    pub fn endpointslices() -> &'static ResourceDef {
        find("discovery.k8s.io", "v1", "endpointslices").expect("endpointslices in table")
    }
    /// `coordination.k8s.io/v1/leases`.
    pub fn leases() -> &'static ResourceDef {
        find("coordination.k8s.io", "v1", "leases").expect("leases in table")
    }
}
