#!/usr/bin/env bash
# Benchmark harness: scripts/bench.sh [--quick | --perf]
#
# Installs wrk, nginx-light and libnginx-mod-nchan (the push peer) when missing (Debian),
# builds the release controller, raises the open-files limit and runs
# `cargo bench --bench harness`. The full run writes BENCHMARKS.md and
# docs/push-latency.svg; --quick (small sizes, for the test command) writes
# target/bench-quick.md and target/bench-quick-push-latency.svg instead. --perf is the
# full run with `perf record` on the controller during the 10,000-subscriber WebSocket
# rounds (installs linux-perf when missing); it writes target/bench-perf.md and
# target/bench-perf.data (read it with `perf report -i target/bench-perf.data`).
#
# The harness runs in its own process group; on exit (success, failure or Ctrl-C) that
# whole group is stopped, so no controller, nginx, nchan agent, perf or wrk outlives the
# script.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=()
for arg in "$@"; do
    case "$arg" in
        --quick|--perf) [ ${#mode[@]} -eq 0 ] || { echo "bench.sh: one mode at a time" >&2; exit 2; }
            mode=("$arg") ;;
        *) echo "usage: scripts/bench.sh [--quick | --perf]" >&2; exit 2 ;;
    esac
done

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing+=(libnginx-mod-nchan)
if [ "${mode[*]:-}" = "--perf" ]; then
    command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench.sh: installing ${missing[*]}" >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Release build (the bench profile inherits `release`): the controller binary the harness
# starts (target/release/origin-discovery, via CARGO_BIN_EXE) and the harness itself. A
# separate `cargo build --release` would build the binary a second time with other
# dependency features, so it is not run. The first build of all dependencies takes
# several minutes on 2 cores.
# --quick only checks that the harness works end to end (it prints no verdicts), so it runs
# the debug build `cargo test --all-targets` already made (`cargo test --bench harness --
# --bench` is the same main with the same flags) and skips a release build of its own.
if [ "${mode[*]:-}" = "--quick" ]; then
    runner=(cargo test --locked --bench harness -- --bench)
else
    runner=(cargo bench --locked --bench harness --)
fi
"${runner[@]:0:5}" --no-run

# 10,000 subscribers per server need a descriptor each on the client side (the harness for
# origin-discovery's, the nchan agent for nchan's) and on the server side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
echo "bench.sh: open-files limit $(ulimit -n)" >&2

pgid=""
cleanup() {
    if [ -n "$pgid" ]; then
        kill -TERM -- "-$pgid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 -- "-$pgid" 2>/dev/null || return 0
            sleep 0.1
        done
        kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Bounded: the full run takes a few minutes, the quick one well under two.
limit=1800
[ "${mode[*]:-}" != "--quick" ] || limit=300
setsid timeout --kill-after=10 "$limit" "${runner[@]}" "${mode[@]}" &
pgid=$!
status=0
wait "$pgid" || status=$?
pgid_done=$pgid
pgid=""
# Anything left in the group (should be nothing) is stopped all the same.
kill -TERM -- "-$pgid_done" 2>/dev/null || true
exit "$status"
