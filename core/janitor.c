/* janitor.c - housekeeping policy: when to sweep, how much per step, what is past
 * retention; the steps themselves are the store's (store_retention_submit). */
#include "janitor.h"

#include "clock.h"
#include "delivery.h"
#include "err.h"
#include "log.h"
#include "ratelimit.h"
#include "store.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A sweep every 10 minutes keeps at most ~10 minutes of expired keys around (they are
 * already ignored when read, so this is about space, not correctness). */
#define JANITOR_INTERVAL_S 600
/* Keys deleted per transaction: a few ms of writer time, so publishes queued behind a
 * sweep wait little; a larger backlog is cleared over several ticks. */
#define JANITOR_SLICE 2000
/* Messages examined per retention step (each may own a few deliveries and attempts):
 * small enough that one step stays a few ms of writer time. */
#define JANITOR_PRUNE_SLICE 256
/* While the store refuses publishes, a pass every 5 s: space freed by retention is given
 * back to publishers within seconds (a pass that finds nothing costs one short txn). */
#define JANITOR_FULL_INTERVAL_S 5
/* A step that does not fit (deletes need fresh pages too) is retried with half the slice,
 * down to this many messages: a step of a few messages fits the store's base reserve. */
#define JANITOR_MIN_SLICE 4
/* While full and nothing can be pruned, say so at most this often. */
#define JANITOR_FULL_LOG_S 600

struct janitor {
	struct store *store;
	uint32_t retention_days;
	struct event *timer;
	int busy;
	size_t slice;          /* current retention slice (halved when a step does not fit) */
	struct ratelimit full_log; /* "full, nothing to prune" */
	int64_t last_pass_ns;  /* monotonic start of the last pass */
};

/* The deliveries of message msg_id share an id prefix (delivery.h); the retention step
 * deletes a message with the deliveries under it. */
static size_t janitor_delivery_prefix(const char *msg_id, char *out, size_t outlen)
{
	if (outlen < DELIVERY_ID_MAX) {
		if (outlen)
			out[0] = 0;
		return 0;
	}
	return delivery_id_prefix(msg_id, out);
}

size_t janitor_prune_now(struct store *s, int64_t cutoff_ms, size_t max)
{
	struct store_retention st = {
		.idem_now_ms = 0, /* no idempotency key is expired "before 1970" */
		.idem_max = max,
		.cutoff_ms = cutoff_ms,
		.msg_max = max,
		.delivery_prefix = janitor_delivery_prefix,
	};
	return store_retention_now(s, &st) == HOOKD_OK ? st.msgs_deleted : 0;
}

size_t janitor_sweep_now(struct store *s, int64_t now_ms, size_t max)
{
	struct store_retention st = {
		.idem_now_ms = now_ms,
		.idem_max = max,
		.delivery_prefix = janitor_delivery_prefix,
	};
	return store_retention_now(s, &st) == HOOKD_OK ? st.idem_deleted : 0;
}

static void janitor_arm(struct janitor *j, int seconds);

static void janitor_done(void *arg, int rc, const struct store_retention *st)
{
	struct janitor *j = arg;
	struct store_space sp;
	int more = 0, retry = 0;

	j->busy = 0;
	store_get_space(j->store, &sp);
	if (rc == HOOKD_OK) {
		if (st->idem_deleted)
			log_info("janitor: %zu expired idempotency keys deleted", st->idem_deleted);
		if (st->msgs_deleted)
			log_info("janitor: %zu settled messages past retention deleted (store: %llu "
				 "of %llu bytes in use)", st->msgs_deleted,
				 (unsigned long long)sp.used_bytes, (unsigned long long)sp.budget_bytes);
		/* A full slice means more may be waiting: go on soon instead of in 10 minutes. */
		more = st->idem_deleted == st->idem_max ||
		       (st->msg_max && st->msgs_deleted >= st->msg_max / 2);
		if (st->msgs_deleted && j->slice < JANITOR_PRUNE_SLICE)
			j->slice *= 2;
		uint64_t skipped;
		if (sp.full && !more && !st->msgs_deleted &&
		    ratelimit_check(&j->full_log, clock_mono_ns() / 1000000, &skipped)) {
			log_warn("janitor: the store is full (%llu of %llu bytes in use, %llu reserved "
				 "for pending deliveries) and nothing is past retention yet (%s); "
				 "publishes get 507 until deliveries settle and age out, or "
				 "storage.map_size grows",
				 (unsigned long long)sp.used_bytes, (unsigned long long)sp.budget_bytes,
				 (unsigned long long)sp.reserved_bytes,
				 j->retention_days ? "storage.retention_days" : "retention is off");
		}
	} else if (rc == HOOKD_EFULL && j->slice > JANITOR_MIN_SLICE) {
		j->slice /= 2;
		retry = 1;
		log_warn("janitor: a retention step did not fit the full store; retrying with %zu "
			 "messages per step", j->slice);
	} else {
		log_warn("janitor: housekeeping step failed: %s; retrying in %d s",
			 hookd_strerror(rc), JANITOR_FULL_INTERVAL_S);
		retry = 1;
	}
	if (more || retry)
		j->last_pass_ns = 0; /* the next tick goes on at once */
	if (j->timer)
		janitor_arm(j, more || retry ? 1 : JANITOR_FULL_INTERVAL_S);
}

static void janitor_tick(evutil_socket_t fd, short what, void *arg)
{
	struct janitor *j = arg;
	struct store_retention st = {.delivery_prefix = janitor_delivery_prefix};
	struct store_space sp;
	int64_t mono = clock_mono_ns();
	if (j->busy)
		return;
	/* Woken every few seconds so that a store that became full is swept soon; otherwise
	 * a pass every JANITOR_INTERVAL_S. */
	store_get_space(j->store, &sp);
	if (!sp.full && mono - j->last_pass_ns < JANITOR_INTERVAL_S * 1000000000LL) {
		janitor_arm(j, JANITOR_FULL_INTERVAL_S);
		return;
	}
	j->last_pass_ns = mono;
	st.idem_now_ms = clock_now_ms();
	st.idem_max = JANITOR_SLICE;
	st.msg_max = j->slice;
	if (j->retention_days)
		st.cutoff_ms = st.idem_now_ms - (int64_t)j->retention_days * 86400000LL;
	if (store_retention_submit(j->store, &st, janitor_done, j) != HOOKD_OK) {
		janitor_arm(j, JANITOR_FULL_INTERVAL_S);
		return;
	}
	j->busy = 1;
}

static void janitor_arm(struct janitor *j, int seconds)
{
	struct timeval tv = {seconds, 0};
	evtimer_add(j->timer, &tv);
}

int janitor_new(struct event_base *base, struct store *s, uint32_t retention_days,
		struct janitor **out)
{
	struct janitor *j = calloc(1, sizeof(*j));
	if (!j)
		return HOOKD_ENOMEM;
	j->store = s;
	j->retention_days = retention_days;
	j->slice = JANITOR_PRUNE_SLICE;
	j->full_log.interval_ms = JANITOR_FULL_LOG_S * 1000LL;
	j->last_pass_ns = clock_mono_ns();
	j->timer = evtimer_new(base, janitor_tick, j);
	if (!j->timer) {
		free(j);
		return HOOKD_ENOMEM;
	}
	janitor_arm(j, JANITOR_FULL_INTERVAL_S);
	*out = j;
	return HOOKD_OK;
}

void janitor_free(struct janitor *j)
{
	if (!j)
		return;
	event_free(j->timer);
	j->timer = NULL;
	free(j);
}
