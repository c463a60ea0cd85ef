/* store_index.c - the secondary indexes: the due index the scheduler loads, the dead-letter
 * index the API lists, idempotency keys with their expiry, and the fan-out markers that
 * stand for policy deliveries not made yet. */
#include "store-t.h"

#include "err.h"

#include <string.h>

int store_batch_put_due(struct store_batch *b, int64_t at_ms, const char *dlv_id)
{
	struct store_key k;
	int rc = store_key_due(&k, at_ms, dlv_id);
	return rc ? rc : store_batch_add(b, STORE_DB_DUE, k.b, k.len, "", 0, 0);
}

int store_batch_del_due(struct store_batch *b, int64_t at_ms, const char *dlv_id)
{
	struct store_key k;
	int rc = store_key_due(&k, at_ms, dlv_id);
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
	char id[STORE_KEY_MAX + 1];
	if (k->mv_size <= 8)
		return STORE_SCAN_NEXT;
	store_key_text((const char *)k->mv_data + 8, k->mv_size - 8, id, sizeof(id));
	return w->due_fn(w->arg, (int64_t)store_get_be64(k->mv_data), id);
}

int store_read_due(struct store_read *rd,
		   int (*fn)(void *arg, int64_t at_ms, const char *dlv_id), void *arg)
{
	struct store_index_walk w = {.due_fn = fn, .arg = arg};
	return store_scan(rd->s, rd->txn, STORE_DB_DUE, NULL, 0, 0, store_due_one, &w);
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
