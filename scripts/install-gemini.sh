#!/usr/bin/env bash
# install-gemini.sh [PREFIX]
#
# Installs Google's Gemini CLI (npm @google/gemini-cli, pinned) for the real-agent test
# (tests/tests/acp_gemini.rs) into PREFIX (default: .cache/gemini at the repository root,
# which .gitignore excludes). Nothing else is downloaded: the test runs Gemini offline, with a
# recorded model (`--fake-responses`) and a dummy API key.
#
#   bash scripts/install-gemini.sh            # logs go to stderr,
#   # stdout is only the path of gemini.js
#
# Env: GEMINI_VERSION (default 0.61.0, the version the ACP interop facts were checked with).
# Idempotent: if PREFIX already holds GEMINI_VERSION, nothing is done.
set -euo pipefail

GEMINI_VERSION="${GEMINI_VERSION:-0.61.0}"
PREFIX="${1:-$(cd "$(dirname "$0")/.." && pwd)/.cache/gemini}"

log() { echo "[install-gemini] $*" >&2; }
die() { echo "[install-gemini] ERROR: $*" >&2; exit 1; }

command -v npm >/dev/null || die "npm not found (Debian: apt-get install nodejs npm)"
mkdir -p "$PREFIX" && PREFIX="$(cd "$PREFIX" && pwd)"
PKG="$PREFIX/node_modules/@google/gemini-cli"
JS="$PKG/bundle/gemini.js"

installed() {
  [ -f "$JS" ] && [ -f "$PKG/package.json" ] &&
    node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
      "$PKG/package.json" "$GEMINI_VERSION"
}

if installed; then
  log "Gemini CLI $GEMINI_VERSION already installed in $PREFIX"
  echo "$JS"; exit 0
fi

log "installing @google/gemini-cli@$GEMINI_VERSION into $PREFIX (npm)"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
  "@google/gemini-cli@$GEMINI_VERSION" >&2
installed || die "install finished but $JS is missing or not version $GEMINI_VERSION"
log "installed: $JS"
echo "$JS"
