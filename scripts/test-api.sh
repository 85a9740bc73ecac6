#!/usr/bin/env bash
# API description tests against the real binary:
#   1. `origin-discovery dev --chaos` on free loopback ports;
#   2. schemathesis (property-based, stateless) over every operation of its served
#      /openapi.json: examples, coverage (boundary and hostile values) and fuzzing phases,
#      positive and negative data, `--checks all` (no 5xx, status codes, headers, content types
#      and bodies conform to the document, invalid input is rejected, valid input accepted);
#      the event stream is read up to its first event, which is validated too;
#   3. pytest tests/api: the document validates (openapi-spec-validator) and its examples
#      conform; real push messages recorded now from `dev --chaos` and a `run` controller cut
#      off its apiserver validate against docs/schemas/*.json, like the committed fixture; the
#      JS client's `Origin` and message declarations match the schemas; every optional origin field occurs.
# Every process it starts is stopped by PID on exit.
#
# Usage:
#   scripts/test-api.sh                    # everything
#   scripts/test-api.sh -k messages        # extra arguments go to pytest
#
# Environment:
#   ORIGIN_DISCOVERY_BIN   controller binary (default target/debug/origin-discovery; built with
#                          `cargo build` when missing)
#   API_MAX_EXAMPLES       schemathesis examples per operation and phase (default 40)
#   PYTHON                 interpreter used to create the venv (default python3)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS

. scripts/lib.sh
venv=.venv
ensure_venv tests/api/requirements.txt
ensure_binary

tmp=$(mktemp -d "${TMPDIR:-/tmp}/origin-discovery-api.XXXXXX")
dev_pid=
cleanup() {
  local status=$?
  if [[ -n "$dev_pid" ]]; then
    kill "$dev_pid" 2>/dev/null || true
    # Bounded: SIGKILL after 5 s.
    for _ in $(seq 50); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$dev_pid" 2>/dev/null || true
  fi
  if [[ $status -ne 0 && -s "$tmp/dev.log" ]]; then
    echo "test-api: last lines of the dev server's log:" >&2
    tail -n 20 "$tmp/dev.log" >&2
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

# Chaos keeps the pool changing, so long-polls that schemathesis sends with a valid `wait`
# end at the next change (well under a second) instead of waiting out `wait`.
"$ORIGIN_DISCOVERY_BIN" dev --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --kubeconfig-out "$tmp/kubeconfig" --chaos 500ms \
  >"$tmp/dev.out" 2>"$tmp/dev.log" &
dev_pid=$!
api=
for _ in $(seq 300); do
  api=$(sed -n 's/^ *API: *//p' "$tmp/dev.out" | head -n 1)
  [[ -n "$api" ]] && break
  kill -0 "$dev_pid" 2>/dev/null || { echo "test-api: dev exited" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$api" ]] || { echo "test-api: dev printed no API address within 30 s" >&2; exit 1; }
for _ in $(seq 300); do
  curl -fsS -o /dev/null "$api/v1/pools/demo/origin" 2>/dev/null && break
  sleep 0.1
done
export ORIGIN_DISCOVERY_API=$api

echo "test-api: schemathesis against $api/openapi.json" >&2
st_started=$SECONDS
"$venv/bin/schemathesis" --config-file tests/api/schemathesis.toml run "$api/openapi.json" \
  --checks all \
  --phases examples,coverage,fuzzing \
  --mode all \
  --max-examples "${API_MAX_EXAMPLES:-40}" \
  --workers 2 \
  --no-color \
  --report junit --report-dir "$tmp/schemathesis"
echo "test-api: schemathesis took $((SECONDS - st_started)) s" >&2

# -p no:cacheprovider: leave no .pytest_cache in the work tree.
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/api "$@"
echo "test-api: done in $((SECONDS - started)) s" >&2
