"""RBAC: exactly what the controller watches (`origin-discovery rbac-rules`), read-only,
never secrets, and namespaced where it can be."""

from __future__ import annotations

import chartlib
from cases import MATRIX

RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
READ_VERBS = {"get", "list", "watch"}


def _grants(rules) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples of a list of PolicyRules."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _rendered_grants(r: chartlib.Render) -> set[tuple[str, str, str]]:
    roles = r.of_kind("ClusterRole") + r.of_kind("Role")
    return _grants([rule for role in roles for rule in role["rules"]])


def test_rbac_rules_binary_output_is_read_only(rbac_rules):
    for node_signals, rules in rbac_rules.items():
        assert {verb for _, _, verb in _grants(rules)} == READ_VERBS, node_signals


def test_rbac_covers_exactly_what_the_controller_watches(case, rbac_rules):
    """Union of every rendered (Cluster)Role == `origin-discovery rbac-rules [--node-signals]`."""
    name, values, r = case
    node_signals = values.get("nodeSignals", {}).get("enabled", False)
    assert _rendered_grants(r) == _grants(rbac_rules[node_signals]), name


def test_cluster_wide_clusterrole_equals_binary_rules_rule_for_rule(rbac_rules):
    for node_signals in (False, True):
        r = chartlib.render({"nodeSignals": {"enabled": node_signals}})
        (role,) = r.of_kind("ClusterRole")
        assert role["rules"] == rbac_rules[node_signals]
        assert not r.of_kind("Role") and not r.of_kind("RoleBinding")


def test_only_get_list_watch_and_never_secrets(case):
    name, _, r = case
    for role in r.of_kind("ClusterRole") + r.of_kind("Role"):
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= READ_VERBS, (name, role["metadata"]["name"], rule)
            assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
            assert "secrets" not in rule["resources"], rule
            assert not rule.get("nonResourceURLs"), rule
            assert not rule.get("resourceNames"), rule


def test_nodes_and_leases_only_with_node_signals(case):
    name, values, r = case
    node_signals = values.get("nodeSignals", {}).get("enabled", False)
    resources = {res for _, res, _ in _rendered_grants(r)}
    assert ("nodes" in resources) == node_signals, name
    assert ("leases" in resources) == node_signals, name


def test_single_namespace_uses_a_role_in_that_namespace():
    r = chartlib.render(MATRIX["single-namespace"])
    assert not r.of_kind("ClusterRole") and not r.of_kind("ClusterRoleBinding")
    (role,) = r.of_kind("Role")
    (binding,) = r.of_kind("RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "live"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    args = r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=live" in args


def test_single_namespace_with_node_signals_scopes_each_grant():
    """Nodes are cluster-scoped (a ClusterRole, nodes only); leases live in kube-node-lease
    (a Role there); everything else stays in the watched namespace."""
    r = chartlib.render(MATRIX["single-namespace-node-signals"])
    (cluster_role,) = r.of_kind("ClusterRole")
    assert {res for _, res, _ in _grants(cluster_role["rules"])} == {"nodes"}
    by_ns = {role["metadata"]["namespace"]: role for role in r.of_kind("Role")}
    assert set(by_ns) == {"live", "kube-node-lease"}
    assert {res for _, res, _ in _grants(by_ns["kube-node-lease"]["rules"])} == {"leases"}
    assert {res for _, res, _ in _grants(by_ns["live"]["rules"])} == {
        "pods", "services", "endpointslices"}


def test_every_role_is_bound_to_the_controller_service_account(case):
    name, _, r = case
    sa = r.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    bindings = r.of_kind("ClusterRoleBinding") + r.of_kind("RoleBinding")
    bound = set()
    for b in bindings:
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa,
                                  "namespace": chartlib.DEFAULT_NAMESPACE}], name
        ns = b["metadata"].get("namespace")
        bound.add((b["roleRef"]["kind"], b["roleRef"]["name"], ns))
    roles = {("ClusterRole", x["metadata"]["name"], None) for x in r.of_kind("ClusterRole")}
    roles |= {("Role", x["metadata"]["name"], x["metadata"]["namespace"])
              for x in r.of_kind("Role")}
    assert bound == roles, name
