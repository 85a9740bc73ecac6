//! The kubelet (and the scheduler's node assignment): binds unscheduled pods round-robin
//! to live nodes, starts bound pods after the startup delay (IP, `Running`, containers
//! running, every condition `True`), finishes graceful deletions when the grace period
//! ends, and turns a recovered container ready again after the startup delay.
//!
//! Crash and recover are synchronous store writes ([`Sim::crash_pod`](crate::Sim::crash_pod), [`Sim::recover_pod`](crate::Sim::recover_pod)) so the caller
//! sees the status change as soon as the call returns; the kubelet task only reacts to
//! what they leave (a running but unready container on a live node gets ready later).
//! The kubelet owns pod status like a real one: a running pod whose containers all run
//! but whose `Ready` condition is not `True` is made ready again after the startup
//! delay, so keeping a pod down is done with [`Sim::crash_pod`](crate::Sim::crash_pod), not by patching its status.
//! Pods on a dead node are left alone — they neither start, become ready nor finish
//! terminating — as with a real node whose kubelet is gone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::{sleep_until, Timers};
use crate::object;
use crate::resources::kinds;
use crate::status::ApiError;
use crate::store::{DeleteOpts, EventType, SimEvent, Store};
use crate::Shared;

/// Annotation a pod sets to choose its IP (IPv4 or IPv6).
pub const POD_IP_ANNOTATION: &str = "sim.origin-discovery.io/pod-ip";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Action {
    Start,
    Ready,
    Remove,
}

/// A pending timed action on one pod (by uid, so a recreated pod of the same name is not
/// touched).
struct Job {
    action: Action,
    namespace: String,
    name: String,
    uid: String,
}

struct Kubelet {
    sh: Arc<Shared>,
    timers: Timers<Job>,
    /// `(uid, action)` already scheduled, so repeated events do not schedule twice.
    pending: HashSet<(String, Action)>,
    /// Next node for round-robin binding.
    next_node: usize,
    /// Per-node IP allocator state: node index and IPs in use.
    nodes_seen: HashMap<String, u32>,
    ips_in_use: HashSet<String>,
    /// Next address offset to try per node.
    ip_cursor: HashMap<String, u32>,
}

/// Runs the kubelet until the simulator shuts down.
pub(crate) async fn run(sh: Arc<Shared>, mut rx: broadcast::Receiver<SimEvent>) {
    let mut k = Kubelet {
        sh: sh.clone(),
        timers: Timers::default(),
        pending: HashSet::new(),
        next_node: 0,
        nodes_seen: HashMap::new(),
        ips_in_use: HashSet::new(),
        ip_cursor: HashMap::new(),
    };
    k.resync();
    loop {
        tokio::select! {
            _ = sh.cancel.cancelled() => return,
            r = rx.recv() => match r {
                Ok(ev) => k.on_event(&ev),
                Err(RecvError::Lagged(_)) => k.resync(),
                Err(RecvError::Closed) => return,
            },
            _ = sleep_until(k.timers.next()) => k.fire_due(),
        }
    }
}

impl Kubelet {
    fn resync(&mut self) {
        let (pods, _) = self.sh.store.list(kinds::pods(), None);
        for p in &pods {
            if let Some(ip) = object::str_at(p, &["status", "podIP"]) {
                self.ips_in_use.insert(ip.to_string());
            }
        }
        for p in pods {
            self.on_pod(&p, None);
        }
    }

    fn on_event(&mut self, ev: &SimEvent) {
        match (ev.resource, ev.event_type) {
            ("pods", EventType::Deleted) => {
                if let Some(ip) = object::str_at(&ev.object, &["status", "podIP"]) {
                    self.ips_in_use.remove(ip);
                }
            }
            ("pods", _) => self.on_pod(&ev.object, Some(ev)),
            ("nodes", EventType::Added | EventType::Modified) => {
                // A node appeared or came back: bind waiting pods, start or ready its pods.
                let node = ev.name.clone();
                let (pods, _) = self.sh.store.list(kinds::pods(), None);
                for p in pods {
                    let on = object::str_at(&p, &["spec", "nodeName"]).unwrap_or("");
                    if on.is_empty() || on == node {
                        self.on_pod(&p, None);
                    }
                }
            }
            _ => {}
        }
    }

    fn schedule(&mut self, action: Action, pod: &Value, after: Duration) {
        let key = (object::uid(pod).to_string(), action);
        if self.pending.contains(&key) {
            return;
        }
        self.pending.insert(key);
        self.timers.insert(
            Instant::now() + after,
            Job {
                action,
                namespace: object::namespace(pod).to_string(),
                name: object::name(pod).to_string(),
                uid: object::uid(pod).to_string(),
            },
        );
    }

    fn on_pod(&mut self, pod: &Value, ev: Option<&SimEvent>) {
        // IPs set by others (in-process creates with a status) are taken too.
        if let Some(ip) = object::str_at(pod, &["status", "podIP"]) {
            if !self.ips_in_use.contains(ip) {
                self.ips_in_use.insert(ip.to_string());
            }
        }
        let node = object::str_at(pod, &["spec", "nodeName"]).unwrap_or("");
        if object::is_terminating(pod) {
            if !node.is_empty() && self.sh.node_is_dead(node) {
                return;
            }
            let grace = pod
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .max(0) as u64;
            // Measured from when the deletion was observed (the timestamp has only
            // whole-second precision).
            let elapsed = ev.map_or(Duration::ZERO, |e| e.at.elapsed());
            self.schedule(
                Action::Remove,
                pod,
                Duration::from_secs(grace).saturating_sub(elapsed),
            );
            return;
        }
        if node.is_empty() {
            self.bind(pod);
            return;
        }
        // No kubelet runs for a dead or non-existent node; a node created later
        // triggers a recheck.
        if self.sh.node_is_dead(node) || self.sh.store.get(kinds::nodes(), "", node).is_none() {
            return;
        }
        let phase = object::str_at(pod, &["status", "phase"]).unwrap_or("Pending");
        let started = object::str_at(pod, &["status", "podIP"]).is_some();
        let delay = self.sh.config.pod_startup_delay;
        if phase == "Pending" && !started {
            self.schedule(Action::Start, pod, delay);
            return;
        }
        if phase == "Running" && object::condition(pod, "Ready") != Some("True") {
            let statuses = pod
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let all_running = statuses.is_some_and(|s| {
                !s.is_empty() && s.iter().all(|c| c.pointer("/state/running").is_some())
            });
            if all_running {
                self.schedule(Action::Ready, pod, delay);
            }
        }
    }

    /// Binds a pod to the next live node, round-robin in name order.
    fn bind(&mut self, pod: &Value) {
        let (nodes, _) = self.sh.store.list(kinds::nodes(), None);
        let live: Vec<&str> = nodes
            .iter()
            .filter(|n| !self.sh.node_is_dead(object::name(n)))
            .filter(|n| object::condition(n, "Ready") != Some("Unknown"))
            .filter(|n| n.pointer("/spec/unschedulable").and_then(Value::as_bool) != Some(true))
            .map(|n| object::name(n))
            .collect();
        if live.is_empty() {
            if object::condition(pod, "PodScheduled") != Some("False") {
                self.sh.store.mutate(
                    kinds::pods(),
                    object::namespace(pod),
                    object::name(pod),
                    |p| {
                        object::set_condition(p, "PodScheduled", "False", Some("Unschedulable"));
                        true
                    },
                );
            }
            return;
        }
        let node = live[self.next_node % live.len()].to_string();
        self.next_node = self.next_node.wrapping_add(1);
        let uid = object::uid(pod).to_string();
        self.sh.store.mutate(
            kinds::pods(),
            object::namespace(pod),
            object::name(pod),
            |p| {
                if object::uid(p) != uid
                    || object::str_at(p, &["spec", "nodeName"]).is_some_and(|n| !n.is_empty())
                {
                    return false;
                }
                p["spec"]["nodeName"] = json!(node);
                object::set_condition(p, "PodScheduled", "True", None);
                true
            },
        );
    }

    fn fire_due(&mut self) {
        for job in self.timers.pop_due(Instant::now()) {
            self.pending.remove(&(job.uid.clone(), job.action));
            match job.action {
                Action::Start => self.start(&job),
                Action::Ready => self.make_ready(&job),
                Action::Remove => {
                    let opts = DeleteOpts {
                        grace_seconds: Some(0),
                        uid: Some(job.uid.clone()),
                        resource_version: None,
                    };
                    // Already gone or replaced: nothing to do.
                    let _ = self.sh.store.delete(
                        kinds::pods(),
                        &job.namespace,
                        &job.name,
                        &opts,
                        Duration::ZERO,
                    );
                }
            }
        }
    }

    fn node_index(&mut self, node: &str) -> u32 {
        let n = self.nodes_seen.len() as u32;
        *self.nodes_seen.entry(node.to_string()).or_insert(n)
    }

    fn allocate_ip(&mut self, pod: &Value, node: &str) -> String {
        if let Some(ip) = object::annotation(pod, POD_IP_ANNOTATION) {
            if ip.parse::<std::net::IpAddr>().is_ok() {
                self.ips_in_use.insert(ip.to_string());
                return ip.to_string();
            }
            tracing::warn!(ip, "sim: ignoring invalid {POD_IP_ANNOTATION} annotation");
        }
        // Node n owns 10.244.n.0/24 (then 10.<128+k>.n.0/24 past 253 pods); a per-node
        // cursor makes allocation O(1) unless addresses are being reused.
        let idx = self.node_index(node);
        let b = (idx % 256) as u8;
        let first_octet_base = 244 + idx / 256;
        let cursor = self.ip_cursor.entry(node.to_string()).or_insert(0);
        const SPACE: u32 = 253 * 100;
        for _ in 0..SPACE {
            let m = *cursor % SPACE;
            *cursor = cursor.wrapping_add(1);
            let (c, d) = (m / 253, m % 253 + 2);
            let ip = if c == 0 {
                format!("10.{first_octet_base}.{b}.{d}")
            } else {
                format!("10.{}.{b}.{d}", 128 + c)
            };
            if self.ips_in_use.insert(ip.clone()) {
                return ip;
            }
        }
        format!("10.255.255.{}", rand::random::<u8>())
    }

    fn start(&mut self, job: &Job) {
        let Some(pod) = self.sh.store.get(kinds::pods(), &job.namespace, &job.name) else {
            return;
        };
        if object::uid(&pod) != job.uid || object::is_terminating(&pod) {
            return;
        }
        let node = object::str_at(&pod, &["spec", "nodeName"])
            .unwrap_or("")
            .to_string();
        if node.is_empty() || self.sh.node_is_dead(&node) {
            return;
        }
        let ip = self.allocate_ip(&pod, &node);
        let host_ip = self
            .sh
            .store
            .get(kinds::nodes(), "", &node)
            .and_then(|n| {
                n.pointer("/status/addresses")?
                    .as_array()?
                    .iter()
                    .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))?
                    .get("address")?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "192.168.0.1".to_string());
        let now = object::now();
        let uid = job.uid.clone();
        self.sh
            .store
            .mutate(kinds::pods(), &job.namespace, &job.name, |p| {
                if object::uid(p) != uid {
                    return false;
                }
                let containers = p
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let statuses: Vec<Value> = containers
                    .iter()
                    .map(|c| {
                        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                        json!({
                            "name": name,
                            "image": c.get("image").cloned().unwrap_or(json!("")),
                            "imageID": "",
                            "containerID": format!("sim://{}-{name}", &uid[..8.min(uid.len())]),
                            "ready": true, "started": true, "restartCount": 0,
                            "state": {"running": {"startedAt": now}},
                        })
                    })
                    .collect();
                let st = object::obj_mut(p, &["status"]);
                st.insert("phase".into(), json!("Running"));
                st.insert("podIP".into(), json!(ip));
                st.insert("podIPs".into(), json!([{"ip": ip}]));
                st.insert("hostIP".into(), json!(host_ip));
                st.insert("hostIPs".into(), json!([{"ip": host_ip}]));
                st.insert("startTime".into(), json!(now));
                st.insert("containerStatuses".into(), Value::Array(statuses));
                for c in [
                    "PodReadyToStartContainers",
                    "Initialized",
                    "ContainersReady",
                    "Ready",
                    "PodScheduled",
                ] {
                    object::set_condition(p, c, "True", None);
                }
                true
            });
    }

    fn make_ready(&mut self, job: &Job) {
        let uid = job.uid.clone();
        let sh = self.sh.clone();
        self.sh
            .store
            .mutate(kinds::pods(), &job.namespace, &job.name, |p| {
                if object::uid(p) != uid || object::is_terminating(p) {
                    return false;
                }
                if object::str_at(p, &["spec", "nodeName"]).is_some_and(|n| sh.node_is_dead(n)) {
                    return false;
                }
                let Some(statuses) = p
                    .pointer_mut("/status/containerStatuses")
                    .and_then(Value::as_array_mut)
                else {
                    return false;
                };
                if !statuses
                    .iter()
                    .all(|c| c.pointer("/state/running").is_some())
                {
                    return false;
                }
                for c in statuses.iter_mut() {
                    c["ready"] = json!(true);
                    c["started"] = json!(true);
                }
                object::set_condition(p, "ContainersReady", "True", None);
                object::set_condition(p, "Ready", "True", None);
                true
            });
    }
}

fn require_started(store: &Store, ns: &str, name: &str) -> Result<(), ApiError> {
    let pod = store
        .get(kinds::pods(), ns, name)
        .ok_or_else(|| ApiError::not_found(kinds::pods(), name))?;
    if pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return Err(ApiError::bad_request(format!(
            "pod {ns}/{name} has no started containers"
        )));
    }
    Ok(())
}

/// Crashes every container of a pod: `state.terminated` (exit 137, reason `Error`),
/// `ready: false`, and the pod's `ContainersReady`/`Ready` conditions `False`, as a
/// kubelet reports a container that died. The container stays down until [`recover`].
pub(crate) fn crash(store: &Store, ns: &str, name: &str) -> Result<(), ApiError> {
    require_started(store, ns, name)?;
    let now = object::now();
    store.mutate(kinds::pods(), ns, name, |p| {
        if let Some(statuses) = p
            .pointer_mut("/status/containerStatuses")
            .and_then(Value::as_array_mut)
        {
            for c in statuses.iter_mut() {
                let started = c
                    .pointer("/state/running/startedAt")
                    .cloned()
                    .unwrap_or(json!(now));
                let id = c.get("containerID").cloned().unwrap_or(json!(""));
                c["state"] = json!({"terminated": {
                    "exitCode": 137, "reason": "Error", "startedAt": started,
                    "finishedAt": now, "containerID": id,
                }});
                c["ready"] = json!(false);
                c["started"] = json!(false);
            }
        }
        object::set_condition(p, "ContainersReady", "False", Some("ContainersNotReady"));
        object::set_condition(p, "Ready", "False", Some("ContainersNotReady"));
        true
    });
    Ok(())
}

/// Restarts a pod's containers: running again, `restartCount + 1`, the previous state in
/// `lastState`; the kubelet task marks them ready after the startup delay.
pub(crate) fn recover(store: &Store, ns: &str, name: &str) -> Result<(), ApiError> {
    require_started(store, ns, name)?;
    let now = object::now();
    store.mutate(kinds::pods(), ns, name, |p| {
        if let Some(statuses) = p
            .pointer_mut("/status/containerStatuses")
            .and_then(Value::as_array_mut)
        {
            for c in statuses.iter_mut() {
                let prev = c.get("state").cloned().unwrap_or(json!({}));
                if prev.get("terminated").is_some() {
                    c["lastState"] = prev;
                }
                let restarts = c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
                c["restartCount"] = json!(restarts + 1);
                c["state"] = json!({"running": {"startedAt": now}});
                c["ready"] = json!(false);
                c["started"] = json!(true);
            }
        }
        object::set_condition(p, "ContainersReady", "False", Some("ContainersNotReady"));
        object::set_condition(p, "Ready", "False", Some("ContainersNotReady"));
        true
    });
    Ok(())
}
