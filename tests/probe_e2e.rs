//! End to end: the active prober (docs/DESIGN.md, "Active probes") against real TCP/HTTP
//! listeners on 127.0.0.x that are the pods of a simulated Service (the simulator's
//! `sim.origin-discovery.io/pod-ip` annotation gives each pod the listener's address, and
//! its `containerPort` is the listener's port, so the EndpointSlice names the listener).
//!
//! A "frozen" listener models a stopped or deadlocked origin process: it stops accepting
//! (the kernel still completes TCP handshakes into the listen backlog) and never answers
//! a request on a connection it already has, while its pod stays Ready.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_sim::testing::next_event as sim_event;
use kube_sim::POD_IP_ANNOTATION;
use origin_discovery_core::model::PoolId;
use origin_discovery_testkit::client::Watch;
use origin_discovery_testkit::stack::{self, Stack};
use origin_discovery_testkit::{eventually, metric, WAIT};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(100);
const FAILURES: u32 = 2;
/// Scheduling slack on a loaded 2-core machine (on top of interval × failures × 1.05 +
/// timeout, the prober's own worst case).
const MARGIN: Duration = Duration::from_millis(1_000);

/// The prober's flags for these tests.
fn flags(extra: &[&'static str]) -> Vec<&'static str> {
    let mut f = vec!["--probe-interval", "200ms", "--probe-timeout", "100ms"];
    f.extend_from_slice(extra);
    f
}

fn removal_bound() -> Duration {
    INTERVAL.mul_f64(f64::from(FAILURES) * 1.05) + TIMEOUT + MARGIN
}

// ---------------------------------------------------------------------------------------
// A real origin: an HTTP/1.1 responder (keep-alive) that can freeze or close.

#[derive(Default)]
struct Stats {
    /// Connections accepted.
    accepted: AtomicUsize,
    /// Requests answered.
    answered: AtomicUsize,
    /// `Host` header of the last request.
    host: Mutex<String>,
}

struct FakeOrigin {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    stats: Arc<Stats>,
    server: JoinSet<()>,
}

impl FakeOrigin {
    async fn start(ip: &str) -> Self {
        let listener = TcpListener::bind((ip, 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let (frozen, _) = watch::channel(false);
        let mut o = Self {
            addr,
            frozen,
            stats: Arc::default(),
            server: JoinSet::new(),
        };
        o.serve(listener);
        o
    }

    fn serve(&mut self, listener: TcpListener) {
        let frozen = self.frozen.subscribe();
        let stats = self.stats.clone();
        self.server.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                // Frozen: stop accepting; the kernel still completes handshakes.
                let _ = frozen.clone().wait_for(|f| !*f).await;
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                conns.spawn(answer(sock, frozen.clone(), stats.clone()));
            }
        });
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }

    /// Closes the listener and every connection: connecting is refused from now on.
    async fn close(&mut self) {
        self.server.shutdown().await;
    }

    /// Listens again on the same address.
    async fn reopen(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind the port");
        self.serve(listener);
    }

    fn answered(&self) -> usize {
        self.stats.answered.load(Ordering::Relaxed)
    }
}

/// Answers every request on `sock` with `200 OK` and `Origin-Load: 0.3`, except while
/// frozen (then the request is read and never answered).
async fn answer(mut sock: TcpStream, mut frozen: watch::Receiver<bool>, stats: Arc<Stats>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let _ = frozen.wait_for(|f| !*f).await;
        if let Some(host) = head.lines().find_map(|l| {
            l.strip_prefix("host: ")
                .or_else(|| l.strip_prefix("Host: "))
        }) {
            *stats.host.lock().unwrap() = host.trim().to_string();
        }
        stats.answered.fetch_add(1, Ordering::Relaxed);
        let response = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\norigin-load: 0.3\r\n\r\nok";
        if sock.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The pool: a Service whose pods are the fake origins.

fn pool(name: &str) -> PoolId {
    PoolId::new("demo", name)
}

fn pod_name(svc: &str, i: usize) -> String {
    format!("{svc}-{i}")
}

/// Creates Service `demo/<svc>` (annotated with `annotations`) with one pod per origin,
/// and returns a watch once every origin is listed ready.
async fn probed_pool(
    stack: &Stack,
    svc: &str,
    annotations: serde_json::Value,
    origins: &[&FakeOrigin],
) -> Watch {
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": svc, "namespace": "demo",
            "labels": {"origin-discovery.io/enabled": "true"}, "annotations": annotations},
        "spec": {"selector": {"app": svc}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    stack.sim.create(&service).unwrap();
    for (i, o) in origins.iter().enumerate() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": pod_name(svc, i), "namespace": "demo", "labels": {"app": svc},
                "annotations": {POD_IP_ANNOTATION: o.addr.ip().to_string()}},
            "spec": {"containers": [{"name": "origin", "image": "origin:sim",
                "ports": [{"name": "http", "containerPort": o.addr.port()}]}]}
        }))
        .unwrap();
        stack.sim.create(&pod).unwrap();
    }
    let path = format!("/v1/pools/demo/{svc}");
    eventually("the pool exists", || async {
        stack.get(&path).await.0 == 200
    })
    .await;
    let mut w = stack.watch(&pool(svc)).await;
    w.wait_for(WAIT, |s| s.origins.len() == origins.len())
        .await
        .expect("every origin listed");
    w
}

fn listed(w: &Watch, id: &str) -> bool {
    w.state.origins.contains_key(id)
}

/// The pod is still Ready and its slice endpoint still ready: only the probe knows.
fn pod_and_slice_say_ready(stack: &Stack, svc: &str, pod: &str) -> bool {
    let ready_pod = stack
        .sim
        .get::<Pod>(Some("demo"), pod)
        .and_then(|p| p.status?.conditions)
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let ready_slice = stack
        .sim
        .list::<EndpointSlice>(Some("demo"))
        .iter()
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                == Some(&svc.to_string())
        })
        .flat_map(|s| s.endpoints.iter())
        .any(|e| {
            e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(pod)
                && e.conditions.as_ref().and_then(|c| c.ready) != Some(false)
        });
    ready_pod && ready_slice
}

fn counter(text: &str, name: &str, pool: &str, result: Option<&str>) -> f64 {
    let pool = format!("pool=\"{pool}\"");
    let result = result.map(|r| format!("result=\"{r}\""));
    let mut labels = vec![pool.as_str()];
    if let Some(r) = &result {
        labels.push(r);
    }
    metric(text, name, &labels)
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_http_origin_is_removed_while_its_pod_stays_ready_and_returns_after_a_success() {
    let stack = stack::start(Duration::ZERO, &flags(&[])).await;
    let a = FakeOrigin::start("127.0.0.2").await;
    let b = FakeOrigin::start("127.0.0.3").await;
    let c = FakeOrigin::start("127.0.0.4").await;
    let mut w = probed_pool(
        &stack,
        "web",
        json!({"origin-discovery.io/probe": "http", "origin-discovery.io/probe-path": "/healthz"}),
        &[&a, &b, &c],
    )
    .await;
    let frozen = pod_name("web", 1);
    eventually("every origin answered probes", || async {
        a.answered() >= 3 && b.answered() >= 3 && c.answered() >= 3
    })
    .await;

    b.freeze(true);
    let t0 = Instant::now();
    w.wait_for(WAIT, |s| !s.origins.contains_key(&frozen))
        .await
        .expect("the frozen origin is removed");
    let took = t0.elapsed();
    assert!(
        took <= removal_bound(),
        "removed after {took:?}, bound {:?}",
        removal_bound()
    );
    assert!(
        pod_and_slice_say_ready(&stack, "web", &frozen),
        "Kubernetes still says ready: only the probe noticed"
    );
    assert!(listed(&w, &pod_name("web", 0)) && listed(&w, &pod_name("web", 2)));
    let m = stack.metrics().await;
    assert_eq!(
        counter(&m, "origin_discovery_probe_removed_total", "demo/web", None),
        1.0
    );
    assert!(
        counter(
            &m,
            "origin_discovery_probe_results_total",
            "demo/web",
            Some("timeout")
        ) >= f64::from(FAILURES)
    );
    assert!(
        m.lines().any(
            |l| l.starts_with("origin_discovery_probe_duration_seconds_count")
                && !l.ends_with(" 0")
        ),
        "probe latencies observed"
    );
    // The panic gauge is a series at 0, not a missing one, for a probed pool.
    assert!(
        m.lines()
            .any(|l| l == "origin_discovery_probe_panic{pool=\"demo/web\"} 0"),
        "{m}"
    );

    // HTTP probes keep one connection per origin, with Host = the origin's address.
    assert_eq!(a.stats.accepted.load(Ordering::Relaxed), 1, "keep-alive");
    assert!(a.answered() >= 3);
    assert_eq!(*a.stats.host.lock().unwrap(), a.addr.to_string());
    // The reported `Origin-Load` is the origin's published load (Index::set_load).
    let web0 = pod_name("web", 0);
    eventually("web-0 published with its probe's load", || async {
        stack.snapshot(&pool("web")).await["origins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == web0.as_str() && o["load"] == json!(0.3))
    })
    .await;
    // Pools without a probe annotation are not probed (no --probe-default).
    assert_eq!(
        counter(
            &m,
            "origin_discovery_probe_results_total",
            "demo/origin",
            None
        ),
        0.0
    );
    assert_eq!(
        stack.snapshot(&stack::demo()).await["origins"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let answered = b.answered();
    b.freeze(false);
    w.wait_for(WAIT, |s| s.origins.contains_key(&frozen))
        .await
        .expect("back after a successful probe");
    assert!(b.answered() > answered);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_needs_the_successes_and_a_ready_slice() {
    let stack = stack::start(Duration::ZERO, &flags(&["--probe-successes", "3"])).await;
    let a = FakeOrigin::start("127.0.0.5").await;
    let mut b = FakeOrigin::start("127.0.0.6").await;
    let c = FakeOrigin::start("127.0.0.7").await;
    let mut w = probed_pool(
        &stack,
        "live",
        json!({"origin-discovery.io/probe": "http"}),
        &[&a, &b, &c],
    )
    .await;
    let victim = pod_name("live", 1);
    eventually("b answered probes", || async { b.answered() >= 2 }).await;
    b.freeze(true);
    w.wait_for(WAIT, |s| !s.origins.contains_key(&victim))
        .await
        .expect("removed by probes");

    // Kubernetes catches up (readiness fails): the slice says not ready. The process
    // recovers meanwhile, but nothing probes an endpoint its slice does not list as ready.
    let shared = stack.running.as_ref().expect("running").shared.clone();
    let probed = || {
        let targets = shared
            .probe_targets(None)
            .map(|(_, t)| t)
            .unwrap_or_default();
        targets.iter().any(|t| t.id == victim)
    };
    assert!(
        probed(),
        "a frozen endpoint its slice lists ready is still probed"
    );
    let mut events = stack.sim.subscribe();
    stack.sim.crash_pod("demo", &victim).unwrap();
    let endpoint_ready = |ev: &kube_sim::SimEvent, ready: bool| {
        ev.resource == "endpointslices"
            && ev.object["endpoints"].as_array().is_some_and(|eps| {
                eps.iter().any(|e| {
                    e["targetRef"]["name"] == json!(victim)
                        && e["conditions"]["ready"].as_bool().unwrap_or(true) == ready
                })
            })
    };
    sim_event(&mut events, "the slice says not ready", |ev| {
        endpoint_ready(ev, false)
    })
    .await;
    // ...and the controller has applied that slice: the endpoint is no longer a probe
    // target. Reopening before then would let a probe succeed while it still is one, and
    // that success would count towards the three (the race is the slice watch's latency).
    eventually(
        "the controller to stop probing the not-ready endpoint",
        || {
            let still = probed();
            async move { !still }
        },
    )
    .await;
    // The process restarts (no request of the frozen one is ever answered).
    b.close().await;
    b.freeze(false);
    b.reopen().await;
    let answered = b.answered();
    stack.sim.recover_pod("demo", &victim).unwrap();
    let slice_ready = sim_event(&mut events, "the slice says ready again", |ev| {
        endpoint_ready(ev, true)
    })
    .await
    .at;
    w.wait_for(WAIT, |s| s.origins.contains_key(&victim))
        .await
        .expect("listed again");
    let after = slice_ready.elapsed();
    let probes = b.answered() - answered;
    assert!(
        probes >= 3,
        "listed after {probes} successful probes since the recovery; --probe-successes is 3"
    );
    // Three probes, each at least 0.95 interval apart; the first may have been sent up to a
    // timeout before the slice turned ready and answered after it (a success in flight
    // counts once the endpoint is a target again), so two periods minus one timeout.
    assert!(
        after >= INTERVAL.mul_f64(1.9) - TIMEOUT,
        "listed {after:?} after the slice turned ready: too soon for three probes"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_probe_removes_an_origin_whose_port_refuses_and_lists_it_again() {
    let stack = stack::start(Duration::ZERO, &flags(&[])).await;
    let a = FakeOrigin::start("127.0.0.8").await;
    let mut b = FakeOrigin::start("127.0.0.9").await;
    let c = FakeOrigin::start("127.0.0.10").await;
    let mut w = probed_pool(
        &stack,
        "tcp",
        json!({"origin-discovery.io/probe": "tcp"}),
        &[&a, &b, &c],
    )
    .await;
    let victim = pod_name("tcp", 1);
    eventually("TCP probes succeed", || async {
        let m = stack.metrics().await;
        counter(
            &m,
            "origin_discovery_probe_results_total",
            "demo/tcp",
            Some("healthy"),
        ) >= 6.0
    })
    .await;
    assert_eq!(b.answered(), 0, "a TCP probe sends no request");
    b.close().await;
    let t0 = Instant::now();
    w.wait_for(WAIT, |s| !s.origins.contains_key(&victim))
        .await
        .expect("removed");
    assert!(t0.elapsed() <= removal_bound(), "{:?}", t0.elapsed());
    assert!(pod_and_slice_say_ready(&stack, "tcp", &victim));
    let m = stack.metrics().await;
    assert!(
        counter(
            &m,
            "origin_discovery_probe_results_total",
            "demo/tcp",
            Some("error")
        ) >= 2.0
    );
    b.reopen().await;
    w.wait_for(WAIT, |s| s.origins.contains_key(&victim))
        .await
        .expect("listed again");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_panic_keeps_a_pool_whose_origins_all_fail_and_sets_the_gauge() {
    let stack = stack::start(Duration::ZERO, &flags(&[])).await;
    let a = FakeOrigin::start("127.0.0.11").await;
    let b = FakeOrigin::start("127.0.0.12").await;
    let mut w = probed_pool(
        &stack,
        "panic",
        json!({"origin-discovery.io/probe": "http"}),
        &[&a, &b],
    )
    .await;
    eventually("both answered probes", || async {
        a.answered() >= 2 && b.answered() >= 2
    })
    .await;
    a.freeze(true);
    b.freeze(true);
    let gauge = |m: &str| counter(m, "origin_discovery_probe_panic", "demo/panic", None);
    // Meanwhile, the pool is never empty: every state the watch goes through has an origin.
    let mut smallest = usize::MAX;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = stack.metrics().await;
        if gauge(&m) == 1.0 && w.state.origins.len() == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no panic mode: {m}");
        if let Ok(Ok(_)) = w.next_within(Duration::from_millis(50)).await {
            smallest = smallest.min(w.state.origins.len());
        }
    }
    smallest = smallest.min(w.state.origins.len());
    assert!(smallest >= 1, "the pool was emptied");
    assert_eq!(w.state.origins.len(), 2, "panic mode keeps every origin");

    a.freeze(false);
    b.freeze(false);
    eventually("panic mode ends", || async {
        gauge(&stack.metrics().await) == 0.0
    })
    .await;
    w.wait_for(WAIT, |s| s.origins.len() == 2).await.unwrap();
    stack.shutdown().await;
}
