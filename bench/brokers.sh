# bench/brokers.sh - the broker transport passes of bench/run.sh (sourced by it after pass 1,
# with hookd running): deliveries/s and hookd CPU per delivery through the nats plugin (core
# NATS, and JetStream with acks), the redis plugin and the mqtt plugin, beside HTTP's pass 1
# in the same run. Each pass starts its own server (nats-server -js, redis-server, mosquitto)
# on a free loopback port,
# publishes BENCH_BROKER_M messages to an app with one endpoint on it, and counts what
# arrived with bench/peers/brokers/count.py (a core NATS or MQTT subscriber started before
# the publishes; the JetStream stream's and the Redis stream's length after them).
#
#   BENCH_BROKERS [1]                 0 skips these passes
#   BENCH_BROKER_M [BENCH_M / 2]      publishes per pass (half of pass 1's: three passes)
#
# A server binary that is missing (make test-deps installs them) skips its pass with a line
# in the report saying so.

BROKER_M=${BENCH_BROKER_M:-$((PUB_M / 2))}
BROKER_COUNT=(python3 "$HERE/peers/brokers/count.py")

# broker_listen PORT PID: waits until something listens on 127.0.0.1:PORT while PID runs.
broker_listen() {
	for _ in $(seq 150); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		alive "$2" || return 1
		sleep 0.1
	done
	return 1
}

# broker_free_port: a random port below the ephemeral range that nothing answers on.
broker_free_port() {
	local p
	for _ in $(seq 20); do
		p=$(random_port)
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}

# broker_report NAME APP URL PUB OUT CPU_S: the report lines of a pass whose consumer wrote
# "count=C last_ns=T" into OUT.
broker_report() {
	local name=$1 app=$2 url=$3 pub=$4 out=$5 cpu_s=$6 count last first secs rate
	count=$(kv count "$out")
	count=${count:-0}
	last=$(kv last_ns "$out")
	first=$(kv first_start_ns "$pub")
	secs=$(fdiv "$((${last:-0} - first))" 1000000000 3)
	rate=$(fdiv "$count" "$secs" 0)
	REPORT_PASSES+="
$name: 1 endpoint ($url), $BROKER_M publishes, concurrency $PUB_C, ~1 KiB payload
  publish:          $(kv accepted "$pub") of $BROKER_M accepted with 202; $(kv publish_per_s "$pub") publishes/s
  end to end:       $count of $(kv accepted "$pub") arrived in $secs s (first publish -> last arrival) = $rate deliveries/s = $(fdiv "$rate" "$P1_RATE") x pass 1 (HTTP, $P1_RATE/s)
  hookd CPU:        $cpu_s s ($(fdiv "$(awk -v s="$cpu_s" 'BEGIN { print s * 1e6 }')" "$count" 1) us per delivery; pass 1 (HTTP): $P1_CPU_US us)
  hookd attempts:   failed $(($(mval hookd_attempts_failed_total "$TMP/bm1-$app.txt") - $(mval hookd_attempts_failed_total "$TMP/bm0-$app.txt")))$(if [ -s "$out.err" ]; then echo "; consumer: $(head -c 300 "$out.err")"; fi)
"
	log "$name: $count/$(kv accepted "$pub") delivered, $rate deliveries/s"
}

# broker_pass NAME APP URL SUB_PID|- WAIT...: publishes to APP's one endpoint at URL; then
# waits for SUB_PID (a subscriber already running, its output in $TMP/count-APP.txt), or
# runs WAIT... N DEADLINE_S with its output there.
broker_pass() {
	local name=$1 app=$2 url=$3 sub=$4 hz cpu0 cpu1
	shift 4
	local pub=$TMP/publish-$app.txt out=$TMP/count-$app.txt
	api POST /v1/apps "{\"id\":\"$app\",\"name\":\"bench $name\"}" 201
	api POST "/v1/apps/$app/endpoints" \
		"{\"id\":\"ep0\",\"url\":\"$url\",\"event_types\":[\"bench.*\"]}" 201
	metrics "$TMP/bm0-$app.txt"
	cpu0=$(cpu_ticks "$HOOKD_PID")
	log "$name: publishing $BROKER_M messages (concurrency $PUB_C) to $url"
	publish_run "$API/v1/apps/$app/messages" "$BROKER_M" "$pub" || die "$PUB_FAIL"
	if [ "$sub" != - ]; then
		wait "$sub" || true
	else
		fg timeout $((DRAIN_S + 30)) "$@" "$(kv accepted "$pub")" "$DRAIN_S" >"$out" 2>"$out.err" || true
	fi
	cpu1=$(cpu_ticks "$HOOKD_PID")
	metrics "$TMP/bm1-$app.txt"
	hz=$(getconf CLK_TCK)
	broker_report "$name" "$app" "$url" "$pub" "$out" "$(fdiv "$((cpu1 - cpu0))" "$hz" 2)"
	alive "$HOOKD_PID" || die "hookd died during $name; log tail:
$(tail -n 30 "$TMP/hookd.log")"
}

broker_passes() {
	local port pid sub
	if ! [ -f "$BUILD/plugins/nats.so" ]; then
		REPORT_PASSES+="
nats: skipped ($BUILD/plugins/nats.so was not built)
"
	elif command -v nats-server >/dev/null 2>&1; then
		port=$(broker_free_port) || die "no free port for nats-server"
		mkdir -p "$TMP/nats"
		nats-server -a 127.0.0.1 -p "$port" -js -sd "$TMP/nats" >"$TMP/nats.log" 2>&1 &
		pid=$!
		PIDS+=("$pid")
		broker_listen "$port" "$pid" || die "nats-server did not start: $(tail -n 5 "$TMP/nats.log")"

		"${BROKER_COUNT[@]}" nats-sub "$port" bench.core "$BROKER_M" "$DRAIN_S" \
			>"$TMP/count-bnats.txt" 2>"$TMP/count-bnats.txt.err" &
		sub=$!
		PIDS+=("$sub")
		for _ in $(seq 100); do grep -q READY "$TMP/count-bnats.txt" && break; sleep 0.1; done
		grep -q READY "$TMP/count-bnats.txt" || die "the NATS subscriber did not start: $(cat "$TMP/count-bnats.txt.err")"
		broker_pass "nats (core)" bnats "nats://127.0.0.1:$port/bench.core" "$sub"

		"${BROKER_COUNT[@]}" nats-stream "$port" BENCH bench.js ||
			die "cannot create the JetStream stream"
		broker_pass "nats (JetStream)" bnatsjs "nats://127.0.0.1:$port/bench.js?jetstream=1" - \
			"${BROKER_COUNT[@]}" nats-wait "$port" BENCH
		stop_child "$pid"
	else
		REPORT_PASSES+="
nats: skipped (nats-server is not installed; make test-deps installs it)
"
	fi
	if ! [ -f "$BUILD/plugins/redis.so" ]; then
		REPORT_PASSES+="
redis: skipped ($BUILD/plugins/redis.so was not built)
"
	elif command -v redis-server >/dev/null 2>&1; then
		port=$(broker_free_port) || die "no free port for redis-server"
		mkdir -p "$TMP/redis"
		redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
			--dir "$TMP/redis" --daemonize no --logfile "" >"$TMP/redis.log" 2>&1 &
		pid=$!
		PIDS+=("$pid")
		broker_listen "$port" "$pid" || die "redis-server did not start: $(tail -n 5 "$TMP/redis.log")"
		broker_pass "redis" bredis "redis://127.0.0.1:$port/bench" - \
			"${BROKER_COUNT[@]}" redis-wait "$port" bench
		stop_child "$pid"
	else
		REPORT_PASSES+="
redis: skipped (redis-server is not installed; make test-deps installs it)
"
	fi
	if ! [ -f "$BUILD/plugins/mqtt.so" ]; then
		REPORT_PASSES+="
mqtt: skipped ($BUILD/plugins/mqtt.so was not built)
"
	elif command -v mosquitto >/dev/null 2>&1; then
		port=$(broker_free_port) || die "no free port for mosquitto"
		printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" \
			>"$TMP/mosquitto.conf"
		mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
		pid=$!
		PIDS+=("$pid")
		broker_listen "$port" "$pid" || die "mosquitto did not start: $(tail -n 5 "$TMP/mosquitto.log")"
		"${BROKER_COUNT[@]}" mqtt-sub "$port" bench/mqtt "$BROKER_M" "$DRAIN_S" \
			>"$TMP/count-bmqtt.txt" 2>"$TMP/count-bmqtt.txt.err" &
		sub=$!
		PIDS+=("$sub")
		for _ in $(seq 100); do grep -q READY "$TMP/count-bmqtt.txt" && break; sleep 0.1; done
		grep -q READY "$TMP/count-bmqtt.txt" || die "the MQTT subscriber did not start: $(cat "$TMP/count-bmqtt.txt.err")"
		broker_pass "mqtt" bmqtt "mqtt://127.0.0.1:$port/bench/mqtt" "$sub"
		stop_child "$pid"
	else
		REPORT_PASSES+="
mqtt: skipped (mosquitto is not installed; make test-deps installs it)
"
	fi
}
