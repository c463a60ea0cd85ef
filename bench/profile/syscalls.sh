#!/usr/bin/env bash
# bench/profile/syscalls.sh HOOKD BENCH_BIN_DIR N: N publishes (concurrency 64) to one endpoint on the
# sink; prints hookd epoll_ctl and syscalls per delivery (perf stat) and CPU per delivery.
set -eu
HOOKD=$1; BIN=$2; N=$3
. "$(dirname "$0")/common.sh"
trap profile_stop EXIT
profile_start "$HOOKD" "$BIN" 1
t0=$(cpu_ticks "$HP")
perf stat -e 'syscalls:sys_enter_epoll_ctl,raw_syscalls:sys_enter' -p "$HP" -o "$T/perf.txt" &
PP=$!
sleep 0.3
profile_publish "$N"
profile_drain "$N" || true
t1=$(cpu_ticks "$HP")
kill -INT $PP; wait $PP 2>/dev/null || true
ep=$(awk '/epoll_ctl/{ gsub(",", "", $1); print $1 }' "$T/perf.txt")
all=$(awk '/raw_syscalls/{ gsub(",", "", $1); print $1 }' "$T/perf.txt")
echo "epoll_ctl/delivery=$(fdiv "$ep" "$N") syscalls/delivery=$(fdiv "$all" "$N") cpu_us/delivery=$(fdiv "$(( (t1 - t0) * 1000000 ))" "$((N * $(getconf CLK_TCK)))" 1) publish_per_s=$(kv publish_per_s "$T/p.txt")"
