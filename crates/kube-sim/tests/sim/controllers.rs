//! The emulated cluster controllers: EndpointSlices per KEP-1672, the kubelet (startup,
//! graceful delete, crash/recover), node death and leases, multi-slice services.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube_sim::testing::{fast_config, until};
use kube_sim::{EventType, Sim, SimConfig};
use serde_json::json;

/// All endpoints of a service's slices, by pod name.
fn endpoints(sim: &Sim, ns: &str, svc: &str) -> Vec<(String, Endpoint)> {
    let mut out: Vec<(String, Endpoint)> = sim
        .list::<EndpointSlice>(Some(ns))
        .into_iter()
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(String::as_str)
                == Some(svc)
        })
        .flat_map(|s| s.endpoints)
        .map(|e| {
            (
                e.target_ref
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default(),
                e,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn conditions(sim: &Sim, pod: &str) -> Option<(bool, bool, bool)> {
    endpoints(sim, "demo", "origin")
        .into_iter()
        .find(|(n, _)| n == pod)
        .map(|(_, e)| {
            let c = e.conditions.unwrap_or_default();
            (
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
            )
        })
}

fn is_ready(e: &Endpoint) -> bool {
    e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
}

fn pod_ready(sim: &Sim, ns: &str, name: &str) -> bool {
    sim.get::<Pod>(Some(ns), name)
        .and_then(|p| p.status)
        .and_then(|s| s.conditions)
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn seeded_demo_pool_becomes_ready_with_zoned_endpoints() {
    let sim = Sim::start(fast_config()).await.unwrap();
    let mut rx = sim.subscribe();
    sim.seed_demo().unwrap();
    until(&mut rx, "3 ready endpoints", || {
        let eps = endpoints(&sim, "demo", "origin");
        eps.len() == 3 && eps.iter().all(|(_, e)| is_ready(e))
    })
    .await;
    let slices = sim.list::<EndpointSlice>(Some("demo"));
    assert_eq!(slices.len(), 1);
    let s = &slices[0];
    let labels = s.metadata.labels.clone().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["kubernetes.io/service-name"], "origin");
    assert!(s.metadata.name.as_deref().unwrap().starts_with("origin-"));
    assert_eq!(
        s.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Service"
    );
    let ports = s.ports.clone().unwrap();
    assert_eq!(ports[0].port, Some(5080));
    assert_eq!(ports[0].name.as_deref(), Some("ws"));
    let eps = endpoints(&sim, "demo", "origin");
    let zones: Vec<_> = eps.iter().map(|(_, e)| e.zone.clone().unwrap()).collect();
    assert_eq!(zones, ["zone-a", "zone-b", "zone-c"]);
    for (name, e) in &eps {
        let pod = sim.get::<Pod>(Some("demo"), name).unwrap();
        assert_eq!(
            e.addresses,
            vec![pod.status.as_ref().unwrap().pod_ip.clone().unwrap()]
        );
        assert_eq!(e.node_name, pod.spec.as_ref().unwrap().node_name);
        assert_eq!(e.target_ref.as_ref().unwrap().uid, pod.metadata.uid);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn graceful_delete_crash_and_recover_follow_kep_1672() {
    let sim = Sim::start(fast_config()).await.unwrap();
    let mut rx = sim.subscribe();
    sim.seed_demo().unwrap();
    until(&mut rx, "origin-0 ready", || {
        conditions(&sim, "origin-0") == Some((true, true, false))
    })
    .await;

    // Graceful delete: Terminating, still serving, not ready; gone after the grace period.
    sim.delete_pod("demo", "origin-0", Some(Duration::from_secs(1)))
        .unwrap();
    let pod = sim.get::<Pod>(Some("demo"), "origin-0").unwrap();
    assert!(pod.metadata.deletion_timestamp.is_some());
    assert_eq!(pod.metadata.deletion_grace_period_seconds, Some(1));
    until(&mut rx, "terminating endpoint", || {
        conditions(&sim, "origin-0") == Some((false, true, true))
    })
    .await;
    until(&mut rx, "pod removed", || {
        sim.get::<Pod>(Some("demo"), "origin-0").is_none()
    })
    .await;
    until(&mut rx, "endpoint removed", || {
        conditions(&sim, "origin-0").is_none()
    })
    .await;

    // Crash: container terminated, Ready False, endpoint neither ready nor serving.
    until(&mut rx, "origin-1 ready", || {
        conditions(&sim, "origin-1") == Some((true, true, false))
    })
    .await;
    sim.crash_pod("demo", "origin-1").unwrap();
    let pod = sim.get::<Pod>(Some("demo"), "origin-1").unwrap();
    let cs = &pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert!(cs.state.as_ref().unwrap().terminated.is_some());
    assert!(!cs.ready);
    assert!(!pod_ready(&sim, "demo", "origin-1"));
    until(&mut rx, "crashed endpoint", || {
        conditions(&sim, "origin-1") == Some((false, false, false))
    })
    .await;

    // Recover: running again, restartCount 1, ready after the startup delay.
    sim.recover_pod("demo", "origin-1").unwrap();
    until(&mut rx, "recovered endpoint", || {
        conditions(&sim, "origin-1") == Some((true, true, false))
    })
    .await;
    let pod = sim.get::<Pod>(Some("demo"), "origin-1").unwrap();
    let cs = &pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(cs.restart_count, 1);
    assert!(cs.state.as_ref().unwrap().running.is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn endpointslice_updates_trail_pod_changes_by_the_configured_delay() {
    let delay = Duration::from_millis(600);
    let sim = Sim::start(SimConfig {
        endpointslice_delay: delay,
        ..fast_config()
    })
    .await
    .unwrap();
    let mut rx = sim.subscribe();
    sim.seed_demo().unwrap();
    until(&mut rx, "ready", || {
        conditions(&sim, "origin-2") == Some((true, true, false))
    })
    .await;
    let mut rx = sim.subscribe();
    sim.crash_pod("demo", "origin-2").unwrap();
    let mut pod_at = None;
    let slice_at = tokio::time::timeout(kube_sim::testing::WAIT, async {
        loop {
            let ev = rx.recv().await.unwrap();
            if ev.resource == "pods" && ev.name == "origin-2" && pod_at.is_none() {
                pod_at = Some(ev.at);
            }
            if ev.resource == "endpointslices" && ev.event_type == EventType::Modified {
                break ev.at;
            }
        }
    })
    .await
    .expect("slice update");
    let lag = slice_at - pod_at.expect("pod event first");
    assert!(lag >= delay, "slice changed only {lag:?} after the pod");
    assert_eq!(conditions(&sim, "origin-2"), Some((false, false, false)));
    // The slice names the change that triggered it, as upstream does.
    let slice = sim.list::<EndpointSlice>(Some("demo")).remove(0);
    let trigger = slice.metadata.annotations.unwrap()
        ["endpoints.kubernetes.io/last-change-trigger-time"]
        .clone();
    let trigger = chrono::DateTime::parse_from_rfc3339(&trigger).unwrap();
    let age = chrono::Utc::now().signed_duration_since(trigger);
    assert!(
        age >= chrono::Duration::from_std(delay).unwrap() - chrono::Duration::milliseconds(50),
        "trigger only {age} ago"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn node_death_marks_node_unknown_and_its_pods_not_ready_after_grace() {
    let sim = Sim::start(fast_config()).await.unwrap();
    let mut rx = sim.subscribe();
    sim.seed_demo().unwrap();
    until(&mut rx, "all ready", || {
        endpoints(&sim, "demo", "origin")
            .iter()
            .filter(|(_, e)| is_ready(e))
            .count()
            == 3
    })
    .await;
    until(&mut rx, "node leases", || {
        sim.list::<Lease>(Some("kube-node-lease")).len() == 3
    })
    .await;
    let lease = sim.get::<Lease>(Some("kube-node-lease"), "node-a").unwrap();
    assert_eq!(
        lease.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("node-a")
    );

    let killed = Instant::now();
    sim.kill_node("node-a").unwrap();
    let node_ready = |sim: &Sim| {
        sim.get::<Node>(None, "node-a")
            .and_then(|n| n.status?.conditions)
            .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status)
    };
    until(&mut rx, "node unknown", || {
        node_ready(&sim).as_deref() == Some("Unknown")
    })
    .await;
    // Unknown only once the grace has passed since the last renewal.
    let last_renewal = sim
        .get::<Lease>(Some("kube-node-lease"), "node-a")
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap()
        .0;
    let silent_ms = chrono::Utc::now().timestamp_millis() - last_renewal.as_millisecond();
    assert!(
        silent_ms >= 390,
        "marked Unknown after only {silent_ms} ms of silence"
    );
    assert!(killed.elapsed() < Duration::from_secs(5));
    until(&mut rx, "pod on dead node not ready", || {
        conditions(&sim, "origin-0") == Some((false, false, false))
    })
    .await;
    assert_eq!(conditions(&sim, "origin-1"), Some((true, true, false)));

    // Renewals stopped for the dead node only.
    let renew = |n: &str| {
        sim.get::<Lease>(Some("kube-node-lease"), n)
            .unwrap()
            .spec
            .unwrap()
            .renew_time
            .unwrap()
    };
    let (a, b) = (renew("node-a"), renew("node-b"));
    until(&mut rx, "node-b renewal", || renew("node-b") != b).await;
    assert_eq!(renew("node-a"), a);

    sim.revive_node("node-a").unwrap();
    until(&mut rx, "node ready again", || {
        node_ready(&sim).as_deref() == Some("True")
    })
    .await;
    until(&mut rx, "pod ready again", || {
        conditions(&sim, "origin-0") == Some((true, true, false))
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn many_pods_spread_over_multiple_slices_of_at_most_100() {
    let sim = Sim::start(fast_config()).await.unwrap();
    let mut rx = sim.subscribe();
    sim.seed_demo().unwrap();
    for i in 3..250 {
        let v = kube_sim::seed::origin_pod(&format!("origin-{i}"), None);
        let pod: Pod = serde_json::from_value(v).unwrap();
        sim.create(&pod).unwrap();
    }
    until(&mut rx, "250 ready endpoints", || {
        endpoints(&sim, "demo", "origin")
            .iter()
            .filter(|(_, e)| is_ready(e))
            .count()
            == 250
    })
    .await;
    let slices = sim.list::<EndpointSlice>(Some("demo"));
    assert_eq!(slices.len(), 3);
    assert!(slices.iter().all(|s| s.endpoints.len() <= 100));
    // Unique IPs, scheduler spread pods over every node.
    let eps = endpoints(&sim, "demo", "origin");
    let ips: std::collections::BTreeSet<_> =
        eps.iter().map(|(_, e)| e.addresses[0].clone()).collect();
    assert_eq!(ips.len(), 250);
    for node in ["node-a", "node-b", "node-c"] {
        assert!(
            eps.iter()
                .filter(|(_, e)| e.node_name.as_deref() == Some(node))
                .count()
                > 80
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn pod_ip_annotation_and_services_without_selector_are_respected() {
    let sim = Sim::start(fast_config()).await.unwrap();
    let mut rx = sim.subscribe();
    sim.seed_demo().unwrap();
    let mut v = kube_sim::seed::origin_pod("origin-v6", Some("node-b"));
    v["metadata"]["annotations"] = json!({"sim.origin-discovery.io/pod-ip": "fd00::42"});
    sim.create(&serde_json::from_value::<Pod>(v).unwrap())
        .unwrap();
    until(&mut rx, "IPv6 endpoint", || {
        sim.list::<EndpointSlice>(Some("demo")).iter().any(|s| {
            s.address_type == "IPv6" && s.endpoints.iter().any(|e| e.addresses == ["fd00::42"])
        })
    })
    .await;

    // A selector-less Service gets no managed slices; a hand-made slice stays untouched.
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "manual", "namespace": "demo"},
        "spec": {"ports": [{"port": 80}]}});
    sim.create(&serde_json::from_value::<k8s_openapi::api::core::v1::Service>(svc).unwrap())
        .unwrap();
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "manual-1", "namespace": "demo", "labels": {"kubernetes.io/service-name": "manual"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.1"]}], "ports": [{"port": 80}]});
    sim.create(&serde_json::from_value::<EndpointSlice>(slice).unwrap())
        .unwrap();
    // Prove the controller has processed the service by waiting for an unrelated reconcile.
    sim.crash_pod("demo", "origin-v6").ok();
    until(&mut rx, "v6 endpoint not ready", || {
        sim.list::<EndpointSlice>(Some("demo"))
            .iter()
            .any(|s| s.address_type == "IPv6" && s.endpoints.iter().any(|e| !is_ready(e)))
    })
    .await;
    let manual: Vec<_> = sim
        .list::<EndpointSlice>(Some("demo"))
        .into_iter()
        .filter(|s| s.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"] == "manual")
        .collect();
    assert_eq!(manual.len(), 1);
    assert_eq!(manual[0].metadata.name.as_deref(), Some("manual-1"));
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_a_service_removes_its_slices_and_selector_changes_resync() {
    let sim = Sim::start(fast_config()).await.unwrap();
    let mut rx = sim.subscribe();
    sim.seed_demo().unwrap();
    until(&mut rx, "3 endpoints", || {
        endpoints(&sim, "demo", "origin").len() == 3
    })
    .await;

    // Narrow the selector to one pod.
    let mut pod = sim.get::<Pod>(Some("demo"), "origin-0").unwrap();
    pod.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("only".into(), "me".into());
    sim.replace(&pod).unwrap();
    let mut svc = sim
        .get::<k8s_openapi::api::core::v1::Service>(Some("demo"), "origin")
        .unwrap();
    svc.spec
        .as_mut()
        .unwrap()
        .selector
        .as_mut()
        .unwrap()
        .insert("only".into(), "me".into());
    sim.replace(&svc).unwrap();
    until(&mut rx, "1 endpoint", || {
        endpoints(&sim, "demo", "origin")
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            == ["origin-0"]
    })
    .await;

    sim.delete::<k8s_openapi::api::core::v1::Service>(Some("demo"), "origin")
        .unwrap();
    until(&mut rx, "slices gone", || {
        sim.list::<EndpointSlice>(Some("demo")).is_empty()
    })
    .await;
    sim.shutdown().await;
}
