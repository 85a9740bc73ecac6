#!/usr/bin/env python3
"""Regenerate manifests/origin-discovery.yaml from the chart's default render.

Needs the chart-test venv (helm-python-sdk): run it as
    .venv/bin/python scripts/render-manifests.py           # write the file
    .venv/bin/python scripts/render-manifests.py --check   # exit 1 if it drifted
or simply `UPDATE_MANIFESTS=1 scripts/test-chart.sh`, which sets the venv up first.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chart"))

import chartlib  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    args = parser.parse_args()

    want = chartlib.manifest_text()
    path = chartlib.MANIFEST
    have = path.read_text() if path.exists() else None
    rel = path.relative_to(chartlib.REPO_ROOT)
    if have == want:
        print(f"{rel} is up to date")
        return 0
    if args.check:
        print(f"{rel} differs from the chart's default render; "
              "regenerate with UPDATE_MANIFESTS=1 scripts/test-chart.sh", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(want)
    print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
