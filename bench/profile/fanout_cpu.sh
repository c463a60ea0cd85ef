#!/usr/bin/env bash
# bench/profile/fanout_cpu.sh HOOKD BENCH_BIN_DIR N_ENDPOINTS M: M publishes to an app with N endpoints on
# one sink (INFL=delivery.max_inflight, default 1024); prints hookd CPU per delivery. Loopback only.
set -eu
HOOKD=$1; BIN=$2; NEP=$3; M=$4
T=$(mktemp -d); KEY=k$$
$BIN/sink --port 0 --max-seconds 300 > $T/sink.out 2>&1 & SP=$!
sleep 0.3; SPORT=$(awk '/^PORT/{print $2}' $T/sink.out)
PORT=$((10000 + RANDOM % 20000))
printf 'listen: "127.0.0.1:%s"\ndata_dir: "%s/data"\napi:\n  admin_key: "%s"\nsecurity:\n  allow_destinations: ["127.0.0.0/8"]\ndelivery:\n  max_inflight: '${INFL:-1024}'\n' $PORT $T $KEY > $T/h.yaml
HOOKD_ADMIN_KEY=$KEY $HOOKD serve --config $T/h.yaml > $T/h.log 2>&1 & HP=$!
for i in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.05; done
A=(-s -o /dev/null -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json')
curl "${A[@]}" -X POST --data '{"id":"a","name":"a"}' http://127.0.0.1:$PORT/v1/apps
for i in $(seq $NEP); do curl "${A[@]}" -X POST --data "{\"id\":\"e$i\",\"url\":\"http://127.0.0.1:$SPORT/x$i\"}" http://127.0.0.1:$PORT/v1/apps/a/endpoints; done
t0=$(awk "{print \$14+\$15}" /proc/$HP/stat)
sleep 0.3
$BIN/publish --url http://127.0.0.1:$PORT/v1/apps/a/messages --key $KEY -n $M -c 64 --pad 1024 --deadline 60 > $T/p.txt 2>&1
N=$((NEP*M))
for i in $(seq 300); do c=$(curl -s http://127.0.0.1:$SPORT/_stats | sed 's/.*"count":\([0-9]*\).*/\1/'); [ "$c" -ge $N ] && break; sleep 0.1; done
t1=$(awk "{print \$14+\$15}" /proc/$HP/stat); echo "infl=${INFL:-1024} cpu_us_per_delivery=$(( (t1-t0)*10000*100/N/100 ))"

kill $HP $SP; wait $HP $SP 2>/dev/null || true; rm -rf $T
