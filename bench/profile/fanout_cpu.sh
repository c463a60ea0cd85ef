#!/usr/bin/env bash
# bench/profile/fanout_cpu.sh HOOKD BENCH_BIN_DIR N_ENDPOINTS M: M publishes to an app with N endpoints on
# one sink (INFL=delivery.max_inflight, default 1024); prints hookd CPU per delivery. Loopback only.
set -eu
HOOKD=$1; BIN=$2; NEP=$3; M=$4
. "$(dirname "$0")/common.sh"
trap profile_stop EXIT
profile_start "$HOOKD" "$BIN" "$NEP" "delivery:
  max_inflight: ${INFL:-1024}
"
N=$((NEP * M))
t0=$(cpu_ticks "$HP")
profile_publish "$M"
profile_drain "$N" || true
t1=$(cpu_ticks "$HP")
echo "infl=${INFL:-1024} cpu_us_per_delivery=$(fdiv "$(( (t1 - t0) * 1000000 ))" "$((N * $(getconf CLK_TCK)))" 1)"
