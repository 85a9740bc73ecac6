//! `origin-discovery dev`: the real controller against the embedded simulated cluster,
//! reached through an ordinary kubeconfig, plus optional chaos.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use rand::seq::IndexedRandom;
use rand::Rng;

use crate::app::{self, Settings};
use crate::config::DevArgs;
use kube_sim::{Sim, SimConfig};

/// Namespace and Service of the seeded pool.
pub const DEMO_NAMESPACE: &str = "demo";
/// Label selecting the seeded origin pods.
const DEMO_SELECTOR: (&str, &str) = ("app", "origin");

/// Runs dev mode until SIGTERM / Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let sim = Sim::start(SimConfig {
        listen: args.sim_listen,
        endpointslice_delay: args.endpointslice_delay,
        ..SimConfig::default()
    })
    .await
    .with_context(|| format!("starting the simulated apiserver on {}", args.sim_listen))?;
    sim.seed_demo().context("seeding the simulated cluster")?;
    let kubeconfig = args
        .kubeconfig_out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("origin-discovery-dev.kubeconfig"));
    sim.write_kubeconfig(&kubeconfig)
        .with_context(|| format!("writing the kubeconfig to {}", kubeconfig.display()))?;
    let client = client_from(&kubeconfig).await?;
    let running = app::start(
        Settings {
            listen: args.listen,
            admin_listen: args.admin_listen,
            controller: args.controller.clone(),
        },
        client,
    )
    .await?;
    print_banner(
        &sim,
        running.api_addr,
        running.admin_addr,
        &kubeconfig,
        &args,
    );
    if let Some(interval) = args.chaos {
        let sim = sim.clone();
        tokio::spawn(chaos(sim, interval));
    }
    let shutdown = running.shutdown.clone();
    tokio::spawn(async move {
        app::termination_signal().await;
        tracing::info!("termination signal received; shutting down");
        shutdown.cancel();
    });
    let result = running.wait().await;
    sim.shutdown().await;
    result
}

/// Builds a kube client from a kubeconfig file, the same way `run --kubeconfig` does.
async fn client_from(path: &PathBuf) -> anyhow::Result<kube::Client> {
    let kc =
        kube::config::Kubeconfig::read_from(path).context("reading the simulator kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .context("loading the simulator kubeconfig")?;
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

fn print_banner(
    sim: &Sim,
    api: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    kubeconfig: &std::path::Path,
    args: &DevArgs,
) {
    let kc = kubeconfig.display();
    let mut lines = vec![
        "origin-discovery dev: controller on an embedded simulated cluster".to_string(),
        format!("  API:         http://{api}"),
        format!("  admin:       http://{admin}"),
        format!("  simulator:   {}", sim.url()),
        format!("  kubeconfig:  {kc}"),
    ];
    if !args.endpointslice_delay.is_zero() {
        lines.push(format!(
            "  EndpointSlice delay: {:?}",
            args.endpointslice_delay
        ));
    }
    if let Some(c) = args.chaos {
        lines.push(format!(
            "  chaos:       killing a random origin every {c:?}"
        ));
    }
    lines.extend([
        String::new(),
        "Try:".to_string(),
        format!("  curl -s http://{api}/v1/pools/demo/origin"),
        format!("  kubectl --kubeconfig {kc} get pods,endpointslices -n demo"),
        format!("  kubectl --kubeconfig {kc} delete pod -n demo origin-0 --wait=false"),
        format!("  websocat ws://{api}/v1/pools/demo/origin/watch   # or: npx wscat -c …"),
        format!("  curl -N http://{api}/v1/pools/demo/origin/events"),
        format!("  open http://{api}/ for the live dashboard"),
        String::new(),
    ]);
    // A closed stdout (a supervisor that stopped reading) must not take the controller
    // down: a write whose error is ignored, not `println!` (which panics on EPIPE).
    let _ = std::io::Write::write_all(&mut std::io::stdout(), lines.join("\n").as_bytes());
}

/// Every `interval`: crash or gracefully delete a random live origin and start a
/// replacement, as a flaky cluster would.
async fn chaos(sim: Sim, interval: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tick.tick().await;
        let pods: Vec<Pod> = sim
            .list::<Pod>(Some(DEMO_NAMESPACE))
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(DEMO_SELECTOR.0))
                    .map(String::as_str)
                    == Some(DEMO_SELECTOR.1)
            })
            .collect();
        let Some(victim) = pods
            .choose(&mut rand::rng())
            .and_then(|p| p.metadata.name.clone())
        else {
            continue;
        };
        let crash = rand::rng().random_bool(0.5);
        let result = if crash {
            sim.crash_pod(DEMO_NAMESPACE, &victim).map(|()| {
                // Like a Deployment replacing a crash-looping pod: remove it a little later.
                let sim = sim.clone();
                let victim = victim.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    let _ = sim.delete_pod(DEMO_NAMESPACE, &victim, Some(Duration::ZERO));
                });
            })
        } else {
            sim.delete_pod(DEMO_NAMESPACE, &victim, Some(Duration::from_secs(5)))
        };
        if let Err(e) = result {
            tracing::warn!(pod = %victim, error = %e, "chaos could not kill the pod");
            continue;
        }
        // `generateName`, as a ReplicaSet names its pods: the apiserver picks the suffix.
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"generateName": "origin-", "namespace": DEMO_NAMESPACE, "labels": {DEMO_SELECTOR.0: DEMO_SELECTOR.1}},
            "spec": {"containers": [{"name": "origin", "image": "antmedia/origin:sim", "ports": [{"name": "ws", "containerPort": 5080}]}]}
        }))
        .expect("static pod JSON is valid");
        match sim.create(&pod) {
            Ok(created) => {
                let replacement = created.metadata.name.unwrap_or_default();
                tracing::info!(killed = %victim, how = if crash { "crash" } else { "graceful delete" }, %replacement, "chaos")
            }
            Err(e) => tracing::warn!(error = %e, "chaos could not start a replacement"),
        }
    }
}
