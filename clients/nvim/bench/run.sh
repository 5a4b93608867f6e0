#!/usr/bin/env bash
# bash clients/nvim/bench/run.sh — prints the plugin's timing rows for docs/benchmarks.md.
# Env: AIRLOCK_BIN (default <repo>/target/debug/airlock), NVIM (default: scripts/install-neovim.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="${AIRLOCK_BIN:-$root/target/debug/airlock}"
nvim="${NVIM:-$(bash "$root/scripts/install-neovim.sh")}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home" "$tmp/config" "$tmp/state"
cd "$tmp"
HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" XDG_STATE_HOME="$tmp/state" \
  XDG_DATA_HOME="$tmp/data" XDG_CACHE_HOME="$tmp/cache" \
  timeout 300 "$nvim" --headless --clean -l "$here/bench.lua" "$bin" "$tmp" </dev/null
