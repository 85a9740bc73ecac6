"""Offline rendering of charts/origin-discovery, shared by the chart tests and
scripts/render-manifests.py.

Rendering uses helm-python-sdk (`helm_python`), which binds the real Helm Go SDK: no
`helm` binary, no cluster. `Chart.render` also validates values against
values.schema.json, exactly as `helm install` / `helm template` do.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "origin-discovery"
MANIFEST = REPO_ROOT / "manifests" / "origin-discovery.yaml"

#: Release name and namespace of the default render in manifests/.
DEFAULT_RELEASE = "origin-discovery"
DEFAULT_NAMESPACE = "origin-discovery"

# Helm's install order (pkg/release/util/kind_sorter.go), so manifests/ applies in the same
# order `helm install` would: namespaces and RBAC before the Deployment that needs them.
_INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
    "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService",
]


def binary() -> Path:
    """The controller binary the tests compare against (built by scripts/test-chart.sh)."""
    return REPO_ROOT / os.environ.get("ORIGIN_DISCOVERY_BIN", "target/debug/origin-discovery")


def run_binary(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(binary()), *args], capture_output=True, text=True, check=check, timeout=60
    )


_chart: helm_python.Chart | None = None


def chart() -> helm_python.Chart:
    """The loaded chart (loaded once per process; charts are immutable)."""
    global _chart
    if _chart is None:
        _chart = helm_python.Chart.load(str(CHART_DIR))
    return _chart


@dataclass
class Doc:
    """One rendered object with the template it came from and its source text."""

    source: str
    text: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]


@dataclass
class Render:
    """A full render: the objects (in Helm's install order) and NOTES.txt."""

    docs: list[Doc]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d.obj for d in self.docs if d.kind == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [d.obj for d in self.docs]


_DOC_SPLIT = re.compile(r"(?m)^---[ \t]*$")


def render(
    values: dict[str, Any] | None = None,
    *,
    name: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
) -> Render:
    """Render the chart offline with `values` over the defaults (schema-validated)."""
    out = chart().render(values or {}, name=name, namespace=namespace)
    docs: list[Doc] = []
    notes = ""
    for path in sorted(out):
        if path.endswith("NOTES.txt"):
            notes = out[path]
            continue
        for chunk in _DOC_SPLIT.split(out[path]):
            obj = yaml.safe_load(chunk)
            if obj is None:
                continue  # empty: a disabled template, or comments only
            docs.append(Doc(source=path, text=chunk.strip("\n"), obj=obj))
    docs.sort(key=lambda d: _install_rank(d.kind))  # stable: template order within a kind
    return Render(docs=docs, notes=notes)


def _install_rank(kind: str) -> int:
    try:
        return _INSTALL_ORDER.index(kind)
    except ValueError:
        return len(_INSTALL_ORDER)


def container(r: Render) -> dict[str, Any]:
    """The controller container of a render's Deployment."""
    (c,) = r.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def namespace_object(namespace: str) -> str:
    """The Namespace that heads manifests/ (Helm's `--create-namespace` does this for the
    chart). Labelled for the Pod Security `restricted` profile, which the pods satisfy."""
    return (
        "apiVersion: v1\n"
        "kind: Namespace\n"
        "metadata:\n"
        f"  name: {namespace}\n"
        "  labels:\n"
        f"    kubernetes.io/metadata.name: {namespace}\n"
        "    pod-security.kubernetes.io/enforce: restricted\n"
        "    pod-security.kubernetes.io/warn: restricted"
    )


MANIFEST_HEADER = """\
# origin-discovery: plain manifests for `kubectl apply -f manifests/origin-discovery.yaml`.
#
# GENERATED: the default render of charts/origin-discovery (release "origin-discovery" in
# namespace "origin-discovery"), preceded by that Namespace. Do not edit by hand: change
# the chart and regenerate with `UPDATE_MANIFESTS=1 scripts/test-chart.sh` (or
# `.venv/bin/python scripts/render-manifests.py`). tests/chart fails when this file drifts.
"""


def manifest_text() -> str:
    """What manifests/origin-discovery.yaml must contain."""
    r = render()
    parts = [MANIFEST_HEADER + "---\n" + namespace_object(DEFAULT_NAMESPACE)]
    for d in r.docs:
        parts.append(f"# Source: {d.source}\n{d.text}")
    return "\n---\n".join(parts) + "\n"


# --- Prometheus rules: rules/origin-discovery-rules.yaml in the chart is the source; the
# --- plain rule file in manifests/prometheus/ is its render with the default values.

RULES_SOURCE = CHART_DIR / "rules" / "origin-discovery-rules.yaml"
PROMETHEUS_RULES = REPO_ROOT / "manifests" / "prometheus" / "origin-discovery-rules.yaml"
DASHBOARD = CHART_DIR / "dashboards" / "origin-discovery.json"

PROMETHEUS_RULES_HEADER = """\
# GENERATED: the rules of charts/origin-discovery/rules/origin-discovery-rules.yaml as the
# chart renders them into its PrometheusRule with the default values (maxSubscribers 20000,
# prometheusRule.*). Load it with `rule_files:` in a Prometheus without the Operator. Do not
# edit by hand: change the chart file and regenerate with
# `.venv/bin/python tests/chart/render_prometheus_rules.py`; tests/chart fails on drift.
"""


def prometheus_rule_spec_text(values: dict[str, Any] | None = None) -> str:
    """The `spec` of the rendered PrometheusRule as text, un-indented: a Prometheus rule
    file (comments kept)."""
    r = render({**(values or {}), "prometheusRule": {
        **(values or {}).get("prometheusRule", {}), "enabled": True}})
    (doc,) = [d for d in r.docs if d.kind == "PrometheusRule"]
    lines = doc.text.splitlines()
    body = lines[lines.index("spec:") + 1:]
    out = []
    for line in body:
        if not line.strip():
            out.append("")
        elif line.startswith("  "):
            out.append(line[2:])
        else:
            raise ValueError(f"PrometheusRule spec line not indented: {line!r}")
    return "\n".join(out).strip("\n") + "\n"


def prometheus_rules_text() -> str:
    """What manifests/prometheus/origin-discovery-rules.yaml must contain."""
    return PROMETHEUS_RULES_HEADER + prometheus_rule_spec_text()


def regenerate(path: Path, want: str, argv: list[str] | None = None, hint: str = "") -> int:
    """The body of a regenerate script: write `want` to `path` (a file generated from the
    chart), or with `--check` only say whether it drifted (exit code 1, with `hint` on how
    to regenerate it)."""
    parser = argparse.ArgumentParser(description=f"Regenerate {path.relative_to(REPO_ROOT)}")
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    args = parser.parse_args(argv)
    have = path.read_text() if path.exists() else None
    rel = path.relative_to(REPO_ROOT)
    if have == want:
        print(f"{rel} is up to date")
        return 0
    if args.check:
        print(f"{rel} differs from the chart; regenerate with {hint}", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(want)
    print(f"wrote {rel}")
    return 0
