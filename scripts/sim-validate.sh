#!/usr/bin/env bash
# Validates `rpcmesh testnet simulate` against a real run: the same 20-provider mesh run for real
# (testnet/scenarios/validate/mesh-20.toml, 20 daemons on sim backends) and simulated
# (testnet/scenarios/sim-validate-20.toml); prints both sides' announcement convergence and
# gossip message counts per daemon per second.
#
#   scripts/sim-validate.sh [OUT_DIR]      (needs a release build: cargo build --release -p rpcmesh-cli)
#
# Real message counts come from the daemons' own /metrics (libp2p-gossipsub's counters), scraped
# every 5 s during the measured run; the rate is the difference between the first and the last
# scrape. Real convergence is computed from records.jsonl with the definition of
# testnet/src/measure.rs (nearest rank over all messages, never-converged ones ranked last).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RPCMESH_BIN:-${CARGO_TARGET_DIR:-target}/release/rpcmesh}
OUT=${1:-sim-validate-$(date +%s)}
mkdir -p "$OUT"
REAL="$OUT/real"
SIM="$OUT/sim"

"$BIN" testnet run testnet/scenarios/validate/mesh-20.toml --out "$REAL" >"$OUT/real.log" 2>&1 &
RUN_PID=$!
trap 'kill "$RUN_PID" 2>/dev/null || true' EXIT

scrape() { # $1 = output file: every daemon's gossip counters, one "node metric value" a line
  local f=$1 i=0
  : >"$f.tmp"
  # `testnet run` writes no state file: each daemon's admin address is in its config.
  for admin in $(python3 -c 'import glob,sys,tomllib,re
homes = sorted(glob.glob(sys.argv[1] + "/node*/config.toml"), key=lambda p: int(re.search(r"node(\d+)/", p).group(1)))
[print("http://" + tomllib.load(open(h, "rb"))["admin"]["addr"]) for h in homes]' "$REAL/testnet"); do
    curl -fsS --max-time 2 "$admin/metrics" 2>/dev/null \
      | grep -E '^(libp2p_gossipsub_topic_msg_(sent_counts|sent_bytes|recv_counts_unfiltered|recv_counts|recv_bytes)_total|libp2p_gossipsub_mesh_peer_counts|libp2p_gossipsub_topic_peers_counts)' \
      | sed "s/^/$i /" >>"$f.tmp" || return 1
    i=$((i + 1))
  done
  echo "$(date +%s.%N)" >"$f.time"
  mv "$f.tmp" "$f"
}

# Wait until the measured run starts (records.jsonl written after the mesh converged).
until [ -s "$REAL/records.jsonl" ] && [ -f "$REAL/testnet/node0/config.toml" ]; do
  kill -0 "$RUN_PID" 2>/dev/null || { echo "the real run ended early; see $OUT/real.log" >&2; exit 1; }
  sleep 1
done
scrape "$OUT/metrics-first" || true
while kill -0 "$RUN_PID" 2>/dev/null; do
  sleep 5
  scrape "$OUT/metrics-next" && cp "$OUT/metrics-next" "$OUT/metrics-last" && cp "$OUT/metrics-next.time" "$OUT/metrics-last.time" || true
done
wait "$RUN_PID" || true
trap - EXIT

"$BIN" testnet simulate testnet/scenarios/sim-validate-20.toml --out "$SIM" >"$OUT/sim.log" 2>&1

python3 - "$OUT" <<'PY'
import json, sys, math, collections
out = sys.argv[1]
def nearest(sorted_vals, n, p):
    if n == 0: return None
    rank = max(1, min(n, math.ceil(round(p * 100) * n / 10000)))
    return sorted_vals[rank - 1] if rank <= len(sorted_vals) else "never"
# Real convergence from records.jsonl (testnet/src/measure.rs definition).
nodes, msgs = 0, collections.defaultdict(dict)
for line in open(f"{out}/real/records.jsonl"):
    r = json.loads(line)
    if r["type"] == "meta": nodes = r["nodes"]
    if r["type"] == "gossip" and r["observer"] != r["publisher"]:
        msgs[(r["publisher"], r["seq"])].setdefault(r["observer"], r["delay_ms"])
conv = sorted(max(m.values()) for m in msgs.values() if len(m) >= nodes - 1)
n = len(msgs)
real_conv = {p: nearest(conv, n, p) for p in (50, 90, 99)}
real_never = n - len(conv)
def load(f):
    d = collections.defaultdict(float)
    for line in open(f):
        node, rest = line.split(" ", 1)
        name, val = rest.rsplit(" ", 1)
        d[name.split("{")[0]] += float(val)
    return d
a, b = load(f"{out}/metrics-first"), load(f"{out}/metrics-last")
dt = float(open(f"{out}/metrics-last.time").read()) - float(open(f"{out}/metrics-first.time").read())
rate = lambda k: (b[k] - a[k]) / dt / 20
sim = json.load(open(f"{out}/sim/report.json"))
ann = sim["gossip"][0]
def sim_ms(p):
    v = ann[f"convergence_p{p}_us"]
    return v if isinstance(v, str) else round(v["at"] / 1000, 1)
rows = [
  ("announcement convergence p50 (ms)", real_conv[50], sim_ms(50)),
  ("announcement convergence p90 (ms)", real_conv[90], sim_ms(90)),
  ("announcement convergence p99 (ms)", real_conv[99], sim_ms(99)),
  ("announcements measured / never converged", f"{n} / {real_never}", f"{ann['tracked']} / {ann['never_converged']}"),
  ("gossip messages sent per daemon per s", round(rate("libp2p_gossipsub_topic_msg_sent_counts_total"), 1), round(sim["traffic"]["sent_msgs_mean"], 1)),
  ("gossip messages received per daemon per s (duplicates included)", round(rate("libp2p_gossipsub_topic_msg_recv_counts_unfiltered_total"), 1), round(sim["traffic"]["received_msgs_mean"], 1)),
  ("gossip bytes sent per daemon per s", round(rate("libp2p_gossipsub_topic_msg_sent_bytes_total")), round(sim["traffic"]["sent_bytes_mean"])),
]
print(f"scrape window {dt:.1f} s; real mesh peers per daemon per topic: {b['libp2p_gossipsub_mesh_peer_counts']/20/3:.1f}")
print("| figure | real (20 daemons) | simulated |\n|---|---|---|")
for r in rows: print(f"| {r[0]} | {r[1]} | {r[2]} |")
PY
