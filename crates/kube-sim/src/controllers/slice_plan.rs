//! Slice planning for the EndpointSlice controller, without I/O: given a Service's
//! existing managed slices and its desired endpoints (grouped by address type and
//! ports), decide which slices to update, delete and create.
//!
//! Like the real controller it prefers stability over packing: an endpoint stays in the
//! slice that already holds it, new endpoints first fill existing slices of their group
//! up to the limit, then go to new slices; slices left empty are deleted, but a Service
//! always keeps one slice (an empty placeholder when it has no endpoints).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::object;

/// Planned slice content: address type, ports, endpoints.
pub type SlicePlan = (String, Value, Vec<Value>);

/// Desired endpoints of one (address type, ports) group: address type, ports, and the
/// endpoints keyed by pod name.
pub type Group = (String, Value, BTreeMap<String, Value>);

/// The outcome of [`plan`]: each existing slice with its new content (`None` = delete),
/// and the contents of slices to create.
pub type Plan = (Vec<(Arc<Value>, Option<SlicePlan>)>, Vec<SlicePlan>);

/// The grouping key of an address type and port list.
pub fn group_key(address_type: &str, ports: &Value) -> String {
    format!("{address_type}|{ports}")
}

/// Plans the slices: for each existing slice (in name order) its new content or `None`
/// to delete it, and the contents of slices to create. `max` is at least 1.
pub fn plan(
    mut existing: Vec<Arc<Value>>,
    mut groups: BTreeMap<String, Group>,
    max: usize,
) -> Plan {
    let max = max.max(1);
    let mut planned: Vec<(Arc<Value>, Option<SlicePlan>)> = Vec::new();
    let mut fresh: Vec<SlicePlan> = Vec::new();
    existing.sort_by(|a, b| object::name(a).cmp(object::name(b)));
    for s in existing {
        let at = s
            .get("addressType")
            .and_then(Value::as_str)
            .unwrap_or("IPv4")
            .to_string();
        let ports = s.get("ports").cloned().unwrap_or(json!([]));
        match groups.get_mut(&group_key(&at, &ports)) {
            Some((_, _, wanted)) => {
                // Lazily: endpoints past `max` stay wanted and are placed below.
                let kept: Vec<Value> = s
                    .get("endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| {
                        let pod = e.pointer("/targetRef/name").and_then(Value::as_str)?;
                        wanted.remove(pod)
                    })
                    .take(max)
                    .collect();
                planned.push((s.clone(), Some((at, ports, kept))));
            }
            None => planned.push((s.clone(), None)),
        }
    }
    for (_, (at, ports, wanted)) in groups {
        let mut rest: VecDeque<Value> = wanted.into_values().collect();
        for (_, plan) in planned.iter_mut() {
            if let Some((pat, pports, eps)) = plan {
                if *pat == at && *pports == ports {
                    while eps.len() < max {
                        match rest.pop_front() {
                            Some(e) => eps.push(e),
                            None => break,
                        }
                    }
                }
            }
        }
        while !rest.is_empty() {
            let n = rest.len().min(max);
            fresh.push((at.clone(), ports.clone(), rest.drain(..n).collect()));
        }
    }
    for (_, plan) in planned.iter_mut() {
        if plan.as_ref().is_some_and(|(_, _, eps)| eps.is_empty()) {
            *plan = None;
        }
    }
    let any_kept = planned.iter().any(|(_, p)| p.is_some());
    if !any_kept && fresh.is_empty() {
        match planned.first_mut() {
            Some((_, plan)) => *plan = Some(("IPv4".into(), json!([]), vec![])),
            None => fresh.push(("IPv4".into(), json!([]), vec![])),
        }
    }
    (planned, fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(pod: &str) -> Value {
        json!({"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": pod}})
    }

    fn group(ports: Value, pods: &[String]) -> BTreeMap<String, Group> {
        let eps = pods.iter().map(|p| (p.clone(), ep(p))).collect();
        [(group_key("IPv4", &ports), ("IPv4".to_string(), ports, eps))].into()
    }

    fn slice(name: &str, ports: Value, pods: &[&str]) -> Arc<Value> {
        let eps: Vec<Value> = pods.iter().map(|p| ep(p)).collect();
        Arc::new(
            json!({"metadata": {"name": name}, "addressType": "IPv4", "ports": ports, "endpoints": eps}),
        )
    }

    fn pods(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("p{i:03}")).collect()
    }

    #[test]
    fn endpoints_beyond_the_limit_go_to_new_slices() {
        let ports = json!([{"port": 80}]);
        let (planned, fresh) = plan(vec![], group(ports, &pods(250)), 100);
        assert!(planned.is_empty());
        let sizes: Vec<usize> = fresh.iter().map(|(_, _, e)| e.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
    }

    #[test]
    fn endpoints_stay_in_their_slice_and_new_ones_fill_gaps() {
        let ports = json!([{"port": 80}]);
        let existing = vec![
            slice("s-a", ports.clone(), &["p000", "p001"]),
            slice("s-b", ports.clone(), &["p002"]),
        ];
        let want = vec!["p001".to_string(), "p002".to_string(), "p003".to_string()];
        let (planned, fresh) = plan(existing, group(ports, &want), 2);
        assert!(fresh.is_empty());
        let names = |p: &Option<SlicePlan>| -> Vec<String> {
            p.as_ref()
                .unwrap()
                .2
                .iter()
                .map(|e| e["targetRef"]["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(&planned[0].1), ["p001", "p003"]);
        assert_eq!(names(&planned[1].1), ["p002"]);
    }

    #[test]
    fn a_service_without_endpoints_keeps_one_placeholder_slice() {
        let ports = json!([{"port": 80}]);
        let existing = vec![
            slice("s-a", ports.clone(), &["p000"]),
            slice("s-b", ports.clone(), &["p001"]),
        ];
        let (planned, fresh) = plan(existing, BTreeMap::new(), 100);
        assert!(fresh.is_empty());
        assert_eq!(planned[0].1, Some(("IPv4".to_string(), json!([]), vec![])));
        assert_eq!(planned[1].1, None);
        let (_, fresh) = plan(vec![], BTreeMap::new(), 100);
        assert_eq!(fresh.len(), 1);
    }

    #[test]
    fn a_port_change_replaces_the_slice() {
        let existing = vec![slice("s-a", json!([{"port": 80}]), &["p000"])];
        let (planned, fresh) = plan(existing, group(json!([{"port": 81}]), &pods(1)), 100);
        assert_eq!(planned[0].1, None);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].1, json!([{"port": 81}]));
    }
}
