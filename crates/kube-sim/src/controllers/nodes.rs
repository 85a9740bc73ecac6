//! Node heartbeats and the node lifecycle controller.
//!
//! Every live node gets a `Lease` in `kube-node-lease` (holder = node name), renewed every
//! `lease_renew_interval`; a new node without status gets a `Ready` one. A killed node
//! stops renewing; `node_monitor_grace` after its last renewal it is marked
//! `Ready=Unknown` with the `unreachable` taints, and its pods get `Ready=False`, as the
//! node lifecycle controller does. A revived node renews again and reports `Ready`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{sleep_until, Timers};
use crate::object;
use crate::resources::kinds;
use crate::store::{DeleteOpts, EventType, SimEvent};
use crate::Shared;

/// Namespace of node leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Commands from the [`Sim`](crate::Sim) handle.
#[derive(Debug)]
pub(crate) enum NodeCommand {
    /// The node's kubelet stopped (already recorded in `Shared::dead_nodes`).
    Kill(String),
    /// The node's kubelet is back.
    Revive(String),
}

enum Job {
    RenewAll,
    Check(String),
}

struct NodeController {
    sh: Arc<Shared>,
    timers: Timers<Job>,
    /// Last lease renewal per node.
    last_renew: HashMap<String, Instant>,
    /// Stable index per node for addresses.
    index: HashMap<String, u32>,
}

/// Runs until the simulator shuts down.
pub(crate) async fn run(
    sh: Arc<Shared>,
    mut rx: broadcast::Receiver<SimEvent>,
    mut commands: mpsc::Receiver<NodeCommand>,
) {
    let mut c = NodeController {
        sh: sh.clone(),
        timers: Timers::default(),
        last_renew: HashMap::new(),
        index: HashMap::new(),
    };
    c.resync();
    c.renew_all();
    c.timers.insert(
        Instant::now() + sh.config.lease_renew_interval,
        Job::RenewAll,
    );
    loop {
        tokio::select! {
            _ = sh.cancel.cancelled() => return,
            r = rx.recv() => match r {
                Ok(ev) if ev.resource == "nodes" => match ev.event_type {
                    EventType::Added => c.init_node(&ev.name),
                    EventType::Deleted => {
                        let _ = sh.store.delete(kinds::leases(), NODE_LEASE_NAMESPACE, &ev.name, &DeleteOpts::default(), Default::default());
                        c.last_renew.remove(&ev.name);
                    }
                    EventType::Modified => {}
                },
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => c.resync(),
                Err(RecvError::Closed) => return,
            },
            Some(cmd) = commands.recv() => c.command(cmd),
            _ = sleep_until(c.timers.next()) => {
                for job in c.timers.pop_due(Instant::now()) {
                    match job {
                        Job::RenewAll => {
                            c.renew_all();
                            c.timers.insert(Instant::now() + sh.config.lease_renew_interval, Job::RenewAll);
                        }
                        Job::Check(node) => c.check(&node),
                    }
                }
            }
        }
    }
}

impl NodeController {
    fn resync(&mut self) {
        let (nodes, _) = self.sh.store.list(kinds::nodes(), None);
        for n in nodes {
            self.init_node(object::name(&n));
        }
    }

    fn node_index(&mut self, node: &str) -> u32 {
        let n = self.index.len() as u32;
        *self.index.entry(node.to_string()).or_insert(n)
    }

    /// Gives a node a Ready status (if it has none) and a lease.
    fn init_node(&mut self, name: &str) {
        let idx = self.node_index(name);
        let now = object::now();
        self.sh.store.mutate(kinds::nodes(), "", name, |n| {
            if object::condition(n, "Ready").is_some() {
                return false;
            }
            let st = object::obj_mut(n, &["status"]);
            st.insert(
                "addresses".into(),
                json!([
                    {"type": "InternalIP", "address": format!("172.18.{}.{}", idx / 250, idx % 250 + 2)},
                    {"type": "Hostname", "address": name},
                ]),
            );
            let cap = json!({"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"});
            st.insert("capacity".into(), cap.clone());
            st.insert("allocatable".into(), cap);
            st.insert(
                "nodeInfo".into(),
                json!({
                    "kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0",
                    "containerRuntimeVersion": "sim://1.0", "operatingSystem": "linux",
                    "architecture": "amd64", "osImage": "origin-discovery simulated node",
                    "kernelVersion": "6.0.0", "machineID": "", "systemUUID": "", "bootID": "",
                }),
            );
            st.insert(
                "daemonEndpoints".into(),
                json!({"kubeletEndpoint": {"Port": 10250}}),
            );
            st.insert("phase".into(), json!("Running"));
            for (t, s, reason) in [
                ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                ("PIDPressure", "False", "KubeletHasSufficientPID"),
                ("Ready", "True", "KubeletReady"),
            ] {
                object::set_condition(n, t, s, Some(reason));
            }
            if let Some(conds) = n
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for c in conds {
                    c["lastHeartbeatTime"] = json!(now);
                    c.as_object_mut().map(|o| o.remove("lastProbeTime"));
                }
            }
            true
        });
        if !self.sh.node_is_dead(name) {
            self.renew(name);
        }
    }

    fn renew(&mut self, node: &str) {
        let now = object::micro_time(Utc::now());
        let duration = self.sh.config.node_monitor_grace.as_secs().max(1);
        let lease = self
            .sh
            .store
            .mutate(kinds::leases(), NODE_LEASE_NAMESPACE, node, |l| {
                l["spec"]["renewTime"] = json!(now);
                l["spec"]["holderIdentity"] = json!(node);
                true
            });
        if lease.is_none() {
            let node_uid = self
                .sh
                .store
                .get(kinds::nodes(), "", node)
                .map(|n| object::uid(&n).to_string())
                .unwrap_or_default();
            let obj = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": NODE_LEASE_NAMESPACE,
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": now},
            });
            if let Err(e) = self
                .sh
                .store
                .create(kinds::leases(), NODE_LEASE_NAMESPACE, obj, true)
            {
                tracing::warn!(node, error = %e, "sim: creating node lease failed");
            }
        }
        self.last_renew.insert(node.to_string(), Instant::now());
    }

    fn renew_all(&mut self) {
        let (nodes, _) = self.sh.store.list(kinds::nodes(), None);
        for n in nodes {
            let name = object::name(&n);
            if !self.sh.node_is_dead(name) {
                self.renew(name);
            }
        }
    }

    fn command(&mut self, cmd: NodeCommand) {
        match cmd {
            NodeCommand::Kill(node) => {
                let last = self
                    .last_renew
                    .get(&node)
                    .copied()
                    .unwrap_or_else(Instant::now);
                self.timers
                    .insert(last + self.sh.config.node_monitor_grace, Job::Check(node));
            }
            NodeCommand::Revive(node) => {
                self.renew(&node);
                self.sh.store.mutate(kinds::nodes(), "", &node, |n| {
                    object::set_condition(n, "Ready", "True", Some("KubeletReady"));
                    if let Some(taints) =
                        n.pointer_mut("/spec/taints").and_then(Value::as_array_mut)
                    {
                        taints.retain(|t| {
                            t.get("key").and_then(Value::as_str)
                                != Some("node.kubernetes.io/unreachable")
                        });
                    }
                    true
                });
            }
        }
    }

    /// Marks a silent node Unknown and its pods not ready.
    fn check(&mut self, node: &str) {
        if !self.sh.node_is_dead(node) {
            return;
        }
        if let Some(last) = self.last_renew.get(node) {
            let due = *last + self.sh.config.node_monitor_grace;
            if due > Instant::now() {
                self.timers.insert(due, Job::Check(node.to_string()));
                return;
            }
        }
        let now = object::now();
        self.sh.store.mutate(kinds::nodes(), "", node, |n| {
            for t in ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"] {
                object::set_condition(n, t, "Unknown", Some("NodeStatusUnknown"));
            }
            if let Some(conds) = n
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for c in conds {
                    c["message"] = json!("Kubelet stopped posting node status.");
                }
            }
            let spec = object::obj_mut(n, &["spec"]);
            let taints = spec.entry("taints").or_insert_with(|| json!([]));
            if let Some(taints) = taints.as_array_mut() {
                taints.retain(|t| {
                    t.get("key").and_then(Value::as_str) != Some("node.kubernetes.io/unreachable")
                });
                for effect in ["NoSchedule", "NoExecute"] {
                    taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": effect, "timeAdded": now}));
                }
            }
            true
        });
        let (pods, _) = self.sh.store.list(kinds::pods(), None);
        for p in pods
            .iter()
            .filter(|p| object::str_at(p, &["spec", "nodeName"]) == Some(node))
        {
            self.sh
                .store
                .mutate(kinds::pods(), object::namespace(p), object::name(p), |p| {
                    if object::condition(p, "Ready") == Some("False") {
                        return false;
                    }
                    object::set_condition(p, "Ready", "False", Some("NodeNotReady"));
                    true
                });
        }
    }
}
