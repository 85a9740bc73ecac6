//! kube-rs watchers against the simulator: initial list, events, recovery from dropped
//! watches and from 410 Gone, bookmarks and watch timeouts.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::start;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api, ObjectMeta, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube_sim::testing::WAIT;
use kube_sim::Sim;

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
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

/// Drives a watcher until `names` (the set of pods it knows) satisfies `done`.
async fn drive_until<S>(
    stream: &mut S,
    names: &mut BTreeSet<String>,
    what: &str,
    done: impl Fn(&BTreeSet<String>) -> bool,
) where
    S: futures::Stream<Item = Result<Event<Pod>, watcher::Error>> + Unpin,
{
    let mut init = BTreeSet::new();
    tokio::time::timeout(WAIT, async {
        while !done(names) {
            match stream.next().await.expect("watcher never ends") {
                Ok(Event::Init) => init.clear(),
                Ok(Event::InitApply(p)) => {
                    init.insert(p.metadata.name.unwrap());
                }
                Ok(Event::InitDone) => *names = std::mem::take(&mut init),
                Ok(Event::Apply(p)) => {
                    names.insert(p.metadata.name.unwrap());
                }
                Ok(Event::Delete(p)) => {
                    names.remove(&p.metadata.name.unwrap());
                }
                // Watcher errors (410 Gone, dropped connections) are retried by the
                // watcher itself; the test only cares that it converges.
                Err(_) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}; have {names:?}"));
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn kube_watcher_lists_then_follows_changes() {
    let sim = start().await;
    sim.create(&pod("a")).unwrap();
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut seen = BTreeSet::new();
    drive_until(&mut stream, &mut seen, "initial list", |n| {
        *n == names(&["a"])
    })
    .await;
    sim.create(&pod("b")).unwrap();
    drive_until(&mut stream, &mut seen, "added pod", |n| {
        *n == names(&["a", "b"])
    })
    .await;
    sim.delete::<Pod>(Some("default"), "a").unwrap();
    drive_until(&mut stream, &mut seen, "deleted pod", |n| {
        *n == names(&["b"])
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn kube_watcher_recovers_from_dropped_watches_and_410_gone() {
    let sim = start().await;
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut seen = BTreeSet::new();
    sim.create(&pod("a")).unwrap();
    drive_until(&mut stream, &mut seen, "initial", |n| n.contains("a")).await;
    // A change after the list arrives on the watch: the watcher's one stream is open.
    sim.create(&pod("a2")).unwrap();
    drive_until(&mut stream, &mut seen, "watched", |n| n.contains("a2")).await;
    let opened = sim.watches_opened();
    assert_eq!(opened, 1, "the watcher's one watch stream");

    sim.faults().drop_watches();
    sim.create(&pod("b")).unwrap();
    drive_until(&mut stream, &mut seen, "event after dropped watch", |n| {
        n.contains("b")
    })
    .await;
    assert_eq!(sim.watches_opened(), opened + 1, "re-watched once");

    // Compact, then drop: the re-watch from the old version gets 410 and the watcher relists.
    sim.faults().compact_history();
    sim.faults().drop_watches();
    sim.delete::<Pod>(Some("default"), "a").unwrap();
    sim.create(&pod("c")).unwrap();
    drive_until(&mut stream, &mut seen, "relist after 410", |n| {
        *n == names(&["a2", "b", "c"])
    })
    .await;

    sim.faults().gone_next_watch();
    sim.faults().drop_watches();
    sim.create(&pod("d")).unwrap();
    drive_until(&mut stream, &mut seen, "relist after injected 410", |n| {
        n.contains("d")
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_from_compacted_version_gets_410_error_event() {
    let sim = start().await;
    sim.create(&pod("a")).unwrap();
    let rv = sim.resource_version();
    sim.create(&pod("b")).unwrap();
    sim.faults().compact_history();
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let mut s = api
        .watch(&WatchParams::default(), &rv.to_string())
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(WAIT, s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected 410 error, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_from_version_sends_only_later_events_and_bookmarks() {
    let sim = start().await;
    sim.create(&pod("a")).unwrap();
    let rv = sim.resource_version();
    sim.create(&pod("b")).unwrap();
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let mut s = api
        .watch(&WatchParams::default(), &rv.to_string())
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Added(p) => assert_eq!(p.metadata.name.as_deref(), Some("b")),
        other => panic!("expected ADDED b, got {other:?}"),
    }
    // Other events (the scheduler touching the pods) may come first; a bookmark must follow.
    let bookmark_rv = tokio::time::timeout(WAIT, async {
        loop {
            match s.try_next().await.unwrap().unwrap() {
                WatchEvent::Bookmark(b) => break b.metadata.resource_version,
                WatchEvent::Error(e) => panic!("unexpected error {e:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("a bookmark within the timeout");
    let brv: u64 = bookmark_rv.parse().unwrap();
    assert!(brv > rv, "bookmark {brv} is not after the watched events");
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_timeout_ends_the_stream_cleanly() {
    let sim = start().await;
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let started = std::time::Instant::now();
    let mut s = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match s.try_next().await {
                Ok(Some(WatchEvent::Bookmark(_))) => {}
                other => break other,
            }
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(end, Ok(None)),
        "stream should end without error: {end:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    sim.shutdown().await;
}

#[tokio::test]
async fn stopped_server_refuses_connections_and_restart_keeps_state() {
    let sim = start().await;
    sim.create(&pod("a")).unwrap();
    let client = sim.client().await;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    sim.stop().await;
    assert!(
        std::net::TcpStream::connect(sim.addr()).is_err(),
        "port should be closed"
    );
    assert!(api.get("a").await.is_err());
    sim.restart().await.unwrap();
    let p = api.get("a").await.unwrap();
    assert_eq!(p.metadata.name.as_deref(), Some("a"));
    let addr = sim.addr();
    sim.shutdown().await;
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let sim = Sim::start(kube_sim::testing::fast_config()).await.unwrap();
    let addr = sim.addr();
    drop(sim);
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "server still accepting"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn kube_watcher_resumes_after_server_stop_and_restart() {
    let sim = start().await;
    sim.create(&pod("a")).unwrap();
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut seen = BTreeSet::new();
    drive_until(&mut stream, &mut seen, "initial", |n| n.contains("a")).await;
    sim.stop().await;
    sim.create(&pod("while-down")).unwrap();
    sim.restart().await.unwrap();
    drive_until(&mut stream, &mut seen, "change made while stopped", |n| {
        n.contains("while-down")
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_watch_client_is_disconnected_instead_of_buffered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = Sim::start(kube_sim::SimConfig {
        watch_buffer: 32,
        ..kube_sim::testing::fast_config()
    })
    .await
    .unwrap();
    let mut s = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    s.write_all(b"GET /api/v1/namespaces/default/pods?watch=1 HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Wait for the response head so the watch is registered, then stop reading.
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let big = "x".repeat(16 * 1024);
    const N: usize = 1500;
    for i in 0..N {
        let mut p = pod(&format!("p{i}"));
        p.metadata.annotations = Some([("filler".to_string(), big.clone())].into());
        sim.create(&p).unwrap();
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Now read: the server must have ended the stream (EOF) well before delivering all.
    let mut body = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut body))
        .await
        .expect("the server closes a watch that fell behind")
        .unwrap();
    let added = String::from_utf8_lossy(&body)
        .matches("\"type\":\"ADDED\"")
        .count();
    assert!(
        added < N,
        "all {added} events were buffered for a client that did not read"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn kube_watcher_with_streaming_lists_gets_initial_events_then_changes() {
    let sim = start().await;
    sim.create(&pod("a")).unwrap();
    sim.create(&pod("b")).unwrap();
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let mut stream = watcher::watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut seen = BTreeSet::new();
    drive_until(&mut stream, &mut seen, "initial events", |n| {
        *n == names(&["a", "b"])
    })
    .await;
    sim.create(&pod("c")).unwrap();
    drive_until(&mut stream, &mut seen, "later event", |n| n.contains("c")).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn kube_metadata_watcher_gets_partial_object_metadata() {
    let sim = start().await;
    sim.create(&pod("a")).unwrap();
    let api: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let list = api.list_metadata(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("a"));
    let meta = api.get_metadata("a").await.unwrap();
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    let meta_api: Api<kube::core::PartialObjectMeta<Pod>> =
        Api::namespaced(sim.client().await, "default");
    let mut stream = watcher::watcher(meta_api, watcher::Config::default()).boxed();
    sim.create(&pod("b")).unwrap();
    let mut names = BTreeSet::new();
    tokio::time::timeout(WAIT, async {
        while names.len() < 2 {
            if let Ok(Some(Event::InitApply(p) | Event::Apply(p))) = stream.try_next().await {
                names.insert(p.metadata.name.unwrap());
            }
        }
    })
    .await
    .expect("both pods seen");
    sim.shutdown().await;
}
