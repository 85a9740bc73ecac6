#!/usr/bin/env bash
# Chart and manifest tests: renders charts/origin-discovery offline (real Helm SDK via
# helm-python-sdk), validates every object against the Kubernetes schemas
# (kubernetes-validate --strict), and checks RBAC, flags and manifests/ against the binary.
#
# Usage:
#   scripts/test-chart.sh                     # run tests/chart
#   UPDATE_MANIFESTS=1 scripts/test-chart.sh  # regenerate manifests/origin-discovery.yaml first
#   scripts/test-chart.sh -k rbac             # extra arguments go to pytest
#
# Environment:
#   ORIGIN_DISCOVERY_BIN  controller binary to check against (default target/debug/origin-discovery;
#                         built with `cargo build` when missing)
#   PYTHON                interpreter used to create the venv (default python3)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv
requirements=tests/chart/requirements.txt
stamp="$venv/.chart-requirements"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "test-chart: creating $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
fi
# Reinstall only when requirements.txt changed since the last successful install.
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  echo "test-chart: installing $requirements into $venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

export ORIGIN_DISCOVERY_BIN="${ORIGIN_DISCOVERY_BIN:-target/debug/origin-discovery}"
if [[ ! -x "$ORIGIN_DISCOVERY_BIN" ]]; then
  if [[ "$ORIGIN_DISCOVERY_BIN" != target/debug/origin-discovery ]]; then
    echo "test-chart: ORIGIN_DISCOVERY_BIN=$ORIGIN_DISCOVERY_BIN is not an executable" >&2
    exit 1
  fi
  echo "test-chart: $ORIGIN_DISCOVERY_BIN missing, running cargo build" >&2
  cargo build --quiet --bin origin-discovery
fi

if [[ -n "${UPDATE_MANIFESTS:-}" ]]; then
  "$venv/bin/python" scripts/render-manifests.py
fi

# -p no:cacheprovider: leave no .pytest_cache in the work tree.
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/chart "$@"
