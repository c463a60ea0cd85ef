/* store_retention.c - the janitor's step as one write op: expired idempotency keys, then
 * per app, settled messages past its cutoff with everything they own, and settled messages
 * past its payload cutoff without their payload. The janitor decides the cutoffs and slice
 * sizes and what an envelope without its payload looks like; the store knows what a
 * message owns and what "settled" means for its records (no delivery pending, no fan-out
 * still to do), and gives the apps their turns. */
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
	int own_body[STORE_RETENTION_DLV_MAX]; /* the record names a policy body of its own */
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
	o->own_body[o->n] = r.body_len > 0 || (r.flags & RECORD_CUSTOM_BODY);
	o->n++;
	return STORE_SCAN_NEXT;
}

static int store_scan_delete(void *arg, const MDB_val *k, const MDB_val *v)
{
	return STORE_SCAN_DEL;
}

/* Rewrites delivery k's record without a policy body of its own: neither inline (records
 * from before the bodies database) nor flagged as kept in bodies, which the purge empties.
 * Should it be sent again (a redrive), it gets the envelope without its payload, as a plain
 * delivery does. store_delivery_put keeps the endpoint index; the state is unchanged. */
static int store_purge_record_body(struct store *s, MDB_txn *txn, const struct store_key *k)
{
	struct delivery_rec r;
	unsigned char *enc = NULL;
	size_t len;
	MDB_val v;
	int rc = store_get(s, txn, STORE_DB_DELIVERIES, k, &v);
	if (rc != HOOKD_OK)
		return rc == HOOKD_ENOTFOUND ? HOOKD_OK : rc;
	if (record_decode(v.mv_data, v.mv_size, &r) != HOOKD_OK ||
	    (r.body_len == 0 && !(r.flags & RECORD_CUSTOM_BODY)))
		return HOOKD_OK;
	r.body = "";
	r.body_len = 0;
	r.flags &= ~(unsigned)RECORD_CUSTOM_BODY;
	/* Encoded from the record's own bytes before they are overwritten. */
	if ((rc = record_encode(&r, &enc, &len)) == HOOKD_OK)
		rc = store_delivery_put(s, txn, k->b, k->len, enc, len);
	free(enc);
	return rc;
}

/* Collects into o the deliveries of message mk (app_id, msg_id) when it is settled: no
 * policy fan-out still to come, and every delivery succeeded, filtered or dead. 1 if so, 0 if
 * it is to be kept (pending, a fan-out to come, or ids that cannot be told apart), or a
 * store error. */
static int store_message_settled(struct store *s, MDB_txn *txn,
				 const struct store_retention *st, const struct store_key *mk,
				 const char *msg_id, struct store_msg_owned *o)
{
	char prefix[STORE_KEY_MAX + 1];
	struct store_key k;
	MDB_val v;
	/* A policy fan-out still to come counts as pending (and reads the payload). */
	int rc = store_get(s, txn, STORE_DB_FANOUT, mk, &v);
	if (rc != HOOKD_ENOTFOUND)
		return rc == HOOKD_OK ? 0 : rc;
	if (st->delivery_prefix(msg_id, prefix, sizeof(prefix)) == 0)
		return 0; /* no prefix: its deliveries cannot be told apart, keep it */
	if ((rc = store_key_str(&k, prefix)) != HOOKD_OK ||
	    (rc = store_scan_prefix(s, txn, STORE_DB_DELIVERIES, &k, store_owned_one, o)) !=
		    HOOKD_OK)
		return rc;
	return o->keep ? 0 : 1;
}

/* Deletes one message and all it owns if every delivery is settled: 1 if deleted, 0 if
 * kept, or a store error. */
static int store_prune_message(struct store *s, MDB_txn *txn, const struct store_retention *st,
			       const char *app_id, const char *msg_id)
{
	struct store_msg_owned *o = calloc(1, sizeof(*o));
	struct store_key mk, k;
	int rc;

	if (!o)
		return HOOKD_ENOMEM;
	if ((rc = store_key_pair(&mk, app_id, msg_id)) != HOOKD_OK ||
	    (rc = store_message_settled(s, txn, st, &mk, msg_id, o)) != 1)
		goto out;
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

/* Takes the payload off one settled message (store.h, the retention step): 1 if purged,
 * 0 if kept (pending, or purged before), or a store error. */
static int store_purge_message(struct store *s, MDB_txn *txn, const struct store_retention *st,
			       const char *app_id, const char *msg_id)
{
	struct store_msg_owned *o = NULL;
	struct store_key mk, k;
	char *env = NULL;
	size_t envlen = 0;
	MDB_val v;
	int rc;

	if ((rc = store_key_pair(&mk, app_id, msg_id)) != HOOKD_OK)
		return rc;
	rc = store_get(s, txn, STORE_DB_MESSAGES, &mk, &v);
	if (rc != HOOKD_OK)
		return rc == HOOKD_ENOTFOUND ? 0 : rc;
	/* First, as it is the cheap test: a purged message is seen again on every walk until
	 * it is old enough to go. */
	if ((rc = st->payload_purge(v.mv_data, v.mv_size, &env, &envlen)) <= 0)
		return rc;
	if (!(o = calloc(1, sizeof(*o)))) {
		rc = HOOKD_ENOMEM;
		goto out;
	}
	if ((rc = store_message_settled(s, txn, st, &mk, msg_id, o)) != 1)
		goto out;
	for (size_t i = 0; i < o->n; i++) {
		if ((rc = store_key_str(&k, o->ids[i])) != HOOKD_OK ||
		    (rc = store_del(s, txn, STORE_DB_BODIES, &k)) != HOOKD_OK)
			goto out;
		if (o->own_body[i] && (rc = store_purge_record_body(s, txn, &k)) != HOOKD_OK)
			goto out;
	}
	rc = store_put(s, txn, STORE_DB_MESSAGES, &mk, env, envlen);
	rc = rc == HOOKD_OK ? 1 : rc;
out:
	free(env);
	free(o);
	return rc;
}

/* Messages chosen in one app's walk (copied: the deletes that follow move the pages the
 * walk's keys point into). */
struct store_prune_walk {
	int64_t walk_cutoff_ms; /* the later of the app's two cutoffs */
	size_t n, max;
	char app[STORE_RETENTION_ID_LEN];
	size_t alen;
	const char *after;     /* skip up to and including this id */
	char (*msgs)[ID_MAX];
	int64_t *times;
	int app_done;          /* the rest of this app is newer than its cutoffs */
};

static int store_prune_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_prune_walk *w = arg;
	size_t mlen = k->mv_size - w->alen - 1;
	char mid[ID_MAX];
	int64_t t;
	if (w->n >= w->max)
		return STORE_SCAN_STOP;
	if (mlen == 0 || mlen >= sizeof(mid))
		return STORE_SCAN_NEXT; /* not a message id */
	store_key_text((const char *)k->mv_data + w->alen + 1, mlen, mid, sizeof(mid));
	if (w->after && strcmp(mid, w->after) <= 0)
		return STORE_SCAN_NEXT; /* the resume point itself (the scan starts at it) */
	t = id_time_ms(mid, 4);
	if (t >= 0 && t >= w->walk_cutoff_ms) {
		/* Ids sort by time within an app: the rest of this app is newer. */
		w->app_done = 1;
		return STORE_SCAN_STOP;
	}
	memcpy(w->msgs[w->n], mid, mlen + 1);
	w->times[w->n++] = t;
	return STORE_SCAN_NEXT;
}

static int store_retention_app_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct store_retention_app *)elem)->app_id);
}

/* The first app with messages whose key is at or after from (app \1 sorts after every key
 * of app): its id into app, 1; 0 when there is none; or a store error. */
static int store_prune_next_app(struct store *s, MDB_txn *txn, const struct store_key *from,
				char *app, size_t *alen)
{
	MDB_cursor *cur;
	MDB_val k = {from->len, (void *)from->b}, v;
	int rc = mdb_cursor_open(txn, s->dbi[STORE_DB_MESSAGES], &cur);
	if (rc != 0)
		return store_err(rc, "retention cursor");
	rc = mdb_cursor_get(cur, &k, &v, from->len ? MDB_SET_RANGE : MDB_FIRST);
	if (rc == 0) {
		size_t n = strnlen(k.mv_data, k.mv_size);
		if (n > STORE_RETENTION_ID_LEN - 1)
			n = STORE_RETENTION_ID_LEN - 1;
		memcpy(app, k.mv_data, n);
		app[n] = 0;
		*alen = n;
	}
	mdb_cursor_close(cur);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : store_err(rc, "retention");
	return 1;
}

/* One app's turn: its messages from where its last walk stopped, oldest first, up to its
 * later cutoff and at most w->max of them; each deleted or purged as its age says. */
static int store_prune_app(struct store *s, MDB_txn *txn, struct store_retention *st,
			   struct store_prune_walk *w)
{
	struct store_retention_app *e =
		st->apps ? bsearch(w->app, st->apps, st->n_apps, sizeof(*st->apps),
				   store_retention_app_cmp)
			 : NULL;
	int64_t cut = e ? e->cutoff_ms : st->cutoff_ms;
	int64_t pcut = e ? e->payload_cutoff_ms : st->payload_cutoff_ms;
	struct store_key from;
	int rc;

	if (!st->payload_purge || pcut <= cut)
		pcut = 0; /* no purge, or the message goes first anyway */
	w->n = 0;
	w->app_done = 0;
	w->after = e && e->after[0] ? e->after : NULL;
	w->walk_cutoff_ms = pcut > cut ? pcut : cut;
	if (w->walk_cutoff_ms <= 0) {
		w->app_done = 1; /* this app keeps everything */
	} else {
		if ((rc = store_key_pair(&from, w->app, w->after)) != HOOKD_OK ||
		    (rc = store_scan(s, txn, STORE_DB_MESSAGES, from.b, from.len, w->alen + 1,
				     store_prune_one, w)) != HOOKD_OK)
			return rc;
		if (w->n < w->max)
			w->app_done = 1; /* the scan ended at the app's last message */
	}
	for (size_t i = 0; i < w->n; i++) {
		int r = cut > 0 && w->times[i] < cut
				? store_prune_message(s, txn, st, w->app, w->msgs[i])
				: store_purge_message(s, txn, st, w->app, w->msgs[i]);
		if (r < 0)
			return r;
		if (cut > 0 && w->times[i] < cut)
			st->msgs_deleted += (size_t)r;
		else
			st->payloads_purged += (size_t)r;
	}
	if (e) {
		e->visited = 1;
		if (w->app_done || !w->n)
			e->next_after[0] = 0;
		else
			snprintf(e->next_after, sizeof(e->next_after), "%s", w->msgs[w->n - 1]);
	}
	if (!w->app_done)
		st->more = 1;
	return HOOKD_OK;
}

/* Gives the apps with messages their turns, from the one after start_after_app round to it
 * again, until the step's budget is used. */
static int store_prune(struct store *s, MDB_txn *txn, struct store_retention *st)
{
	struct store_prune_walk w = {0};
	struct store_key from = {0};
	size_t max = st->msg_max < STORE_RETENTION_MAX ? st->msg_max : STORE_RETENTION_MAX;
	size_t app_max = st->app_max && st->app_max < max ? st->app_max : max;
	const char *start = st->start_after_app;
	size_t chosen = 0;
	int wrapped = !start[0], rc = HOOKD_OK;

	w.msgs = calloc(STORE_RETENTION_MAX, sizeof(*w.msgs));
	w.times = calloc(STORE_RETENTION_MAX, sizeof(*w.times));
	if (!w.msgs || !w.times) {
		rc = HOOKD_ENOMEM;
		goto out;
	}
	if (start[0]) {
		size_t n = strlen(start);
		memcpy(from.b, start, n);
		from.b[n] = 1;
		from.len = n + 1;
	}
	while (chosen < max) {
		if ((rc = store_prune_next_app(s, txn, &from, w.app, &w.alen)) < 0)
			goto out;
		if (rc == 0 && !wrapped) {
			wrapped = 1; /* round from the first app to the one we began after */
			from.len = 0;
			continue;
		}
		if (rc == 0 || (wrapped && start[0] && strcmp(w.app, start) > 0)) {
			rc = HOOKD_OK;
			st->next_after_app[0] = 0; /* every app had its turn */
			goto out;
		}
		w.max = max - chosen < app_max ? max - chosen : app_max;
		if ((rc = store_prune_app(s, txn, st, &w)) != HOOKD_OK)
			goto out;
		chosen += w.n;
		snprintf(st->next_after_app, sizeof(st->next_after_app), "%s", w.app);
		memcpy(from.b, w.app, w.alen);
		from.b[w.alen] = 1;
		from.len = w.alen + 1;
	}
	st->more = 1; /* the budget ran out before every app had its turn */
out:
	free(w.msgs);
	free(w.times);
	return rc;
}

static int store_retention_apply(struct store *s, MDB_txn *txn, struct store_op *op)
{
	struct store_retention *st = &((struct store_retention_op *)op)->st;
	int rc;
	/* Applied again when its batch is replayed op by op: count only this application. */
	st->idem_deleted = st->msgs_deleted = st->payloads_purged = 0;
	st->more = 0;
	memcpy(st->next_after_app, st->start_after_app, sizeof(st->next_after_app));
	rc = store_scan(s, txn, STORE_DB_IDEM, NULL, 0, 0, store_idem_one, st);
	if (rc == HOOKD_OK && (st->cutoff_ms > 0 || st->payload_cutoff_ms > 0 || st->n_apps))
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
	st->payloads_purged = ro.st.payloads_purged;
	st->more = ro.st.more;
	memcpy(st->next_after_app, ro.st.next_after_app, sizeof(st->next_after_app));
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
