/* store_meta.c - apps, endpoints and API-uploaded policies: what the registry and the policy
 * engine load at start, written one key at a time as they change. */
#include "store-t.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

/* A put (val) or a delete (val NULL) of one built key. */
static int store_batch_key(struct store_batch *b, enum store_db db, const struct store_key *k,
			   const void *val, size_t vlen)
{
	return store_batch_add(b, db, k->b, k->len, val, val ? vlen : 0, val == NULL);
}

int store_batch_put_app(struct store_batch *b, const char *app_id, const char *json)
{
	struct store_key k;
	int rc = store_key_str(&k, app_id);
	return rc ? rc : store_batch_key(b, STORE_DB_APPS, &k, json, strlen(json));
}

int store_batch_del_app(struct store_batch *b, const char *app_id)
{
	struct store_key k;
	int rc = store_key_str(&k, app_id);
	return rc ? rc : store_batch_key(b, STORE_DB_APPS, &k, NULL, 0);
}

int store_batch_put_endpoint(struct store_batch *b, const char *app_id, const char *ep_id,
			     const char *json)
{
	struct store_key k;
	int rc = store_key_pair(&k, app_id, ep_id);
	return rc ? rc : store_batch_key(b, STORE_DB_ENDPOINTS, &k, json, strlen(json));
}

int store_batch_del_endpoint(struct store_batch *b, const char *app_id, const char *ep_id)
{
	struct store_key k;
	int rc = store_key_pair(&k, app_id, ep_id);
	return rc ? rc : store_batch_key(b, STORE_DB_ENDPOINTS, &k, NULL, 0);
}

int store_batch_put_policy(struct store_batch *b, const char *name, const char *src,
			   size_t len)
{
	struct store_key k;
	int rc = store_key_str(&k, name);
	return rc ? rc : store_batch_key(b, STORE_DB_POLICIES, &k, src ? src : "", len);
}

int store_batch_del_policy(struct store_batch *b, const char *name)
{
	struct store_key k;
	int rc = store_key_str(&k, name);
	return rc ? rc : store_batch_key(b, STORE_DB_POLICIES, &k, NULL, 0);
}

/* ---- one-key writes: a one-item batch, so there is one write mechanism ---- */

struct store_write_cb {
	void (*cb)(void *arg, int rc);
	void *arg;
};

static void store_write_done(struct store_batch *b)
{
	struct store_write_cb *w = store_batch_arg(b);
	if (w->cb)
		w->cb(w->arg, store_batch_rc(b));
	free(w);
}

/* Takes b (a batch built by the caller, or NULL after a failed build with rc set). */
static int store_write_submit(struct store *s, struct store_batch *b, int rc,
			      void (*cb)(void *arg, int rc), void *arg)
{
	struct store_write_cb *w = NULL;
	if (rc == HOOKD_OK && (!b || !(w = malloc(sizeof(*w)))))
		rc = HOOKD_ENOMEM;
	if (rc != HOOKD_OK) {
		store_batch_free(b);
		return rc;
	}
	w->cb = cb;
	w->arg = arg;
	store_batch_submit(s, b, 0, store_write_done, w);
	return HOOKD_OK;
}

static int store_write_now_batch(struct store *s, struct store_batch *b, int rc)
{
	if (rc == HOOKD_OK && !b)
		rc = HOOKD_ENOMEM;
	if (rc == HOOKD_OK)
		rc = store_batch_write_now(s, b, 0);
	store_batch_free(b);
	return rc;
}

/* The batch of one app write (json NULL: delete), or NULL; *rc is its build's outcome. */
static struct store_batch *store_app_batch(const char *app_id, const char *json, int *rc)
{
	struct store_batch *b = store_batch_new();
	*rc = !b ? HOOKD_ENOMEM
		 : json ? store_batch_put_app(b, app_id, json) : store_batch_del_app(b, app_id);
	return b;
}

static struct store_batch *store_endpoint_batch(const char *app_id, const char *ep_id,
						const char *json, int *rc)
{
	struct store_batch *b = store_batch_new();
	*rc = !b ? HOOKD_ENOMEM
	      : json ? store_batch_put_endpoint(b, app_id, ep_id, json)
		     : store_batch_del_endpoint(b, app_id, ep_id);
	return b;
}

int store_app_write(struct store *s, const char *app_id, const char *json,
		    void (*cb)(void *arg, int rc), void *arg)
{
	int rc;
	struct store_batch *b = store_app_batch(app_id, json, &rc);
	return store_write_submit(s, b, rc, cb, arg);
}

int store_endpoint_write(struct store *s, const char *app_id, const char *ep_id,
			 const char *json, void (*cb)(void *arg, int rc), void *arg)
{
	int rc;
	struct store_batch *b = store_endpoint_batch(app_id, ep_id, json, &rc);
	return store_write_submit(s, b, rc, cb, arg);
}

int store_policy_write(struct store *s, const char *name, const char *src, size_t len,
		       void (*cb)(void *arg, int rc), void *arg)
{
	struct store_batch *b = store_batch_new();
	int rc = !b ? HOOKD_ENOMEM : src ? store_batch_put_policy(b, name, src, len)
					 : store_batch_del_policy(b, name);
	return store_write_submit(s, b, rc, cb, arg);
}

int store_app_write_now(struct store *s, const char *app_id, const char *json)
{
	int rc;
	struct store_batch *b = store_app_batch(app_id, json, &rc);
	return store_write_now_batch(s, b, rc);
}

int store_endpoint_write_now(struct store *s, const char *app_id, const char *ep_id,
			     const char *json)
{
	int rc;
	struct store_batch *b = store_endpoint_batch(app_id, ep_id, json, &rc);
	return store_write_now_batch(s, b, rc);
}

/* ---- reads ---- */

int store_read_app(struct store_read *rd, const char *app_id, const char **json, size_t *len)
{
	struct store_key k;
	MDB_val v;
	int rc = store_key_str(&k, app_id);
	if (rc != HOOKD_OK)
		return HOOKD_ENOTFOUND; /* longer than any stored key */
	if ((rc = store_get(rd->s, rd->txn, STORE_DB_APPS, &k, &v)) != HOOKD_OK)
		return rc;
	*json = v.mv_data;
	*len = v.mv_size;
	return HOOKD_OK;
}

struct store_meta_walk {
	int (*app_fn)(void *arg, const char *app_id, const char *json, size_t len);
	int (*ep_fn)(void *arg, const char *app_id, const char *ep_id, const char *json,
		     size_t len);
	void *arg;
};

/* apps and policies: the key is the whole name. */
static int store_meta_one_name(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_meta_walk *w = arg;
	char name[STORE_KEY_MAX + 1];
	if (store_key_text(k->mv_data, k->mv_size, name, sizeof(name)) != HOOKD_OK)
		return STORE_SCAN_NEXT;
	return w->app_fn(w->arg, name, v->mv_data, v->mv_size);
}

static int store_meta_one_endpoint(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct store_meta_walk *w = arg;
	char buf[STORE_KEY_MAX + 1];
	const char *app_id, *ep_id;
	if (store_key_split(k->mv_data, k->mv_size, buf, &app_id, &ep_id) != HOOKD_OK)
		return STORE_SCAN_NEXT;
	return w->ep_fn(w->arg, app_id, ep_id, v->mv_data, v->mv_size);
}

int store_read_apps(struct store_read *rd,
		    int (*fn)(void *arg, const char *app_id, const char *json, size_t len),
		    void *arg)
{
	struct store_meta_walk w = {.app_fn = fn, .arg = arg};
	return store_scan(rd->s, rd->txn, STORE_DB_APPS, NULL, 0, 0, store_meta_one_name, &w);
}

int store_read_endpoints(struct store_read *rd,
			 int (*fn)(void *arg, const char *app_id, const char *ep_id,
				   const char *json, size_t len),
			 void *arg)
{
	struct store_meta_walk w = {.ep_fn = fn, .arg = arg};
	return store_scan(rd->s, rd->txn, STORE_DB_ENDPOINTS, NULL, 0, 0, store_meta_one_endpoint,
			  &w);
}

int store_read_policies(struct store_read *rd,
			int (*fn)(void *arg, const char *name, const char *src, size_t len),
			void *arg)
{
	struct store_meta_walk w = {.app_fn = fn, .arg = arg};
	return store_scan(rd->s, rd->txn, STORE_DB_POLICIES, NULL, 0, 0, store_meta_one_name, &w);
}
