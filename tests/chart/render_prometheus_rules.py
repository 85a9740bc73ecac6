#!/usr/bin/env python3
"""Regenerate manifests/prometheus/origin-discovery-rules.yaml: the chart's PrometheusRule
rules (charts/origin-discovery/rules/) rendered with the default values.

Needs the chart-test venv (helm-python-sdk), which scripts/test-chart.sh sets up:
    .venv/bin/python tests/chart/render_prometheus_rules.py           # write the file
    .venv/bin/python tests/chart/render_prometheus_rules.py --check   # exit 1 if it drifted
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chartlib  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    args = parser.parse_args()

    want = chartlib.prometheus_rules_text()
    path = chartlib.PROMETHEUS_RULES
    have = path.read_text() if path.exists() else None
    rel = path.relative_to(chartlib.REPO_ROOT)
    if have == want:
        print(f"{rel} is up to date")
        return 0
    if args.check:
        print(f"{rel} differs from the chart's rules; regenerate with "
              ".venv/bin/python tests/chart/render_prometheus_rules.py", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(want)
    print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
