#!/usr/bin/env bash
# scripts/install-code-server.sh [PREFIX]   (used by scripts/test-vscode.sh)
#
# Installs a real VS Code that runs headless: code-server from the npm registry
# (CODE_SERVER_VERSION, default 4.100.3 = VS Code 1.100.3, the last release for
# Node 20; 4.103+ needs Node 22, 4.139 Node 24). No downloads besides npm and
# Debian apt. PREFIX defaults to ./.cache/code-server. Needs root for apt-get
# (skipped when the packages are already there). Takes ~1-2 minutes.
#
#   ENTRY=$(bash install-code-server.sh)      # logs go to stderr, stdout = entry.js
#   node "$ENTRY" --auth none --bind-addr 127.0.0.1:PORT --config DIR/config.yaml \
#        --extensions-dir DIR/ext --user-data-dir DIR/data WORKSPACE
#
# Idempotent: a stamp file PREFIX/.code-server-VERSION-ok marks a finished install.
set -euo pipefail

CS_VERSION="${CODE_SERVER_VERSION:-4.100.3}"
PREFIX="${1:-./.cache/code-server}"
APT_PKGS=(ripgrep build-essential python3 libkrb5-dev libsecret-1-dev)

log() { echo "[install-code-server] $*" >&2; }
die() { echo "[install-code-server] ERROR: $*" >&2; exit 1; }
run() { log "+ $*"; "$@" >&2 || die "command failed: $*"; }

mkdir -p "$PREFIX" && PREFIX="$(cd "$PREFIX" && pwd)"
CS="$PREFIX/node_modules/code-server"
VSC="$CS/lib/vscode"
ENTRY="$CS/out/node/entry.js"
STAMP="$PREFIX/.code-server-$CS_VERSION-ok"

if [ -f "$STAMP" ] && [ -f "$ENTRY" ]; then
  log "code-server $CS_VERSION already installed ($STAMP)"
  echo "$ENTRY"; exit 0
fi

# --- preconditions
{ command -v node && command -v npm; } >/dev/null || die "node and npm are required"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
want_major="$(npm view "code-server@$CS_VERSION" engines.node 2>/dev/null || true)"
[[ ! "$want_major" =~ ^[0-9]+$ ]] || [ "$node_major" = "$want_major" ] \
  || die "code-server $CS_VERSION wants Node $want_major but node is $(node -v); pick CODE_SERVER_VERSION to match"
# node-gyp must find Node headers locally (it cannot download them here).
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi
[ -f "${npm_config_nodedir:-/usr}/include/node/node.h" ] || die "Node headers not found (need \$npm_config_nodedir/include/node/node.h)"

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing apt packages (run as root): ${missing[*]}"
  run apt-get update -q
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# --- code-server itself; its postinstall.sh is replaced by the steps below
run npm install --prefix "$PREFIX" --ignore-scripts --save-exact --no-audit --no-fund "code-server@$CS_VERSION"
(cd "$PREFIX" && run npm rebuild argon2)

# --- VS Code's own runtime dependencies (native ones rebuilt; node-pty fails and is not needed)
(cd "$VSC" && run npm install --omit=dev --ignore-scripts --no-audit --no-fund)
run mkdir -p "$VSC/node_modules/@vscode/ripgrep/bin"
run ln -sf "$(command -v rg)" "$VSC/node_modules/@vscode/ripgrep/bin/rg"
(cd "$VSC" && run npm rebuild @vscode/spdlog native-watchdog @parcel/watcher kerberos)

# --- what postinstall.sh would have done
run ln -sfn node_modules "$VSC/node_modules.asar"
[ -e "$VSC/bin/remote-cli/code-server" ] || run ln -s code-linux.sh "$VSC/bin/remote-cli/code-server"
[ -e "$VSC/bin/helpers/browser.sh" ] || run ln -s browser-linux.sh "$VSC/bin/helpers/browser.sh"
(cd "$VSC/extensions" && run npm install --omit=dev --ignore-scripts --no-audit --no-fund)

# --- verify
(cd "$VSC" && node -e 'for (const m of ["@vscode/spdlog", "native-watchdog", "@parcel/watcher", "kerberos"]) require(m)') \
  || die "a native module of VS Code does not load"
got="$(XDG_DATA_HOME="$PREFIX/.xdg-data" node "$ENTRY" --config "$PREFIX/.config.yaml" --version 2>/dev/null | tail -n1)"
case "$got" in "$CS_VERSION "*) ;; *) die "unexpected 'code-server --version' output: $got" ;; esac
log "installed: code-server $got"
touch "$STAMP"
echo "$ENTRY"
