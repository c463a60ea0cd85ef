#!/usr/bin/env bash
# bench/profile/rate.sh HOOKD BENCH_BIN_DIR RATE N: one hookd, one sink, N publishes offered at RATE/s
# (bench/publish --rate); prints publish p50/p99, syncs, commits, ms per commit and receipt p50.
# Loopback only.
set -eu
HOOKD=$1; BIN=$2; RATE=$3; N=$4
. "$(dirname "$0")/common.sh"
trap profile_stop EXIT
profile_start "$HOOKD" "$BIN" 1
profile_publish "$N" --rate "$RATE"
profile_drain "$N" || true
sleep 0.5
recv=$("${CURL[@]}" "http://127.0.0.1:$SPORT/_stats")
echo "rate=$RATE accepted=$(kv accepted "$T/p.txt") p50_us=$(kv p50_us "$T/p.txt") p99_us=$(kv p99_us "$T/p.txt") syncs=$(profile_metric hookd_store_syncs_total) commits=$(profile_metric hookd_store_commits_total) ms_per_commit=$(fdiv "$(profile_metric hookd_store_commit_seconds_total)" "$(profile_metric hookd_store_commits_total)" 6 | awk '{ printf "%.3f", $1 * 1000 }') recv_p50=$(echo "$recv" | sed 's/.*"p50_us":\([0-9.]*\).*/\1/')"
