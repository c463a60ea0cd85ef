#!/usr/bin/env bash
# bench/profile/instr.sh HOOKD BENCH_BIN_DIR N_ENDPOINTS M: hookd under callgrind, M publishes to an
# app with N endpoints on one sink; prints the instructions hookd executed (all threads, user
# space) per delivery, counted from the first publish to the last receipt (callgrind_control
# zeroes the counts before and dumps them after). Instruction counts do not depend on what
# else the machine is doing, so two builds can be compared on a busy machine where CPU time
# moves by +-20 %. About 50x slower than the real daemon: keep N x M to a few thousand.
# KEEP=DIR copies the dumps there (callgrind_annotate reads them). Loopback only.
set -eu
HOOKD=$1; BIN=$2; NEP=$3; M=$4
HOOKD=$(cd "$(dirname "$HOOKD")" && pwd)/$(basename "$HOOKD")
. "$(dirname "$0")/common.sh"
CG=$(mktemp -d)
trap 'profile_stop; rm -rf "$CG"' EXIT
W=$CG/hookd
printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cg.%%p.out %s "$@"\n' "$CG" "$HOOKD" >"$W"
chmod +x "$W"
PROFILE_UP_TRIES=600 profile_start "$W" "$BIN" "$NEP" "delivery:
  max_inflight: ${INFL:-1024}
"
N=$((NEP * M))
callgrind_control -z "$HP" >/dev/null 2>&1
profile_publish "$M"
profile_drain "$N" || { echo "instr: the sink did not get $N deliveries" >&2; exit 1; }
callgrind_control -d "$HP" >/dev/null 2>&1
got=$("${CURL[@]}" "http://127.0.0.1:$SPORT/_stats" | sed 's/.*"count":\([0-9]*\).*/\1/')
ir=$(cat "$CG"/cg.*.out.* 2>/dev/null | awk '/^summary:/ { s += $2 } END { print s + 0 }')
[ -z "${KEEP:-}" ] || cp "$CG"/cg.*.out.* "$KEEP"/
echo "endpoints=$NEP publishes=$M deliveries=$got instructions_per_delivery=$(fdiv "$ir" "$N" 0)"
