//! Response formats chosen by the `Accept` header: plain objects, `meta.k8s.io/v1`
//! Tables (kubectl) or `PartialObjectMetadata` (kube's `metadata_watcher`, client-go
//! metadata informers).

use std::sync::Arc;

use serde_json::{json, Value};

use super::resources::ResourceDef;
use super::table;

/// How objects are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The objects themselves (`application/json`).
    Object,
    /// A Table (`as=Table;g=meta.k8s.io;v=v1`).
    Table,
    /// Metadata only (`as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`).
    Metadata,
}

impl Format {
    /// The format an `Accept` header asks for (its first alternative the simulator
    /// serves; plain JSON otherwise).
    pub fn from_accept(accept: &str) -> Self {
        for alt in accept.split(',') {
            if alt.contains("as=Table") {
                return Format::Table;
            }
            if alt.contains("as=PartialObjectMetadata") {
                return Format::Metadata;
            }
            if alt.trim().starts_with("application/json") || alt.trim().starts_with("*/*") {
                return Format::Object;
            }
        }
        Format::Object
    }

    /// One object (a GET answer or a watch event's object). `include_object` is the
    /// Table `includeObject` parameter.
    pub fn one(self, def: &ResourceDef, obj: &Arc<Value>, include_object: &str) -> Value {
        match self {
            Format::Object => (**obj).clone(),
            Format::Table => table::table(def, std::slice::from_ref(obj), include_object, true),
            Format::Metadata => partial(obj),
        }
    }

    /// A list with the given list metadata.
    pub fn list(
        self,
        def: &ResourceDef,
        items: &[Arc<Value>],
        meta: Value,
        include_object: &str,
    ) -> Value {
        match self {
            Format::Object => json!({
                "kind": def.list_kind(), "apiVersion": def.api_version(), "metadata": meta,
                "items": items.iter().map(|o| (**o).clone()).collect::<Vec<_>>(),
            }),
            Format::Table => {
                let mut t = table::table(def, items, include_object, true);
                t["metadata"] = meta;
                t
            }
            Format::Metadata => json!({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                "items": items.iter().map(|o| partial(o)).collect::<Vec<_>>(),
            }),
        }
    }
}

/// `PartialObjectMetadata` of an object.
fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}
