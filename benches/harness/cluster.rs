//! The simulated cluster the benchmark runs against: nodes, labelled Services (pools) and
//! their origin pods, created through the simulator's in-process API.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube_sim::controllers::endpointslices::ZONE_LABEL;
use kube_sim::{Sim, SimConfig};
use serde_json::json;

/// Namespace of every benchmark pool.
pub const NS: &str = "bench";
/// Nodes (and zones) pods are spread over.
const NODES: usize = 3;

/// Simulator settings: a fast kubelet (200 ms start-up) and buffers deep enough for
/// thousands of pods created at once.
pub fn sim_config(endpointslice_delay: Duration) -> SimConfig {
    SimConfig {
        endpointslice_delay,
        pod_startup_delay: Duration::from_millis(200),
        event_history: 65_536,
        watch_buffer: 65_536,
        ..SimConfig::default()
    }
}

/// Creates the namespace and the nodes.
pub fn base(sim: &Sim) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    sim.create(&ns)?;
    for i in 0..NODES {
        let node: Node = serde_json::from_value(json!({"metadata": {
            "name": node_name(i),
            "labels": {ZONE_LABEL: format!("zone-{i}"), "kubernetes.io/hostname": node_name(i)},
        }}))?;
        sim.create(&node)?;
    }
    Ok(())
}

fn node_name(i: usize) -> String {
    format!("node-{}", i % NODES)
}

/// Creates a labelled (opted-in) Service `bench/<svc>` selecting `app: <svc>`.
pub fn service(sim: &Sim, svc: &str) -> Result<()> {
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": svc, "namespace": NS,
            "labels": {"origin-discovery.io/enabled": "true"}},
        "spec": {"selector": {"app": svc},
            "ports": [{"name": "ws", "port": 5080, "targetPort": "ws", "protocol": "TCP"}]},
    }))?;
    sim.create(&s)?;
    Ok(())
}

/// Creates origin pod `name` of Service `svc`, bound to a node chosen by `seq`.
pub fn pod(sim: &Sim, svc: &str, name: &str, seq: usize) -> Result<()> {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {"app": svc}},
        "spec": {
            "nodeName": node_name(seq),
            "containers": [{"name": "origin", "image": "origin:sim",
                "ports": [{"name": "ws", "containerPort": 5080, "protocol": "TCP"}]}],
            "terminationGracePeriodSeconds": 1,
        },
    }))?;
    sim.create(&p)
        .with_context(|| format!("creating pod {name}"))?;
    Ok(())
}

/// Creates `services` pools of `pods_each` pods, yielding to the runtime between batches
/// so the simulator's controllers keep up.
pub async fn pools(sim: &Sim, services: usize, pods_each: usize) -> Result<()> {
    for s in 0..services {
        let svc = pool_name(s);
        service(sim, &svc)?;
        for p in 0..pods_each {
            pod(sim, &svc, &format!("{svc}-{p}"), p)?;
            if p % 50 == 49 {
                tokio::task::yield_now().await;
            }
        }
    }
    Ok(())
}

/// Name of the `i`th pool's Service.
pub fn pool_name(i: usize) -> String {
    format!("origin{i:02}")
}

/// Waits (bounded) until the controller lists `expect` ready origins over all pools.
pub async fn wait_ready_origins(
    api: std::net::SocketAddr,
    expect: u64,
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut last = 0;
    loop {
        if let Ok((200, body)) = crate::procs::http_get(api, "/v1/pools").await {
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            last = v["pools"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["ready"].as_u64()).sum())
                .unwrap_or(0);
            if last == expect {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("the controller listed {last} of {expect} ready origins after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
