/* auth_bench.c - what an auth scheme adds to one attempt, in CPU time: core/auth.c's
 * auth_send (copies, decorate, the headers merged, the send) with a real plugin loaded from
 * its .so (bearer by default), against the same request sent straight to the transport. The
 * transport is a stub that completes at once, so only hookd's side is measured, not
 * libcurl's. Not part of run.sh:
 *   build/bench/auth_bench [build/plugins/bearer.so [iterations]] */
#include "auth.h"
#include "err.h"
#include "plugin.h"
#include "registry.h"
#include "transport.h"

#include <dlfcn.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const struct hookd_auth *registered;

static int bench_register_auth(struct hookd_plugin_ctx *ctx, const struct hookd_auth *a)
{
	registered = a;
	return 0;
}

static size_t sent_lines;

/* Completes at once, as a receiver answering 200 would (later, in real life). */
static int stub_send(struct transport *t, const struct transport_request *req)
{
	struct transport_result res;
	memset(&res, 0, sizeof(res));
	res.status = 200;
	res.retry_after_s = res.retry_after_ms = -1;
	sent_lines += req->n_headers;
	req->done(req->arg, &res);
	return HOOKD_OK;
}

static unsigned long done_count;

static void bench_done(void *arg, const struct transport_result *res)
{
	done_count += res->status == 200;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "build/plugins/bearer.so";
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 200000;
	static const char *lines[] = {
		"Content-Type: application/json", "webhook-id: msg_01M8TQG2DQ6HVHAF198VE88MTW",
		"webhook-timestamp: 1764662400",
		"webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="};
	struct hookd_host host = {.size = sizeof(host), .abi_major = HOOKD_PLUGIN_ABI_MAJOR,
				  .abi_minor = HOOKD_PLUGIN_ABI_MINOR,
				  .register_auth = bench_register_auth,
				  .auth_add_header = auth_out_add_header,
				  .auth_client_cert = auth_out_client_cert};
	struct transport tr = {.name = "stub", .send = stub_send};
	/* What bearer, basic and hub-signature read (each ignores the others'). */
	struct hookd_option opts[] = {{"token", "tok_live_0123456789abcdef0123456789"},
				      {"secret", "hub-secret-0123456789abcdef"},
				      {"username", "hookd-sender"},
				      {"password", "p4ssw0rd-0123456789"}};
	struct endpoint_auth ea = {.refs = 1, .scheme = "bench", .opts = opts, .n_opts = 4};
	struct plugin_auth pa;
	struct endpoint ep;
	struct transport_request req;
	struct event_base *base = event_base_new();
	struct auth *a;
	const struct hookd_plugin *p;
	void *so, *state = NULL;
	char err[256];
	uint64_t t0, plain_ns, auth_ns;

	if (!(so = dlopen(path, RTLD_NOW)) || !(p = dlsym(so, HOOKD_PLUGIN_SYMBOL)) ||
	    p->init(&host, NULL, &state, err, sizeof(err)) != 0 || !registered) {
		fprintf(stderr, "auth_bench: cannot load %s: %s\n", path, dlerror());
		return 1;
	}
	pa.a = registered;
	pa.state = state;
	ea.pa = &pa;
	memset(&ep, 0, sizeof(ep));
	ep.id = "ep_bench";
	ep.app_id = "app_bench";
	ep.auth = &ea;
	memset(&req, 0, sizeof(req));
	req.url = "http://127.0.0.1:9/hook";
	req.headers = lines;
	req.n_headers = 4;
	req.body = "{\"type\":\"bench.event\",\"data\":{}}";
	req.body_len = strlen(req.body);
	req.timeout_ms = 30000;
	req.done = bench_done;
	if (auth_new(base, &a) != HOOKD_OK)
		return 1;

	for (int round = 0; round < 3; round++) {
		t0 = thread_cpu_ns();
		for (long i = 0; i < n; i++)
			tr.send(&tr, &req);
		plain_ns = thread_cpu_ns() - t0;
		t0 = thread_cpu_ns();
		for (long i = 0; i < n; i++)
			auth_send(a, &tr, &ep, &req);
		auth_ns = thread_cpu_ns() - t0;
		printf("%s: %ld attempts: straight to the transport %.3f us, through auth_send "
		       "%.3f us (+%.3f us per attempt)\n",
		       registered->name, n, plain_ns / 1e3 / n, auth_ns / 1e3 / n,
		       (auth_ns - (double)plain_ns) / 1e3 / n);
	}
	if (done_count != 6ul * (unsigned long)n)
		fprintf(stderr, "auth_bench: %lu of %ld attempts completed\n", done_count, 6 * n);
	auth_free(a);
	if (p->cleanup)
		p->cleanup(state);
	event_base_free(base);
	return 0;
}
