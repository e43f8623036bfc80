#!/usr/bin/env bash
# Runs the whole rpcmesh test suite on a fresh machine.
#
# Installs what the tests need that cargo does not fetch itself: anvil (a real Ethereum node,
# from the npm registry) into .tools/ (git-ignored). Then runs every test of the workspace.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p rpcmesh-protocol`).
set -euo pipefail
cd "$(dirname "$0")/.."

ANVIL_VERSION=1.7.1
TOOLS="$PWD/.tools"
ANVIL="$TOOLS/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

if [ ! -x "$ANVIL" ] || ! "$ANVIL" --version 2>/dev/null | grep -q "$ANVIL_VERSION"; then
  echo "installing anvil $ANVIL_VERSION from the npm registry into $TOOLS" >&2
  mkdir -p "$TOOLS/npm"
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$TOOLS/npm" \
    "@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION" >&2
fi
export RPCMESH_ANVIL="$ANVIL"
export PATH="$(dirname "$ANVIL"):$PATH"

cargo test --workspace --locked "$@"
