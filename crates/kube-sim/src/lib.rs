//! kube-sim: a simulated Kubernetes API server on loopback, for controller tests and demos
//! (origin-discovery's `dev` mode and end-to-end tests use it; see this crate's README).
//!
//! It speaks the real REST API over loopback HTTP (discovery, get/list/watch with
//! `resourceVersion`, bookmarks, 410 Gone, selectors, pagination, create/update/patch/
//! delete incl. `status`, `Status` errors, kubectl's Table format) for namespaces, pods,
//! services, nodes, events, EndpointSlices and Leases, and emulates the cluster's own
//! controllers. Module map:
//!
//! - [`resources`]: the table of served kinds; everything else is generic over it.
//! - [`store`]: objects, the global `resourceVersion`, bounded history, change broadcast.
//! - [`rest`] / `server`: HTTP routing and verbs / the stoppable accept loop.
//! - [`watch`], [`pagination`], [`selector`], [`patch`], [`table`], [`format`](mod@format), [`discovery`],
//!   [`defaults`], [`status`]: the API semantics, one concept each.
//! - [`controllers`]: EndpointSlice controller, kubelet + scheduler, node leases and
//!   lifecycle.
//! - [`faults`]: fault injection for tests. [`seed`]: the `demo` pool.
//!   [`kubeconfig`]: the kubeconfig file. [`testing`]: waits and settings for test suites.
//!
//! Data flow: HTTP handlers, the in-process [`Sim`] methods and the controllers all write
//! through the [`store::Store`]; each commit is broadcast to watch streams, controllers
//! and [`Sim::subscribe`] receivers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kube_sim::{Sim, SimConfig};
//! use std::time::Duration;
//!
//! let sim = Sim::start(SimConfig {
//!     endpointslice_delay: Duration::from_secs(1),
//!     ..SimConfig::default()
//! })
//! .await?;
//! sim.seed_demo()?; // demo/origin: 3 pods on node-a..c, Ready after the startup delay
//! sim.write_kubeconfig(std::path::Path::new("/tmp/sim.kubeconfig"))?;
//! let client = sim.client().await; // a kube::Client for the simulator
//! let mut changes = sim.subscribe(); // every committed change, with its commit time
//! sim.crash_pod("demo", "origin-0")?; // Ready=False now; the slice follows 1 s later
//! sim.faults().drop_watches();
//! sim.shutdown().await;
//! # drop((client, changes.try_recv())); Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod controllers;
pub mod defaults;
pub mod discovery;
pub mod faults;
pub mod format;
pub mod kubeconfig;
pub mod object;
pub mod pagination;
pub mod patch;
pub mod resources;
pub mod rest;
pub mod seed;
pub mod selector;
mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod testing;
pub mod watch;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use controllers::kubelet::POD_IP_ANNOTATION;
pub use faults::Faults;
pub use status::ApiError;
pub use store::{EventType, SimEvent};

use controllers::nodes::NodeCommand;
use pagination::Paginator;
use resources::{kinds, ResourceDef};
use server::Server;
use store::{DeleteOpts, Part, Store};

/// Simulator settings. Defaults match a real cluster's; tests shorten the delays.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Listen address; port 0 picks a free port (see [`Sim::addr`]).
    pub listen: SocketAddr,
    /// How long after a pod/service/node change the EndpointSlice controller applies it.
    pub endpointslice_delay: Duration,
    /// Most endpoints in one EndpointSlice (the real controller's default is 100).
    pub max_endpoints_per_slice: usize,
    /// Time from a pod being bound to a node until it is Running and Ready (and from a
    /// container restart until it is Ready again).
    pub pod_startup_delay: Duration,
    /// How often live nodes renew their Lease.
    pub lease_renew_interval: Duration,
    /// How long after a node's last Lease renewal it is marked `Ready=Unknown`.
    pub node_monitor_grace: Duration,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Number of changes kept for watches resuming from a version; older versions get
    /// 410 Gone.
    pub event_history: usize,
    /// Undelivered changes buffered per watch/controller; a watch further behind is
    /// disconnected (slow-consumer policy).
    pub watch_buffer: usize,
    /// Grace period of a pod delete when neither the request nor the pod says.
    pub default_grace_period: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            endpointslice_delay: Duration::ZERO,
            max_endpoints_per_slice: 100,
            pod_startup_delay: Duration::from_secs(1),
            lease_renew_interval: Duration::from_secs(10),
            node_monitor_grace: Duration::from_secs(40),
            bookmark_interval: Duration::from_secs(30),
            event_history: 10_000,
            watch_buffer: 8192,
            default_grace_period: Duration::from_secs(30),
        }
    }
}

/// Errors of the simulator's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listen address could not be bound.
    #[error("binding the simulator to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The API refused the operation (not found, conflict, invalid …), exactly as an HTTP
    /// client would have been told.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A typed object did not convert to or from JSON.
    #[error("converting a {kind}: {source}")]
    Convert {
        /// Kind of the object.
        kind: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The type is not a kind the simulator serves.
    #[error("{0} is not a kind the simulator serves")]
    UnknownKind(&'static str),
    /// An internal queue was full; retry.
    #[error("the simulator is busy: {0}")]
    Busy(&'static str),
}

impl SimError {
    /// The HTTP status code the API answered, for [`SimError::Api`].
    pub fn code(&self) -> Option<u16> {
        match self {
            SimError::Api(e) => Some(e.code),
            _ => None,
        }
    }
}

/// State shared by the HTTP layer and the controllers.
pub(crate) struct Shared {
    /// All objects.
    pub store: Arc<Store>,
    /// Fault injection state.
    pub faults: Arc<faults::FaultState>,
    /// Settings.
    pub config: SimConfig,
    /// Snapshots of paginated lists.
    pub pages: Paginator,
    /// Cancelled when the simulator shuts down (or its last handle is dropped).
    pub cancel: CancellationToken,
    /// The bound address (kept across restarts).
    pub addr: SocketAddr,
    /// Nodes whose kubelet is dead.
    pub dead_nodes: Mutex<HashSet<String>>,
    /// To the node controller. Bounded; a full queue is reported as busy.
    pub node_commands: mpsc::Sender<NodeCommand>,
    /// Watch streams opened so far (see [`Sim::watches_opened`]).
    pub watches_opened: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Whether the node's kubelet was killed.
    pub(crate) fn node_is_dead(&self, node: &str) -> bool {
        self.dead_nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(node)
    }

    pub(crate) fn kill_node(&self, node: &str) -> Result<(), ApiError> {
        self.store
            .get(kinds::nodes(), "", node)
            .ok_or_else(|| ApiError::not_found(kinds::nodes(), node))?;
        self.node_commands
            .try_send(NodeCommand::Kill(node.to_string()))
            .map_err(|_| ApiError::internal("node controller queue is full"))?;
        self.dead_nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string());
        Ok(())
    }

    pub(crate) fn revive_node(&self, node: &str) -> Result<(), ApiError> {
        self.store
            .get(kinds::nodes(), "", node)
            .ok_or_else(|| ApiError::not_found(kinds::nodes(), node))?;
        self.dead_nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
        self.node_commands
            .try_send(NodeCommand::Revive(node.to_string()))
            .map_err(|_| ApiError::internal("node controller queue is full"))?;
        Ok(())
    }
}

/// Owned by every [`Sim`] handle; dropping the last one stops everything.
struct Inner {
    shared: Arc<Shared>,
    /// The listener, `None` while stopped.
    server: Mutex<Option<Server>>,
    /// Controller tasks; aborted when dropped.
    tasks: Mutex<JoinSet<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

/// A running simulator. Cheap to clone; the simulator (server and controllers) stops
/// when [`Sim::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

fn def_of<K: k8s_openapi::Resource>() -> Result<&'static ResourceDef, SimError> {
    resources::find(K::GROUP, K::VERSION, K::URL_PATH_SEGMENT).ok_or(SimError::UnknownKind(K::KIND))
}

fn to_value<K: k8s_openapi::Resource + Serialize>(obj: &K) -> Result<Value, SimError> {
    serde_json::to_value(obj).map_err(|source| SimError::Convert {
        kind: K::KIND,
        source,
    })
}

fn from_value<K: k8s_openapi::Resource + DeserializeOwned>(v: &Value) -> Result<K, SimError> {
    K::deserialize(v).map_err(|source| SimError::Convert {
        kind: K::KIND,
        source,
    })
}

impl Sim {
    /// Binds the listener, creates the standard namespaces (`default`, `kube-system`,
    /// `kube-public`, `kube-node-lease`) and starts the server and controllers. Must be
    /// called within a Tokio runtime.
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        let listener = server::bind(config.listen).map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let store = Arc::new(Store::new(config.event_history, config.watch_buffer));
        for ns in [
            "default",
            "kube-system",
            "kube-public",
            controllers::nodes::NODE_LEASE_NAMESPACE,
        ] {
            store.create(
                kinds::namespaces(),
                "",
                json!({"metadata": {"name": ns}}),
                false,
            )?;
        }
        let (node_tx, node_rx) = mpsc::channel(256);
        let shared = Arc::new(Shared {
            store: store.clone(),
            faults: Arc::new(faults::FaultState::new()),
            config,
            pages: Paginator::default(),
            cancel: CancellationToken::new(),
            addr,
            dead_nodes: Mutex::new(HashSet::new()),
            node_commands: node_tx,
            watches_opened: std::sync::atomic::AtomicU64::new(0),
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(
            controllers::kubelet::run(shared.clone(), store.subscribe())
                .instrument(tracing::info_span!("sim_kubelet")),
        );
        tasks.spawn(
            controllers::endpointslices::run(shared.clone(), store.subscribe())
                .instrument(tracing::info_span!("sim_endpointslice_controller")),
        );
        tasks.spawn(
            controllers::nodes::run(shared.clone(), store.subscribe(), node_rx)
                .instrument(tracing::info_span!("sim_node_controller")),
        );
        let server = Server::spawn(listener, shared.clone());
        tracing::info!(%addr, "simulated Kubernetes API server listening");
        Ok(Sim {
            inner: Arc::new(Inner {
                shared,
                server: Mutex::new(Some(server)),
                tasks: Mutex::new(tasks),
            }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    fn store(&self) -> &Store {
        &self.inner.shared.store
    }

    /// The bound address (the same after [`Sim::restart`]).
    pub fn addr(&self) -> SocketAddr {
        self.shared().addr
    }

    /// The server URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// A kubeconfig for the simulator (plain http, no credentials, namespace `default`).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::yaml(&self.url())
    }

    /// Writes [`Sim::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// A kube client for the simulator, default namespace `default`.
    ///
    /// # Panics
    /// Never in practice: the URL is always valid and plain http needs no TLS setup.
    pub async fn client(&self) -> kube::Client {
        let url = self
            .url()
            .parse()
            .expect("the simulator URL is a valid URI");
        let mut config = kube::Config::new(url);
        config.default_namespace = "default".to_string();
        kube::Client::try_from(config).expect("a plain-http kube client always builds")
    }

    /// Creates the `demo` pool: namespace `demo`, nodes `node-a`..`node-c` in zones
    /// `zone-a`..`zone-c`, Service `demo/origin` (label `origin-discovery.io/enabled`,
    /// selector `app: origin`, port `ws` 5080 → named container port `ws`) and pods
    /// `origin-0`..`origin-2`, one per node. Idempotent.
    pub fn seed_demo(&self) -> Result<(), SimError> {
        Ok(seed::seed_demo(self.store())?)
    }

    /// Creates an object, keeping any status it carries (in-process writes are
    /// privileged, like a kubelet's). Namespaced objects without a namespace go to
    /// `default`.
    pub fn create<K>(&self, obj: &K) -> Result<K, SimError>
    where
        K: k8s_openapi::Resource + Serialize + DeserializeOwned,
    {
        let def = def_of::<K>()?;
        let v = to_value(obj)?;
        let ns = object::namespace(&v).to_string();
        let ns = if ns.is_empty() && def.namespaced {
            "default".to_string()
        } else {
            ns
        };
        let created = self.store().create(def, &ns, v, true)?;
        from_value(&created)
    }

    /// Replaces an object (spec and status). A set `metadata.resourceVersion` must be
    /// current (409 Conflict otherwise); an empty one replaces unconditionally.
    pub fn replace<K>(&self, obj: &K) -> Result<K, SimError>
    where
        K: k8s_openapi::Resource + Serialize + DeserializeOwned,
    {
        let def = def_of::<K>()?;
        let v = to_value(obj)?;
        let ns = object::namespace(&v).to_string();
        let ns = if ns.is_empty() && def.namespaced {
            "default".to_string()
        } else {
            ns
        };
        let name = object::name(&v).to_string();
        let updated = self.store().update(def, &ns, &name, Part::Main, true, v)?;
        from_value(&updated)
    }

    /// One object, if it exists (and converts to `K`).
    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Option<K>
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        let def = def_of::<K>().ok()?;
        let v = self.store().get(def, namespace.unwrap_or(""), name)?;
        from_value(&v).ok()
    }

    /// All objects of a kind in a namespace (or all namespaces), in name order.
    pub fn list<K>(&self, namespace: Option<&str>) -> Vec<K>
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        let Ok(def) = def_of::<K>() else {
            return Vec::new();
        };
        self.store()
            .list(def, namespace)
            .0
            .iter()
            .filter_map(|v| from_value(v).ok())
            .collect()
    }

    /// Deletes a pod like the API does: with a grace period (whole seconds; `None` uses
    /// the pod's `terminationGracePeriodSeconds`) it turns Terminating and the kubelet
    /// removes it when the period ends; zero removes it at once. As in a real cluster, a
    /// Terminating pod on a killed node stays Terminating (no kubelet to finish it).
    pub fn delete_pod(
        &self,
        ns: &str,
        name: &str,
        grace: Option<Duration>,
    ) -> Result<(), SimError> {
        let opts = DeleteOpts {
            grace_seconds: grace.map(|g| g.as_secs() as i64),
            ..Default::default()
        };
        self.store().delete(
            kinds::pods(),
            ns,
            name,
            &opts,
            self.shared().config.default_grace_period,
        )?;
        Ok(())
    }

    /// Deletes an object at once (pods too; objects with finalizers wait for them).
    pub fn delete<K>(&self, namespace: Option<&str>, name: &str) -> Result<(), SimError>
    where
        K: k8s_openapi::Resource,
    {
        let def = def_of::<K>()?;
        let opts = DeleteOpts {
            grace_seconds: Some(0),
            ..Default::default()
        };
        self.store()
            .delete(def, namespace.unwrap_or(""), name, &opts, Duration::ZERO)?;
        Ok(())
    }

    /// Crashes a started pod's containers (terminated, Ready=False), as a kubelet would
    /// report. Also `POST /sim/v1/namespaces/{ns}/pods/{name}/crash`.
    pub fn crash_pod(&self, ns: &str, name: &str) -> Result<(), SimError> {
        Ok(controllers::kubelet::crash(self.store(), ns, name)?)
    }

    /// Restarts a pod's containers (running, restartCount+1); Ready again after the
    /// startup delay. Also `POST /sim/v1/namespaces/{ns}/pods/{name}/recover`.
    pub fn recover_pod(&self, ns: &str, name: &str) -> Result<(), SimError> {
        Ok(controllers::kubelet::recover(self.store(), ns, name)?)
    }

    /// Kills a node's kubelet: its Lease stops being renewed, and `node_monitor_grace`
    /// after the last renewal the node turns `Ready=Unknown` and its pods `Ready=False`.
    /// Also `POST /sim/v1/nodes/{name}/kill`.
    pub fn kill_node(&self, name: &str) -> Result<(), SimError> {
        Ok(self.shared().kill_node(name)?)
    }

    /// Brings a killed node back: Lease renewed, `Ready=True`, its pods ready again after
    /// the startup delay. Also `POST /sim/v1/nodes/{name}/revive`.
    pub fn revive_node(&self, name: &str) -> Result<(), SimError> {
        Ok(self.shared().revive_node(name)?)
    }

    /// Fault injection.
    pub fn faults(&self) -> Faults {
        Faults {
            state: self.shared().faults.clone(),
            store: self.shared().store.clone(),
        }
    }

    /// Every committed change from now on. The receiver is bounded
    /// ([`SimConfig::watch_buffer`]); a receiver that falls behind gets `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<SimEvent> {
        self.store().subscribe()
    }

    /// How many watch streams have been opened so far (not counting watches answered
    /// with 410 Gone). A client's watches are live again once this has grown by their
    /// number after [`Faults::drop_watches`] — idle re-established watches carry no event.
    pub fn watches_opened(&self) -> u64 {
        self.shared()
            .watches_opened
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The current global `resourceVersion`.
    pub fn resource_version(&self) -> u64 {
        self.store().resource_version()
    }

    /// Number of changes kept in the watch history (bounded by
    /// [`SimConfig::event_history`]).
    pub fn history_len(&self) -> usize {
        self.store().history_len()
    }

    /// Stops the HTTP server: the port is closed (connections refused) and every open
    /// connection is cut. State and controllers keep running. No-op when stopped.
    pub async fn stop(&self) {
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(server) = server {
            server.stop().await;
        }
    }

    /// Starts the HTTP server again on the same address. No-op when running.
    pub async fn restart(&self) -> Result<(), SimError> {
        let addr = self.addr();
        let mut attempt = 0;
        let listener = loop {
            if self
                .inner
                .server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
            {
                return Ok(());
            }
            match server::bind(addr) {
                Ok(l) => break l,
                Err(e) if attempt < 50 && e.kind() == std::io::ErrorKind::AddrInUse => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(source) => return Err(SimError::Bind { addr, source }),
            }
        };
        let mut slot = self.inner.server.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(Server::spawn(listener, self.shared().clone()));
        }
        Ok(())
    }

    /// Stops the server and every background task, and waits for them to end.
    pub async fn shutdown(self) {
        self.shared().cancel.cancel();
        self.stop().await;
        let mut tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        while tasks.join_next().await.is_some() {}
    }
}
