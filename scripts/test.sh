#!/usr/bin/env bash
# Runs the whole rpcmesh test suite on a fresh machine.
#
# Installs what the tests need that cargo does not fetch itself: anvil (a real Ethereum node,
# from the npm registry) into .tools/, and the client libraries of the client suite (viem,
# ethers, pinned by cli/tests/clients/package-lock.json) into cli/tests/clients/node_modules
# (both git-ignored). Then runs every test of the workspace.
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

# Client libraries for cli/tests/mesh/clients.rs, exactly as locked; reinstalled only when the
# lockfile changes (a stamp of its hash). --ignore-scripts: nothing may run or download at install.
CLIENTS="$PWD/cli/tests/clients"
CLIENTS_STAMP="$CLIENTS/node_modules/.package-lock.sha256"
CLIENTS_LOCK_HASH="$(sha256sum "$CLIENTS/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$CLIENTS_STAMP" ] || [ "$(cat "$CLIENTS_STAMP")" != "$CLIENTS_LOCK_HASH" ]; then
  echo "installing the client suite's npm dependencies into $CLIENTS/node_modules" >&2
  npm ci --prefix "$CLIENTS" --no-audit --no-fund --ignore-scripts --loglevel=error >&2
  echo "$CLIENTS_LOCK_HASH" >"$CLIENTS_STAMP"
fi
# web3.py for the full pending-transaction subscription test, pinned, into .tools/py (PyPI).
WEB3_VERSION=7.6.0
PY="$TOOLS/py"
if [ ! -f "$PY/.web3-$WEB3_VERSION" ]; then
  echo "installing web3 $WEB3_VERSION from PyPI into $PY" >&2
  rm -rf "$PY"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --target "$PY" "web3==$WEB3_VERSION" >&2
  touch "$PY/.web3-$WEB3_VERSION"
fi
export RPCMESH_TEST_PYTHONPATH="$PY"
# RPCMESH_TEST_*: the daemon reads other RPCMESH_* variables as config keys.
export RPCMESH_TEST_CLIENTS_DIR="$CLIENTS"
export PATH="$(dirname "$ANVIL"):$PATH"

cargo test --workspace --locked "$@"
