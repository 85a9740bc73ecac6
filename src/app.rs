//! Wiring: sources, index, hub, API and admin servers, shutdown. Nothing else.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::limits::Limiter;
use crate::api::serve::{serve, ServeConfig};
use crate::api::{self, ApiConfig, ApiState};
use crate::config::ControllerArgs;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::sources::{self, Source};
use origin_discovery_core::hub::Hub;
use origin_discovery_core::index::IndexConfig;
use origin_discovery_core::signals::Stamp;

/// Most open connections on the admin port: probes and scrapes need few, and a flood of
/// the public port never takes these.
pub const ADMIN_MAX_CONNECTIONS: usize = 256;

/// Everything `run` needs besides a kube client.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Public API address.
    pub listen: SocketAddr,
    /// Admin address.
    pub admin_listen: SocketAddr,
    /// Shared controller flags.
    pub controller: ControllerArgs,
}

/// A started controller.
#[derive(Debug)]
pub struct Running {
    /// Bound public API address.
    pub api_addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// Cancel to shut down.
    pub shutdown: CancellationToken,
    /// Shared state (for tests and dev tooling).
    pub shared: Arc<Shared>,
    tasks: JoinSet<anyhow::Result<()>>,
    servers: JoinSet<anyhow::Result<()>>,
    sessions: TaskTracker,
    shutdown_timeout: Duration,
}

/// Starts every task and binds both listeners.
pub async fn start(settings: Settings, client: Client) -> anyhow::Result<Running> {
    let args = &settings.controller;
    // `Cli::parse_args` checks this already; callers building the flags themselves too.
    args.check().map_err(anyhow::Error::msg)?;
    // Bind first: a taken port is a clear error before anything starts watching.
    let api_listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding the API listener to {}", settings.listen))?;
    let admin_listener = TcpListener::bind(settings.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener to {}", settings.admin_listen))?;
    let api_addr = api_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let epoch = new_epoch();
    let hub = Arc::new(Hub::new(epoch.clone(), args.delta_log as usize));
    let metrics = Metrics::new();
    let shared = Arc::new(Shared::new(
        IndexConfig {
            epoch: epoch.as_str().into(),
            node_lease_grace: args.node_lease_grace,
        },
        hub.clone(),
        metrics.clone(),
    ));
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();

    crate::probe::spawn(&mut tasks, &shared, &args.probe);
    let ns = args.namespace.as_deref();
    let explicit: HashSet<_> = args.services.iter().cloned().collect();
    spawn_source(
        &mut tasks,
        &shared,
        &client,
        sources::services::Services { explicit },
        |c| api::<Service>(c, ns),
        watcher::Config::default(),
    );
    spawn_source(
        &mut tasks,
        &shared,
        &client,
        sources::endpointslices::EndpointSlices,
        |c| api::<EndpointSlice>(c, ns),
        watcher::Config::default().labels(crate::convert::SERVICE_NAME_LABEL),
    );
    let mut pod_config = watcher::Config::default();
    if let Some(sel) = &args.pod_selector {
        pod_config = pod_config.labels(sel);
    }
    spawn_source(
        &mut tasks,
        &shared,
        &client,
        sources::pods::Pods::default(),
        |c| api::<Pod>(c, ns),
        pod_config,
    );
    if args.node_signals {
        spawn_source(
            &mut tasks,
            &shared,
            &client,
            sources::nodes::Nodes,
            |c| Api::<Node>::all(c.clone()),
            watcher::Config::default(),
        );
        spawn_source(
            &mut tasks,
            &shared,
            &client,
            sources::nodes::NodeLeases,
            |c| Api::<Lease>::namespaced(c.clone(), sources::nodes::NODE_LEASE_NAMESPACE),
            watcher::Config::default(),
        );
    }
    // Time-driven index rules: lease expiry (with node signals), held load changes and
    // node tombstones (always).
    let c = shared.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            c.update(|idx| idx.tick(Stamp::now()));
        }
    });
    tasks.spawn(staleness(shared.clone(), client.clone(), args.stale_after));

    let sessions = TaskTracker::new();
    let state = ApiState {
        hub: hub.clone(),
        metrics: metrics.clone(),
        config: Arc::new(ApiConfig {
            heartbeat_interval: args.heartbeat_interval,
            cors_allow_origins: args.cors_allow_origins.clone(),
            trusted_proxies: args.trusted_proxies.clone(),
            forwarded_header: args.forwarded_header,
            write_timeout: args.write_timeout,
        }),
        limiter: Limiter::new(args.max_subscribers, args.max_subscribers_per_ip),
        shutdown: shutdown.clone(),
        sessions: sessions.clone(),
    };
    let app = api::app(state);
    let api_serve = ServeConfig {
        port: "api",
        header_read_timeout: args.header_read_timeout,
        max_header_bytes: args.max_header_bytes,
        max_connections: args.max_connections,
    };
    let admin_serve = ServeConfig {
        port: "admin",
        max_connections: ADMIN_MAX_CONNECTIONS,
        ..api_serve.clone()
    };
    let mut servers = JoinSet::new();
    let (token, m) = (shutdown.clone(), metrics.clone());
    servers.spawn(async move {
        serve(api_listener, app, api_serve, &m, token)
            .await
            .context("public API server")
    });
    let admin = crate::admin::router(hub, metrics.clone());
    let (token, m) = (shutdown.clone(), metrics);
    servers.spawn(async move {
        serve(admin_listener, admin, admin_serve, &m, token)
            .await
            .context("admin server")
    });
    tracing::info!(api = %api_addr, admin = %admin_addr, %epoch, "origin-discovery started");
    Ok(Running {
        api_addr,
        admin_addr,
        shutdown,
        shared,
        tasks,
        servers,
        sessions,
        shutdown_timeout: args.shutdown_timeout,
    })
}

impl Running {
    /// Runs until `shutdown` is cancelled (graceful: push sessions get Close 1001 within
    /// the shutdown timeout) or a critical task ends (an error: readiness drops first).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let result = tokio::select! {
            // Servers end by themselves once shut down: that is no failure.
            biased;
            _ = self.shutdown.cancelled() => Ok(()),
            ended = self.tasks.join_next() => Err(ended_error(ended)),
            ended = self.servers.join_next() => Err(ended_error(ended)),
        };
        self.shared.hub.set_synced(false);
        self.shutdown.cancel();
        self.sessions.close();
        let deadline = self.shutdown_timeout;
        let drained = tokio::time::timeout(deadline, async {
            self.sessions.wait().await;
            while self.servers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(?deadline, "shutdown deadline reached; exiting anyway");
        }
        self.servers.abort_all();
        self.tasks.abort_all();
        result
    }
}

fn ended_error(ended: Option<Result<anyhow::Result<()>, tokio::task::JoinError>>) -> anyhow::Error {
    match ended {
        Some(Ok(Err(e))) => e,
        Some(Err(e)) => anyhow::anyhow!("a task panicked: {e}"),
        _ => anyhow::anyhow!("a critical task ended"),
    }
}

/// How often the apiserver is probed while a source cannot reach it (at most; faster with
/// a `--stale-after` under 1 s): a watch resumes within this of the apiserver's return.
pub const REACHABILITY_PROBE: Duration = Duration::from_millis(250);

/// Flags pools stale while a watch is failing for longer than `stale_after`, and ends the
/// sources' back-off when the apiserver answers again: while any source failed because
/// the apiserver did not answer, `/version` is probed every [`REACHABILITY_PROBE`]; when
/// it answers, those sources retry at once. A source counts as failing until its own
/// request is answered (docs in `shared`), so `stale` clears only when every watch is live.
async fn staleness(
    shared: Arc<Shared>,
    client: Client,
    stale_after: Duration,
) -> anyhow::Result<()> {
    let period = (stale_after / 4).clamp(Duration::from_millis(50), REACHABILITY_PROBE);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.any_unreachable() {
            let probe =
                tokio::time::timeout(Duration::from_secs(2), client.apiserver_version()).await;
            if matches!(probe, Ok(Ok(_))) {
                shared.apiserver_reachable();
            }
        }
        shared.refresh_stale(stale_after);
    }
}

/// Starts one source; its requests go through a client that reports their answers to the
/// source's health ([`sources::observed_client`]).
fn spawn_source<S: Source>(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shared: &Arc<Shared>,
    client: &Client,
    source: S,
    api: impl FnOnce(&Client) -> Api<S::K>,
    config: watcher::Config,
) where
    S::K: kube::Resource<DynamicType = ()>,
{
    let health = shared.register_source(S::RESOURCE);
    let api = api(&sources::observed_client(client, health.clone()));
    let shared = shared.clone();
    tasks.spawn(async move {
        let span = tracing::info_span!("source", resource = S::RESOURCE);
        let result = tracing::Instrument::instrument(
            sources::run(source, api, config, shared.clone(), health.clone()),
            span,
        )
        .await;
        health.set_dead();
        shared.refresh_ready();
        result.map_err(anyhow::Error::from)
    });
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A random 12-hex-digit process epoch.
fn new_epoch() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
