/* store_index.c - the secondary indexes: the due index the scheduler loads, the dead-letter
 * index the API lists, idempotency keys with their expiry, and the fan-out markers that
 * stand for policy deliveries not made yet. */
#include "store-t.h"

#include "err.h"
#include "record.h"

#include <stdlib.h>

#include <string.h>

int store_batch_put_due(struct store_batch *b, const char *app_id, const char *ep_id,
			int64_t at_ms, const char *dlv_id)
{
	struct store_key k;
	int rc = store_key_due(&k, app_id, ep_id, at_ms, dlv_id);
	return rc ? rc : store_batch_add(b, STORE_DB_DUE, k.b, k.len, "", 0, 0);
}

int store_batch_del_due(struct store_batch *b, const char *app_id, const char *ep_id,
			int64_t at_ms, const char *dlv_id)
{
	struct store_key k;
	int rc = store_key_due(&k, app_id, ep_id, at_ms, dlv_id);
	return rc ? rc : store_batch_add(b, STORE_DB_DUE, k.b, k.len, NULL, 0, 1);
}

int store_batch_put_dead(struct store_batch *b, const char *app_id, int64_t dead_at_ms,
			 const char *dlv_id)
{
	struct store_key k;
	int rc = store_key_dead(&k, app_id, dead_at_ms, dlv_id);
	return rc ? rc : store_batch_add(b, STORE_DB_DEAD, k.b, k.len, "", 0, 0);
}

int store_batch_put_fanout_marker(struct store_batch *b, const char *app_id,
				  const char *msg_id)
{
	struct store_key k;
	int rc = store_key_pair(&k, app_id, msg_id);
	return rc ? rc : store_batch_add(b, STORE_DB_FANOUT, k.b, k.len, "", 0, 0);
}

int store_batch_del_fanout_marker(struct store_batch *b, const char *app_id,
				  const char *msg_id)
{
	struct store_key k;
	int rc = store_key_pair(&k, app_id, msg_id);
	return rc ? rc : store_batch_add(b, STORE_DB_FANOUT, k.b, k.len, NULL, 0, 1);
}

int store_publish_set_idempotency(struct store_batch *b, const char *app_id, const char *key,
				  const char *msg_id, int64_t now_ms, int64_t expires_ms)
{
	struct store_key k;
	unsigned char val[8 + STORE_KEY_MAX];
	size_t n = strlen(msg_id);
	int rc = store_key_pair(&k, app_id, key);
	if (rc != HOOKD_OK)
		return rc;
	if (n > STORE_KEY_MAX)
		return HOOKD_EINVAL;
	store_be64(val, (uint64_t)expires_ms);
	memcpy(val + 8, msg_id, n);
	store_batch_set_guard(b, STORE_DB_IDEM, k.b, k.len, now_ms);
	return store_batch_add(b, STORE_DB_IDEM, k.b, k.len, val, 8 + n, 0);
}

/* ---- reads ---- */

struct store_index_walk {
	int (*due_fn)(void *arg, int64_t at_ms, const char *dlv_id);
	int (*dead_fn)(void *arg, int64_t dead_at_ms, const char *dlv_id);
	int (*fan_fn)(void *arg, const char *app_id, const char *msg_id);
	void *arg;
	size_t plen;
};

static int store_due_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_index_walk *w = arg;
	const unsigned char *p = k->mv_data;
	char id[STORE_KEY_MAX + 1];
	if (k->mv_size <= w->plen + 8)
		return STORE_SCAN_NEXT;
	store_key_text(p + w->plen + 8, k->mv_size - w->plen - 8, id, sizeof(id));
	return w->due_fn(w->arg, (int64_t)store_get_be64(p + w->plen), id);
}

int store_read_due(struct store_read *rd, const char *app_id, const char *ep_id,
		   int (*fn)(void *arg, int64_t at_ms, const char *dlv_id), void *arg)
{
	struct store_key prefix;
	struct store_index_walk w = {.due_fn = fn, .arg = arg};
	if (store_key_due(&prefix, app_id, ep_id, 0, NULL) != HOOKD_OK)
		return HOOKD_OK;
	w.plen = prefix.len;
	return store_scan_prefix(rd->s, rd->txn, STORE_DB_DUE, &prefix, store_due_one, &w);
}

/* The first key at or after the scan's start: the next endpoint's prefix. */
struct store_due_seek {
	struct store_key next; /* app \0 ep \0 of the key found; len 0: none */
};

static int store_due_seek_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_due_seek *sk = arg;
	const unsigned char *p = k->mv_data, *a_end, *e_end;
	size_t len;
	(void)v;
	a_end = memchr(p, 0, k->mv_size);
	e_end = a_end ? memchr(a_end + 1, 0, k->mv_size - (size_t)(a_end + 1 - p)) : NULL;
	if (!e_end) {
		/* Not app \0 ep \0 ...: stepped over (the key and one byte more sorts after it;
		 * a stray key of the largest size ends the walk). */
		if (k->mv_size >= STORE_KEY_MAX)
			return STORE_SCAN_STOP;
		memcpy(sk->next.b, p, k->mv_size);
		sk->next.b[k->mv_size] = 0;
		sk->next.len = k->mv_size + 1;
		return STORE_SCAN_STOP;
	}
	len = (size_t)(e_end - p) + 1;
	memcpy(sk->next.b, p, len);
	sk->next.len = len;
	return STORE_SCAN_STOP;
}

int store_read_pending_total(struct store_read *rd, uint64_t *out)
{
	MDB_stat st;
	int rc = mdb_stat(rd->txn, rd->s->dbi[STORE_DB_DUE], &st);
	*out = rc == 0 ? st.ms_entries : 0;
	return store_err(rc, "stat due");
}

int store_read_due_endpoints(struct store_read *rd,
			     int (*fn)(void *arg, const char *app_id, const char *ep_id),
			     void *arg)
{
	unsigned char from[STORE_KEY_MAX];
	size_t flen = 0;
	for (;;) {
		struct store_due_seek sk = {0};
		char buf[STORE_KEY_MAX + 1];
		const char *app_id, *ep_id;
		int rc = store_scan(rd->s, rd->txn, STORE_DB_DUE, from, flen, 0, store_due_seek_one,
				    &sk);
		if (rc != HOOKD_OK)
			return rc;
		if (!sk.next.len)
			return HOOKD_OK;
		/* Keys of this endpoint all continue with \0 after ep: the same prefix ending in
		 * \1 instead sorts after every one of them and before the next endpoint's. */
		memcpy(from, sk.next.b, sk.next.len);
		flen = sk.next.len;
		from[flen - 1] = 1;
		if (store_key_split(sk.next.b, sk.next.len - 1, buf, &app_id, &ep_id) != HOOKD_OK ||
		    !*app_id || !*ep_id)
			continue; /* not an endpoint's prefix (a stray key): skipped */
		if ((rc = fn(arg, app_id, ep_id)) != 0)
			return rc == STORE_WALK_STOP ? HOOKD_OK : rc;
	}
}

/* ---- the layout before per-endpoint due keys ----
 * be64(at_ms) dlv_id: times in ms since 1970 are below 2^56, so such a key starts with a
 * zero byte, which no app id does. */
#define STORE_MIGRATE_CHUNK 4096

struct store_migrate {
	size_t n;
	struct store_key keys[STORE_MIGRATE_CHUNK];
};

static int store_migrate_collect(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_migrate *m = arg;
	(void)v;
	if (k->mv_size <= 8 || ((const unsigned char *)k->mv_data)[0] != 0 ||
	    m->n == STORE_MIGRATE_CHUNK)
		return STORE_SCAN_STOP;
	memcpy(m->keys[m->n].b, k->mv_data, k->mv_size);
	m->keys[m->n++].len = k->mv_size;
	return STORE_SCAN_NEXT;
}

int store_index_migrate(struct store *s, MDB_txn *txn, size_t *moved)
{
	struct store_migrate *m = malloc(sizeof(*m));
	int rc = HOOKD_OK;
	*moved = 0;
	if (!m)
		return HOOKD_ENOMEM;
	for (;;) {
		m->n = 0;
		if ((rc = store_scan(s, txn, STORE_DB_DUE, NULL, 0, 0, store_migrate_collect, m)) !=
			    HOOKD_OK ||
		    m->n == 0)
			break;
		for (size_t i = 0; i < m->n && rc == HOOKD_OK; i++) {
			struct store_key dk, nk;
			struct delivery_rec r;
			char id[STORE_KEY_MAX + 1];
			MDB_val v;
			const unsigned char *p = m->keys[i].b;
			int64_t at = (int64_t)store_get_be64(p);
			store_key_text(p + 8, m->keys[i].len - 8, id, sizeof(id));
			/* A pending record keeps its entry under its endpoint; anything else (gone,
			 * settled, rescheduled) was a stale entry and just goes. */
			if (store_key_str(&dk, id) == HOOKD_OK &&
			    store_get(s, txn, STORE_DB_DELIVERIES, &dk, &v) == HOOKD_OK &&
			    record_decode(v.mv_data, v.mv_size, &r) == HOOKD_OK &&
			    r.state == DLV_PENDING && r.next_at_ms == at &&
			    store_key_due(&nk, r.app_id, r.ep_id, at, id) == HOOKD_OK) {
				if ((rc = store_put(s, txn, STORE_DB_DUE, &nk, "", 0)) != HOOKD_OK)
					break;
				(*moved)++;
			}
			rc = store_del(s, txn, STORE_DB_DUE, &m->keys[i]);
		}
		if (rc != HOOKD_OK)
			break;
	}
	free(m);
	return rc;
}
static int store_dead_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_index_walk *w = arg;
	const unsigned char *p = k->mv_data;
	char id[STORE_KEY_MAX + 1];
	/* app \0 be64 id, with a non-empty id; anything shorter ends the listing. */
	if (k->mv_size <= w->plen + 8)
		return STORE_SCAN_STOP;
	store_key_text(p + w->plen + 8, k->mv_size - w->plen - 8, id, sizeof(id));
	return w->dead_fn(w->arg, (int64_t)store_get_be64(p + w->plen), id);
}

int store_read_dead(struct store_read *rd, const char *app_id,
		    int (*fn)(void *arg, int64_t dead_at_ms, const char *dlv_id), void *arg)
{
	struct store_key prefix;
	struct store_index_walk w = {.dead_fn = fn, .arg = arg};
	if (store_key_pair(&prefix, app_id, NULL) != HOOKD_OK)
		return HOOKD_OK;
	w.plen = prefix.len;
	return store_scan_prefix(rd->s, rd->txn, STORE_DB_DEAD, &prefix, store_dead_one, &w);
}

static int store_fanout_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_index_walk *w = arg;
	char buf[STORE_KEY_MAX + 1];
	const char *app_id, *msg_id;
	if (store_key_split(k->mv_data, k->mv_size, buf, &app_id, &msg_id) != HOOKD_OK)
		return STORE_SCAN_NEXT;
	return w->fan_fn(w->arg, app_id, msg_id);
}

int store_read_fanout_markers(struct store_read *rd,
			      int (*fn)(void *arg, const char *app_id, const char *msg_id),
			      void *arg)
{
	struct store_index_walk w = {.fan_fn = fn, .arg = arg};
	return store_scan(rd->s, rd->txn, STORE_DB_FANOUT, NULL, 0, 0, store_fanout_one, &w);
}
