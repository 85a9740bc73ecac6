#!/usr/bin/env bash
# The domain crate (crates/core) stays free of Kubernetes, HTTP and networking
# (docs/DESIGN.md, "Crates"): no kube, k8s-openapi, axum, hyper, tower, tungstenite or mio
# among its normal dependencies, and tokio with no feature beyond `sync`. Part of `make lint`.
set -euo pipefail
cd "$(dirname "$0")/.."

tree=$(cargo tree -p origin-discovery-core -e normal,features --prefix none | sed 's/ (\*)$//' | sort -u)
forbidden=$(grep -E '^(kube|kube-[a-z-]+|k8s-openapi|axum|axum-[a-z-]+|hyper|hyper-util|tower|tower-http|tungstenite|tokio-tungstenite|mio|socket2) v' <<<"$tree" || true)
tokio_features=$(grep -E '^tokio feature "' <<<"$tree" | grep -Ev '"(default|sync)"' || true)
if [[ -n "$forbidden" || -n "$tokio_features" ]]; then
  echo "check-core-deps: origin-discovery-core must not depend on these:" >&2
  { printf '%s\n' "$forbidden"; printf '%s\n' "$tokio_features"; } | sed '/^$/d; s/^/  /' >&2
  exit 1
fi
echo "check-core-deps: origin-discovery-core has no kube, HTTP or networking dependency"
