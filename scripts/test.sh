#!/usr/bin/env bash
# Runs every check and test of openwork: formatting, clippy, unit tests and the end-to-end tests
# against the real opencode. Installs what the tests need into a cache outside the clone
# (idempotent): the pinned opencode, fetched from the npm registry and verified.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cache="${OPENWORK_TEST_CACHE:-$HOME/.cache/openwork-test}"
mkdir -p "$cache"

log() { printf '[test.sh] %s\n' "$*" >&2; }

# --- the pinned opencode (version and npm integrity read from the source: one place) -------------
pins=src/sidecars/pins.rs
version=$(sed -n 's/^pub const OPENCODE_VERSION: &str = "\([^"]*\)";/\1/p' "$pins")
integrity=$(grep -A1 '"opencode-linux-x64",' "$pins" | sed -n 's/.*"\(sha512-[^"]*\)".*/\1/p' | head -n1)
[ -n "$version" ] && [ -n "$integrity" ] || { log "cannot read the opencode pin from $pins"; exit 1; }
oc_dir="$cache/opencode-$version"
oc_bin="$oc_dir/opencode"
if [ ! -x "$oc_bin" ]; then
  command -v npm >/dev/null || { log "npm is required to fetch opencode (install Node.js/npm)"; exit 1; }
  log "fetching opencode-linux-x64@$version from the npm registry (one time)"
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "opencode-linux-x64@$version" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  actual="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    log "integrity mismatch for $tgz: expected $integrity, got $actual"; exit 1
  fi
  tar -xzf "$tgz" -C "$tmp" package/bin/opencode
  mkdir -p "$oc_dir"
  chmod 755 "$tmp/package/bin/opencode"
  mv "$tmp/package/bin/opencode" "$oc_bin.tmp" && mv "$oc_bin.tmp" "$oc_bin"
  rm -rf "$tmp"; trap - EXIT
fi
export OPENWORK_TEST_OPENCODE_BIN="$oc_bin"
log "opencode $("$oc_bin" --version) at $oc_bin"

# --- tmux: the dashboard's end-to-end tests drive a real terminal (installed only when missing) ---
if ! command -v tmux >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { log "tmux is missing and installing it needs root (apt-get install tmux)"; exit 1; }
  log "tmux missing: installing it (one time)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$cache/apt-tmux.log" 2>&1 || { tail -20 "$cache/apt-tmux.log" >&2; exit 1; }
  apt-get install -y -q --no-install-recommends tmux >>"$cache/apt-tmux.log" 2>&1 \
    || { tail -20 "$cache/apt-tmux.log" >&2; log "apt-get install tmux failed"; exit 1; }
fi

# --- the Docker engine and the sandbox image (installed/started/built only when missing) ----------
scripts/docker-engine.sh
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
log "sandbox image $(images/build.sh)"

# --- checks and tests ------------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
cargo test --workspace --locked -- --test-threads="${OPENWORK_TEST_THREADS:-2}"
