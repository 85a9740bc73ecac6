//! Unit tests of weights and load in the origin index: the load filter on a fake clock, and
//! annotations and probe reports through signals and commits (docs/DESIGN.md, "Weights and load").

use std::time::{Duration, Instant};

use chrono::Utc;

use super::*;

fn sample(f: f64) -> Option<LoadSample> {
    Some(LoadSample::from_fraction(f).unwrap())
}

fn steps(l: Option<Load>) -> Option<u8> {
    l.map(Load::steps)
}

#[test]
fn filter_publishes_the_first_sample_at_once_quantized_to_twentieths() {
    let t0 = Instant::now();
    let mut f = LoadFilter::default();
    assert_eq!(f.observe(None, t0), None);
    assert_eq!(steps(f.observe(sample(0.34), t0)), Some(7), "0.34 → 0.35");
    assert_eq!(steps(f.published()), Some(7));
    assert_eq!(f.release_at(), None);
}

#[test]
fn filter_changes_at_most_once_per_hold_and_releases_the_held_value_after_it() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut f = LoadFilter::default();
    f.observe(sample(0.2), t0);
    // A real change 1 s later is held…
    assert_eq!(steps(f.observe(sample(0.6), t0 + s)), Some(4));
    assert_eq!(f.release_at(), Some(t0 + LOAD_HOLD));
    // …the latest sample counts when the hold ends, not the first one that was held.
    assert_eq!(steps(f.observe(sample(0.8), t0 + 3 * s)), Some(4));
    assert_eq!(
        steps(f.observe(sample(0.8), t0 + LOAD_HOLD - Duration::from_millis(1))),
        Some(4)
    );
    assert_eq!(steps(f.observe(sample(0.8), t0 + LOAD_HOLD)), Some(16));
    assert_eq!(f.release_at(), None);
    // A wanted change that goes away again during the hold leaves nothing held.
    assert_eq!(steps(f.observe(sample(0.1), t0 + LOAD_HOLD + s)), Some(16));
    assert!(f.release_at().is_some());
    assert_eq!(
        steps(f.observe(sample(0.8), t0 + LOAD_HOLD + 2 * s)),
        Some(16)
    );
    assert_eq!(f.release_at(), None);
}

#[test]
fn filter_ignores_a_load_hovering_at_a_step_boundary() {
    let t0 = Instant::now();
    let mut f = LoadFilter::default();
    f.observe(sample(0.30), t0); // step 6
    let mut t = t0;
    // 0.325 is the boundary between 0.30 and 0.35; ±0.01 around it never changes the level,
    // however long it lasts.
    for i in 0..100 {
        t += Duration::from_secs(6);
        let f_i = if i % 2 == 0 { 0.335 } else { 0.315 };
        assert_eq!(steps(f.observe(sample(f_i), t)), Some(6), "sample {f_i}");
    }
    // 3/4 of a step away (0.3375) does change it, to the nearest step.
    t += LOAD_HOLD;
    assert_eq!(steps(f.observe(sample(0.3375), t)), Some(7));
    // …and back down needs 0.35 − 0.0375 = 0.3125.
    t += LOAD_HOLD;
    assert_eq!(steps(f.observe(sample(0.3126), t)), Some(7));
    assert_eq!(steps(f.observe(sample(0.3125), t)), Some(6));
}

#[test]
fn filter_forgets_the_load_when_reports_stop_subject_to_the_hold() {
    let t0 = Instant::now();
    let mut f = LoadFilter::default();
    f.observe(sample(1.0), t0);
    assert_eq!(
        steps(f.observe(None, t0 + Duration::from_secs(1))),
        Some(20)
    );
    assert_eq!(f.observe(None, t0 + LOAD_HOLD), None);
}

// ---------------------------------------------------------------------------------------
// Through the index

fn pool() -> PoolId {
    PoolId::new("demo", "origin")
}

/// Fake time: stamps at `t0 + offset`.
struct Clock(Instant);

impl Clock {
    fn at(&self, offset: Duration) -> Stamp {
        Stamp {
            at: self.0 + offset,
            wall: Utc::now(),
        }
    }
}

fn pod(name: &str, weight: u32, load: Option<f64>) -> PodInfo {
    PodInfo {
        namespace: "demo".into(),
        name: name.into(),
        node: None,
        deleting: false,
        down: false,
        url: None,
        weight,
        load: load.and_then(LoadSample::from_fraction),
    }
}

fn endpoint(name: &str, ip: &str) -> EndpointInfo {
    EndpointInfo {
        address: ip.into(),
        pod: Some(name.into()),
        node: None,
        zone: None,
        hostname: None,
        ready: true,
        serving: true,
        terminating: false,
    }
}

/// demo/origin with origin-0 (weight 3, load annotation 0.5) and origin-1 (no annotations).
fn seeded(clock: &Clock) -> Index {
    let mut idx = Index::new(IndexConfig {
        epoch: "e1".into(),
        node_lease_grace: Duration::from_secs(20),
    });
    let t = clock.at(Duration::ZERO);
    idx.apply_service(
        ServiceInfo {
            pool: pool(),
            port: PortChoice::Name("ws".into()),
            url_template: None,
            probe: Default::default(),
        },
        t,
    );
    idx.apply_slice(
        SliceInfo {
            service: pool(),
            name: "s".into(),
            ports: vec![SlicePort {
                name: "ws".into(),
                port: 5080,
            }],
            endpoints: vec![
                endpoint("origin-0", "10.0.0.1"),
                endpoint("origin-1", "10.0.0.2"),
            ],
        },
        t,
    );
    idx.apply_pod(pod("origin-0", 3, Some(0.5)), t);
    idx.apply_pod(pod("origin-1", 1, None), t);
    idx.commit(t);
    idx
}

fn origin(idx: &Index, id: &str) -> Origin {
    idx.origins(&pool())
        .unwrap()
        .into_iter()
        .find(|o| o.id == id)
        .unwrap()
}

fn upserts(c: &Commit) -> Vec<Origin> {
    c.changes
        .iter()
        .flat_map(|c| match c {
            PoolChange::Updated { delta, .. } => delta.upsert.clone(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn pod_annotations_give_the_origin_its_weight_and_load() {
    let clock = Clock(Instant::now());
    let idx = seeded(&clock);
    let o0 = origin(&idx, "origin-0");
    assert_eq!((o0.weight, steps(o0.load)), (3, Some(10)));
    let o1 = origin(&idx, "origin-1");
    assert_eq!((o1.weight, o1.load), (1, None));
    let json = serde_json::to_value(&o1).unwrap();
    assert!(json.get("weight").is_none() && json.get("load").is_none());
}

#[test]
fn a_probe_report_wins_over_the_annotation_and_falls_back_to_it_when_absent() {
    let clock = Clock(Instant::now());
    let mut idx = seeded(&clock);
    let t = |s| clock.at(Duration::from_secs(s));
    idx.set_load(&pool(), "origin-0", Some(0.9), t(6));
    let c = idx.commit(t(6));
    assert_eq!(upserts(&c).len(), 1);
    assert_eq!(steps(origin(&idx, "origin-0").load), Some(18));
    // The same report again changes nothing and publishes nothing.
    idx.set_load(&pool(), "origin-0", Some(0.9), t(7));
    assert!(idx.commit(t(7)).changes.is_empty());
    // A probe without the header: the annotation (0.5) applies again, after the hold.
    idx.set_load(&pool(), "origin-0", None, t(12));
    idx.commit(t(12));
    assert_eq!(steps(origin(&idx, "origin-0").load), Some(10));
    // Garbage from a probe counts as no report.
    idx.set_load(&pool(), "origin-1", Some(f64::NAN), t(13));
    idx.commit(t(13));
    assert_eq!(origin(&idx, "origin-1").load, None);
    // Reports for unknown pools or endpoints are dropped.
    idx.set_load(&PoolId::new("demo", "other"), "origin-0", Some(0.1), t(14));
    idx.set_load(&pool(), "nobody", Some(0.1), t(14));
    assert!(idx.commit(t(14)).changes.is_empty());
}

#[test]
fn a_held_load_change_is_published_by_tick_when_the_hold_ends() {
    let clock = Clock(Instant::now());
    let mut idx = seeded(&clock);
    let t = |ms| clock.at(Duration::from_millis(ms));
    // The annotation changes 2 s after the first load was published: held.
    idx.apply_pod(pod("origin-0", 3, Some(0.9)), t(2_000));
    assert!(idx.commit(t(2_000)).changes.is_empty());
    idx.tick(t(4_999));
    assert!(
        idx.commit(t(4_999)).changes.is_empty(),
        "still within the hold"
    );
    idx.tick(t(5_000));
    let c = idx.commit(t(5_000));
    let up = upserts(&c);
    assert_eq!(up.len(), 1);
    assert_eq!(
        (up[0].id.as_str(), steps(up[0].load)),
        ("origin-0", Some(18))
    );
    // Nothing is held any more: later ticks publish nothing.
    idx.tick(t(20_000));
    assert!(idx.commit(t(20_000)).changes.is_empty());
}

#[test]
fn a_prober_repeating_its_report_publishes_a_held_change_without_tick() {
    let clock = Clock(Instant::now());
    let mut idx = seeded(&clock);
    let t = |ms| clock.at(Duration::from_millis(ms));
    idx.set_load(&pool(), "origin-1", Some(0.2), t(0));
    idx.commit(t(0));
    // every 500 ms, as a prober would: 0.2, then 0.8 from 1 s on
    let mut published = Vec::new();
    for i in 1..=14 {
        let now = t(i * 500);
        idx.set_load(
            &pool(),
            "origin-1",
            Some(if i >= 2 { 0.8 } else { 0.2 }),
            now,
        );
        for o in upserts(&idx.commit(now)) {
            published.push((i * 500, steps(o.load)));
        }
    }
    assert_eq!(
        published,
        vec![(5_000, Some(16))],
        "once, when the hold ended"
    );
}

#[test]
fn a_weight_change_is_published_at_once_and_keeps_since() {
    let clock = Clock(Instant::now());
    let mut idx = seeded(&clock);
    let before = origin(&idx, "origin-1").since;
    let t = clock.at(Duration::from_millis(10));
    idx.apply_pod(pod("origin-1", 5, None), t);
    let up = upserts(&idx.commit(t));
    assert_eq!((up.len(), up[0].weight, up[0].since), (1, 5, before));
}

#[test]
fn load_state_goes_with_the_origin() {
    let clock = Clock(Instant::now());
    let mut idx = seeded(&clock);
    let t = |s| clock.at(Duration::from_secs(s));
    idx.set_load(&pool(), "origin-1", Some(0.4), t(1));
    idx.commit(t(1));
    idx.apply_pod(
        PodInfo {
            down: true,
            ..pod("origin-1", 1, None)
        },
        t(2),
    );
    idx.commit(t(2));
    let p = idx.services[&pool()].pool.as_ref().unwrap();
    assert!(
        !p.loads.contains_key("origin-1"),
        "no state kept for a removed origin"
    );
    // Back: the earlier probe report is gone with it, so the load is unknown until the next.
    idx.apply_pod(pod("origin-1", 1, None), t(3));
    idx.commit(t(3));
    assert_eq!(origin(&idx, "origin-1").load, None);
}
