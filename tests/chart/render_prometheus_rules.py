#!/usr/bin/env python3
"""Regenerate manifests/prometheus/origin-discovery-rules.yaml: the chart's PrometheusRule
rules (charts/origin-discovery/rules/) rendered with the default values.

Needs the chart-test venv (helm-python-sdk), which scripts/test-chart.sh sets up:
    .venv/bin/python tests/chart/render_prometheus_rules.py           # write the file
    .venv/bin/python tests/chart/render_prometheus_rules.py --check   # exit 1 if it drifted
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chartlib  # noqa: E402


if __name__ == "__main__":
    sys.exit(
        chartlib.regenerate(chartlib.PROMETHEUS_RULES, chartlib.prometheus_rules_text(), hint=".venv/bin/python tests/chart/render_prometheus_rules.py")
    )
