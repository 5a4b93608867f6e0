#!/usr/bin/env bash
# scripts/test-vscode.sh — builds and tests the VS Code extension in clients/vscode.
#
# Installs what it needs, idempotently (a second run skips every install):
#   - Debian `chromium` via apt-get when missing (needs root then),
#   - the extension's npm dependencies (`npm ci`, re-run only when package-lock.json changes),
#   - code-server (a real VS Code) into ./.cache/code-server (scripts/install-code-server.sh),
#   - the `airlock` binary (`cargo build -p airlock-cli`) unless AIRLOCK_BIN is set.
# Then: type check, unit tests (node --test), `vsce package` (the .vsix, offline), and the
# end-to-end test: code-server in headless Chromium, the extension installed from the .vsix,
# the real server and its embedded scripted agent (clients/vscode/test/e2e/run.mjs).
#
# Environment: AIRLOCK_BIN (skip the cargo build), AIRLOCK_E2E_OUT (screenshots and logs; default
# a new temp dir, printed at the end), SKIP_E2E=1 (unit tests and packaging only).
# The last line is `N passed, N failed`; the exit status is non-zero when anything failed.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
ext="$root/clients/vscode"
cache="$root/.cache"
passed=0
failed=0
log() { echo "[test-vscode] $*" >&2; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
fatal() {
  log "ERROR: $*"
  failed=$((failed + 1))
  finish
}
step() { # step NAME CMD...: one check that passes or fails as a whole
  local name="$1"
  shift
  if "$@"; then
    log "PASS $name"
    passed=$((passed + 1))
  else
    log "FAIL $name"
    failed=$((failed + 1))
  fi
}

# --- Chromium (Debian's; no browser download)
if ! command -v chromium >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fatal "Debian package chromium is missing (run as root, or: apt-get install chromium)"
  log "+ apt-get install -y chromium"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >&2 \
    || fatal "apt-get install chromium failed"
fi

# --- npm dependencies of the extension (esbuild, vsce, typescript, playwright-core, …)
command -v npm >/dev/null || fatal "node and npm are required"
lock_sum="$(sha256sum "$ext/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$ext/node_modules/.airlock-lock-sum" 2>/dev/null)" != "$lock_sum" ]; then
  log "+ npm ci (clients/vscode)"
  (cd "$ext" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2) || fatal "npm ci failed"
  echo "$lock_sum" >"$ext/node_modules/.airlock-lock-sum"
fi

# --- code-server
entry="$("$root/scripts/install-code-server.sh" "$cache/code-server")" || fatal "installing code-server failed"

# --- the server binary
bin="${AIRLOCK_BIN:-}"
if [ -z "$bin" ]; then
  log "+ cargo build -p airlock-cli"
  (cd "$root" && cargo build -q -p airlock-cli >&2) || fatal "cargo build -p airlock-cli failed"
  bin="$root/target/debug/airlock"
fi
[ -x "$bin" ] || fatal "no airlock binary at $bin"

# --- build and unit tests
step "typecheck (tsc --noEmit)" bash -c "cd '$ext' && npx tsc -p . --noEmit >&2"
unit_out="$(cd "$ext" && npm run --silent test:unit 2>&1)"
unit_status=$?
unit_pass="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' <<<"$unit_out" | tail -n1)"
unit_fail="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' <<<"$unit_out" | tail -n1)"
if [ -z "$unit_pass" ] || { [ "$unit_status" -ne 0 ] && [ "${unit_fail:-0}" -eq 0 ]; }; then
  echo "$unit_out" >&2
  log "FAIL unit tests did not run"
  failed=$((failed + 1))
else
  [ "${unit_fail:-0}" -eq 0 ] || grep -A15 '^not ok' <<<"$unit_out" >&2
  log "unit tests: $unit_pass passed, ${unit_fail:-0} failed"
  passed=$((passed + unit_pass))
  failed=$((failed + ${unit_fail:-0}))
fi
rm -f "$ext/out/airlock.vsix"
step "vsce package (.vsix built offline)" bash -c "cd '$ext' && npm run --silent package >&2 && test -s out/airlock.vsix"
# The schema that `tomlValidation` points at must be inside the package, next to the bundle.
step ".vsix holds the bundle and the policy schema" python3 -c '
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
want = {"extension/package.json", "extension/dist/extension.js", "extension/dist/policy.schema.json"}
missing = want - names
print("missing from the .vsix:", sorted(missing), file=sys.stderr) if missing else None
sys.exit(1 if missing else 0)' "$ext/out/airlock.vsix"

# --- end to end, in a real VS Code
if [ "${SKIP_E2E:-0}" = 1 ]; then
  log "SKIP_E2E=1: end-to-end test skipped"
  finish
fi
[ -s "$ext/out/airlock.vsix" ] || fatal "no .vsix to install"
e2e_out="$(mktemp)"
CODE_SERVER_ENTRY="$entry" AIRLOCK_BIN="$bin" AIRLOCK_VSIX="$ext/out/airlock.vsix" CHROMIUM="$(command -v chromium)" \
  timeout 900 node "$ext/test/e2e/run.mjs" 2>&1 | tee "$e2e_out" >&2
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$e2e_out" | tail -n1)"
rm -f "$e2e_out"
if [ -z "$summary" ]; then
  log "FAIL end-to-end test did not report (crashed or timed out)"
  failed=$((failed + 1))
else
  passed=$((passed + ${summary%% passed*}))
  f="${summary#*passed, }"
  failed=$((failed + ${f%% failed}))
fi
finish
