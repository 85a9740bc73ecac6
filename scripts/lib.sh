# Shared by the scripts/test-*.sh scripts (sourced, not run). Each function logs with the
# calling script's name.

_me=$(basename "${BASH_SOURCE[1]:-$0}" .sh)

# ensure_venv REQUIREMENTS: the project's venv (.venv, created with $PYTHON or python3),
# with REQUIREMENTS installed when that file changed since its last successful install.
ensure_venv() {
  local requirements=$1 venv=.venv
  local stamp="$venv/.$(basename "$(dirname "$requirements")")-requirements"
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "$_me: creating $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
    echo "$_me: installing $requirements into $venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
  fi
}

# ensure_binary: exports ORIGIN_DISCOVERY_BIN as an absolute path. Default
# target/debug/origin-discovery, built with `cargo build` when missing; a binary named in
# ORIGIN_DISCOVERY_BIN must exist.
ensure_binary() {
  local bin=${ORIGIN_DISCOVERY_BIN:-target/debug/origin-discovery}
  if [[ ! -x "$bin" ]]; then
    if [[ -n "${ORIGIN_DISCOVERY_BIN:-}" ]]; then
      echo "$_me: ORIGIN_DISCOVERY_BIN=$bin is not an executable" >&2
      exit 1
    fi
    echo "$_me: $bin missing; cargo build" >&2
    cargo build --quiet --bin origin-discovery
  fi
  ORIGIN_DISCOVERY_BIN=$(realpath "$bin")
  export ORIGIN_DISCOVERY_BIN
}
