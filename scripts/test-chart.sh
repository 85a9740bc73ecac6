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

. scripts/lib.sh
venv=.venv
ensure_venv tests/chart/requirements.txt
ensure_binary

if [[ -n "${UPDATE_MANIFESTS:-}" ]]; then
  "$venv/bin/python" scripts/render-manifests.py
fi

# -p no:cacheprovider: leave no .pytest_cache in the work tree.
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/chart "$@"
