#!/usr/bin/env bash
# bench/backlog.sh BUILD_DIR - memory and restart with a large backlog (issue 9's targets),
# on its own sink and hookd, everything on 127.0.0.1, every child stopped on exit. Run by
# bench/run.sh (make bench) unless BENCH_BACKLOG=0; prints one report section on stdout.
#
#  1. start bench/sink and hookd (apps "healthy" -> sink, "down" -> a closed loopback port,
#     whose one retry waits an hour, so its backlog stays pending; its circuit breaker is
#     off, so that every delivery gets its first attempt as before the breaker existed)
#  2. idle RSS; a healthy pass (H publishes to the healthy app) without a backlog
#  3. N publishes to the down app; wait until each has had its one failed attempt
#  4. RSS with N pending (anonymous = hookd's own memory; file = LMDB's mapped pages)
#  5. the same healthy pass while the backlog exists (ratio to step 2)
#  6. restart (SIGTERM, start again): time to /healthz and to the first delivery of a new
#     message to the healthy app, counted from the new process's start; RSS after
#
#   BENCH_BACKLOG [1000000]  pending deliveries to build up
#   BENCH_BACKLOG_H [20000]  publishes of each healthy pass
#   BENCH_BACKLOG_C [64]     publish concurrency
set -euo pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/bench
HOOKD=$BUILD/hookd
N=${BENCH_BACKLOG:-1000000}
H=${BENCH_BACKLOG_H:-20000}
C=${BENCH_BACKLOG_C:-64}
KEY=bench-backlog-key-$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hookd-backlog.XXXXXX")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
cleanup() {
	stop_children
	[ -n "${BENCH_KEEP:-}" ] && echo "backlog: kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "backlog: $*" >&2; }
die() { echo "backlog: FAILED: $*"; echo "backlog: FAILED: $*" >&2; exit 1; }
now_ns() { date +%s%N; }
# mem PID: "VmRSS x MiB (anonymous y MiB, file z MiB)" from /proc/PID/status.
mem() {
	awk '/^VmRSS/{ r = $2 } /^RssAnon/{ a = $2 } /^RssFile/{ f = $2 } /^RssShmem/{ s = $2 }
		END { printf "VmRSS %.1f MiB (anonymous %.1f MiB, file %.1f MiB, shared %.1f MiB)", r / 1024, a / 1024, f / 1024, s / 1024 }' "/proc/$1/status"
}
anon_mib() { awk '/^RssAnon/{ printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

"$BIN/sink" --port 0 --max-seconds 3600 >"$TMP/sink.out" 2>"$TMP/sink.err" &
PIDS+=($!)
for _ in $(seq 50); do grep -q '^PORT ' "$TMP/sink.out" && break; sleep 0.1; done
SINK_PORT=$(awk '/^PORT /{ print $2 }' "$TMP/sink.out")
[ -n "$SINK_PORT" ] || die "sink did not start"
SINK=http://127.0.0.1:$SINK_PORT

# A loopback port nothing listens on: connections are refused at once (the endpoint is down).
DOWN_PORT=""
for _ in $(seq 20); do
	p=$(random_port)
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then DOWN_PORT=$p; break; fi
done
[ -n "$DOWN_PORT" ] || die "no closed port found"

HOOKD_PID=""
PORT=""
START_NS=0
# start_hookd: starts hookd on $PORT (chosen on first use); START_NS is when it was started.
start_hookd() {
	local i
	for i in 1 2 3; do
		[ -n "$PORT" ] || PORT=$(random_port)
		cat >"$TMP/hookd.yaml" <<-EOF
		listen: "127.0.0.1:$PORT"
		data_dir: "$TMP/data"
		storage:
		  map_size: 8GiB
		api:
		  admin_key: "$KEY"
		security:
		  allow_destinations:
		    - "127.0.0.0/8"
		EOF
		START_NS=$(now_ns)
		HOOKD_ADMIN_KEY=$KEY "$HOOKD" serve --config "$TMP/hookd.yaml" >>"$TMP/hookd.log" 2>&1 &
		HOOKD_PID=$!
		PIDS+=($HOOKD_PID)
		for _ in $(seq 600); do
			if "${CURL[@]}" -m 1 -o /dev/null -f "http://127.0.0.1:$PORT/healthz"; then
				HEALTHZ_NS=$(now_ns)
				return 0
			fi
			alive "$HOOKD_PID" || break
			sleep 0.02
		done
		kill -TERM "$HOOKD_PID" 2>/dev/null || true
		PORT=""
	done
	die "hookd did not start: $(tail -n 20 "$TMP/hookd.log")"
}
api() {
	local code
	code=$("${CURL[@]}" -o "$TMP/api.out" -w '%{http_code}' -X "$1" \
		-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		--data "$3" "http://127.0.0.1:$PORT$2") || true
	[ "$code" = "$4" ] || die "$1 $2 -> HTTP $code (wanted $4): $(cat "$TMP/api.out" 2>/dev/null)"
}
metric() {
	"${CURL[@]}" -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/metrics" |
		awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'
}
publish() { # APP COUNT OUT
	timeout 900 "$BIN/publish" --url "http://127.0.0.1:$PORT/v1/apps/$1/messages" --key "$KEY" \
		-n "$2" -c "$C" --pad 1024 --deadline 800 >"$3" 2>"$3.err" || true
	[ "$(kv accepted "$3")" = "$2" ] || die "publish to $1: $(cat "$3" "$3.err")"
}
# healthy_pass NAME: H publishes to the healthy app; prints deliveries/s (first publish ->
# last receipt) after waiting for all of them at the sink.
healthy_pass() {
	local out=$TMP/pub-$1.txt st=$TMP/st-$1.json count=0 deadline=$((SECONDS + 120))
	"${CURL[@]}" -o /dev/null -X POST "$SINK/_reset"
	publish healthy "$H" "$out"
	while :; do
		"${CURL[@]}" -o "$st" "$SINK/_stats" || true
		count=$(jnum count "$st")
		[ "${count:-0}" -ge "$H" ] && break
		[ "$SECONDS" -lt "$deadline" ] || die "healthy pass $1: ${count:-0} of $H delivered"
		sleep 0.1
	done
	fdiv "$H" "$(fdiv "$(($(jnum last_ns "$st") - $(kv first_start_ns "$out")))" 1000000000 3)" 0
}

mkdir -p "$TMP/data"
start_hookd
IDLE=$(mem "$HOOKD_PID")
api POST /v1/apps '{"id":"healthy","name":"backlog bench, healthy"}' 201
api POST /v1/apps/healthy/endpoints "{\"id\":\"ok\",\"url\":\"$SINK/healthy\"}" 201
api POST /v1/apps '{"id":"down","name":"backlog bench, down"}' 201
api POST /v1/apps/down/endpoints \
	"{\"id\":\"gone\",\"url\":\"http://127.0.0.1:$DOWN_PORT/\",\"retry_schedule\":[3600,3600],\"breaker\":{\"consecutive_failures\":0,\"failure_ratio\":0}}" 201

log "healthy pass without a backlog ($H publishes)"
RATE0=$(healthy_pass before)

log "publishing $N messages to the down endpoint"
T0=$SECONDS
publish down "$N" "$TMP/pub-down.txt"
PUB_S=$((SECONDS - T0))
PUB_RATE=$(kv publish_per_s "$TMP/pub-down.txt")
deadline=$((SECONDS + 900))
while [ "$(metric hookd_attempts_failed_total)" -lt "$N" ]; do
	[ "$SECONDS" -lt "$deadline" ] || die "the down endpoint's first attempts did not finish"
	alive "$HOOKD_PID" || die "hookd died: $(tail -n 20 "$TMP/hookd.log")"
	sleep 1
done
SWEEP_S=$((SECONDS - T0))
PENDING=$(metric hookd_pending)
SCHED=$(metric hookd_scheduled)
BACKLOG_MEM=$(mem "$HOOKD_PID")
BACKLOG_ANON=$(anon_mib "$HOOKD_PID")

log "healthy pass with $PENDING pending ($H publishes)"
RATE1=$(healthy_pass during)

log "restart with the backlog"
kill -TERM "$HOOKD_PID"
for _ in $(seq 300); do alive "$HOOKD_PID" || break; sleep 0.1; done
alive "$HOOKD_PID" && die "hookd did not stop on SIGTERM"
"${CURL[@]}" -o /dev/null -X POST "$SINK/_reset"
start_hookd
HEALTHZ_MS=$(fdiv "$((HEALTHZ_NS - START_NS))" 1000000 0)
# One new message to the healthy app, as soon as the API answers; its receipt at the sink,
# from the start of the new process.
api POST /v1/apps/healthy/messages '{"type":"bench.first","data":{"after":"restart"}}' 202
first_ms=""
for _ in $(seq 500); do
	"${CURL[@]}" -o "$TMP/st-first.json" "$SINK/_stats" || true
	if [ "$(jnum count "$TMP/st-first.json")" -ge 1 ] 2>/dev/null; then
		first_ms=$(fdiv "$(($(now_ns) - START_NS))" 1000000 0)
		break
	fi
	sleep 0.01
done
[ -n "$first_ms" ] || die "no delivery within 5 s of the restart"
# The new message's delivery leaves the due index when its outcome commits.
for _ in $(seq 100); do
	AFTER_PENDING=$(metric hookd_pending)
	[ "$AFTER_PENDING" -ne "$N" ] || break
	sleep 0.05
done
AFTER_MEM=$(mem "$HOOKD_PID")

cat <<EOF
backlog: $N messages to an endpoint that is down (connection refused; one failed attempt
  each, next retry in an hour), apps healthy and down on one hookd, storage.map_size 8GiB
  idle, just started:            $IDLE
  publishing the backlog:         $PUB_S s ($PUB_RATE publishes/s); all $N first attempts done after $SWEEP_S s
  with $PENDING pending:        $BACKLOG_MEM; scheduler holds $SCHED in memory
                                  target: anonymous under 200 MB (here $BACKLOG_ANON MiB); idle VmRSS under 15 MB
  healthy app, $H publishes:   $RATE0 deliveries/s without the backlog, $RATE1/s with it = $(fdiv "$RATE1" "$RATE0") x
  restart with the backlog:       /healthz after $HEALTHZ_MS ms; a new message to the healthy app delivered $first_ms ms after the process started (target: under 1000 ms)
                                  then $AFTER_PENDING pending (the backlog plus nothing lost), $AFTER_MEM
EOF
