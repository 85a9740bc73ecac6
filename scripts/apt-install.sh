#!/usr/bin/env bash
# Installs Debian packages that are missing, for the test and benchmark scripts:
#   scripts/apt-install.sh [--no-install-recommends] COMMAND=PACKAGE ...
# Each COMMAND=PACKAGE pair installs PACKAGE unless COMMAND is already on PATH (or is an
# executable path). Uses sudo only when not root. Fails (non-zero) if an install fails.
set -euo pipefail

opts=()
missing=()
for arg in "$@"; do
  case "$arg" in
    --no-install-recommends) opts+=("$arg") ;;
    *=*)
      cmd=${arg%%=*} pkg=${arg#*=}
      if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x "$cmd" ]]; then
        missing+=("$pkg")
      fi
      ;;
    *) echo "usage: scripts/apt-install.sh [--no-install-recommends] COMMAND=PACKAGE ..." >&2; exit 2 ;;
  esac
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "apt-install: installing ${missing[*]} (Debian packages)" >&2
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >/dev/null
"${sudo[@]}" apt-get install -y -q "${opts[@]}" "${missing[@]}" >/dev/null
