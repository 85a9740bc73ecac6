//! Per-kind defaulting and validation on writes: the fields the real apiserver fills in
//! (service cluster IPs, port protocols, pod phase) and the checks whose failures clients
//! see as 422 `Invalid`. Only what the simulator's clients can observe is covered.

use serde_json::{json, Value};

use super::object;
use super::resources::ResourceDef;
use super::status::ApiError;

/// Whether `s` is a DNS-1123 subdomain (object names of most kinds).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label_inner)
}

/// Whether `s` is a DNS-1123 label (namespace and service names).
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_label_inner(s)
}

fn is_dns_label_inner(l: &str) -> bool {
    let b = l.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Fills defaults the apiserver applies on create and update.
pub fn apply(def: &ResourceDef, obj: &mut Value) {
    match def.plural {
        "pods" => {
            let spec = object::obj_mut(obj, &["spec"]);
            spec.entry("restartPolicy").or_insert(json!("Always"));
            spec.entry("terminationGracePeriodSeconds")
                .or_insert(json!(30));
            spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
            spec.entry("schedulerName")
                .or_insert(json!("default-scheduler"));
            if let Some(cs) = spec.get_mut("containers").and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                        for p in ports {
                            if let Some(p) = p.as_object_mut() {
                                p.entry("protocol").or_insert(json!("TCP"));
                            }
                        }
                    }
                }
            }
        }
        "services" => {
            let spec = object::obj_mut(obj, &["spec"]);
            spec.entry("type").or_insert(json!("ClusterIP"));
            spec.entry("sessionAffinity").or_insert(json!("None"));
            spec.entry("internalTrafficPolicy")
                .or_insert(json!("Cluster"));
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    if let Some(p) = p.as_object_mut() {
                        p.entry("protocol").or_insert(json!("TCP"));
                        if !p.contains_key("targetPort") {
                            if let Some(port) = p.get("port").cloned() {
                                p.insert("targetPort".into(), port);
                            }
                        }
                    }
                }
            }
        }
        "endpointslices" => {
            if let Some(ports) = obj.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    if let Some(p) = p.as_object_mut() {
                        p.entry("protocol").or_insert(json!("TCP"));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Validates an object about to be stored.
pub fn validate(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let name = object::name(obj);
    let label_named = matches!(def.plural, "namespaces" | "services");
    let name_ok = if label_named {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if !name_ok {
        let rule = if label_named {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        return Err(ApiError::invalid(
            def,
            name,
            "metadata.name",
            &format!("{name:?}: {rule}"),
        ));
    }
    match def.plural {
        "pods" => {
            let containers = obj.pointer("/spec/containers").and_then(Value::as_array);
            if containers.is_none_or(|c| c.is_empty()) {
                return Err(ApiError::invalid(
                    def,
                    name,
                    "spec.containers",
                    "null: Required value",
                ));
            }
            for (i, c) in containers.into_iter().flatten().enumerate() {
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(ApiError::invalid(
                        def,
                        name,
                        &format!("spec.containers[{i}].name"),
                        "\"\": Required value",
                    ));
                }
            }
        }
        "services" => {
            for (i, p) in obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    return Err(ApiError::invalid(
                        def,
                        name,
                        &format!("spec.ports[{i}].port"),
                        &format!("{port}: must be between 1 and 65535, inclusive"),
                    ));
                }
            }
        }
        "endpointslices" => {
            let at = obj.get("addressType").and_then(Value::as_str).unwrap_or("");
            if !matches!(at, "IPv4" | "IPv6" | "FQDN") {
                return Err(ApiError::invalid(
                    def,
                    name,
                    "addressType",
                    &format!("{at:?}: supported values: \"FQDN\", \"IPv4\", \"IPv6\""),
                ));
            }
            let n = obj
                .get("endpoints")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if n > 1000 {
                return Err(ApiError::invalid(
                    def,
                    name,
                    "endpoints",
                    &format!("{n}: must have at most 1000 items"),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The status a freshly created object gets when the client's status is discarded.
pub fn initial_status(def: &ResourceDef) -> Option<Value> {
    match def.plural {
        "pods" => Some(json!({"phase": "Pending", "qosClass": "BestEffort"})),
        "namespaces" => Some(json!({"phase": "Active"})),
        "services" => Some(json!({"loadBalancer": {}})),
        "nodes" => Some(json!({})),
        _ => None,
    }
}
