#!/usr/bin/env bash
# tests/run.sh [SPEC...] — run the plugin's headless scenarios directly (the same ones
# `cargo nextest run -p airlock-e2e -E 'binary_id(/nvim_/)'` runs), for a quick edit/test loop.
#
# Env: AIRLOCK_BIN (default: <repo>/target/debug/airlock, build it with
#      `cargo build -p airlock-cli`), NVIM (default: installed by scripts/install-neovim.sh),
#      AIRLOCK_TEST_VERBOSE=1 to see the plugin's notifications.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="${AIRLOCK_BIN:-$root/target/debug/airlock}"
[ -x "$bin" ] || { echo "no airlock binary at $bin (cargo build -p airlock-cli)" >&2; exit 1; }
nvim="${NVIM:-$(bash "$root/scripts/install-neovim.sh")}"

specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=("$here"/*_spec.lua)
passed=0 failed=0
for spec in "${specs[@]}"; do
  spec="$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")"
  tmp="$(mktemp -d)"
  mkdir -p "$tmp/home" "$tmp/config" "$tmp/state"
  if (cd "$tmp" && HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" XDG_STATE_HOME="$tmp/state" \
      XDG_DATA_HOME="$tmp/data" XDG_CACHE_HOME="$tmp/cache" \
      AIRLOCK_MANAGED_POLICY="$tmp/managed/policy.toml" \
      timeout 120 "$nvim" --headless --clean -l "$spec" "$bin" "$tmp" </dev/null); then
    echo "PASS $(basename "$spec")"; passed=$((passed + 1))
  else
    echo "FAIL $(basename "$spec") (dir kept: $tmp)"; failed=$((failed + 1)); continue
  fi
  rm -rf "$tmp"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
