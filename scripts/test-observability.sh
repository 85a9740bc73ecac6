#!/usr/bin/env bash
# Alert rules and Grafana dashboard against real Prometheus tools:
#   1. `promtool check rules` on manifests/prometheus/ and `promtool test rules` on
#      tests/prometheus/*.test.yaml (every alert firing and staying silent);
#   2. `origin-discovery dev` (chaos on, --max-subscribers 1) on free loopback ports and a real
#      Prometheus scraping its admin port every second with the rule file loaded; then
#      tests/prometheus/check_queries.py runs every dashboard query and alert expression
#      through the HTTP API (see its docstring for what it asserts).
# Every process it starts is stopped by PID on exit. Prometheus (Debian package `prometheus`,
# which ships promtool) is installed with apt-get when missing.
#
# Usage:
#   scripts/test-observability.sh
#
# Environment:
#   ORIGIN_DISCOVERY_BIN  controller binary (default target/debug/origin-discovery; built with
#                         `cargo build` when missing)
#   OBS_TIMEOUT           seconds each wait may take (default 30)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
rules=manifests/prometheus/origin-discovery-rules.yaml
dashboard=charts/origin-discovery/dashboards/origin-discovery.json
timeout=${OBS_TIMEOUT:-30}

# Without systemd the package's service is not started; no recommends (exporters).
scripts/apt-install.sh --no-install-recommends promtool=prometheus prometheus=prometheus

echo "test-observability: promtool check rules / test rules" >&2
promtool check rules "$rules"
promtool test rules tests/prometheus/*.test.yaml

. scripts/lib.sh
ensure_binary

tmp=$(mktemp -d "${TMPDIR:-/tmp}/origin-discovery-obs.XXXXXX")
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    # Bounded: SIGKILL after 5 s.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $status -ne 0 ]]; then
    for log in "$tmp"/dev.out "$tmp"/dev.err "$tmp"/prometheus.log; do
      [[ -s "$log" ]] && { echo "--- $log (last 30 lines)" >&2; tail -n 30 "$log" >&2; }
    done
  fi
  rm -rf "$tmp"
  echo "test-observability: finished in $((SECONDS - started)) s" >&2
}
trap cleanup EXIT

# Polls until "$@" succeeds, at most $timeout seconds; fails early when process $pid died.
wait_until() {
  local what=$1 pid=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "test-observability: process $pid exited while waiting for $what" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "test-observability: timed out after ${timeout} s waiting for $what" >&2
      return 1
    fi
    sleep 0.1
  done
}

# Controller: both ports chosen by the kernel (read back from its banner), chaos for origin
# churn (pushes, signal lead), a single subscriber slot (a refused subscription to alert on).
"$ORIGIN_DISCOVERY_BIN" dev --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --kubeconfig-out "$tmp/kubeconfig" --chaos 1s --endpointslice-delay 200ms \
  --max-subscribers 1 --shutdown-timeout 2s --log-level warn \
  </dev/null >"$tmp/dev.out" 2>"$tmp/dev.err" &
pids+=($!)
dev_pid=$!
wait_until "the dev banner" "$dev_pid" grep -q '^  admin: ' "$tmp/dev.out"
api=$(sed -n 's/^  API: *\(http:[^ ]*\).*/\1/p' "$tmp/dev.out")
admin=$(sed -n 's/^  admin: *\(http:[^ ]*\).*/\1/p' "$tmp/dev.out")
echo "test-observability: dev API $api, admin $admin" >&2

# Prometheus on a free loopback port (picked by binding port 0, then released).
prom_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/$rules
scrape_configs:
  - job_name: origin-discovery
    static_configs:
      - targets: ["${admin#http://}"]
EOF
promtool check config "$tmp/prometheus.yml" >/dev/null
prometheus --config.file "$tmp/prometheus.yml" --storage.tsdb.path "$tmp/data" \
  --web.listen-address "127.0.0.1:$prom_port" --log.level warn \
  </dev/null >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
prom_pid=$!
prom=http://127.0.0.1:$prom_port
ready() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$prom/-/ready" 2>/dev/null; }
wait_until "Prometheus to be ready" "$prom_pid" ready
echo "test-observability: Prometheus $(prometheus --version 2>&1 | head -n 1 | cut -d' ' -f3) on $prom" >&2

python3 tests/prometheus/check_queries.py --prometheus "$prom" --api "$api" --admin "$admin" \
  --job origin-discovery --dashboard "$dashboard" --rules "$rules" --timeout "$timeout"
echo "test-observability: OK" >&2
