/* test_policy_threads.c - one policy engine used from several threads at once, as the
 * policy threads and the loop use it: two runs of the same policy proceed together (one is
 * held inside its call while the other completes), a put goes through while a run of the
 * old version is held and that run finishes on the old version, killed and out-of-memory
 * calls on several threads each hit their own state's limit, and thousands of runs of one
 * policy on 8 threads, with puts and hostile policies interleaved, all return exactly the
 * output of a version of the policy.
 *
 * The hold: log.c is replaced here (a link seam: the test defines log_msg and
 * log_set_level, so the library's log.o is not linked). A policy calling hookd.log("hold")
 * then blocks inside its call, in the seam, until the test releases it; waits are bounded
 * (gate.h), so an engine that serialized calls fails a CHECK instead of hanging.
 *
 * Races that do no visible harm are not caught by these runs, even under ASan; a
 * ThreadSanitizer build (cmake -DCMAKE_C_FLAGS=-fsanitize=thread, not part of make test)
 * is the tool for those. */
#include "check.h"
#include "err.h"
#include "gate.h"
#include "log.h"
#include "policy.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the log seam ---- */

static struct gate held, release;
static atomic_int hold_timeouts;

void log_set_level(enum log_level level)
{
	(void)level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (strstr(line, ": hold") != NULL) {
		/* Each hold waits for its own release: the n-th hold for the n-th release. */
		int n;
		pthread_mutex_lock(&held.lock);
		n = held.count + 1;
		pthread_mutex_unlock(&held.lock);
		gate_add(&held);
		if (!gate_wait(&release, n))
			atomic_fetch_add(&hold_timeouts, 1);
		return;
	}
	if (level >= LOG_WARN)
		fprintf(stderr, "%s\n", line);
}

/* ---- helpers ---- */

static const char *MSG = "{\"id\":\"msg_1\",\"type\":\"order.created\",\"timestamp\":"
			 "\"2024-05-01T12:00:00Z\",\"version\":\"1\",\"data\":{\"seq\":0,\"n\":0}}";

static int put(struct policy_engine *e, const char *name, const char *src)
{
	char err[512];
	int rc = policy_engine_put(e, name, src, strlen(src), err, sizeof(err));

	if (rc != HOOKD_OK)
		fprintf(stderr, "put %s: %s\n", name, err);
	return rc;
}

static json_t *envelope(long seq, long n)
{
	json_t *env = json_loads(MSG, 0, NULL);
	json_t *data = json_object_get(env, "data");

	json_object_set_new(data, "seq", json_integer(seq));
	json_object_set_new(data, "n", json_integer(n));
	return env;
}

/* Runs name on the envelope with params (JSON text or NULL). */
static int run(struct policy_engine *e, const char *name, json_t *env, const char *params,
	       struct policy_result *r)
{
	json_t *par = params ? json_loads(params, 0, NULL) : NULL;
	struct policy_input in = {env, "ep_1", "app_1", par};
	int rc = policy_run(e, name, &in, r);

	json_decref(par);
	return rc;
}

static const char *header(const struct policy_result *r, const char *name)
{
	return json_string_value(json_object_get(r->headers, name));
}

/* ---- two runs of one policy at once ---- */

static const char *HOLDER = "return { transform = function(msg, ctx)\n"
			    "  if ctx.params.hold then hookd.log('hold') end\n"
			    "  msg.headers['x-version'] = 'VERSION'\n"
			    "  return msg end }";

static char *holder_source(const char *version)
{
	static char buf[2][512];
	static int which;
	char *out = buf[which++ % 2];
	const char *at = strstr(HOLDER, "VERSION");

	snprintf(out, 512, "%.*s%s%s", (int)(at - HOLDER), HOLDER, version, at + 7);
	return out;
}

struct held_run {
	struct policy_engine *e;
	struct policy_result r;
	int rc;
};

static void *held_run_main(void *arg)
{
	struct held_run *h = arg;
	json_t *env = envelope(1, 0);

	h->rc = run(h->e, "holder", env, "{\"hold\": true}", &h->r);
	json_decref(env);
	return NULL;
}

/* A run is held inside its call of "holder". Meanwhile this thread runs the same policy,
 * then puts a new version (which must not wait for the held run) and runs that; released,
 * the held run completes on the version it started with. */
static void test_same_policy_at_once(void)
{
	struct policy_engine *e = NULL;
	struct held_run h;
	pthread_t t;
	int i, ok_runs = 0;

	CHECK(policy_engine_new(NULL, &e) == HOOKD_OK);
	CHECK(put(e, "holder", holder_source("v1")) == HOOKD_OK);
	memset(&h, 0, sizeof(h));
	h.e = e;
	CHECK(pthread_create(&t, NULL, held_run_main, &h) == 0);
	CHECK(gate_wait(&held, 1));

	for (i = 0; i < 10; i++) {
		struct policy_result r;
		json_t *env = envelope(i, 0);
		if (run(e, "holder", env, NULL, &r) == HOOKD_OK && r.action == POLICY_DELIVER &&
		    header(&r, "x-version") && strcmp(header(&r, "x-version"), "v1") == 0)
			ok_runs++;
		policy_result_free(&r);
		json_decref(env);
	}
	CHECK(ok_runs == 10);

	CHECK(put(e, "holder", holder_source("v2")) == HOOKD_OK);
	{
		struct policy_result r;
		json_t *env = envelope(1, 0);
		CHECK(run(e, "holder", env, NULL, &r) == HOOKD_OK);
		CHECK_STR(header(&r, "x-version"), "v2");
		policy_result_free(&r);
		json_decref(env);
	}

	gate_add(&release);
	pthread_join(t, NULL);
	CHECK(atomic_load(&hold_timeouts) == 0);
	CHECK(h.rc == HOOKD_OK && h.r.action == POLICY_DELIVER);
	CHECK_STR(header(&h.r, "x-version"), "v1");
	policy_result_free(&h.r);
	policy_engine_free(e);
}

/* ---- limits per state, on several threads at once ---- */

struct hostile_run {
	struct policy_engine *e;
	const char *name;
	int rounds;
	int bad;               /* outcomes other than the expected error */
	const char *want;      /* in the reason */
};

static void *hostile_main(void *arg)
{
	struct hostile_run *h = arg;

	for (int i = 0; i < h->rounds; i++) {
		struct policy_result r;
		json_t *env = envelope(i, 0);
		if (run(h->e, h->name, env, NULL, &r) != HOOKD_OK || r.action != POLICY_ERROR ||
		    strstr(r.reason, h->want) == NULL) {
			if (h->bad++ == 0)
				fprintf(stderr, "%s: %d %s\n", h->name, (int)r.action, r.reason);
		}
		policy_result_free(&r);
		json_decref(env);
	}
	return NULL;
}

/* ---- many runs, puts and hostile calls at once ---- */

/* v1 and v2 differ only in the version field; both compute the same sum. */
static const char *XF = "local calls = 0\n"
			"return { transform = function(msg, ctx)\n"
			"  calls = calls + 1\n"
			"  local d = msg.data\n"
			"  local s = 0\n"
			"  for i = 1, d.n do s = s + i end\n"
			"  msg.body = { id = msg.id, seq = d.seq, sum = s, ep = ctx.endpoint_id,\n"
			"               tag = ctx.params.tag, v = %d }\n"
			"  msg.headers['x-seq'] = tostring(d.seq)\n"
			"  return msg end }";

#define XF_THREADS 8
#define XF_RUNS 1500

struct xf_run {
	struct policy_engine *e;
	int id;
	int bad;
	int v1, v2;
};

static void *xf_main(void *arg)
{
	struct xf_run *x = arg;
	unsigned seed = 7u + (unsigned)x->id;
	char params[64];

	snprintf(params, sizeof(params), "{\"tag\": \"t%d\"}", x->id);
	for (int i = 0; i < XF_RUNS; i++) {
		long seq = (long)x->id * 100000 + i, n = rand_r(&seed) % 200;
		struct policy_result r;
		json_t *env = envelope(seq, n), *b;
		char tag[16], hseq[32];
		bool ok;

		snprintf(tag, sizeof(tag), "t%d", x->id);
		snprintf(hseq, sizeof(hseq), "%ld", seq);
		ok = run(x->e, "xf", env, params, &r) == HOOKD_OK && r.action == POLICY_DELIVER;
		b = ok ? r.envelope : NULL;
		ok = ok && json_object_size(b) == 6 &&
		     json_integer_value(json_object_get(b, "seq")) == seq &&
		     json_integer_value(json_object_get(b, "sum")) == n * (n + 1) / 2 &&
		     strcmp(json_string_value(json_object_get(b, "id")) ?: "", "msg_1") == 0 &&
		     strcmp(json_string_value(json_object_get(b, "ep")) ?: "", "ep_1") == 0 &&
		     strcmp(json_string_value(json_object_get(b, "tag")) ?: "", tag) == 0 &&
		     header(&r, "x-seq") && strcmp(header(&r, "x-seq"), hseq) == 0;
		if (ok && json_integer_value(json_object_get(b, "v")) == 1)
			x->v1++;
		else if (ok && json_integer_value(json_object_get(b, "v")) == 2)
			x->v2++;
		else if (x->bad++ == 0)
			fprintf(stderr, "xf thread %d run %d: action %d %s\n", x->id, i,
				(int)r.action, r.reason);
		policy_result_free(&r);
		json_decref(env);
	}
	return NULL;
}

static void test_many_runs(void)
{
	/* The CPU budget is wall time (policy.h): with 11 threads on a small machine a call of
	 * a few microseconds can be descheduled for tens of milliseconds, so the budget here
	 * is a second, not the daemon's default 50 ms. */
	struct policy_limits lim = {1000, 4u << 20};
	struct policy_engine *e = NULL;
	struct xf_run xs[XF_THREADS];
	struct hostile_run spin = {.name = "spin", .rounds = 2, .want = "cpu limit exceeded (1000 ms)"};
	struct hostile_run spin2 = spin;
	/* The memory cap, or the (wall clock) CPU budget on a machine busy with the other
	 * threads: either limit rebuilds the state. */
	struct hostile_run bomb = {.name = "bomb", .rounds = 5, .want = "limit exceeded ("};
	pthread_t t[XF_THREADS], ts, ts2, tb;
	char src[2][1024];
	int i, bad = 0, v1 = 0, v2 = 0;

	CHECK(policy_engine_new(&lim, &e) == HOOKD_OK);
	snprintf(src[0], sizeof(src[0]), XF, 1);
	snprintf(src[1], sizeof(src[1]), XF, 2);
	CHECK(put(e, "xf", src[0]) == HOOKD_OK);
	CHECK(put(e, "spin", "return { filter = function() while true do end end }") == HOOKD_OK);
	CHECK(put(e, "bomb", "return { filter = function() local t = {} "
			     "for i = 1, 1e9 do t[i] = string.rep('x', 4096) .. i end end }") ==
	      HOOKD_OK);
	spin.e = spin2.e = bomb.e = e;
	for (i = 0; i < XF_THREADS; i++) {
		memset(&xs[i], 0, sizeof(xs[i]));
		xs[i].e = e;
		xs[i].id = i;
		CHECK(pthread_create(&t[i], NULL, xf_main, &xs[i]) == 0);
	}
	CHECK(pthread_create(&ts, NULL, hostile_main, &spin) == 0);
	CHECK(pthread_create(&ts2, NULL, hostile_main, &spin2) == 0);
	CHECK(pthread_create(&tb, NULL, hostile_main, &bomb) == 0);
	/* Puts while the runs go on: every run sees one version or the other, whole. */
	for (i = 0; i < 40; i++) {
		size_t len;
		const char *s;
		CHECK(put(e, "xf", src[(i + 1) % 2]) == HOOKD_OK);
		s = policy_engine_source(e, "xf", &len);
		CHECK(s && len == strlen(src[(i + 1) % 2]) && memcmp(s, src[(i + 1) % 2], len) == 0);
	}
	for (i = 0; i < XF_THREADS; i++) {
		pthread_join(t[i], NULL);
		bad += xs[i].bad;
		v1 += xs[i].v1;
		v2 += xs[i].v2;
	}
	pthread_join(ts, NULL);
	pthread_join(ts2, NULL);
	pthread_join(tb, NULL);
	CHECK(bad == 0);
	CHECK(v1 + v2 == XF_THREADS * XF_RUNS);
	printf("xf: %d runs on v1, %d on v2\n", v1, v2);
	CHECK(spin.bad == 0 && spin2.bad == 0 && bomb.bad == 0);
	{
		/* The last put (i = 39) was v1 again. */
		struct policy_result r;
		json_t *env = envelope(5, 3);
		CHECK(run(e, "xf", env, "{\"tag\": \"x\"}", &r) == HOOKD_OK);
		CHECK(r.action == POLICY_DELIVER &&
		      json_integer_value(json_object_get(r.envelope, "v")) == 1);
		CHECK(json_integer_value(json_object_get(r.envelope, "sum")) == 6);
		policy_result_free(&r);
		json_decref(env);
	}
	policy_engine_free(e);
}

int main(void)
{
	gate_init(&held);
	gate_init(&release);
	test_same_policy_at_once();
	test_many_runs();
	gate_destroy(&held);
	gate_destroy(&release);
	return check_done();
}
