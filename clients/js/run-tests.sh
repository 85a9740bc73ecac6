#!/usr/bin/env bash
# Installs the JavaScript client's dev dependencies and runs its unit tests.
# Called by the top-level test command; needs Node >= 20 and npm.
set -euo pipefail
cd "$(dirname "$0")"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
npm test
