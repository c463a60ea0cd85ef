/* store_redrive.c - the redrive transaction: dead deliveries of one app back to pending, in
 * one write op over its dead-letter index. Which ones and what they become is the caller's
 * (select, revive); keeping the index and the records consistent is the store's. */
#include "store-t.h"

#include "err.h"
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store_redrive {
	struct store_op op; /* first */
	char app_id[STORE_KEY_MAX + 1];
	int (*select)(void *arg, const char *dlv_id, int64_t dead_at_ms);
	void (*revive)(void *arg, struct delivery_rec *r);
	void (*done)(void *arg, int rc, const char *const *ids, size_t n);
	void *arg;
	/* writer thread: the ids redriven by this application of the op */
	char **ids;
	size_t n, cap;
	/* store_redrive_ids_submit: the ids to look at (owned), instead of a scan */
	char **given;
	size_t n_given;
	/* during the scan */
	struct store *s;
	MDB_txn *txn;
	size_t plen;
};

static void store_redrive_forget(struct store_redrive *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->ids[i]);
	r->n = 0;
}

static int store_redrive_note(struct store_redrive *r, const char *id)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		char **grown = realloc(r->ids, cap * sizeof(*grown));
		if (!grown)
			return HOOKD_ENOMEM;
		r->ids = grown;
		r->cap = cap;
	}
	if (!(r->ids[r->n] = strdup(id)))
		return HOOKD_ENOMEM;
	r->n++;
	return HOOKD_OK;
}

/* Redrives delivery id if it is still dead and its endpoint is still stored. *dead_at is its
 * dead-index time (the record's updated_ms when it died: dispatch_persist writes both with
 * one time), 0 when there is no dead record (a stale index entry). *stays is set when it is
 * dead and stays so because its endpoint is gone: its index entry must stay too (it is
 * still listed). HOOKD_OK, or a store error. */
static int store_redrive_record(struct store_redrive *r, const char *id, int64_t *dead_at,
				int *stays)
{
	struct store_key dk, ek;
	struct delivery_rec rec;
	MDB_val dv, ev;
	unsigned char *enc;
	size_t len;
	int rc, pending;

	*dead_at = 0;
	*stays = 0;
	store_key_str(&dk, id);
	rc = store_get(r->s, r->txn, STORE_DB_DELIVERIES, &dk, &dv);
	if (rc != HOOKD_OK && rc != HOOKD_ENOTFOUND)
		return rc;
	if (rc != HOOKD_OK || record_decode(dv.mv_data, dv.mv_size, &rec) != HOOKD_OK ||
	    rec.state != DLV_DEAD)
		return HOOKD_OK;
	*dead_at = rec.updated_ms;
	/* Its endpoint is gone: it stays dead and listed (there is nowhere to send it). */
	if (store_key_pair(&ek, r->app_id, rec.ep_id) != HOOKD_OK) {
		*stays = 1;
		return HOOKD_OK;
	}
	rc = store_get(r->s, r->txn, STORE_DB_ENDPOINTS, &ek, &ev);
	if (rc == HOOKD_ENOTFOUND) {
		*stays = 1;
		return HOOKD_OK;
	}
	if (rc != HOOKD_OK)
		return rc;
	r->revive(r->arg, &rec);
	/* Encoded, and its due key built, before the write below replaces the value rec points
	 * into. */
	if (record_encode(&rec, &enc, &len) != HOOKD_OK)
		return HOOKD_ENOMEM;
	pending = rec.state == DLV_PENDING &&
		  store_key_due(&ek, rec.app_id, rec.ep_id, rec.next_at_ms, id) == HOOKD_OK;
	rc = store_delivery_put(r->s, r->txn, dk.b, dk.len, enc, len);
	free(enc);
	if (rc == HOOKD_OK && pending)
		rc = store_put(r->s, r->txn, STORE_DB_DUE, &ek, "", 0);
	if (rc == HOOKD_OK)
		rc = store_redrive_note(r, id);
	return rc;
}

/* One dead-index entry: app \0 be64(dead_at) dlv_id. */
static int store_redrive_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_redrive *r = arg;
	const unsigned char *p = k->mv_data;
	char id[STORE_KEY_MAX + 1];
	int64_t dead_at;
	int rc, stays;

	if (k->mv_size <= r->plen + 8)
		return STORE_SCAN_STOP;
	store_key_text(p + r->plen + 8, k->mv_size - r->plen - 8, id, sizeof(id));
	if (!r->select(r->arg, id, (int64_t)store_get_be64(p + r->plen)))
		return STORE_SCAN_NEXT;
	if ((rc = store_redrive_record(r, id, &dead_at, &stays)) != HOOKD_OK)
		return rc == HOOKD_ENOMEM ? STORE_SCAN_STOP : rc;
	/* The dead-index entry goes (redriven, or stale) unless the delivery stays dead. */
	return stays ? STORE_SCAN_NEXT : STORE_SCAN_DEL;
}

/* The ids given (store_redrive_ids_submit): each looked up, not the app's index scanned. */
static int store_redrive_ids(struct store_redrive *r)
{
	for (size_t i = 0; i < r->n_given; i++) {
		struct store_key k;
		int64_t dead_at;
		size_t before = r->n;
		int stays, rc = store_redrive_record(r, r->given[i], &dead_at, &stays);
		if (rc == HOOKD_ENOMEM)
			return HOOKD_OK; /* as the scan: what is done so far stands, and is told */
		if (rc != HOOKD_OK)
			return rc;
		if (r->n > before && store_key_dead(&k, r->app_id, dead_at, r->given[i]) == HOOKD_OK &&
		    (rc = store_del(r->s, r->txn, STORE_DB_DEAD, &k)) != HOOKD_OK)
			return rc;
	}
	return HOOKD_OK;
}

static int store_redrive_apply(struct store *s, MDB_txn *txn, struct store_op *op)
{
	struct store_redrive *r = (struct store_redrive *)op;
	struct store_key prefix;
	int rc;

	/* Applied again when its batch is replayed op by op: only this application counts. */
	store_redrive_forget(r);
	if ((rc = store_key_pair(&prefix, r->app_id, NULL)) != HOOKD_OK)
		return rc;
	r->s = s;
	r->txn = txn;
	r->plen = prefix.len;
	rc = r->given ? store_redrive_ids(r)
		      : store_scan_prefix(s, txn, STORE_DB_DEAD, &prefix, store_redrive_one, r);
	r->txn = NULL;
	return rc;
}

static void store_redrive_free(struct store_redrive *r)
{
	store_redrive_forget(r);
	free(r->ids);
	for (size_t i = 0; i < r->n_given; i++)
		free(r->given[i]);
	free(r->given);
	free(r);
}

static void store_redrive_done(struct store_op *op)
{
	struct store_redrive *r = (struct store_redrive *)op;
	if (op->rc != HOOKD_OK)
		store_redrive_forget(r);
	r->done(r->arg, op->rc, (const char *const *)r->ids, r->n);
	store_redrive_free(r);
}

/* A redrive op for app_id (the caller sets what selects its deliveries); NULL when out of
 * memory. */
static struct store_redrive *store_redrive_new(const char *app_id,
					       void (*revive)(void *arg, struct delivery_rec *r),
					       void (*done)(void *arg, int rc,
							    const char *const *ids, size_t n),
					       void *arg)
{
	struct store_redrive *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	snprintf(r->app_id, sizeof(r->app_id), "%s", app_id);
	r->revive = revive;
	r->done = done;
	r->arg = arg;
	r->op.apply = store_redrive_apply;
	r->op.done = store_redrive_done;
	return r;
}

int store_redrive_submit(struct store *s, const char *app_id,
			 int (*select)(void *arg, const char *dlv_id, int64_t dead_at_ms),
			 void (*revive)(void *arg, struct delivery_rec *r),
			 void (*done)(void *arg, int rc, const char *const *ids, size_t n),
			 void *arg)
{
	struct store_redrive *r = store_redrive_new(app_id, revive, done, arg);
	if (!r)
		return HOOKD_ENOMEM;
	r->select = select;
	store_submit(s, &r->op);
	return HOOKD_OK;
}

int store_redrive_ids_submit(struct store *s, const char *app_id, const char *const *ids,
			     size_t n, void (*revive)(void *arg, struct delivery_rec *r),
			     void (*done)(void *arg, int rc, const char *const *ids, size_t n),
			     void *arg)
{
	struct store_redrive *r = store_redrive_new(app_id, revive, done, arg);
	if (!r || !(r->given = calloc(n ? n : 1, sizeof(*r->given)))) {
		free(r);
		return HOOKD_ENOMEM;
	}
	for (; r->n_given < n; r->n_given++) {
		if (!(r->given[r->n_given] = strdup(ids[r->n_given]))) {
			store_redrive_free(r);
			return HOOKD_ENOMEM;
		}
	}
	store_submit(s, &r->op);
	return HOOKD_OK;
}
