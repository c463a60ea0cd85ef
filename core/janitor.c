/* janitor.c - expiring idempotency keys. */
#include "janitor.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "store.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* A sweep every 10 minutes keeps at most ~10 minutes of expired keys around (they are
 * already ignored when read, so this is about space, not correctness). */
#define JANITOR_INTERVAL_S 600
/* Keys deleted per transaction: a few ms of writer time, so publishes queued behind a
 * sweep wait little; a larger backlog is cleared over several ticks. */
#define JANITOR_SLICE 2000

struct janitor {
	struct store *store;
	struct event *timer;
	int busy;
};

struct janitor_op {
	struct store_op op; /* first */
	struct janitor *j;
	int64_t now_ms;
	size_t max, deleted;
};

static int janitor_apply(struct store *s, MDB_txn *txn, struct store_op *op)
{
	struct janitor_op *jo = (struct janitor_op *)op;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->idem, &cur);
	if (rc != 0)
		return store_err(rc, "janitor cursor");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && jo->deleted < jo->max;) {
		if (v.mv_size >= 8 && (int64_t)store_get_be64(v.mv_data) <= jo->now_ms) {
			if ((rc = mdb_cursor_del(cur, 0)) != 0)
				break;
			jo->deleted++;
			/* The cursor now sits on the next key; after deleting the very last one it
			 * has none (LMDB answers EINVAL or NOTFOUND): the sweep is complete. */
			rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
			if (rc != 0) {
				rc = 0;
				break;
			}
			continue;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return (rc == 0 || rc == MDB_NOTFOUND) ? HOOKD_OK : store_err(rc, "janitor");
}

size_t janitor_sweep_now(struct store *s, int64_t now_ms, size_t max)
{
	struct janitor_op jo;
	memset(&jo, 0, sizeof(jo));
	jo.op.apply = janitor_apply;
	jo.now_ms = now_ms;
	jo.max = max;
	return store_write_now(s, &jo.op) == HOOKD_OK ? jo.deleted : 0;
}

static void janitor_arm(struct janitor *j, int seconds);

static void janitor_done(struct store_op *op)
{
	struct janitor_op *jo = (struct janitor_op *)op;
	struct janitor *j = jo->j;
	j->busy = 0;
	if (op->rc == HOOKD_OK && jo->deleted)
		log_info("janitor: %zu expired idempotency keys deleted", jo->deleted);
	/* A full slice means more may be waiting: go on soon instead of in 10 minutes. */
	if (j->timer)
		janitor_arm(j, jo->deleted == jo->max ? 1 : JANITOR_INTERVAL_S);
	free(jo);
}

static void janitor_tick(evutil_socket_t fd, short what, void *arg)
{
	struct janitor *j = arg;
	struct janitor_op *jo;
	if (j->busy)
		return;
	jo = calloc(1, sizeof(*jo));
	if (!jo) {
		janitor_arm(j, JANITOR_INTERVAL_S);
		return;
	}
	jo->op.apply = janitor_apply;
	jo->op.done = janitor_done;
	jo->j = j;
	jo->now_ms = clock_now_ms();
	jo->max = JANITOR_SLICE;
	j->busy = 1;
	store_submit(j->store, &jo->op);
}

static void janitor_arm(struct janitor *j, int seconds)
{
	struct timeval tv = {seconds, 0};
	evtimer_add(j->timer, &tv);
}

int janitor_new(struct event_base *base, struct store *s, struct janitor **out)
{
	struct janitor *j = calloc(1, sizeof(*j));
	if (!j)
		return HOOKD_ENOMEM;
	j->store = s;
	j->timer = evtimer_new(base, janitor_tick, j);
	if (!j->timer) {
		free(j);
		return HOOKD_ENOMEM;
	}
	janitor_arm(j, JANITOR_INTERVAL_S);
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
