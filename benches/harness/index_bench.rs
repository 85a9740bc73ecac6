//! In-process microbenchmark of the pure origin index: one pod change (`apply_pod`) plus
//! `commit`, timed per event, on an index holding `pools × per_pool` origins.

use std::hint::black_box;
use std::time::{Duration, Instant};

use origin_discovery_core::index::{Index, IndexConfig};
use origin_discovery_core::model::PoolId;
use origin_discovery_core::signals::{
    EndpointInfo, PodInfo, PortChoice, ServiceInfo, SliceInfo, SlicePort, Stamp,
};

/// Result of [`run`].
#[derive(Clone, Debug)]
pub struct IndexResult {
    /// Origins in the index.
    pub origins: usize,
    /// Pools.
    pub pools: usize,
    /// Timed events.
    pub events: usize,
    /// Mean ns per event.
    pub mean_ns: f64,
    /// p50 ns per event.
    pub p50_ns: f64,
    /// p99 ns per event.
    pub p99_ns: f64,
    /// Max ns per event.
    pub max_ns: f64,
    /// p50 and p99 ns of a fixed computation as long as the median event, timed the same
    /// way right after: the tail this machine adds by itself (interrupts, preemption, a
    /// shared or virtual CPU), to read the index's p99 against.
    pub fixed_p50_ns: f64,
    pub fixed_p99_ns: f64,
}

/// Builds the index (slices of at most 100 endpoints, like the real controller's) and
/// times `events` pod changes: each flips one pseudo-random pod between up and down, so
/// every event changes the pool and produces a delta.
pub fn run(pools: usize, per_pool: usize, events: usize) -> IndexResult {
    let mut index = Index::new(IndexConfig {
        epoch: "bench".into(),
        node_lease_grace: Duration::from_secs(20),
    });
    let stamp = Stamp::now();
    let pod_name = |p: usize, i: usize| format!("origin{p:02}-{i}");
    for p in 0..pools {
        let pool = PoolId::new("bench", format!("origin{p:02}"));
        index.apply_service(
            ServiceInfo {
                pool: pool.clone(),
                port: PortChoice::Name("ws".into()),
                url_template: Some("wss://{pod}.origins.example.com:5443/LiveApp/websocket".into()),
                probe: Default::default(),
            },
            stamp,
        );
        for (s, chunk) in (0..per_pool).collect::<Vec<_>>().chunks(100).enumerate() {
            index.apply_slice(
                SliceInfo {
                    service: pool.clone(),
                    name: format!("{}-{s}", pool.name),
                    ports: vec![SlicePort {
                        name: "ws".into(),
                        port: 5080,
                    }],
                    endpoints: chunk
                        .iter()
                        .map(|&i| EndpointInfo {
                            address: format!("10.{}.{}.{}", p, i / 250, i % 250 + 1),
                            pod: Some(pod_name(p, i)),
                            node: Some(format!("node-{}", i % 3)),
                            zone: Some(format!("zone-{}", i % 3)),
                            hostname: None,
                            ready: true,
                            serving: true,
                            terminating: false,
                        })
                        .collect(),
                },
                stamp,
            );
        }
        for i in 0..per_pool {
            index.apply_pod(pod(p, i, false, &pod_name), stamp);
        }
    }
    black_box(index.commit(stamp));

    let total = pools * per_pool;
    let mut down = vec![false; total];
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut samples = Vec::with_capacity(events);
    for _ in 0..events {
        // xorshift64: deterministic, cheap, no allocation.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let k = (rng % total as u64) as usize;
        down[k] = !down[k];
        let info = pod(k / per_pool, k % per_pool, down[k], &pod_name);
        let start = Instant::now();
        let stamp = Stamp::now();
        index.apply_pod(info, stamp);
        let commit = index.commit(stamp);
        let took = start.elapsed();
        assert_eq!(commit.changes.len(), 1, "every event changes its pool");
        black_box(commit);
        samples.push(took.as_nanos() as f64);
    }
    let mean_ns = samples.iter().sum::<f64>() / samples.len().max(1) as f64;
    samples.sort_by(f64::total_cmp);
    let p50_ns = crate::stats::percentile(&samples, 50.0);
    let mut fixed = fixed_work(p50_ns, events);
    fixed.sort_by(f64::total_cmp);
    IndexResult {
        origins: total,
        pools,
        events,
        mean_ns,
        p50_ns,
        p99_ns: crate::stats::percentile(&samples, 99.0),
        max_ns: samples.last().copied().unwrap_or(0.0),
        fixed_p50_ns: crate::stats::percentile(&fixed, 50.0),
        fixed_p99_ns: crate::stats::percentile(&fixed, 99.0),
    }
}

/// Times `runs` runs of a fixed integer computation lasting about `target_ns` each, the
/// way events are timed above: no allocation, no memory traffic, the same every run, so
/// its spread is the machine's.
fn fixed_work(target_ns: f64, runs: usize) -> Vec<f64> {
    let spin = |iterations: u64| {
        let mut x = 1u64;
        for i in 0..iterations {
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
        }
        x
    };
    const CALIBRATION: u64 = 1_000_000;
    let start = Instant::now();
    black_box(spin(CALIBRATION));
    let per_iteration = start.elapsed().as_nanos() as f64 / CALIBRATION as f64;
    let iterations = (target_ns / per_iteration.max(0.01)).max(1.0) as u64;
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(spin(iterations));
            start.elapsed().as_nanos() as f64
        })
        .collect()
}

fn pod(p: usize, i: usize, down: bool, name: &impl Fn(usize, usize) -> String) -> PodInfo {
    PodInfo {
        namespace: "bench".into(),
        name: name(p, i),
        node: Some(format!("node-{}", i % 3)),
        deleting: false,
        down,
        url: None,
        weight: 1,
        load: None,
    }
}
