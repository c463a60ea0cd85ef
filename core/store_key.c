/* store_key.c - the store's key layouts (built and parsed in one place) and the one prefix
 * scan every walk of the store goes through. */
#include "store-t.h"

#include "err.h"

#include <string.h>

void store_be64(unsigned char out[8], uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char)(v >> (56 - 8 * i));
}

uint64_t store_get_be64(const unsigned char in[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | in[i];
	return v;
}

void store_be32(unsigned char out[4], uint32_t v)
{
	for (int i = 0; i < 4; i++)
		out[i] = (unsigned char)(v >> (24 - 8 * i));
}

uint32_t store_get_be32(const unsigned char in[4])
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = (v << 8) | in[i];
	return v;
}

/* Appends n bytes to k. */
static int store_key_add(struct store_key *k, const void *data, size_t n)
{
	if (n > sizeof(k->b) - k->len)
		return HOOKD_EINVAL;
	memcpy(k->b + k->len, data, n);
	k->len += n;
	return HOOKD_OK;
}

static int store_key_sep(struct store_key *k)
{
	static const unsigned char nul = 0;
	return store_key_add(k, &nul, 1);
}

int store_key_str(struct store_key *k, const char *s)
{
	k->len = 0;
	return store_key_add(k, s, strlen(s));
}

int store_key_pair(struct store_key *k, const char *a, const char *b)
{
	int rc;
	k->len = 0;
	if ((rc = store_key_add(k, a, strlen(a))) != HOOKD_OK || (rc = store_key_sep(k)) != HOOKD_OK)
		return rc;
	return b ? store_key_add(k, b, strlen(b)) : HOOKD_OK;
}

int store_key_attempt(struct store_key *k, const char *dlv_id, int with_attempt,
		      uint32_t attempt)
{
	unsigned char n[4];
	int rc;
	k->len = 0;
	if ((rc = store_key_add(k, dlv_id, strlen(dlv_id))) != HOOKD_OK ||
	    (rc = store_key_sep(k)) != HOOKD_OK)
		return rc;
	if (!with_attempt)
		return HOOKD_OK;
	store_be32(n, attempt);
	return store_key_add(k, n, sizeof(n));
}

int store_key_due(struct store_key *k, const char *app_id, const char *ep_id, int64_t at_ms,
		  const char *dlv_id)
{
	unsigned char t[8];
	int rc;
	if ((rc = store_key_pair(k, app_id, ep_id)) != HOOKD_OK || (rc = store_key_sep(k)) != HOOKD_OK)
		return rc;
	if (!dlv_id)
		return HOOKD_OK;
	store_be64(t, (uint64_t)at_ms);
	if ((rc = store_key_add(k, t, sizeof(t))) != HOOKD_OK)
		return rc;
	return store_key_add(k, dlv_id, strlen(dlv_id));
}

int store_key_epdlv(struct store_key *k, const char *app_id, const char *ep_id, int state,
		    const void *dlv_id, size_t idlen)
{
	unsigned char st = (unsigned char)state;
	int rc;
	if ((rc = store_key_pair(k, app_id, ep_id)) != HOOKD_OK || (rc = store_key_sep(k)) != HOOKD_OK ||
	    (rc = store_key_add(k, &st, 1)) != HOOKD_OK)
		return rc;
	return dlv_id ? store_key_add(k, dlv_id, idlen) : HOOKD_OK;
}

int store_key_dead(struct store_key *k, const char *app_id, int64_t dead_at_ms,
		   const char *dlv_id)
{
	unsigned char t[8];
	int rc;
	if ((rc = store_key_pair(k, app_id, NULL)) != HOOKD_OK)
		return rc;
	store_be64(t, (uint64_t)dead_at_ms);
	if ((rc = store_key_add(k, t, sizeof(t))) != HOOKD_OK)
		return rc;
	return store_key_add(k, dlv_id, strlen(dlv_id));
}

int store_key_text(const void *key, size_t klen, char *out, size_t outlen)
{
	if (outlen == 0 || klen > outlen - 1)
		return HOOKD_EINVAL;
	memcpy(out, key, klen);
	out[klen] = 0;
	return HOOKD_OK;
}

int store_key_split(const void *key, size_t klen, char out[STORE_KEY_MAX + 1], const char **a,
		    const char **b)
{
	size_t alen;
	if (store_key_text(key, klen, out, STORE_KEY_MAX + 1) != HOOKD_OK)
		return HOOKD_EINVAL;
	alen = strnlen(out, klen);
	if (alen == klen)
		return HOOKD_EINVAL;
	*a = out;
	*b = out + alen + 1;
	return HOOKD_OK;
}

int store_scan(struct store *s, MDB_txn *txn, enum store_db db, const void *from, size_t flen,
	       size_t plen, store_scan_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val k = {flen, (void *)from}, v;
	int rc = mdb_cursor_open(txn, s->dbi[db], &cur), out = HOOKD_OK;

	if (rc != 0)
		return store_err(rc, "cursor open");
	/* A zero-length key is not a valid MDB_SET_RANGE argument: from the start instead. */
	rc = mdb_cursor_get(cur, &k, &v, flen ? MDB_SET_RANGE : MDB_FIRST);
	while (rc == 0) {
		int r;
		if (plen && (k.mv_size < plen || memcmp(k.mv_data, from, plen) != 0))
			break;
		r = fn(arg, &k, &v);
		if (r < 0) {
			out = r;
			break;
		}
		if (r == STORE_SCAN_STOP)
			break;
		if (r == STORE_SCAN_DEL) {
			if ((rc = mdb_cursor_del(cur, 0)) != 0) {
				out = store_err(rc, "delete");
				break;
			}
			/* The cursor now sits on the next key; after deleting the very last one it
			 * has none (LMDB answers EINVAL or NOTFOUND): the scan is complete. */
			if (mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT) != 0)
				break;
			continue;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (out == HOOKD_OK && rc != 0 && rc != MDB_NOTFOUND)
		out = store_err(rc, "scan");
	mdb_cursor_close(cur);
	return out;
}

int store_scan_prefix(struct store *s, MDB_txn *txn, enum store_db db,
		      const struct store_key *prefix, store_scan_fn fn, void *arg)
{
	return store_scan(s, txn, db, prefix->b, prefix->len, prefix->len, fn, arg);
}

int store_get(struct store *s, MDB_txn *txn, enum store_db db, const struct store_key *k,
	      MDB_val *v)
{
	MDB_val key = {k->len, (void *)k->b};
	if (k->len == 0)
		return HOOKD_ENOTFOUND; /* no such key can be stored */
	return store_err(mdb_get(txn, s->dbi[db], &key, v), "get");
}

int store_del(struct store *s, MDB_txn *txn, enum store_db db, const struct store_key *k)
{
	MDB_val key = {k->len, (void *)k->b};
	int rc = k->len ? mdb_del(txn, s->dbi[db], &key, NULL) : MDB_NOTFOUND;
	return rc == MDB_NOTFOUND ? HOOKD_OK : store_err(rc, "delete");
}

int store_put(struct store *s, MDB_txn *txn, enum store_db db, const struct store_key *k,
	      const void *val, size_t vlen)
{
	MDB_val key = {k->len, (void *)k->b}, v = {vlen, (void *)val};
	if (k->len == 0)
		return HOOKD_EINVAL;
	return store_err(mdb_put(txn, s->dbi[db], &key, &v, 0), "put");
}
