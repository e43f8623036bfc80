#!/usr/bin/env python3
"""Idle cost of a running testnet: daemon CPU per daemon, machine busy, p2p bytes, over a window
with no polling. Usage: idle.py DIR WINDOW_S"""
import json, sys, time, urllib.request, os
d, window = sys.argv[1], float(sys.argv[2])
st = json.load(open(os.path.join(d, "testnet.json")))
nodes = st["nodes"]
tck = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / tck
    except Exception:
        return None
def machine():
    f = open("/proc/stat").readline().split()[1:]
    v = list(map(int, f))
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)
def bw():
    out = []
    for n in nodes:
        try:
            t = urllib.request.urlopen(n["admin"] + "/metrics", timeout=5).read().decode()
        except Exception:
            out.append(None); continue
        o = i = 0
        for l in t.splitlines():
            if "bandwidth_bytes_total{" in l:
                v = float(l.rsplit(" ", 1)[1])
                if 'direction="Outbound"' in l: o += v
                elif 'direction="Inbound"' in l: i += v
        out.append((o, i))
    return out
pids = [n["pid"] for n in nodes]
b0 = bw()
c0 = [cpu(p) for p in pids]; m0 = machine(); t0 = time.time()
time.sleep(window)
c1 = [cpu(p) for p in pids]; m1 = machine(); t1 = time.time()
b1 = bw()
el = t1 - t0
per = [ (b - a) for a, b in zip(c0, c1) if a is not None and b is not None ]
busy = (m1[0] - m0[0]) / max(1, (m1[1] - m0[1])) * 100
sent = [b[0] - a[0] for a, b in zip(b0, b1) if a and b]
print(json.dumps({
  "nodes": len(nodes), "window_s": round(el, 1),
  "idle_cpu_pct_per_daemon": round(sum(per) / el / len(per) * 100, 3),
  "idle_cpu_pct_max_daemon": round(max(per) / el * 100, 3),
  "machine_busy_pct": round(busy, 1),
  "p2p_sent_bytes_per_s_per_daemon": round(sum(sent) / len(sent) / el, 0) if sent else None,
  "loadavg": open("/proc/loadavg").read().split()[:3],
}))
