#!/usr/bin/env bash
# Real-browser end-to-end tests (tests/browser): Debian's chromium, headless, driven by
# playwright-core, against `origin-discovery dev` with real WebSocket origin processes.
#   - failover.test.mjs: crash failover of the JS client vs. a Service-VIP baseline (p50/p95),
#     graceful-delete migration;
#   - dashboard.test.mjs: the dashboard served at GET / shows the pool and updates live;
#   - silent-failures.test.mjs: dead node, frozen origin (SIGSTOP) and viewer-side outages of
#     5 s and 30 s, origin-discovery (active probes, default flags) vs. the Service-VIP baseline,
#     20 pages of each kind in parallel; session state re-published on every reconnect.
# Results: test-artifacts/failover.json, test-artifacts/silent-failures.json, screenshots and
# logs under test-artifacts/.
#
# Usage:
#   scripts/test-browser.sh
#
# Environment:
#   ORIGIN_DISCOVERY_BIN  controller binary (default target/debug/origin-discovery; built with
#                         `cargo build` when missing)
#   CHROMIUM_PATH         browser (default /usr/bin/chromium, installed with apt when missing;
#                         never a downloaded browser)
#   BROWSER_E2E_ROUNDS    crash and graceful rounds each (default 20)
#   BROWSER_E2E_SAMPLES   silent-failures pages of each kind (default 20)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
trap 'echo "test-browser: finished in $((SECONDS - started)) s" >&2' EXIT

chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
if [[ ! -x "$chromium" ]]; then
  if [[ "$chromium" != /usr/bin/chromium ]]; then
    echo "test-browser: CHROMIUM_PATH=$chromium is not executable" >&2
    exit 1
  fi
  scripts/apt-install.sh chromium=chromium
fi
export CHROMIUM_PATH=$chromium

echo "test-browser: npm ci in tests/browser" >&2
(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)

. scripts/lib.sh
ensure_binary

mkdir -p test-artifacts
# One test file at a time: they measure timing on a 2-core machine.
node --test --test-concurrency=1 --test-reporter=spec tests/browser/
