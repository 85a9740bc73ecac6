//! The REST API over real HTTP: CRUD and optimistic concurrency, selectors, pagination,
//! patches and subresources, graceful deletes, `Status` errors for bad input, fault
//! injection, discovery and the bounded history.

use std::time::{Duration, Instant};

use crate::support::{get, raw, start};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube_sim::testing::{fast_config, tcp_request, until, WAIT};
use kube_sim::{Sim, SimConfig};
use serde_json::{json, Value};

fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("img".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn assert_status(v: &Value, code: u16, reason: &str) {
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
}

#[tokio::test]
async fn create_get_update_with_metadata_and_conflicts() {
    let sim = start().await;
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let a = api
        .create(&PostParams::default(), &pod("a", &[]))
        .await
        .unwrap();
    let b = api
        .create(&PostParams::default(), &pod("b", &[]))
        .await
        .unwrap();
    let rv_a: u64 = a
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    let rv_b: u64 = b
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv_b > rv_a, "one global increasing resourceVersion");
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, Some(1));
    assert_eq!(a.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));

    let err = api_error(
        api.create(&PostParams::default(), &pod("a", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));

    // Update with the current version succeeds; a spec change bumps generation.
    let mut fresh = api.get("a").await.unwrap();
    fresh.spec.as_mut().unwrap().containers[0].image = Some("img:2".into());
    let updated = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(2));
    // The stale copy now conflicts.
    let mut stale = a.clone();
    stale.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let err = api_error(
        api.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );

    let err = api_error(api.get("missing").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    let (code, v) = get(
        &sim.client().await,
        "/api/v1/namespaces/default/pods/missing",
    )
    .await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    assert_eq!(v["details"], json!({"name": "missing", "kind": "pods"}));

    let err = api_error(
        api.create(&PostParams::default(), &pod("Bad_Name", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let (code, v) = raw(&sim.client().await, "POST", "/api/v1/namespaces/default/pods", Some("application/json"),
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nocontainers"}, "spec": {"containers": []}})).unwrap()).await;
    assert_eq!(code, 422);
    assert_eq!(v["details"]["causes"][0]["field"], "spec.containers");

    // Unknown namespace.
    let other: Api<Pod> = Api::namespaced(sim.client().await, "nowhere");
    let err = api_error(
        other
            .create(&PostParams::default(), &pod("a", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists_and_watches() {
    let sim = start().await;
    let client = sim.client().await;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (n, app, tier) in [("p1", "web", "fe"), ("p2", "web", "be"), ("p3", "db", "be")] {
        api.create(
            &PostParams::default(),
            &pod(n, &[("app", app), ("tier", tier)]),
        )
        .await
        .unwrap();
    }
    api.create(&PostParams::default(), &pod("p4", &[]))
        .await
        .unwrap();
    let names = |l: kube::core::ObjectList<Pod>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect()
    };
    for (sel, want) in [
        ("app=web", vec!["p1", "p2"]),
        ("app==web,tier=be", vec!["p2"]),
        ("app!=web", vec!["p3", "p4"]),
        ("app in (db, web),tier notin (fe)", vec!["p2", "p3"]),
        ("app", vec!["p1", "p2", "p3"]),
        ("!app", vec!["p4"]),
    ] {
        let got = names(api.list(&ListParams::default().labels(sel)).await.unwrap());
        assert_eq!(got, want, "selector {sel}");
    }
    let got = names(
        api.list(&ListParams::default().fields("metadata.name=p3"))
            .await
            .unwrap(),
    );
    assert_eq!(got, ["p3"]);
    let got = names(
        api.list(&ListParams::default().fields("metadata.namespace=default,metadata.name!=p1"))
            .await
            .unwrap(),
    );
    assert_eq!(got, ["p2", "p3", "p4"]);
    let got = names(
        api.list(&ListParams::default().fields("spec.nodeName="))
            .await
            .unwrap(),
    );
    assert_eq!(got.len(), 4, "no nodes, so nothing is bound");

    let (code, v) = get(&client, "/api/v1/pods?labelSelector=app%20in%20(web").await;
    assert_eq!(code, 400);
    assert_status(&v, 400, "BadRequest");
    let (code, v) = get(&client, "/api/v1/pods?fieldSelector=spec.bogus%3Dx").await;
    assert_eq!(code, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("field label not supported"),
        "{v}"
    );

    // Watch with a selector: leaving the selection is DELETED, entering is ADDED.
    let mut w = api
        .watch(
            &WatchParams::default().labels("app=web").disable_bookmarks(),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    let mut initial = vec![];
    for _ in 0..2 {
        match tokio::time::timeout(WAIT, w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(p) => initial.push(p.metadata.name.unwrap()),
            other => panic!("{other:?}"),
        }
    }
    initial.sort();
    assert_eq!(initial, ["p1", "p2"]);
    let pp = PatchParams::default();
    api.patch(
        "p1",
        &pp,
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "p3",
        &pp,
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    let mut seen = vec![];
    while seen.len() < 2 {
        match tokio::time::timeout(WAIT, w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Deleted(p) => seen.push(format!("deleted {}", p.metadata.name.unwrap())),
            WatchEvent::Added(p) => seen.push(format!("added {}", p.metadata.name.unwrap())),
            WatchEvent::Modified(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, ["deleted p1", "added p3"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn pagination_splits_a_250_pod_list_consistently() {
    let sim = start().await;
    let client = sim.client().await;
    for i in 0..250 {
        sim.create(&pod(&format!("p{i:03}"), &[("app", "x")]))
            .unwrap();
    }
    let api: Api<Pod> = Api::all(client.clone());
    let first = api.list(&ListParams::default().limit(100)).await.unwrap();
    assert_eq!(first.items.len(), 100);
    let rv = first.metadata.resource_version.clone().unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(150));
    // A change between pages does not leak into later pages.
    sim.create(&pod("p999", &[])).unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    let second = api
        .list(&ListParams::default().limit(100).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(second.items.len(), 100);
    assert_eq!(
        second.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    let token = second.metadata.continue_.clone().unwrap();
    let third = api
        .list(&ListParams::default().limit(100).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(third.items.len(), 50);
    assert!(third
        .metadata
        .continue_
        .as_deref()
        .is_none_or(str::is_empty));
    let mut all: Vec<_> = [first, second, third]
        .into_iter()
        .flat_map(|l| l.items)
        .map(|p| p.metadata.name.unwrap())
        .collect();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (250, 250));

    let (code, v) = get(&client, "/api/v1/pods?limit=10&continue=zz").await;
    assert_eq!(code, 400, "{v}");
    // A full list (no limit) from /api/v1/pods, as the controller uses.
    let (code, v) = get(&client, "/api/v1/pods").await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "PodList");
    assert_eq!(v["items"].as_array().unwrap().len(), 251);
    assert!(v["metadata"]["resourceVersion"].as_str().is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn patches_and_status_subresource_behave_like_the_apiserver() {
    let sim = start().await;
    let client = sim.client().await;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &pod("a", &[("app", "x")]))
        .await
        .unwrap();
    let pp = PatchParams::default();

    let p = api
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"m": "1", "app": null}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        p.metadata.labels.unwrap(),
        [("m".to_string(), "1".to_string())].into()
    );
    let p = api
        .patch(
            "a",
            &pp,
            &Patch::Strategic(json!({"spec": {"containers": [{"name": "c", "image": "img:s"}]}})),
        )
        .await
        .unwrap();
    assert_eq!(
        p.spec.unwrap().containers[0].image.as_deref(),
        Some("img:s")
    );
    let p = api
        .patch(
            "a",
            &pp,
            &Patch::<()>::Json(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.annotations.unwrap()["k"], "v");

    // Status through the main resource is ignored; through /status it sticks.
    let p = api
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Failed"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
    let p = api
        .patch_status(
            "a",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    let p = api
        .patch_status(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"z": "1"}}})),
        )
        .await
        .unwrap();
    assert!(
        !p.metadata.labels.unwrap().contains_key("z"),
        "status writes ignore metadata"
    );

    // A patch naming a stale resourceVersion conflicts.
    let err = api_error(
        api.patch(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);

    let (code, v) = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/pods/a",
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, 415);
    assert_status(&v, 415, "UnsupportedMediaType");
    let (code, _) = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/pods/missing",
        Some("application/merge-patch+json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn api_deletes_are_graceful_and_honour_grace_period_seconds() {
    let sim = start().await;
    let mut rx = sim.subscribe();
    sim.seed_demo().unwrap();
    let api: Api<Pod> = Api::namespaced(sim.client().await, "demo");
    until(&mut rx, "origin-0 running", || {
        sim.get::<Pod>(Some("demo"), "origin-0")
            .and_then(|p| p.status?.pod_ip)
            .is_some()
    })
    .await;
    let res = api
        .delete("origin-0", &DeleteParams::default().grace_period(1))
        .await
        .unwrap();
    let terminating = res.left().expect("the terminating pod is returned");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(1));
    let start = Instant::now();
    until(&mut rx, "removal after grace", || {
        sim.get::<Pod>(Some("demo"), "origin-0").is_none()
    })
    .await;
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "removed after {:?}",
        start.elapsed()
    );

    api.delete("origin-1", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(
        sim.get::<Pod>(Some("demo"), "origin-1").is_none(),
        "grace 0 removes at once"
    );

    // Default grace comes from the pod (30 s here): it stays terminating.
    api.delete("origin-2", &DeleteParams::default())
        .await
        .unwrap();
    let p = sim.get::<Pod>(Some("demo"), "origin-2").unwrap();
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
    // A shorter grace period on a second delete shortens it.
    api.delete("origin-2", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(sim.get::<Pod>(Some("demo"), "origin-2").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_status_bodies_and_the_server_keeps_serving() {
    let sim = start().await;
    let c = sim.client().await;
    let post = |path: &'static str, body: Vec<u8>| {
        let c = c.clone();
        async move { raw(&c, "POST", path, Some("application/json"), body).await }
    };
    let (code, v) = post("/api/v1/namespaces/default/pods", b"{not json".to_vec()).await;
    assert_eq!(code, 400);
    assert_status(&v, 400, "BadRequest");
    let (code, v) = post("/api/v1/namespaces/default/pods", b"[1,2]".to_vec()).await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = post(
        "/api/v1/namespaces/default/pods",
        serde_json::to_vec(
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = get(&c, "/api/v1/widgets").await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    let (code, v) = get(&c, "/api/v2/pods").await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    let (code, _) = get(&c, "/apis/discovery.k8s.io/v1beta1/endpointslices").await;
    assert_eq!(code, 404);
    let (code, _) = get(&c, "/apis/nope.example.com/v1").await;
    assert_eq!(code, 404);
    let (code, v) = post(
        "/api/v1/namespaces/default/pods",
        vec![b' '; 4 * 1024 * 1024],
    )
    .await;
    assert_eq!(code, 413);
    assert_status(&v, 413, "RequestEntityTooLarge");
    let (code, v) = raw(
        &c,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/vnd.kubernetes.protobuf"),
        vec![0, 1, 2],
    )
    .await;
    assert_eq!(code, 415, "{v}");
    let (code, v) = get(&c, "/api/v1/pods?watch=1&resourceVersion=abc").await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = get(&c, "/api/v1/pods?watch=1&sendInitialEvents=true").await;
    assert_eq!(
        code, 422,
        "sendInitialEvents without bookmarks is rejected cleanly: {v}"
    );
    assert_status(&v, 422, "Invalid");
    let (code, _) = raw(
        &c,
        "PUT",
        "/api/v1/pods",
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, 405);
    // Still serving.
    let api: Api<Pod> = Api::namespaced(c.clone(), "default");
    api.create(&PostParams::default(), &pod("fine", &[]))
        .await
        .unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_failures_and_stalls_reach_clients() {
    let sim = start().await;
    let addr = sim.addr();
    let status = |body: &str| -> Value { serde_json::from_str(body).unwrap() };
    sim.faults().fail_next(2, 503);
    for _ in 0..2 {
        let r = tcp_request(addr, "GET", "/api/v1/namespaces").await;
        assert_eq!(r.status, 503);
        assert_status(&status(&r.body), 503, "ServiceUnavailable");
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(
        tcp_request(addr, "GET", "/api/v1/namespaces").await.status,
        200
    );
    sim.faults().fail_next(1, 429);
    let r = tcp_request(addr, "GET", "/api/v1/namespaces").await;
    assert_eq!(r.status, 429);
    assert_status(&status(&r.body), 429, "TooManyRequests");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Sim control calls are never failed.
    sim.faults().fail_next(1, 500);
    assert_eq!(
        tcp_request(addr, "POST", "/sim/v1/nodes/none/kill")
            .await
            .status,
        404
    );
    let r = tcp_request(addr, "GET", "/version").await;
    assert_eq!(r.status, 500);
    assert_status(&status(&r.body), 500, "InternalError");
    // kube's client retries 503s and gets through.
    sim.faults().fail_next(1, 503);
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    api.list(&ListParams::default()).await.unwrap();

    sim.faults().stall(Duration::from_millis(400));
    let t = Instant::now();
    assert_eq!(tcp_request(addr, "GET", "/version").await.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "stalled only {:?}",
        t.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn event_history_stays_bounded_and_old_versions_expire() {
    let sim = Sim::start(SimConfig {
        event_history: 50,
        ..fast_config()
    })
    .await
    .unwrap();
    let c = sim.client().await;
    for i in 0..200 {
        sim.create(&pod(&format!("p{i}"), &[])).unwrap();
    }
    assert!(sim.history_len() <= 50, "history has {}", sim.history_len());
    let (code, body) = raw(
        &c,
        "GET",
        "/api/v1/namespaces/default/pods?watch=1&resourceVersion=5&timeoutSeconds=5",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 200);
    // The whole body is the single ERROR event line.
    let line = body;
    assert_eq!(line["type"], "ERROR");
    assert_status(&line["object"], 410, "Expired");
    sim.shutdown().await;
}

#[tokio::test]
async fn discovery_documents_describe_the_served_kinds() {
    let sim = start().await;
    let c = sim.client().await;
    let (_, v) = get(&c, "/version").await;
    assert_eq!(v["major"], "1");
    let (_, v) = get(&c, "/api").await;
    assert_eq!(v["versions"], json!(["v1"]));
    let (_, v) = get(&c, "/api/v1").await;
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in ["namespaces", "pods", "pods/status", "services", "nodes"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let (_, v) = get(&c, "/apis").await;
    let groups: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["coordination.k8s.io", "discovery.k8s.io"]);
    let (_, v) = get(&c, "/apis/discovery.k8s.io/v1").await;
    assert_eq!(v["resources"][0]["kind"], "EndpointSlice");
    let (_, v) = get(&c, "/apis/coordination.k8s.io").await;
    assert_eq!(v["preferredVersion"]["version"], "v1");
    // kube's discovery client understands them.
    let d = kube::Discovery::new(c).run().await.unwrap();
    assert!(d.has_group("discovery.k8s.io"));
    sim.shutdown().await;
}

#[tokio::test]
async fn sim_control_endpoints_crash_and_recover_pods() {
    let sim = start().await;
    let mut rx = sim.subscribe();
    sim.seed_demo().unwrap();
    let c = sim.client().await;
    let ready = |sim: &Sim| {
        sim.get::<Pod>(Some("demo"), "origin-0")
            .and_then(|p| p.status?.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    until(&mut rx, "ready", || ready(&sim)).await;
    let (code, _) = raw(
        &c,
        "POST",
        "/sim/v1/namespaces/demo/pods/origin-0/crash",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 200);
    assert!(!ready(&sim));
    let (code, _) = raw(
        &c,
        "POST",
        "/sim/v1/namespaces/demo/pods/origin-0/recover",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 200);
    until(&mut rx, "ready again", || ready(&sim)).await;
    let (code, v) = raw(
        &c,
        "POST",
        "/sim/v1/namespaces/demo/pods/nope/crash",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    sim.shutdown().await;
}

/// Reads watch lines from a raw chunked response until `n` events arrived.
async fn watch_lines(client: &kube::Client, path: &str, n: usize) -> Vec<Value> {
    use http_body_util::BodyExt;
    let req = axum::http::Request::get(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        while out.len() < n {
            let frame = body.frame().await.expect("stream open").expect("frame");
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    out.push(serde_json::from_slice(&line).unwrap());
                }
            }
        }
    })
    .await
    .expect("watch events in time");
    out
}

#[tokio::test]
async fn watch_path_form_single_object_watch_and_deletecollection() {
    let sim = start().await;
    let c = sim.client().await;
    sim.create(&pod("a", &[("app", "x")])).unwrap();
    sim.create(&pod("b", &[("app", "x")])).unwrap();
    sim.create(&pod("c", &[])).unwrap();
    let ev = watch_lines(
        &c,
        "/api/v1/watch/namespaces/default/pods?labelSelector=app%3Dx",
        2,
    )
    .await;
    let mut names: Vec<_> = ev
        .iter()
        .map(|e| {
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    assert!(ev.iter().all(|e| e["type"] == "ADDED"));
    let ev = watch_lines(&c, "/api/v1/watch/namespaces/default/pods/c", 1).await;
    assert_eq!(ev[0]["object"]["metadata"]["name"], "c");
    let ev = watch_lines(
        &c,
        "/api/v1/namespaces/default/pods?watch=true&fieldSelector=metadata.name%3Db",
        1,
    )
    .await;
    assert_eq!(ev[0]["object"]["metadata"]["name"], "b");
    let ev = watch_lines(&c, "/api/v1/pods?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", 4).await;
    assert_eq!(ev[3]["type"], "BOOKMARK");
    assert_eq!(
        ev[3]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    let (code, v) = raw(
        &c,
        "DELETE",
        "/api/v1/namespaces/default/pods?labelSelector=app%3Dx&gracePeriodSeconds=0",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(sim.list::<Pod>(Some("default")).len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn written_kubeconfig_loads_into_a_working_kube_client() {
    let sim = start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        sim.url()
    );
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let api: Api<Pod> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &pod("via-kubeconfig", &[]))
        .await
        .unwrap();
    assert!(sim.get::<Pod>(Some("default"), "via-kubeconfig").is_some());
    sim.shutdown().await;
}
