"""The chart lints, renders for every option, and every object is valid Kubernetes."""

from __future__ import annotations

import re
import tomllib

import helm_python
import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError

import chartlib
from cases import MATRIX

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema set
# kubernetes-validate ships: every object must be valid for both.
KUBE_VERSIONS = ["1.29.0", "1.37.0"]

# Kinds from CRDs, which kubernetes-validate has no schema for; each is checked by hand below.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"),
             ("monitoring.coreos.com/v1", "PrometheusRule")}


def test_chart_lints_strict():
    report = helm_python.lint(str(chartlib.CHART_DIR), strict=True, kube_version="v1.29.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


@pytest.mark.parametrize("name", ["single-namespace", "ingress", "everything"])
def test_chart_lints_strict_with_options(name):
    report = helm_python.lint(str(chartlib.CHART_DIR), MATRIX[name], strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_app_version_is_the_crate_version():
    cargo = tomllib.loads((chartlib.REPO_ROOT / "Cargo.toml").read_text())
    meta = chartlib.chart().metadata
    assert meta["apiVersion"] == "v2"
    version = cargo["package"]["version"]
    if isinstance(version, dict):  # `version.workspace = true`
        version = cargo["workspace"]["package"]["version"]
    assert meta["appVersion"] == version
    version = chartlib.run_binary("--version").stdout.split()[-1]
    assert version == meta["appVersion"], "binary --version differs from appVersion"


def test_every_object_is_valid_kubernetes_strict(case):
    name, _, r = case
    assert r.docs, f"{name}: nothing rendered"
    for doc in r.docs:
        obj = doc.obj
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                pytest.fail(f"{name}: {doc.source} {obj['kind']}/{doc.name} invalid for "
                            f"Kubernetes {version} at {path}: {e.message}")
            except SchemaNotFoundError as e:
                pytest.fail(f"{name}: {e.message}")


def test_crd_kinds_are_really_unknown_to_kubernetes_validate():
    """Guard for the skip above: if kubernetes-validate learns a CRD kind, use it. The
    PrometheusRule is checked by hand in test_observability.py."""
    r = chartlib.render({"serviceMonitor": {"enabled": True},
                         "prometheusRule": {"enabled": True}})
    for _, kind in CRD_KINDS:
        with pytest.raises(SchemaNotFoundError):
            kubernetes_validate.validate(r.one(kind), KUBE_VERSIONS[-1], strict=True)


def test_service_monitor_minimal_check():
    """kubernetes-validate has no schema for the Prometheus Operator CRD, so this checks by
    hand what the operator needs: the right API, a selector matching our Service, and an
    endpoint on the Service's admin port at /metrics."""
    r = chartlib.render({"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    sm = r.one("ServiceMonitor")
    svc = r.one("Service")
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"}
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["namespace"] == chartlib.DEFAULT_NAMESPACE
    assert sm["metadata"]["labels"]["release"] == "prom"
    spec = sm["spec"]
    assert set(spec) <= {"jobLabel", "namespaceSelector", "selector", "endpoints"}
    assert spec["namespaceSelector"] == {"matchNames": [chartlib.DEFAULT_NAMESPACE]}
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= svc["metadata"]["labels"].items()
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert endpoint["port"] == "admin"
    assert endpoint["path"] == "/metrics"
    duration = re.compile(r"^(\d+(ms|s|m|h))+$")  # Prometheus duration
    assert duration.match(endpoint["interval"]) and duration.match(endpoint["scrapeTimeout"])
    assert sm["spec"]["jobLabel"] in svc["metadata"]["labels"]


def test_service_monitor_is_off_by_default(default_render):
    assert not default_render.of_kind("ServiceMonitor")


def test_default_render_has_the_expected_objects(default_render):
    kinds = sorted(d.kind for d in default_render.docs)
    assert kinds == sorted([
        "ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget",
        "Service", "ServiceAccount",
    ])


def test_namespaced_objects_carry_the_release_namespace(case):
    """So manifests/ applies to the right namespace without `-n`."""
    name, values, r = case
    for doc in r.docs:
        if doc.kind in {"ClusterRole", "ClusterRoleBinding"}:
            assert "namespace" not in doc.obj["metadata"], doc.name
        elif doc.kind in {"Role", "RoleBinding"}:
            assert doc.obj["metadata"]["namespace"] in {values.get("watchNamespace"),
                                                        "kube-node-lease"}
        else:
            assert doc.obj["metadata"]["namespace"] == chartlib.DEFAULT_NAMESPACE, doc.name


def test_deployment_shape(default_render):
    dep = default_render.one("Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = spec["template"]["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()

    keys = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert set(keys) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for c in keys.values():
        assert c["labelSelector"]["matchLabels"] == selector

    c = chartlib.container(default_render)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "admin": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["startupProbe"]["httpGet"]["port"] == "admin"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert c["image"] == f"origin-discovery:{chartlib.chart().metadata['appVersion']}"
    assert c["args"][0] == "run"


def test_grace_period_outlasts_shutdown_timeout(case):
    name, _, r = case
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    c = chartlib.container(r)
    shutdown = next(a for a in c["args"] if a.startswith("--shutdown-timeout="))
    seconds = _seconds(shutdown.split("=", 1)[1])
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert pod["terminationGracePeriodSeconds"] > pre_stop + seconds, name


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


def test_short_grace_period_is_refused_at_render():
    with pytest.raises(helm_python.HelmRenderError, match="terminationGracePeriodSeconds"):
        chartlib.render({"terminationGracePeriodSeconds": 10, "shutdownTimeout": "10s"})
    with pytest.raises(helm_python.HelmRenderError, match="preStopSleepSeconds"):
        chartlib.render({"terminationGracePeriodSeconds": 30, "preStopSleepSeconds": 25})
    # A duration form the chart cannot parse is left to the controller.
    chartlib.render({"terminationGracePeriodSeconds": 5, "shutdownTimeout": "1m 30s"})


def test_services_outside_the_watched_namespace_are_refused_at_render():
    with pytest.raises(helm_python.HelmRenderError, match="outside watchNamespace live"):
        chartlib.render({"watchNamespace": "live", "services": ["live/origin", "vod/edge"]})
    chartlib.render({"watchNamespace": "live", "services": ["live/origin"]})


def test_service_exposes_http_and_admin(default_render):
    svc = default_render.one("Service")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert ports == {"http": (8080, "http"), "admin": (9090, "admin")}
    dep = default_render.one("Deployment")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


def test_pdb_selects_the_pods(case):
    name, values, r = case
    pdb = r.one("PodDisruptionBudget")
    dep = r.one("Deployment")
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    assert ("maxUnavailable" in pdb["spec"]) != ("minAvailable" in pdb["spec"])


def test_ingress_routes_the_public_port():
    r = chartlib.render(MATRIX["ingress"])
    ing = r.one("Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "discovery.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": r.one("Service")["metadata"]["name"], "port": {"name": "http"}}
    assert ing["spec"]["tls"][0]["secretName"] == "discovery-tls"


def test_values_document_websocket_friendly_ingress_settings():
    text = (chartlib.CHART_DIR / "values.yaml").read_text()
    for needle in ["proxy-read-timeout", "proxy-send-timeout", "WebSocket"]:
        assert needle in text


def test_network_policy_admits_both_ports():
    r = chartlib.render(MATRIX["network-policy"])
    np = r.one("NetworkPolicy")
    assert np["spec"]["podSelector"] == r.one("Deployment")["spec"]["selector"]
    ports = [rule["ports"][0]["port"] for rule in np["spec"]["ingress"]]
    assert ports == ["http", "admin"]
    assert "from" not in np["spec"]["ingress"][0], "the public API is open by default"
    assert np["spec"]["ingress"][1]["from"][0]["namespaceSelector"]
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert chartlib.render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")[
        "spec"]["policyTypes"] == ["Ingress"]


def test_fullname_is_at_most_63_characters():
    long_release = "a-very-long-release-name-for-origin-discovery-that-goes-on-and-on"
    r = chartlib.render(name=long_release[:53])  # Helm caps release names at 53
    for doc in r.docs:
        assert len(doc.name) <= 63, doc.name
        assert not doc.name.endswith("-")
    r = chartlib.render({"fullnameOverride": "od"}, name="whatever")
    assert r.one("Deployment")["metadata"]["name"] == "od"
    r = chartlib.render(name="edge")
    assert r.one("Deployment")["metadata"]["name"] == "edge-origin-discovery"


def test_notes_tell_how_to_reach_and_watch_the_api(default_render):
    notes = default_render.notes
    assert "kubectl port-forward -n origin-discovery svc/origin-discovery 8080:8080" in notes
    assert "curl -s http://localhost:8080/v1/pools" in notes
    assert "websocat ws://localhost:8080/v1/pools/<ns>/<service>/watch" in notes
    assert "wscat" in notes


def test_existing_service_account_is_used_without_creating_one():
    r = chartlib.render({"serviceAccount": {"create": False, "name": "prebuilt"}})
    assert not r.of_kind("ServiceAccount")
    assert r.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "prebuilt"
    binding = r.one("ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "prebuilt"


def test_rbac_can_be_left_to_the_cluster_admin():
    r = chartlib.render({"rbac": {"create": False}, "nodeSignals": {"enabled": True}})
    assert not [d for d in r.docs if d.kind in {"ClusterRole", "ClusterRoleBinding", "Role",
                                                 "RoleBinding"}]


def test_numbers_render_as_integers_never_float_notation():
    """Helm hands numbers to templates as float64 (10000000 would print as 1e+07)."""
    r = chartlib.render({"replicaCount": 10_000_000, "terminationGracePeriodSeconds": 3_600_000,
                         "podDisruptionBudget": {"minAvailable": 1_000_000}})
    text = "\n".join(d.text for d in r.docs)
    assert "e+" not in text
    assert r.one("Deployment")["spec"]["replicas"] == 10_000_000
    assert r.one("PodDisruptionBudget")["spec"]["minAvailable"] == 1_000_000


@pytest.mark.parametrize("pdb, want", [
    ({"minAvailable": "50%"}, {"minAvailable": "50%"}),
    ({"maxUnavailable": 1}, {"maxUnavailable": 1}),
    ({"maxUnavailable": "25%"}, {"maxUnavailable": "25%"}),
    ({"maxUnavailable": 0}, {"maxUnavailable": 0}),
])
def test_pdb_takes_integers_or_percentages(pdb, want):
    spec = chartlib.render({"podDisruptionBudget": pdb}).one("PodDisruptionBudget")["spec"]
    assert {k: v for k, v in spec.items() if k != "selector"} == want
