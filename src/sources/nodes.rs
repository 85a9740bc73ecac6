//! Nodes and node Leases (optional, `--node-signals`): origins on a dead node go first.

use std::collections::HashSet;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;

use super::Source;
use crate::convert;
use origin_discovery_core::index::Index;
use origin_discovery_core::signals::Stamp;

/// Watches Nodes' Ready condition.
#[derive(Debug, Default)]
pub struct Nodes;

impl Source for Nodes {
    type K = Node;
    type Key = String;
    const RESOURCE: &'static str = "nodes";

    fn key(&self, obj: &Node) -> Option<String> {
        obj.metadata.name.clone()
    }

    fn apply(&mut self, index: &mut Index, obj: Node, stamp: Stamp) {
        if let Some(name) = &obj.metadata.name {
            index.apply_node(name, convert::node_ready(&obj), stamp);
        }
    }

    fn delete(&mut self, index: &mut Index, obj: Node, stamp: Stamp) {
        if let Some(name) = &obj.metadata.name {
            index.delete_node(name, stamp);
        }
    }

    fn reset(&mut self, index: &mut Index, keep: &HashSet<String>, stamp: Stamp) {
        index.reset_nodes(keep, stamp);
    }
}

/// Watches Leases in `kube-node-lease`: a lease not renewed within the grace means a
/// dead kubelet, long before the node lifecycle controller marks the node (40 s+).
#[derive(Debug, Default)]
pub struct NodeLeases;

/// Namespace of node heartbeat leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

impl Source for NodeLeases {
    type K = Lease;
    type Key = String;
    const RESOURCE: &'static str = "leases";

    fn key(&self, obj: &Lease) -> Option<String> {
        obj.metadata.name.clone()
    }

    fn apply(&mut self, index: &mut Index, obj: Lease, stamp: Stamp) {
        if let Some((node, renew)) = convert::lease_renewal(&obj) {
            index.apply_lease(&node, renew, stamp);
        }
    }

    fn delete(&mut self, index: &mut Index, obj: Lease, stamp: Stamp) {
        // Node leases are named after their node.
        if let Some(name) = &obj.metadata.name {
            index.delete_lease(name, stamp);
        }
    }

    fn reset(&mut self, index: &mut Index, keep: &HashSet<String>, stamp: Stamp) {
        index.reset_leases(keep, stamp);
    }
}
