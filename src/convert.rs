//! Conversions from Kubernetes objects into index signals: the only place that reads
//! Kubernetes field semantics (labels, annotations, KEP-1672 conditions, pod status).

use std::collections::HashSet;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use origin_discovery_core::model::{PoolId, MAX_WEIGHT};
use origin_discovery_core::signals::{
    EndpointInfo, LoadSample, NodeReady, PodInfo, PortChoice, ProbeKind, ProbeMode, ProbeSpec,
    ServiceInfo, SliceInfo, SlicePort,
};

/// Label opting a Service in as a pool.
pub const ENABLED_LABEL: &str = "origin-discovery.io/enabled";
/// Service annotation: port name or number to advertise.
pub const PORT_ANNOTATION: &str = "origin-discovery.io/port";
/// Service annotation: URL template for origins.
pub const URL_TEMPLATE_ANNOTATION: &str = "origin-discovery.io/url-template";
/// Pod annotation: the origin's own public URL.
pub const URL_ANNOTATION: &str = "origin-discovery.io/url";
/// Pod annotation: the origin's capacity relative to the pool's others (integer 1–10000).
pub const WEIGHT_ANNOTATION: &str = "origin-discovery.io/weight";
/// Pod annotation: the origin's current load, 0–1 (the origin may patch it; a probe's
/// `Origin-Load` header wins over it).
pub const LOAD_ANNOTATION: &str = "origin-discovery.io/load";
/// EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Service annotation: `tcp`, `http` or `none` (docs/DESIGN.md, "Active probes").
pub const PROBE_ANNOTATION: &str = "origin-discovery.io/probe";
/// Service annotation: the HTTP probe's path (default `/`).
pub const PROBE_PATH_ANNOTATION: &str = "origin-discovery.io/probe-path";
/// Service annotation: port name or number to probe (default the advertised port).
pub const PROBE_PORT_ANNOTATION: &str = "origin-discovery.io/probe-port";

/// The pool a Service defines, or `None` when it is not opted in (by label or `--service`).
pub fn service_info(svc: &Service, explicit: &HashSet<PoolId>) -> Option<ServiceInfo> {
    let meta = &svc.metadata;
    let pool = PoolId::new(meta.namespace.clone()?, meta.name.clone()?);
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(ENABLED_LABEL))
        .is_some_and(|v| v == "true");
    if !labelled && !explicit.contains(&pool) {
        return None;
    }
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let port_name =
        |p: &k8s_openapi::api::core::v1::ServicePort| p.name.clone().unwrap_or_default();
    let port_choice = |v: &str| match v.trim().parse::<u16>() {
        // A Service port number maps to its name (slices carry Service port names);
        // any other number is matched against the endpoints' (target) port.
        Ok(n) => match ports.iter().find(|p| p.port == i32::from(n)) {
            Some(p) => PortChoice::Name(port_name(p)),
            None => PortChoice::Number(n),
        },
        Err(_) => PortChoice::Name(v.trim().to_string()),
    };
    let port = match annotation(PORT_ANNOTATION) {
        Some(v) => port_choice(&v),
        None => PortChoice::Name(ports.first().map(port_name).unwrap_or_default()),
    };
    let (probe, errors) = probe_spec(
        annotation(PROBE_ANNOTATION).as_deref(),
        annotation(PROBE_PATH_ANNOTATION).as_deref(),
        annotation(PROBE_PORT_ANNOTATION)
            .as_deref()
            .map(port_choice),
    );
    for error in errors {
        // Services change rarely, so this is logged once per change of the Service.
        tracing::warn!(pool = %pool, "{error}");
    }
    Some(ServiceInfo {
        pool,
        port,
        url_template: annotation(URL_TEMPLATE_ANNOTATION),
        probe,
    })
}

/// The probe annotations' meaning, and what was wrong with them: an unknown probe kind
/// leaves the pool to `--probe-default`; a path that is not an absolute request path
/// (visible ASCII, starting with `/`) is replaced by `/`.
fn probe_spec(
    kind: Option<&str>,
    path: Option<&str>,
    port: Option<PortChoice>,
) -> (ProbeSpec, Vec<String>) {
    let mut errors = Vec::new();
    let mode = match kind.map(str::trim) {
        None => ProbeMode::Default,
        Some("tcp") => ProbeMode::On(ProbeKind::Tcp),
        Some("http") => ProbeMode::On(ProbeKind::Http),
        Some("none") => ProbeMode::Off,
        Some(other) => {
            errors.push(format!(
                "annotation {PROBE_ANNOTATION}={other:?}: expected tcp, http or none; using --probe-default"
            ));
            ProbeMode::Default
        }
    };
    let path = match path.map(str::trim) {
        None => "/".to_string(),
        Some(p) if p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic()) => p.to_string(),
        Some(p) => {
            errors.push(format!(
                "annotation {PROBE_PATH_ANNOTATION}={p:?}: expected a path starting with / (visible ASCII); using /"
            ));
            "/".to_string()
        }
    };
    (ProbeSpec { mode, path, port }, errors)
}

/// An EndpointSlice's endpoints, or `None` for a slice without a Service label or with
/// FQDN addresses (which name no origin).
pub fn slice_info(slice: &EndpointSlice) -> Option<SliceInfo> {
    let meta = &slice.metadata;
    let service = meta.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    if slice.address_type == "FQDN" {
        return None;
    }
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(SlicePort {
                name: p.name.clone().unwrap_or_default(),
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .filter_map(|e| {
            let address = e.addresses.first()?.clone();
            let c = e.conditions.as_ref();
            // KEP-1672: unset ready means ready; unset serving defers to ready.
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            let pod = e
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| r.name.clone());
            Some(EndpointInfo {
                address,
                pod,
                node: e.node_name.clone(),
                zone: e.zone.clone(),
                hostname: e.hostname.clone(),
                ready,
                serving,
                terminating,
            })
        })
        .collect();
    Some(SliceInfo {
        service: PoolId::new(meta.namespace.clone()?, service.clone()),
        name: meta.name.clone()?,
        ports,
        endpoints,
    })
}

/// A pod's signals, plus the error if one of its annotations is malformed: a bad URL is
/// ignored (the Service's template applies), a bad weight counts as 1, a bad load as none.
/// Several errors are joined with "; ".
pub fn pod_info(pod: &Pod) -> Option<(PodInfo, Option<String>)> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let ready_false = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "False");
    let terminated = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()));
    let finished = matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Failed") | Some("Succeeded")
    );
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
    let mut errors = Vec::new();
    let url = annotation(URL_ANNOTATION).and_then(|raw| match validate_url(raw) {
        Ok(()) => Some(raw.clone()),
        Err(e) => {
            errors.push(format!("annotation {URL_ANNOTATION}={raw:?}: {e}"));
            None
        }
    });
    let weight = annotation(WEIGHT_ANNOTATION).map_or(1, |raw| match parse_weight(raw) {
        Ok(w) => w,
        Err(e) => {
            errors.push(format!("annotation {WEIGHT_ANNOTATION}={raw:?}: {e}"));
            1
        }
    });
    let load = annotation(LOAD_ANNOTATION).and_then(|raw| match LoadSample::parse(raw) {
        Ok(l) => Some(l),
        Err(e) => {
            errors.push(format!("annotation {LOAD_ANNOTATION}={raw:?}: {e}"));
            None
        }
    });
    let info = PodInfo {
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        deleting: meta.deletion_timestamp.is_some(),
        down: ready_false || terminated || finished,
        url,
        weight,
        load,
    };
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    Some((info, error))
}

fn parse_weight(raw: &str) -> Result<u32, String> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|w| (1..=MAX_WEIGHT).contains(w))
        .ok_or_else(|| format!("expected an integer from 1 to {MAX_WEIGHT}"))
}

fn validate_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    if !url.has_host() {
        return Err("URL has no host".into());
    }
    Ok(())
}

/// A node's Ready condition (missing → ready: a new node has not reported yet).
pub fn node_ready(node: &Node) -> NodeReady {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    match ready {
        Some(c) if c.status != "True" => NodeReady::NotReady,
        _ => NodeReady::Ready,
    }
}

/// The node a lease in `kube-node-lease` belongs to and its `renewTime`, as an opaque string.
pub fn lease_renewal(lease: &Lease) -> Option<(String, Option<String>)> {
    let node = lease.metadata.name.clone()?;
    let renew = lease
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| format!("{:?}", t.0));
    Some((node, renew))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(labels: serde_json::Value, annotations: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "demo", "name": "origin", "labels": labels, "annotations": annotations},
            "spec": {"ports": [{"name": "http", "port": 80}, {"name": "ws", "port": 5080}]}
        }))
        .unwrap()
    }

    #[test]
    fn only_labelled_or_explicit_services_are_pools() {
        let none = HashSet::new();
        assert!(service_info(&service(json!({}), json!({})), &none).is_none());
        let labelled = service(json!({ENABLED_LABEL: "true"}), json!({}));
        assert!(service_info(&labelled, &none).is_some());
        let explicit = HashSet::from([PoolId::new("demo", "origin")]);
        assert!(service_info(&service(json!({}), json!({})), &explicit).is_some());
        assert!(
            service_info(&service(json!({ENABLED_LABEL: "false"}), json!({})), &none).is_none()
        );
    }

    #[test]
    fn port_annotation_selects_by_name_or_number_and_defaults_to_first() {
        let none = HashSet::new();
        let l = json!({ENABLED_LABEL: "true"});
        let port = |a| service_info(&service(l.clone(), a), &none).unwrap().port;
        assert_eq!(port(json!({})), PortChoice::Name("http".into()));
        assert_eq!(
            port(json!({PORT_ANNOTATION: "ws"})),
            PortChoice::Name("ws".into())
        );
        assert_eq!(
            port(json!({PORT_ANNOTATION: "5080"})),
            PortChoice::Name("ws".into())
        );
        assert_eq!(
            port(json!({PORT_ANNOTATION: "1935"})),
            PortChoice::Number(1935)
        );
    }

    #[test]
    fn probe_annotations_select_kind_path_and_port() {
        let none = HashSet::new();
        let l = json!({ENABLED_LABEL: "true"});
        let probe = |a| service_info(&service(l.clone(), a), &none).unwrap().probe;
        assert_eq!(probe(json!({})), ProbeSpec::default());
        let p = probe(
            json!({PROBE_ANNOTATION: "http", PROBE_PATH_ANNOTATION: "/healthz?full=1",
            PROBE_PORT_ANNOTATION: "5080"}),
        );
        assert_eq!(p.mode, ProbeMode::On(ProbeKind::Http));
        assert_eq!(p.path, "/healthz?full=1");
        assert_eq!(
            p.port,
            Some(PortChoice::Name("ws".into())),
            "a Service port maps to its name"
        );
        let p = probe(json!({PROBE_ANNOTATION: " tcp ", PROBE_PORT_ANNOTATION: "8086"}));
        assert_eq!(p.mode, ProbeMode::On(ProbeKind::Tcp));
        assert_eq!(p.port, Some(PortChoice::Number(8086)));
        assert_eq!(
            probe(json!({PROBE_ANNOTATION: "none"})).mode,
            ProbeMode::Off
        );
    }

    #[test]
    fn bad_probe_annotations_fall_back_and_say_why() {
        let (p, errors) = probe_spec(Some("grpc"), Some("healthz"), None);
        assert_eq!(p, ProbeSpec::default());
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].contains("grpc") && errors[1].contains("healthz"),
            "{errors:?}"
        );
        let (p, errors) = probe_spec(Some("http"), Some("/a b"), None);
        assert_eq!(
            (p.mode, p.path.as_str()),
            (ProbeMode::On(ProbeKind::Http), "/")
        );
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn slice_conditions_follow_kep_1672_defaults() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "demo", "name": "origin-x", "labels": {SERVICE_NAME_LABEL: "origin"}},
            "addressType": "IPv4",
            "ports": [{"name": "ws", "port": 5080}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": "p1"}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false}},
                {"addresses": []}
            ]
        }))
        .unwrap();
        let info = slice_info(&slice).unwrap();
        assert_eq!(info.service, PoolId::new("demo", "origin"));
        let e = &info.endpoints;
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[0].id(), e[0].ready, e[0].serving, e[0].terminating),
            ("p1", true, true, false)
        );
        assert_eq!(
            (e[1].id(), e[1].ready, e[1].serving, e[1].terminating),
            ("10.0.0.2", false, true, true)
        );
        assert_eq!((e[2].ready, e[2].serving), (false, false));
    }

    #[test]
    fn pod_signals_cover_deletion_readiness_termination_and_phase() {
        let pod = |extra: serde_json::Value| -> Pod {
            let mut v = json!({"metadata": {"namespace": "demo", "name": "p"}, "spec": {"nodeName": "node-a", "containers": []}});
            merge(&mut v, extra);
            serde_json::from_value(v).unwrap()
        };
        let info = |p: &Pod| pod_info(p).unwrap().0;
        assert!(!info(&pod(json!({}))).down);
        assert!(
            info(&pod(
                json!({"metadata": {"deletionTimestamp": "2026-11-22T00:00:00Z"}})
            ))
            .deleting
        );
        assert!(
            info(&pod(
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
            ))
            .down
        );
        assert!(info(&pod(json!({"status": {"phase": "Failed"}}))).down);
        assert!(info(&pod(json!({"status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137}}}]}}))).down);
    }

    #[test]
    fn malformed_url_annotation_is_reported_and_ignored() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"namespace": "demo", "name": "p",
            "annotations": {URL_ANNOTATION: "not a url"}}}))
        .unwrap();
        let (info, err) = pod_info(&p).unwrap();
        assert_eq!(info.url, None);
        assert!(err.unwrap().contains("not a url"));
        let p: Pod = serde_json::from_value(json!({"metadata": {"namespace": "demo", "name": "p",
            "annotations": {URL_ANNOTATION: "wss://203.0.113.9:5443/LiveApp/websocket"}}}))
        .unwrap();
        assert_eq!(
            pod_info(&p).unwrap().0.url.as_deref(),
            Some("wss://203.0.113.9:5443/LiveApp/websocket")
        );
    }

    #[test]
    fn weight_and_load_annotations_are_read_and_bad_values_reported_and_ignored() {
        let pod = |annotations: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"namespace": "demo", "name": "p",
                "annotations": annotations}}))
            .unwrap()
        };
        let (info, err) = pod_info(&pod(json!({}))).unwrap();
        assert_eq!((info.weight, info.load, err), (1, None, None));
        let (info, err) = pod_info(&pod(
            json!({WEIGHT_ANNOTATION: " 3 ", LOAD_ANNOTATION: "0.42"}),
        ))
        .unwrap();
        assert_eq!(info.weight, 3);
        assert_eq!(info.load.map(LoadSample::millionths), Some(420_000));
        assert_eq!(err, None);
        for bad in ["0", "-1", "1.5", "10001", "heavy", ""] {
            let (info, err) = pod_info(&pod(json!({WEIGHT_ANNOTATION: bad}))).unwrap();
            assert_eq!(info.weight, 1, "{bad:?}");
            assert!(err.unwrap().contains(WEIGHT_ANNOTATION), "{bad:?}");
        }
        for bad in ["1.2", "-0.1", "NaN", "inf", "50%"] {
            let (info, err) = pod_info(&pod(json!({LOAD_ANNOTATION: bad}))).unwrap();
            assert_eq!(info.load, None, "{bad:?}");
            assert!(err.unwrap().contains(LOAD_ANNOTATION), "{bad:?}");
        }
        // Every malformed annotation is named in the one error, and the good one still applies.
        let (info, err) = pod_info(&pod(json!({URL_ANNOTATION: "nope", WEIGHT_ANNOTATION: "0",
            LOAD_ANNOTATION: "1"})))
        .unwrap();
        let err = err.unwrap();
        assert!(
            err.contains(URL_ANNOTATION) && err.contains(WEIGHT_ANNOTATION),
            "{err}"
        );
        assert_eq!(info.load.map(LoadSample::millionths), Some(1_000_000));
    }

    #[test]
    fn node_ready_reads_the_ready_condition() {
        let node = |status: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": status}]}})).unwrap()
        };
        assert_eq!(node_ready(&node("True")), NodeReady::Ready);
        assert_eq!(node_ready(&node("Unknown")), NodeReady::NotReady);
        assert_eq!(node_ready(&node("False")), NodeReady::NotReady);
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }
}
