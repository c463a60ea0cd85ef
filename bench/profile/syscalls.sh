#!/usr/bin/env bash
# bench/profile/syscalls.sh HOOKD BENCH_BIN_DIR N: N publishes (concurrency 64) to one endpoint on the
# sink; prints hookd epoll_ctl and syscalls per delivery (perf stat) and CPU per delivery.
set -eu
HOOKD=$1; BIN=$2; N=$3
T=$(mktemp -d); KEY=k$$
$BIN/sink --port 0 --max-seconds 300 > $T/sink.out 2>&1 & SP=$!
sleep 0.3; SPORT=$(awk '/^PORT/{print $2}' $T/sink.out)
PORT=$((20000 + RANDOM % 40000))
printf 'listen: "127.0.0.1:%s"\ndata_dir: "%s/data"\napi:\n  admin_key: "%s"\nsecurity:\n  allow_destinations: ["127.0.0.0/8"]\n' $PORT $T $KEY > $T/h.yaml
HOOKD_ADMIN_KEY=$KEY $HOOKD serve --config $T/h.yaml > $T/h.log 2>&1 & HP=$!
for i in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.05; done
A=(-s -o /dev/null -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json')
curl "${A[@]}" -X POST --data '{"id":"a","name":"a"}' http://127.0.0.1:$PORT/v1/apps
curl "${A[@]}" -X POST --data "{\"id\":\"e\",\"url\":\"http://127.0.0.1:$SPORT/x\"}" http://127.0.0.1:$PORT/v1/apps/a/endpoints
t0=$(awk '{print $14+$15}' /proc/$HP/stat)
perf stat -e 'syscalls:sys_enter_epoll_ctl,raw_syscalls:sys_enter' -p $HP -o $T/perf.txt &
PP=$!
sleep 0.3
$BIN/publish --url http://127.0.0.1:$PORT/v1/apps/a/messages --key $KEY -n $N -c 64 --pad 1024 --deadline 60 > $T/p.txt 2>&1
for i in $(seq 100); do c=$(curl -s http://127.0.0.1:$SPORT/_stats | sed 's/.*"count":\([0-9]*\).*/\1/'); [ "$c" -ge $N ] && break; sleep 0.1; done
t1=$(awk '{print $14+$15}' /proc/$HP/stat)
kill -INT $PP; wait $PP 2>/dev/null || true
ep=$(awk '/epoll_ctl/{gsub(",","",$1); print $1}' $T/perf.txt); all=$(awk '/raw_syscalls/{gsub(",","",$1); print $1}' $T/perf.txt)
echo "epoll_ctl/delivery=$(awk -v a=$ep -v n=$N 'BEGIN{printf "%.2f", a/n}') syscalls/delivery=$(awk -v a=$all -v n=$N 'BEGIN{printf "%.2f", a/n}') cpu_us/delivery=$(awk -v a=$((t1-t0)) -v n=$N -v hz=$(getconf CLK_TCK) 'BEGIN{printf "%.1f", a/hz*1e6/n}') $(tr ' ' '\n' < $T/p.txt | grep publish_per_s)"
kill $HP $SP; wait $HP $SP 2>/dev/null || true; rm -rf $T
