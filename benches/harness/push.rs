//! Push-latency rounds: take one origin out (crash or graceful delete, alternating), find
//! the simulator's pod event (`SimEvent.at`) and the delta revision that carried the
//! change, and collect every subscriber's arrival time of that revision. The same round
//! also yields the signal lead: the EndpointSlice event's `at` minus each arrival.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube_sim::{EventType, Sim, SimEvent};
use origin_discovery_core::messages::Message;
use origin_discovery_core::model::Delta;
use origin_discovery_core::model::OriginState;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::cluster::{self, NS};
use crate::subscribers::{Fleet, Observer};

/// How a round takes its origin out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The pod's container terminates (Ready=False): the origin is removed.
    Crash,
    /// Graceful delete (1 s grace): the origin turns `draining`.
    Delete,
}

/// One round's measurements.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Per subscriber: delta arrival − pod event, ms.
    pub latencies_ms: Vec<f64>,
    /// Per subscriber: EndpointSlice event − delta arrival, ms (positive = ahead).
    pub leads_ms: Vec<f64>,
    /// Subscribers that never received the revision (e.g. skipped to a snapshot).
    pub missing: usize,
    /// Bytes of that revision's frame (its JSON text), as a subscriber received it.
    pub frame_bytes: usize,
}

/// State carried across rounds on one pool.
pub struct Rounds<'a> {
    /// The simulator.
    pub sim: &'a Sim,
    /// The pool's Service.
    pub svc: String,
    /// Ready origins the pool returns to after each round.
    pub size: usize,
    /// Replacement pods created so far (names must be unique).
    pub replaced: usize,
    /// Bound on waiting for the EndpointSlice event.
    pub slice_wait: Duration,
}

impl Rounds<'_> {
    /// Runs round `i` (even: crash, odd: graceful delete) against `fleet`.
    pub async fn round(&mut self, i: usize, observer: &Observer, fleet: &Fleet) -> Result<Outcome> {
        let action = if i % 2 == 0 {
            Action::Crash
        } else {
            Action::Delete
        };
        let state = observer.state.borrow().clone();
        let rev_before = state.revision;
        let target = state
            .origins
            .values()
            .find(|o| o.state == OriginState::Ready)
            .context("no ready origin to take out")?
            .id
            .clone();
        let mut events = self.sim.subscribe();
        match action {
            Action::Crash => self.sim.crash_pod(NS, &target)?,
            Action::Delete => self
                .sim
                .delete_pod(NS, &target, Some(Duration::from_secs(1)))?,
        }
        let pod_at = next_event(&mut events, Duration::from_secs(5), |ev| {
            ev.resource == "pods"
                && ev.namespace == NS
                && ev.name == target
                && ev.event_type == EventType::Modified
        })
        .await
        .with_context(|| format!("no pod event for {target}"))?
        .at;
        let (svc, pod, wait) = (self.svc.clone(), target.clone(), self.slice_wait);
        let slice = tokio::spawn(async move {
            next_event(&mut events, wait, |ev| {
                slice_reflects(ev, &svc, &pod, action)
            })
            .await
            .map(|ev| ev.at)
        });

        let revision = wait_delta(observer, rev_before, &target, action).await?;
        fleet.wait_for(revision, Duration::from_secs(60)).await?;
        let slice_at = slice.await?;
        let mut out = Outcome {
            frame_bytes: fleet
                .records
                .iter()
                .find_map(|r| r.bytes(revision))
                .unwrap_or(0),
            ..Outcome::default()
        };
        for r in &fleet.records {
            match r.arrival(revision) {
                Some(t) => {
                    out.latencies_ms
                        .push(ms(t.saturating_duration_since(pod_at)));
                    if let Some(s) = slice_at {
                        out.leads_ms.push(signed_ms(s, t));
                    }
                }
                None => out.missing += 1,
            }
        }
        if slice_at.is_none() {
            eprintln!(
                "bench: no EndpointSlice event for {target} within {wait:?}",
                wait = self.slice_wait
            );
        }
        self.restore(&target, action, observer).await?;
        Ok(out)
    }

    /// Creates a replacement pod, clears a crashed pod away, and waits (bounded) until the
    /// pool is back to `size` ready origins and nothing draining.
    async fn restore(&mut self, target: &str, action: Action, observer: &Observer) -> Result<()> {
        self.replaced += 1;
        let name = format!("{}-r{}", self.svc, self.replaced);
        cluster::pod(self.sim, &self.svc, &name, self.replaced)?;
        if action == Action::Crash {
            self.sim.delete::<Pod>(Some(NS), target)?;
        }
        let mut state = observer.state.clone();
        let size = self.size;
        let settled = tokio::time::timeout(
            Duration::from_secs(20),
            state.wait_for(|s| {
                !s.origins.contains_key(target)
                    && s.origins.contains_key(&name)
                    && s.origins.len() == size
                    && s.origins.values().all(|o| o.state == OriginState::Ready)
            }),
        )
        .await;
        match settled {
            Ok(Ok(_)) => Ok(()),
            _ => bail!("the pool did not settle after replacing {target} by {name}"),
        }
    }
}

/// The next simulator event matching `pred`, within `wait`.
async fn next_event(
    events: &mut broadcast::Receiver<SimEvent>,
    wait: Duration,
    mut pred: impl FnMut(&SimEvent) -> bool,
) -> Option<SimEvent> {
    let found = tokio::time::timeout(wait, async {
        loop {
            match events.recv().await {
                Ok(ev) if pred(&ev) => return Some(ev),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await;
    found.ok().flatten()
}

/// Whether a simulator event is the EndpointSlice of `svc` catching up with `pod`'s
/// trouble: its endpoint not ready (crash), terminating (delete), or gone.
fn slice_reflects(ev: &SimEvent, svc: &str, pod: &str, action: Action) -> bool {
    if ev.resource != "endpointslices"
        || ev.object["metadata"]["labels"]["kubernetes.io/service-name"] != svc
    {
        return false;
    }
    let endpoint = |obj: &Value| -> Option<Value> {
        obj["endpoints"]
            .as_array()?
            .iter()
            .find(|e| e["targetRef"]["name"] == pod)
            .cloned()
    };
    if ev.event_type == EventType::Deleted {
        return endpoint(&ev.object).is_some();
    }
    match endpoint(&ev.object) {
        Some(e) => match action {
            Action::Crash => e["conditions"]["ready"] == false,
            Action::Delete => e["conditions"]["terminating"] == true,
        },
        None => ev.old.as_deref().and_then(endpoint).is_some(),
    }
}

/// Waits (bounded) for the observer's first delta after `after` that carries `target`'s
/// change; returns its revision.
async fn wait_delta(observer: &Observer, after: u64, target: &str, action: Action) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        {
            let history = observer.history.lock().unwrap_or_else(|e| e.into_inner());
            for m in history.iter().rev() {
                let Message::Delta(Delta {
                    revision,
                    upsert,
                    remove,
                    ..
                }) = m
                else {
                    continue;
                };
                if *revision <= after {
                    break;
                }
                let hit = match action {
                    Action::Crash => remove.iter().any(|id| id == target),
                    Action::Delete => upsert
                        .iter()
                        .any(|o| o.id == target && o.state == OriginState::Draining),
                };
                if hit {
                    return Ok(*revision);
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no delta for {target} ({action:?}) within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A duration in ms.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `a − b` in ms, negative when `a` is earlier.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        ms(a - b)
    } else {
        -ms(b - a)
    }
}
