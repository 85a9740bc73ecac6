"""values.schema.json: in sync with values.yaml, every value documented, bad values rejected
with a message that names the key."""

from __future__ import annotations

import json
import re

import helm_python
import jsonschema
import pytest
import yaml

import chartlib

VALUES_YAML = chartlib.CHART_DIR / "values.yaml"
SCHEMA_JSON = chartlib.CHART_DIR / "values.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_JSON.read_text())


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES_YAML.read_text())


def test_schema_is_valid_draft7(schema):
    jsonschema.Draft7Validator.check_schema(schema)


def test_defaults_pass_the_schema(schema, values):
    jsonschema.Draft7Validator(schema).validate(values)


def _closed_paths(node: dict, prefix: str = "") -> set[str]:
    """Dotted paths of every property declared under schema objects that are closed
    (additionalProperties: false): those must each exist in values.yaml."""
    paths: set[str] = set()
    if node.get("type") == "object" and node.get("additionalProperties") is False:
        for key, sub in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            paths.add(path)
            paths |= _closed_paths(sub, path + ".")
    return paths


def _value_paths(value, schema_node: dict, prefix: str = "") -> set[str]:
    """Dotted paths of values.yaml keys, descending only into closed schema objects
    (open ones, like `resources`, hold free-form Kubernetes structures)."""
    paths: set[str] = set()
    if isinstance(value, dict) and schema_node.get("additionalProperties") is False:
        for key, sub in value.items():
            path = f"{prefix}{key}"
            paths.add(path)
            paths |= _value_paths(sub, schema_node.get("properties", {}).get(key, {}), path + ".")
    return paths


def test_schema_and_values_yaml_declare_the_same_keys(schema, values):
    in_schema = _closed_paths(schema) - {"global"}
    in_values = _value_paths(values, schema)
    assert in_values - in_schema == set(), "values.yaml keys missing from values.schema.json"
    assert in_schema - in_values == set(), "values.schema.json keys missing from values.yaml"


def test_every_closed_object_in_the_schema_is_described(schema):
    def walk(node, path):
        assert node.get("description"), f"{path or '<root>'} has no description"
        for key, sub in node.get("properties", {}).items():
            if key != "global":
                walk(sub, f"{path}.{key}".lstrip("."))
    walk(schema, "")


def test_every_value_is_documented_in_values_yaml():
    """Each key has a `# --` comment right above it, or sits in a block whose parent has one
    (e.g. the children of `podSecurityContext`)."""
    lines = VALUES_YAML.read_text().splitlines()
    documented_at: list[tuple[int, bool]] = []  # stack of (indent, documented)
    undocumented = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while documented_at and documented_at[-1][0] >= indent:
            documented_at.pop()
        above = lines[i - 1].strip() if i else ""
        has_comment = above.startswith("#")
        parent_documented = any(doc for _, doc in documented_at)
        is_leaf = not line.rstrip().endswith(":")
        if is_leaf and not (has_comment or parent_documented):
            undocumented.append(f"line {i + 1}: {line.strip()}")
        documented_at.append((indent, has_comment or parent_documented))
    assert not undocumented, "undocumented values:\n" + "\n".join(undocumented)


# (values, fragment the error message must contain): each is a mistake a user could make.
BAD_VALUES = [
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"replicas": 3}, "replicas"),  # unknown top-level key (typo of replicaCount)
    ({"nodeSignals": {"enable": True}}, "enable"),  # unknown nested key
    ({"nodeSignals": {"enabled": "yes"}}, "/nodeSignals/enabled"),
    ({"logFormat": "xml"}, "/logFormat"),
    ({"staleAfter": "soon"}, "/staleAfter"),
    ({"staleAfter": 30}, "/staleAfter"),  # a bare number is not a duration
    ({"services": ["origin"]}, "/services/0"),  # needs NAMESPACE/NAME
    ({"services": "live/origin"}, "/services"),
    ({"deltaLog": 0}, "/deltaLog"),
    ({"maxSubscribers": -1}, "/maxSubscribers"),
    ({"corsAllowOrigins": "*"}, "/corsAllowOrigins"),
    ({"watchNamespace": "Not_A_Namespace"}, "/watchNamespace"),
    ({"ports": {"http": 70000}}, "/ports/http"),
    ({"service": {"type": "Headless"}}, "/service/type"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"ingress": {"hosts": [{"host": "x", "paths": [{"path": "v1", "pathType": "Prefix"}]}]}},
     "/ingress/hosts/0/paths/0/path"),
    ({"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
    ({"topologySpread": {"zoneWhenUnsatisfiable": "Never"}}, "/topologySpread/zoneWhenUnsatisfiable"),
    ({"podDisruptionBudget": {"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"),
    ({"prometheusRule": {"noReadyOriginsFor": "3 minutes"}}, "/prometheusRule/noReadyOriginsFor"),
    ({"prometheusRule": {"subscribersRatio": 1.5}}, "/prometheusRule/subscribersRatio"),
    ({"prometheusRule": {"pushLatencyP99Seconds": 0}}, "/prometheusRule/pushLatencyP99Seconds"),
    ({"prometheusRule": {"watchErrorsPer5m": "a few"}}, "/prometheusRule/watchErrorsPer5m"),
    ({"prometheusRule": {"labels": {"release": "x"}}}, "labels"),  # it is additionalLabels
    ({"grafanaDashboard": {"sidecarLabelValue": 1}}, "/grafanaDashboard/sidecarLabelValue"),
    ({"grafanaDashboard": {"sidecarLabel": "not a label"}}, "/grafanaDashboard/sidecarLabel"),
]


@pytest.mark.parametrize("bad, where", BAD_VALUES, ids=[str(b) for b, _ in BAD_VALUES])
def test_bad_values_are_rejected_with_a_clear_message(bad, where):
    with pytest.raises(helm_python.HelmValuesError) as err:
        chartlib.render(bad)
    message = str(err.value)
    assert "origin-discovery" in message and where in message, message
    # validate_schema reports the same (what `helm lint` and `helm install` print).
    with pytest.raises(helm_python.HelmValuesError):
        chartlib.chart().validate_schema(bad)


def test_unknown_key_message_says_it_is_not_allowed():
    with pytest.raises(helm_python.HelmValuesError) as err:
        chartlib.render({"replicas": 3})
    assert re.search(r"additional propert(y|ies) .*replicas.* not allowed", str(err.value)), \
        str(err.value)


def test_free_form_kubernetes_values_stay_open():
    """resources, affinity, securityContext … take any Kubernetes structure."""
    chartlib.render({
        "resources": {"requests": {"cpu": "1", "ephemeral-storage": "1Gi"}},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "role", "operator": "In", "values": ["edge"]}]}]}}},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "media",
                         "effect": "NoSchedule"}],
        "global": {"imageRegistry": "registry.example.com"},
    })
