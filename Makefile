# One entry point for every test: `make test` (what CI runs via .ci/run).
# Each part installs what it needs itself (Python venv, npm packages, Debian packages).
# bench-quick: the benchmark harness at small sizes on the debug build test-rust made (report in
# target/bench-quick.md), so it
# keeps working; the full run (scripts/bench.sh) is documented in BENCHMARKS.md, not run here.

.PHONY: test lint test-rust test-chart test-observability test-api test-js test-browser bench-quick dev

test: lint test-rust test-chart test-observability test-api test-js test-browser bench-quick

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# kubectl (Debian package `kubectl`, when missing) for the simulator's kubectl tests, which
# fail under CI=true without it.
test-rust:
	bash scripts/apt-install.sh kubectl=kubectl
	cargo test --workspace --all-targets

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
