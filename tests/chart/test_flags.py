"""Every flag of `origin-discovery run` is reachable from values, and every command line the
chart renders is one the binary accepts."""

from __future__ import annotations

import chartlib
from cases import MATRIX

#: Flags the chart deliberately never sets: help/version are not settings, and in a pod the
#: controller uses its in-cluster config, never a kubeconfig file
#: (extraArgs can still pass one).
NOT_FROM_VALUES = {"help", "version", "kubeconfig"}

#: Chart defaults that deliberately differ from the binary's, and why.
DEFAULT_DIFFERENCES = {
    "log-format": "json",  # log collectors in a cluster want one JSON object per line
}


def _flags(args: list[str]) -> dict[str, list[str | None]]:
    """`--name=value` / `--name` arguments → name → values."""
    out: dict[str, list[str | None]] = {}
    for arg in args:
        assert arg.startswith("--") or arg == "run", arg
        if arg == "run":
            continue
        name, eq, value = arg[2:].partition("=")
        out.setdefault(name, []).append(value if eq else None)
    return out


def _args(values) -> list[str]:
    return chartlib.container(chartlib.render(values))["args"]


def test_every_run_flag_is_reachable_from_values(run_flags):
    """With every option set (but no extraArgs), the chart passes every flag of `run`."""
    values = {**MATRIX["everything"], "extraArgs": []}
    rendered = set(_flags(_args(values)))
    missing = set(run_flags) - NOT_FROM_VALUES - rendered
    assert not missing, f"flags of `origin-discovery run` no value produces: {sorted(missing)}"


def test_chart_passes_only_flags_the_binary_knows(case, run_flags):
    name, values, r = case
    args = chartlib.container(r)["args"]
    extra = set(_flags(values.get("extraArgs", [])))
    unknown = set(_flags(args)) - set(run_flags) - extra
    assert not unknown, f"{name}: the chart passes flags `run` does not have: {unknown}"


def test_binary_accepts_every_rendered_command_line(case):
    """The binary parses (and validates) the chart's arguments; a trailing --help makes it
    stop after parsing instead of starting the controller. clap rejects bad values or
    unknown flags with exit code 2 before reaching --help."""
    name, _, r = case
    args = chartlib.container(r)["args"]
    result = chartlib.run_binary(*args, "--help", check=False)
    assert result.returncode == 0, f"{name}: {args}\n{result.stderr}"


def test_binary_check_above_does_catch_bad_arguments():
    result = chartlib.run_binary("run", "--stale-after=soon", "--help", check=False)
    assert result.returncode == 2


def test_chart_defaults_match_the_binary_defaults(run_flags):
    # Node signals on, so that --node-lease-grace (only passed with them) is compared too.
    args = _flags(_args({"nodeSignals": {"enabled": True}}))
    for flag, default in run_flags.items():
        if default is None or flag in NOT_FROM_VALUES:
            continue
        want = DEFAULT_DIFFERENCES.get(flag, default)
        assert args.get(flag) == [want], f"--{flag}: chart {args.get(flag)}, binary {default}"
    for flag in DEFAULT_DIFFERENCES:
        assert flag in run_flags, f"stale DEFAULT_DIFFERENCES entry {flag}"


def test_optional_flags_are_absent_by_default(default_render):
    args = _flags(chartlib.container(default_render)["args"])
    for flag in ("namespace", "service", "pod-selector", "node-signals", "node-lease-grace",
                 "cors-allow-origin", "trusted-proxies"):
        assert flag not in args, flag


def test_each_value_reaches_its_flag():
    values = MATRIX["custom-flags"]
    args = _flags(_args({**values, "extraArgs": []}))
    assert _flags(_args({"watchNamespace": "live"}))["namespace"] == ["live"]
    assert args["service"] == ["live/origin", "vod/edge"]
    assert args["pod-selector"] == ["app.kubernetes.io/name in (antmedia,srs)"]
    assert args["stale-after"] == ["1m"]
    assert args["heartbeat-interval"] == ["2s"]
    assert args["node-signals"] == [None]
    assert args["node-lease-grace"] == ["15s"]
    assert args["max-subscribers"] == ["50000"]
    assert args["max-subscribers-per-ip"] == ["200"]
    assert args["delta-log"] == ["4096"]
    assert args["probe-default"] == ["http"]
    assert args["probe-interval"] == ["1s"]
    assert args["probe-timeout"] == ["300ms"]
    assert args["probe-failures"] == ["3"]
    assert args["probe-successes"] == ["2"]
    assert args["probe-panic-threshold"] == ["75"]
    assert args["trusted-proxies"] == ["10.0.0.0/8,fd00::/8"]
    assert args["forwarded-header"] == ["forwarded"]
    assert args["max-connections"] == ["60000"]
    assert args["header-read-timeout"] == ["5s"]
    assert args["max-header-bytes"] == ["32KiB"]
    assert args["write-timeout"] == ["10s"]
    assert args["cors-allow-origin"] == ["https://player.example.com", "*"]
    assert args["shutdown-timeout"] == ["20s"]
    assert args["log-level"] == ["origin_discovery=debug,info"]
    assert args["log-format"] == ["text"]
    assert args["listen"] == ["0.0.0.0:8081"]
    assert args["admin-listen"] == ["0.0.0.0:9091"]


def test_extra_args_and_env_are_appended():
    r = chartlib.render(MATRIX["custom-flags"])
    c = chartlib.container(r)
    assert c["args"][-1] == "--kubeconfig=/etc/origin-discovery/kubeconfig"
    assert {"name": "RUST_BACKTRACE", "value": "1"} in c["env"]


def test_large_numbers_are_not_rendered_in_float_notation():
    args = _flags(
        _args({"maxSubscribers": 10_000_000, "deltaLog": 1_000_000, "maxHeaderBytes": 1_048_576})
    )
    assert args["max-subscribers"] == ["10000000"]
    assert args["delta-log"] == ["1000000"]
    assert args["max-header-bytes"] == ["1048576"]


def test_ports_follow_the_listen_flags():
    r = chartlib.render(MATRIX["custom-flags"])
    c = chartlib.container(r)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8081, "admin": 9091}
    svc = r.one("Service")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 80, "admin": 9090}
