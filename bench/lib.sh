# bench/lib.sh - helpers shared by bench/run.sh and bench/backlog.sh (sourced, not run).

CURL=(curl -s --noproxy '*' -m 10)
PIDS=()

# stop_children: stops every child in PIDS (TERM, up to 10 s each, then KILL) and reaps it.
stop_children() {
	local p i
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}
# random_port: a port below the kernel's ephemeral range. One inside it may be the local
# port of a client connection in TIME_WAIT (after a pass, thousands), which a listener
# cannot bind even with SO_REUSEADDR.
random_port() {
	local lo
	lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 11000 ] || lo=32768
	echo $((10000 + RANDOM % (lo - 10000)))
}
# alive PID: true while PID runs (a zombie child does not count).
alive() { local s; s=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) && [ -n "$s" ] && [ "$s" != Z ]; }
# jnum KEY FILE: a numeric field of a flat JSON object (the sink's /_stats).
jnum() { sed -n "s/.*\"$1\":\([-0-9.]*\).*/\1/p" "$2" | head -1; }
# kv KEY FILE: a key=value field of a bench tool's result line.
kv() { tr ' ' '\n' <"$2" | sed -n "s/^$1=//p" | head -1; }
# fdiv A B [DECIMALS]: A / B in floating point.
fdiv() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b == 0) print "n/a"; else printf "%.*f\n", d, a / b }'; }
us_ms() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
# cpu_ticks PID: user + system CPU of PID in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
