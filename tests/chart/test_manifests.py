"""manifests/: the default render (drift check) and the origin examples."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml

import chartlib

EXAMPLES = sorted((chartlib.REPO_ROOT / "manifests" / "examples").glob("*.yaml"))
PLACEHOLDERS = {"ip", "port", "pod", "namespace", "node", "zone", "hostname"}
ENABLED = "origin-discovery.io/enabled"
URL_TEMPLATE = "origin-discovery.io/url-template"
POD_URL = "origin-discovery.io/url"


def _load_all(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_manifest_is_the_default_render():
    want = chartlib.manifest_text()
    have = chartlib.MANIFEST.read_text() if chartlib.MANIFEST.exists() else ""
    assert have == want, (
        "manifests/origin-discovery.yaml drifted from the chart's default render; "
        "regenerate it with `UPDATE_MANIFESTS=1 scripts/test-chart.sh`"
    )


def test_manifest_objects_are_valid_and_start_with_the_namespace():
    docs = _load_all(chartlib.MANIFEST)
    assert docs[0]["kind"] == "Namespace"
    assert docs[0]["metadata"]["name"] == chartlib.DEFAULT_NAMESPACE
    for doc in docs:
        kubernetes_validate.validate(doc, "1.29.0", strict=True)
    kinds = [d["kind"] for d in docs]
    # RBAC and the ServiceAccount exist before the Deployment that uses them.
    assert kinds.index("Deployment") > max(kinds.index(k) for k in
                                           ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"))


def test_manifest_namespace_enforces_the_restricted_pod_security_profile():
    ns = _load_all(chartlib.MANIFEST)[0]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_objects_are_valid_kubernetes(path):
    for doc in _load_all(path):
        for version in ("1.29.0", "1.37.0"):
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_wired_for_origin_discovery(path):
    docs = _load_all(path)
    services = [d for d in docs if d["kind"] == "Service"]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert services and deployments
    for svc in services:
        meta = svc["metadata"]
        assert meta["labels"][ENABLED] == "true", f"{meta['name']}: not opted in"
        template = meta["annotations"][URL_TEMPLATE]
        assert set(re.findall(r"\{(\w+)\}", template)) <= PLACEHOLDERS, template
        port = meta["annotations"].get("origin-discovery.io/port")
        if port is not None:
            assert port in {p["name"] for p in svc["spec"]["ports"]} | {
                str(p["port"]) for p in svc["spec"]["ports"]}
        # The Service selects a Deployment's pods in the same namespace.
        matching = [
            dep for dep in deployments
            if dep["metadata"]["namespace"] == meta["namespace"]
            and svc["spec"]["selector"].items()
            <= dep["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matching, f"Service {meta['name']} selects no Deployment"
    for dep in deployments:
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        sleep = container["lifecycle"]["preStop"]["exec"]["command"][-1]
        seconds = int(re.fullmatch(r"sleep (\d+)", sleep).group(1))
        assert pod["terminationGracePeriodSeconds"] > seconds, "grace must outlast preStop"
        assert "readinessProbe" in container


def test_examples_show_the_per_pod_url_annotation():
    text = "\n".join(p.read_text() for p in EXAMPLES)
    assert POD_URL + ":" in text or POD_URL + "=" in text
    hostnet = chartlib.REPO_ROOT / "manifests" / "examples" / "antmedia-origin-hostnetwork.yaml"
    docs = _load_all(hostnet)
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert any(a.startswith(POD_URL + "=") for a in init["command"])
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}]
