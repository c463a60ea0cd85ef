/* api_dead.c - /v1/apps/{app}/dead: list dead letters and redrive them. */
#include "api-t.h"
#include "api_conn.h"

#include "clock.h"
#include "config.h"
#include "dispatch.h"
#include "err.h"
#include "fanout.h"
#include "id.h"
#include "jsontext.h"
#include "log.h"
#include "policy.h"
#include "record.h"
#include "registry.h"
#include "store.h"
#include "worker.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <sodium.h>
#include <sys/queue.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_dead_list(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	struct evkeyvalq *q = args->query;
	int bad = 0;
	long limit = api_query_long(q, "limit", API_LIST_DEFAULT, 1, API_LIST_MAX, req, &bad);
	char k[400];
	size_t plen;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val key, v;
	json_t *arr;
	int rc;

	if (bad)
		return;
	if (store_read_begin(a->store, &txn) != HOOKD_OK) {
		api_error(req, 500, "internal", NULL, "cannot read the store");
		return;
	}
	arr = json_array();
	plen = api_prefix_key(k, app->id, NULL);
	key.mv_data = k;
	key.mv_size = plen;
	mdb_cursor_open(txn, a->store->dead, &cur);
	for (rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
	     rc == 0 && key.mv_size > plen + 8 && memcmp(key.mv_data, k, plen) == 0 &&
	     (long)json_array_size(arr) < limit;
	     rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
		MDB_val dk = {key.mv_size - plen - 8, (char *)key.mv_data + plen + 8}, dv;
		struct delivery_rec r;
		char iso[CLOCK_ISO_LEN], id[DELIVERY_ID_MAX];
		if (dk.mv_size >= sizeof(id) || mdb_get(txn, a->store->deliveries, &dk, &dv) != 0 ||
		    record_decode(dv.mv_data, dv.mv_size, &r) != HOOKD_OK || r.state != DLV_DEAD)
			continue;
		memcpy(id, dk.mv_data, dk.mv_size);
		id[dk.mv_size] = 0;
		clock_iso8601((int64_t)store_get_be64((unsigned char *)key.mv_data + plen), iso);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "delivery_id", id,
						     "message_id", r.msg_id, "endpoint_id", r.ep_id,
						     "attempts", (json_int_t)r.attempts, "dead_at", iso,
						     "reason", r.last_error));
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	api_send(req, 200, json_pack("{s:o}", "data", arr));
}

struct api_redrive {
	struct store_op op; /* first */
	struct api_pending *p;
	char app_id[80];
	json_t *ids;        /* requested ids (array of strings) or NULL = all */
	int64_t since_ms;   /* -1 = no bound */
	int64_t now_ms;
	json_t *done_ids;   /* filled on the writer thread */
};

static int api_endpoint_stored(struct store *s, MDB_txn *txn, const char *app_id,
			       const char *ep_id)
{
	char key[320];
	MDB_val k = {registry_endpoint_key(app_id, ep_id, key), key}, v;
	return mdb_get(txn, s->endpoints, &k, &v) == 0;
}

/* Writer thread: moves matching dead deliveries back to pending, due now, new retry cycle.
 * Deliveries whose endpoint was deleted stay dead (there is nowhere to send them). */
static int api_redrive_apply(struct store *s, MDB_txn *txn, struct store_op *op)
{
	struct api_redrive *r = (struct api_redrive *)op;
	char k[400];
	size_t plen = api_prefix_key(k, r->app_id, NULL);
	MDB_cursor *cur;
	MDB_val key = {plen, k}, v;
	int rc, mrc;

	r->done_ids = json_array();
	if ((rc = mdb_cursor_open(txn, s->dead, &cur)) != 0)
		return store_err(rc, "redrive cursor");
	for (rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
	     rc == 0 && key.mv_size > plen + 8 && memcmp(key.mv_data, k, plen) == 0;) {
		const char *idp = (const char *)key.mv_data + plen + 8;
		size_t idlen = key.mv_size - plen - 8;
		int64_t dead_at = (int64_t)store_get_be64((unsigned char *)key.mv_data + plen);
		char id[DELIVERY_ID_MAX];
		int match = idlen < sizeof(id) && (r->since_ms < 0 || dead_at >= r->since_ms);
		size_t i;
		json_t *x;
		MDB_val dk, dv;
		struct delivery_rec rec;

		if (match) {
			memcpy(id, idp, idlen);
			id[idlen] = 0;
			if (r->ids) {
				match = 0;
				json_array_foreach(r->ids, i, x) if (strcmp(json_string_value(x), id) == 0) match = 1;
			}
		}
		if (!match) {
			rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT);
			continue;
		}
		dk.mv_data = id;
		dk.mv_size = idlen;
		int is_dead = mdb_get(txn, s->deliveries, &dk, &dv) == 0 &&
			      record_decode(dv.mv_data, dv.mv_size, &rec) == HOOKD_OK &&
			      rec.state == DLV_DEAD;
		if (is_dead && !api_endpoint_stored(s, txn, r->app_id, rec.ep_id)) {
			/* Its endpoint is gone: it stays dead and listed. */
			rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT);
			continue;
		}
		if (is_dead) {
			unsigned char *enc;
			size_t len;
			unsigned char due[8 + DELIVERY_ID_MAX];
			rec.state = DLV_PENDING;
			rec.cycle_failures = 0;
			rec.next_at_ms = r->now_ms;
			rec.updated_ms = r->now_ms;
			rec.last_error = "";
			if (record_encode(&rec, &enc, &len) != HOOKD_OK)
				break;
			MDB_val nv = {len, enc};
			mrc = mdb_put(txn, s->deliveries, &dk, &nv, 0);
			free(enc);
			store_be64(due, (uint64_t)r->now_ms);
			memcpy(due + 8, id, idlen);
			MDB_val duek = {8 + idlen, due}, empty = {0, ""};
			if (mrc == 0)
				mrc = mdb_put(txn, s->due, &duek, &empty, 0);
			if (mrc != 0) {
				mdb_cursor_close(cur);
				return store_err(mrc, "redrive");
			}
			json_array_append_new(r->done_ids, json_string(id));
		}
		/* The dead-index entry goes in every case (stale or redriven). */
		if ((mrc = mdb_cursor_del(cur, 0)) != 0) {
			mdb_cursor_close(cur);
			return store_err(mrc, "redrive");
		}
		rc = mdb_cursor_get(cur, &key, &v, MDB_GET_CURRENT);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return HOOKD_OK;
}

static void api_redrive_done(struct store_op *op)
{
	struct api_redrive *r = (struct api_redrive *)op;
	struct evhttp_request *req = api_pending_take(r->p);
	struct api *a = r->p->api;
	size_t i;
	json_t *x;

	if (op->rc == HOOKD_OK) {
		json_array_foreach(r->done_ids, i, x) {
			struct delivery *dv = dispatch_load_stored(a->disp, json_string_value(x));
			if (!dv)
				continue;
			/* A redrive re-runs the endpoint's policy (the operator may have fixed it). */
			if (dv->ep->policy_name) {
				MDB_txn *txn;
				json_t *env = NULL;
				struct store_batch *b;
				if (store_read_begin(a->store, &txn) == HOOKD_OK) {
					env = api_message_load(a, txn, dv->app_id, dv->msg_id);
					mdb_txn_abort(txn);
				}
				if (env && fanout_capture_policy(dv, dv->ep) == HOOKD_OK) {
					fanout_apply_policy(a->policies, env, dv, &a->fstats);
					json_decref(env);
					b = store_batch_new();
					if (b && dispatch_persist(a->store, b, dv, clock_now_ms()) == HOOKD_OK)
						store_batch_submit(a->store, b, 0, NULL, NULL);
					else
						store_batch_free(b);
				}
			}
			dispatch_add(a->disp, dv);
		}
		if (req)
			api_send(req, 200, json_pack("{s:I, s:O}", "redriven",
						     (json_int_t)json_array_size(r->done_ids),
						     "delivery_ids", r->done_ids));
	} else if (req) {
		api_store_failed(req, op->rc);
	}
	json_decref(r->ids);
	json_decref(r->done_ids);
	api_pending_free(r->p);
	free(r);
}

void api_dead_redrive(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	json_t *body = api_body_json(a, req, 0), *v;
	const char *key;
	struct api_redrive *r;
	size_t i;
	json_t *x;

	if (!body)
		return;
	r = calloc(1, sizeof(*r));
	if (!r) {
		api_error(req, 500, "internal", NULL, "out of memory");
		goto out;
	}
	r->since_ms = -1;
	r->now_ms = clock_now_ms();
	snprintf(r->app_id, sizeof(r->app_id), "%s", app->id);
	json_object_foreach(body, key, v) {
		if (strcmp(key, "delivery_ids") == 0) {
			if (!json_is_array(v) || json_array_size(v) > 10000)
				goto bad_ids;
			json_array_foreach(v, i, x) if (!json_is_string(x)) goto bad_ids;
			r->ids = json_incref(v);
		} else if (strcmp(key, "since") == 0) {
			if (json_is_integer(v) && json_integer_value(v) >= 0) {
				r->since_ms = json_integer_value(v) * 1000;
			} else if (!json_is_string(v) ||
				   clock_parse(json_string_value(v), &r->since_ms) != HOOKD_OK) {
				api_error(req, 400, "invalid_field", "since",
					  "since must be an ISO 8601 UTC time or Unix seconds");
				goto fail;
			}
		} else {
			api_error(req, 400, "invalid_field", key, "unknown field '%.80s' (expected delivery_ids, since)", key);
			goto fail;
		}
	}
	r->p = api_pending_new(a, req);
	if (!r->p) {
		api_error(req, 500, "internal", NULL, "out of memory");
		goto fail;
	}
	r->op.apply = api_redrive_apply;
	r->op.done = api_redrive_done;
	store_submit(a->store, &r->op);
	goto out;
bad_ids:
	api_error(req, 400, "invalid_field", "delivery_ids", "delivery_ids must be an array of delivery id strings");
fail:
	json_decref(r->ids);
	free(r);
out:
	json_decref(body);
}

