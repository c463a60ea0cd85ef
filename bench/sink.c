/* sink.c - a fast HTTP receiver for the benchmark.
 *
 * Answers 200 "ok" to every POST (libevent evhttp, HTTP/1.1 keep-alive), counts the
 * requests, records publish→receipt latency from a "sent_ns":<digits> field found in
 * the body (CLOCK_REALTIME nanoseconds written by bench/publish), and counts distinct
 * (path, webhook-id) pairs so a redelivered message shows up as a duplicate. The path
 * is part of the key because a fan-out delivers the same webhook-id to several
 * endpoints; run.sh gives every endpoint its own path.
 *
 *   GET  /_stats  -> {"count", "unique", "no_id", "samples", "p50_us", "p99_us",
 *                     "max_us", "first_ns", "last_ns"}
 *   POST /_reset  -> clears everything
 *
 * Usage: sink [--port N] [--max-seconds S]
 * With port 0 (the default) the kernel picks one, printed on stdout as "PORT <n>" once
 * the socket listens. Listens on 127.0.0.1 only. Exits by itself after --max-seconds
 * (default 900) so a forgotten sink cannot linger. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "bench_util.h"

/* Latency samples kept per run: 4 Mi x 8 bytes = 32 MiB at most, far above the
 * 50k-200k deliveries one bench pass produces; samples past the cap are counted but
 * not kept (the percentiles then cover the first 4 Mi). */
#define SINK_MAX_SAMPLES (4u << 20)

/* Default lifetime: run.sh takes about 3 minutes; 15 leaves room for a slow machine
 * and still guarantees that nothing outlives the run by much. */
#define SINK_DEFAULT_MAX_SECONDS 900

struct id_set {
	char **slots; /* open addressing; each key owned by the set (malloc'd) */
	size_t cap;   /* power of two */
	size_t used;
};

struct sink {
	struct event_base *base;
	struct evhttp *http;
	uint64_t count;	   /* POSTs answered (except /_reset) */
	uint64_t no_id;	   /* of which without a webhook-id header */
	uint64_t first_ns; /* CLOCK_REALTIME of the first counted POST */
	uint64_t last_ns;  /* ... and of the latest */
	uint64_t *samples; /* receive_ns - sent_ns (0 if negative), owned */
	size_t n_samples;
	uint64_t dropped_samples;
	struct id_set ids;
	struct evbuffer *reply; /* scratch body for the 200s, owned */
};

/* FNV-1a: short keys, no adversary; good enough and branch-free. */
static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static int id_set_grow(struct id_set *set)
{
	size_t ncap = set->cap ? set->cap * 2 : 1024;
	char **nslots = calloc(ncap, sizeof *nslots);
	if (!nslots)
		return -ENOMEM;
	for (size_t i = 0; i < set->cap; i++) {
		char *k = set->slots[i];
		if (!k)
			continue;
		size_t j = hash_bytes(k, strlen(k)) & (ncap - 1);
		while (nslots[j])
			j = (j + 1) & (ncap - 1);
		nslots[j] = k;
	}
	free(set->slots);
	set->slots = nslots;
	set->cap = ncap;
	return 0;
}

/* Adds key (copied); returns 1 if it was new, 0 if already present, <0 on ENOMEM. */
static int id_set_add(struct id_set *set, const char *key, size_t n)
{
	if ((set->used + 1) * 2 > set->cap) {
		int rc = id_set_grow(set);
		if (rc < 0)
			return rc;
	}
	size_t j = hash_bytes(key, n) & (set->cap - 1);
	while (set->slots[j]) {
		if (strncmp(set->slots[j], key, n) == 0 && set->slots[j][n] == '\0')
			return 0;
		j = (j + 1) & (set->cap - 1);
	}
	char *copy = malloc(n + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, key, n);
	copy[n] = '\0';
	set->slots[j] = copy;
	set->used++;
	return 1;
}

static void id_set_clear(struct id_set *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	set->slots = NULL;
	set->cap = 0;
	set->used = 0;
}

static void sink_reset(struct sink *s)
{
	s->count = 0;
	s->no_id = 0;
	s->first_ns = 0;
	s->last_ns = 0;
	s->n_samples = 0;
	s->dropped_samples = 0;
	id_set_clear(&s->ids);
}

/* Finds "sent_ns" followed by optional spaces, ':', optional spaces and digits, which may be
 * quoted (the publisher sends a string: a nanosecond time is past 2^53, and a policy that
 * round-trips the payload through Lua numbers would round it). */
static bool parse_sent_ns(const char *body, size_t len, uint64_t *out)
{
	static const char key[] = "\"sent_ns\"";
	const char *p = body, *end = body + len;
	while (p < end) {
		const char *hit = memmem(p, (size_t)(end - p), key, sizeof key - 1);
		if (!hit)
			return false;
		const char *q = hit + sizeof key - 1;
		while (q < end && (*q == ' ' || *q == '\t'))
			q++;
		if (q < end && *q == ':') {
			q++;
			while (q < end && (*q == ' ' || *q == '\t'))
				q++;
			if (q < end && *q == '"')
				q++;
			uint64_t v = 0;
			const char *d = q;
			while (q < end && *q >= '0' && *q <= '9')
				v = v * 10 + (uint64_t)(*q++ - '0');
			if (q > d) {
				*out = v;
				return true;
			}
		}
		p = hit + 1;
	}
	return false;
}

static void reply_stats(struct sink *s, struct evhttp_request *req)
{
	struct evbuffer *out = evbuffer_new();
	uint64_t *sorted = NULL;
	double p50 = 0, p99 = 0, max = 0;
	if (!out)
		goto fail;
	if (s->n_samples) {
		sorted = malloc(s->n_samples * sizeof *sorted);
		if (!sorted)
			goto fail;
		memcpy(sorted, s->samples, s->n_samples * sizeof *sorted);
		bench_sort_u64(sorted, s->n_samples);
		p50 = bench_percentile_us(sorted, s->n_samples, 50);
		p99 = bench_percentile_us(sorted, s->n_samples, 99);
		max = (double)sorted[s->n_samples - 1] / 1000.0;
	}
	evbuffer_add_printf(out,
			    "{\"count\":%" PRIu64 ",\"unique\":%zu,\"no_id\":%" PRIu64
			    ",\"samples\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f"
			    ",\"first_ns\":%" PRIu64 ",\"last_ns\":%" PRIu64 "}\n",
			    s->count, s->ids.used, s->no_id, s->n_samples, p50, p99, max,
			    s->first_ns, s->last_ns);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, 200, "OK", out);
	free(sorted);
	evbuffer_free(out);
	return;
fail:
	free(sorted);
	if (out)
		evbuffer_free(out);
	evhttp_send_error(req, 500, "out of memory");
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct sink *s = arg;
	const char *uri = evhttp_request_get_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (strcmp(uri, "/_stats") == 0 && cmd == EVHTTP_REQ_GET) {
		reply_stats(s, req);
		return;
	}
	if (strcmp(uri, "/_reset") == 0 && cmd == EVHTTP_REQ_POST) {
		sink_reset(s);
		evhttp_send_reply(req, 200, "OK", NULL);
		return;
	}
	if (cmd != EVHTTP_REQ_POST) {
		evhttp_send_error(req, 405, "POST only");
		return;
	}

	uint64_t now = bench_realtime_ns();
	if (s->count == 0)
		s->first_ns = now;
	s->last_ns = now;
	s->count++;

	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	uint64_t sent;
	if (body && parse_sent_ns(body, len, &sent)) {
		if (s->n_samples < SINK_MAX_SAMPLES)
			s->samples[s->n_samples++] = now > sent ? now - sent : 0;
		else
			s->dropped_samples++;
	}

	const char *id = evhttp_find_header(evhttp_request_get_input_headers(req), "webhook-id");
	if (!id) {
		s->no_id++;
	} else {
		char key[512];
		int n = snprintf(key, sizeof key, "%s\n%s", uri, id);
		if (n > 0 && (size_t)n < sizeof key)
			(void)id_set_add(&s->ids, key, (size_t)n);
	}

	/* evhttp_send_reply drains the buffer, so one buffer serves every reply. */
	evbuffer_add(s->reply, "ok", 2);
	evhttp_send_reply(req, 200, "OK", s->reply);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct sink *s = arg;
	fprintf(stderr, "sink: --max-seconds reached, exiting\n");
	event_base_loopexit(s->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(((struct sink *)arg)->base, NULL);
}

int main(int argc, char **argv)
{
	long port = 0, max_seconds = SINK_DEFAULT_MAX_SECONDS;
	int rc = 1;
	struct sink s = {0};
	struct event *deadline = NULL, *sigterm = NULL, *sigint = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc)
			max_seconds = strtol(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: sink [--port N] [--max-seconds S]\n");
			return 2;
		}
	}
	if (port < 0 || port > 65535 || max_seconds <= 0) {
		fprintf(stderr, "sink: bad --port or --max-seconds\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	s.samples = malloc(SINK_MAX_SAMPLES * sizeof *s.samples);
	s.base = event_base_new();
	s.reply = evbuffer_new();
	if (!s.samples || !s.base || !s.reply)
		goto out;
	s.http = evhttp_new(s.base);
	if (!s.http)
		goto out;
	evhttp_set_allowed_methods(s.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	/* Keep idle keep-alive connections for the whole run: the clients reuse them. */
	evhttp_set_timeout(s.http, 600);
	evhttp_set_gencb(s.http, on_request, &s);

	struct evhttp_bound_socket *bound =
	    evhttp_bind_socket_with_handle(s.http, "127.0.0.1", (uint16_t)port);
	if (!bound) {
		fprintf(stderr, "sink: cannot listen on 127.0.0.1:%ld: %s\n", port,
			strerror(errno));
		goto out;
	}
	if (port == 0) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		evutil_socket_t fd = evhttp_bound_socket_get_fd(bound);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
			goto out;
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		printf("PORT %ld\n", port);
		fflush(stdout);
	}

	struct timeval tv = {.tv_sec = max_seconds};
	deadline = evtimer_new(s.base, on_deadline, &s);
	sigterm = evsignal_new(s.base, SIGTERM, on_signal, &s);
	sigint = evsignal_new(s.base, SIGINT, on_signal, &s);
	if (!deadline || !sigterm || !sigint)
		goto out;
	evtimer_add(deadline, &tv);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);

	event_base_dispatch(s.base);
	rc = 0;
out:
	if (deadline)
		event_free(deadline);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (s.http)
		evhttp_free(s.http);
	if (s.reply)
		evbuffer_free(s.reply);
	if (s.base)
		event_base_free(s.base);
	id_set_clear(&s.ids);
	free(s.samples);
	return rc;
}
