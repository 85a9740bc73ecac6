//! Seed data for `origin-discovery dev`: the `demo/origin` pool of three origins spread
//! over three zoned nodes.

use serde_json::{json, Value};

use super::controllers::endpointslices::ZONE_LABEL;
use super::resources::kinds;
use super::status::ApiError;
use super::store::Store;

/// Namespace of the demo pool.
pub const DEMO_NAMESPACE: &str = "demo";
/// Service of the demo pool.
pub const DEMO_SERVICE: &str = "origin";
/// Nodes and their zones.
pub const DEMO_NODES: &[(&str, &str)] = &[
    ("node-a", "zone-a"),
    ("node-b", "zone-b"),
    ("node-c", "zone-c"),
];
/// Number of origin pods.
pub const DEMO_ORIGINS: usize = 3;

/// A pod of the demo pool (labels `app: origin`, container port `ws` 5080) bound to
/// `node` (or left for the scheduler when `None`).
pub fn origin_pod(name: &str, node: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": DEMO_NAMESPACE, "labels": {"app": "origin"}},
        "spec": {
            "containers": [{
                "name": "origin", "image": "origin-discovery/sim-origin:latest",
                "ports": [{"name": "ws", "containerPort": 5080, "protocol": "TCP"}],
            }],
            "terminationGracePeriodSeconds": 30,
        },
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

fn ensure(
    store: &Store,
    def: &'static crate::resources::ResourceDef,
    ns: &str,
    obj: Value,
) -> Result<(), ApiError> {
    match store.create(def, ns, obj, false) {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the demo objects; existing ones are left as they are (idempotent).
pub fn seed_demo(store: &Store) -> Result<(), ApiError> {
    ensure(
        store,
        kinds::namespaces(),
        "",
        json!({"metadata": {"name": DEMO_NAMESPACE}}),
    )?;
    for (node, zone) in DEMO_NODES {
        ensure(
            store,
            kinds::nodes(),
            "",
            json!({"metadata": {"name": node, "labels": {
                ZONE_LABEL: zone, "kubernetes.io/hostname": node, "kubernetes.io/os": "linux",
            }}}),
        )?;
    }
    ensure(
        store,
        kinds::services(),
        DEMO_NAMESPACE,
        json!({
            "metadata": {"name": DEMO_SERVICE, "namespace": DEMO_NAMESPACE,
                "labels": {"app": "origin", "origin-discovery.io/enabled": "true"}},
            "spec": {"selector": {"app": "origin"},
                "ports": [{"name": "ws", "port": 5080, "targetPort": "ws", "protocol": "TCP"}]},
        }),
    )?;
    for i in 0..DEMO_ORIGINS {
        let node = DEMO_NODES[i % DEMO_NODES.len()].0;
        ensure(
            store,
            kinds::pods(),
            DEMO_NAMESPACE,
            origin_pod(&format!("origin-{i}"), Some(node)),
        )?;
    }
    Ok(())
}
