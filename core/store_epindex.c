/* store_epindex.c - the per-endpoint delivery index (epdlv) and counts (epcount): which of an
 * endpoint's deliveries are in which state, and how many. Both are derived from the delivery
 * records and changed in the transaction that writes or deletes a record, so they are exact
 * at every commit, survive a kill -9 like the records do, and need nothing from callers:
 * every write of the deliveries database goes through store_delivery_put/del. A data
 * directory from before them is indexed when opened (store_epindex_rebuild). */
#include "store-t.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "record.h"

#include <stdlib.h>
#include <string.h>

/* epcount values: STORE_EPCOUNT_SLOTS be64 counts indexed by delivery_state (the in-flight
 * slot stays 0: in flight is stored as pending). A shorter value (fewer states, an older
 * layout) reads as zeros past its end; a state added later appends a slot. */
_Static_assert(STORE_EPCOUNT_SLOTS == DLV_DEAD + 1, "one epcount slot per delivery_state");
/* Records indexed per transaction by a rebuild: bounded so one commit's dirty pages stay far
 * below LMDB's per-transaction limit (~128k pages) and a crash loses at most one chunk of
 * work (the marker says where to resume). 8192 records add ~600 KiB of epdlv keys. */
#define STORE_EPINDEX_CHUNK 8192

/* The epcount key of an unfinished rebuild: app ids are never empty, so no endpoint's key
 * starts with a NUL. Its value is the last delivery id indexed (empty: none yet). */
static const unsigned char store_rebuild_key[] = {0, 'r', 'e', 'b', 'u', 'i', 'l', 'd'};

/* What one record contributes: its entry in epdlv and the endpoint's key in epcount. */
struct store_epentry {
	int state;
	struct store_key dk, ck;
};

/* The index's state for a stored one: in flight is pending; -1 when not a delivery_state. */
static int store_epindex_state(int state)
{
	if (state == DLV_INFLIGHT)
		return DLV_PENDING;
	return state >= 0 && state < STORE_EPCOUNT_SLOTS ? state : -1;
}

/* The entry of record val (delivery id id/idlen), copied out of val: HOOKD_EINVAL when the
 * record does not decode or its keys cannot be built (such a record is not indexed). */
static int store_epentry_of(const void *val, size_t vlen, const void *id, size_t idlen,
			    struct store_epentry *e)
{
	struct delivery_rec r;
	if (record_decode(val, vlen, &r) != HOOKD_OK || (e->state = store_epindex_state(r.state)) < 0 ||
	    store_key_epdlv(&e->dk, r.app_id, r.ep_id, e->state, id, idlen) != HOOKD_OK ||
	    store_key_pair(&e->ck, r.app_id, r.ep_id) != HOOKD_OK)
		return HOOKD_EINVAL;
	return HOOKD_OK;
}

static void store_epcount_parse(const MDB_val *v, uint64_t n[STORE_EPCOUNT_SLOTS])
{
	size_t have = v->mv_size / 8;
	for (size_t i = 0; i < STORE_EPCOUNT_SLOTS; i++)
		n[i] = i < have ? store_get_be64((const unsigned char *)v->mv_data + 8 * i) : 0;
}

/* ---- the count changes of the open write transaction ----
 * Summed per endpoint while the transaction's ops apply and written once per endpoint just
 * before it commits (store_epindex_flush): a commit of many outcomes for one endpoint reads
 * and writes its counts once, not once per delivery. The table lives in struct store (the
 * writer's, or the caller's of store_write_now before the writer starts): entries in
 * insertion order, and open addressing over them by a hash of the key. */

static uint32_t store_epd_hash(const struct store_key *k)
{
	uint32_t h = 2166136261u; /* FNV-1a: short keys, no adversary (ids are validated) */
	for (size_t i = 0; i < k->len; i++)
		h = (h ^ k->b[i]) * 16777619u;
	return h;
}

/* Doubles the slots (at least 64) and places every entry again. */
static int store_epd_grow(struct store *s)
{
	size_t slots = s->epd_slots ? s->epd_slots * 2 : 64;
	uint32_t *idx = calloc(slots, sizeof(*idx));
	if (!idx)
		return HOOKD_ENOMEM;
	for (size_t i = 0; i < s->epd_n; i++) {
		size_t h = store_epd_hash(&s->epd[i].ck) & (slots - 1);
		while (idx[h])
			h = (h + 1) & (slots - 1);
		idx[h] = (uint32_t)i + 1;
	}
	free(s->epd_idx);
	s->epd_idx = idx;
	s->epd_slots = slots;
	return HOOKD_OK;
}

/* The entry of endpoint ck, added (zero) if new; NULL when out of memory. Valid until the
 * next call. */
static struct store_epdelta *store_epd_find(struct store *s, const struct store_key *ck)
{
	size_t h;
	if (2 * (s->epd_n + 1) > s->epd_slots && store_epd_grow(s) != HOOKD_OK)
		return NULL;
	for (h = store_epd_hash(ck) & (s->epd_slots - 1); s->epd_idx[h];
	     h = (h + 1) & (s->epd_slots - 1)) {
		struct store_epdelta *e = &s->epd[s->epd_idx[h] - 1];
		if (e->ck.len == ck->len && memcmp(e->ck.b, ck->b, ck->len) == 0)
			return e;
	}
	if (s->epd_n == s->epd_cap) {
		size_t cap = s->epd_cap ? s->epd_cap * 2 : 16;
		struct store_epdelta *grown = realloc(s->epd, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		s->epd = grown;
		s->epd_cap = cap;
	}
	memset(&s->epd[s->epd_n], 0, sizeof(s->epd[0]));
	s->epd[s->epd_n].ck = *ck;
	s->epd_idx[h] = (uint32_t)++s->epd_n;
	return &s->epd[s->epd_n - 1];
}

/* Adds delta to one state's count of the endpoint ck, in the transaction's table. Out of
 * memory is a store error: the batch is then applied again op by op, so the op's writes
 * so far never commit without their counts. */
static int store_epcount_add(struct store *s, MDB_txn *txn, const struct store_key *ck,
			     int state, int delta)
{
	struct store_epdelta *e = store_epd_find(s, ck);
	(void)txn;
	if (!e) {
		log_error("store: out of memory for the endpoint counts of a transaction");
		return HOOKD_ESTORE;
	}
	e->d[state] += delta;
	return HOOKD_OK;
}

/* Writes one endpoint's summed changes; an endpoint whose counts are all zero has no key
 * (its deliveries are all gone). */
static int store_epcount_write(struct store *s, MDB_txn *txn, const struct store_epdelta *e)
{
	uint64_t n[STORE_EPCOUNT_SLOTS] = {0}, any = 0;
	unsigned char out[8 * STORE_EPCOUNT_SLOTS];
	int changed = 0;
	MDB_val v;
	int rc;
	for (size_t i = 0; i < STORE_EPCOUNT_SLOTS; i++)
		changed |= e->d[i] != 0;
	if (!changed)
		return HOOKD_OK; /* moved from one state and back, or added and deleted */
	rc = store_get(s, txn, STORE_DB_EPCOUNT, &e->ck, &v);
	if (rc == HOOKD_OK)
		store_epcount_parse(&v, n);
	else if (rc != HOOKD_ENOTFOUND)
		return rc;
	for (size_t i = 0; i < STORE_EPCOUNT_SLOTS; i++) {
		/* Never below zero: a count and its entries change together, so this only guards
		 * against a damaged value turning into 2^64 - 1. */
		n[i] = e->d[i] < 0 && (uint64_t)-e->d[i] > n[i] ? 0 : n[i] + (uint64_t)e->d[i];
		store_be64(out + 8 * i, n[i]);
		any |= n[i];
	}
	if (!any)
		return store_del(s, txn, STORE_DB_EPCOUNT, &e->ck);
	return store_put(s, txn, STORE_DB_EPCOUNT, &e->ck, out, sizeof(out));
}

int store_epindex_flush(struct store *s, MDB_txn *txn)
{
	int rc = HOOKD_OK;
	for (size_t i = 0; i < s->epd_n && rc == HOOKD_OK; i++)
		rc = store_epcount_write(s, txn, &s->epd[i]);
	store_epindex_forget(s);
	return rc;
}

void store_epindex_forget(struct store *s)
{
	if (!s->epd_n)
		return;
	s->epd_n = 0;
	memset(s->epd_idx, 0, s->epd_slots * sizeof(*s->epd_idx));
}

static int store_epindex_add(struct store *s, MDB_txn *txn, const struct store_epentry *e)
{
	int rc = store_put(s, txn, STORE_DB_EPDLV, &e->dk, "", 0);
	return rc ? rc : store_epcount_add(s, txn, &e->ck, e->state, 1);
}

static int store_epindex_remove(struct store *s, MDB_txn *txn, const struct store_epentry *e)
{
	int rc = store_del(s, txn, STORE_DB_EPDLV, &e->dk);
	return rc ? rc : store_epcount_add(s, txn, &e->ck, e->state, -1);
}

/* The entry of the record stored under key: *has is 0 (none), 1 (stored, does not decode:
 * not indexed) or 2 (e filled). With cur, the cursor is left on the record (its write then
 * needs no second search). */
static int store_epentry_stored(struct store *s, MDB_txn *txn, MDB_cursor *cur, const void *key,
				size_t klen, struct store_epentry *e, int *has)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc = cur ? mdb_cursor_get(cur, &k, &v, MDB_SET_KEY)
		     : mdb_get(txn, s->dbi[STORE_DB_DELIVERIES], &k, &v);
	*has = 0;
	if (rc == MDB_NOTFOUND)
		return HOOKD_OK;
	if (rc != 0)
		return store_err(rc, "delivery read");
	*has = 1 + (store_epentry_of(v.mv_data, v.mv_size, key, klen, e) == HOOKD_OK);
	return HOOKD_OK;
}

int store_delivery_put(struct store *s, MDB_txn *txn, const void *key, size_t klen,
		       const void *val, size_t vlen)
{
	struct store_epentry old, cur;
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	MDB_cursor *c;
	int has_old, has_cur, rc;

	/* Read and rewritten through one cursor: the write replaces the record the read found
	 * without searching the tree again (most writes are rewrites: outcomes, retries). */
	if ((rc = mdb_cursor_open(txn, s->dbi[STORE_DB_DELIVERIES], &c)) != 0)
		return store_err(rc, "delivery cursor");
	if ((rc = store_epentry_stored(s, txn, c, key, klen, &old, &has_old)) != HOOKD_OK)
		goto out;
	has_cur = store_epentry_of(val, vlen, key, klen, &cur) == HOOKD_OK;
	/* Most writes are a retry's rewrite in the same state: the index does not move. The
	 * writes below go to other databases: the cursor stays on the record. */
	if (!(has_old == 2 && has_cur && old.dk.len == cur.dk.len &&
	      memcmp(old.dk.b, cur.dk.b, cur.dk.len) == 0)) {
		if (has_old == 2 && (rc = store_epindex_remove(s, txn, &old)) != HOOKD_OK)
			goto out;
		if (has_cur && (rc = store_epindex_add(s, txn, &cur)) != HOOKD_OK)
			goto out;
	}
	rc = store_err(mdb_cursor_put(c, &k, &v, has_old ? MDB_CURRENT : 0), "delivery write");
out:
	mdb_cursor_close(c);
	return rc;
}

int store_delivery_del(struct store *s, MDB_txn *txn, const void *key, size_t klen)
{
	struct store_epentry old;
	MDB_val k = {klen, (void *)key};
	int has_old, rc;

	if ((rc = store_epentry_stored(s, txn, NULL, key, klen, &old, &has_old)) != HOOKD_OK)
		return rc;
	if (has_old == 2 && (rc = store_epindex_remove(s, txn, &old)) != HOOKD_OK)
		return rc;
	rc = mdb_del(txn, s->dbi[STORE_DB_DELIVERIES], &k, NULL);
	return rc == MDB_NOTFOUND ? HOOKD_OK : store_err(rc, "delivery delete");
}

/* ---- the rebuild of a data directory from before the index ---- */

int store_epindex_open(struct store *s, MDB_txn *txn, int absent)
{
	struct store_key mk;
	MDB_stat st;
	int rc;
	if (!absent)
		return HOOKD_OK;
	/* One of the two may exist without the other only if something went wrong: both are
	 * rebuilt from the records, from empty. */
	if ((rc = mdb_drop(txn, s->dbi[STORE_DB_EPDLV], 0)) != 0 ||
	    (rc = mdb_drop(txn, s->dbi[STORE_DB_EPCOUNT], 0)) != 0 ||
	    (rc = mdb_stat(txn, s->dbi[STORE_DB_DELIVERIES], &st)) != 0)
		return store_err(rc, "endpoint index");
	if (st.ms_entries == 0)
		return HOOKD_OK; /* a new data directory: nothing to index */
	memcpy(mk.b, store_rebuild_key, sizeof(store_rebuild_key));
	mk.len = sizeof(store_rebuild_key);
	return store_put(s, txn, STORE_DB_EPCOUNT, &mk, "", 0);
}

/* One chunk of a rebuild: the records after the marker's id. */
struct store_rebuild {
	struct store *s;
	MDB_txn *txn;
	size_t n;
	const MDB_val *after; /* the last id of the previous chunk (skipped), or NULL */
	struct store_key last;
};

static int store_rebuild_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_rebuild *rb = arg;
	struct store_epentry e;
	int rc;
	if (rb->after && k->mv_size == rb->after->mv_size &&
	    memcmp(k->mv_data, rb->after->mv_data, k->mv_size) == 0)
		return STORE_SCAN_NEXT;
	if (rb->n == STORE_EPINDEX_CHUNK || k->mv_size > sizeof(rb->last.b))
		return STORE_SCAN_STOP;
	/* Copied before the writes below: they may move the pages k points into. */
	memcpy(rb->last.b, k->mv_data, k->mv_size);
	rb->last.len = k->mv_size;
	rb->n++;
	if (store_epentry_of(v->mv_data, v->mv_size, rb->last.b, rb->last.len, &e) != HOOKD_OK)
		return STORE_SCAN_NEXT; /* not a record (not indexed, like at write time) */
	rc = store_epindex_add(rb->s, rb->txn, &e);
	return rc ? rc : STORE_SCAN_NEXT;
}

/* One transaction: indexes the next chunk and moves the marker (or removes it when the
 * records are done). *more: 0 when there was no marker or the rebuild finished. */
static int store_rebuild_chunk(struct store *s, size_t *done, int *more)
{
	struct store_rebuild rb = {.s = s};
	struct store_key mk;
	unsigned char from[STORE_KEY_MAX];
	MDB_val mv;
	size_t flen;
	int rc = mdb_txn_begin(s->env, NULL, 0, &rb.txn);
	*more = 0;
	if (rc != 0)
		return store_err(rc, "rebuild begin");
	memcpy(mk.b, store_rebuild_key, sizeof(store_rebuild_key));
	mk.len = sizeof(store_rebuild_key);
	if ((rc = store_get(s, rb.txn, STORE_DB_EPCOUNT, &mk, &mv)) != HOOKD_OK) {
		mdb_txn_abort(rb.txn);
		return rc == HOOKD_ENOTFOUND ? HOOKD_OK : rc;
	}
	flen = mv.mv_size < sizeof(from) ? mv.mv_size : sizeof(from);
	memcpy(from, mv.mv_data, flen);
	mv.mv_data = from;
	mv.mv_size = flen;
	rb.after = flen ? &mv : NULL;
	rc = store_scan(s, rb.txn, STORE_DB_DELIVERIES, from, flen, 0, store_rebuild_one, &rb);
	if (rc == HOOKD_OK) {
		*more = rb.n == STORE_EPINDEX_CHUNK;
		rc = *more ? store_put(s, rb.txn, STORE_DB_EPCOUNT, &mk, rb.last.b, rb.last.len)
			   : store_del(s, rb.txn, STORE_DB_EPCOUNT, &mk);
	}
	if (rc == HOOKD_OK)
		rc = store_epindex_flush(s, rb.txn);
	if (rc != HOOKD_OK) {
		store_epindex_forget(s);
		mdb_txn_abort(rb.txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(rb.txn)) != 0)
		return store_err(rc, "rebuild commit");
	s->txn_commits++;
	*done += rb.n;
	return HOOKD_OK;
}

int store_epindex_rebuild(struct store *s)
{
	int64_t t0 = clock_mono_ns();
	size_t done = 0;
	int more = 1, rc = HOOKD_OK, first = 1;
	MDB_stat st;
	MDB_txn *txn;

	while (more) {
		if ((rc = store_rebuild_chunk(s, &done, &more)) != HOOKD_OK)
			return rc;
		if (first && !more && done == 0)
			return HOOKD_OK; /* no rebuild marked */
		if (first)
			log_info("store: indexing deliveries per endpoint (a data directory from "
				 "before the endpoint index; resumed where it stopped if interrupted)");
		first = 0;
	}
	st.ms_entries = 0;
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0) {
		mdb_stat(txn, s->dbi[STORE_DB_EPCOUNT], &st);
		mdb_txn_abort(txn);
	}
	log_info("store: endpoint index rebuilt: %zu deliveries of %zu endpoints in %lld ms", done,
		 (size_t)st.ms_entries, (long long)((clock_mono_ns() - t0) / 1000000));
	return rc;
}

/* ---- reads ---- */

int store_read_endpoint_counts(struct store_read *rd, const char *app_id, const char *ep_id,
			       struct store_ep_counts *out)
{
	uint64_t n[STORE_EPCOUNT_SLOTS] = {0};
	struct store_key k;
	MDB_val v;
	int rc = HOOKD_ENOTFOUND;
	if (store_key_pair(&k, app_id, ep_id) == HOOKD_OK)
		rc = store_get(rd->s, rd->txn, STORE_DB_EPCOUNT, &k, &v);
	if (rc == HOOKD_OK)
		store_epcount_parse(&v, n);
	else if (rc != HOOKD_ENOTFOUND)
		return rc;
	out->pending = n[DLV_PENDING];
	out->succeeded = n[DLV_SUCCEEDED];
	out->dead = n[DLV_DEAD];
	out->filtered = n[DLV_FILTERED];
	return HOOKD_OK;
}

struct store_epdlv_walk {
	struct store_read *rd;
	size_t plen;
	const struct store_key *after; /* the key to skip (the "after" one), or NULL */
	int (*fn)(void *arg, const char *dlv_id, const struct delivery_rec *r);
	void *arg;
};

static int store_epdlv_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_epdlv_walk *w = arg;
	char id[STORE_KEY_MAX + 1];
	struct delivery_rec r;
	struct store_key dk;
	MDB_val dv;
	int rc;
	(void)v;
	if (w->after && k->mv_size == w->after->len &&
	    memcmp(k->mv_data, w->after->b, k->mv_size) == 0)
		return STORE_SCAN_NEXT;
	store_key_text((const char *)k->mv_data + w->plen, k->mv_size - w->plen, id, sizeof(id));
	if (store_key_str(&dk, id) != HOOKD_OK)
		return STORE_SCAN_NEXT;
	rc = store_get(w->rd->s, w->rd->txn, STORE_DB_DELIVERIES, &dk, &dv);
	if (rc == HOOKD_ENOTFOUND)
		return STORE_SCAN_NEXT; /* cannot happen: entries change with their records */
	if (rc != HOOKD_OK)
		return rc;
	if (record_decode(dv.mv_data, dv.mv_size, &r) != HOOKD_OK)
		return STORE_SCAN_NEXT;
	return w->fn(w->arg, id, &r);
}

int store_read_endpoint_deliveries(struct store_read *rd, const char *app_id,
				   const char *ep_id, int state, const char *after_id,
				   int (*fn)(void *arg, const char *dlv_id,
					     const struct delivery_rec *r),
				   void *arg)
{
	struct store_key prefix, from;
	struct store_epdlv_walk w = {.rd = rd, .fn = fn, .arg = arg};
	if ((state = store_epindex_state(state)) < 0)
		return HOOKD_EINVAL;
	if (store_key_epdlv(&prefix, app_id, ep_id, state, NULL, 0) != HOOKD_OK ||
	    store_key_epdlv(&from, app_id, ep_id, state, after_id ? after_id : "",
			    after_id ? strlen(after_id) : 0) != HOOKD_OK)
		return HOOKD_OK; /* no such endpoint can be stored: nothing to list */
	w.plen = prefix.len;
	w.after = after_id ? &from : NULL;
	return store_scan(rd->s, rd->txn, STORE_DB_EPDLV, from.b, from.len, prefix.len,
			  store_epdlv_one, &w);
}
