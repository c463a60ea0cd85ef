/* api_messages.c - /v1/apps/{app}/messages: publish, list, read a message with its deliveries and attempts. */
#include "api-t.h"
#include "api_conn.h"

#include "clock.h"
#include "config.h"
#include "delivery.h"
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

/* An Idempotency-Key is remembered this long: a repeat within 24 h gets the first answer. */
#define API_IDEMPOTENCY_MS (24LL * 3600 * 1000)
#define API_IDEMPOTENCY_KEY_MAX 256

static void api_published(struct store_batch *b)
{
	struct api_pending *p = b->arg;
	struct api *a = p->api;
	struct evhttp_request *req = api_pending_take(p);
	int rc = b->op.rc;

	if (rc == HOOKD_OK) {
		for (size_t i = 0; i < p->n_dvs; i++)
			dispatch_add(a->disp, p->dvs[i]);
		p->n_dvs = 0;
		a->published++;
		if (req)
			api_send(req, 202, json_incref(p->json));
		if (p->n_policy) {
			fanout_defer(&a->fanout, p->app->id, p->id, json_incref(p->envelope),
				     p->policy_dvs, p->n_policy);
			p->policy_dvs = NULL;
			p->n_policy = 0;
		}
	} else if (rc == HOOKD_EDUPLICATE) {
		if (req)
			api_send(req, 200, json_pack("{s:s, s:b}", "id", b->dup_value, "duplicate", 1));
	} else {
		a->publish_rejected++;
		if (req)
			api_store_failed(req, rc);
	}
	api_pending_free(p);
}

/* Stores the message, its deliveries and the idempotency key in one op; the answer goes out
 * from api_published once that op is committed. Takes p (answers errors itself). */
static void api_publish_commit(struct api_pending *p)
{
	struct api *a = p->api;
	struct store_batch *b = store_batch_new();
	char k[400];
	size_t klen;

	if (!b)
		goto oom;
	klen = api_prefix_key(k, p->app->id, p->id);
	if (store_batch_put(b, a->store->messages, k, klen, p->text, strlen(p->text)))
		goto oom;
	for (size_t i = 0; i < p->n_dvs; i++)
		if (dispatch_persist(a->store, b, p->dvs[i], p->now_ms))
			goto oom;
	if (p->n_policy) {
		/* The policy half of the fan-out is made after the 202 (fanout_defer): this marker
		 * makes a restart finish it if the process dies in between. */
		klen = fanout_marker_key(p->app->id, p->id, k);
		if (store_batch_put(b, a->store->fanout, k, klen, "", 0))
			goto oom;
	}
	if (p->idem) {
		unsigned char val[8 + ID_MAX];
		size_t n = strlen(p->id);
		klen = api_prefix_key(k, p->app->id, p->idem);
		store_be64(val, (uint64_t)(p->now_ms + API_IDEMPOTENCY_MS));
		memcpy(val + 8, p->id, n);
		store_batch_guard(b, a->store->idem, k, klen, p->now_ms);
		if (store_batch_put(b, a->store->idem, k, klen, val, 8 + n))
			goto oom;
	}
	store_batch_submit(a->store, b, STORE_OP_PUBLISH, api_published, p);
	return;
oom:
	store_batch_free(b);
	{
		struct evhttp_request *req = api_pending_take(p);
		if (req)
			api_error(req, 500, "internal", NULL, "out of memory");
	}
	api_pending_free(p);
}

/* The body every endpoint without a policy receives: the envelope's own fields, then the
 * producer's "data" bytes exactly as they arrived (no second serialization of the tree, and
 * numbers keep their spelling). head holds the fields without data. Falls back to dumping the
 * parsed data when the member cannot be found as plain text (a \u-escaped key). */
static char *api_envelope_text(struct evhttp_request *req, const json_t *head, json_t *data)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in), off, vlen;
	const char *raw = (const char *)evbuffer_pullup(in, -1);
	char *h = json_dumps(head, JSON_COMPACT | JSON_PRESERVE_ORDER), *out = NULL;
	struct jsontext_buf b = {0};

	if (!h)
		return NULL;
	if (raw && jsontext_member(raw, len, "data", &off, &vlen) == HOOKD_OK) {
		jsontext_raw(&b, h, strlen(h) - 1); /* without the closing brace */
		jsontext_cstr(&b, ",\"data\":");
		jsontext_raw(&b, raw + off, vlen);
		jsontext_cstr(&b, "}");
		out = b.failed ? NULL : b.data;
		if (!out)
			jsontext_free(&b);
	} else {
		json_t *full = json_deep_copy(head);
		json_object_set(full, "data", data);
		out = json_dumps(full, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(full);
	}
	free(h);
	return out;
}

void api_messages_create(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	json_t *body = api_body_json(a, req, 1), *v, *envelope = NULL;
	const char *key, *type = NULL, *source = NULL;
	const char *idem = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
	char version[64] = "1", msg_id[ID_MAX], iso[CLOCK_ISO_LEN];
	json_t *data = NULL;
	struct api_pending *p = NULL;
	struct body *bytes = NULL;
	char *text = NULL;
	int64_t now = clock_now_ms();
	int needs_policy = 0;

	if (!body)
		return;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "type") == 0) {
			if (!json_is_string(v) || !registry_type_valid(json_string_value(v))) {
				api_error(req, 400, "invalid_field", "type",
					  "type must be segments of [A-Za-z0-9_-] joined by '.', at most 128 bytes");
				goto out;
			}
			type = json_string_value(v);
		} else if (strcmp(key, "data") == 0) {
			if (!json_is_object(v)) {
				api_error(req, 400, "invalid_field", "data", "data must be a JSON object");
				goto out;
			}
			data = v;
		} else if (strcmp(key, "version") == 0) {
			if (json_is_string(v) && *json_string_value(v) && strlen(json_string_value(v)) < sizeof(version))
				snprintf(version, sizeof(version), "%s", json_string_value(v));
			else {
				api_error(req, 400, "invalid_field", "version", "version must be a non-empty string of at most %zu bytes", sizeof(version) - 1);
				goto out;
			}
		} else if (strcmp(key, "source") == 0) {
			if (!json_is_string(v) || strlen(json_string_value(v)) > 128) {
				api_error(req, 400, "invalid_field", "source", "source must be a string of at most 128 bytes");
				goto out;
			}
			source = json_string_value(v);
		} else {
			api_error(req, 400, "invalid_field", key, "unknown field '%.80s' (expected type, data, version, source)", key);
			goto out;
		}
	}
	if (!type) {
		api_error(req, 400, "missing_field", "type", "type is required");
		goto out;
	}
	if (!data) {
		api_error(req, 400, "missing_field", "data", "data is required");
		goto out;
	}
	if (idem && (strlen(idem) == 0 || strlen(idem) > API_IDEMPOTENCY_KEY_MAX)) {
		api_error(req, 400, "invalid_field", "Idempotency-Key",
			  "Idempotency-Key must be 1 to %d bytes", API_IDEMPOTENCY_KEY_MAX);
		goto out;
	}

	id_make("msg_", now, msg_id);
	clock_iso8601(now, iso);
	envelope = json_pack("{s:s, s:s, s:s, s:s}", "id", msg_id, "type", type, "timestamp", iso,
			     "version", version);
	if (source)
		json_object_set_new(envelope, "source", json_string(source));
	text = api_envelope_text(req, envelope, data);
	p = api_pending_new(a, req);
	if (!text || !p || !(bytes = body_new(text, strlen(text))))
		goto oom;
	if (fanout_message(app, msg_id, type, bytes, now, &p->dvs, &p->n_dvs, &needs_policy,
			   &a->fstats) != HOOKD_OK)
		goto oom;
	if (idem && !(p->idem = strdup(idem)))
		goto oom;
	snprintf(p->id, sizeof(p->id), "%s", msg_id);
	p->app = app;
	p->now_ms = now;
	p->json = json_pack("{s:s, s:s, s:s}", "id", msg_id, "type", type, "timestamp", iso);
	p->text = text;
	text = NULL;
	if (needs_policy) {
		/* The policy thread reads this tree (parsing the text again there would cost
		 * ~20 us per message: jansson is slow on long strings). It is freed here, on
		 * the loop that allocated it, once the policies ran (fanout_job_free). */
		json_object_set(envelope, "data", data);
		p->envelope = json_incref(envelope);
		/* Split: plain deliveries are stored with the message; policy ones come after. */
		size_t m = 0;
		p->policy_dvs = calloc(p->n_dvs, sizeof(*p->policy_dvs));
		if (!p->policy_dvs)
			goto oom;
		for (size_t i = 0; i < p->n_dvs; i++) {
			if (p->dvs[i]->policy_name)
				p->policy_dvs[p->n_policy++] = p->dvs[i];
			else
				p->dvs[m++] = p->dvs[i];
		}
		p->n_dvs = m;
	}
	api_publish_commit(p);
	p = NULL;
	goto out;
oom:
	api_error(req, 500, "internal", NULL, "out of memory");
out:
	if (p) {
		api_pending_take(p);
		api_pending_free(p);
	}
	body_unref(bytes);
	free(text);
	json_decref(envelope);
	json_decref(body);
}

/* One delivery as the API shows it: the stored record r, overlaid with the live copy. r may
 * be NULL for a delivery not stored yet (then live is not). ep is its endpoint, or NULL if
 * gone. A pending delivery of a disabled endpoint is held: no attempt is made until the
 * endpoint is enabled again. It stays "pending" (the state Svix and Convoy users know; it is
 * counted as pending everywhere) with "waiting_for": "endpoint_disabled" saying why it does
 * not move, and no next attempt time, since none is known. */
static json_t *api_delivery_json(const char *id, const struct delivery_rec *r,
				 const struct delivery *live, const struct endpoint *ep)
{
	char iso[CLOCK_ISO_LEN];
	/* Live values are newer than the store's for pending and in-flight deliveries. A
	 * finished one is live until its outcome commits: shown as in flight until then, so the
	 * state never runs ahead of the recorded attempts. */
	int fresh = live && (live->state == DLV_PENDING || live->state == DLV_INFLIGHT);
	int state = fresh ? live->state : live ? DLV_INFLIGHT : r->state;
	uint32_t attempts = fresh || !r ? live->attempts : r->attempts;
	int64_t next = fresh || !r ? live->next_at_ms : r->next_at_ms;
	const char *err = fresh || !r ? live->last_error : r->last_error;
	int status = fresh || !r ? live->last_status : r->last_status;
	json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "id", id, "endpoint_id",
			      r ? r->ep_id : live->ep->id, "state", delivery_state_name(state),
			      "attempts", (json_int_t)attempts);
	int held = state == DLV_PENDING && ep && ep->disabled;
	if (state == DLV_PENDING && !held) {
		clock_iso8601(next, iso);
		json_object_set_new(o, "next_attempt_at", json_string(iso));
	} else {
		json_object_set_new(o, "next_attempt_at", json_null());
	}
	json_object_set_new(o, "waiting_for", held ? json_string("endpoint_disabled") : json_null());
	json_object_set_new(o, "last_error", err[0] ? json_string(err) : json_null());
	json_object_set_new(o, "last_status", status ? json_integer(status) : json_null());
	return o;
}

/* The deliveries of a message: records under its delivery id prefix (delivery.h), and the
 * policy deliveries that are out but not stored yet (dispatch_add_unstored), in id order. */
static json_t *api_message_deliveries(struct api *a, MDB_txn *txn, const char *msg_id,
				      json_t **dlv_ids)
{
	json_t *arr = json_array();
	char prefix[DELIVERY_ID_MAX];
	size_t plen = delivery_id_prefix(msg_id, prefix);
	MDB_cursor *cur;
	MDB_val k = {plen, prefix}, v;
	const char (*unstored)[DELIVERY_ID_MAX];
	size_t n_unstored, i, j;
	int rc;

	if (dlv_ids)
		*dlv_ids = json_array();
	mdb_cursor_open(txn, a->store->deliveries, &cur);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct delivery_rec r;
		char id[DELIVERY_ID_MAX];
		if (k.mv_size >= sizeof(id) || record_decode(v.mv_data, v.mv_size, &r) != HOOKD_OK)
			continue;
		memcpy(id, k.mv_data, k.mv_size);
		id[k.mv_size] = 0;
		json_array_append_new(arr, api_delivery_json(id, &r, dispatch_live(a->disp, id),
							     registry_endpoint(a->reg, r.app_id,
									       r.ep_id)));
		if (dlv_ids)
			json_array_append_new(*dlv_ids, json_string(id));
	}
	mdb_cursor_close(cur);
	unstored = dispatch_unstored(a->disp, msg_id, &n_unstored);
	for (i = 0; i < n_unstored; i++) {
		const struct delivery *live = dispatch_live(a->disp, unstored[i]);
		json_t *o;
		if (!live)
			continue; /* stored meanwhile (listed above), or being stored */
		int cmp = 1;
		/* In id order; skip it if the store scan listed it already. */
		for (j = 0; j < json_array_size(arr); j++) {
			cmp = strcmp(json_string_value(json_object_get(json_array_get(arr, j), "id")),
				     unstored[i]);
			if (cmp >= 0)
				break;
		}
		if (cmp == 0)
			continue;
		o = api_delivery_json(unstored[i], NULL, live, live->ep);
		json_array_insert_new(arr, j, o);
	}
	return arr;
}

json_t *api_message_load(struct api *a, MDB_txn *txn, const char *app_id,
				const char *msg_id)
{
	char k[400];
	size_t klen = api_prefix_key(k, app_id, msg_id);
	MDB_val key = {klen, k}, v;
	if (strlen(msg_id) < 5 || mdb_get(txn, a->store->messages, &key, &v) != 0)
		return NULL;
	return json_loadb(v.mv_data, v.mv_size, 0, NULL);
}

static void api_message_show(struct api *a, struct evhttp_request *req, struct app *app,
			     const char *msg_id, int attempts)
{
	MDB_txn *txn;
	json_t *msg, *dlv_ids = NULL, *out;
	if (store_read_begin(a->store, &txn) != HOOKD_OK) {
		api_error(req, 500, "internal", NULL, "cannot read the store");
		return;
	}
	msg = api_message_load(a, txn, app->id, msg_id);
	if (!msg) {
		mdb_txn_abort(txn);
		api_error(req, 404, "not_found", NULL, "message '%s' not found in app '%s'", msg_id, app->id);
		return;
	}
	if (!attempts) {
		out = json_pack("{s:O, s:s, s:O, s:O, s:o, s:O, s:O, s:o}", "id",
				json_object_get(msg, "id"), "app_id", app->id, "type",
				json_object_get(msg, "type"), "version", json_object_get(msg, "version"),
				"source", json_object_get(msg, "source") ? json_incref(json_object_get(msg, "source")) : json_null(),
				"timestamp", json_object_get(msg, "timestamp"), "data",
				json_object_get(msg, "data"), "deliveries",
				api_message_deliveries(a, txn, msg_id, NULL));
	} else {
		json_t *dl = api_message_deliveries(a, txn, msg_id, &dlv_ids), *list = json_array(), *idv;
		size_t i;
		json_array_foreach(dlv_ids, i, idv) {
			const char *id = json_string_value(idv);
			unsigned char prefix[DELIVERY_ID_MAX + 1];
			size_t plen = strlen(id) + 1;
			MDB_cursor *cur;
			MDB_val k = {plen, prefix}, v;
			int rc;
			memcpy(prefix, id, plen); /* includes the NUL separator */
			mdb_cursor_open(txn, a->store->attempts, &cur);
			for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			     rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0;
			     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
				json_t *at = json_loadb(v.mv_data, v.mv_size, 0, NULL);
				if (at)
					json_array_append_new(list, at);
			}
			mdb_cursor_close(cur);
		}
		json_decref(dl);
		json_decref(dlv_ids);
		/* oldest first across deliveries: ISO times sort as text */
		size_t n = json_array_size(list);
		for (i = 1; i < n; i++)
			for (size_t j = i; j > 0; j--) {
				const char *x = json_string_value(json_object_get(json_array_get(list, j - 1), "at"));
				const char *y = json_string_value(json_object_get(json_array_get(list, j), "at"));
				if (!x || !y || strcmp(x, y) <= 0)
					break;
				json_t *t = json_incref(json_array_get(list, j - 1));
				json_array_set(list, j - 1, json_array_get(list, j));
				json_array_set_new(list, j, t);
			}
		out = json_pack("{s:o}", "data", list);
	}
	mdb_txn_abort(txn);
	json_decref(msg);
	api_send(req, 200, out);
}

void api_messages_list(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	struct evkeyvalq *q = args->query;
	int bad = 0;
	long limit = api_query_long(q, "limit", API_LIST_DEFAULT, 1, API_LIST_MAX, req, &bad);
	const char *after = evhttp_find_header(q, "after");
	char k[400];
	size_t plen, klen;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val key, v;
	json_t *arr = json_array(), *last = NULL;
	int rc;

	if (bad) {
		json_decref(arr);
		return;
	}
	if (after && strlen(after) > ID_MAX) {
		json_decref(arr);
		api_error(req, 400, "invalid_field", "after", "after must be a message id");
		return;
	}
	plen = api_prefix_key(k, app->id, NULL);
	klen = api_prefix_key(k, app->id, after);
	if (store_read_begin(a->store, &txn) != HOOKD_OK) {
		json_decref(arr);
		api_error(req, 500, "internal", NULL, "cannot read the store");
		return;
	}
	mdb_cursor_open(txn, a->store->messages, &cur);
	key.mv_data = k;
	key.mv_size = klen;
	for (rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
	     rc == 0 && key.mv_size >= plen && memcmp(key.mv_data, k, plen) == 0;
	     rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
		if (after && key.mv_size == klen && memcmp(key.mv_data, k, klen) == 0)
			continue;
		if ((long)json_array_size(arr) >= limit) {
			last = json_array_get(arr, json_array_size(arr) - 1);
			break;
		}
		json_t *m = json_loadb(v.mv_data, v.mv_size, 0, NULL);
		if (!m)
			continue;
		json_object_del(m, "data");
		json_object_set_new(m, "app_id", json_string(app->id));
		json_array_append_new(arr, m);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	api_send(req, 200, json_pack("{s:o, s:o}", "data", arr, "next_after",
				     last ? json_incref(json_object_get(last, "id")) : json_null()));
}


void api_message_get(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	api_message_show(a, req, args->app, args->id, 0);
}

void api_message_attempts(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	api_message_show(a, req, args->app, args->id, 1);
}
