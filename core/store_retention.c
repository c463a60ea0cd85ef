/* store_retention.c - the janitor's step as one write op: expired idempotency keys, then
 * settled messages past the cutoff with everything they own. The janitor decides the
 * cutoffs and slice sizes; the store knows what a message owns and what "settled" means
 * for its records (no delivery pending, no fan-out still to do). */
#include "store-t.h"

#include "err.h"
#include "id.h"
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deliveries tracked per message: a message with more is kept (policy fan-out makes a
 * delivery per endpoint; 64 is far more than an app subscribes per event type). */
#define STORE_RETENTION_DLV_MAX 64
/* A delivery id as the retention step handles it: longer ones keep their message. */
#define STORE_RETENTION_ID_MAX (ID_MAX + 24)

struct store_retention_op {
	struct store_op op; /* first */
	struct store_retention st;
	void (*done)(void *arg, int rc, const struct store_retention *st);
	void *arg;
};

/* ---- expired idempotency keys ---- */

static int store_idem_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_retention *st = arg;
	if (st->idem_deleted >= st->idem_max)
		return STORE_SCAN_STOP;
	if (v->mv_size >= 8 && (int64_t)store_get_be64(v->mv_data) <= st->idem_now_ms) {
		st->idem_deleted++;
		return STORE_SCAN_DEL;
	}
	return STORE_SCAN_NEXT;
}

/* ---- settled messages ---- */

/* The deliveries of one message, if all are settled. */
struct store_msg_owned {
	size_t n;
	int keep; /* something pending, unreadable or too many: the message stays */
	char ids[STORE_RETENTION_DLV_MAX][STORE_RETENTION_ID_MAX];
	int dead[STORE_RETENTION_DLV_MAX];
	int64_t dead_at[STORE_RETENTION_DLV_MAX];
};

static int store_owned_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_msg_owned *o = arg;
	struct delivery_rec r;
	if (o->n == STORE_RETENTION_DLV_MAX || k->mv_size >= sizeof(o->ids[0]) ||
	    record_decode(v->mv_data, v->mv_size, &r) != HOOKD_OK || r.state == DLV_PENDING) {
		o->keep = 1;
		return STORE_SCAN_STOP;
	}
	store_key_text(k->mv_data, k->mv_size, o->ids[o->n], sizeof(o->ids[0]));
	o->dead[o->n] = r.state == DLV_DEAD;
	o->dead_at[o->n] = r.updated_ms; /* a dead record's last write is its death */
	o->n++;
	return STORE_SCAN_NEXT;
}

static int store_scan_delete(void *arg, const MDB_val *k, const MDB_val *v)
{
	return STORE_SCAN_DEL;
}

/* Deletes one message and all it owns if every delivery is settled: 1 if deleted, 0 if
 * kept, or a store error. */
static int store_prune_message(struct store *s, MDB_txn *txn, const struct store_retention *st,
			       const char *app_id, const char *msg_id)
{
	struct store_msg_owned *o = calloc(1, sizeof(*o));
	struct store_key mk, k;
	char prefix[STORE_KEY_MAX + 1];
	MDB_val v;
	int rc;

	if (!o)
		return HOOKD_ENOMEM;
	if ((rc = store_key_pair(&mk, app_id, msg_id)) != HOOKD_OK)
		goto out;
	/* A policy fan-out still to come counts as pending. */
	rc = store_get(s, txn, STORE_DB_FANOUT, &mk, &v);
	if (rc != HOOKD_ENOTFOUND) {
		rc = rc == HOOKD_OK ? 0 : rc;
		goto out;
	}
	if (st->delivery_prefix(msg_id, prefix, sizeof(prefix)) == 0) {
		rc = 0; /* no prefix: its deliveries cannot be told apart, keep it */
		goto out;
	}
	if ((rc = store_key_str(&k, prefix)) != HOOKD_OK ||
	    (rc = store_scan_prefix(s, txn, STORE_DB_DELIVERIES, &k, store_owned_one, o)) !=
		    HOOKD_OK)
		goto out;
	if (o->keep) {
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < o->n; i++) {
		if ((rc = store_key_attempt(&k, o->ids[i], 0, 0)) != HOOKD_OK ||
		    (rc = store_scan_prefix(s, txn, STORE_DB_ATTEMPTS, &k, store_scan_delete,
					    NULL)) != HOOKD_OK)
			goto out;
		if ((rc = store_key_str(&k, o->ids[i])) != HOOKD_OK ||
		    (rc = store_del(s, txn, STORE_DB_BODIES, &k)) != HOOKD_OK)
			goto out;
		if (o->dead[i] &&
		    store_key_dead(&k, app_id, o->dead_at[i], o->ids[i]) == HOOKD_OK &&
		    (rc = store_del(s, txn, STORE_DB_DEAD, &k)) != HOOKD_OK)
			goto out;
		/* With its endpoint index entry and count (store_epindex.c). */
		if ((rc = store_key_str(&k, o->ids[i])) != HOOKD_OK ||
		    (rc = store_delivery_del(s, txn, k.b, k.len)) != HOOKD_OK)
			goto out;
	}
	{
		MDB_val key = {mk.len, mk.b};
		int m = mdb_del(txn, s->dbi[STORE_DB_MESSAGES], &key, NULL);
		rc = m == 0 ? 1 : m == MDB_NOTFOUND ? 0 : store_err(m, "retention delete");
	}
out:
	free(o);
	return rc;
}

/* Messages chosen in one app's walk (copied: the deletes that follow move the pages the
 * walk's keys point into). */
struct store_prune_walk {
	const struct store_retention *st;
	size_t n, max;
	char app[STORE_KEY_MAX + 1];
	char (*msgs)[ID_MAX];
	int app_done; /* the rest of this app is newer than the cutoff */
};

static int store_prune_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_prune_walk *w = arg;
	size_t alen = strlen(w->app), mlen = k->mv_size - alen - 1;
	char mid[ID_MAX];
	int64_t t;
	if (w->n >= w->max)
		return STORE_SCAN_STOP;
	if (mlen == 0 || mlen >= sizeof(mid))
		return STORE_SCAN_NEXT; /* not a message id */
	store_key_text((const char *)k->mv_data + alen + 1, mlen, mid, sizeof(mid));
	t = id_time_ms(mid, 4);
	if (t >= 0 && t >= w->st->cutoff_ms) {
		/* Ids sort by time within an app: the rest of this app is newer. */
		w->app_done = 1;
		return STORE_SCAN_STOP;
	}
	memcpy(w->msgs[w->n++], mid, mlen + 1);
	return STORE_SCAN_NEXT;
}

/* Walks the messages of every app oldest first, pruning settled ones created before the
 * cutoff; at most msg_max (and STORE_RETENTION_MAX) are candidates per step. */
static int store_prune(struct store *s, MDB_txn *txn, struct store_retention *st)
{
	struct store_prune_walk w = {.st = st};
	struct store_key from = {0};
	size_t max = st->msg_max < STORE_RETENTION_MAX ? st->msg_max : STORE_RETENTION_MAX;
	size_t chosen = 0;
	int rc = HOOKD_OK;

	w.msgs = calloc(STORE_RETENTION_MAX, sizeof(*w.msgs));
	if (!w.msgs)
		return HOOKD_ENOMEM;
	while (chosen < max) {
		MDB_cursor *cur;
		MDB_val k = {from.len, from.b}, v;
		size_t alen = 0;
		struct store_key prefix;

		/* The next app: the first key at or after from (app \1 sorts after app \0 ...). */
		if ((rc = mdb_cursor_open(txn, s->dbi[STORE_DB_MESSAGES], &cur)) != 0) {
			rc = store_err(rc, "retention cursor");
			break;
		}
		rc = mdb_cursor_get(cur, &k, &v, from.len ? MDB_SET_RANGE : MDB_FIRST);
		if (rc == 0) {
			alen = strnlen(k.mv_data, k.mv_size);
			if (alen > STORE_KEY_MAX - 1)
				alen = STORE_KEY_MAX - 1;
			memcpy(w.app, k.mv_data, alen);
			w.app[alen] = 0;
		}
		mdb_cursor_close(cur);
		if (rc != 0) {
			rc = rc == MDB_NOTFOUND ? HOOKD_OK : store_err(rc, "retention");
			break;
		}
		/* This app's messages, oldest first, up to the cutoff. */
		w.n = 0;
		w.max = max - chosen;
		w.app_done = 0;
		if ((rc = store_key_pair(&prefix, w.app, NULL)) != HOOKD_OK ||
		    (rc = store_scan_prefix(s, txn, STORE_DB_MESSAGES, &prefix, store_prune_one,
					    &w)) != HOOKD_OK)
			break;
		chosen += w.n;
		for (size_t i = 0; i < w.n; i++) {
			int r = store_prune_message(s, txn, st, w.app, w.msgs[i]);
			if (r < 0) {
				rc = r;
				goto out;
			}
			st->msgs_deleted += (size_t)r;
		}
		if (!w.app_done && w.n == w.max)
			break; /* the step's slice is used up */
		memcpy(from.b, w.app, alen);
		from.b[alen] = 1;
		from.len = alen + 1;
	}
out:
	free(w.msgs);
	return rc;
}

static int store_retention_apply(struct store *s, MDB_txn *txn, struct store_op *op)
{
	struct store_retention *st = &((struct store_retention_op *)op)->st;
	int rc;
	/* Applied again when its batch is replayed op by op: count only this application. */
	st->idem_deleted = st->msgs_deleted = 0;
	rc = store_scan(s, txn, STORE_DB_IDEM, NULL, 0, 0, store_idem_one, st);
	if (rc == HOOKD_OK && st->cutoff_ms > 0)
		rc = store_prune(s, txn, st);
	return rc;
}

int store_retention_now(struct store *s, struct store_retention *st)
{
	struct store_retention_op ro;
	int rc;
	memset(&ro, 0, sizeof(ro));
	ro.st = *st;
	ro.op.apply = store_retention_apply;
	rc = store_write_now(s, &ro.op);
	st->idem_deleted = ro.st.idem_deleted;
	st->msgs_deleted = ro.st.msgs_deleted;
	return rc;
}

static void store_retention_done(struct store_op *op)
{
	struct store_retention_op *ro = (struct store_retention_op *)op;
	ro->done(ro->arg, op->rc, &ro->st);
	free(ro);
}

int store_retention_submit(struct store *s, const struct store_retention *st,
			   void (*done)(void *arg, int rc, const struct store_retention *st),
			   void *arg)
{
	struct store_retention_op *ro = calloc(1, sizeof(*ro));
	if (!ro)
		return HOOKD_ENOMEM;
	ro->st = *st;
	ro->done = done;
	ro->arg = arg;
	ro->op.apply = store_retention_apply;
	ro->op.done = store_retention_done;
	store_submit(s, &ro->op);
	return HOOKD_OK;
}
