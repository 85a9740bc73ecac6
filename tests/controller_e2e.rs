//! End-to-end behaviour of the controller against the simulated cluster: real HTTP watch
//! streams, real kube client, real WebSocket subscribers.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_sim::testing::next_event as sim_event;
use kube_sim::{EventType, SimEvent};
use origin_discovery_core::messages::Message;
use origin_discovery_core::model::{Delta, OriginState, PoolId};
use origin_discovery_testkit::client::Watch;
use origin_discovery_testkit::stack::*;
use origin_discovery_testkit::{eventually, http, metric, WAIT};
use serde_json::json;

fn pod(name: &str, labels: serde_json::Value, annotations: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "demo", "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "origin", "image": "origin:sim", "ports": [{"name": "ws", "containerPort": 5080}]}]}
    }))
    .unwrap()
}

fn service(name: &str, labels: serde_json::Value, selector: Option<serde_json::Value>) -> Service {
    let mut spec = json!({"ports": [{"name": "ws", "port": 5080, "targetPort": "ws"}]});
    if let Some(sel) = selector {
        spec["selector"] = sel;
    }
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "demo", "labels": labels}, "spec": spec}),
    )
    .unwrap()
}

fn is_slice_of(ev: &SimEvent, svc: &str) -> bool {
    ev.resource == "endpointslices"
        && ev.object["metadata"]["labels"]["kubernetes.io/service-name"].as_str() == Some(svc)
}

/// Reads messages until a delta arrives; fails on anything but heartbeats in between.
async fn next_delta(w: &mut Watch) -> (Message, Instant) {
    loop {
        match w.next_within(WAIT).await.expect("message").expect("open") {
            Message::Heartbeat { .. } => continue,
            m @ Message::Delta(Delta { .. }) => return (m, Instant::now()),
            other => panic!("expected a delta, got {other:?}"),
        }
    }
}

/// Ping/pong as a barrier: every message the server sent before the pong is read first.
/// Returns the messages seen before the pong (heartbeats excluded).
async fn drain_until_pong(w: &mut Watch) -> Vec<Message> {
    w.send_text(r#"{"type":"ping"}"#.into()).await.unwrap();
    let mut seen = vec![];
    loop {
        match w.next_within(WAIT).await.expect("message").expect("open") {
            Message::Pong { .. } => return seen,
            Message::Heartbeat { .. } => {}
            other => seen.push(other),
        }
    }
}

#[tokio::test]
async fn seeded_pool_lists_three_ready_origins() {
    let stack = start(Duration::ZERO, &[]).await;
    eventually("three ready origins", || async {
        let s = stack.snapshot(&demo()).await;
        s["origins"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["state"] == "ready")
            .count()
            == 3
    })
    .await;
    let s = stack.snapshot(&demo()).await;
    assert_eq!(s["origins"][0]["zone"], "zone-a");
    assert_eq!(s["origins"][0]["port"], 5080);
    stack.shutdown().await;
}

#[tokio::test]
async fn graceful_delete_marks_origin_draining_before_slice_update() {
    let stack = start(Duration::from_secs(1), &[]).await;
    let mut w = stack.watch(&demo()).await;
    w.wait_for(WAIT, |s| {
        s.origins
            .values()
            .filter(|o| o.state == OriginState::Ready)
            .count()
            == 3
    })
    .await
    .unwrap();
    let mut events = stack.sim.subscribe();
    stack
        .sim
        .delete_pod("demo", "origin-1", Some(Duration::from_secs(30)))
        .unwrap();
    let pod_event = sim_event(&mut events, "pod deletionTimestamp", |e| {
        e.resource == "pods" && e.name == "origin-1"
    })
    .await;
    let (delta, got) = next_delta(&mut w).await;
    let Message::Delta(Delta { upsert, .. }) = delta else {
        unreachable!()
    };
    assert_eq!(upsert.len(), 1);
    assert_eq!(upsert[0].id, "origin-1");
    assert_eq!(upsert[0].state, OriginState::Draining);
    let latency = got.duration_since(pod_event.at);
    let slice_event = sim_event(&mut events, "slice update", |e| is_slice_of(e, "origin")).await;
    assert!(
        got < slice_event.at,
        "draining must be pushed before the EndpointSlice changes"
    );
    println!(
        "pod event → draining pushed: {latency:?}; slice updated {:?} after the pod event",
        slice_event.at - pod_event.at
    );
    assert!(latency < Duration::from_millis(500), "{latency:?}");
    stack.shutdown().await;
}

#[tokio::test]
async fn crash_removes_origin_before_slice_update() {
    let stack = start(Duration::from_secs(1), &[]).await;
    let mut w = stack.watch(&demo()).await;
    w.wait_for(WAIT, |s| s.origins.len() == 3).await.unwrap();
    let mut events = stack.sim.subscribe();
    stack.sim.crash_pod("demo", "origin-2").unwrap();
    let pod_event = sim_event(&mut events, "pod crash", |e| {
        e.resource == "pods" && e.name == "origin-2"
    })
    .await;
    let (delta, got) = next_delta(&mut w).await;
    assert!(
        matches!(&delta, Message::Delta(Delta { remove, .. }) if remove == &vec!["origin-2".to_string()]),
        "{delta:?}"
    );
    let slice_event = sim_event(&mut events, "slice update", |e| is_slice_of(e, "origin")).await;
    assert!(got < slice_event.at);
    println!(
        "pod crash → removal pushed: {:?}",
        got.duration_since(pod_event.at)
    );
    // The slice catching up publishes nothing new, and the signal lead was measured.
    assert!(drain_until_pong(&mut w).await.is_empty());
    eventually("signal lead recorded", || async {
        metric(
            &stack.metrics().await,
            "origin_discovery_signal_lead_seconds_count",
            &[],
        ) >= 1.0
    })
    .await;
    stack.shutdown().await;
}

#[tokio::test]
async fn recovered_pod_is_readded_only_once_its_slice_endpoint_is_ready() {
    let stack = start(Duration::from_millis(500), &[]).await;
    let mut w = stack.watch(&demo()).await;
    w.wait_for(WAIT, |s| s.origins.len() == 3).await.unwrap();
    let mut events = stack.sim.subscribe();
    stack.sim.crash_pod("demo", "origin-0").unwrap();
    w.wait_for(WAIT, |s| !s.origins.contains_key("origin-0"))
        .await
        .unwrap();
    sim_event(&mut events, "the slice marks origin-0 not ready", |e| {
        is_slice_of(e, "origin")
            && e.object["endpoints"].as_array().unwrap().iter().any(|ep| {
                ep["targetRef"]["name"] == "origin-0" && ep["conditions"]["ready"] == false
            })
    })
    .await;
    stack.sim.recover_pod("demo", "origin-0").unwrap();
    let (delta, got) = next_delta(&mut w).await;
    assert!(
        matches!(&delta, Message::Delta(Delta { upsert, .. }) if upsert[0].id == "origin-0" && upsert[0].state == OriginState::Ready)
    );
    // The slice must have said ready before we re-added it.
    let mut slice_ready_at = None;
    while let Ok(ev) = events.try_recv() {
        if is_slice_of(&ev, "origin") {
            let ready =
                ev.object["endpoints"].as_array().unwrap().iter().any(|e| {
                    e["targetRef"]["name"] == "origin-0" && e["conditions"]["ready"] == true
                });
            if ready && slice_ready_at.is_none() {
                slice_ready_at = Some(ev.at);
            }
        }
    }
    let slice_ready_at = slice_ready_at.expect("the slice said ready before the re-add");
    assert!(slice_ready_at <= got);
    stack.shutdown().await;
}

#[tokio::test]
async fn all_slices_of_a_service_with_more_than_100_endpoints_are_merged() {
    let stack = start(Duration::ZERO, &[]).await;
    stack
        .sim
        .create(&service(
            "big",
            json!({"origin-discovery.io/enabled": "true"}),
            Some(json!({"app": "big"})),
        ))
        .unwrap();
    for i in 0..150 {
        stack
            .sim
            .create(&pod(&format!("big-{i}"), json!({"app": "big"}), json!({})))
            .unwrap();
    }
    let big = PoolId::new("demo", "big");
    eventually("150 ready origins", || async {
        let (status, s) = stack.get("/v1/pools/demo/big").await;
        status == 200
            && s["origins"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| o["state"] == "ready")
                .count()
                == 150
    })
    .await;
    let slices = stack.sim.list::<EndpointSlice>(Some("demo"));
    let big_slices = slices
        .iter()
        .filter(|s| s.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"] == "big")
        .count();
    assert!(
        big_slices >= 2,
        "the simulator split the Service into {big_slices} slices"
    );
    let _ = big;
    stack.shutdown().await;
}

#[tokio::test]
async fn relist_and_watch_restarts_with_unchanged_objects_publish_nothing() {
    let stack = start(Duration::ZERO, &[]).await;
    let mut w = stack.watch(&demo()).await;
    w.wait_for(WAIT, |s| s.origins.len() == 3).await.unwrap();
    let revision = w.state.revision;
    let restarts = |m: &str| metric(m, "origin_discovery_watch_restarts_total", &[]);
    let before = restarts(&stack.metrics().await);
    // Dropped watches resume from their resourceVersion; the one that gets 410 Gone relists.
    // Each round also waits for all three watches (services, endpointslices, pods) to be
    // open again, so that no re-open of an earlier round lands in the next one.
    for n in 1..=3 {
        let opened = stack.sim.watches_opened();
        stack.sim.faults().gone_next_watch();
        stack.sim.faults().drop_watches();
        eventually("a relist, and every watch open again", || async {
            restarts(&stack.metrics().await) >= before + n as f64
                && stack.sim.watches_opened() >= opened + 3
        })
        .await;
    }
    // And a plain dropped watch (resumed without a relist) publishes nothing either. The
    // resumed watches are idle, so "resumed" is read off the simulator: every one of the
    // controller's watches (services, endpointslices, pods) opened a new stream.
    let opened = stack.sim.watches_opened();
    stack.sim.faults().drop_watches();
    let mut changes = stack.sim.subscribe();
    kube_sim::testing::until(&mut changes, "the 3 watches resumed", || {
        stack.sim.watches_opened() >= opened + 3
    })
    .await;
    assert_eq!(
        drain_until_pong(&mut w).await,
        vec![],
        "a relist must not flap origins"
    );
    assert_eq!(w.state.revision, revision);
    assert_eq!(stack.snapshot(&demo()).await["revision"], revision);
    stack.shutdown().await;
}

#[tokio::test]
async fn unlabelled_or_deleted_service_removes_the_pool_and_a_new_labelled_one_appears() {
    let stack = start(Duration::ZERO, &[]).await;
    stack
        .sim
        .create(&service(
            "extra",
            json!({"origin-discovery.io/enabled": "true"}),
            Some(json!({"app": "origin"})),
        ))
        .unwrap();
    let extra = PoolId::new("demo", "extra");
    eventually("new pool listed", || async {
        stack.get("/v1/pools/demo/extra").await.0 == 200
    })
    .await;
    let mut w = stack.watch(&extra).await;
    // Unlabel it.
    let mut svc: Service = stack.sim.get(Some("demo"), "extra").unwrap();
    svc.metadata.labels = None;
    stack.sim.replace(&svc).unwrap();
    loop {
        match w.next_within(WAIT).await.unwrap() {
            Ok(Message::Removed { .. }) => break,
            Ok(_) => continue,
            Err(closed) => panic!("closed before the removed message: {closed:?}"),
        }
    }
    let closed = w.next_within(WAIT).await.unwrap().unwrap_err();
    assert_eq!(closed.code, Some(1000));
    assert_eq!(stack.get("/v1/pools/demo/extra").await.0, 404);
    // Deleting the labelled demo Service removes that pool too.
    stack.sim.delete::<Service>(Some("demo"), "origin").unwrap();
    eventually("demo pool gone", || async {
        stack.get("/v1/pools/demo/origin").await.0 == 404
    })
    .await;
    let (_, pools) = stack.get("/v1/pools").await;
    assert_eq!(pools["pools"], json!([]));
    stack.shutdown().await;
}

#[tokio::test]
async fn explicit_service_flag_makes_an_unlabelled_service_a_pool() {
    let sim = kube_sim::Sim::start(sim_config(Duration::ZERO))
        .await
        .unwrap();
    sim.seed_demo().unwrap();
    sim.create(&service("plain", json!({}), Some(json!({"app": "origin"}))))
        .unwrap();
    let stack = start_on(sim, &["--service", "demo/plain"]).await;
    eventually("explicit pool listed", || async {
        let (s, b) = stack.get("/v1/pools/demo/plain").await;
        s == 200 && b["origins"].as_array().unwrap().len() == 3
    })
    .await;
    stack.shutdown().await;
}

#[tokio::test]
async fn apiserver_down_keeps_the_list_marks_it_stale_and_recovers_without_spurious_deltas() {
    let stack = start(Duration::ZERO, &["--stale-after", "300ms"]).await;
    let mut w = stack.watch(&demo()).await;
    w.wait_for(WAIT, |s| s.origins.len() == 3).await.unwrap();
    let revision = w.state.revision;
    stack.sim.stop().await;
    w.wait_for(WAIT, |s| s.stale).await.unwrap();
    let snap = stack.snapshot(&demo()).await;
    assert_eq!(snap["stale"], true);
    assert_eq!(
        snap["origins"].as_array().unwrap().len(),
        3,
        "never empty a pool because the control plane is down"
    );
    assert_eq!(
        metric(&stack.metrics().await, "origin_discovery_stale", &[]),
        1.0
    );
    stack.sim.restart().await.unwrap();
    w.wait_for(WAIT, |s| !s.stale).await.unwrap();
    assert_eq!(stack.snapshot(&demo()).await["stale"], false);
    assert_eq!(drain_until_pong(&mut w).await, vec![]);
    assert_eq!(w.state.revision, revision, "no spurious deltas");
    stack.shutdown().await;
}

#[tokio::test]
async fn after_an_apiserver_restart_a_change_reaches_subscribers_within_a_second_and_stale_clears_only_with_every_watch_live(
) {
    let stack = start(Duration::ZERO, &["--stale-after", "300ms"]).await;
    let mut w = stack.watch(&demo()).await;
    w.wait_for(WAIT, |s| s.origins.len() == 3).await.unwrap();
    let errors = |m: &str, resource: &str| {
        metric(
            m,
            "origin_discovery_watch_errors_total",
            &[&format!("resource=\"{resource}\"")],
        )
    };
    let before = stack.metrics().await;
    stack.sim.stop().await;
    w.wait_for(WAIT, |s| s.stale).await.unwrap();
    // A real outage: every watch has failed three times, so kube's back-off is at ~3.2 s.
    eventually("the watch back-off grew", || async {
        let m = stack.metrics().await;
        ["services", "endpointslices", "pods"]
            .iter()
            .all(|r| errors(&m, r) >= errors(&before, r) + 3.0)
    })
    .await;
    let opened = stack.sim.watches_opened();
    stack.sim.restart().await.unwrap();
    let restarted = Instant::now();
    stack.sim.crash_pod("demo", "origin-0").unwrap();
    let mut pushed = None;
    let mut reopened_when_fresh = None;
    while pushed.is_none() || reopened_when_fresh.is_none() {
        match w.next_within(WAIT).await.expect("message").expect("open") {
            Message::Stale { stale: false, .. } => {
                reopened_when_fresh = Some(stack.sim.watches_opened() - opened);
            }
            _ if pushed.is_none() && !w.state.origins.contains_key("origin-0") => {
                pushed = Some(restarted.elapsed());
            }
            _ => {}
        }
    }
    let pushed = pushed.unwrap();
    println!("a change right after the apiserver restart reached the subscriber {pushed:?} after the restart");
    assert!(
        pushed < Duration::from_secs(1),
        "pushed {pushed:?} after the restart"
    );
    assert!(
        reopened_when_fresh.unwrap() >= 3,
        "stale cleared when only {reopened_when_fresh:?} of the 3 watches had re-opened"
    );
    assert!(!w.state.stale);
    stack.shutdown().await;
}

#[tokio::test]
async fn endpoints_without_target_ref_are_keyed_ip_port_and_ipv6_works() {
    let stack = start(Duration::ZERO, &[]).await;
    let mut svc = service(
        "manual",
        json!({"origin-discovery.io/enabled": "true"}),
        None,
    );
    svc.metadata.annotations = Some(
        [(
            "origin-discovery.io/url-template".to_string(),
            "ws://[{ip}]:{port}/live".to_string(),
        )]
        .into(),
    );
    stack.sim.create(&svc).unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "manual-1", "namespace": "demo", "labels": {"kubernetes.io/service-name": "manual"}},
        "addressType": "IPv6",
        "ports": [{"name": "ws", "port": 5080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["fd00::10"], "conditions": {"ready": true}},
            {"addresses": ["fd00::11"], "conditions": {"ready": false, "serving": true, "terminating": true}}
        ]
    }))
    .unwrap();
    stack.sim.create(&slice).unwrap();
    eventually("manual pool with two origins", || async {
        let (s, b) = stack.get("/v1/pools/demo/manual").await;
        s == 200 && b["origins"].as_array().unwrap().len() == 2
    })
    .await;
    let b = stack.snapshot(&PoolId::new("demo", "manual")).await;
    assert_eq!(b["origins"][0]["id"], "[fd00::10]:5080");
    assert_eq!(b["origins"][0]["ip"], "fd00::10");
    assert_eq!(b["origins"][0]["url"], "ws://[fd00::10]:5080/live");
    assert_eq!(b["origins"][1]["id"], "[fd00::11]:5080");
    assert_eq!(b["origins"][1]["state"], "draining");
    stack.shutdown().await;
}

#[tokio::test]
async fn pod_url_annotation_is_used_and_a_malformed_one_is_ignored_but_listed() {
    let stack = start(Duration::ZERO, &[]).await;
    stack
        .sim
        .create(&pod(
            "good",
            json!({"app": "origin"}),
            json!({"origin-discovery.io/url": "wss://203.0.113.7:5443/LiveApp/websocket"}),
        ))
        .unwrap();
    stack
        .sim
        .create(&pod(
            "bad",
            json!({"app": "origin"}),
            json!({"origin-discovery.io/url": "::not a url::"}),
        ))
        .unwrap();
    eventually("five origins", || async {
        stack.snapshot(&demo()).await["origins"]
            .as_array()
            .unwrap()
            .len()
            == 5
    })
    .await;
    let s = stack.snapshot(&demo()).await;
    let find = |id: &str| {
        s["origins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        find("good")["url"],
        "wss://203.0.113.7:5443/LiveApp/websocket"
    );
    assert_eq!(find("bad")["state"], "ready");
    assert!(find("bad").get("url").is_none());
    stack.shutdown().await;
}

#[tokio::test]
async fn dead_node_removes_its_origins_before_kubernetes_marks_it() {
    let stack = start(
        Duration::ZERO,
        &["--node-signals", "--node-lease-grace", "500ms"],
    )
    .await;
    let mut w = stack.watch(&demo()).await;
    w.wait_for(WAIT, |s| s.origins.len() == 3).await.unwrap();
    let mut events = stack.sim.subscribe();
    let killed = Instant::now();
    stack.sim.kill_node("node-b").unwrap();
    w.wait_for(WAIT, |s| !s.origins.contains_key("origin-1"))
        .await
        .unwrap();
    let removed_after = killed.elapsed();
    // The simulator marks the node Unknown only after its 5 s monitor grace.
    let unknown = sim_event(&mut events, "node marked not ready", |e| {
        e.resource == "nodes" && e.name == "node-b" && e.event_type == EventType::Modified
    })
    .await;
    assert!(
        unknown.at.duration_since(killed) > removed_after,
        "lease expiry must beat the node lifecycle controller"
    );
    println!(
        "node death → origin removed after {removed_after:?} (node NotReady after {:?})",
        unknown.at.duration_since(killed)
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn readiness_and_api_wait_for_the_first_full_sync() {
    let sim = kube_sim::Sim::start(sim_config(Duration::ZERO))
        .await
        .unwrap();
    sim.seed_demo().unwrap();
    sim.stop().await;
    let settings = origin_discovery::app::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        controller: controller_args(&[]),
    };
    let running = origin_discovery::app::start(settings, sim.client().await)
        .await
        .unwrap();
    let (status, _) = http::get(&format!("http://{}/readyz", running.admin_addr))
        .await
        .unwrap();
    assert_eq!(status, 503);
    let (status, body) = http::get(&format!("http://{}/v1/pools", running.api_addr))
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("not_synced"))
    );
    assert_eq!(
        http::get(&format!("http://{}/healthz", running.admin_addr))
            .await
            .unwrap()
            .0,
        200
    );
    sim.restart().await.unwrap();
    eventually("ready after the apiserver is back", || async {
        http::get(&format!("http://{}/readyz", running.admin_addr))
            .await
            .map(|r| r.0 == 200)
            .unwrap_or(false)
    })
    .await;
    running.shutdown.cancel();
    running.wait().await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn metrics_report_origins_subscribers_push_latency_and_watch_health() {
    let stack = start(Duration::ZERO, &[]).await;
    let mut w = stack.watch(&demo()).await;
    w.wait_for(WAIT, |s| s.origins.len() == 3).await.unwrap();
    stack.sim.crash_pod("demo", "origin-0").unwrap();
    w.wait_for(WAIT, |s| s.origins.len() == 2).await.unwrap();
    eventually("push latency observed", || async {
        metric(
            &stack.metrics().await,
            "origin_discovery_push_latency_seconds_count",
            &["websocket"],
        ) >= 1.0
    })
    .await;
    let m = stack.metrics().await;
    assert_eq!(
        metric(
            &m,
            "origin_discovery_origins",
            &["demo/origin", "state=\"ready\""]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "origin_discovery_origins",
            &["demo/origin", "state=\"draining\""]
        ),
        0.0
    );
    assert_eq!(
        metric(&m, "origin_discovery_subscribers", &["websocket"]),
        1.0
    );
    assert_eq!(metric(&m, "origin_discovery_stale", &[]), 0.0);
    for name in [
        "origin_discovery_signal_lead_seconds",
        "origin_discovery_watch_restarts_total",
        "origin_discovery_watch_events_total",
        "origin_discovery_watch_errors_total",
    ] {
        assert!(
            m.contains(&format!("# TYPE {}", name.trim_end_matches("_total"))),
            "{name} missing:\n{m}"
        );
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_held_load_change_is_published_once_its_hold_is_over_without_node_signals() {
    // Load changes publish at most once per hold (docs/DESIGN.md, "Weights and load"); the
    // held one must go out when the hold ends even if nothing else happens — no further pod
    // event, and no node signals (whose one-second tick used to be the only one).
    let stack = start(Duration::ZERO, &[]).await;
    let load = |s: &serde_json::Value| {
        s["origins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == "loaded")
            .and_then(|o| o["load"].as_f64())
    };
    stack
        .sim
        .create(&pod(
            "loaded",
            json!({"app": "origin"}),
            json!({"origin-discovery.io/load": "0.2"}),
        ))
        .unwrap();
    eventually("the first load is published at once", || async {
        load(&stack.snapshot(&demo()).await) == Some(0.2)
    })
    .await;
    let mut p: Pod = stack.sim.get(Some("demo"), "loaded").unwrap();
    p.metadata
        .annotations
        .get_or_insert_default()
        .insert("origin-discovery.io/load".into(), "0.8".into());
    stack.sim.replace(&p).unwrap();
    let changed = Instant::now();
    eventually("the held load is published after the hold", || async {
        load(&stack.snapshot(&demo()).await) == Some(0.8)
    })
    .await;
    assert!(
        changed.elapsed() >= Duration::from_secs(3),
        "the second change came {:?} after the first: it should have been held",
        changed.elapsed()
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn the_weight_annotation_reaches_the_snapshot_and_the_pick_ranking() {
    let stack = start(Duration::ZERO, &[]).await;
    stack
        .sim
        .create(&pod(
            "heavy",
            json!({"app": "origin"}),
            json!({"origin-discovery.io/weight": "9"}),
        ))
        .unwrap();
    let weight_of = |s: &serde_json::Value, id: &str| {
        s.as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .map(|o| o["weight"].clone())
    };
    eventually("the weighted origin is listed with its weight", || async {
        let snapshot = stack.snapshot(&demo()).await;
        weight_of(&snapshot["origins"], "heavy") == Some(json!(9))
            && snapshot["origins"].as_array().unwrap().len() == 4
    })
    .await;
    // Weight 9 against three of weight 1 (omitted from JSON): it ranks first for most keys.
    let mut first = 0;
    for k in 0..200 {
        let (status, body) = stack
            .get(&format!(
                "/v1/pools/demo/origin/pick?key=stream-{k}&count=4"
            ))
            .await;
        assert_eq!(status, 200);
        let targets = &body["targets"];
        assert_eq!(weight_of(targets, "heavy"), Some(json!(9)));
        assert_eq!(
            weight_of(targets, "origin-0"),
            Some(serde_json::Value::Null)
        );
        if targets[0]["id"] == "heavy" {
            first += 1;
        }
    }
    // Its share is 9/12 in expectation: 150 of 200 keys, far from the 50 of equal weights.
    assert!(
        (120..=180).contains(&first),
        "first for {first} of 200 keys"
    );
    stack.shutdown().await;
}
