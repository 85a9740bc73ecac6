"""Shared fixtures: the render matrix and the controller binary's view of itself."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import chartlib
from cases import MATRIX

@pytest.fixture(scope="session", params=sorted(MATRIX))
def case(request) -> tuple[str, dict[str, Any], chartlib.Render]:
    """(name, values, render) for each entry of MATRIX."""
    values = MATRIX[request.param]
    return request.param, values, chartlib.render(values)


@pytest.fixture(scope="session")
def default_render() -> chartlib.Render:
    return chartlib.render()


@pytest.fixture(scope="session")
def run_help() -> str:
    """`origin-discovery run --help` (long form, with defaults)."""
    return chartlib.run_binary("run", "--help").stdout


@pytest.fixture(scope="session")
def run_flags(run_help: str) -> dict[str, str | None]:
    """Long flags of `run` → their default (None when they have none)."""
    flags: dict[str, str | None] = {}
    current = None
    for line in run_help.splitlines():
        m = re.match(r"^\s+(?:-\w, )?--([a-z0-9-]+)", line)
        if m:
            current = m.group(1)
            flags[current] = None
            continue
        d = re.match(r"^\s+\[default: (.*)\]$", line)
        if d and current:
            flags[current] = d.group(1)
    assert flags, f"no flags parsed from:\n{run_help}"
    return flags


@pytest.fixture(scope="session")
def rbac_rules():
    """`origin-discovery rbac-rules [--node-signals]` as parsed JSON, keyed by node_signals."""
    return {
        False: json.loads(chartlib.run_binary("rbac-rules").stdout),
        True: json.loads(chartlib.run_binary("rbac-rules", "--node-signals").stdout),
    }
