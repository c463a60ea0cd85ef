/* test_auth.c - an attempt through an auth scheme (core/auth.c): decorate's three answers,
 * resumes from another thread, the timeout, the one refresh after a 401, refused headers,
 * and shutdown with attempts waiting. A fake scheme and a fake transport stand in for the
 * plugin and libcurl. */
#include "check.h"

#include "auth.h"
#include "err.h"
#include "plugin.h"
#include "registry.h"
#include "transport.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fake transport: records one request; the test answers it ---- */

struct fake_transport {
	struct transport base;
	int sends;
	char lines[16][256];
	size_t n_lines;
	char cert[128], key[128];
	void (*done)(void *arg, const struct transport_result *res);
	void *arg;
	int fail_send;
};

static int fake_send(struct transport *t, const struct transport_request *req)
{
	struct fake_transport *f = (struct fake_transport *)t;
	if (f->fail_send)
		return HOOKD_EIO;
	f->sends++;
	f->n_lines = 0;
	for (size_t i = 0; i < req->n_headers && i < 16; i++)
		snprintf(f->lines[f->n_lines++], 256, "%s", req->headers[i]);
	snprintf(f->cert, sizeof(f->cert), "%s", req->auth_cert_path ? req->auth_cert_path : "");
	snprintf(f->key, sizeof(f->key), "%s", req->auth_key_path ? req->auth_key_path : "");
	f->done = req->done;
	f->arg = req->arg;
	return HOOKD_OK;
}

static void fake_answer(struct fake_transport *f, int status)
{
	struct transport_result res;
	void (*done)(void *, const struct transport_result *) = f->done;
	memset(&res, 0, sizeof(res));
	res.status = status;
	res.retry_after_s = -1;
	f->done = NULL;
	done(f->arg, &res);
}

static int fake_has(const struct fake_transport *f, const char *line)
{
	for (size_t i = 0; i < f->n_lines; i++)
		if (strcmp(f->lines[i], line) == 0)
			return 1;
	return 0;
}

/* ---- the fake scheme ---- */

enum fake_mode { MODE_DONE, MODE_PENDING, MODE_ERROR, MODE_RESERVED };

struct fake_scheme {
	enum fake_mode mode;
	int decorates, refreshes;
	char refused[64]; /* the Authorization a refresh was told the 401'd request carried */
	uint64_t token;
	char value[64];
};

static enum hookd_auth_status fake_decorate(void *state, const struct hookd_auth_request *r,
					    char *err, size_t errlen)
{
	struct fake_scheme *s = state;
	s->decorates++;
	s->refreshes += r->refresh;
	s->token = r->token;
	CHECK(r->n_options == 1 && strcmp(r->options[0].name, "token") == 0);
	CHECK(strcmp(r->method, "POST") == 0);
	CHECK(r->n_headers == 2 && strcmp(r->headers[0].name, "webhook-signature") == 0 &&
	      strcmp(r->headers[0].value, "v1,abc") == 0);
	/* A refresh sees what was sent: the scheme's Authorization in place of the request's. */
	CHECK(strcmp(r->headers[1].name, "Authorization") == 0);
	if (r->refresh)
		snprintf(s->refused, sizeof(s->refused), "%s", r->headers[1].value);
	else
		CHECK(strcmp(r->headers[1].value, "Basic old") == 0);
	switch (s->mode) {
	case MODE_PENDING:
		s->mode = MODE_DONE; /* the next decorate, after the resume, has it */
		return HOOKD_AUTH_PENDING;
	case MODE_ERROR:
		snprintf(err, errlen, "token endpoint answered 500");
		return HOOKD_AUTH_ERROR;
	case MODE_RESERVED:
		auth_out_add_header(r->out, "webhook-signature", "forged");
		return HOOKD_AUTH_DONE;
	case MODE_DONE:
		break;
	}
	auth_out_add_header(r->out, "Authorization", s->value);
	auth_out_client_cert(r->out, "/c.pem", "/k.pem");
	return HOOKD_AUTH_DONE;
}

static struct hookd_auth fake_auth = {
	.size = sizeof(struct hookd_auth),
	.name = "fake",
	.refresh_on_401 = 1,
	.decorate = fake_decorate,
};

/* ---- the attempt's owner ---- */

struct outcome {
	int calls;
	int status;
	char error[256];
};

static void outcome_done(void *arg, const struct transport_result *res)
{
	struct outcome *o = arg;
	o->calls++;
	o->status = res->status;
	snprintf(o->error, sizeof(o->error), "%s", res->error);
}

struct fixture {
	struct event_base *base;
	struct auth *auth;
	struct fake_transport tr;
	struct fake_scheme scheme;
	struct plugin_auth pa;
	struct endpoint_auth *ea;
	struct endpoint ep;
	struct outcome out;
};

static void fixture_init(struct fixture *fx, enum fake_mode mode)
{
	memset(fx, 0, sizeof(*fx));
	fx->base = event_base_new();
	CHECK(auth_new(fx->base, &fx->auth) == HOOKD_OK);
	fx->tr.base.name = "fake";
	fx->tr.base.send = fake_send;
	fx->scheme.mode = mode;
	snprintf(fx->scheme.value, sizeof(fx->scheme.value), "Bearer t1");
	fx->pa.a = &fake_auth;
	fx->pa.state = &fx->scheme;
	fx->ea = calloc(1, sizeof(*fx->ea));
	fx->ea->refs = 1;
	fx->ea->scheme = strdup("fake");
	fx->ea->pa = &fx->pa;
	fx->ea->opts = calloc(1, sizeof(*fx->ea->opts));
	fx->ea->opts[0].name = strdup("token");
	fx->ea->opts[0].value = strdup("t1");
	fx->ea->n_opts = 1;
	fx->ep.id = "ep1";
	fx->ep.app_id = "app1";
	fx->ep.auth = fx->ea;
}

static void fixture_free(struct fixture *fx)
{
	auth_free(fx->auth);
	endpoint_auth_unref(fx->ea);
	event_base_free(fx->base);
}

static int fixture_send(struct fixture *fx, uint32_t timeout_ms)
{
	static const char *lines[] = {"webhook-signature: v1,abc", "Authorization: Basic old"};
	struct transport_request req;
	memset(&req, 0, sizeof(req));
	req.url = "http://127.0.0.1:1/hook";
	req.headers = lines;
	req.n_headers = 2;
	req.body = "{}";
	req.body_len = 2;
	req.timeout_ms = timeout_ms;
	req.done = outcome_done;
	req.arg = &fx->out;
	return auth_send(fx->auth, &fx->tr.base, &fx->ep, &req);
}

/* Runs the loop until pred holds, at most ~5 s. */
static int run_until(struct fixture *fx, int (*pred)(struct fixture *))
{
	for (int i = 0; i < 5000 && !pred(fx); i++) {
		struct timeval ms = {0, 1000};
		event_base_loopexit(fx->base, &ms);
		event_base_dispatch(fx->base);
	}
	return pred(fx);
}

/* Runs the loop for about ms: long enough for a queued resume to be handled. */
static void run_for(struct fixture *fx, int ms)
{
	struct timeval tv = {0, ms * 1000};
	event_base_loopexit(fx->base, &tv);
	event_base_dispatch(fx->base);
}

static int sent(struct fixture *fx)
{
	return fx->tr.done != NULL;
}

static int ended(struct fixture *fx)
{
	return fx->out.calls > 0;
}

/* ---- the cases ---- */

static void test_done(void)
{
	struct fixture fx;
	fixture_init(&fx, MODE_DONE);
	CHECK(fixture_send(&fx, 1000) == HOOKD_OK);
	CHECK(fx.tr.sends == 1);
	/* The scheme's Authorization replaces the request's own. */
	CHECK(fake_has(&fx.tr, "Authorization: Bearer t1"));
	CHECK(!fake_has(&fx.tr, "Authorization: Basic old"));
	CHECK(fake_has(&fx.tr, "webhook-signature: v1,abc"));
	CHECK_STR(fx.tr.cert, "/c.pem");
	CHECK_STR(fx.tr.key, "/k.pem");
	fake_answer(&fx.tr, 204);
	CHECK(fx.out.calls == 1 && fx.out.status == 204);
	fixture_free(&fx);
}

struct resumer {
	uint64_t token;
	const char *error;
};

static void *resume_thread(void *arg)
{
	struct resumer *r = arg;
	auth_resume(r->token, r->error);
	return NULL;
}

static void resume_from_thread(uint64_t token, const char *error)
{
	pthread_t th;
	struct resumer r = {token, error};
	pthread_create(&th, NULL, resume_thread, &r);
	pthread_join(th, NULL);
}

static void test_pending_resume(void)
{
	struct fixture fx;
	fixture_init(&fx, MODE_PENDING);
	CHECK(fixture_send(&fx, 5000) == HOOKD_OK);
	CHECK(fx.tr.sends == 0 && fx.scheme.decorates == 1);
	auth_resume(fx.scheme.token + 1000, NULL); /* no such token: ignored */
	resume_from_thread(fx.scheme.token, NULL);
	CHECK(run_until(&fx, sent));
	CHECK(fx.scheme.decorates == 2 && fx.scheme.refreshes == 0);
	CHECK(fake_has(&fx.tr, "Authorization: Bearer t1"));
	fake_answer(&fx.tr, 200);
	CHECK(fx.out.calls == 1 && fx.out.status == 200);
	fixture_free(&fx);
}

static void test_pending_error(void)
{
	struct fixture fx;
	fixture_init(&fx, MODE_PENDING);
	CHECK(fixture_send(&fx, 5000) == HOOKD_OK);
	resume_from_thread(fx.scheme.token, "token endpoint answered 500: down");
	CHECK(run_until(&fx, ended));
	CHECK(fx.tr.sends == 0 && fx.out.status == 0);
	CHECK_STR(fx.out.error, "auth scheme fake: token endpoint answered 500: down");
	fixture_free(&fx);
}

static void test_pending_timeout(void)
{
	struct fixture fx;
	fixture_init(&fx, MODE_PENDING);
	CHECK(fixture_send(&fx, 30) == HOOKD_OK);
	CHECK(run_until(&fx, ended));
	CHECK(fx.out.calls == 1 && fx.tr.sends == 0);
	CHECK(strstr(fx.out.error, "no credentials within 30 ms") != NULL);
	/* A resume after the timeout finds nothing waiting. */
	auth_resume(fx.scheme.token, NULL);
	run_for(&fx, 50);
	CHECK(fx.out.calls == 1 && fx.tr.sends == 0);
	fixture_free(&fx);
}

static void test_error_later(void)
{
	struct fixture fx;
	fixture_init(&fx, MODE_ERROR);
	CHECK(fixture_send(&fx, 1000) == HOOKD_OK);
	CHECK(fx.out.calls == 0); /* done comes later, never inside auth_send */
	CHECK(run_until(&fx, ended));
	CHECK_STR(fx.out.error, "auth scheme fake: token endpoint answered 500");
	CHECK(fx.tr.sends == 0);
	fixture_free(&fx);
}

static void test_reserved_header(void)
{
	struct fixture fx;
	fixture_init(&fx, MODE_RESERVED);
	CHECK(fixture_send(&fx, 1000) == HOOKD_OK);
	CHECK(run_until(&fx, ended));
	CHECK(fx.tr.sends == 0);
	CHECK(strstr(fx.out.error, "webhook-signature is set by hookd itself") != NULL);
	fixture_free(&fx);
}

static void test_refresh_401(void)
{
	struct fixture fx;
	fixture_init(&fx, MODE_DONE);
	CHECK(fixture_send(&fx, 1000) == HOOKD_OK);
	snprintf(fx.scheme.value, sizeof(fx.scheme.value), "Bearer t2");
	fake_answer(&fx.tr, 401);
	/* Once more with refresh = 1, and sent again within the attempt. */
	CHECK(fx.out.calls == 0);
	CHECK(fx.scheme.decorates == 2 && fx.scheme.refreshes == 1);
	CHECK_STR(fx.scheme.refused, "Bearer t1");
	CHECK(fx.tr.sends == 2 && fake_has(&fx.tr, "Authorization: Bearer t2"));
	fake_answer(&fx.tr, 200);
	CHECK(fx.out.calls == 1 && fx.out.status == 200);
	fixture_free(&fx);

	/* Only once: a second 401 is the attempt's answer. */
	fixture_init(&fx, MODE_DONE);
	CHECK(fixture_send(&fx, 1000) == HOOKD_OK);
	fake_answer(&fx.tr, 401);
	fake_answer(&fx.tr, 401);
	CHECK(fx.out.calls == 1 && fx.out.status == 401 && fx.tr.sends == 2);
	CHECK(fx.scheme.refreshes == 1);
	fixture_free(&fx);

	/* A scheme without refresh_on_401: the 401 is the answer. */
	fixture_init(&fx, MODE_DONE);
	fake_auth.refresh_on_401 = 0;
	CHECK(fixture_send(&fx, 1000) == HOOKD_OK);
	fake_answer(&fx.tr, 401);
	CHECK(fx.out.calls == 1 && fx.out.status == 401 && fx.tr.sends == 1);
	fake_auth.refresh_on_401 = 1;
	fixture_free(&fx);
}

/* The refresh's decorate may itself wait; the one after its resume is no refresh again. */
static void test_refresh_pending(void)
{
	struct fixture fx;
	fixture_init(&fx, MODE_DONE);
	CHECK(fixture_send(&fx, 5000) == HOOKD_OK);
	fx.scheme.mode = MODE_PENDING;
	fake_answer(&fx.tr, 401);
	CHECK(fx.scheme.refreshes == 1 && fx.tr.sends == 1);
	resume_from_thread(fx.scheme.token, NULL);
	CHECK(run_until(&fx, sent));
	CHECK(fx.scheme.decorates == 3 && fx.scheme.refreshes == 1 && fx.tr.sends == 2);
	fake_answer(&fx.tr, 200);
	CHECK(fx.out.calls == 1 && fx.out.status == 200);
	fixture_free(&fx);
}

static void test_not_loaded_and_send_failure(void)
{
	struct fixture fx;
	fixture_init(&fx, MODE_DONE);
	fx.ea->pa = NULL;
	CHECK(fixture_send(&fx, 1000) == HOOKD_OK);
	CHECK(run_until(&fx, ended));
	CHECK_STR(fx.out.error, "auth scheme fake is not loaded (no plugin registers it)");
	fixture_free(&fx);

	fixture_init(&fx, MODE_DONE);
	fx.tr.fail_send = 1;
	CHECK(fixture_send(&fx, 1000) == HOOKD_OK);
	CHECK(run_until(&fx, ended));
	CHECK_STR(fx.out.error, "could not start the request");
	fixture_free(&fx);
}

/* Shutdown with one attempt waiting for credentials and one out on the transport: both
 * are dropped without done (the sanitizer build checks nothing leaks), and a resume after
 * that is ignored. */
static void test_shutdown(void)
{
	struct fixture fx;
	struct outcome other = {0};
	fixture_init(&fx, MODE_PENDING);
	CHECK(fixture_send(&fx, 5000) == HOOKD_OK);
	uint64_t token = fx.scheme.token;
	fx.scheme.mode = MODE_DONE;
	fx.out = other;
	CHECK(fixture_send(&fx, 5000) == HOOKD_OK);
	CHECK(fx.tr.sends == 1);
	/* The endpoint's auth goes (a PATCH): the attempts keep theirs. */
	endpoint_auth_unref(fx.ea);
	fx.ea = NULL;
	auth_free(fx.auth);
	fx.auth = NULL;
	auth_resume(token, NULL);
	CHECK(fx.out.calls == 0);
	fixture_free(&fx);
}

int main(void)
{
	evthread_use_pthreads();
	test_done();
	test_pending_resume();
	test_pending_error();
	test_pending_timeout();
	test_error_later();
	test_reserved_header();
	test_refresh_401();
	test_refresh_pending();
	test_not_loaded_and_send_failure();
	test_shutdown();
	return check_done();
}
