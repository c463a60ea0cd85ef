/* publish.c - load generator for hookd's publish API (POST /v1/apps/{app}/messages).
 *
 * M publishes of {"type":"bench.event","data":{"sent_ns":<CLOCK_REALTIME ns>,
 * "customer":{"email":...,"name":...},"pad":"<~1 KiB>"}} (the customer fields give the
 * policy pass personal data to redact), C in flight at a time over keep-alive connections (libcurl multi,
 * curl_multi_poll loop), with Authorization: Bearer <key>. sent_ns is taken when the
 * request is handed to curl; the sink subtracts it from the receipt time to give
 * publish→receipt latency. Per publish it measures request start → response (the 202
 * comes only after the message is durable, so this is the group-commit latency as a
 * producer sees it).
 *
 * Usage: publish --url URL --key KEY [-n M] [-c C] [--pad BYTES] [--type T]
 *                [--deadline S] [--rate R]
 *
 * --rate R is open loop: publish i is due at start + i/R seconds whether or not earlier ones
 * were answered (C bounds how many are in flight), and its latency counts from when it was
 * due, so a daemon that falls behind shows it in the latency instead of slowing the offered
 * load (no coordinated omission). Without --rate, each connection sends as soon as its
 * previous publish was answered (closed loop, the throughput passes).
 * Prints "publish requests=... accepted=... non202=... transport_errors=... seconds=...
 * publish_per_s=... p50_us=... p99_us=... max_us=... first_start_ns=... last_done_ns=..."
 * and, when any publish was not a 202, one "status CODE COUNT" line per code (0 = transport
 * error) and the first few response bodies on stderr. Exit status 0 only if all M got 202. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "bench_util.h"

/* A publish is one durable commit away from its 202; 30 s means the daemon is stuck,
 * not slow, and is still short of the run's deadline. */
#define PUBLISH_REQUEST_TIMEOUT_MS 30000L
/* Response bytes kept per publish, to show why one was refused. */
#define PUBLISH_RESP_KEEP 512
/* Distinct HTTP status codes counted individually (100..599 fit). */
#define PUBLISH_MAX_STATUS 600

struct slot {
	CURL *easy;
	char *body; /* rebuilt per publish (new sent_ns), owned */
	size_t body_cap;
	uint64_t started_ns; /* CLOCK_MONOTONIC */
	char resp[PUBLISH_RESP_KEEP + 1];
	size_t resp_len;
	char errbuf[CURL_ERROR_SIZE];
};

struct publisher {
	CURLM *multi;
	struct curl_slist *headers; /* shared by every request, owned */
	const char *url;
	const char *type;
	char *pad; /* the pad string, owned */
	size_t pad_len;
	struct slot *slots;
	long n_total, n_started, n_done, n_accepted, n_transport_err;
	long status_count[PUBLISH_MAX_STATUS];
	uint64_t *lat_ns; /* latencies of accepted publishes */
	size_t n_lat;
	uint64_t first_start_ns; /* CLOCK_REALTIME of the first request start */
	uint64_t last_done_ns;	 /* CLOCK_REALTIME of the last response */
	int errors_shown;
	/* open loop (--rate): publishes per second, the next one's due time, idle slots */
	double rate;
	uint64_t next_due_ns; /* CLOCK_MONOTONIC */
	struct slot **idle;
	long n_idle, n_late; /* late: due while every slot was busy */
};

static size_t keep_resp(char *p, size_t size, size_t n, void *ud)
{
	struct slot *sl = ud;
	size_t len = size * n, room = PUBLISH_RESP_KEEP - sl->resp_len;
	size_t take = len < room ? len : room;
	memcpy(sl->resp + sl->resp_len, p, take);
	sl->resp_len += take;
	sl->resp[sl->resp_len] = '\0';
	return len;
}

static int slot_start(struct publisher *p, struct slot *sl)
{
	uint64_t now = bench_realtime_ns();
	if (p->n_started == 0)
		p->first_start_ns = now;
	p->n_started++;
	int len = snprintf(sl->body, sl->body_cap,
			   "{\"type\":\"%s\",\"data\":{\"sent_ns\":\"%" PRIu64 "\",\"customer\":{\"email\":"
			   "\"ann.lee@example.com\",\"name\":\"Ann Lee\"},\"pad\":\"%s\"}}",
			   p->type, now, p->pad);
	if (len < 0 || (size_t)len >= sl->body_cap)
		return -1;
	curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDSIZE, (long)len);
	sl->resp_len = 0;
	sl->resp[0] = '\0';
	sl->errbuf[0] = '\0';
	sl->started_ns = bench_mono_ns();
	return curl_multi_add_handle(p->multi, sl->easy) == CURLM_OK ? 0 : -1;
}

static int slot_init(struct publisher *p, struct slot *sl)
{
	sl->body_cap = p->pad_len + strlen(p->type) + 192;
	sl->body = malloc(sl->body_cap);
	sl->easy = curl_easy_init();
	if (!sl->body || !sl->easy)
		return -1;
	CURL *e = sl->easy;
	curl_easy_setopt(e, CURLOPT_URL, p->url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, sl->body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_resp);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, sl);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* loopback only, whatever the environment says */
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, PUBLISH_REQUEST_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, sl->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, sl);
	return 0;
}

static void check_done(struct publisher *p, bool stop_starting)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(p->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct slot *sl;
		long code = 0;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		CURLcode res = m->data.result;
		curl_multi_remove_handle(p->multi, m->easy_handle);
		uint64_t lat = bench_mono_ns() - sl->started_ns;
		p->last_done_ns = bench_realtime_ns();
		p->n_done++;
		if (res != CURLE_OK) {
			p->n_transport_err++;
			p->status_count[0]++;
			if (p->errors_shown++ < 5)
				fprintf(stderr, "publish: transport error: %s\n",
					sl->errbuf[0] ? sl->errbuf : curl_easy_strerror(res));
		} else if (code == 202) {
			p->n_accepted++;
			p->lat_ns[p->n_lat++] = lat;
		} else {
			if (code > 0 && code < PUBLISH_MAX_STATUS)
				p->status_count[code]++;
			if (p->errors_shown++ < 5)
				fprintf(stderr, "publish: HTTP %ld: %s\n", code, sl->resp);
		}
		if (p->rate > 0)
			p->idle[p->n_idle++] = sl; /* started when the next one is due */
		else if (!stop_starting && p->n_started < p->n_total && slot_start(p, sl) != 0)
			fprintf(stderr, "publish: cannot start a request\n");
	}
}

/* Open loop: starts every publish that is due, on idle slots; its latency counts from its
 * due time. Returns the ms until the next one is due (for the poll), at most 1000. */
static long start_due(struct publisher *p)
{
	uint64_t now = bench_mono_ns();
	while (p->n_started < p->n_total && p->next_due_ns <= now) {
		if (p->n_idle == 0) {
			p->n_late++; /* started as soon as a slot frees; still timed from due */
			return 1;
		}
		struct slot *sl = p->idle[--p->n_idle];
		if (slot_start(p, sl) != 0) {
			fprintf(stderr, "publish: cannot start a request\n");
			return 1000;
		}
		sl->started_ns = p->next_due_ns;
		p->next_due_ns += (uint64_t)(1e9 / p->rate);
	}
	if (p->n_started >= p->n_total)
		return 1000;
	uint64_t wait_ms = (p->next_due_ns - now) / 1000000u;
	return wait_ms > 1000 ? 1000 : (long)wait_ms;
}

static char *make_pad(size_t bytes)
{
	char *pad = malloc(bytes + 1);
	if (!pad)
		return NULL;
	for (size_t i = 0; i < bytes; i++)
		pad[i] = (char)('a' + i % 26);
	pad[bytes] = '\0';
	return pad;
}

static void usage(void)
{
	fprintf(stderr, "usage: publish --url URL --key KEY [-n M] [-c C] [--pad BYTES] "
			"[--type T] [--deadline S] [--rate R]\n");
}

int main(int argc, char **argv)
{
	long n = 50000, c = 64, pad = 1024, deadline_s = 120;
	const char *key = NULL;
	struct publisher p = {.type = "bench.event"};
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			usage();
			return 2;
		}
		if (strcmp(a, "--url") == 0)
			p.url = v;
		else if (strcmp(a, "--key") == 0)
			key = v;
		else if (strcmp(a, "-n") == 0)
			n = strtol(v, NULL, 10);
		else if (strcmp(a, "-c") == 0)
			c = strtol(v, NULL, 10);
		else if (strcmp(a, "--pad") == 0)
			pad = strtol(v, NULL, 10);
		else if (strcmp(a, "--type") == 0)
			p.type = v;
		else if (strcmp(a, "--deadline") == 0)
			deadline_s = strtol(v, NULL, 10);
		else if (strcmp(a, "--rate") == 0)
			p.rate = strtod(v, NULL);
		else {
			usage();
			return 2;
		}
		i++;
	}
	if (!p.url || !key || n < 1 || c < 1 || c > 4096 || pad < 0 || pad > (1 << 24) ||
	    deadline_s < 1 || strlen(key) > 1000 || p.rate < 0 || p.rate > 1e6) {
		usage();
		return 2;
	}
	if (c > n)
		c = n;
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;

	char auth[1100];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
	const char *h[] = {"Content-Type: application/json", "Expect:", auth};
	for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
		struct curl_slist *l = curl_slist_append(p.headers, h[i]);
		if (!l)
			goto out;
		p.headers = l;
	}
	p.n_total = n;
	p.pad_len = (size_t)pad;
	p.pad = make_pad(p.pad_len);
	p.slots = calloc((size_t)c, sizeof *p.slots);
	p.lat_ns = calloc((size_t)n, sizeof *p.lat_ns);
	p.idle = calloc((size_t)c, sizeof *p.idle);
	p.multi = curl_multi_init();
	if (!p.pad || !p.slots || !p.lat_ns || !p.idle || !p.multi)
		goto out;
	curl_multi_setopt(p.multi, CURLMOPT_MAXCONNECTS, c);
	for (long i = 0; i < c; i++)
		if (slot_init(&p, &p.slots[i]) != 0)
			goto out;

	uint64_t t0 = bench_mono_ns(), deadline = t0 + (uint64_t)deadline_s * 1000000000u;
	bool timed_out = false;
	long poll_ms = 1000;
	if (p.rate > 0) {
		for (long i = 0; i < c; i++)
			p.idle[p.n_idle++] = &p.slots[i];
		p.next_due_ns = t0;
		poll_ms = start_due(&p);
	} else {
		for (long i = 0; i < c; i++)
			if (slot_start(&p, &p.slots[i]) != 0)
				goto out;
	}
	/* Open loop: also while publishes are still to be started at their due times. */
#define PUBLISH_MORE() (p.n_done < p.n_started || (p.rate > 0 && !timed_out && p.n_started < p.n_total))
	while (PUBLISH_MORE()) {
		int running;
		curl_multi_perform(p.multi, &running);
		if (!timed_out && bench_mono_ns() > deadline) {
			timed_out = true;
			fprintf(stderr, "publish: deadline of %ld s reached; %ld of %ld started\n",
				deadline_s, p.n_started, n);
			break;
		}
		check_done(&p, timed_out);
		if (p.rate > 0 && !timed_out)
			poll_ms = start_due(&p);
		if (!PUBLISH_MORE())
			break;
		curl_multi_poll(p.multi, NULL, 0, (int)poll_ms, NULL);
	}
	double secs = (double)(bench_mono_ns() - t0) / 1e9;

	bench_sort_u64(p.lat_ns, p.n_lat);
	long non202 = p.n_done - p.n_accepted - p.n_transport_err;
	printf("publish requests=%ld concurrency=%ld pad_bytes=%zu accepted=%ld non202=%ld "
	       "transport_errors=%ld unfinished=%ld seconds=%.3f publish_per_s=%.0f "
	       "p50_us=%.1f p99_us=%.1f max_us=%.1f first_start_ns=%" PRIu64
	       " last_done_ns=%" PRIu64 "\n",
	       n, c, p.pad_len, p.n_accepted, non202, p.n_transport_err, n - p.n_done, secs,
	       (double)p.n_accepted / secs, bench_percentile_us(p.lat_ns, p.n_lat, 50),
	       bench_percentile_us(p.lat_ns, p.n_lat, 99),
	       p.n_lat ? (double)p.lat_ns[p.n_lat - 1] / 1000.0 : 0.0, p.first_start_ns,
	       p.last_done_ns);
	if (p.rate > 0)
		printf("open_loop rate=%.0f late=%ld\n", p.rate, p.n_late);
	for (int code = 0; code < PUBLISH_MAX_STATUS; code++)
		if (p.status_count[code])
			printf("status %d %ld\n", code, p.status_count[code]);
	rc = (p.n_accepted == n) ? 0 : 1;
out:
	if (p.slots) {
		for (long i = 0; i < c; i++) {
			free(p.slots[i].body);
			if (!p.slots[i].easy)
				continue;
			if (p.multi)
				curl_multi_remove_handle(p.multi, p.slots[i].easy);
			curl_easy_cleanup(p.slots[i].easy);
		}
	}
	if (p.multi)
		curl_multi_cleanup(p.multi);
	curl_slist_free_all(p.headers);
	free(p.slots);
	free(p.lat_ns);
	free(p.idle);
	free(p.pad);
	curl_global_cleanup();
	return rc;
}
