//! The object store: every object of every kind, one global `resourceVersion` counter, a
//! bounded history of committed changes (for watches that resume from a version) and a
//! broadcast of each change as it commits.
//!
//! All operations take a short `std::sync::Mutex` critical section and never await, so
//! HTTP handlers, controllers and the in-process API share it safely. A change is
//! committed, appended to the history and broadcast under that one lock, so every
//! subscriber sees changes in `resourceVersion` order and a watch that snapshots the
//! history and subscribes under the lock misses nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::defaults;
use super::object;
use super::resources::{self, ResourceDef};
use super::status::ApiError;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was removed from the store.
    Deleted,
}

impl EventType {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as watchers and [`Sim::subscribe`](super::Sim::subscribe) see it.
#[derive(Clone, Debug)]
pub struct SimEvent {
    /// API group of the object's kind (`""` for core).
    pub group: &'static str,
    /// Plural resource name (`pods`).
    pub resource: &'static str,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// What happened.
    pub event_type: EventType,
    /// The global `resourceVersion` of this change.
    pub resource_version: u64,
    /// When the change committed, which is when watchers are handed it.
    pub at: Instant,
    /// The object after the change (for `Deleted`, its last state).
    pub object: Arc<Value>,
    /// The object before the change (`None` for `Added`).
    pub old: Option<Arc<Value>>,
}

impl SimEvent {
    /// The kind definition of the changed object.
    pub fn def(&self) -> &'static ResourceDef {
        resources::RESOURCES
            .iter()
            .find(|r| r.group == self.group && r.plural == self.resource)
            .expect("events are only made for known kinds")
    }
}

/// Which part of an object a write targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The main resource: status is kept from the stored object (unless privileged).
    Main,
    /// The `status` subresource: only the status changes.
    Status,
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    /// `gracePeriodSeconds`; `None` uses the pod's `terminationGracePeriodSeconds`.
    pub grace_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// Result of a delete.
#[derive(Clone, Debug)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Arc<Value>),
    /// The object is terminating (graceful pod delete or pending finalizers).
    Terminating(Arc<Value>),
}

type Key = (String, String);

struct Inner {
    /// Last committed `resourceVersion`.
    rv: u64,
    /// Objects per kind `(group, plural)`, keyed by `(namespace, name)` in etcd order.
    objects: HashMap<(&'static str, &'static str), BTreeMap<Key, Arc<Value>>>,
    /// Recent changes, oldest first; at most `cap` entries.
    history: VecDeque<SimEvent>,
    /// Maximum history length.
    cap: usize,
    /// Every change with a version `> floor` is in `history`; a watch from an older
    /// version cannot be served (410 Gone).
    floor: u64,
    /// Next service cluster IP suffix.
    next_cluster_ip: u32,
}

/// The shared object store.
pub struct Store {
    inner: Mutex<Inner>,
    /// Every committed change. Bounded: a receiver that falls behind by more than the
    /// capacity gets `Lagged` and must resynchronise (watches end, controllers relist).
    tx: broadcast::Sender<SimEvent>,
}

impl Store {
    /// An empty store keeping `history` changes and buffering `buffer` undelivered
    /// changes per subscriber.
    pub fn new(history: usize, buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(buffer.max(16));
        Self {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: HashMap::new(),
                history: VecDeque::new(),
                cap: history.max(1),
                floor: 0,
                next_cluster_ip: 10,
            }),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every mutation is
        // completed before anything can panic), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to every change committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SimEvent> {
        self.tx.subscribe()
    }

    /// The last committed `resourceVersion`.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        let inner = self.lock();
        inner
            .objects
            .get(&(def.group, def.plural))?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// All objects of a kind (in one namespace, or all), in `(namespace, name)` order, and
    /// the `resourceVersion` the list is consistent with.
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        (list_locked(&inner, def, ns), inner.rv)
    }

    /// Starts a watch: the changes to replay and a receiver for later ones, taken under
    /// one lock so nothing falls between them.
    ///
    /// `from = None` replays the current objects as synthetic `Added` events (the
    /// apiserver's behaviour for an unset or `"0"` version); `Some(rv)` replays the kept
    /// changes after `rv`, or fails with 410 Expired when they are no longer kept.
    pub fn watch(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> Result<(Vec<SimEvent>, broadcast::Receiver<SimEvent>, u64), ApiError> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let replay = match from {
            None => list_locked(&inner, def, ns)
                .into_iter()
                .map(|o| SimEvent {
                    group: def.group,
                    resource: def.plural,
                    namespace: object::namespace(&o).to_string(),
                    name: object::name(&o).to_string(),
                    event_type: EventType::Added,
                    resource_version: object::resource_version(&o).parse().unwrap_or(0),
                    at: Instant::now(),
                    object: o,
                    old: None,
                })
                .collect(),
            Some(rv) if rv < inner.floor => {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    inner.floor + 1
                )))
            }
            Some(rv) => inner
                .history
                .iter()
                .filter(|e| e.resource_version > rv)
                .filter(|e| e.group == def.group && e.resource == def.plural)
                .filter(|e| ns.is_none_or(|ns| e.namespace == ns))
                .cloned()
                .collect(),
        };
        Ok((replay, rx, inner.rv))
    }

    /// Forgets the whole change history: a watch from any version before now gets 410.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.floor = inner.rv;
    }

    /// Number of changes currently kept (bounded by the configured history).
    pub fn history_len(&self) -> usize {
        self.lock().history.len()
    }

    /// Creates an object. `privileged` (in-process and controller writes) keeps the given
    /// status; API clients get the kind's initial status, as with the real apiserver.
    pub fn create(
        &self,
        def: &'static ResourceDef,
        ns: &str,
        mut obj: Value,
        privileged: bool,
    ) -> Result<Arc<Value>, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        check_type(def, &mut obj)?;
        let mut inner = self.lock();
        let ns = if def.namespaced { ns } else { "" };
        {
            let body_ns = object::namespace(&obj);
            if def.namespaced && !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        if def.namespaced
            && !inner
                .objects
                .get(&("", "namespaces"))
                .is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())))
        {
            return Err(ApiError::not_found(resources::kinds::namespaces(), ns));
        }
        let mut name = object::name(&obj).to_string();
        if name.is_empty() {
            let prefix = object::str_at(&obj, &["metadata", "generateName"]).unwrap_or("");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    def,
                    "",
                    "metadata.name",
                    "\"\": name or generateName is required",
                ));
            }
            name = format!("{prefix}{}", random_suffix());
        }
        let table = inner.objects.entry((def.group, def.plural)).or_default();
        if table.contains_key(&(ns.to_string(), name.clone())) {
            return Err(ApiError::already_exists(def, &name));
        }
        {
            let meta = object::meta_mut(&mut obj);
            meta.insert("name".into(), json!(name));
            if def.namespaced {
                meta.insert("namespace".into(), json!(ns));
            } else {
                meta.remove("namespace");
            }
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(object::now()));
            meta.insert("generation".into(), json!(1));
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
            meta.remove("managedFields");
            meta.remove("selfLink");
        }
        if let Some(initial) = defaults::initial_status(def) {
            let keep = privileged && obj.get("status").is_some_and(Value::is_object);
            if !keep {
                obj["status"] = initial;
            } else if def.plural == "pods" && obj.pointer("/status/phase").is_none() {
                obj["status"]["phase"] = json!("Pending");
            }
        }
        if def.plural == "services" {
            let spec = object::obj_mut(&mut obj, &["spec"]);
            let external = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
            let has_ip = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !external && !has_ip {
                let n = inner.next_cluster_ip;
                inner.next_cluster_ip += 1;
                let ip = format!("10.96.{}.{}", n / 250, n % 250 + 1);
                spec.insert("clusterIP".into(), json!(ip));
                spec.insert("clusterIPs".into(), json!([ip]));
            }
            if !external {
                spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
                spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
            }
        }
        defaults::apply(def, &mut obj);
        defaults::validate(def, &obj)?;
        Ok(self.commit(&mut inner, def, EventType::Added, obj, None))
    }

    /// Replaces an object with `f(current)`, atomically. The result is checked like an
    /// update: a non-empty `metadata.resourceVersion` in it must equal the stored one
    /// (409 Conflict otherwise). For [`Part::Main`] of kinds with a status subresource,
    /// unprivileged writes keep the stored status; [`Part::Status`] keeps everything
    /// except the status. A write that changes nothing commits nothing.
    pub fn modify(
        &self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        part: Part,
        privileged: bool,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        let ns = if def.namespaced { ns } else { "" };
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&(def.group, def.plural))
            .and_then(|t| t.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))?;
        let mut new = f(&current)?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        check_type(def, &mut new)?;
        let body_name = object::name(&new);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = object::namespace(&new);
        if def.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let body_rv = object::resource_version(&new);
        if !body_rv.is_empty() && body_rv != object::resource_version(&current) {
            return Err(ApiError::stale(def, name));
        }
        let body_uid = object::uid(&new);
        if !body_uid.is_empty() && body_uid != object::uid(&current) {
            return Err(ApiError::conflict(
                def,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {body_uid}, UID in object meta: {}",
                    object::uid(&current)
                ),
            ));
        }
        let mut new = match part {
            Part::Status => {
                let mut merged = (*current).clone();
                merged["status"] = new.get("status").cloned().unwrap_or(json!({}));
                merged
            }
            Part::Main => {
                if def.has_status && !privileged {
                    match current.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            new.as_object_mut().expect("object").remove("status");
                        }
                    }
                }
                let cur_meta = current.get("metadata").cloned().unwrap_or(json!({}));
                let meta = object::meta_mut(&mut new);
                for k in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    match cur_meta.get(k) {
                        Some(v) => meta.insert(k.into(), v.clone()),
                        None => meta.remove(k),
                    };
                }
                meta.remove("managedFields");
                if def.plural == "services" {
                    let cur_ip = current.pointer("/spec/clusterIP").cloned();
                    let spec = object::obj_mut(&mut new, &["spec"]);
                    if let Some(ip) = cur_ip {
                        if spec.get("clusterIP").is_none_or(|v| v == "") {
                            spec.insert("clusterIP".into(), ip.clone());
                            spec.insert("clusterIPs".into(), json!([ip]));
                        }
                    }
                }
                defaults::apply(def, &mut new);
                new
            }
        };
        defaults::validate(def, &new)?;
        object::meta_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(object::resource_version(&current)),
        );
        if new == *current {
            return Ok(current);
        }
        if spec_of(&new) != spec_of(&current) {
            let g = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            object::meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        let finalized = object::is_terminating(&new)
            && def.plural != "pods"
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if finalized {
            return Ok(self.commit(&mut inner, def, EventType::Deleted, new, Some(current)));
        }
        Ok(self.commit(&mut inner, def, EventType::Modified, new, Some(current)))
    }

    /// Replaces an object with `obj` (an update / PUT). Kinds that allow create-on-update
    /// (leases, events) are created when missing.
    pub fn update(
        &self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        part: Part,
        privileged: bool,
        obj: Value,
    ) -> Result<Arc<Value>, ApiError> {
        if matches!(def.plural, "leases" | "events") && self.get(def, ns, name).is_none() {
            let mut obj = obj;
            if object::name(&obj).is_empty() {
                object::meta_mut(&mut obj).insert("name".into(), json!(name));
            }
            return self.create(def, ns, obj, privileged);
        }
        self.modify(def, ns, name, part, privileged, move |_| Ok(obj))
    }

    /// Changes an object in place under the lock (controllers' read-modify-write; never
    /// conflicts). `f` returns `false` to leave the object alone. `None` when missing.
    pub fn mutate(
        &self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value) -> bool,
    ) -> Option<Arc<Value>> {
        let mut skip = false;
        let res = self.modify(def, ns, name, Part::Main, true, |cur| {
            let mut v = (*cur).clone();
            if !f(&mut v) {
                skip = true;
            }
            let meta = object::meta_mut(&mut v);
            meta.remove("resourceVersion");
            Ok(v)
        });
        match res {
            Ok(v) => Some(v),
            Err(e) if e.code == 404 => None,
            Err(e) => {
                if !skip {
                    tracing::warn!(error = %e, "sim: controller write rejected");
                }
                self.get(def, ns, name)
            }
        }
    }

    /// Deletes an object. Pods bound to a node and not yet finished are deleted
    /// gracefully (they get `deletionTimestamp` and `deletionGracePeriodSeconds` and stay
    /// until the kubelet removes them; grace 0 removes at once); objects with finalizers
    /// stay until the finalizers are removed; deleting a namespace removes its objects.
    pub fn delete(
        &self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        default_grace: Duration,
    ) -> Result<Deleted, ApiError> {
        let ns = if def.namespaced { ns } else { "" };
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&(def.group, def.plural))
            .and_then(|t| t.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))?;
        if let Some(uid) = &opts.uid {
            if uid != object::uid(&current) {
                return Err(ApiError::conflict(
                    def,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object::uid(&current)
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            if rv != object::resource_version(&current) {
                return Err(ApiError::conflict(
                    def,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        object::resource_version(&current)
                    ),
                ));
            }
        }
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if def.plural == "pods" {
            let grace = opts.grace_seconds.unwrap_or_else(|| {
                current
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(default_grace.as_secs() as i64)
            });
            let bound = current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            let finished = matches!(
                current.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
            let graceful = grace > 0 && bound && !finished;
            if graceful || has_finalizers {
                let existing = current
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                if object::is_terminating(&current) && existing.is_some_and(|g| g <= grace) {
                    return Ok(Deleted::Terminating(current));
                }
                let mut new = (*current).clone();
                let grace = if graceful { grace } else { 0 };
                let meta = object::meta_mut(&mut new);
                meta.insert(
                    "deletionTimestamp".into(),
                    json!(object::time(Utc::now() + chrono::Duration::seconds(grace))),
                );
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                let obj = self.commit(&mut inner, def, EventType::Modified, new, Some(current));
                return Ok(Deleted::Terminating(obj));
            }
        } else if has_finalizers {
            if object::is_terminating(&current) {
                return Ok(Deleted::Terminating(current));
            }
            let mut new = (*current).clone();
            let meta = object::meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(object::now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            let obj = self.commit(&mut inner, def, EventType::Modified, new, Some(current));
            return Ok(Deleted::Terminating(obj));
        }
        if def.plural == "namespaces" {
            for r in resources::RESOURCES.iter().filter(|r| r.namespaced) {
                for o in list_locked(&inner, r, Some(name)) {
                    let last = (*o).clone();
                    self.commit(&mut inner, r, EventType::Deleted, last, Some(o));
                }
            }
        }
        let last = (*current).clone();
        let obj = self.commit(&mut inner, def, EventType::Deleted, last, Some(current));
        Ok(Deleted::Gone(obj))
    }

    /// Assigns the next version, stores (or removes) the object, records and broadcasts.
    fn commit(
        &self,
        inner: &mut Inner,
        def: &'static ResourceDef,
        event_type: EventType,
        mut obj: Value,
        old: Option<Arc<Value>>,
    ) -> Arc<Value> {
        inner.rv += 1;
        let rv = inner.rv;
        object::meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let obj = Arc::new(obj);
        let key = (
            object::namespace(&obj).to_string(),
            object::name(&obj).to_string(),
        );
        let table = inner.objects.entry((def.group, def.plural)).or_default();
        if event_type == EventType::Deleted {
            table.remove(&key);
        } else {
            table.insert(key.clone(), obj.clone());
        }
        let ev = SimEvent {
            group: def.group,
            resource: def.plural,
            namespace: key.0,
            name: key.1,
            event_type,
            resource_version: rv,
            at: Instant::now(),
            object: obj.clone(),
            old,
        };
        inner.history.push_back(ev.clone());
        while inner.history.len() > inner.cap {
            if let Some(e) = inner.history.pop_front() {
                inner.floor = e.resource_version;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
        obj
    }
}

fn list_locked(inner: &Inner, def: &ResourceDef, ns: Option<&str>) -> Vec<Arc<Value>> {
    let Some(table) = inner.objects.get(&(def.group, def.plural)) else {
        return Vec::new();
    };
    match ns.filter(|_| def.namespaced) {
        Some(ns) => table
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .map(|(_, v)| v.clone())
            .collect(),
        None => table.values().cloned().collect(),
    }
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_of(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

/// Sets `apiVersion`/`kind` when missing and rejects a body of another kind.
fn check_type(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let o = obj.as_object_mut().expect("checked object");
    let api_version = def.api_version();
    match o.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            o.insert("kind".into(), json!(def.kind));
        }
        Some(k) if k == def.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind of the body ({k}) does not match the expected kind {}",
                def.kind
            )))
        }
    }
    match o.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            o.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
    }
    Ok(())
}

/// Five characters from the alphabet Kubernetes uses for generated names.
fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
