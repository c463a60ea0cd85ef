/* janitor.c - housekeeping policy: when to sweep, how much per step, what is past
 * retention; the steps themselves are the store's (store_retention_submit). */
#include "janitor.h"

#include "clock.h"
#include "delivery.h"
#include "err.h"
#include "log.h"
#include "ratelimit.h"
#include "registry.h"
#include "store.h"

#include <event2/event.h>
#include <jansson.h>
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
/* Messages one app may take of a step: a quarter of a full slice, so a step serves at least
 * four apps and an app with years of history waits its turn like the others (a pass over
 * the rest comes every few steps, each a second apart while there is more). */
#define JANITOR_APP_SLICE (JANITOR_PRUNE_SLICE / 4)
#define JANITOR_DAY_MS 86400000LL
/* How a purged envelope ends (janitor_payload_purge writes the member last). */
#define JANITOR_PURGED_TAIL ",\"payload_purged\":true}"

/* The apps as one step sees them (store.h's table, sorted by id), with ids of their own:
 * an app's walk resumes where its last step stopped. */
struct janitor_apps {
	struct store_retention_app *apps;
	char (*ids)[STORE_RETENTION_ID_LEN];
	size_t n, cap;
};

struct janitor {
	struct store *store;
	struct registry *reg;
	uint32_t retention_days, payload_retention_days;
	struct janitor_apps table;    /* the step in flight reads and writes it while busy */
	char start_after_app[STORE_RETENTION_ID_LEN]; /* the next step's first app follows it */
	struct event *timer;
	int busy;
	size_t slice;          /* current retention slice (halved when a step does not fit) */
	struct ratelimit full_log; /* "full, nothing to prune" */
	int64_t last_pass_ns;  /* monotonic start of the last pass */
	int64_t last_pass_ms;  /* wall-clock start of the last pass */
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

void janitor_app_cutoffs(int64_t now_ms, int64_t app_days, int64_t app_payload_days,
			 uint32_t def_days, uint32_t def_payload_days, int64_t *cutoff_ms,
			 int64_t *payload_cutoff_ms)
{
	int64_t days = app_days >= 0 ? app_days : def_days;
	int64_t pdays = app_payload_days >= 0 ? app_payload_days : def_payload_days;
	*cutoff_ms = days ? now_ms - days * JANITOR_DAY_MS : 0;
	/* Longer than the message's own retention is as long as the message: none. */
	*payload_cutoff_ms = pdays && (!days || pdays < days) ? now_ms - pdays * JANITOR_DAY_MS : 0;
}

int janitor_payload_purge(const char *env, size_t len, char **out, size_t *outlen)
{
	size_t tl = strlen(JANITOR_PURGED_TAIL);
	json_t *j;
	char *text;

	if (len >= tl && memcmp(env + len - tl, JANITOR_PURGED_TAIL, tl) == 0)
		return 0;
	j = json_loadb(env, len, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return 0; /* not an envelope hookd wrote: left as it is */
	}
	json_object_del(j, "payload_purged");
	if (json_object_set_new(j, "data", json_null()) != 0 ||
	    json_object_set_new(j, "payload_purged", json_true()) != 0) {
		json_decref(j);
		return HOOKD_ENOMEM;
	}
	/* The envelope's members keep their order, the marker last (JANITOR_PURGED_TAIL). */
	text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text)
		return HOOKD_ENOMEM;
	*out = text;
	*outlen = strlen(text);
	return 1;
}

static int janitor_app_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_retention_app *)a)->app_id,
		      ((const struct store_retention_app *)b)->app_id);
}

struct janitor_fill {
	struct janitor *j;
	struct janitor_apps *t, *old;
	int64_t now_ms;
};

static void janitor_fill_one(const char *key, void *value, void *arg)
{
	struct janitor_fill *f = arg;
	struct app *app = value;
	struct janitor_apps *t = f->t;
	struct store_retention_app *e, *prev = NULL;
	size_t i;

	if (t->n == t->cap || strlen(app->id) >= STORE_RETENTION_ID_LEN)
		return;
	i = t->n++;
	e = &t->apps[i];
	memset(e, 0, sizeof(*e));
	snprintf(t->ids[i], sizeof(t->ids[i]), "%s", app->id);
	e->app_id = t->ids[i];
	janitor_app_cutoffs(f->now_ms, app->retention_days, app->payload_retention_days,
			    f->j->retention_days, f->j->payload_retention_days, &e->cutoff_ms,
			    &e->payload_cutoff_ms);
	/* Where its walk stopped in the last step that visited it. */
	if (f->old->n)
		prev = bsearch(e, f->old->apps, f->old->n, sizeof(*e), janitor_app_cmp);
	if (prev)
		memcpy(e->after, prev->visited ? prev->next_after : prev->after, sizeof(e->after));
}

/* Rebuilds the table from the registry as of now_ms (apps come and go, their days
 * change), keeping each app's resume point. HOOKD_OK or HOOKD_ENOMEM (the old table
 * stays). */
static int janitor_table_refresh(struct janitor *j, int64_t now_ms)
{
	struct janitor_apps t = {0};
	struct janitor_fill f = {j, &t, &j->table, now_ms};
	size_t n = j->reg ? j->reg->apps.count : 0;

	if (n) {
		t.apps = calloc(n, sizeof(*t.apps));
		t.ids = calloc(n, sizeof(*t.ids));
		if (!t.apps || !t.ids) {
			free(t.apps);
			free(t.ids);
			return HOOKD_ENOMEM;
		}
		t.cap = n;
		strmap_each(&j->reg->apps, janitor_fill_one, &f);
		qsort(t.apps, t.n, sizeof(*t.apps), janitor_app_cmp);
	}
	free(j->table.apps);
	free(j->table.ids);
	j->table = t;
	return HOOKD_OK;
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

/* The step's resume points back into the table (the step wrote next_after into it). */
static void janitor_take_resume(struct janitor *j, const struct store_retention *st)
{
	for (size_t i = 0; i < j->table.n; i++) {
		struct store_retention_app *e = &j->table.apps[i];
		if (e->visited)
			memcpy(e->after, e->next_after, sizeof(e->after));
		e->visited = 0;
	}
	memcpy(j->start_after_app, st->next_after_app, sizeof(j->start_after_app));
}

static void janitor_done(void *arg, int rc, const struct store_retention *st)
{
	struct janitor *j = arg;
	struct store_space sp;
	int more = 0, retry = 0;

	j->busy = 0;
	store_get_space(j->store, &sp);
	if (rc == HOOKD_OK) {
		janitor_take_resume(j, st);
		if (st->idem_deleted)
			log_info("janitor: %zu expired idempotency keys deleted", st->idem_deleted);
		if (st->msgs_deleted)
			log_info("janitor: %zu settled messages past retention deleted (store: %llu "
				 "of %llu bytes in use)", st->msgs_deleted,
				 (unsigned long long)sp.used_bytes, (unsigned long long)sp.budget_bytes);
		if (st->payloads_purged)
			log_info("janitor: %zu settled messages past payload retention lost their "
				 "payload (store: %llu of %llu bytes in use)", st->payloads_purged,
				 (unsigned long long)sp.used_bytes, (unsigned long long)sp.budget_bytes);
		/* A full slice, or an app whose walk stopped short, means more may be waiting:
		 * go on soon instead of in 10 minutes. */
		more = st->idem_deleted == st->idem_max || st->more;
		if ((st->msgs_deleted || st->payloads_purged) && j->slice < JANITOR_PRUNE_SLICE)
			j->slice *= 2;
		uint64_t skipped;
		if (sp.full && !more && !st->msgs_deleted && !st->payloads_purged &&
		    ratelimit_check(&j->full_log, clock_mono_ns() / 1000000, &skipped)) {
			log_warn("janitor: the store is full (%llu of %llu bytes in use, %llu reserved "
				 "for pending deliveries) and nothing is past retention yet (%s); "
				 "publishes get 507 until deliveries settle and age out, or "
				 "storage.map_size grows",
				 (unsigned long long)sp.used_bytes, (unsigned long long)sp.budget_bytes,
				 (unsigned long long)sp.reserved_bytes,
				 j->retention_days ? "storage.retention_days and the apps' retention_days"
						   : "retention is off unless an app sets retention_days");
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
	struct store_retention st = {.delivery_prefix = janitor_delivery_prefix,
				     .payload_purge = janitor_payload_purge};
	struct store_space sp;
	int64_t mono = clock_mono_ns(), now = clock_now_ms();
	if (j->busy)
		return;
	/* Woken every few seconds so that a store that became full is swept soon; otherwise
	 * a pass every JANITOR_INTERVAL_S, or as soon as the wall clock moved on that much:
	 * retention is in wall-clock days, and the monotonic clock stands still while the
	 * machine sleeps (or the clock is stepped forward). */
	store_get_space(j->store, &sp);
	if (!sp.full && mono - j->last_pass_ns < JANITOR_INTERVAL_S * 1000000000LL &&
	    now - j->last_pass_ms < JANITOR_INTERVAL_S * 1000LL) {
		janitor_arm(j, JANITOR_FULL_INTERVAL_S);
		return;
	}
	if (janitor_table_refresh(j, now) != HOOKD_OK) {
		log_warn("janitor: out of memory for the apps' retention; retrying in %d s",
			 JANITOR_FULL_INTERVAL_S);
		janitor_arm(j, JANITOR_FULL_INTERVAL_S);
		return;
	}
	j->last_pass_ns = mono;
	j->last_pass_ms = now;
	st.idem_now_ms = now;
	st.idem_max = JANITOR_SLICE;
	st.msg_max = j->slice;
	st.app_max = JANITOR_APP_SLICE < j->slice ? JANITOR_APP_SLICE : j->slice;
	st.apps = j->table.apps;
	st.n_apps = j->table.n;
	memcpy(st.start_after_app, j->start_after_app, sizeof(st.start_after_app));
	/* Apps with messages in the store but not in the registry: the daemon's defaults. */
	janitor_app_cutoffs(now, -1, -1, j->retention_days, j->payload_retention_days,
			    &st.cutoff_ms, &st.payload_cutoff_ms);
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

int janitor_new(struct event_base *base, struct store *s, struct registry *reg,
		uint32_t retention_days, uint32_t payload_retention_days, struct janitor **out)
{
	struct janitor *j = calloc(1, sizeof(*j));
	if (!j)
		return HOOKD_ENOMEM;
	j->store = s;
	j->reg = reg;
	j->retention_days = retention_days;
	j->payload_retention_days = payload_retention_days;
	j->slice = JANITOR_PRUNE_SLICE;
	j->full_log.interval_ms = JANITOR_FULL_LOG_S * 1000LL;
	j->last_pass_ns = clock_mono_ns();
	j->last_pass_ms = clock_now_ms();
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
	free(j->table.apps);
	free(j->table.ids);
	free(j);
}
