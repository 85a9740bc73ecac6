//! End-to-end stack: a simulated cluster plus the real controller (in process, through its
//! ordinary kube client), and helpers to observe both.

use std::time::Duration;

use clap::Parser;
use kube_sim::{Sim, SimConfig};
use origin_discovery::app::{self, Running, Settings};
use origin_discovery::config::{Cli, Command, ControllerArgs};
use origin_discovery_core::model::PoolId;
use serde_json::Value;

use crate::client::{watch_url, Watch};
use crate::{eventually, http, WAIT};

/// The seeded pool.
pub fn demo() -> PoolId {
    PoolId::new("demo", "origin")
}

/// Fast simulator settings with the given EndpointSlice delay. A dead node turns
/// `Unknown` only after 5 s, so the controller's lease signal is seen to come first.
pub fn sim_config(slice_delay: Duration) -> SimConfig {
    SimConfig {
        endpointslice_delay: slice_delay,
        node_monitor_grace: Duration::from_secs(5),
        bookmark_interval: Duration::from_millis(500),
        default_grace_period: SimConfig::default().default_grace_period,
        ..kube_sim::testing::fast_config()
    }
}

/// Controller flags as `run` would parse them from `extra`.
pub fn controller_args(extra: &[&str]) -> ControllerArgs {
    let mut argv = vec!["origin-discovery", "run"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("valid test flags").command {
        Command::Run(run) => run.controller,
        _ => unreachable!("parsed a `run` command line"),
    }
}

/// A simulator and a controller watching it.
pub struct Stack {
    /// The simulated cluster.
    pub sim: Sim,
    /// The controller (taken by [`Stack::shutdown`] or a test that stops it itself).
    pub running: Option<Running>,
    /// `http://127.0.0.1:PORT` of the public API.
    pub api: String,
    /// `http://127.0.0.1:PORT` of the admin port.
    pub admin: String,
}

/// Starts a seeded simulator and a controller with `extra` flags, and waits for readiness.
pub async fn start(slice_delay: Duration, extra: &[&str]) -> Stack {
    let sim = Sim::start(sim_config(slice_delay))
        .await
        .expect("sim starts");
    sim.seed_demo().expect("seed");
    start_on(sim, extra).await
}

/// Starts a controller against an existing simulator and waits for readiness.
pub async fn start_on(sim: Sim, extra: &[&str]) -> Stack {
    let settings = Settings {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        admin_listen: "127.0.0.1:0".parse().expect("valid address"),
        controller: controller_args(extra),
    };
    let running = app::start(settings, sim.client().await)
        .await
        .expect("controller starts");
    let stack = Stack {
        api: format!("http://{}", running.api_addr),
        admin: format!("http://{}", running.admin_addr),
        sim,
        running: Some(running),
    };
    stack.wait_ready().await;
    stack
}

impl Stack {
    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.admin);
        eventually("controller ready", || async {
            http::get(&url)
                .await
                .map(|(s, _)| s == 200)
                .unwrap_or(false)
        })
        .await;
    }

    /// GET on the public API: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        http::get(&format!("{}{path}", self.api))
            .await
            .expect("GET succeeds")
    }

    /// The pool's current snapshot body.
    pub async fn snapshot(&self, pool: &PoolId) -> Value {
        let (status, body) = self
            .get(&format!("/v1/pools/{}/{}", pool.namespace, pool.name))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Opens a WebSocket subscription and reads its first (snapshot) message.
    pub async fn watch(&self, pool: &PoolId) -> Watch {
        let mut w = Watch::connect(&watch_url(&self.api, pool, None))
            .await
            .expect("ws connects");
        w.next_within(WAIT).await.expect("snapshot").expect("open");
        w
    }

    /// A watch on the demo pool, once it lists its three seeded origins.
    pub async fn ready_demo_watch(&self) -> Watch {
        let mut w = self.watch(&demo()).await;
        w.wait_for(WAIT, |s| s.origins.len() == 3).await.unwrap();
        w
    }

    /// Crashes demo pod `pod` and waits until `w` no longer lists it.
    pub async fn crash_and_wait(&self, w: &mut Watch, pod: &str) {
        self.sim.crash_pod("demo", pod).unwrap();
        w.wait_for(WAIT, |s| !s.origins.contains_key(pod))
            .await
            .unwrap();
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let (_, body) = http::get_text(&format!("{}/metrics", self.admin))
            .await
            .expect("metrics");
        body
    }

    /// Stops the controller (graceful) and the simulator.
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown.cancel();
            let _ = tokio::time::timeout(WAIT, r.wait()).await;
        }
        self.sim.shutdown().await;
    }
}

/// The public API's state over `hub` alone — no controller, no simulator — with `config`,
/// fresh metrics and subscriber limits of 10 (and 10 per IP), for tests that drive the
/// router or the server directly.
pub fn api_state(
    hub: std::sync::Arc<origin_discovery_core::hub::Hub>,
    config: origin_discovery::api::ApiConfig,
) -> origin_discovery::api::ApiState {
    origin_discovery::api::ApiState {
        hub,
        metrics: origin_discovery::metrics::Metrics::new(),
        config: std::sync::Arc::new(config),
        limiter: origin_discovery::api::limits::Limiter::new(10, 10),
        shutdown: tokio_util::sync::CancellationToken::new(),
        sessions: tokio_util::task::TaskTracker::new(),
    }
}
