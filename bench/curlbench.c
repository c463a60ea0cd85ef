/* curlbench.c - the bare libcurl baseline: how fast can a libcurl multi client POST to
 * the sink when it does nothing else? hookd's end-to-end figure is reported as a ratio
 * to this number, measured in the same run against the same sink.
 *
 * N POSTs of a ~1 KiB JSON body, C at a time, HTTP/1.1 keep-alive, each with the three
 * Standard Webhooks headers (a unique webhook-id, a timestamp, a dummy signature) so the
 * request on the wire is the size of one hookd sends. Two ways to drive the multi handle:
 *
 *   --mode event  curl_multi_socket_action driven by libevent socket and timer callbacks
 *                 (what the daemon does: the loop that runs the API also runs curl)
 *   --mode poll   curl_multi_perform + curl_multi_poll in a loop (curl owns the wait)
 *
 * Usage: curlbench --url URL [--mode event|poll] [-n N] [-c C] [--body-bytes B]
 *                  [--deadline S]
 * Prints one line: "curlbench mode=... requests=... ok=... failed=... seconds=...
 * req_per_s=... p50_us=... p99_us=...". Exit status 0 only if every request got a 2xx
 * before the deadline. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "bench_util.h"

/* Per-request timeout: a healthy sink answers in well under a millisecond; 10 s only
 * catches a wedged connection without ending the run early. */
#define CURLBENCH_REQUEST_TIMEOUT_MS 10000L

struct slot {
	CURL *easy;
	struct curl_slist *headers; /* rebuilt per request (new webhook-id), owned */
	uint64_t started_ns;
	char errbuf[CURL_ERROR_SIZE];
};

struct sock_ctx {
	struct event ev; /* re-assigned whenever curl changes its interest */
	bool added;
};

struct bench {
	CURLM *multi;
	struct event_base *base; /* event mode only */
	struct event *timer;	 /* curl's single timeout (event mode) */
	struct event *deadline;
	const char *url;
	char *body; /* shared by every request (CURLOPT_POSTFIELDS, not copied) */
	size_t body_len;
	struct slot *slots;
	long n_total, n_started, n_done, n_ok, n_failed;
	uint64_t *lat_ns; /* one per finished request */
	bool timed_out;
	int first_errors_shown;
};

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
	return size * n;
}

/* Builds the request for the next message on slot and hands it to the multi handle. */
static int slot_start(struct bench *b, struct slot *sl)
{
	char id[64], ts[64];
	long seq = b->n_started++;
	snprintf(id, sizeof id, "webhook-id: msg_curlbench_%ld_%08ld", (long)getpid(), seq);
	snprintf(ts, sizeof ts, "webhook-timestamp: %" PRIu64, bench_realtime_ns() / 1000000000u);
	curl_slist_free_all(sl->headers);
	sl->headers = NULL;
	const char *h[] = {
	    "Content-Type: application/json",
	    "Expect:", /* no 100-continue round trip for bodies over 1 KiB */
	    id,
	    ts,
	    "webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
	};
	for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
		struct curl_slist *n = curl_slist_append(sl->headers, h[i]);
		if (!n)
			return -1;
		sl->headers = n;
	}
	curl_easy_setopt(sl->easy, CURLOPT_HTTPHEADER, sl->headers);
	sl->started_ns = bench_mono_ns();
	return curl_multi_add_handle(b->multi, sl->easy) == CURLM_OK ? 0 : -1;
}

static int slot_init(struct bench *b, struct slot *sl)
{
	sl->easy = curl_easy_init();
	if (!sl->easy)
		return -1;
	CURL *e = sl->easy;
	curl_easy_setopt(e, CURLOPT_URL, b->url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)b->body_len);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* loopback only, whatever the environment says */
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, CURLBENCH_REQUEST_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, sl->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, sl);
	return 0;
}

/* Collects finished transfers and immediately reuses their handles. */
static void check_done(struct bench *b)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(b->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct slot *sl;
		long code = 0;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		CURLcode res = m->data.result;
		curl_multi_remove_handle(b->multi, m->easy_handle);
		b->lat_ns[b->n_done++] = bench_mono_ns() - sl->started_ns;
		if (res == CURLE_OK && code >= 200 && code < 300) {
			b->n_ok++;
		} else {
			b->n_failed++;
			if (b->first_errors_shown++ < 5)
				fprintf(stderr, "curlbench: request failed: %s (HTTP %ld)\n",
					res != CURLE_OK
					    ? (sl->errbuf[0] ? sl->errbuf : curl_easy_strerror(res))
					    : "non-2xx",
					code);
		}
		if (b->n_started < b->n_total && !b->timed_out && slot_start(b, sl) != 0) {
			fprintf(stderr, "curlbench: cannot start a request\n");
			b->timed_out = true;
		}
	}
	if (b->base && (b->n_done == b->n_total || (b->timed_out && b->n_done == b->n_started)))
		event_base_loopbreak(b->base);
}

/* ---- event mode: libevent owns the wait, curl is told which socket is ready ---- */

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;
	int running;
	int flags =
	    ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(b->multi, fd, flags, &running);
	check_done(b);
}

static void on_curl_timer(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;
	int running;
	curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(b);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct bench *b = userp;
	struct sock_ctx *ctx = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (ctx) {
			if (ctx->added)
				event_del(&ctx->ev);
			free(ctx);
			curl_multi_assign(b->multi, s, NULL);
		}
		return 0;
	}
	if (!ctx) {
		ctx = calloc(1, sizeof *ctx);
		if (!ctx)
			return -1;
		curl_multi_assign(b->multi, s, ctx);
	} else if (ctx->added) {
		event_del(&ctx->ev);
	}
	short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
		     ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	event_assign(&ctx->ev, b->base, s, kind, on_sock_event, b);
	event_add(&ctx->ev, NULL);
	ctx->added = true;
	return 0;
}

static int on_curl_timeout(CURLM *multi, long timeout_ms, void *userp)
{
	struct bench *b = userp;
	if (timeout_ms < 0) {
		evtimer_del(b->timer);
		return 0;
	}
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	evtimer_add(b->timer, &tv);
	return 0;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;
	b->timed_out = true;
	event_base_loopbreak(b->base);
}

static int run_event(struct bench *b, long deadline_s)
{
	b->base = event_base_new();
	if (!b->base)
		return -1;
	b->timer = evtimer_new(b->base, on_curl_timer, b);
	b->deadline = evtimer_new(b->base, on_deadline, b);
	if (!b->timer || !b->deadline)
		return -1;
	struct timeval tv = {.tv_sec = deadline_s};
	evtimer_add(b->deadline, &tv);
	curl_multi_setopt(b->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(b->multi, CURLMOPT_SOCKETDATA, b);
	curl_multi_setopt(b->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
	curl_multi_setopt(b->multi, CURLMOPT_TIMERDATA, b);
	for (long i = 0; i < b->n_total && b->slots[i].easy; i++)
		if (slot_start(b, &b->slots[i]) != 0)
			return -1;
	event_base_dispatch(b->base);
	return 0;
}

/* ---- poll mode: curl owns the wait ---- */

static int run_poll(struct bench *b, long deadline_s)
{
	uint64_t deadline = bench_mono_ns() + (uint64_t)deadline_s * 1000000000u;
	for (long i = 0; i < b->n_total && b->slots[i].easy; i++)
		if (slot_start(b, &b->slots[i]) != 0)
			return -1;
	while (b->n_done < b->n_started) {
		int running;
		curl_multi_perform(b->multi, &running);
		check_done(b);
		if (b->n_done == b->n_started)
			break;
		if (bench_mono_ns() > deadline) {
			b->timed_out = true;
			break;
		}
		curl_multi_poll(b->multi, NULL, 0, 1000, NULL);
	}
	return 0;
}

static char *make_body(size_t bytes, size_t *len)
{
	static const char head[] = "{\"id\":\"msg_curlbench\",\"type\":\"bench.event\","
				   "\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"version\":\"1\","
				   "\"data\":{\"pad\":\"";
	static const char tail[] = "\"}}";
	size_t fixed = sizeof head - 1 + sizeof tail - 1;
	size_t pad = bytes > fixed ? bytes - fixed : 0;
	char *body = malloc(fixed + pad + 1);
	if (!body)
		return NULL;
	memcpy(body, head, sizeof head - 1);
	memset(body + sizeof head - 1, 'x', pad);
	memcpy(body + sizeof head - 1 + pad, tail, sizeof tail);
	*len = fixed + pad;
	return body;
}

static void usage(void)
{
	fprintf(stderr, "usage: curlbench --url URL [--mode event|poll] [-n N] [-c C] "
			"[--body-bytes B] [--deadline S]\n");
}

int main(int argc, char **argv)
{
	const char *mode = "event";
	long n = 50000, c = 64, body_bytes = 1024, deadline_s = 60;
	struct bench b = {0};
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			usage();
			return 2;
		}
		if (strcmp(a, "--url") == 0)
			b.url = v;
		else if (strcmp(a, "--mode") == 0)
			mode = v;
		else if (strcmp(a, "-n") == 0)
			n = strtol(v, NULL, 10);
		else if (strcmp(a, "-c") == 0)
			c = strtol(v, NULL, 10);
		else if (strcmp(a, "--body-bytes") == 0)
			body_bytes = strtol(v, NULL, 10);
		else if (strcmp(a, "--deadline") == 0)
			deadline_s = strtol(v, NULL, 10);
		else {
			usage();
			return 2;
		}
		i++;
	}
	bool event_mode = strcmp(mode, "event") == 0;
	if (!b.url || (!event_mode && strcmp(mode, "poll") != 0) || n < 1 || c < 1 || c > 4096 ||
	    body_bytes < 0 || body_bytes > (1 << 24) || deadline_s < 1) {
		usage();
		return 2;
	}
	if (c > n)
		c = n;
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;

	b.n_total = n;
	b.body = make_body((size_t)body_bytes, &b.body_len);
	b.slots = calloc((size_t)c + 1, sizeof *b.slots); /* +1: a NULL easy ends the list */
	b.lat_ns = calloc((size_t)n, sizeof *b.lat_ns);
	b.multi = curl_multi_init();
	if (!b.body || !b.slots || !b.lat_ns || !b.multi)
		goto out;
	/* Keep one cached connection per concurrent transfer so none is closed and reopened. */
	curl_multi_setopt(b.multi, CURLMOPT_MAXCONNECTS, c);
	for (long i = 0; i < c; i++)
		if (slot_init(&b, &b.slots[i]) != 0)
			goto out;

	uint64_t t0 = bench_mono_ns();
	if ((event_mode ? run_event(&b, deadline_s) : run_poll(&b, deadline_s)) != 0) {
		fprintf(stderr, "curlbench: set-up failed\n");
		goto out;
	}
	double secs = (double)(bench_mono_ns() - t0) / 1e9;

	bench_sort_u64(b.lat_ns, (size_t)b.n_done);
	printf("curlbench mode=%s requests=%ld concurrency=%ld body_bytes=%zu ok=%ld failed=%ld "
	       "unfinished=%ld seconds=%.3f req_per_s=%.0f p50_us=%.1f p99_us=%.1f\n",
	       mode, n, c, b.body_len, b.n_ok, b.n_failed, n - b.n_done, secs,
	       (double)b.n_ok / secs, bench_percentile_us(b.lat_ns, (size_t)b.n_done, 50),
	       bench_percentile_us(b.lat_ns, (size_t)b.n_done, 99));
	if (b.timed_out)
		fprintf(stderr, "curlbench: deadline of %ld s reached\n", deadline_s);
	rc = (b.n_ok == n) ? 0 : 1;
out:
	if (b.slots) {
		for (long i = 0; i < c; i++) {
			if (!b.slots[i].easy)
				continue;
			if (b.multi)
				curl_multi_remove_handle(b.multi, b.slots[i].easy);
			curl_easy_cleanup(b.slots[i].easy);
			curl_slist_free_all(b.slots[i].headers);
		}
	}
	if (b.multi)
		curl_multi_cleanup(b.multi); /* closes sockets: CURL_POLL_REMOVE frees sock_ctx */
	if (b.timer)
		event_free(b.timer);
	if (b.deadline)
		event_free(b.deadline);
	if (b.base)
		event_base_free(b.base);
	free(b.slots);
	free(b.lat_ns);
	free(b.body);
	curl_global_cleanup();
	return rc;
}
