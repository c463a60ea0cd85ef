/* janitor.c - expiring idempotency keys. */
#include "janitor.h"

#include "clock.h"
#include "delivery.h"
#include "err.h"
#include "log.h"
#include "ratelimit.h"
#include "id.h"
#include "record.h"
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

struct janitor_op {
	struct store_op op; /* first */
	struct janitor *j;
	int64_t now_ms;
	size_t max, deleted;
	int64_t cutoff_ms;  /* retention: messages created before this go; 0 = no pruning */
	size_t prune_max, pruned;
};

/* Deletes every key starting with prefix (plen bytes) in dbi. */
static int janitor_del_prefix(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t plen)
{
	MDB_cursor *cur;
	MDB_val k = {plen, (void *)prefix}, v;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		if (mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT) != 0)
			break; /* deleted the last key of the database */
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Deletes one message and all it owns if every delivery is settled. 1 if deleted. */
static int janitor_prune_message(struct store *s, MDB_txn *txn, const char *app_id,
				 const char *msg_id, const MDB_val *msg_key)
{
	char prefix[DELIVERY_ID_MAX], ids[64][ID_MAX + 24];
	unsigned char dead_at[64][8];
	int dead[64];
	size_t plen = delivery_id_prefix(msg_id, prefix), n = 0;
	MDB_cursor *cur;
	MDB_val k = {plen, prefix}, v, fk = *msg_key;
	int rc;

	/* A policy fan-out still to come counts as pending. */
	if (mdb_get(txn, s->fanout, &fk, &v) == 0)
		return 0;
	if (mdb_cursor_open(txn, s->deliveries, &cur) != 0)
		return 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct delivery_rec r;
		/* More deliveries than we track per message, or one still pending: keep it. */
		if (n == 64 || k.mv_size >= sizeof(ids[0]) ||
		    record_decode(v.mv_data, v.mv_size, &r) != HOOKD_OK || r.state == DLV_PENDING) {
			mdb_cursor_close(cur);
			return 0;
		}
		memcpy(ids[n], k.mv_data, k.mv_size);
		ids[n][k.mv_size] = 0;
		dead[n] = r.state == DLV_DEAD;
		store_be64(dead_at[n], (uint64_t)r.updated_ms);
		n++;
	}
	mdb_cursor_close(cur);
	for (size_t i = 0; i < n; i++) {
		size_t idlen = strlen(ids[i]), alen = strlen(app_id);
		char key[400];
		MDB_val dk = {idlen, ids[i]};
		/* attempts: dlv_id \0 be32 */
		memcpy(key, ids[i], idlen + 1);
		if (janitor_del_prefix(txn, s->attempts, key, idlen + 1) != 0)
			return -1;
		mdb_del(txn, s->bodies, &dk, NULL);
		if (dead[i] && alen + 9 + idlen <= sizeof(key)) {
			memcpy(key, app_id, alen);
			key[alen] = 0;
			memcpy(key + alen + 1, dead_at[i], 8);
			memcpy(key + alen + 9, ids[i], idlen);
			MDB_val xk = {alen + 9 + idlen, key};
			mdb_del(txn, s->dead, &xk, NULL);
		}
		if ((rc = mdb_del(txn, s->deliveries, &dk, NULL)) != 0 && rc != MDB_NOTFOUND)
			return -1;
	}
	fk = *msg_key;
	rc = mdb_del(txn, s->messages, &fk, NULL);
	return rc == 0 ? 1 : (rc == MDB_NOTFOUND ? 0 : -1);
}

/* Walks the messages of every app oldest first (ids sort by time within an app), pruning
 * settled ones created before the cutoff, up to max. */
static int janitor_prune_apply(struct store *s, MDB_txn *txn, struct janitor_op *jo)
{
	MDB_cursor *cur;
	MDB_val k, v;
	char keys[256][320];
	size_t klen[256], nk = 0;
	int rc = mdb_cursor_open(txn, s->messages, &cur);
	if (rc != 0)
		return store_err(rc, "janitor prune cursor");
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0 && nk < 256 && nk < jo->prune_max) {
		const char *app = k.mv_data;
		size_t alen = strnlen(app, k.mv_size);
		char mid[ID_MAX];
		if (alen + 1 < k.mv_size && k.mv_size - alen - 1 < sizeof(mid) && k.mv_size <= 320) {
			memcpy(mid, (char *)k.mv_data + alen + 1, k.mv_size - alen - 1);
			mid[k.mv_size - alen - 1] = 0;
			int64_t t = id_time_ms(mid, 4);
			if (t >= 0 && t >= jo->cutoff_ms) {
				/* The rest of this app is newer: skip to the next app (app \1 sorts
				 * after every app \0 ...). */
				char next[320];
				memcpy(next, app, alen);
				next[alen] = 1;
				MDB_val nk2 = {alen + 1, next};
				rc = mdb_cursor_get(cur, &nk2, &v, MDB_SET_RANGE);
				continue;
			}
			memcpy(keys[nk], k.mv_data, k.mv_size);
			klen[nk++] = k.mv_size;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	for (size_t i = 0; i < nk; i++) {
		char app[320], mid[ID_MAX];
		size_t alen = strnlen(keys[i], klen[i]);
		MDB_val mk = {klen[i], keys[i]};
		memcpy(app, keys[i], alen);
		app[alen] = 0;
		memcpy(mid, keys[i] + alen + 1, klen[i] - alen - 1);
		mid[klen[i] - alen - 1] = 0;
		int r = janitor_prune_message(s, txn, app, mid, &mk);
		if (r < 0)
			return HOOKD_ESTORE;
		jo->pruned += (size_t)r;
	}
	return HOOKD_OK;
}

static int janitor_idem_apply(struct store *s, MDB_txn *txn, struct janitor_op *jo)
{
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

static int janitor_apply(struct store *s, MDB_txn *txn, struct store_op *op)
{
	struct janitor_op *jo = (struct janitor_op *)op;
	int rc;
	/* Applied again when its batch is replayed op by op: count only this application. */
	jo->deleted = jo->pruned = 0;
	rc = janitor_idem_apply(s, txn, jo);
	if (rc == HOOKD_OK && jo->cutoff_ms > 0)
		rc = janitor_prune_apply(s, txn, jo);
	return rc;
}

size_t janitor_prune_now(struct store *s, int64_t cutoff_ms, size_t max)
{
	struct janitor_op jo;
	memset(&jo, 0, sizeof(jo));
	jo.op.apply = janitor_apply;
	jo.now_ms = 0; /* no idempotency key is expired "before 1970" */
	jo.max = max;
	jo.prune_max = max;
	jo.cutoff_ms = cutoff_ms;
	return store_write_now(s, &jo.op) == HOOKD_OK ? jo.pruned : 0;
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
	struct store_space sp;
	int more = 0, retry = 0;

	j->busy = 0;
	store_get_space(j->store, &sp);
	if (op->rc == HOOKD_OK) {
		if (jo->deleted)
			log_info("janitor: %zu expired idempotency keys deleted", jo->deleted);
		if (jo->pruned)
			log_info("janitor: %zu settled messages past retention deleted (store: %llu "
				 "of %llu bytes in use)", jo->pruned, (unsigned long long)sp.used_bytes,
				 (unsigned long long)sp.budget_bytes);
		/* A full slice means more may be waiting: go on soon instead of in 10 minutes. */
		more = jo->deleted == jo->max || (jo->prune_max && jo->pruned >= jo->prune_max / 2);
		if (jo->pruned && j->slice < JANITOR_PRUNE_SLICE)
			j->slice *= 2;
		uint64_t skipped;
		if (sp.full && !more && !jo->pruned &&
		    ratelimit_check(&j->full_log, clock_mono_ns() / 1000000, &skipped)) {
			log_warn("janitor: the store is full (%llu of %llu bytes in use, %llu reserved "
				 "for pending deliveries) and nothing is past retention yet (%s); "
				 "publishes get 507 until deliveries settle and age out, or "
				 "storage.map_size grows",
				 (unsigned long long)sp.used_bytes, (unsigned long long)sp.budget_bytes,
				 (unsigned long long)sp.reserved_bytes,
				 j->retention_days ? "storage.retention_days" : "retention is off");
		}
	} else if (op->rc == HOOKD_EFULL && j->slice > JANITOR_MIN_SLICE) {
		j->slice /= 2;
		retry = 1;
		log_warn("janitor: a retention step did not fit the full store; retrying with %zu "
			 "messages per step", j->slice);
	} else {
		log_warn("janitor: housekeeping step failed: %s; retrying in %d s",
			 hookd_strerror(op->rc), JANITOR_FULL_INTERVAL_S);
		retry = 1;
	}
	if (more || retry)
		j->last_pass_ns = 0; /* the next tick goes on at once */
	if (j->timer)
		janitor_arm(j, more || retry ? 1 : JANITOR_FULL_INTERVAL_S);
	free(jo);
}

static void janitor_tick(evutil_socket_t fd, short what, void *arg)
{
	struct janitor *j = arg;
	struct janitor_op *jo;
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
	jo = calloc(1, sizeof(*jo));
	if (!jo) {
		janitor_arm(j, JANITOR_FULL_INTERVAL_S);
		return;
	}
	jo->op.apply = janitor_apply;
	jo->op.done = janitor_done;
	jo->j = j;
	jo->now_ms = clock_now_ms();
	jo->max = JANITOR_SLICE;
	jo->prune_max = j->slice;
	if (j->retention_days)
		jo->cutoff_ms = jo->now_ms - (int64_t)j->retention_days * 86400000LL;
	j->busy = 1;
	store_submit(j->store, &jo->op);
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
