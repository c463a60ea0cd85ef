/* store_msg.c - messages, deliveries, attempts and policy output bodies: the records of what
 * was published and what became of it; and the publish op that stores a message. */
#include "store-t.h"

#include "err.h"
#include "record.h"

#include <stdlib.h>
#include <string.h>

/* ---- writes ---- */

int store_publish_add_message(struct store_batch *b, const char *app_id, const char *msg_id,
			      const char *envelope, size_t len)
{
	struct store_key k;
	int rc = store_key_pair(&k, app_id, msg_id);
	return rc ? rc : store_batch_add(b, STORE_DB_MESSAGES, k.b, k.len, envelope, len, 0);
}

int store_batch_put_delivery(struct store_batch *b, const char *dlv_id,
			     const struct delivery_rec *r)
{
	struct store_key k;
	unsigned char *enc;
	size_t len;
	int rc = store_key_str(&k, dlv_id);
	if (rc != HOOKD_OK || (rc = record_encode(r, &enc, &len)) != HOOKD_OK)
		return rc;
	rc = store_batch_add(b, STORE_DB_DELIVERIES, k.b, k.len, enc, len, 0);
	free(enc);
	return rc;
}

int store_batch_put_attempt(struct store_batch *b, const char *dlv_id, uint32_t attempt,
			    const char *json, size_t len)
{
	struct store_key k;
	int rc = store_key_attempt(&k, dlv_id, 1, attempt);
	return rc ? rc : store_batch_add(b, STORE_DB_ATTEMPTS, k.b, k.len, json, len, 0);
}

int store_batch_put_body(struct store_batch *b, const char *dlv_id, const char *data,
			 size_t len)
{
	struct store_key k;
	int rc = store_key_str(&k, dlv_id);
	return rc ? rc : store_batch_add(b, STORE_DB_BODIES, k.b, k.len, data, len, 0);
}

void store_publish_submit(struct store *s, struct store_batch *b,
			  void (*cb)(struct store_batch *b), void *arg)
{
	store_batch_submit(s, b, STORE_OP_PUBLISH, cb, arg);
}

const char *store_publish_duplicate(const struct store_batch *b)
{
	return b->dup_value;
}

/* ---- reads ---- */

/* A getter of one value under a built key; a key too long to build is absent. */
static int store_read_key(struct store_read *rd, enum store_db db, int build_rc,
			  const struct store_key *k, const char **data, size_t *len)
{
	MDB_val v;
	int rc;
	if (build_rc != HOOKD_OK)
		return HOOKD_ENOTFOUND;
	if ((rc = store_get(rd->s, rd->txn, db, k, &v)) != HOOKD_OK)
		return rc;
	*data = v.mv_data;
	*len = v.mv_size;
	return HOOKD_OK;
}

int store_read_message(struct store_read *rd, const char *app_id, const char *msg_id,
		       const char **envelope, size_t *len)
{
	struct store_key k;
	int rc = store_key_pair(&k, app_id, msg_id);
	return store_read_key(rd, STORE_DB_MESSAGES, rc, &k, envelope, len);
}

int store_read_body(struct store_read *rd, const char *dlv_id, const char **data, size_t *len)
{
	struct store_key k;
	int rc = store_key_str(&k, dlv_id);
	return store_read_key(rd, STORE_DB_BODIES, rc, &k, data, len);
}

int store_read_delivery(struct store_read *rd, const char *dlv_id, struct delivery_rec *out)
{
	struct store_key k;
	const char *data;
	size_t len;
	int rc = store_key_str(&k, dlv_id);
	rc = store_read_key(rd, STORE_DB_DELIVERIES, rc, &k, &data, &len);
	return rc ? rc : record_decode(data, len, out);
}

struct store_msg_walk {
	int (*msg_fn)(void *arg, const char *msg_id, const char *envelope, size_t len);
	int (*dlv_fn)(void *arg, const char *dlv_id, const struct delivery_rec *r);
	int (*att_fn)(void *arg, uint32_t attempt, const char *json, size_t len);
	void *arg;
	size_t plen;                /* the walk's prefix length */
	const struct store_key *after; /* messages: the key to skip (the "after" one) */
};

static int store_msg_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_msg_walk *w = arg;
	char id[STORE_KEY_MAX + 1];
	if (w->after && k->mv_size == w->after->len &&
	    memcmp(k->mv_data, w->after->b, k->mv_size) == 0)
		return STORE_SCAN_NEXT;
	store_key_text((const char *)k->mv_data + w->plen, k->mv_size - w->plen, id, sizeof(id));
	return w->msg_fn(w->arg, id, v->mv_data, v->mv_size);
}

int store_read_messages(struct store_read *rd, const char *app_id, const char *after_id,
			int (*fn)(void *arg, const char *msg_id, const char *envelope, size_t len),
			void *arg)
{
	struct store_key prefix, from;
	struct store_msg_walk w = {.msg_fn = fn, .arg = arg};
	int rc = store_key_pair(&prefix, app_id, NULL);
	if (rc == HOOKD_OK)
		rc = store_key_pair(&from, app_id, after_id);
	if (rc != HOOKD_OK)
		return HOOKD_OK; /* no such app can be stored: nothing to list */
	w.plen = prefix.len;
	w.after = after_id ? &from : NULL;
	return store_scan(rd->s, rd->txn, STORE_DB_MESSAGES, from.b, from.len, prefix.len,
			  store_msg_one, &w);
}

static int store_dlv_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_msg_walk *w = arg;
	struct delivery_rec r;
	char id[STORE_KEY_MAX + 1];
	if (record_decode(v->mv_data, v->mv_size, &r) != HOOKD_OK)
		return STORE_SCAN_NEXT;
	store_key_text(k->mv_data, k->mv_size, id, sizeof(id));
	return w->dlv_fn(w->arg, id, &r);
}

int store_read_deliveries(struct store_read *rd, const char *id_prefix,
			  int (*fn)(void *arg, const char *dlv_id, const struct delivery_rec *r),
			  void *arg)
{
	struct store_key prefix;
	struct store_msg_walk w = {.dlv_fn = fn, .arg = arg};
	if (store_key_str(&prefix, id_prefix) != HOOKD_OK)
		return HOOKD_OK;
	return store_scan_prefix(rd->s, rd->txn, STORE_DB_DELIVERIES, &prefix, store_dlv_one, &w);
}

static int store_att_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_msg_walk *w = arg;
	uint32_t n = 0;
	if (k->mv_size == w->plen + 4)
		n = store_get_be32((const unsigned char *)k->mv_data + w->plen);
	return w->att_fn(w->arg, n, v->mv_data, v->mv_size);
}

int store_read_attempts(struct store_read *rd, const char *dlv_id,
			int (*fn)(void *arg, uint32_t attempt, const char *json, size_t len),
			void *arg)
{
	struct store_key prefix;
	struct store_msg_walk w = {.att_fn = fn, .arg = arg};
	if (store_key_attempt(&prefix, dlv_id, 0, 0) != HOOKD_OK)
		return HOOKD_OK;
	w.plen = prefix.len;
	return store_scan_prefix(rd->s, rd->txn, STORE_DB_ATTEMPTS, &prefix, store_att_one, &w);
}
