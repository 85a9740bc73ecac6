//! Helpers for reading and writing fields of objects held as `serde_json::Value`, and the
//! timestamp formats Kubernetes uses (`Time` with seconds, `MicroTime` with microseconds).
//!
//! The store keeps objects untyped so every kind shares one code path; these helpers keep
//! the field plumbing in one place.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// `metadata.name`, or `""`.
pub fn name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"]).unwrap_or("")
}

/// `metadata.namespace`, or `""` for cluster-scoped objects.
pub fn namespace(obj: &Value) -> &str {
    str_at(obj, &["metadata", "namespace"]).unwrap_or("")
}

/// `metadata.uid`, or `""`.
pub fn uid(obj: &Value) -> &str {
    str_at(obj, &["metadata", "uid"]).unwrap_or("")
}

/// `metadata.resourceVersion`, or `""`.
pub fn resource_version(obj: &Value) -> &str {
    str_at(obj, &["metadata", "resourceVersion"]).unwrap_or("")
}

/// `metadata.labels` as a map (empty when absent).
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// One label's value.
pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// One annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// A string at a path of object keys.
pub fn str_at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = obj;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str()
}

/// A mutable object at a path of keys, creating empty objects on the way (replacing any
/// non-object found there).
pub fn obj_mut<'a>(obj: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = obj;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("just made an object")
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut().expect("just made an object")
}

/// `metadata` as a mutable map.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    obj_mut(obj, &["metadata"])
}

/// A field selector value: the field at a dotted path rendered as a string
/// (`spec.nodeName`, `status.phase`); booleans and numbers are rendered as text, missing
/// fields as `""` (as the apiserver's field sets do).
pub fn field_value(obj: &Value, dotted: &str) -> String {
    let mut cur = obj;
    for key in dotted.split('.') {
        match cur.get(key) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A `metav1.Time` string (RFC 3339, whole seconds).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A `metav1.MicroTime` string (RFC 3339, microseconds).
pub fn micro_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `metav1.Time` for now.
pub fn now() -> String {
    time(Utc::now())
}

/// Parses a `Time`/`MicroTime` string.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Human age like kubectl prints it (`5s`, `3m`, `2h`, `4d`).
pub fn age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(parse_time) else {
        return "<unknown>".to_string();
    };
    let secs = (Utc::now() - t).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Sets (or replaces) the condition of `type_` in `status.conditions`, keeping
/// `lastTransitionTime` when the status does not change, as kubelets do.
pub fn set_condition(obj: &mut Value, type_: &str, status: &str, reason: Option<&str>) {
    let now = now();
    let st = obj_mut(obj, &["status"]);
    let conds = st
        .entry("conditions")
        .or_insert_with(|| Value::Array(vec![]));
    if !conds.is_array() {
        *conds = Value::Array(vec![]);
    }
    let conds = conds.as_array_mut().expect("array");
    let mut cond = serde_json::json!({
        "type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": now,
    });
    if let Some(r) = reason {
        cond["reason"] = Value::String(r.to_string());
    }
    match conds
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    {
        Some(existing) => {
            if existing.get("status").and_then(Value::as_str) == Some(status) {
                cond["lastTransitionTime"] = existing
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            *existing = cond;
        }
        None => conds.push(cond),
    }
}

/// The status of condition `type_` (`"True"`, `"False"`, `"Unknown"`), if present.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a str> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))?
        .get("status")?
        .as_str()
}
