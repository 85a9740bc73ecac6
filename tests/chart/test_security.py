"""Hardened pods in every render: the Pod Security `restricted` profile and then some."""

from __future__ import annotations

import chartlib

UID = 65532  # distroless `nonroot`, the Dockerfile's USER


def test_pod_security_context_is_hardened(case):
    name, _, r = case
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True, name
    assert psc["runAsUser"] == UID and psc["runAsGroup"] == UID
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(forbidden), forbidden


def test_container_security_context_is_hardened(case):
    name, _, r = case
    sc = chartlib.container(r)["securityContext"]
    assert sc["runAsNonRoot"] is True, name
    assert sc["runAsUser"] == UID
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_only_an_empty_dir_is_writable(default_render):
    pod = default_render.one("Deployment")["spec"]["template"]["spec"]
    assert [v for v in pod["volumes"] if "emptyDir" not in v] == []
    assert not any("hostPath" in v for v in pod["volumes"])


def test_no_ports_on_the_host(case):
    _, _, r = case
    for port in chartlib.container(r)["ports"]:
        assert "hostPort" not in port


def test_dockerfile_runs_as_the_chart_uid():
    text = (chartlib.REPO_ROOT / "Dockerfile").read_text()
    assert f"USER {UID}:{UID}" in text
    assert "nonroot" in text
    assert 'ENTRYPOINT ["/usr/local/bin/origin-discovery"]' in text
    assert 'CMD ["run"]' in text
