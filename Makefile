# One entry point for every test: `make test` (what CI runs via .ci/run).
# Each part installs what it needs itself (Python venv, npm packages, Debian packages).

.PHONY: test lint test-rust test-chart test-js test-browser dev

test: lint test-rust test-chart test-js test-browser

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

test-rust:
	cargo test --all-targets

test-chart:
	cargo build
	bash scripts/test-chart.sh

test-js:
	bash clients/js/run-tests.sh

# Real Chromium (installed with apt when missing) against `origin-discovery dev`.
test-browser:
	cargo build
	bash scripts/test-browser.sh

dev:
	cargo run --release -- dev
