#!/usr/bin/env bash
# bench/profile/rate.sh HOOKD BENCH_BIN_DIR RATE N: one hookd, one sink, N publishes offered at RATE/s
# (bench/publish --rate); prints publish p50/p99, syncs, commits and receipt p50. Loopback only.
set -eu
HOOKD=$1; BIN=$2; RATE=$3; N=$4
T=$(mktemp -d); KEY=k$$
$BIN/sink --port 0 --max-seconds 300 > $T/sink.out 2>&1 & SP=$!
sleep 0.3; SPORT=$(awk '/^PORT/{print $2}' $T/sink.out)
PORT=$((20000 + RANDOM % 40000))
cat > $T/h.yaml <<Y
listen: "127.0.0.1:$PORT"
data_dir: "$T/data"
api:
  admin_key: "$KEY"
security:
  allow_destinations: ["127.0.0.0/8"]
Y
HOOKD_ADMIN_KEY=$KEY $HOOKD serve --config $T/h.yaml > $T/h.log 2>&1 & HP=$!
for i in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.05; done
A=(-s -o /dev/null -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json')
curl "${A[@]}" -X POST --data '{"id":"a","name":"a"}' http://127.0.0.1:$PORT/v1/apps
curl "${A[@]}" -X POST --data "{\"id\":\"e\",\"url\":\"http://127.0.0.1:$SPORT/x\"}" http://127.0.0.1:$PORT/v1/apps/a/endpoints
$BIN/publish --url http://127.0.0.1:$PORT/v1/apps/a/messages --key $KEY -n $N -c 64 --pad 1024 --rate $RATE --deadline 60 > $T/p.txt 2>&1
sleep 0.5
m=$(curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/metrics)
sy=$(echo "$m" | awk '$1=="hookd_store_syncs_total"{print $2}'); co=$(echo "$m" | awk '$1=="hookd_store_commits_total"{print $2}')
r=$(curl -s http://127.0.0.1:$SPORT/_stats)
echo "rate=$RATE $(tr ' ' '\n' < $T/p.txt | grep -E '^(accepted|p50_us|p99_us)=' | tr '\n' ' ') syncs=$sy commits=$co recv_p50=$(echo $r | sed 's/.*"p50_us":\([0-9.]*\).*/\1/')"
kill $HP $SP; wait $HP $SP 2>/dev/null || true; rm -rf $T
