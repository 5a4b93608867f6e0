#!/usr/bin/env bash
# Ensures `cargo deny` (crates.io, pinned) is installed; a second run does nothing.
# Builds from source: about 200 s of CPU on the 2-core CI machine.
set -euo pipefail
version=0.20.2
if cargo deny --version 2>/dev/null | grep -q "$version"; then
  exit 0
fi
echo "[install-cargo-deny] cargo install --locked cargo-deny --version $version (crates.io)" >&2
cargo install --locked cargo-deny --version "$version"
