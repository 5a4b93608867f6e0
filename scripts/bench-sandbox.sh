#!/usr/bin/env bash
# Sandbox benchmarks, each measured side by side in one run (results: docs/benchmarks.md).
#   1. CLI: `airlock exec -- /bin/true` vs plain `/bin/true` vs `bwrap --ro-bind / / --dev /dev /bin/true`
#   2. A small `cargo build --offline` with and without the sandbox
#   3. In-server spawn (criterion, sandbox crate): sandboxed vs unsandboxed /bin/true from one process
# Installs Debian's bubblewrap and hyperfine itself (apt) when they are missing.
# Usage: scripts/bench-sandbox.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=500; CARGO_RUNS=10
if [[ "${1:-}" == "--quick" ]]; then RUNS=100; CARGO_RUNS=3; fi
OUT=target/bench-sandbox
mkdir -p "$OUT"

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v bwrap >/dev/null || need+=(bubblewrap)
if ((${#need[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get install -y -q "${need[@]}" || { $SUDO apt-get update -q && $SUDO apt-get install -y -q "${need[@]}"; }
fi

cargo build --release -q -p airlock-cli
AIRLOCK=$PWD/target/release/airlock
WS=$(mktemp -d /tmp/airlock-bench-XXXXXX)
trap 'rm -rf "$WS"' EXIT
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r), user $(id -un)"

echo "== 1. CLI spawn of /bin/true (empty workspace)"
(cd "$WS" && hyperfine -N --warmup 50 --runs "$RUNS" --export-json "$OLDPWD/$OUT/cli.json" \
  '/bin/true' \
  "$AIRLOCK exec --workspace $WS -- /bin/true" \
  'bwrap --ro-bind / / --dev /dev /bin/true')

echo "== 1b. CLI in a git workspace with a .env (protected-path and deny-read mounts, snapshot)"
GWS=$WS/repo; mkdir -p "$GWS"; git -C "$GWS" init -q; echo 'X=1' > "$GWS/.env"
(cd "$GWS" && hyperfine -N --warmup 50 --runs "$RUNS" --export-json "$OLDPWD/$OUT/cli-git.json" \
  '/bin/true' "$AIRLOCK exec --workspace $GWS -- /bin/true")

echo "== 2. cargo build --offline of a small crate, clean each run"
CR=$WS/crate; mkdir -p "$CR/src"
printf '[package]\nname = "benchcrate"\nversion = "0.1.0"\nedition = "2021"\n' > "$CR/Cargo.toml"
for i in 1 2 3 4 5 6 7 8; do
  printf 'pub fn f%s(v: &[u64]) -> u64 { v.iter().map(|x| x.wrapping_mul(%s)).fold(0, |a, b| a ^ b) }\n' "$i" "$i" > "$CR/src/m$i.rs"
  echo "pub mod m$i;" >> "$CR/src/lib.rs"
done
echo 'fn main() { println!("{}", benchcrate::m1::f1(&[1, 2, 3])); }' > "$CR/src/main.rs"
CARGO=$(command -v cargo)
CH=${CARGO_HOME:-$HOME/.cargo}; RH=${RUSTUP_HOME:-$HOME/.rustup}
(cd "$CR" && hyperfine --warmup 1 --runs "$CARGO_RUNS" --prepare 'rm -rf target' --export-json "$OLDPWD/$OUT/cargo.json" \
  "$CARGO build --offline -q" \
  "$AIRLOCK exec --workspace $CR --allow-read $CH --allow-read $RH --env CARGO_HOME=$CH --env RUSTUP_HOME=$RH -- $CARGO build --offline -q")

echo "== 3. in-server spawn (criterion)"
cargo bench -q -p airlock-sandbox --bench spawn -- --warm-up-time 2 --measurement-time 8 2>&1 | grep -E "spawn_true|time:"

echo "== 3b. in-server spawn, CPU time (user+sys of the whole tree), alternating, 5 rounds"
cargo build --release -q -p airlock-sandbox --example spawn_loop
LOOP=$PWD/target/release/examples/spawn_loop
EWS=$WS/empty; mkdir -p "$EWS"
for i in 1 2 3 4 5; do
  echo "plain:     $("$LOOP" "$EWS" 300 plain)"
  echo "sandboxed: $("$LOOP" "$EWS" 300)"
done
