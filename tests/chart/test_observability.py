"""The PrometheusRule and the Grafana dashboard ConfigMap: structure, equality with the plain
rule file in manifests/prometheus/ and with dashboards/origin-discovery.json, thresholds from
values, and promtool tests for every alert. (Running promtool and every query against a real
Prometheus is scripts/test-observability.sh.)"""

from __future__ import annotations

import json
import re

import pytest
import yaml

import chartlib
from cases import MATRIX

PROMTOOL_TESTS = sorted((chartlib.REPO_ROOT / "tests" / "prometheus").glob("*.test.yaml"))
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")  # Prometheus duration
SEVERITIES = {"critical", "warning"}
ANNOTATIONS = {"summary", "description", "runbook"}
#: Every metric family of src/metrics.rs, plus the prober's (its metric is still to come).
METRIC_FAMILIES = {
    "origin_discovery_origins", "origin_discovery_subscribers",
    "origin_discovery_push_latency_seconds", "origin_discovery_signal_lead_seconds",
    "origin_discovery_watch_restarts_total", "origin_discovery_watch_errors_total",
    "origin_discovery_watch_events_total", "origin_discovery_stale",
    "origin_discovery_subscriber_resets_total", "origin_discovery_rejected_subscribers_total",
    "origin_discovery_probe_panic", "origin_discovery_probe_results_total",
    "origin_discovery_probe_duration_seconds", "origin_discovery_probe_removed_total",
    "origin_discovery_http_connections", "origin_discovery_http_connections_refused_total",
}


def _rules(spec: dict) -> list[dict]:
    return [rule for group in spec["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def plain_rules() -> dict:
    return yaml.safe_load(chartlib.PROMETHEUS_RULES.read_text())


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(chartlib.DASHBOARD.read_text())


# ----------------------------------------------------------------------- PrometheusRule


def test_plain_rule_file_is_the_default_render():
    have = chartlib.PROMETHEUS_RULES.read_text() if chartlib.PROMETHEUS_RULES.exists() else ""
    assert have == chartlib.prometheus_rules_text(), (
        "manifests/prometheus/origin-discovery-rules.yaml drifted from the chart's rules; "
        "regenerate it with `.venv/bin/python tests/chart/render_prometheus_rules.py`"
    )


def test_prometheus_rule_and_dashboard_are_off_by_default(default_render):
    assert not default_render.of_kind("PrometheusRule")
    assert not default_render.of_kind("ConfigMap")


def test_prometheus_rule_carries_the_plain_rules(plain_rules):
    r = chartlib.render({"prometheusRule": {"enabled": True,
                                            "additionalLabels": {"release": "prom"}}})
    pr = r.one("PrometheusRule")
    assert set(pr) == {"apiVersion", "kind", "metadata", "spec"}
    assert pr["apiVersion"] == "monitoring.coreos.com/v1"
    assert pr["metadata"]["namespace"] == chartlib.DEFAULT_NAMESPACE
    assert pr["metadata"]["labels"]["release"] == "prom"
    assert pr["metadata"]["labels"]["app.kubernetes.io/name"] == "origin-discovery"
    assert pr["spec"] == plain_rules


def test_prometheus_rule_namespace_can_be_set():
    r = chartlib.render({"prometheusRule": {"enabled": True, "namespace": "monitoring"}})
    assert r.one("PrometheusRule")["metadata"]["namespace"] == "monitoring"


def test_rules_are_well_formed(plain_rules):
    """What the Prometheus Operator's CRD and Alertmanager templates rely on."""
    assert set(plain_rules) == {"groups"}
    names = []
    for group in plain_rules["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            names.append(rule["alert"])
            assert re.fullmatch(r"OriginDiscovery[A-Z][A-Za-z]+", rule["alert"])
            assert isinstance(rule["expr"], str) and "origin_discovery_" in rule["expr"]
            if "for" in rule:
                assert DURATION.match(rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in SEVERITIES
            assert set(rule["annotations"]) == ANNOTATIONS, rule["alert"]
            for key, text in rule["annotations"].items():
                assert text.strip() and "<no value>" not in text, (rule["alert"], key)
            # Every label an annotation names is one the expression keeps.
            for label in re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())):
                assert label in {"instance", "pool", "resource", "transport"}, label
                if "without (instance, pod)" in rule["expr"]:
                    assert label != "instance", rule["alert"]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) == {
        "OriginDiscoveryPoolNoReadyOrigins", "OriginDiscoveryStale",
        "OriginDiscoveryWatchErrors", "OriginDiscoveryPushLatencyHigh",
        "OriginDiscoverySubscribersNearLimit", "OriginDiscoverySubscribersRejected",
        "OriginDiscoveryProbePanic",
    }


def _by_name(spec: dict) -> dict[str, dict]:
    return {rule["alert"]: rule for rule in _rules(spec)}


def test_default_thresholds_follow_max_subscribers(plain_rules):
    rules = _by_name(plain_rules)
    assert re.search(r">\s*18000$", rules["OriginDiscoverySubscribersNearLimit"]["expr"])
    assert re.search(r">\s*0\.5$", rules["OriginDiscoveryPushLatencyHigh"]["expr"])
    assert re.search(r">\s*2$", rules["OriginDiscoveryWatchErrors"]["expr"])
    assert rules["OriginDiscoveryPoolNoReadyOrigins"]["for"] == "3m"


def test_thresholds_come_from_values():
    spec = yaml.safe_load(chartlib.prometheus_rule_spec_text({
        "maxSubscribers": 10_000_000,
        "prometheusRule": {"subscribersRatio": 0.8, "pushLatencyP99Seconds": 0.125,
                           "watchErrorsPer5m": 10, "noReadyOriginsFor": "10m"},
    }))
    rules = _by_name(spec)
    near = rules["OriginDiscoverySubscribersNearLimit"]
    assert re.search(r">\s*8000000$", near["expr"]), near["expr"]  # never 8e+06
    assert "80% of --max-subscribers (10000000)" in " ".join(near["annotations"]["description"].split())
    assert re.search(r">\s*0\.125$", rules["OriginDiscoveryPushLatencyHigh"]["expr"])
    assert "threshold 0.125 s" in rules["OriginDiscoveryPushLatencyHigh"]["annotations"]["description"]
    assert re.search(r">\s*10$", rules["OriginDiscoveryWatchErrors"]["expr"])
    assert rules["OriginDiscoveryPoolNoReadyOrigins"]["for"] == "10m"


def test_everything_render_uses_its_max_subscribers():
    r = chartlib.render(MATRIX["everything"])
    rules = _by_name(r.one("PrometheusRule")["spec"])
    assert re.search(r">\s*45000$", rules["OriginDiscoverySubscribersNearLimit"]["expr"])
    assert re.search(r">\s*0\.25$", rules["OriginDiscoveryPushLatencyHigh"]["expr"])


def test_rules_only_use_known_metrics(plain_rules):
    for rule in _rules(plain_rules):
        for name in re.findall(r"\borigin_discovery_\w+", rule["expr"]):
            assert _family(name) in METRIC_FAMILIES, (rule["alert"], name)


def _family(series: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if series.endswith(suffix) and series[: -len(suffix)] in METRIC_FAMILIES:
            return series[: -len(suffix)]
    return series


# ----------------------------------------------------------------------- promtool tests


def test_every_alert_has_firing_and_silent_promtool_cases(plain_rules):
    assert PROMTOOL_TESTS, "no tests/prometheus/*.test.yaml"
    firing: set[str] = set()
    silent: set[str] = set()
    for path in PROMTOOL_TESTS:
        doc = yaml.safe_load(path.read_text())
        rule_files = [(path.parent / f).resolve() for f in doc["rule_files"]]
        assert rule_files == [chartlib.PROMETHEUS_RULES.resolve()], path.name
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = set(_by_name(plain_rules))
    assert names - firing == set(), "alerts without a promtool case where they fire"
    assert names - silent == set(), "alerts without a promtool case where they stay silent"
    assert (firing | silent) - names == set(), "promtool cases for alerts that do not exist"


# ----------------------------------------------------------------------- Grafana dashboard


def test_dashboard_config_map_ships_the_json_file():
    r = chartlib.render(MATRIX["grafana-dashboard"])
    cm = r.one("ConfigMap")
    labels = cm["metadata"]["labels"]
    assert labels["grafana_dashboard"] == "1"
    assert labels["team"] == "media"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Media"}
    assert cm["metadata"]["namespace"] == chartlib.DEFAULT_NAMESPACE
    assert set(cm["data"]) == {"origin-discovery.json"}
    assert cm["data"]["origin-discovery.json"] == chartlib.DASHBOARD.read_text().rstrip("\n")
    json.loads(cm["data"]["origin-discovery.json"])


def test_dashboard_sidecar_label_and_namespace_can_be_changed():
    r = chartlib.render({"grafanaDashboard": {
        "enabled": True, "namespace": "monitoring", "sidecarLabel": "grafana.io/dashboard",
        "sidecarLabelValue": "true"}})
    cm = r.one("ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana.io/dashboard"] == "true"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows hold their panels
    return out


def test_dashboard_is_importable(dashboard):
    """The fields Grafana needs to provision the dashboard from a file or the sidecar."""
    assert dashboard["uid"] == "origin-discovery" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert "id" not in dashboard or dashboard["id"] is None, "an id pins a Grafana instance"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_dashboard_panels_query_prometheus_through_the_variable(dashboard):
    for p in _panels(dashboard):
        if p["type"] == "row":
            continue
        assert p["title"] and p.get("description"), p["id"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
            assert t["expr"].strip(), p["title"]


def test_dashboard_layout_has_no_overlaps(dashboard):
    taken: dict[tuple[int, int], str] = {}
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{p['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = p["title"]


def test_dashboard_variables_used_are_defined(dashboard):
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    builtin = {"__rate_interval", "__interval", "__range"}
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for expr in exprs:
        for name in re.findall(r"\$\{?(\w+)", expr):
            assert name in defined | builtin, f"undefined variable ${name} in {expr}"


def test_dashboard_shows_every_metric(dashboard):
    used = {_family(name) for p in _panels(dashboard) for t in p.get("targets", [])
            for name in re.findall(r"\borigin_discovery_\w+", t["expr"])}
    assert used - METRIC_FAMILIES == set(), "unknown metrics in the dashboard"
    assert METRIC_FAMILIES - used == set(), "metrics without a panel"
