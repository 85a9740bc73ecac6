//! The EndpointSlice controller, emulated.
//!
//! For each Service with a selector it maintains EndpointSlices from the matching pods as
//! the real controller does (KEP-1672 conditions, `targetRef`, `nodeName`, `zone`, ports
//! resolved from `targetPort`, at most `max_endpoints_per_slice` endpoints per slice,
//! separate slices per address family and port set, a placeholder slice when there are
//! no endpoints). Services without a selector are left alone.
//!
//! Lag: the controller sees pods, services and nodes through a *delay line*: each change
//! is applied to its private cache `endpointslice_delay` after it committed, which is how
//! a real controller trails the watch it reads. Work is coalesced: all changes due at one
//! moment are applied first, then each affected Service is reconciled once.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};

use super::slice_plan::{self, Group};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use crate::object;
use crate::resources::kinds;
use crate::selector::LabelSelector;
use crate::store::{DeleteOpts, EventType, SimEvent};
use crate::Shared;

/// Label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The real controller's manager name.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Annotation with the time of the last change that triggered a slice update.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Node label carrying the zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Most changes held in the delay line; past this the controller resynchronises from the
/// store (losing the delay for that burst) instead of growing.
const MAX_DELAYED: usize = 200_000;

type Key = (String, String);

/// The controller's (delayed) view of the cluster.
#[derive(Default)]
struct Cache {
    services: BTreeMap<Key, Arc<Value>>,
    pods: HashMap<String, BTreeMap<String, Arc<Value>>>,
    nodes: HashMap<String, Arc<Value>>,
}

/// A pod's endpoint as last computed for one Service, valid while the pod's and the
/// Service's versions and the node's zone are unchanged.
struct Memo {
    pod_rv: String,
    svc_rv: String,
    zone: Option<String>,
    group: String,
    address_type: &'static str,
    ports: Value,
    endpoint: Value,
}

struct Controller {
    sh: Arc<Shared>,
    cache: Cache,
    /// Per Service, per pod name.
    memo: HashMap<Key, HashMap<String, Memo>>,
    delayed: VecDeque<SimEvent>,
    /// Services to reconcile, with the wall-clock time of the latest change that
    /// triggered it (`None` after a resync).
    dirty: BTreeMap<Key, Option<DateTime<Utc>>>,
}

/// Runs until the simulator shuts down.
pub(crate) async fn run(sh: Arc<Shared>, mut rx: broadcast::Receiver<SimEvent>) {
    let mut c = Controller {
        sh: sh.clone(),
        cache: Cache::default(),
        memo: HashMap::new(),
        delayed: VecDeque::new(),
        dirty: BTreeMap::new(),
    };
    c.resync();
    loop {
        c.apply_due();
        c.reconcile_dirty();
        let next = c
            .delayed
            .front()
            .map(|e| tokio::time::Instant::from_std(e.at + sh.config.endpointslice_delay));
        tokio::select! {
            _ = sh.cancel.cancelled() => return,
            r = rx.recv() => {
                let mut r = Ok(r);
                // Take everything already queued: one reconcile per service per batch.
                loop {
                    match r {
                        Ok(Ok(ev)) => c.push(ev),
                        Ok(Err(RecvError::Lagged(_))) | Err(TryRecvError::Lagged(_)) => c.resync(),
                        Ok(Err(RecvError::Closed)) | Err(TryRecvError::Closed) => return,
                        Err(TryRecvError::Empty) => break,
                    }
                    r = rx.try_recv().map(Ok);
                }
            }
            _ = super::sleep_until(next) => {}
        }
    }
}

impl Controller {
    fn resync(&mut self) {
        let store = &self.sh.store;
        let mut cache = Cache::default();
        for s in store.list(kinds::services(), None).0 {
            cache.services.insert(
                (
                    object::namespace(&s).to_string(),
                    object::name(&s).to_string(),
                ),
                s,
            );
        }
        for p in store.list(kinds::pods(), None).0 {
            cache
                .pods
                .entry(object::namespace(&p).to_string())
                .or_default()
                .insert(object::name(&p).to_string(), p);
        }
        for n in store.list(kinds::nodes(), None).0 {
            cache.nodes.insert(object::name(&n).to_string(), n);
        }
        // Services that vanished while we were behind still need their slices removed.
        let old: Vec<Key> = self.cache.services.keys().cloned().collect();
        for key in old.into_iter().chain(cache.services.keys().cloned()) {
            self.dirty.entry(key).or_insert(None);
        }
        self.cache = cache;
        self.delayed.clear();
    }

    fn push(&mut self, ev: SimEvent) {
        if !matches!(ev.resource, "pods" | "services" | "nodes") || !ev.group.is_empty() {
            return;
        }
        if self.delayed.len() >= MAX_DELAYED {
            self.resync();
            return;
        }
        self.delayed.push_back(ev);
    }

    fn apply_due(&mut self) {
        let delay = self.sh.config.endpointslice_delay;
        let now = std::time::Instant::now();
        while self.delayed.front().is_some_and(|e| e.at + delay <= now) {
            let ev = self.delayed.pop_front().expect("checked front");
            self.apply(ev);
        }
    }

    /// Marks a Service for reconciliation, keeping the latest trigger time.
    fn mark(&mut self, key: Key, trigger: Option<DateTime<Utc>>) {
        let slot = self.dirty.entry(key).or_insert(None);
        if trigger > *slot {
            *slot = trigger;
        }
    }

    fn apply(&mut self, ev: SimEvent) {
        let gone = ev.event_type == EventType::Deleted;
        // Wall-clock commit time of the change, for the trigger-time annotation.
        let trigger = chrono::Duration::from_std(ev.at.elapsed())
            .ok()
            .map(|ago| Utc::now() - ago);
        match ev.resource {
            "services" => {
                let key = (ev.namespace.clone(), ev.name.clone());
                if gone {
                    self.cache.services.remove(&key);
                } else {
                    self.cache.services.insert(key.clone(), ev.object.clone());
                }
                self.mark(key, trigger);
            }
            "pods" => {
                let pods = self.cache.pods.entry(ev.namespace.clone()).or_default();
                if gone {
                    pods.remove(&ev.name);
                } else {
                    pods.insert(ev.name.clone(), ev.object.clone());
                }
                let mut hits = Vec::new();
                let range = (ev.namespace.clone(), String::new())..;
                for ((ns, name), svc) in self.cache.services.range(range) {
                    if *ns != ev.namespace {
                        break;
                    }
                    let Some(sel) = selector(svc) else { continue };
                    let hit = sel.matches_object(&ev.object)
                        || ev.old.as_deref().is_some_and(|o| sel.matches_object(o));
                    if hit {
                        hits.push((ns.clone(), name.clone()));
                    }
                }
                for key in hits {
                    self.mark(key, trigger);
                }
            }
            "nodes" => {
                let zone_changed = ev.old.as_deref().map(|o| object::label(o, ZONE_LABEL))
                    != Some(object::label(&ev.object, ZONE_LABEL));
                if gone {
                    self.cache.nodes.remove(&ev.name);
                } else {
                    self.cache.nodes.insert(ev.name.clone(), ev.object.clone());
                }
                if zone_changed || gone {
                    let all: Vec<Key> = self.cache.services.keys().cloned().collect();
                    for key in all {
                        self.mark(key, trigger);
                    }
                }
            }
            _ => {}
        }
    }

    fn reconcile_dirty(&mut self) {
        for (key, trigger) in std::mem::take(&mut self.dirty) {
            self.reconcile(&key.0, &key.1, trigger);
        }
    }

    /// Brings one Service's managed slices in line with the cache.
    fn reconcile(&mut self, ns: &str, name: &str, trigger: Option<DateTime<Utc>>) {
        let store = self.sh.store.clone();
        let existing: Vec<Arc<Value>> = store
            .list(kinds::endpointslices(), Some(ns))
            .0
            .into_iter()
            .filter(|s| {
                object::label(s, SERVICE_NAME_LABEL) == Some(name)
                    && object::label(s, MANAGED_BY_LABEL) == Some(CONTROLLER_NAME)
            })
            .collect();
        let Some(svc) = self
            .cache
            .services
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
        else {
            self.memo.remove(&(ns.to_string(), name.to_string()));
            for s in existing {
                let _ = store.delete(
                    kinds::endpointslices(),
                    ns,
                    object::name(&s),
                    &DeleteOpts::default(),
                    Default::default(),
                );
            }
            return;
        };
        let Some(sel) = selector(&svc) else { return };
        let max = self.sh.config.max_endpoints_per_slice.max(1);
        let publish_not_ready = svc
            .pointer("/spec/publishNotReadyAddresses")
            .and_then(Value::as_bool)
            .unwrap_or(false);

        // Desired endpoints, grouped by (address type, ports). Endpoints are memoised per
        // pod: only pods (or nodes, or the Service) that changed since the last
        // reconcile are converted again, which keeps big Services cheap.
        let key = (ns.to_string(), name.to_string());
        let svc_rv = object::resource_version(&svc).to_string();
        let mut old_memo = self.memo.remove(&key).unwrap_or_default();
        let mut memo: HashMap<String, Memo> = HashMap::with_capacity(old_memo.len());
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for pod in self.cache.pods.get(ns).into_iter().flat_map(|m| m.values()) {
            if !sel.matches_object(pod) {
                continue;
            }
            let Some(ip) = object::str_at(pod, &["status", "podIP"]).filter(|s| !s.is_empty())
            else {
                continue;
            };
            if matches!(
                object::str_at(pod, &["status", "phase"]),
                Some("Succeeded" | "Failed")
            ) {
                continue;
            }
            let pod_name = object::name(pod);
            let zone = object::str_at(pod, &["spec", "nodeName"])
                .and_then(|n| self.cache.nodes.get(n))
                .and_then(|n| object::label(n, ZONE_LABEL));
            let m = match old_memo.remove(pod_name) {
                Some(m)
                    if m.pod_rv == object::resource_version(pod)
                        && m.svc_rv == svc_rv
                        && m.zone.as_deref() == zone =>
                {
                    m
                }
                _ => {
                    let ports = endpoint_ports(&svc, pod);
                    let address_type = if ip.contains(':') { "IPv6" } else { "IPv4" };
                    Memo {
                        pod_rv: object::resource_version(pod).to_string(),
                        svc_rv: svc_rv.clone(),
                        zone: zone.map(str::to_string),
                        group: slice_plan::group_key(address_type, &ports),
                        address_type,
                        endpoint: endpoint(pod, name, ip, publish_not_ready, zone),
                        ports,
                    }
                }
            };
            groups
                .entry(m.group.clone())
                .or_insert_with(|| (m.address_type.to_string(), m.ports.clone(), BTreeMap::new()))
                .2
                .insert(pod_name.to_string(), m.endpoint.clone());
            memo.insert(pod_name.to_string(), m);
        }
        self.memo.insert(key, memo);

        let labels = slice_labels(&svc);
        let owner = json!([{
            "apiVersion": "v1", "kind": "Service", "name": name, "uid": object::uid(&svc),
            "controller": true, "blockOwnerDeletion": true,
        }]);

        let (planned, fresh) = slice_plan::plan(existing, groups, max);
        let trigger_time = trigger.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));

        for (s, plan) in planned {
            let sname = object::name(&s).to_string();
            match plan {
                None => {
                    let _ = store.delete(
                        kinds::endpointslices(),
                        ns,
                        &sname,
                        &DeleteOpts::default(),
                        Default::default(),
                    );
                }
                Some((at, ports, eps)) => {
                    let unchanged = s.get("addressType").and_then(Value::as_str)
                        == Some(at.as_str())
                        && s.get("ports") == Some(&ports)
                        && s.get("endpoints").and_then(Value::as_array) == Some(&eps)
                        && s.pointer("/metadata/labels").and_then(Value::as_object)
                            == Some(&labels)
                        && s.pointer("/metadata/ownerReferences") == Some(&owner);
                    if unchanged {
                        continue;
                    }
                    let labels = labels.clone();
                    let owner = owner.clone();
                    store.mutate(kinds::endpointslices(), ns, &sname, |o| {
                        o["addressType"] = json!(at);
                        o["ports"] = ports;
                        o["endpoints"] = Value::Array(eps);
                        if let Some(t) = &trigger_time {
                            object::obj_mut(o, &["metadata", "annotations"])
                                .insert(TRIGGER_TIME_ANNOTATION.into(), json!(t));
                        }
                        let meta = object::meta_mut(o);
                        meta.insert("labels".into(), Value::Object(labels));
                        meta.insert("ownerReferences".into(), owner);
                        true
                    });
                }
            }
        }
        for (at, ports, eps) in fresh {
            let mut obj = json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"generateName": format!("{name}-"), "namespace": ns,
                    "labels": labels, "ownerReferences": owner},
                "addressType": at, "ports": ports, "endpoints": eps,
            });
            if let Some(t) = &trigger_time {
                obj["metadata"]["annotations"] = json!({TRIGGER_TIME_ANNOTATION: t});
            }
            if let Err(e) = store.create(kinds::endpointslices(), ns, obj, true) {
                tracing::warn!(service = name, error = %e, "sim: creating EndpointSlice failed");
            }
        }
    }
}

/// One endpoint for a pod, with KEP-1672 conditions.
fn endpoint(
    pod: &Value,
    service: &str,
    ip: &str,
    publish_not_ready: bool,
    zone: Option<&str>,
) -> Value {
    let terminating = object::is_terminating(pod);
    let pod_ready = object::condition(pod, "Ready") == Some("True");
    let mut e = json!({
        "addresses": [ip],
        "conditions": {
            "ready": publish_not_ready || (pod_ready && !terminating),
            "serving": publish_not_ready || pod_ready,
            "terminating": terminating,
        },
        "targetRef": {"kind": "Pod", "namespace": object::namespace(pod),
            "name": object::name(pod), "uid": object::uid(pod)},
    });
    if let Some(node) = object::str_at(pod, &["spec", "nodeName"]).filter(|n| !n.is_empty()) {
        e["nodeName"] = json!(node);
        if let Some(zone) = zone {
            e["zone"] = json!(zone);
        }
    }
    // Upstream publishes the hostname only when the pod's subdomain names the Service.
    if let (Some(h), Some(sub)) = (
        object::str_at(pod, &["spec", "hostname"]),
        object::str_at(pod, &["spec", "subdomain"]),
    ) {
        if sub == service {
            e["hostname"] = json!(h);
        }
    }
    e
}

/// A Service's selector, or `None` when it has none (slices managed by hand).
fn selector(svc: &Value) -> Option<LabelSelector> {
    let map = svc.pointer("/spec/selector")?.as_object()?;
    (!map.is_empty()).then(|| LabelSelector::from_map(map))
}

fn slice_labels(svc: &Value) -> Map<String, Value> {
    let mut labels = object::labels(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), json!(object::name(svc)));
    labels.insert(MANAGED_BY_LABEL.into(), json!(CONTROLLER_NAME));
    if object::str_at(svc, &["spec", "clusterIP"]) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), json!(""));
    }
    labels
}

/// The slice ports for a pod: each Service port with its `targetPort` resolved against
/// the pod (a named port the pod lacks is left out for that pod, as upstream does).
fn endpoint_ports(svc: &Value, pod: &Value) -> Value {
    let mut out = Vec::new();
    for p in svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        let target = p.get("targetPort").or_else(|| p.get("port"));
        let number = match target {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => match s.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => named_port(pod, s, protocol),
            },
            _ => None,
        };
        let Some(number) = number else { continue };
        let mut port = json!({
            "name": p.get("name").and_then(Value::as_str).unwrap_or(""),
            "port": number, "protocol": protocol,
        });
        if let Some(ap) = p.get("appProtocol") {
            port["appProtocol"] = ap.clone();
        }
        out.push(port);
    }
    Value::Array(out)
}

fn named_port(pod: &Value, name: &str, protocol: &str) -> Option<i64> {
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|p| {
            p.get("name").and_then(Value::as_str) == Some(name)
                && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == protocol
        })?
        .get("containerPort")?
        .as_i64()
}
