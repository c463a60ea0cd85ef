# shellcheck shell=bash
# bench/peers/bullmq/peer.sh - sourced by bench/run.sh (not run on its own): the peer pass,
# what users build instead of hookd, measured against the same sink in the same run.
#
#   redis-server  Debian's, on a free 127.0.0.1 port, data in the run's temp dir,
#                 --appendonly yes --appendfsync always --save '' (every write fsync'd to the
#                 AOF before Redis answers it: the durable setting)
#   api.js        node:http publish API, same route, key and body as hookd's; 202 after
#                 queue.add() resolved
#   worker.js     BullMQ Worker, concurrency 64, POSTs with undici, Standard Webhooks headers
#
# Uses run.sh's helpers and state (fg, log, alive, kv, jnum, fdiv, us_ms, cpu_ticks,
# stop_child, publish_run, sink_drain, sink_tally, pass_lines, PIDS, TMP, SINK, KEY, PUB_M,
# PUB_C, HOOKD_PID, pass 1's P1_RATE, P1_PUB, P1_CPU_US and P1_HWM) and adds its section to
# REPORT_PASSES. Nothing here stops the run: whatever fails is reported as
# "peer: not available (reason)".

PEER_DIR=$HERE/peers/bullmq
# BENCH_PEER_FSYNC [always]: Redis's appendfsync. "always" is the durable setting (a 202 is on
# disk); "everysec" loses up to a second of acknowledged publishes in a crash and is there only
# to show how much of the peer's time the fsyncs take.
PEER_FSYNC=${BENCH_PEER_FSYNC:-always}
PEER_WHY=""

# peer_prepare: makes the peer runnable, quietly (output in $TMP/peer-install.log): installs
# from Debian whichever of redis-server, nodejs and npm is missing (apt-get update only when the
# first install fails), and runs npm ci in bench/peers/bullmq when node_modules was not installed
# from the current package-lock.json. Returns 1 with PEER_WHY set when it cannot.
peer_prepare() {
	local ilog=$TMP/peer-install.log pkgs=() want have
	command -v redis-server >/dev/null || pkgs+=(redis-server)
	command -v node >/dev/null || pkgs+=(nodejs)
	command -v npm >/dev/null || pkgs+=(npm)
	if [ ${#pkgs[@]} -gt 0 ]; then
		if [ "$(id -u)" != 0 ]; then
			PEER_WHY="${pkgs[*]} missing, and apt-get install needs root"
			return 1
		fi
		log "peer: installing ${pkgs[*]} from Debian"
		local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=120
			install --no-install-recommends "${pkgs[@]}")
		if ! fg timeout 900 "${apt[@]}" >>"$ilog" 2>&1; then
			fg timeout 300 apt-get -q -o DPkg::Lock::Timeout=120 update >>"$ilog" 2>&1 || true
			if ! fg timeout 900 "${apt[@]}" >>"$ilog" 2>&1; then
				PEER_WHY="apt-get install ${pkgs[*]} failed: $(grep -E '^E:' "$ilog" | tail -n 1)"
				peer_keep_log
				return 1
			fi
		fi
	fi
	# undici 6 wants Node.js 18.17 or later (Debian 12's nodejs is 18.20).
	if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 17) ? 0 : 1)'; then
		PEER_WHY="Node.js $(node --version) is older than 18.17"
		return 1
	fi
	want=$(sha256sum "$PEER_DIR/package-lock.json" | cut -d' ' -f1)
	have=$(cat "$PEER_DIR/node_modules/.hookd-bench-lock" 2>/dev/null || true)
	if [ "$want" != "$have" ]; then
		log "peer: npm ci in bench/peers/bullmq"
		if ! fg timeout 600 npm ci --prefix "$PEER_DIR" --no-audit --no-fund --loglevel=error >>"$ilog" 2>&1; then
			PEER_WHY="npm ci in bench/peers/bullmq failed: $(grep -E 'ERR' "$ilog" | tail -n 1)"
			peer_keep_log
			return 1
		fi
		echo "$want" >"$PEER_DIR/node_modules/.hookd-bench-lock"
	fi
	if ! node -e 'for (const m of ["bullmq", "undici"]) require(require.resolve(m, { paths: [process.argv[1]] }))' "$PEER_DIR" >>"$ilog" 2>&1; then
		PEER_WHY="bullmq or undici does not load: $(tail -n 1 "$ilog")"
		peer_keep_log
		return 1
	fi
}

# peer_keep_log: keeps the install log beside the report (the temp dir goes at exit).
peer_keep_log() {
	cp "$TMP/peer-install.log" "$RESULTS/peer-install.log" 2>/dev/null &&
		PEER_WHY+="; log: $RESULTS/peer-install.log"
}

# peer_versions: "Node.js vX, BullMQ X, undici X, Redis X" for the report.
peer_versions() {
	# shellcheck disable=SC2016 # the backquotes are a JavaScript template literal
	echo "Node.js $(node --version), $(node -p 'const d = process.argv[1] + "/node_modules/"; `BullMQ ${require(d + "bullmq/package.json").version}, undici ${require(d + "undici/package.json").version}`' "$PEER_DIR"), Redis $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
}

# redis_ping PORT: true once a Redis answers PING on 127.0.0.1:PORT.
redis_ping() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'PING\r\n' >&3
		IFS= read -r -t 2 line <&3 && [[ $line == +PONG* ]]
	) 2>/dev/null
}

# wait_line FILE PATTERN PID: waits up to 15 s for a line matching PATTERN in FILE while PID
# runs (node prints PORT/READY once it is connected to Redis and listening).
wait_line() {
	local _
	for _ in $(seq 150); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		alive "$3" || return 1
		sleep 0.1
	done
	return 1
}

# peer_start: Redis, then the API and the worker, each a tracked child. Sets REDIS_PID,
# API_PID, WORKER_PID and PEER_API. Returns 1 with PEER_WHY set when one does not come up.
REDIS_PID="" API_PID="" WORKER_PID=""
peer_start() {
	local port="" rport=""
	mkdir -p "$TMP/redis"
	for _ in 1 2 3; do
		# A random high port that nothing answers on; retried if Redis still cannot bind it.
		port=$(random_port)
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
		redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes --dir "$TMP/redis" \
			--appendonly yes --appendfsync "$PEER_FSYNC" --save '' --daemonize no \
			--logfile "$TMP/redis/redis.log" >>"$TMP/redis/redis.out" 2>&1 &
		REDIS_PID=$!
		PIDS+=("$REDIS_PID")
		for _ in $(seq 50); do
			redis_ping "$port" && { rport=$port; break; }
			alive "$REDIS_PID" || break
			sleep 0.1
		done
		[ -n "$rport" ] && break
		stop_child "$REDIS_PID"
		REDIS_PID=""
	done
	if [ -z "$rport" ]; then
		PEER_WHY="redis-server did not start: $(cat "$TMP/redis/redis.out" "$TMP/redis/redis.log" 2>/dev/null | tail -n 2 | tr '\n' ' ')"
		return 1
	fi
	node "$PEER_DIR/api.js" --port 0 --redis-port "$rport" --key "$KEY" \
		>"$TMP/peer-api.out" 2>"$TMP/peer-api.err" &
	API_PID=$!
	PIDS+=("$API_PID")
	PEER_SECRET=whsec_$(head -c 24 /dev/urandom | base64)
	node "$PEER_DIR/worker.js" --redis-port "$rport" --sink "$SINK" --secret "$PEER_SECRET" \
		--concurrency 64 >"$TMP/peer-worker.out" 2>"$TMP/peer-worker.err" &
	WORKER_PID=$!
	PIDS+=("$WORKER_PID")
	if ! wait_line "$TMP/peer-api.out" '^PORT ' "$API_PID"; then
		PEER_WHY="api.js did not start: $(tail -n 3 "$TMP/peer-api.err" | tr '\n' ' ')"
		return 1
	fi
	if ! wait_line "$TMP/peer-worker.out" '^READY' "$WORKER_PID"; then
		PEER_WHY="worker.js did not start: $(tail -n 3 "$TMP/peer-worker.err" | tr '\n' ' ')"
		return 1
	fi
	PEER_API=http://127.0.0.1:$(awk '/^PORT /{ print $2 }' "$TMP/peer-api.out")
	log "peer: Redis on 127.0.0.1:$rport (pid $REDIS_PID), API on $PEER_API (pid $API_PID), worker pid $WORKER_PID"
}

# peer_stop: stops the worker, the API and Redis, in that order.
peer_stop() {
	local p
	for p in "$WORKER_PID" "$API_PID" "$REDIS_PID"; do
		[ -z "$p" ] || stop_child "$p"
	done
	WORKER_PID="" API_PID="" REDIS_PID=""
}

# hwm_kib PID: the process's peak resident set (VmHWM) in KiB, 0 if unknown.
hwm_kib() {
	local v=""
	[ -r "/proc/$1/status" ] && v=$(awk '/^VmHWM/{ print $2 }' "/proc/$1/status" 2>/dev/null)
	echo "${v:-0}"
}
kib_mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }

# peer_pass: stops hookd (keeping its peak RSS for the report and the ratio), starts the peer,
# runs pass 1's publishes against it (same M, C and payload, same sink, reset), waits for
# the deliveries as pass 1 does, and reports; the ratios are hookd's pass 1 over the peer's.
peer_pass() {
	local hookd_hwm=0 hookd_rss="n/a"
	if [ -n "$HOOKD_PID" ] && alive "$HOOKD_PID"; then
		hookd_hwm=$(hwm_kib "$HOOKD_PID")
		hookd_rss=$(awk '/^Rss(Anon|File)/{ sub(":", "", $1); printf "%s%s %.0f MiB", sep, $1, $2 / 1024; sep = ", " }' "/proc/$HOOKD_PID/status" 2>/dev/null || echo "n/a")
		HOOKD_RSS_SAVED=$(kib_mib "$hookd_hwm")
		log "peer: stopping hookd so that it does not compete"
		stop_child "$HOOKD_PID"
	fi
	if ! peer_start; then
		peer_stop
		REPORT_PASSES+="
peer: not available ($PEER_WHY)
"
		log "peer: not available ($PEER_WHY)"
		return 0
	fi
	local versions
	versions=$(peer_versions)
	sink_reset
	local pub=$TMP/publish-peer.txt st=$TMP/stats-peer.json st2=$TMP/stats2-peer.json
	local c_api0 c_wk0 c_rd0 c_api1 c_wk1 c_rd1
	c_api0=$(cpu_ticks "$API_PID") c_wk0=$(cpu_ticks "$WORKER_PID") c_rd0=$(cpu_ticks "$REDIS_PID")
	log "peer: publishing $PUB_M messages (concurrency $PUB_C) to 1 endpoint"
	if ! PUB_RATE="" publish_run "$PEER_API/v1/apps/bench1/messages" "$PUB_M" "$pub"; then
		peer_stop
		REPORT_PASSES+="
peer: not available ($PUB_FAIL)
"
		return 0
	fi
	local expected
	expected=$(kv accepted "$pub")
	sink_drain "$expected" "$st" "$API_PID" "$WORKER_PID" "$REDIS_PID"
	local alive=$DRAIN_ALIVE
	c_api1=$(cpu_ticks "$API_PID") c_wk1=$(cpu_ticks "$WORKER_PID") c_rd1=$(cpu_ticks "$REDIS_PID")
	sink_tally "$pub" "$st" "$st2" "$expected"
	local h_api h_wk h_rd h_sum hz aof rewrites
	h_api=$(hwm_kib "$API_PID") h_wk=$(hwm_kib "$WORKER_PID") h_rd=$(hwm_kib "$REDIS_PID")
	h_sum=$((h_api + h_wk + h_rd))
	hz=$(getconf CLK_TCK)
	peer_stop
	aof=$(du -sk "$TMP/redis" 2>/dev/null | awk '{ printf "%.0f MiB", $1 / 1024 }')
	rewrites=$(grep -c 'Background append only file rewriting started' "$TMP/redis/redis.log" 2>/dev/null || true)
	local cpu_api cpu_wk cpu_rd cpu_all
	cpu_api=$(fdiv "$((c_api1 - c_api0))" "$hz" 2) cpu_wk=$(fdiv "$((c_wk1 - c_wk0))" "$hz" 2)
	cpu_rd=$(fdiv "$((c_rd1 - c_rd0))" "$hz" 2)
	cpu_all=$(fdiv "$((c_api1 - c_api0 + c_wk1 - c_wk0 + c_rd1 - c_rd0))" "$hz" 2)
	local peer_us
	peer_us=$(fdiv "$(awk -v s="$cpu_all" 'BEGIN { print s * 1e6 }')" "$DRAIN_COUNT" 1)
	REPORT_PASSES+="
peer: Node.js + BullMQ on Redis (appendonly yes, appendfsync $PEER_FSYNC$([ "$PEER_FSYNC" = always ] || echo ': NOT DURABLE')) + undici, as users build it (bench/peers/bullmq)
  $versions; API and worker are separate processes, worker concurrency 64
  1 endpoint per message, $PUB_M publishes, concurrency $PUB_C, ~1 KiB payload, same sink as hookd's passes
$(pass_lines "$pub" "$st" "$st2" "$PUB_M" "$expected" "$([ "$alive" = yes ] || echo "; A PEER PROCESS DIED")")
  peer CPU:         $cpu_all s ($peer_us us per delivery): api $cpu_api s, worker $cpu_wk s, redis $cpu_rd s
  peer peak RSS:    $(kib_mib "$h_sum") = api $(kib_mib "$h_api") + worker $(kib_mib "$h_wk") + redis $(kib_mib "$h_rd"); Redis data dir at the end $aof, AOF rewrites $rewrites
  hookd / peer:     deliveries/s $(fdiv "$P1_RATE" "$T_RATE") (pass 1 $P1_RATE / peer $T_RATE)
                    publish latency p50 $(fdiv "$(kv p50_us "$P1_PUB")" "$(kv p50_us "$pub")"), p99 $(fdiv "$(kv p99_us "$P1_PUB")" "$(kv p99_us "$pub")") (pass 1 $(us_ms "$(kv p50_us "$P1_PUB")") / $(us_ms "$(kv p99_us "$P1_PUB")"); below 1: hookd answers sooner)
                    CPU per delivery $(fdiv "$P1_CPU_US" "$peer_us") (pass 1 $P1_CPU_US us / peer $peer_us us, its three processes together; steadier than rates on a shared machine)
                    peak RSS $(fdiv "$P1_HWM" "$h_sum") after the same $PUB_M messages (hookd's VmHWM after pass 1 $(kib_mib "$P1_HWM") / the peer's three processes' VmHWM added, $(kib_mib "$h_sum"))
                    $(fdiv "$hookd_hwm" "$h_sum") with hookd's VmHWM over all its passes, $(kib_mib "$hookd_hwm") (at their end $hookd_rss: the file part is LMDB's map of every message stored)
"
	log "peer: $DRAIN_COUNT/$expected delivered, $T_RATE deliveries/s"
}
