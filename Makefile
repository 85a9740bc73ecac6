# One entry point for every test: `make test` (what CI runs via .ci/run).
# Each part installs what it needs itself (Python venv, npm packages, Debian packages).
# bench-quick: the benchmark harness at small sizes on the debug build test-rust made (report
# in target/bench-quick.md), so it keeps working; the full run (scripts/bench.sh) is
# documented in BENCHMARKS.md, not run here.

.PHONY: test lint test-rust test-proxy soak test-chart test-observability test-api test-js test-browser bench-quick dev

test: lint test-rust test-chart test-observability test-api test-js test-browser bench-quick

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	bash scripts/check-core-deps.sh

# kubectl (Debian package `kubernetes-client`, kubectl 1.20 on bookworm, when missing) for the
# simulator's kubectl tests and tests/dev_binary.rs (both checked with 1.20 and 1.32), and
# nginx (`nginx-light`) for tests/proxy_nginx.rs, which fail under CI=true without them.
# Includes the 60 s soak (tests/soak.rs) and the nginx proxy test (~20 s).
test-rust:
	bash scripts/apt-install.sh kubectl=kubernetes-client /usr/sbin/nginx=nginx-light
	cargo test --workspace --all-targets

# The controller behind a real nginx alone: 5,000 subscribers from 100 client addresses.
test-proxy:
	bash scripts/apt-install.sh /usr/sbin/nginx=nginx-light
	cargo test --test proxy_nginx -- --nocapture

# The 30-minute soak (tests/soak.rs; 60 s inside test-rust). SOAK_SECS overrides.
SOAK_SECS ?= 1800
soak:
	SOAK_SECS=$(SOAK_SECS) cargo test --release --test soak -- --nocapture

test-chart:
	cargo build
	bash scripts/test-chart.sh

# promtool check/test on the alert rules, then a real Prometheus (Debian package, installed
# with apt when missing) scraping `origin-discovery dev` runs every dashboard query and alert.
test-observability:
	cargo build
	bash scripts/test-observability.sh

# The OpenAPI document (openapi-spec-validator), schemathesis over every operation against
# `origin-discovery dev --chaos`, and recorded real push messages against docs/schemas/
# (Python venv in .venv, shared with test-chart).
test-api:
	cargo build
	bash scripts/test-api.sh

test-js:
	bash clients/js/run-tests.sh

# Real Chromium (installed with apt when missing) against `origin-discovery dev`.
test-browser:
	cargo build
	bash scripts/test-browser.sh

bench-quick:
	bash scripts/bench.sh --quick

dev:
	cargo run --release -- dev
