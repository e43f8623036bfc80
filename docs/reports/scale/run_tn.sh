#!/bin/bash
# run_tn.sh BIN N TAG: up --detach, wait until every node sees N providers, settle, idle window, down
BIN=$1; N=$2; TAG=$3; DIR=/tmp/scale-work/tn-$TAG-$N
rm -rf $DIR
START=$(date +%s.%N)
$BIN testnet up --detach --nodes $N --dir $DIR > $DIR.up.log 2>&1 || { echo "up failed"; tail -5 $DIR.up.log; $BIN testnet down --dir $DIR; exit 1; }
UP=$(date +%s.%N)
# wait until every node sees N providers (brief poll where supported, else full)
for i in $(seq 1 240); do
  ok=$(python3 - $DIR $N <<'PY'
import json,sys,urllib.request
d,n=sys.argv[1],int(sys.argv[2]); st=json.load(open(d+"/testnet.json")); good=0
for x in st["nodes"]:
    try:
        v=json.load(urllib.request.urlopen(x["admin"]+"/peers?brief=true",timeout=5))
        h=[p for p in v["providers"] if not p["expired"] and all(c["health"]=="healthy" for c in p["chains"])]
        good+= len(h)>=n
    except Exception: pass
print(good)
PY
)
  [ "$ok" = "$N" ] && break
  sleep 1
done
CONV=$(date +%s.%N)
echo "{\"tag\":\"$TAG\",\"nodes\":$N,\"up_s\":$(echo "$UP-$START"|bc),\"converged_s\":$(echo "$CONV-$START"|bc),\"healthy_everywhere\":\"$ok/$N\"}"
sleep 5
python3 /tmp/scale-work/idle.py $DIR 15
$BIN testnet down --dir $DIR > /dev/null 2>&1
