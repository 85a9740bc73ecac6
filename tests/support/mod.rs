//! End-to-end harness: a simulated cluster plus the real controller (in process, through
//! its ordinary kube client), and helpers to observe both.
#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use origin_discovery::app::{self, Running, Settings};
use origin_discovery::client::{watch_url, Watch};
use origin_discovery::config::{Cli, Command, ControllerArgs};
use origin_discovery::model::PoolId;
use origin_discovery::sim::{Sim, SimConfig, SimEvent};
use serde_json::Value;
use tokio::sync::broadcast;

/// Upper bound for any single wait.
pub const WAIT: Duration = Duration::from_secs(15);

/// The seeded pool.
pub fn demo() -> PoolId {
    PoolId::new("demo", "origin")
}

/// Fast simulator settings with the given EndpointSlice delay.
pub fn sim_config(slice_delay: Duration) -> SimConfig {
    SimConfig {
        endpointslice_delay: slice_delay,
        pod_startup_delay: Duration::from_millis(50),
        lease_renew_interval: Duration::from_millis(100),
        node_monitor_grace: Duration::from_secs(5),
        bookmark_interval: Duration::from_millis(500),
        ..SimConfig::default()
    }
}

/// Controller flags as `run` would parse them from `extra`.
pub fn controller_args(extra: &[&str]) -> ControllerArgs {
    let mut argv = vec!["origin-discovery", "run"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("valid test flags").command {
        Command::Run(run) => run.controller,
        _ => unreachable!(),
    }
}

/// A simulator and a controller watching it.
pub struct Stack {
    /// The simulated cluster.
    pub sim: Sim,
    /// The controller.
    pub running: Option<Running>,
    /// `http://127.0.0.1:PORT` of the public API.
    pub api: String,
    /// `http://127.0.0.1:PORT` of the admin port.
    pub admin: String,
    /// HTTP client.
    pub http: reqwest_lite::Client,
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
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
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
        http: reqwest_lite::Client,
    };
    stack.wait_ready().await;
    stack
}

impl Stack {
    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.admin);
        eventually("controller ready", || async {
            self.http
                .get(&url)
                .await
                .map(|(s, _)| s == 200)
                .unwrap_or(false)
        })
        .await;
    }

    /// GET on the public API: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.http
            .get(&format!("{}{path}", self.api))
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

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let (_, body) = self
            .http
            .get_text(&format!("{}/metrics", self.admin))
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

/// Polls `check` every 20 ms until it holds, failing after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the next simulator event matching `pred`.
pub async fn sim_event(
    rx: &mut broadcast::Receiver<SimEvent>,
    what: &str,
    mut pred: impl FnMut(&SimEvent) -> bool,
) -> SimEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return ev,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => panic!("sim events closed while waiting for {what}: {e}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Sum of a metric's samples whose line contains every one of `labels`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A tiny HTTP/1.1 GET client over hyper, so tests need no extra dependency.
pub mod reqwest_lite {
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client as HyperClient;
    use hyper_util::rt::TokioExecutor;
    use serde_json::Value;

    /// Stateless GET helper.
    #[derive(Clone, Copy, Debug)]
    pub struct Client;

    impl Client {
        /// GET returning status and body text.
        pub async fn get_text(&self, url: &str) -> Result<(u16, String), String> {
            let client: HyperClient<_, http_body_util::Empty<bytes::Bytes>> =
                HyperClient::builder(TokioExecutor::new()).build_http();
            let resp = client
                .get(url.parse().map_err(|e| format!("{e}"))?)
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        }

        /// GET returning status and JSON body (`Null` when empty or not JSON).
        pub async fn get(&self, url: &str) -> Result<(u16, Value), String> {
            let (status, text) = self.get_text(url).await?;
            Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
        }
    }
}
