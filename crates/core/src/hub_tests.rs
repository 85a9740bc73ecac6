//! Hub tests: publication, resume, slow subscribers, stale and removal.

use std::time::Duration;

use super::*;
use crate::fixtures::origin;
use crate::messages::Message;
use crate::model::Delta;

fn pool() -> PoolId {
    PoolId::new("demo", "origin")
}

fn hub_with_pool(log: usize) -> Hub {
    let hub = Hub::new("e1", log);
    hub.apply(PoolChange::Added {
        pool: pool(),
        revision: 1,
        origins: vec![origin("a"), origin("b")],
    });
    hub
}

fn push(hub: &Hub, revision: u64, upsert: Vec<Origin>, remove: Vec<&str>) {
    hub.apply(PoolChange::Updated {
        delta: Delta {
            pool: pool(),
            epoch: "e1".into(),
            revision,
            upsert,
            remove: remove.into_iter().map(Into::into).collect(),
            received: None,
        },
        received: Instant::now(),
    });
}

async fn next(sub: &mut Subscription) -> (Frame, Message) {
    let f = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("frame within 5 s")
        .expect("subscription open");
    let msg = serde_json::from_slice(f.message.json()).unwrap();
    (f, msg)
}

#[tokio::test]
async fn fresh_subscription_gets_snapshot_then_deltas_in_order() {
    let hub = hub_with_pool(16);
    let mut sub = Subscription::new(hub.pool(&pool()).unwrap(), None);
    let (_, m) = next(&mut sub).await;
    assert!(
        matches!(m, Message::Snapshot(Snapshot { revision: 1, ref origins, .. }) if origins.len() == 2)
    );
    push(&hub, 2, vec![origin("c")], vec!["a"]);
    let (f, m) = next(&mut sub).await;
    assert_eq!(f.kind, FrameKind::Delta);
    assert!(f.received.is_some());
    match m {
        Message::Delta(Delta {
            revision,
            upsert,
            remove,
            ..
        }) => {
            assert_eq!(revision, 2);
            assert_eq!(upsert[0].id, "c");
            assert_eq!(remove, vec!["a"]);
        }
        other => panic!("{other:?}"),
    }
    let ids: Vec<_> = hub
        .pool(&pool())
        .unwrap()
        .current()
        .snapshot
        .origins
        .iter()
        .map(|o| o.id.clone())
        .collect();
    assert_eq!(ids, vec!["b", "c"]);
}

#[tokio::test]
async fn resume_within_the_log_replays_only_missed_deltas() {
    let hub = hub_with_pool(16);
    for r in 2..=5 {
        push(&hub, r, vec![origin(&format!("o{r}"))], vec![]);
    }
    let mut sub = Subscription::new(hub.pool(&pool()).unwrap(), Some(("e1", 3)));
    let revs: Vec<u64> = [next(&mut sub).await.0, next(&mut sub).await.0]
        .iter()
        .map(|f| f.revision)
        .collect();
    assert_eq!(revs, vec![4, 5]);
}

#[tokio::test]
async fn resume_past_the_log_or_from_another_epoch_gets_a_snapshot() {
    let hub = hub_with_pool(2);
    for r in 2..=6 {
        push(&hub, r, vec![origin(&format!("o{r}"))], vec![]);
    }
    let mut sub = Subscription::new(hub.pool(&pool()).unwrap(), Some(("e1", 2)));
    assert!(matches!(
        next(&mut sub).await.1,
        Message::Snapshot(Snapshot { revision: 6, .. })
    ));
    let mut sub = Subscription::new(hub.pool(&pool()).unwrap(), Some(("other", 5)));
    assert!(matches!(
        next(&mut sub).await.1,
        Message::Snapshot(Snapshot { revision: 6, .. })
    ));
    // A revision from the future (another replica's numbering) also resets.
    let mut sub = Subscription::new(hub.pool(&pool()).unwrap(), Some(("e1", 99)));
    assert!(matches!(
        next(&mut sub).await.1,
        Message::Snapshot(Snapshot { revision: 6, .. })
    ));
}

#[tokio::test]
async fn slow_subscriber_skips_ahead_to_a_snapshot_with_bounded_state() {
    let hub = hub_with_pool(1024);
    let mut slow = Subscription::new(hub.pool(&pool()).unwrap(), None);
    next(&mut slow).await;
    for r in 2..=500 {
        push(&hub, r, vec![origin(&format!("o{r}"))], vec![]);
    }
    // Nothing queued per revision: the subscription holds one view, no backlog.
    assert!(slow.pending.is_empty());
    let (f, m) = next(&mut slow).await;
    assert_eq!(f.kind, FrameKind::Snapshot);
    assert!(
        matches!(m, Message::Snapshot(Snapshot { revision: 500, ref origins, .. }) if origins.len() == 501)
    );
}

#[tokio::test]
async fn small_lag_is_replayed_from_the_log() {
    let hub = hub_with_pool(1024);
    let mut sub = Subscription::new(hub.pool(&pool()).unwrap(), None);
    next(&mut sub).await;
    for r in 2..=4 {
        push(&hub, r, vec![origin(&format!("o{r}"))], vec![]);
    }
    let kinds: Vec<_> = [
        next(&mut sub).await.0,
        next(&mut sub).await.0,
        next(&mut sub).await.0,
    ]
    .iter()
    .map(|f| (f.kind, f.revision))
    .collect();
    assert_eq!(
        kinds,
        vec![
            (FrameKind::Delta, 2),
            (FrameKind::Delta, 3),
            (FrameKind::Delta, 4)
        ]
    );
}

#[tokio::test]
async fn stale_flag_is_pushed_without_a_new_revision() {
    let hub = hub_with_pool(16);
    let mut sub = Subscription::new(hub.pool(&pool()).unwrap(), None);
    next(&mut sub).await;
    hub.set_stale(true);
    let (f, m) = next(&mut sub).await;
    assert_eq!(f.kind, FrameKind::Stale);
    assert!(matches!(
        m,
        Message::Stale {
            stale: true,
            revision: 1,
            ..
        }
    ));
    assert_eq!(hub.pool(&pool()).unwrap().current().snapshot.revision, 1);
    hub.set_stale(false);
    assert!(matches!(
        next(&mut sub).await.1,
        Message::Stale { stale: false, .. }
    ));
}

#[tokio::test]
async fn removed_pool_ends_the_subscription_with_a_removed_frame() {
    let hub = hub_with_pool(16);
    let mut sub = Subscription::new(hub.pool(&pool()).unwrap(), None);
    next(&mut sub).await;
    hub.apply(PoolChange::Removed {
        pool: pool(),
        revision: 1,
    });
    assert!(hub.pool(&pool()).is_none());
    assert!(matches!(
        next(&mut sub).await.1,
        Message::Removed { revision: 1, .. }
    ));
    assert!(sub.next().await.is_none());
}

#[test]
fn delta_log_is_bounded() {
    let hub = hub_with_pool(3);
    for r in 2..=10 {
        push(&hub, r, vec![origin("x")], vec![]);
    }
    let c = hub.pool(&pool()).unwrap();
    assert_eq!(c.log.lock().unwrap().len(), 3);
    assert!(c.deltas_after(5).is_none());
    assert_eq!(c.deltas_after(7).unwrap().len(), 3);
    assert_eq!(c.deltas_after(10).unwrap().len(), 0);
}

#[test]
fn snapshot_bytes_are_serialized_once_and_shared() {
    let hub = hub_with_pool(3);
    let view = hub.pool(&pool()).unwrap().current();
    let a = view.snapshot_message();
    let b = view.snapshot_message();
    assert_eq!(a.json().as_ptr(), b.json().as_ptr());
    assert_eq!(view.etag(), "\"e1-1\"");
}
