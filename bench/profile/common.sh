# bench/profile/common.sh - what the profile scripts share (sourced): one sink, one hookd on a
# temp data dir with an app "a" of NEP endpoints on the sink, and stopping them. Loopback only.
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# profile_start HOOKD BIN NEP [EXTRA_YAML]: sets T, KEY, SPORT, PORT, HP (hookd's pid).
profile_start() {
	local hookd=$1 bin=$2 nep=$3 extra=${4:-} i
	T=$(mktemp -d)
	KEY=k$$
	"$bin/sink" --port 0 --max-seconds 300 >"$T/sink.out" 2>&1 &
	PIDS+=($!)
	for i in $(seq 50); do grep -q '^PORT ' "$T/sink.out" && break; sleep 0.1; done
	SPORT=$(awk '/^PORT/{ print $2 }' "$T/sink.out")
	PORT=$(random_port)
	printf 'listen: "127.0.0.1:%s"\ndata_dir: "%s/data"\napi:\n  admin_key: "%s"\nsecurity:\n  allow_destinations: ["127.0.0.0/8"]\n%s' \
		"$PORT" "$T" "$KEY" "$extra" >"$T/h.yaml"
	HOOKD_ADMIN_KEY=$KEY "$hookd" serve --config "$T/h.yaml" >"$T/h.log" 2>&1 &
	HP=$!
	PIDS+=($HP)
	for i in $(seq ${PROFILE_UP_TRIES:-100}); do "${CURL[@]}" -f -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.05; done
	profile_post /v1/apps '{"id":"a","name":"a"}'
	for i in $(seq "$nep"); do
		profile_post /v1/apps/a/endpoints "{\"id\":\"e$i\",\"url\":\"http://127.0.0.1:$SPORT/x$i\"}"
	done
}
# profile_post PATH BODY: an API POST with the admin key.
profile_post() {
	"${CURL[@]}" -o /dev/null -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		-X POST --data "$2" "http://127.0.0.1:$PORT$1"
}
# profile_publish N [ARGS...]: N publishes to app a, concurrency 64; result line in $T/p.txt.
profile_publish() {
	local n=$1
	shift
	"$BIN/publish" --url "http://127.0.0.1:$PORT/v1/apps/a/messages" --key "$KEY" -n "$n" -c 64 \
		--pad 1024 --deadline 60 "$@" >"$T/p.txt" 2>&1
}
# profile_drain N: waits (up to 30 s) until the sink has N requests.
profile_drain() {
	local i c
	for i in $(seq 300); do
		c=$("${CURL[@]}" "http://127.0.0.1:$SPORT/_stats" | sed 's/.*"count":\([0-9]*\).*/\1/')
		[ "${c:-0}" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
profile_metric() {
	"${CURL[@]}" -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/metrics" |
		awk -v k="$1" '$1 == k { print $2 }'
}
profile_stop() {
	stop_children
	rm -rf "$T"
}
