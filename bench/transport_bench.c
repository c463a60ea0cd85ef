/* transport_bench.c - hookd's HTTP transport alone, driven like curlbench drives bare
 * libcurl: N POSTs of a ~1 KiB JSON body to the sink, C at a time, each with the headers
 * the scheduler sends (Content-Type, webhook-id, webhook-timestamp, webhook-signature
 * signed with sign_compute over the body), the next request started from the done callback
 * of the last one (as dispatch_done does). What it prints next to curlbench's figure for the
 * same sink and concurrency is what hookd's transport and signing cost per request on top
 * of the libcurl calls any client makes.
 *
 * Usage: transport_bench --url URL [-n N] [-c C] [--body-bytes B] [--no-sign]
 * Prints one line: "transport_bench requests=... ok=... failed=... seconds=... req_per_s=...
 * cpu_us_per_req=... user_us_per_req=... sign_us_per_req=..." (this process's user+system and
 * user CPU over the run, set-up excluded; sign: the sign_compute calls alone). Exit status 0
 * only if every request got a 2xx. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "bench_util.h"
#include "err.h"
#include "sign.h"
#include "ssrf.h"
#include "transport.h"

/* The secret every request is signed with (Standard Webhooks' own test secret). */
#define TRANSPORT_BENCH_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

struct tbench {
	struct event_base *base;
	struct transport *tr;
	struct sign_key key;
	bool sign;
	const char *url;
	char *body;
	size_t body_len;
	long n_total, n_started, n_done, n_ok, n_failed;
	uint64_t sign_ns;
	int errors_shown;
};

static void tbench_done(void *arg, const struct transport_result *res);

/* Builds the next request as dispatch_start does and hands it to the transport. */
static int tbench_start(struct tbench *b)
{
	char id[64], id_line[96], ts_line[48], sig_line[32 + SIGN_TEXT_MAX];
	const char *lines[4];
	struct transport_request req;
	int64_t ts = (int64_t)(bench_realtime_ns() / 1000000000u);
	long seq = b->n_started++;
	size_t off;

	snprintf(id, sizeof(id), "msg_tbench_%ld_%08ld", (long)getpid(), seq);
	snprintf(id_line, sizeof(id_line), "webhook-id: %s", id);
	snprintf(ts_line, sizeof(ts_line), "webhook-timestamp: %lld", (long long)ts);
	off = (size_t)snprintf(sig_line, sizeof(sig_line), "webhook-signature: ");
	if (b->sign) {
		uint64_t t0 = bench_mono_ns();
		if (sign_compute(&b->key, id, ts, b->body, b->body_len, sig_line + off,
				 sizeof(sig_line) - off) != HOOKD_OK)
			return -1;
		b->sign_ns += bench_mono_ns() - t0;
	} else {
		snprintf(sig_line + off, sizeof(sig_line) - off,
			 "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=");
	}
	lines[0] = "Content-Type: application/json";
	lines[1] = id_line;
	lines[2] = ts_line;
	lines[3] = sig_line;
	memset(&req, 0, sizeof(req));
	req.url = b->url;
	req.headers = lines;
	req.n_headers = 4;
	req.body = b->body;
	req.body_len = b->body_len;
	req.connect_timeout_ms = 10000;
	req.timeout_ms = 30000;
	req.done = tbench_done;
	req.arg = b;
	return b->tr->send(b->tr, &req) == HOOKD_OK ? 0 : -1;
}

static void tbench_done(void *arg, const struct transport_result *res)
{
	struct tbench *b = arg;
	b->n_done++;
	if (res->status >= 200 && res->status < 300) {
		b->n_ok++;
	} else {
		b->n_failed++;
		if (b->errors_shown++ < 5)
			fprintf(stderr, "transport_bench: request failed: %s (HTTP %d)\n",
				res->error[0] ? res->error : "non-2xx", res->status);
	}
	if (b->n_started < b->n_total && tbench_start(b) != 0) {
		fprintf(stderr, "transport_bench: cannot start a request\n");
		b->n_total = b->n_started;
	}
	if (b->n_done == b->n_total)
		event_base_loopbreak(b->base);
}

/* A ~B-byte envelope like the ones hookd sends (the sink only counts it). */
static char *tbench_body(size_t bytes, size_t *len)
{
	static const char head[] = "{\"id\":\"msg_tbench\",\"type\":\"bench.event\","
				   "\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"version\":\"1\","
				   "\"data\":{\"pad\":\"";
	static const char tail[] = "\"}}";
	size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
	size_t pad = bytes > fixed ? bytes - fixed : 0;
	char *body = malloc(fixed + pad + 1);
	if (!body)
		return NULL;
	memcpy(body, head, sizeof(head) - 1);
	memset(body + sizeof(head) - 1, 'x', pad);
	memcpy(body + sizeof(head) - 1 + pad, tail, sizeof(tail));
	*len = fixed + pad;
	return body;
}

/* This process's user CPU time in ns into *user; returns user + system. */
static uint64_t tbench_cpu_ns(uint64_t *user)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	*user = (uint64_t)ru.ru_utime.tv_sec * 1000000000u + (uint64_t)ru.ru_utime.tv_usec * 1000u;
	return *user + (uint64_t)ru.ru_stime.tv_sec * 1000000000u +
	       (uint64_t)ru.ru_stime.tv_usec * 1000u;
}

static void tbench_usage(void)
{
	fprintf(stderr, "usage: transport_bench --url URL [-n N] [-c C] [--body-bytes B] "
			"[--no-sign]\n");
}

int main(int argc, char **argv)
{
	struct tbench b = {.sign = true};
	struct ssrf_policy ssrf = {0};
	long n = 50000, c = 64, body_bytes = 1024;
	char err[256];
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--no-sign") == 0) {
			b.sign = false;
			continue;
		}
		if (!v) {
			tbench_usage();
			return 2;
		}
		if (strcmp(a, "--url") == 0)
			b.url = v;
		else if (strcmp(a, "-n") == 0)
			n = strtol(v, NULL, 10);
		else if (strcmp(a, "-c") == 0)
			c = strtol(v, NULL, 10);
		else if (strcmp(a, "--body-bytes") == 0)
			body_bytes = strtol(v, NULL, 10);
		else {
			tbench_usage();
			return 2;
		}
		i++;
	}
	if (!b.url || n < 1 || c < 1 || c > 4096 || body_bytes < 0 || body_bytes > (1 << 24)) {
		tbench_usage();
		return 2;
	}
	if (c > n)
		c = n;
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || sign_init() != HOOKD_OK)
		return 1;
	if (sign_key_parse(TRANSPORT_BENCH_SECRET, &b.key, err, sizeof(err)) != HOOKD_OK ||
	    ssrf_policy_allow(&ssrf, "127.0.0.0/8", err, sizeof(err)) != HOOKD_OK) {
		fprintf(stderr, "transport_bench: %s\n", err);
		return 1;
	}
	b.n_total = n;
	b.body = tbench_body((size_t)body_bytes, &b.body_len);
	b.base = event_base_new();
	if (!b.body || !b.base)
		goto out;
	b.tr = transport_http_new(b.base, &ssrf, (unsigned)c, err, sizeof(err));
	if (!b.tr) {
		fprintf(stderr, "transport_bench: %s\n", err);
		goto out;
	}

	uint64_t user0, user1, t0 = bench_mono_ns(), cpu0 = tbench_cpu_ns(&user0);
	for (long i = 0; i < c; i++)
		if (tbench_start(&b) != 0) {
			fprintf(stderr, "transport_bench: cannot start a request\n");
			goto out;
		}
	event_base_dispatch(b.base);
	double secs = (double)(bench_mono_ns() - t0) / 1e9;
	double cpu_us = (double)(tbench_cpu_ns(&user1) - cpu0) / 1e3;

	printf("transport_bench requests=%ld concurrency=%ld body_bytes=%zu sign=%d ok=%ld "
	       "failed=%ld seconds=%.3f req_per_s=%.0f cpu_us_per_req=%.2f user_us_per_req=%.2f "
	       "sign_us_per_req=%.2f\n",
	       n, c, b.body_len, b.sign ? 1 : 0, b.n_ok, b.n_failed, secs,
	       (double)b.n_ok / secs, cpu_us / (double)n,
	       (double)(user1 - user0) / 1e3 / (double)n, (double)b.sign_ns / 1e3 / (double)n);
	rc = b.n_ok == n ? 0 : 1;
out:
	if (b.tr)
		b.tr->destroy(b.tr);
	if (b.base)
		event_base_free(b.base);
	ssrf_policy_free(&ssrf);
	free(b.body);
	curl_global_cleanup();
	return rc;
}
