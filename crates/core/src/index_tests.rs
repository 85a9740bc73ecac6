//! Unit tests of the origin index: signals in, deltas out, no I/O.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::*;
use crate::signals::ProbeSpec;

fn pool() -> PoolId {
    PoolId::new("demo", "origin")
}

fn index() -> Index {
    Index::new(IndexConfig {
        epoch: "e1".into(),
        node_lease_grace: Duration::from_secs(20),
    })
}

/// A clock for tests: every call is 1 ms after the previous one.
struct Clock(Instant);
impl Clock {
    fn new() -> Self {
        Self(Instant::now())
    }
    fn tick(&mut self) -> Stamp {
        self.0 += Duration::from_millis(1);
        Stamp {
            at: self.0,
            wall: Utc::now(),
        }
    }
    fn advance(&mut self, d: Duration) -> Stamp {
        self.0 += d;
        Stamp {
            at: self.0,
            wall: Utc::now(),
        }
    }
}

fn service(template: Option<&str>) -> ServiceInfo {
    ServiceInfo {
        pool: pool(),
        port: PortChoice::Name("ws".into()),
        url_template: template.map(Into::into),
        probe: ProbeSpec::default(),
    }
}

fn ep(pod: &str, ip: &str) -> EndpointInfo {
    EndpointInfo {
        address: ip.into(),
        pod: Some(pod.into()),
        node: Some("node-a".into()),
        zone: Some("zone-a".into()),
        hostname: None,
        ready: true,
        serving: true,
        terminating: false,
    }
}

fn slice(name: &str, endpoints: Vec<EndpointInfo>) -> SliceInfo {
    SliceInfo {
        service: pool(),
        name: name.into(),
        ports: vec![SlicePort {
            name: "ws".into(),
            port: 5080,
        }],
        endpoints,
    }
}

fn pod(name: &str) -> PodInfo {
    PodInfo {
        namespace: "demo".into(),
        name: name.into(),
        node: Some("node-a".into()),
        deleting: false,
        down: false,
        url: None,
        weight: 1,
        load: None,
    }
}

/// An index with pool demo/origin holding origin-0..n, all ready, committed.
fn seeded(n: usize, clock: &mut Clock) -> Index {
    let mut idx = index();
    idx.apply_service(service(None), clock.tick());
    let eps = (0..n)
        .map(|i| ep(&format!("origin-{i}"), &format!("10.0.0.{i}")))
        .collect();
    idx.apply_slice(slice("origin-abc", eps), clock.tick());
    for i in 0..n {
        idx.apply_pod(pod(&format!("origin-{i}")), clock.tick());
    }
    let c = idx.commit(clock.tick());
    assert!(matches!(
        &c.changes[..],
        [PoolChange::Added { revision: 1, .. }]
    ));
    idx
}

fn only_delta(c: &Commit) -> &Delta {
    match &c.changes[..] {
        [PoolChange::Updated { delta, .. }] => delta,
        other => panic!("expected one delta, got {other:?}"),
    }
}

fn state_of(idx: &Index, id: &str) -> Option<OriginState> {
    idx.origins(&pool())?
        .into_iter()
        .find(|o| o.id == id)
        .map(|o| o.state)
}

#[test]
fn new_pool_is_announced_with_its_ready_origins() {
    let mut clock = Clock::new();
    let idx = seeded(3, &mut clock);
    let origins = idx.origins(&pool()).unwrap();
    assert_eq!(origins.len(), 3);
    assert!(origins
        .iter()
        .all(|o| o.state == OriginState::Ready && o.port == 5080));
    assert_eq!(origins[0].zone.as_deref(), Some("zone-a"));
}

#[test]
fn all_slices_of_a_service_are_merged() {
    let mut clock = Clock::new();
    let mut idx = index();
    idx.apply_service(service(None), clock.tick());
    let eps: Vec<_> = (0..150)
        .map(|i| ep(&format!("o-{i}"), &format!("10.0.{}.{}", i / 100, i % 100)))
        .collect();
    idx.apply_slice(slice("a", eps[..100].to_vec()), clock.tick());
    idx.apply_slice(slice("b", eps[100..].to_vec()), clock.tick());
    idx.commit(clock.tick());
    assert_eq!(idx.origins(&pool()).unwrap().len(), 150);
    // Updating one slice never replaces the other's endpoints.
    idx.apply_slice(slice("b", eps[100..110].to_vec()), clock.tick());
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).remove.len(), 40);
    assert_eq!(idx.origins(&pool()).unwrap().len(), 110);
}

#[test]
fn relist_with_unchanged_objects_produces_no_delta() {
    let mut clock = Clock::new();
    let mut idx = seeded(3, &mut clock);
    // A watch restart: the source re-applies everything it lists, then resets.
    idx.apply_service(service(None), clock.tick());
    let eps = (0..3)
        .map(|i| ep(&format!("origin-{i}"), &format!("10.0.0.{i}")))
        .collect();
    idx.apply_slice(slice("origin-abc", eps), clock.tick());
    let mut keep = HashSet::new();
    for i in 0..3 {
        idx.apply_pod(pod(&format!("origin-{i}")), clock.tick());
        keep.insert(("demo".to_string(), format!("origin-{i}")));
    }
    idx.reset_pods(&keep, clock.tick());
    idx.reset_slices(
        &HashSet::from([(pool(), "origin-abc".to_string())]),
        clock.tick(),
    );
    idx.reset_services(&HashSet::from([pool()]));
    let c = idx.commit(clock.tick());
    assert!(c.changes.is_empty(), "{:?}", c.changes);
}

#[test]
fn graceful_delete_marks_origin_draining_before_slice_update() {
    let mut clock = Clock::new();
    let mut idx = seeded(3, &mut clock);
    idx.apply_pod(
        PodInfo {
            deleting: true,
            ..pod("origin-1")
        },
        clock.tick(),
    );
    let c = idx.commit(clock.tick());
    let d = only_delta(&c);
    assert_eq!(d.revision, 2);
    assert_eq!(d.upsert.len(), 1);
    assert_eq!(d.upsert[0].id, "origin-1");
    assert_eq!(d.upsert[0].state, OriginState::Draining);
    assert!(d.remove.is_empty());
}

#[test]
fn crash_removes_origin_before_slice_update() {
    let mut clock = Clock::new();
    let mut idx = seeded(3, &mut clock);
    idx.apply_pod(
        PodInfo {
            down: true,
            ..pod("origin-2")
        },
        clock.tick(),
    );
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).remove, vec!["origin-2"]);
    assert_eq!(state_of(&idx, "origin-2"), None);
}

#[test]
fn recovered_pod_is_readded_only_once_its_slice_endpoint_is_ready() {
    let mut clock = Clock::new();
    let mut idx = seeded(2, &mut clock);
    idx.apply_pod(
        PodInfo {
            down: true,
            ..pod("origin-0")
        },
        clock.tick(),
    );
    idx.commit(clock.tick());
    // The slice catches up: not ready.
    let mut e0 = ep("origin-0", "10.0.0.0");
    e0.ready = false;
    e0.serving = false;
    idx.apply_slice(
        slice("origin-abc", vec![e0.clone(), ep("origin-1", "10.0.0.1")]),
        clock.tick(),
    );
    assert!(idx.commit(clock.tick()).changes.is_empty());
    // The pod recovers; the slice still says not ready → stays out.
    idx.apply_pod(pod("origin-0"), clock.tick());
    assert!(idx.commit(clock.tick()).changes.is_empty());
    assert_eq!(state_of(&idx, "origin-0"), None);
    // Now the slice says ready too → back.
    idx.apply_slice(
        slice(
            "origin-abc",
            vec![ep("origin-0", "10.0.0.0"), ep("origin-1", "10.0.0.1")],
        ),
        clock.tick(),
    );
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).upsert[0].id, "origin-0");
    assert_eq!(state_of(&idx, "origin-0"), Some(OriginState::Ready));
}

#[test]
fn slice_ready_does_not_override_a_down_pod() {
    let mut clock = Clock::new();
    let mut idx = seeded(1, &mut clock);
    idx.apply_pod(
        PodInfo {
            down: true,
            ..pod("origin-0")
        },
        clock.tick(),
    );
    idx.commit(clock.tick());
    // An unrelated slice change (resync) must not bring it back.
    let mut e = ep("origin-0", "10.0.0.0");
    e.hostname = Some("h".into());
    idx.apply_slice(slice("origin-abc", vec![e]), clock.tick());
    assert!(idx.commit(clock.tick()).changes.is_empty());
}

#[test]
fn revisions_count_up_by_exactly_one_per_change() {
    let mut clock = Clock::new();
    let mut idx = seeded(3, &mut clock);
    let mut revisions = vec![];
    for i in 0..3 {
        idx.apply_pod(
            PodInfo {
                deleting: true,
                ..pod(&format!("origin-{i}"))
            },
            clock.tick(),
        );
        revisions.push(only_delta(&idx.commit(clock.tick())).revision);
    }
    assert_eq!(revisions, vec![2, 3, 4]);
}

#[test]
fn service_unlabelled_removes_pool_and_new_service_adds_one() {
    let mut clock = Clock::new();
    let mut idx = seeded(2, &mut clock);
    idx.delete_service(&pool());
    let c = idx.commit(clock.tick());
    assert!(matches!(
        &c.changes[..],
        [PoolChange::Removed { revision: 1, .. }]
    ));
    assert!(idx.origins(&pool()).is_none());
    // Labelled again: the pool is back with its endpoints and its revision keeps counting.
    idx.apply_service(service(None), clock.tick());
    let c = idx.commit(clock.tick());
    match &c.changes[..] {
        [PoolChange::Added {
            revision, origins, ..
        }] => {
            assert_eq!(*revision, 2);
            assert_eq!(origins.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn slices_of_non_pool_services_produce_nothing() {
    let mut clock = Clock::new();
    let mut idx = index();
    let mut s = slice("other-x", vec![ep("p", "10.0.0.9")]);
    s.service = PoolId::new("demo", "other");
    idx.apply_slice(s, clock.tick());
    assert!(idx.commit(clock.tick()).changes.is_empty());
}

#[test]
fn endpoints_without_target_ref_are_keyed_ip_port_and_ipv6_works() {
    let mut clock = Clock::new();
    let mut idx = index();
    idx.apply_service(service(Some("ws://{ip}:{port}/{namespace}")), clock.tick());
    let mut a = ep("x", "fd00::1");
    a.pod = None;
    let mut b = ep("x", "192.0.2.7");
    b.pod = None;
    idx.apply_slice(slice("s", vec![a, b]), clock.tick());
    idx.commit(clock.tick());
    let ids: Vec<_> = idx
        .origins(&pool())
        .unwrap()
        .into_iter()
        .map(|o| (o.id, o.ip, o.url))
        .collect();
    assert_eq!(
        ids,
        vec![
            (
                "192.0.2.7:5080".into(),
                "192.0.2.7".into(),
                Some("ws://192.0.2.7:5080/demo".into())
            ),
            (
                "[fd00::1]:5080".into(),
                "fd00::1".into(),
                Some("ws://fd00::1:5080/demo".into())
            ),
        ]
    );
}

#[test]
fn pod_url_annotation_overrides_the_template() {
    let mut clock = Clock::new();
    let mut idx = index();
    idx.apply_service(
        service(Some("wss://{pod}.example.com:5443/{zone}/{node}")),
        clock.tick(),
    );
    idx.apply_slice(
        slice(
            "s",
            vec![ep("origin-0", "10.0.0.1"), ep("origin-1", "10.0.0.2")],
        ),
        clock.tick(),
    );
    idx.apply_pod(pod("origin-0"), clock.tick());
    idx.apply_pod(
        PodInfo {
            url: Some("wss://203.0.113.5:5443/x".into()),
            ..pod("origin-1")
        },
        clock.tick(),
    );
    idx.commit(clock.tick());
    let urls: Vec<_> = idx
        .origins(&pool())
        .unwrap()
        .into_iter()
        .map(|o| o.url.unwrap())
        .collect();
    assert_eq!(
        urls,
        vec![
            "wss://origin-0.example.com:5443/zone-a/node-a",
            "wss://203.0.113.5:5443/x"
        ]
    );
}

#[test]
fn port_is_chosen_by_name_or_number_and_missing_port_lists_nothing() {
    let mut clock = Clock::new();
    let mut idx = index();
    let mut svc = service(None);
    svc.port = PortChoice::Number(5080);
    idx.apply_service(svc.clone(), clock.tick());
    idx.apply_slice(slice("s", vec![ep("origin-0", "10.0.0.1")]), clock.tick());
    idx.commit(clock.tick());
    assert_eq!(idx.origins(&pool()).unwrap().len(), 1);
    svc.port = PortChoice::Name("rtmp".into());
    idx.apply_service(svc, clock.tick());
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).remove, vec!["origin-0"]);
}

#[test]
fn pod_deleted_while_slice_lists_it_is_removed_and_a_recreated_pod_returns() {
    let mut clock = Clock::new();
    let mut idx = seeded(2, &mut clock);
    idx.delete_pod("demo", "origin-0", clock.tick());
    assert_eq!(
        only_delta(&idx.commit(clock.tick())).remove,
        vec!["origin-0"]
    );
    // A StatefulSet-style pod with the same name comes back.
    idx.apply_pod(pod("origin-0"), clock.tick());
    assert_eq!(
        only_delta(&idx.commit(clock.tick())).upsert[0].id,
        "origin-0"
    );
}

#[test]
fn unknown_pods_do_not_hide_slice_ready_endpoints() {
    // With a narrowed pod watch, pods may never be seen: the slice alone decides then.
    let mut clock = Clock::new();
    let mut idx = index();
    idx.apply_service(service(None), clock.tick());
    idx.apply_slice(slice("s", vec![ep("origin-0", "10.0.0.1")]), clock.tick());
    idx.commit(clock.tick());
    assert_eq!(state_of(&idx, "origin-0"), Some(OriginState::Ready));
}

#[test]
fn slice_serving_and_terminating_means_draining() {
    let mut clock = Clock::new();
    let mut idx = seeded(1, &mut clock);
    let mut e = ep("origin-0", "10.0.0.0");
    e.ready = false;
    e.terminating = true;
    idx.apply_slice(slice("origin-abc", vec![e]), clock.tick());
    idx.commit(clock.tick());
    assert_eq!(state_of(&idx, "origin-0"), Some(OriginState::Draining));
}

#[test]
fn since_is_kept_while_state_is_unchanged() {
    let mut clock = Clock::new();
    let mut idx = seeded(1, &mut clock);
    let before = idx.origins(&pool()).unwrap()[0].since;
    idx.apply_pod(
        PodInfo {
            url: Some("ws://x/".into()),
            ..pod("origin-0")
        },
        clock.tick(),
    );
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).upsert[0].since, before);
}

#[test]
fn signal_lead_is_measured_when_the_slice_catches_up() {
    let mut clock = Clock::new();
    let mut idx = seeded(1, &mut clock);
    idx.apply_pod(
        PodInfo {
            down: true,
            ..pod("origin-0")
        },
        clock.tick(),
    );
    assert!(idx.commit(clock.tick()).leads.is_empty());
    let mut e = ep("origin-0", "10.0.0.0");
    e.ready = false;
    e.serving = false;
    let caught_up = clock.advance(Duration::from_secs(1));
    idx.apply_slice(slice("origin-abc", vec![e]), caught_up);
    let c = idx.commit(caught_up);
    assert!(c.changes.is_empty());
    assert_eq!(c.leads.len(), 1);
    assert!(c.leads[0] >= Duration::from_secs(1), "{:?}", c.leads);
}

#[test]
fn dead_node_removes_its_origins_and_recovery_restores_them() {
    let mut clock = Clock::new();
    let mut idx = seeded(2, &mut clock);
    idx.apply_node("node-a", NodeReady::NotReady, clock.tick());
    assert_eq!(only_delta(&idx.commit(clock.tick())).remove.len(), 2);
    idx.apply_node("node-a", NodeReady::Ready, clock.tick());
    assert_eq!(only_delta(&idx.commit(clock.tick())).upsert.len(), 2);
}

#[test]
fn expired_node_lease_removes_origins_until_renewed() {
    let mut clock = Clock::new();
    let mut idx = seeded(1, &mut clock);
    idx.apply_lease("node-a", Some("t1".into()), clock.tick());
    idx.tick(clock.advance(Duration::from_secs(10)));
    assert!(idx.commit(clock.tick()).changes.is_empty());
    // The same renewTime seen again (a relist) is not a renewal.
    idx.apply_lease("node-a", Some("t1".into()), clock.tick());
    idx.tick(clock.advance(Duration::from_secs(15)));
    assert_eq!(
        only_delta(&idx.commit(clock.tick())).remove,
        vec!["origin-0"]
    );
    idx.apply_lease("node-a", Some("t2".into()), clock.tick());
    assert_eq!(only_delta(&idx.commit(clock.tick())).upsert.len(), 1);
}

#[test]
fn deleted_node_removes_its_origins_and_is_forgotten_after_the_retention() {
    let mut clock = Clock::new();
    let mut idx = seeded(2, &mut clock);
    idx.apply_node("node-a", NodeReady::Ready, clock.tick());
    idx.delete_node("node-a", clock.tick());
    assert_eq!(only_delta(&idx.commit(clock.tick())).remove.len(), 2);
    idx.tick(clock.advance(DELETED_NODE_RETENTION / 2));
    assert!(idx.nodes.contains_key("node-a"), "still remembered as dead");
    idx.tick(clock.advance(DELETED_NODE_RETENTION));
    assert!(idx.nodes.is_empty(), "node churn must not grow the index");
    // A node of that name that comes back is a new node.
    idx.apply_node("node-a", NodeReady::Ready, clock.tick());
    assert_eq!(idx.nodes.len(), 1);
}

#[test]
fn a_lease_deleted_without_a_node_is_forgotten_after_the_retention() {
    let mut clock = Clock::new();
    let mut idx = seeded(2, &mut clock);
    idx.apply_lease("node-z", Some("t1".into()), clock.tick());
    idx.delete_lease("node-z", clock.tick());
    idx.delete_lease("node-y", clock.tick());
    idx.tick(clock.advance(DELETED_NODE_RETENTION / 2));
    assert!(idx.nodes.contains_key("node-z"));
    idx.tick(clock.advance(DELETED_NODE_RETENTION));
    assert!(idx.nodes.is_empty(), "lease churn must not grow the index");
}

#[test]
fn a_relist_without_a_node_deletes_it() {
    let mut clock = Clock::new();
    let mut idx = seeded(1, &mut clock);
    idx.apply_node("node-a", NodeReady::Ready, clock.tick());
    idx.apply_node("node-b", NodeReady::Ready, clock.tick());
    idx.reset_nodes(&HashSet::from(["node-b".to_string()]), clock.tick());
    assert_eq!(
        only_delta(&idx.commit(clock.tick())).remove,
        vec!["origin-0"]
    );
}

#[test]
fn deleted_lease_removes_origins_until_a_lease_is_renewed_again() {
    let mut clock = Clock::new();
    let mut idx = seeded(1, &mut clock);
    idx.apply_lease("node-a", Some("t1".into()), clock.tick());
    idx.delete_lease("node-a", clock.tick());
    assert_eq!(
        only_delta(&idx.commit(clock.tick())).remove,
        vec!["origin-0"]
    );
    // The Node itself is still Ready: only the lease says the kubelet is gone.
    idx.apply_node("node-a", NodeReady::Ready, clock.tick());
    assert!(idx.commit(clock.tick()).changes.is_empty());
    // A re-created lease is a renewal.
    idx.apply_lease("node-a", Some("t1".into()), clock.tick());
    assert_eq!(only_delta(&idx.commit(clock.tick())).upsert.len(), 1);
    // A relist without the lease deletes it.
    idx.reset_leases(&HashSet::new(), clock.tick());
    assert_eq!(only_delta(&idx.commit(clock.tick())).remove.len(), 1);
}

#[test]
fn without_a_node_object_a_recreated_lease_revives_the_node_and_forgetting_it_relists() {
    let mut clock = Clock::new();
    let mut idx = seeded(1, &mut clock);
    // No Node object is ever seen (say the Node watch is not allowed): only the lease.
    idx.apply_lease("node-a", Some("t1".into()), clock.tick());
    idx.delete_lease("node-a", clock.tick());
    assert_eq!(
        only_delta(&idx.commit(clock.tick())).remove,
        vec!["origin-0"]
    );
    idx.apply_lease("node-a", Some("t1".into()), clock.tick());
    assert_eq!(only_delta(&idx.commit(clock.tick())).upsert.len(), 1);
    // Deleted again and then forgotten after the retention: unknown, so not dead — the
    // origin is listed again rather than left out for good.
    idx.delete_lease("node-a", clock.tick());
    assert_eq!(only_delta(&idx.commit(clock.tick())).remove.len(), 1);
    idx.tick(clock.advance(DELETED_NODE_RETENTION + Duration::from_secs(1)));
    assert!(idx.nodes.is_empty());
    assert_eq!(only_delta(&idx.commit(clock.tick())).upsert.len(), 1);
}

#[test]
fn push_latency_starts_at_the_earliest_folded_signal() {
    let mut clock = Clock::new();
    let mut idx = seeded(2, &mut clock);
    let first = clock.tick();
    idx.apply_pod(
        PodInfo {
            deleting: true,
            ..pod("origin-0")
        },
        first,
    );
    idx.apply_pod(
        PodInfo {
            deleting: true,
            ..pod("origin-1")
        },
        clock.tick(),
    );
    match &idx.commit(clock.tick()).changes[..] {
        [PoolChange::Updated { received, delta }] => {
            assert_eq!(*received, first.at);
            assert_eq!(delta.upsert.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn template_leaves_unknown_placeholders_alone() {
    let p = Placeholders {
        ip: "1.2.3.4",
        port: 1,
        pod: "p",
        namespace: "n",
        node: "",
        zone: "",
        hostname: "h",
    };
    assert_eq!(expand_template("{x}-{pod}-{hostname}-{", &p), "{x}-p-h-{");
}

// ---------------------------------------------------------------------------------------
// Active probes (docs/DESIGN.md, "Active probes")

/// An index whose pool demo/origin is probed over HTTP, with origin-0..n ready and
/// committed, under `policy`.
fn probed(n: usize, policy: ProbePolicy, clock: &mut Clock) -> Index {
    let mut idx = seeded(n, clock);
    idx.set_probe_policy(policy, clock.tick());
    idx.apply_service(
        ServiceInfo {
            probe: ProbeSpec {
                mode: ProbeMode::On(ProbeKind::Http),
                path: "/healthz".into(),
                port: None,
            },
            ..service(None)
        },
        clock.tick(),
    );
    let c = idx.commit(clock.tick());
    assert!(c.changes.is_empty(), "{:?}", c.changes);
    idx
}

/// [`probed`] with the default policy, every origin having answered one probe.
fn probed_healthy(n: usize, clock: &mut Clock) -> Index {
    let mut idx = probed(n, ProbePolicy::default(), clock);
    for i in 0..n {
        probe(&mut idx, &format!("origin-{i}"), true, clock);
    }
    idx.commit(clock.tick());
    idx
}

fn target(idx: &Index, id: &str) -> ProbeTarget {
    idx.probe_targets()
        .into_iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("{id} is not a probe target"))
}

fn probe(idx: &mut Index, id: &str, healthy: bool, clock: &mut Clock) {
    let t = target(idx, id);
    idx.apply_probe(
        &t,
        ProbeResult {
            healthy,
            load: None,
        },
        clock.tick(),
    );
}

/// [`probed`] over `n` origins with `--probe-successes 3`, and `id` taken down by two
/// failed probes.
fn down_needing_three_successes(n: usize, id: &str, clock: &mut Clock) -> Index {
    let policy = ProbePolicy {
        successes: 3,
        ..ProbePolicy::default()
    };
    let mut idx = probed(n, policy, clock);
    probe(&mut idx, id, false, clock);
    probe(&mut idx, id, false, clock);
    idx.commit(clock.tick());
    idx
}

/// Applies the pool's slice of origin-0..3 with origin-1 `ready` or not (committed); the
/// others are ready. `changed` alters origin-1's hostname too, so the slice differs visibly
/// from an earlier one with the same readiness.
fn slice_with_origin_1(idx: &mut Index, ready: bool, changed: bool, clock: &mut Clock) {
    let mut eps: Vec<_> = (0..3)
        .map(|i| ep(&format!("origin-{i}"), &format!("10.0.0.{i}")))
        .collect();
    eps[1].ready = ready;
    eps[1].serving = ready;
    if changed {
        eps[1].hostname = Some("h".into());
    }
    idx.apply_slice(slice("origin-abc", eps), clock.tick());
    idx.commit(clock.tick());
}

fn ids(idx: &Index) -> Vec<String> {
    idx.origins(&pool())
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect()
}

#[test]
fn probe_targets_are_the_slice_addresses_of_probed_pools_only() {
    let mut clock = Clock::new();
    let mut idx = seeded(3, &mut clock);
    assert!(idx.probe_targets().is_empty(), "no annotation, no default");
    let rev = idx.probe_targets_revision();
    idx.set_probe_policy(
        ProbePolicy {
            default: Some(ProbeKind::Tcp),
            ..ProbePolicy::default()
        },
        clock.tick(),
    );
    assert_ne!(idx.probe_targets_revision(), rev);
    let mut t = idx.probe_targets();
    t.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(t.len(), 3);
    assert_eq!(
        (
            t[1].id.as_str(),
            t[1].address.as_str(),
            t[1].port,
            t[1].kind
        ),
        ("origin-1", "10.0.0.1", 5080, ProbeKind::Tcp)
    );
    // Annotated `none`: never probed, whatever the default.
    idx.apply_service(
        ServiceInfo {
            probe: ProbeSpec {
                mode: ProbeMode::Off,
                ..ProbeSpec::default()
            },
            ..service(None)
        },
        clock.tick(),
    );
    assert!(idx.probe_targets().is_empty());
}

#[test]
fn probe_port_annotation_picks_another_slice_port_and_unready_endpoints_are_not_probed() {
    let mut clock = Clock::new();
    let mut idx = index();
    idx.apply_service(
        ServiceInfo {
            probe: ProbeSpec {
                mode: ProbeMode::On(ProbeKind::Http),
                path: "/".into(),
                port: Some(PortChoice::Name("health".into())),
            },
            ..service(None)
        },
        clock.tick(),
    );
    let mut s = slice("s", vec![ep("a", "10.0.0.1"), ep("b", "10.0.0.2")]);
    s.ports.push(SlicePort {
        name: "health".into(),
        port: 8086,
    });
    s.endpoints[1].ready = false;
    s.endpoints[1].serving = false;
    idx.apply_slice(s, clock.tick());
    let t = idx.probe_targets();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!((t[0].id.as_str(), t[0].port), ("a", 8086));
}

#[test]
fn consecutive_probe_failures_remove_an_origin_whose_slice_and_pod_say_ready() {
    let mut clock = Clock::new();
    let mut idx = probed(4, ProbePolicy::default(), &mut clock);
    probe(&mut idx, "origin-1", false, &mut clock);
    assert!(
        idx.commit(clock.tick()).changes.is_empty(),
        "one failure is not enough"
    );
    probe(&mut idx, "origin-1", false, &mut clock);
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).remove, vec!["origin-1".to_string()]);
    assert_eq!(c.probe_removed, vec![pool()]);
    assert!(c.probe_panic.is_empty());
    // More failures change nothing further.
    probe(&mut idx, "origin-1", false, &mut clock);
    assert!(idx.commit(clock.tick()).changes.is_empty());
}

#[test]
fn a_success_between_failures_resets_the_count() {
    let mut clock = Clock::new();
    let policy = ProbePolicy {
        failures: 3,
        ..ProbePolicy::default()
    };
    let mut idx = probed(4, policy, &mut clock);
    for healthy in [false, false, true, false, false, true, false, false] {
        probe(&mut idx, "origin-2", healthy, &mut clock);
        assert!(
            idx.commit(clock.tick()).changes.is_empty(),
            "flapping never reaches 3 in a row"
        );
    }
    probe(&mut idx, "origin-2", false, &mut clock);
    assert_eq!(
        only_delta(&idx.commit(clock.tick())).remove,
        vec!["origin-2".to_string()]
    );
}

#[test]
fn recovery_needs_the_configured_successes_in_a_row() {
    let mut clock = Clock::new();
    let mut idx = down_needing_three_successes(4, "origin-0", &mut clock);
    assert!(!ids(&idx).contains(&"origin-0".to_string()));
    // Flapping: two successes, a failure, two successes — still out.
    for healthy in [true, true, false, true, true] {
        probe(&mut idx, "origin-0", healthy, &mut clock);
        assert!(idx.commit(clock.tick()).changes.is_empty());
    }
    probe(&mut idx, "origin-0", true, &mut clock);
    let c = idx.commit(clock.tick());
    let d = only_delta(&c);
    assert_eq!(d.upsert.len(), 1);
    assert_eq!(d.upsert[0].id, "origin-0");
    assert_eq!(d.upsert[0].state, OriginState::Ready);
}

#[test]
fn recovery_also_needs_a_ready_slice() {
    let mut clock = Clock::new();
    let mut idx = probed(3, ProbePolicy::default(), &mut clock);
    probe(&mut idx, "origin-1", false, &mut clock);
    probe(&mut idx, "origin-1", false, &mut clock);
    idx.commit(clock.tick());
    // The slice turns not ready (the readiness probe caught up): no longer a target.
    slice_with_origin_1(&mut idx, false, false, &mut clock);
    assert!(idx.probe_targets().iter().all(|t| t.id != "origin-1"));
    // A success reported for it now (a probe started before) is not enough: slice not ready.
    let stale = ProbeTarget {
        pool: pool(),
        id: "origin-1".into(),
        address: "10.0.0.1".into(),
        port: 5080,
        kind: ProbeKind::Http,
        path: "/healthz".into(),
    };
    idx.apply_probe(
        &stale,
        ProbeResult {
            healthy: true,
            load: None,
        },
        clock.tick(),
    );
    assert!(idx.commit(clock.tick()).changes.is_empty());
    assert!(!ids(&idx).contains(&"origin-1".to_string()));
    // The slice is ready again, but the probe state is kept: still out until a success.
    slice_with_origin_1(&mut idx, true, true, &mut clock);
    assert!(!ids(&idx).contains(&"origin-1".to_string()));
    probe(&mut idx, "origin-1", true, &mut clock);
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).upsert[0].id, "origin-1");
}

#[test]
fn successes_from_before_the_slice_said_not_ready_do_not_count_after_it() {
    let mut clock = Clock::new();
    let mut idx = down_needing_three_successes(3, "origin-1", &mut clock);
    // Two successes of three (the process answering again)…
    probe(&mut idx, "origin-1", true, &mut clock);
    probe(&mut idx, "origin-1", true, &mut clock);
    // …then Kubernetes catches up: the slice says not ready, later ready again.
    slice_with_origin_1(&mut idx, false, false, &mut clock);
    slice_with_origin_1(&mut idx, true, true, &mut clock);
    // The count starts again: one or two successes are not three in a row.
    for _ in 0..2 {
        probe(&mut idx, "origin-1", true, &mut clock);
        assert!(idx.commit(clock.tick()).changes.is_empty());
        assert!(!ids(&idx).contains(&"origin-1".to_string()));
    }
    probe(&mut idx, "origin-1", true, &mut clock);
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).upsert[0].id, "origin-1");
}

#[test]
fn probe_down_overrides_a_draining_slice_too() {
    let mut clock = Clock::new();
    let mut idx = probed(3, ProbePolicy::default(), &mut clock);
    idx.apply_pod(
        PodInfo {
            deleting: true,
            ..pod("origin-2")
        },
        clock.tick(),
    );
    idx.commit(clock.tick());
    assert_eq!(state_of(&idx, "origin-2"), Some(OriginState::Draining));
    probe(&mut idx, "origin-2", false, &mut clock);
    probe(&mut idx, "origin-2", false, &mut clock);
    assert_eq!(
        only_delta(&idx.commit(clock.tick())).remove,
        vec!["origin-2".to_string()]
    );
}

#[test]
fn panic_threshold_keeps_the_pool_when_too_many_fail_at_once() {
    let mut clock = Clock::new();
    let mut idx = probed_healthy(4, &mut clock);
    // Two of four (50 %, not more than the threshold) are removed.
    for id in ["origin-0", "origin-1"] {
        probe(&mut idx, id, false, &mut clock);
        probe(&mut idx, id, false, &mut clock);
    }
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).remove.len(), 2);
    assert!(!idx.probe_panic(&pool()));
    // A third (75 %): panic — all three are listed again, and the mode is reported.
    probe(&mut idx, "origin-2", false, &mut clock);
    probe(&mut idx, "origin-2", false, &mut clock);
    let c = idx.commit(clock.tick());
    assert!(idx.probe_panic(&pool()));
    assert_eq!(
        c.probe_panic,
        vec![ProbePanic {
            pool: pool(),
            panic: true,
            down: 3,
            failing: 3,
            probed: 4
        }]
    );
    assert_eq!(only_delta(&c).upsert.len(), 2, "the two removed come back");
    assert!(c.probe_removed.is_empty());
    assert_eq!(ids(&idx).len(), 4);
    // All four failing: still everything listed — probes never empty a pool.
    probe(&mut idx, "origin-3", false, &mut clock);
    probe(&mut idx, "origin-3", false, &mut clock);
    assert!(idx.commit(clock.tick()).changes.is_empty());
    assert_eq!(ids(&idx).len(), 4);
    // Recovering below the threshold leaves panic mode and removes the ones still failing.
    for id in ["origin-2", "origin-3"] {
        probe(&mut idx, id, true, &mut clock);
    }
    let c = idx.commit(clock.tick());
    assert!(!idx.probe_panic(&pool()));
    assert_eq!(c.probe_panic.len(), 1);
    assert!(!c.probe_panic[0].panic);
    assert_eq!(
        only_delta(&c).remove,
        vec!["origin-0".to_string(), "origin-1".to_string()]
    );
    assert_eq!(c.probe_removed.len(), 2);
}

#[test]
fn a_pool_failing_all_at_once_loses_no_origin_even_as_they_go_down_one_by_one() {
    // The probes of a pool cut off from the controller fail in jittered order: every origin
    // fails once before the first reaches --probe-failures (2). Committing after every
    // result, as the controller does, no removal may be published on the way into panic.
    let mut clock = Clock::new();
    let mut idx = probed_healthy(4, &mut clock);
    for round in 0..3 {
        for i in 0..4 {
            probe(&mut idx, &format!("origin-{i}"), false, &mut clock);
            let c = idx.commit(clock.tick());
            assert!(
                c.changes.is_empty() && c.probe_removed.is_empty(),
                "round {round}, origin-{i}: {c:?}"
            );
            assert_eq!(ids(&idx).len(), 4);
        }
    }
    assert!(idx.probe_panic(&pool()));
    // One failing probe alone (a quarter of the pool) is no panic, and it is removed once
    // it reaches --probe-failures.
    let mut idx = probed(4, ProbePolicy::default(), &mut clock);
    probe(&mut idx, "origin-0", false, &mut clock);
    idx.commit(clock.tick());
    assert!(!idx.probe_panic(&pool()));
    probe(&mut idx, "origin-0", false, &mut clock);
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).remove, vec!["origin-0".to_string()]);
}

#[test]
fn one_failed_probe_elsewhere_does_not_bring_back_an_origin_that_is_down() {
    // Two origins, one frozen and removed; a single timeout on the other makes the whole
    // pool failing for a moment: removals are held, but the frozen one stays out, and the
    // next success changes nothing either (no flapping delta).
    let mut clock = Clock::new();
    let mut idx = probed(2, ProbePolicy::default(), &mut clock);
    probe(&mut idx, "origin-1", true, &mut clock);
    probe(&mut idx, "origin-0", false, &mut clock);
    probe(&mut idx, "origin-0", false, &mut clock);
    assert_eq!(
        only_delta(&idx.commit(clock.tick())).remove,
        vec!["origin-0".to_string()]
    );
    probe(&mut idx, "origin-1", false, &mut clock);
    let c = idx.commit(clock.tick());
    assert!(c.changes.is_empty(), "{c:?}");
    assert!(idx.probe_panic(&pool()), "the hold is reported");
    probe(&mut idx, "origin-1", true, &mut clock);
    let c = idx.commit(clock.tick());
    assert!(c.changes.is_empty(), "{c:?}");
    assert!(!idx.probe_panic(&pool()));
    assert_eq!(ids(&idx), vec!["origin-1".to_string()]);
}

#[test]
fn a_held_origin_is_removed_when_the_hold_ends_and_it_is_still_down() {
    let mut clock = Clock::new();
    let mut idx = probed_healthy(4, &mut clock);
    // Three of four fail once (hold), then origin-0 goes down while held: still listed.
    for i in 0..3 {
        probe(&mut idx, &format!("origin-{i}"), false, &mut clock);
    }
    probe(&mut idx, "origin-0", false, &mut clock);
    assert!(idx.commit(clock.tick()).changes.is_empty());
    assert_eq!(ids(&idx).len(), 4);
    // The other two answer again: the hold ends, and origin-0, still down, is removed.
    probe(&mut idx, "origin-1", true, &mut clock);
    probe(&mut idx, "origin-2", true, &mut clock);
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).remove, vec!["origin-0".to_string()]);
    assert_eq!(c.probe_removed, vec![pool()]);
    assert!(!idx.probe_panic(&pool()));
}

#[test]
fn a_single_probed_origin_is_never_removed_by_probes() {
    let mut clock = Clock::new();
    let policy = ProbePolicy {
        panic_threshold: 100,
        ..ProbePolicy::default()
    };
    let mut idx = probed(1, policy, &mut clock);
    probe(&mut idx, "origin-0", false, &mut clock);
    probe(&mut idx, "origin-0", false, &mut clock);
    let c = idx.commit(clock.tick());
    assert!(c.changes.is_empty());
    assert!(
        idx.probe_panic(&pool()),
        "all failing is panic, whatever the threshold"
    );
    assert_eq!(ids(&idx), vec!["origin-0".to_string()]);
}

#[test]
fn a_down_verdict_outlives_its_endpoint_leaving_the_slices_for_the_retention() {
    let mut clock = Clock::new();
    let mut idx = probed(3, ProbePolicy::default(), &mut clock);
    probe(&mut idx, "origin-2", false, &mut clock);
    probe(&mut idx, "origin-2", false, &mut clock);
    idx.commit(clock.tick());
    let eps = |n: usize| -> Vec<EndpointInfo> {
        (0..n)
            .map(|i| ep(&format!("origin-{i}"), &format!("10.0.0.{i}")))
            .collect()
    };
    // Out of the slice and back (an endpoint moving between slices): still down, not
    // listed until its probes say so.
    idx.apply_slice(slice("origin-abc", eps(2)), clock.tick());
    idx.commit(clock.tick());
    idx.apply_slice(slice("origin-abc", eps(3)), clock.tick());
    assert!(idx.commit(clock.tick()).changes.is_empty());
    assert!(!ids(&idx).contains(&"origin-2".to_string()));
    probe(&mut idx, "origin-2", true, &mut clock);
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).upsert[0].id, "origin-2");
    // Down again, out of the slices for longer than the retention: forgotten, so back in
    // the slice it is listed at once.
    probe(&mut idx, "origin-2", false, &mut clock);
    probe(&mut idx, "origin-2", false, &mut clock);
    idx.commit(clock.tick());
    idx.apply_slice(slice("origin-abc", eps(2)), clock.tick());
    idx.commit(clock.tick());
    idx.tick(clock.advance(PROBE_VERDICT_RETENTION / 2));
    idx.tick(clock.advance(PROBE_VERDICT_RETENTION));
    idx.apply_slice(slice("origin-abc", eps(3)), clock.tick());
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).upsert[0].id, "origin-2");
    // A late result for the old target does not count twice: one failure is not two.
    probe(&mut idx, "origin-2", false, &mut clock);
    assert!(idx.commit(clock.tick()).changes.is_empty());
}

#[test]
fn a_new_address_under_the_same_id_starts_a_fresh_probe_state() {
    let mut clock = Clock::new();
    let mut idx = probed(2, ProbePolicy::default(), &mut clock);
    let old = target(&idx, "origin-1");
    idx.apply_probe(
        &old,
        ProbeResult {
            healthy: false,
            load: None,
        },
        clock.tick(),
    );
    idx.apply_probe(
        &old,
        ProbeResult {
            healthy: false,
            load: None,
        },
        clock.tick(),
    );
    idx.commit(clock.tick());
    assert_eq!(ids(&idx), vec!["origin-0".to_string()]);
    // The pod restarted on another address.
    idx.apply_slice(
        slice(
            "origin-abc",
            vec![ep("origin-0", "10.0.0.0"), ep("origin-1", "10.0.9.9")],
        ),
        clock.tick(),
    );
    idx.commit(clock.tick());
    assert_eq!(ids(&idx).len(), 2);
    // Results still arriving for the old address are ignored.
    idx.apply_probe(
        &old,
        ProbeResult {
            healthy: false,
            load: None,
        },
        clock.tick(),
    );
    idx.apply_probe(
        &old,
        ProbeResult {
            healthy: false,
            load: None,
        },
        clock.tick(),
    );
    assert!(idx.commit(clock.tick()).changes.is_empty());
    assert_eq!(target(&idx, "origin-1").address, "10.0.9.9");
}

#[test]
fn changing_the_probe_settings_or_dropping_the_annotation_forgets_probe_verdicts() {
    let mut clock = Clock::new();
    let mut idx = probed(3, ProbePolicy::default(), &mut clock);
    probe(&mut idx, "origin-0", false, &mut clock);
    probe(&mut idx, "origin-0", false, &mut clock);
    idx.commit(clock.tick());
    assert_eq!(ids(&idx).len(), 2);
    idx.apply_service(service(None), clock.tick());
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).upsert[0].id, "origin-0");
    assert!(idx.probe_targets().is_empty());
}

#[test]
fn healthy_answers_report_the_origin_load() {
    let mut clock = Clock::new();
    let mut idx = probed(2, ProbePolicy::default(), &mut clock);
    let t = target(&idx, "origin-0");
    let load_of = |idx: &Index| {
        idx.origins(&pool())
            .unwrap()
            .into_iter()
            .find(|o| o.id == "origin-0")
            .and_then(|o| o.load)
    };
    assert_eq!(load_of(&idx), None);
    let answer = |healthy, load| ProbeResult { healthy, load };
    idx.apply_probe(&t, answer(true, Some(0.25)), clock.tick());
    let c = idx.commit(clock.tick());
    assert_eq!(only_delta(&c).upsert[0].id, "origin-0");
    assert_eq!(load_of(&idx), Load::quantize(0.25));
    // A failure says nothing about load: the last report stands.
    idx.apply_probe(&t, answer(false, None), clock.tick());
    assert!(idx.commit(clock.tick()).changes.is_empty());
    assert_eq!(load_of(&idx), Load::quantize(0.25));
    // A healthy answer without `Origin-Load`: unknown again, once the hold is over.
    idx.apply_probe(&t, answer(true, None), clock.advance(LOAD_HOLD));
    idx.commit(clock.tick());
    assert_eq!(load_of(&idx), None);
}

#[test]
fn results_for_pools_or_endpoints_not_probed_are_ignored() {
    let mut clock = Clock::new();
    let mut idx = seeded(2, &mut clock);
    let t = ProbeTarget {
        pool: pool(),
        id: "origin-0".into(),
        address: "10.0.0.0".into(),
        port: 5080,
        kind: ProbeKind::Http,
        path: "/".into(),
    };
    for _ in 0..3 {
        idx.apply_probe(
            &t,
            ProbeResult {
                healthy: false,
                load: None,
            },
            clock.tick(),
        );
    }
    assert!(idx.commit(clock.tick()).changes.is_empty());
    let other = ProbeTarget {
        pool: PoolId::new("demo", "nope"),
        ..t
    };
    idx.apply_probe(
        &other,
        ProbeResult {
            healthy: false,
            load: None,
        },
        clock.tick(),
    );
    assert!(idx.commit(clock.tick()).changes.is_empty());
    assert_eq!(ids(&idx).len(), 2);
}
