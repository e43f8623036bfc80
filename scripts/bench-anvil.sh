#!/usr/bin/env bash
# Measures verified answers end to end on a real anvil: `rpcmesh testnet bench --backend anvil`
# (direct anvil, nginx in front of it, a daemon over its own anvil and a node-less daemon over
# the relay, each daemon path in integrity modes off, sample and strict), then writes
# DIR/bench.md and DIR/bench.json. See docs/benchmarks.md, "Verified answers".
#
# Installs what the bench needs that cargo does not fetch: anvil (npm, as scripts/test.sh does)
# and, when it is missing and this runs as root, nginx from the distribution's packages (the
# bench measures without the nginx path, and says so, when it cannot be installed). Extra
# arguments go to the bench, e.g.
#   scripts/bench-anvil.sh --cell 3s --rounds 3 --concurrency 1,16 --out /tmp/bench-anvil
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

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing nginx (the reference proxy of the bench)" >&2
    # The package would start a system-wide nginx on port 80; the bench starts its own.
    POLICY=/usr/sbin/policy-rc.d
    OWN_POLICY=
    if [ ! -e "$POLICY" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$POLICY" && chmod +x "$POLICY" && OWN_POLICY=1
      trap 'rm -f "$POLICY"' EXIT
    fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null) \
      || echo "could not install nginx: the bench runs without the nginx path" >&2
    if [ -n "$OWN_POLICY" ]; then
      rm -f "$POLICY"
      trap - EXIT
    fi
  else
    echo "nginx is not installed: the bench runs without the nginx path" >&2
  fi
fi

cargo build --release --locked -p rpcmesh-cli
exec ./target/release/rpcmesh testnet bench --backend anvil --anvil "$ANVIL" --sections latency "$@"
