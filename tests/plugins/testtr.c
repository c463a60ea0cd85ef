/* testtr.c - a transport fixture that misbehaves on request, for the host's rules on time
 * and completion (tests/integration/test_plugins.py). testtr:///BEHAVIOUR, where the
 * behaviour is the URL's path:
 *   /ok           completes HOOKD_SENT from inside send()
 *   /never        never completes (the host times it out and cancels)
 *   /never-once   never on attempt 1, HOOKD_SENT after
 *   /twice        completes twice
 *   /late-once    attempt 1 completes 300 ms after its timeout; HOOKD_SENT after
 *   /thread       completes from a thread of its own
 *   /nonzero-once send() returns nonzero on attempt 1; HOOKD_SENT after
 *   /fail         HOOKD_FAILED "fixture: permanent failure"
 *   /retry-after  attempt 1 HOOKD_RETRY with retry_after_ms 2500; HOOKD_SENT after
 * and testnet://HOST:PORT/x (needs_address: the host resolves and guards it) completes
 * HOOKD_SENT without connecting anywhere, logging the address it was given.
 * Option "greeting" (plugins.options.testtr.greeting) is logged at init; counter "sent"
 * counts HOOKD_SENT completions. Built with nothing but the public header. */
#include <hookd/plugin.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct tt {
	const struct hookd_host *host;
	struct hookd_plugin_ctx *ctx;
	struct hookd_counter *sent;
	struct hookd_transport tr, net;
};

struct later {
	struct tt *t;
	uint64_t token;
};

static struct tt tt_state;

static void tt_complete(struct tt *t, uint64_t token, enum hookd_result r, const char *msg,
			int64_t retry_after_ms)
{
	struct hookd_outcome o = {.size = sizeof(o), .result = r, .message = msg,
				  .retry_after_ms = retry_after_ms};
	if (r == HOOKD_SENT)
		t->host->counter_add(t->sent, 1);
	t->host->complete(t->ctx, token, &o);
}

static void tt_late_cb(void *arg)
{
	struct later *l = arg;
	l->t->host->log(l->t->ctx, HOOKD_LOG_INFO, "late completion of token %llu",
			(unsigned long long)l->token);
	tt_complete(l->t, l->token, HOOKD_SENT, NULL, -1);
	l->t->host->free(l->t->ctx, l);
}

static void *tt_thread(void *arg)
{
	struct later *l = arg;
	struct timespec ts = {0, 20 * 1000 * 1000};
	struct tt *t = l->t;
	nanosleep(&ts, NULL);
	t->host->log(t->ctx, HOOKD_LOG_INFO, "completing token %llu from a thread of my own",
		     (unsigned long long)l->token);
	tt_complete(t, l->token, HOOKD_SENT, NULL, -1);
	t->host->free(t->ctx, l);
	return NULL;
}

static int tt_send(void *state, const struct hookd_send *s)
{
	struct tt *t = state;
	const char *b = s->path;
	t->host->log(t->ctx, HOOKD_LOG_INFO, "send %s attempt %u token %llu (%s) type %s",
		     s->delivery_id, s->attempt, (unsigned long long)s->token, b, s->event_type);
	if (strcmp(b, "/ok") == 0 || (s->attempt > 1 && strcmp(b, "/fail") != 0 &&
				      strcmp(b, "/never") != 0 && strcmp(b, "/twice") != 0)) {
		tt_complete(t, s->token, HOOKD_SENT, NULL, -1);
	} else if (strcmp(b, "/never") == 0 || strcmp(b, "/never-once") == 0) {
		/* nothing */
	} else if (strcmp(b, "/twice") == 0) {
		tt_complete(t, s->token, HOOKD_SENT, NULL, -1);
		tt_complete(t, s->token, HOOKD_SENT, NULL, -1);
	} else if (strcmp(b, "/late-once") == 0) {
		struct later *l = t->host->alloc(t->ctx, sizeof(*l));
		if (!l)
			return 1;
		l->t = t;
		l->token = s->token;
		if (!t->host->timer_start(t->ctx, s->timeout_ms + 300, tt_late_cb, l)) {
			t->host->free(t->ctx, l);
			return 1;
		}
	} else if (strcmp(b, "/thread") == 0) {
		pthread_t th;
		struct later *l = t->host->alloc(t->ctx, sizeof(*l));
		if (!l)
			return 1;
		l->t = t;
		l->token = s->token;
		if (pthread_create(&th, NULL, tt_thread, l) != 0) {
			t->host->free(t->ctx, l);
			return 1;
		}
		pthread_detach(th);
	} else if (strcmp(b, "/nonzero-once") == 0) {
		return 1;
	} else if (strcmp(b, "/fail") == 0) {
		tt_complete(t, s->token, HOOKD_FAILED, "fixture: permanent failure", -1);
	} else if (strcmp(b, "/retry-after") == 0) {
		tt_complete(t, s->token, HOOKD_RETRY, "fixture: come back in 2500 ms", 2500);
	} else {
		tt_complete(t, s->token, HOOKD_RETRY, "fixture: unknown behaviour", -1);
	}
	return 0;
}

static void tt_cancel(void *state, uint64_t token)
{
	struct tt *t = state;
	t->host->log(t->ctx, HOOKD_LOG_INFO, "cancel token %llu", (unsigned long long)token);
}

static void tt_cleanup(void *state)
{
	struct tt *t = state;
	t->host->log(t->ctx, HOOKD_LOG_INFO, "cleanup");
}

static int tt_check_url(void *state, const char *url, char *err, size_t errlen)
{
	if (strstr(url, "/refuse-me")) {
		snprintf(err, errlen, "the fixture refuses this path");
		return 1;
	}
	return 0;
}

static int net_send(void *state, const struct hookd_send *s)
{
	struct tt *t = state;
	t->host->log(t->ctx, HOOKD_LOG_INFO, "testnet send to host %s address %s port %d path %s",
		     s->host, s->address ? s->address : "(none)", s->port, s->path);
	tt_complete(t, s->token, HOOKD_SENT, NULL, -1);
	return 0;
}

static int tt_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		   char *err, size_t errlen)
{
	struct tt *t = &tt_state;
	const char *greeting = host->option(ctx, "greeting");
	t->host = host;
	t->ctx = ctx;
	t->sent = host->counter(ctx, "sent", "Attempts the fixture completed as sent");
	host->log(ctx, HOOKD_LOG_INFO, "greeting option: %s", greeting ? greeting : "(unset)");
	t->tr = (struct hookd_transport){.size = sizeof(t->tr), .scheme = "testtr",
					 .check_url = tt_check_url, .send = tt_send,
					 .cancel = tt_cancel};
	t->net = (struct hookd_transport){.size = sizeof(t->net), .scheme = "testnet",
					  .needs_address = 1, .send = net_send};
	*state = t;
	if (host->register_transport(ctx, &t->tr) || host->register_transport(ctx, &t->net)) {
		snprintf(err, errlen, "cannot register");
		return 1;
	}
	return 0;
}

HOOKD_PLUGIN_DEFINE(.name = "testtr", .version = "0.1", .init = tt_init, .cleanup = tt_cleanup,
		    .description = "misbehaving transports for the host's tests");
