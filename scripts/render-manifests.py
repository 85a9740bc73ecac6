#!/usr/bin/env python3
"""Regenerate manifests/origin-discovery.yaml from the chart's default render.

Needs the chart-test venv (helm-python-sdk): run it as
    .venv/bin/python scripts/render-manifests.py           # write the file
    .venv/bin/python scripts/render-manifests.py --check   # exit 1 if it drifted
or simply `UPDATE_MANIFESTS=1 scripts/test-chart.sh`, which sets the venv up first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chart"))

import chartlib  # noqa: E402


if __name__ == "__main__":
    sys.exit(
        chartlib.regenerate(chartlib.MANIFEST, chartlib.manifest_text(), hint="UPDATE_MANIFESTS=1 scripts/test-chart.sh")
    )
