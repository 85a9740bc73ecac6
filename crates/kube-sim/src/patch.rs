//! The PATCH content types: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic
//! merge patch (the subset of list merge keys and `$patch` directives that matter for the
//! served kinds) and server-side apply (approximated as a merge patch; field ownership is
//! not tracked).

use serde_json::{Map, Value};

use super::status::ApiError;

/// A patch content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// Recognises a `Content-Type` header value.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// Parses the patch body for its type.
pub fn parse_body(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let parsed: Result<Value, String> = match kind {
        PatchType::Apply => serde_yaml::from_slice(body).map_err(|e| e.to_string()),
        _ => serde_json::from_slice(body).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a parsed patch to `target`.
pub fn apply(kind: PatchType, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut out = target.clone();
    match kind {
        PatchType::Merge | PatchType::Apply => json_patch::merge(&mut out, patch),
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding json patch: {e}")))?;
            json_patch::patch(&mut out, &ops).map_err(|e| ApiError {
                code: 422,
                reason: "Invalid",
                message: format!(
                    "the server rejected our request due to an error in our request: {e}"
                ),
                details: None,
                retry_after: None,
            })?;
        }
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be an object",
                ));
            }
            strategic(&mut out, patch, "");
        }
    }
    Ok(out)
}

/// The merge key of a list field, or `None` when the list is replaced atomically.
fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "taints" => "key",
        "addresses" => "type",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" => {
            if sample.is_some_and(|s| s.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Fields that are merged as sets of primitives.
fn is_primitive_set(field: &str) -> bool {
    matches!(field, "finalizers")
}

fn strategic(target: &mut Value, patch: &Value, _path: &str) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = p.clone();
        clean.remove("$patch");
        *target = Value::Object(clean);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()) || p.contains_key(k));
    }
    for (k, pv) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(del)) = (
                t.get_mut(field).and_then(Value::as_array_mut),
                pv.as_array(),
            ) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        match pv {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(po) => {
                if po.get("$patch").and_then(Value::as_str) == Some("delete") {
                    t.remove(k);
                } else {
                    strategic(t.entry(k.clone()).or_insert(Value::Null), pv, k);
                }
            }
            Value::Array(items) => merge_list(t, k, items),
            _ => {
                t.insert(k.clone(), pv.clone());
            }
        }
    }
}

fn merge_list(t: &mut Map<String, Value>, field: &str, items: &[Value]) {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let rest: Vec<Value> = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        t.insert(field.to_string(), Value::Array(rest));
        return;
    }
    if is_primitive_set(field) {
        let list = t
            .entry(field.to_string())
            .or_insert_with(|| Value::Array(vec![]));
        if let Some(list) = list.as_array_mut() {
            for i in items {
                if !list.contains(i) {
                    list.push(i.clone());
                }
            }
        }
        return;
    }
    let sample = items
        .first()
        .or_else(|| t.get(field).and_then(|l| l.as_array()?.first()));
    let Some(key) = merge_key(field, sample) else {
        t.insert(field.to_string(), Value::Array(items.to_vec()));
        return;
    };
    let list = t
        .entry(field.to_string())
        .or_insert_with(|| Value::Array(vec![]));
    if !list.is_array() {
        *list = Value::Array(vec![]);
    }
    let list = list.as_array_mut().expect("array");
    for item in items {
        let id = item.get(key);
        let pos = id.and_then(|id| list.iter().position(|x| x.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut list[i], item, field),
            (None, false) => {
                let mut fresh = Value::Null;
                strategic(&mut fresh, item, field);
                list.push(fresh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_and_conditions_by_key() {
        let target = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "z"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X", "status": "True"}]}});
        let out = apply(PatchType::Strategic, &target, &patch).unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "x");
        assert_eq!(out["spec"]["containers"][1]["image"], "z");
        assert_eq!(out["status"]["conditions"][0]["status"], "False");
        assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn strategic_merge_honours_delete_directives_and_null() {
        let target = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["f1"]},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({"metadata": {"labels": {"a": null}, "finalizers": ["f2"]},
            "spec": {"containers": [{"name": "a", "$patch": "delete"}]}});
        let out = apply(PatchType::Strategic, &target, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["f1", "f2"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
    }
}
