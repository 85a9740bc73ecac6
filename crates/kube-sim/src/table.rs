//! Server-side printing: `meta.k8s.io/v1` `Table` responses, which `kubectl get` asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`). Columns follow the real
//! apiserver's printers for the served kinds.

use std::sync::Arc;

use serde_json::{json, Value};

use super::object;
use super::resources::ResourceDef;

fn col(name: &str, ty: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
}

fn columns(def: &ResourceDef) -> Vec<Value> {
    let s = "string";
    match def.plural {
        "pods" => vec![
            col("Name", s, 0),
            col("Ready", s, 0),
            col("Status", s, 0),
            col("Restarts", s, 0),
            col("Age", s, 0),
            col("IP", s, 1),
            col("Node", s, 1),
            col("Nominated Node", s, 1),
            col("Readiness Gates", s, 1),
        ],
        "services" => vec![
            col("Name", s, 0),
            col("Type", s, 0),
            col("Cluster-IP", s, 0),
            col("External-IP", s, 0),
            col("Port(s)", s, 0),
            col("Age", s, 0),
            col("Selector", s, 1),
        ],
        "nodes" => vec![
            col("Name", s, 0),
            col("Status", s, 0),
            col("Roles", s, 0),
            col("Age", s, 0),
            col("Version", s, 0),
            col("Internal-IP", s, 1),
        ],
        "namespaces" => vec![col("Name", s, 0), col("Status", s, 0), col("Age", s, 0)],
        "endpointslices" => vec![
            col("Name", s, 0),
            col("AddressType", s, 0),
            col("Ports", s, 0),
            col("Endpoints", s, 0),
            col("Age", s, 0),
        ],
        "leases" => vec![col("Name", s, 0), col("Holder", s, 0), col("Age", s, 0)],
        _ => vec![col("Name", s, 0), col("Age", s, 0)],
    }
}

fn str_or_none(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "<none>".to_string(),
    }
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let statuses = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = o
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
        .sum();
    let mut reason = o
        .pointer("/status/reason")
        .and_then(Value::as_str)
        .or_else(|| o.pointer("/status/phase").and_then(Value::as_str))
        .unwrap_or("Pending")
        .to_string();
    for c in &statuses {
        if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = r.to_string();
        } else if let Some(t) = c.pointer("/state/terminated") {
            reason = t
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("Error")
                .to_string();
        }
    }
    if object::is_terminating(o) {
        reason = "Terminating".to_string();
    }
    vec![
        json!(object::name(o)),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.to_string()),
        json!(object::age(object::str_at(
            o,
            &["metadata", "creationTimestamp"]
        ))),
        json!(str_or_none(object::str_at(o, &["status", "podIP"]))),
        json!(str_or_none(object::str_at(o, &["spec", "nodeName"]))),
        json!("<none>"),
        json!("<none>"),
    ]
}

fn cells(def: &ResourceDef, o: &Value) -> Vec<Value> {
    let name = json!(object::name(o));
    let age = json!(object::age(object::str_at(
        o,
        &["metadata", "creationTimestamp"]
    )));
    match def.plural {
        "pods" => pod_cells(o),
        "services" => {
            let ports: Vec<String> = o
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        p.get("port").and_then(Value::as_i64).unwrap_or(0),
                        p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                    )
                })
                .collect();
            let selector: Vec<String> = o
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            vec![
                name,
                json!(object::str_at(o, &["spec", "type"]).unwrap_or("ClusterIP")),
                json!(str_or_none(object::str_at(o, &["spec", "clusterIP"]))),
                json!("<none>"),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
                age,
                json!(if selector.is_empty() {
                    "<none>".to_string()
                } else {
                    selector.join(",")
                }),
            ]
        }
        "nodes" => {
            let status = match object::condition(o, "Ready") {
                Some("True") => "Ready",
                Some(_) => "NotReady",
                None => "Unknown",
            };
            let unschedulable = o
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let status = if unschedulable {
                format!("{status},SchedulingDisabled")
            } else {
                status.to_string()
            };
            let ip = o
                .pointer("/status/addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
                .and_then(|a| a.get("address").and_then(Value::as_str));
            vec![
                name,
                json!(status),
                json!("<none>"),
                age,
                json!(object::str_at(o, &["status", "nodeInfo", "kubeletVersion"]).unwrap_or("")),
                json!(str_or_none(ip)),
            ]
        }
        "namespaces" => vec![
            name,
            json!(object::str_at(o, &["status", "phase"]).unwrap_or("Active")),
            age,
        ],
        "endpointslices" => {
            let ports: Vec<String> = o
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("port").and_then(Value::as_i64))
                .map(|p| p.to_string())
                .collect();
            let addrs: Vec<String> = o
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.pointer("/addresses/0").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            let shown = if addrs.len() > 3 {
                format!("{} + {} more...", addrs[..3].join(","), addrs.len() - 3)
            } else if addrs.is_empty() {
                "<unset>".to_string()
            } else {
                addrs.join(",")
            };
            vec![
                name,
                json!(o.get("addressType").and_then(Value::as_str).unwrap_or("")),
                json!(if ports.is_empty() {
                    "<unset>".to_string()
                } else {
                    ports.join(",")
                }),
                json!(shown),
                age,
            ]
        }
        "leases" => vec![
            name,
            json!(object::str_at(o, &["spec", "holderIdentity"]).unwrap_or("")),
            age,
        ],
        _ => vec![name, age],
    }
}

/// Renders objects as a Table. `include_object` is the `includeObject` parameter
/// (`None`, `Metadata` — the default — or `Object`).
pub fn table(
    def: &ResourceDef,
    items: &[Arc<Value>],
    include_object: &str,
    with_columns: bool,
) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(def, o)});
            match include_object {
                "None" => {}
                "Object" => row["object"] = (**o).clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
            }
            row
        })
        .collect();
    let mut t =
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "rows": rows});
    if with_columns {
        t["columnDefinitions"] = Value::Array(columns(def));
    }
    t
}
