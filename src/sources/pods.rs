//! Pods: the earliest signals of trouble (deletion, readiness, termination).

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;

use super::Source;
use crate::convert;
use origin_discovery_core::index::Index;
use origin_discovery_core::signals::Stamp;

/// Watches pods (optionally narrowed by `--pod-selector`).
#[derive(Debug, Default)]
pub struct Pods {
    /// Pods whose annotations were reported malformed, with the reported error, so it is
    /// logged once per bad value rather than on every event.
    reported: HashMap<(String, String), String>,
    /// How many malformed-annotation warnings were logged (for tests and diagnostics).
    pub warnings: u64,
}

fn key(pod: &Pod) -> Option<(String, String)> {
    Some((pod.metadata.namespace.clone()?, pod.metadata.name.clone()?))
}

impl Source for Pods {
    type K = Pod;
    type Key = (String, String);
    const RESOURCE: &'static str = "pods";

    fn key(&self, obj: &Pod) -> Option<(String, String)> {
        key(obj)
    }

    fn apply(&mut self, index: &mut Index, obj: Pod, stamp: Stamp) {
        let Some((info, url_error)) = convert::pod_info(&obj) else {
            return;
        };
        let k = (info.namespace.clone(), info.name.clone());
        match url_error {
            Some(err) => {
                if self.reported.get(&k) != Some(&err) {
                    tracing::warn!(pod = %format!("{}/{}", k.0, k.1), error = %err,
                        "ignoring a malformed pod annotation (a bad url uses the Service's url-template, a bad weight counts as 1, a bad load as unknown)");
                    self.reported.insert(k, err);
                    self.warnings += 1;
                }
            }
            None => {
                self.reported.remove(&k);
            }
        }
        index.apply_pod(info, stamp);
    }

    fn delete(&mut self, index: &mut Index, obj: Pod, stamp: Stamp) {
        if let Some((ns, name)) = key(&obj) {
            self.reported.remove(&(ns.clone(), name.clone()));
            index.delete_pod(&ns, &name, stamp);
        }
    }

    fn reset(&mut self, index: &mut Index, keep: &HashSet<(String, String)>, stamp: Stamp) {
        self.reported.retain(|k, _| keep.contains(k));
        index.reset_pods(keep, stamp);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use origin_discovery_core::index::IndexConfig;

    fn pod(url: &str, generation: u32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "demo", "name": "p", "annotations": {convert::URL_ANNOTATION: url},
                "labels": {"generation": generation.to_string()}},
        }))
        .unwrap()
    }

    #[test]
    fn malformed_url_is_logged_once_per_bad_value_not_per_event() {
        let mut index = Index::new(IndexConfig {
            epoch: "e".into(),
            node_lease_grace: Duration::from_secs(1),
        });
        let mut pods = Pods::default();
        for generation in 0..5 {
            pods.apply(&mut index, pod("not a url", generation), Stamp::now());
        }
        assert_eq!(pods.warnings, 1);
        pods.apply(&mut index, pod("also bad", 0), Stamp::now());
        assert_eq!(pods.warnings, 2);
        pods.apply(&mut index, pod("wss://ok.example.com/", 0), Stamp::now());
        pods.apply(&mut index, pod("also bad", 0), Stamp::now());
        assert_eq!(
            pods.warnings, 3,
            "a fixed then broken-again annotation is reported again"
        );
    }
}
