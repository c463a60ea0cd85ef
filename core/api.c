/* api.c - HTTP API: routing, validation, and answers after durable commits. */
#include "api.h"
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

/* An Idempotency-Key is remembered this long (the issue: "a repeat within 24 h"). */
#define API_IDEMPOTENCY_MS (24LL * 3600 * 1000)
#define API_IDEMPOTENCY_KEY_MAX 256
/* Page sizes for listings: 50 by default like Svix, 1000 at most to bound one response. */
#define API_LIST_DEFAULT 50
#define API_LIST_MAX 1000
#define API_MAX_SEGMENTS 8

/* ---------- replies ---------- */

void api_send(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	/* A response to HEAD has no body: evhttp would send one anyway and break the framing
	 * of the next response on the connection. */
	if (text && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evbuffer_add(buf, text, strlen(text));
		evbuffer_add(buf, "\n", 1);
	}
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
	free(text);
	json_decref(body);
}

void api_error(struct evhttp_request *req, int status, const char *code,
		      const char *field, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_send(req, status,
		 json_pack("{s:{s:s, s:s, s:o}}", "error", "code", code, "message", msg, "field",
			   field && *field ? json_string(field) : json_null()));
}

static void api_conn_closed(struct evhttp_connection *conn, void *arg)
{
	struct api_pending *p = arg;
	p->req = NULL;
	p->conn = NULL;
}

struct api_pending *api_pending_new(struct api *a, struct evhttp_request *req)
{
	struct api_pending *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->api = a;
	p->req = req;
	p->conn = evhttp_request_get_connection(req);
	if (p->conn)
		evhttp_connection_set_closecb(p->conn, api_conn_closed, p);
	return p;
}

/* Detaches from the connection; returns the request to answer, or NULL if it is gone. */
struct evhttp_request *api_pending_take(struct api_pending *p)
{
	if (p->conn)
		evhttp_connection_set_closecb(p->conn, NULL, NULL);
	return p->req;
}

void api_pending_free(struct api_pending *p)
{
	for (size_t i = 0; i < p->n_dvs; i++)
		delivery_free(p->dvs[i]);
	free(p->dvs);
	for (size_t i = 0; i < p->n_policy; i++)
		delivery_free(p->policy_dvs[i]);
	free(p->policy_dvs);
	json_decref(p->json);
	json_decref(p->envelope);
	free(p->text);
	free(p->idem);
	free(p);
}

static void api_store_failed(struct evhttp_request *req, int rc)
{
	if (rc == HOOKD_EFULL)
		api_error(req, 507, "storage_full", NULL,
			  "the store is full (storage.map_size); accepted messages are still being "
			  "delivered, new ones are refused until space is freed or the map is enlarged");
	else
		api_error(req, 500, "internal", NULL, "could not store the change: %s",
			  hookd_strerror(rc));
}

/* ---------- request helpers ---------- */

json_t *api_body_json(struct api *a, struct evhttp_request *req, int required)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *j;

	if (len > a->cfg->max_payload_bytes) {
		api_error(req, 413, "payload_too_large", NULL,
			  "request body is %zu bytes; limits.max_payload_bytes is %zu", len,
			  a->cfg->max_payload_bytes);
		return NULL;
	}
	if (len == 0) {
		if (!required)
			return json_object();
		api_error(req, 400, "invalid_json", NULL, "request body is empty; a JSON object is required");
		return NULL;
	}
	j = json_loadb((const char *)evbuffer_pullup(in, -1), len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		api_error(req, 400, "invalid_json", NULL,
			  "invalid JSON at line %d, column %d (position %d): %s", jerr.line,
			  jerr.column, jerr.position, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		api_error(req, 400, "invalid_json", NULL, "request body must be a JSON object");
		return NULL;
	}
	return j;
}

static int api_authorized(struct api *a, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	unsigned char hash[crypto_generichash_BYTES];
	if (!a->has_key || !h || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	/* Compare digests in constant time: the key's length and bytes do not leak by timing. */
	crypto_generichash(hash, sizeof(hash), (const unsigned char *)h, strlen(h), NULL, 0);
	return sodium_memcmp(hash, a->key_hash, sizeof(hash)) == 0;
}

static long api_query_long(struct evkeyvalq *q, const char *name, long def, long min, long max,
			   struct evhttp_request *req, int *bad)
{
	const char *v = evhttp_find_header(q, name);
	char *end;
	long n;
	if (!v)
		return def;
	n = strtol(v, &end, 10);
	if (*v == 0 || *end || n < min || n > max) {
		api_error(req, 400, "invalid_field", name, "%s must be an integer from %ld to %ld", name,
			  min, max);
		*bad = 1;
		return def;
	}
	return n;
}

static size_t api_prefix_key(char *out, const char *app_id, const char *rest)
{
	size_t a = strlen(app_id), r = rest ? strlen(rest) : 0;
	memcpy(out, app_id, a);
	out[a] = 0;
	if (r)
		memcpy(out + a + 1, rest, r);
	return a + 1 + r;
}

/* ---------- apps ---------- */

static void api_app_saved(void *arg, int rc)
{
	struct api_pending *p = arg;
	struct evhttp_request *req = api_pending_take(p);
	if (rc == HOOKD_OK) {
		struct app *app = registry_app_install(p->api->reg, json_incref(p->json));
		if (req)
			api_send(req, 201, app ? json_incref(app->json) : json_object());
	} else if (req) {
		api_store_failed(req, rc);
	}
	api_pending_free(p);
}

static void api_apps_create(struct api *a, struct evhttp_request *req)
{
	json_t *body = api_body_json(a, req, 1), *v;
	const char *key, *id = NULL, *name = NULL;
	char idbuf[ID_MAX], iso[CLOCK_ISO_LEN];
	struct api_pending *p;
	char *text;
	int64_t now = clock_now_ms();

	if (!body)
		return;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "id") == 0) {
			if (!json_is_string(v) || !id_valid(json_string_value(v))) {
				api_error(req, 400, "invalid_field", "id", "id must match [A-Za-z0-9_-]{1,64}");
				goto out;
			}
			id = json_string_value(v);
		} else if (strcmp(key, "name") == 0) {
			if (!json_is_string(v) || !*json_string_value(v) || strlen(json_string_value(v)) > 256) {
				api_error(req, 400, "invalid_field", "name", "name must be a non-empty string of at most 256 bytes");
				goto out;
			}
			name = json_string_value(v);
		} else {
			api_error(req, 400, "invalid_field", key, "unknown field '%.80s'", key);
			goto out;
		}
	}
	if (!name) {
		api_error(req, 400, "missing_field", "name", "name is required");
		goto out;
	}
	if (!id) {
		id_make("app_", now, idbuf);
		id = idbuf;
	}
	if (registry_app(a->reg, id)) {
		api_error(req, 409, "conflict", "id", "app '%s' already exists", id);
		goto out;
	}
	clock_iso8601(now, iso);
	p = api_pending_new(a, req);
	if (!p)
		goto oom;
	p->json = json_pack("{s:s, s:s, s:s}", "id", id, "name", name, "created_at", iso);
	text = json_dumps(p->json, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text || store_kv_submit(a->store, a->store->apps, id, strlen(id), text, strlen(text),
				     api_app_saved, p) != HOOKD_OK) {
		free(text);
		api_pending_take(p);
		api_pending_free(p);
		goto oom;
	}
	free(text);
	goto out;
oom:
	api_error(req, 500, "internal", NULL, "out of memory");
out:
	json_decref(body);
}

struct api_collect {
	json_t *arr;
};

static void api_collect_app(const char *key, void *value, void *arg)
{
	json_array_append(((struct api_collect *)arg)->arr, ((struct app *)value)->json);
}

static void api_collect_ep(const char *key, void *value, void *arg)
{
	json_array_append_new(((struct api_collect *)arg)->arr, endpoint_api_view(value));
}

static int api_cmp_id(const void *x, const void *y)
{
	const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	return strcmp(json_string_value(json_object_get(a, "id")) ?: "",
		      json_string_value(json_object_get(b, "id")) ?: "");
}

/* Returns arr's items sorted by id in a new array (strmap order is arbitrary). */
static json_t *api_sorted(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **items = calloc(n + 1, sizeof(*items)), *out = json_array();
	for (size_t i = 0; i < n; i++)
		items[i] = json_array_get(arr, i);
	qsort(items, n, sizeof(*items), api_cmp_id);
	for (size_t i = 0; i < n; i++)
		json_array_append(out, items[i]);
	free(items);
	json_decref(arr);
	return out;
}

/* ---------- endpoints ---------- */

static void api_endpoint_saved(void *arg, int rc)
{
	struct api_pending *p = arg;
	struct evhttp_request *req = api_pending_take(p);
	struct app *app = registry_app(p->api->reg, p->id);
	char err[256];

	if (rc != HOOKD_OK || !app) {
		if (req)
			api_store_failed(req, rc == HOOKD_OK ? HOOKD_ENOTFOUND : rc);
		api_pending_free(p);
		return;
	}
	int creating = p->data == (void *)1, rotating = p->data == (void *)2;
	struct endpoint *ep = registry_endpoint_install(p->api->reg, app, json_incref(p->json), err,
							sizeof(err));
	if (!ep) {
		if (req)
			api_error(req, 500, "internal", NULL, "endpoint stored but not loaded: %s", err);
	} else {
		dispatch_endpoint_changed(p->api->disp, ep);
		if (req && rotating) {
			json_t *view = endpoint_api_view(ep), *out;
			char iso[CLOCK_ISO_LEN];
			out = json_pack("{s:O}", "secret", json_object_get(view, "secret"));
			if (json_object_get(view, "public_key"))
				json_object_set(out, "public_key", json_object_get(view, "public_key"));
			/* When the previous secrets stop signing (now, for a zero grace period). */
			clock_iso8601(p->now_ms, iso);
			json_object_set_new(out, "previous_expires_at", json_string(iso));
			json_decref(view);
			api_send(req, 200, out);
		} else if (req) {
			api_send(req, creating ? 201 : 200, endpoint_api_view(ep));
		}
	}
	api_pending_free(p);
}

/* kind: 0 update, 1 create, 2 secret rotation (decides the answer). */
static int api_endpoint_save(struct api *a, struct evhttp_request *req, struct app *app,
			     json_t *stored, int kind, int64_t previous_expires_ms)
{
	struct api_pending *p = api_pending_new(a, req);
	char key[320];
	char *text;
	size_t klen;
	if (!p) {
		json_decref(stored);
		return HOOKD_ENOMEM;
	}
	snprintf(p->id, sizeof(p->id), "%s", app->id);
	p->json = stored;
	p->data = (void *)(intptr_t)kind;
	p->now_ms = previous_expires_ms;
	klen = registry_endpoint_key(app->id, json_string_value(json_object_get(stored, "id")), key);
	text = json_dumps(stored, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text || store_kv_submit(a->store, a->store->endpoints, key, klen, text, strlen(text),
				     api_endpoint_saved, p) != HOOKD_OK) {
		free(text);
		api_pending_take(p);
		api_pending_free(p);
		return HOOKD_ENOMEM;
	}
	free(text);
	return HOOKD_OK;
}

static void api_endpoints_create(struct api *a, struct evhttp_request *req, struct app *app)
{
	json_t *body = api_body_json(a, req, 1), *stored;
	char field[128], msg[512];
	const char *id;
	if (!body)
		return;
	stored = endpoint_json_merge(NULL, body, app->id, clock_now_ms(), field, sizeof(field), msg,
				     sizeof(msg));
	json_decref(body);
	if (!stored) {
		api_error(req, 400, strstr(msg, "required") ? "missing_field" : "invalid_field", field,
			  "%s", msg);
		return;
	}
	id = json_string_value(json_object_get(stored, "id"));
	if (strmap_get(&app->endpoints, id)) {
		api_error(req, 409, "conflict", "id", "endpoint '%s' already exists in app '%s'", id,
			  app->id);
		json_decref(stored);
		return;
	}
	if (api_endpoint_save(a, req, app, stored, 1, 0) != HOOKD_OK)
		api_error(req, 500, "internal", NULL, "out of memory");
}

static void api_endpoint_patch(struct api *a, struct evhttp_request *req, struct app *app,
			       struct endpoint *ep)
{
	json_t *body = api_body_json(a, req, 1), *stored;
	char field[128], msg[512];
	if (!body)
		return;
	stored = endpoint_json_merge(ep->json, body, app->id, clock_now_ms(), field, sizeof(field),
				     msg, sizeof(msg));
	json_decref(body);
	if (!stored) {
		api_error(req, 400, "invalid_field", field, "%s", msg);
		return;
	}
	if (api_endpoint_save(a, req, app, stored, 0, 0) != HOOKD_OK)
		api_error(req, 500, "internal", NULL, "out of memory");
}

static void api_endpoint_rotate(struct api *a, struct evhttp_request *req, struct app *app,
				struct endpoint *ep)
{
	json_t *body = api_body_json(a, req, 0), *stored = NULL, *secrets, *v, *old;
	const char *key, *secret = NULL, *type = NULL;
	json_int_t grace = 86400;
	char text[SIGN_TEXT_MAX], kerr[160];
	struct sign_key k;
	int64_t now = clock_now_ms();
	size_t i;

	if (!body)
		return;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "secret") == 0 && json_is_string(v)) {
			secret = json_string_value(v);
		} else if (strcmp(key, "secret_type") == 0 && json_is_string(v) &&
			   (strcmp(json_string_value(v), "hmac") == 0 ||
			    strcmp(json_string_value(v), "ed25519") == 0)) {
			type = json_string_value(v);
		} else if (strcmp(key, "grace_period_s") == 0 && json_is_integer(v) &&
			   json_integer_value(v) >= 0 && json_integer_value(v) <= 7 * 86400) {
			grace = json_integer_value(v);
		} else {
			api_error(req, 400, "invalid_field", key,
				  "'%.80s' is not valid here: expected secret (string), secret_type "
				  "(\"hmac\"|\"ed25519\") or grace_period_s (0..604800)", key);
			goto out;
		}
	}
	if (secret) {
		if (sign_key_parse(secret, &k, kerr, sizeof(kerr)) != HOOKD_OK || k.kind == SIGN_ED25519_PUBLIC) {
			api_error(req, 400, "invalid_field", "secret", "invalid secret: %s",
				  k.kind == SIGN_ED25519_PUBLIC ? "a whpk_ public key cannot sign" : kerr);
			goto out;
		}
		snprintf(text, sizeof(text), "%s", secret);
	} else {
		enum sign_kind kind = type ? (strcmp(type, "ed25519") == 0 ? SIGN_ED25519 : SIGN_HMAC)
					   : ep->secrets[0].key.kind;
		if (sign_key_generate(kind, text, sizeof(text)) != HOOKD_OK) {
			api_error(req, 500, "internal", NULL, "could not generate a secret");
			goto out;
		}
		sign_key_parse(text, &k, NULL, 0);
	}
	stored = json_deep_copy(ep->json);
	old = json_object_get(stored, "secrets");
	secrets = json_array();
	json_array_append_new(secrets, json_pack("{s:s, s:I}", "secret", text, "expires_at_ms", (json_int_t)0));
	json_array_foreach(old, i, v) {
		json_int_t exp = json_integer_value(json_object_get(v, "expires_at_ms"));
		json_int_t new_exp = now + grace * 1000;
		if (json_array_size(secrets) >= ENDPOINT_MAX_SECRETS)
			break;
		if (exp && exp < new_exp)
			new_exp = exp;
		if (grace == 0)
			continue;
		json_array_append_new(secrets, json_pack("{s:O, s:I}", "secret", json_object_get(v, "secret"),
							 "expires_at_ms", new_exp));
	}
	json_object_set_new(stored, "secrets", secrets);
	json_object_set_new(stored, "secret_type", json_string(k.kind == SIGN_HMAC ? "hmac" : "ed25519"));
	if (api_endpoint_save(a, req, app, stored, 2, now + grace * 1000) != HOOKD_OK)
		api_error(req, 500, "internal", NULL, "out of memory");
out:
	json_decref(body);
}

static void api_endpoint_deleted(void *arg, int rc)
{
	struct api_pending *p = arg;
	struct evhttp_request *req = api_pending_take(p);
	struct app *app = registry_app(p->api->reg, p->id);
	struct endpoint *ep = app ? strmap_get(&app->endpoints, p->id + strlen(p->id) + 1) : NULL;
	if (rc == HOOKD_OK && ep) {
		endpoint_ref(ep);
		registry_endpoint_remove(p->api->reg, app, ep);
		dispatch_endpoint_deleted(p->api->disp, ep);
		endpoint_unref(ep);
	}
	if (req) {
		if (rc == HOOKD_OK) {
			evhttp_send_reply(req, 204, NULL, NULL);
		} else {
			api_store_failed(req, rc);
		}
	}
	api_pending_free(p);
}

static void api_endpoint_delete(struct api *a, struct evhttp_request *req, struct app *app,
				struct endpoint *ep)
{
	struct api_pending *p = api_pending_new(a, req);
	char key[320];
	size_t klen = registry_endpoint_key(app->id, ep->id, key);
	if (!p || klen >= sizeof(p->id) ||
	    store_kv_submit(a->store, a->store->endpoints, key, klen, NULL, 0, api_endpoint_deleted,
			    p) != HOOKD_OK) {
		if (p) {
			api_pending_take(p);
			api_pending_free(p);
		}
		api_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	memcpy(p->id, key, klen);
	p->id[klen] = 0;
}

/* ---------- messages ---------- */

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

static void api_messages_create(struct api *a, struct evhttp_request *req, struct app *app)
{
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

/* The deliveries of a message: records under "dlv_<ulid>_" (fan-out's id scheme), and the
 * policy deliveries that are out but not stored yet (dispatch_add_unstored), in id order. */
static json_t *api_message_deliveries(struct api *a, MDB_txn *txn, const char *msg_id,
				      json_t **dlv_ids)
{
	json_t *arr = json_array();
	char prefix[ID_MAX + 8];
	size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "dlv_%s_", msg_id + 4);
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

static json_t *api_message_load(struct api *a, MDB_txn *txn, const char *app_id,
				const char *msg_id)
{
	char k[400];
	size_t klen = api_prefix_key(k, app_id, msg_id);
	MDB_val key = {klen, k}, v;
	if (strlen(msg_id) < 5 || mdb_get(txn, a->store->messages, &key, &v) != 0)
		return NULL;
	return json_loadb(v.mv_data, v.mv_size, 0, NULL);
}

static void api_message_get(struct api *a, struct evhttp_request *req, struct app *app,
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

static void api_messages_list(struct api *a, struct evhttp_request *req, struct app *app,
			      struct evkeyvalq *q)
{
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

/* ---------- dead letters ---------- */

static void api_dead_list(struct api *a, struct evhttp_request *req, struct app *app,
			  struct evkeyvalq *q)
{
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

static void api_dead_redrive(struct api *a, struct evhttp_request *req, struct app *app)
{
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

/* ---------- metrics ---------- */

static void api_metrics(struct api *a, struct evhttp_request *req)
{
	struct dispatch_stats ds;
	struct store_space sp;
	struct evbuffer *buf = evbuffer_new();
	dispatch_get_stats(a->disp, &ds);
	store_get_space(a->store, &sp);
	evbuffer_add_printf(buf,
			    "# TYPE hookd_messages_published_total counter\nhookd_messages_published_total %llu\n"
			    "# TYPE hookd_publish_rejected_total counter\nhookd_publish_rejected_total %llu\n"
			    "# TYPE hookd_attempts_total counter\nhookd_attempts_total %llu\n"
			    "# TYPE hookd_deliveries_succeeded_total counter\nhookd_deliveries_succeeded_total %llu\n"
			    "# TYPE hookd_attempts_failed_total counter\nhookd_attempts_failed_total %llu\n"
			    "# TYPE hookd_deliveries_dead_total counter\nhookd_deliveries_dead_total %llu\n"
			    "# TYPE hookd_deliveries_filtered_total counter\nhookd_deliveries_filtered_total %llu\n"
			    "# TYPE hookd_policy_errors_total counter\nhookd_policy_errors_total %llu\n"
			    "# TYPE hookd_inflight gauge\nhookd_inflight %u\n"
			    "# TYPE hookd_pending gauge\nhookd_pending %zu\n"
			    "# TYPE hookd_store_commits_total counter\nhookd_store_commits_total %llu\n"
			    "# TYPE hookd_store_ops_total counter\nhookd_store_ops_total %llu\n"
			    "# TYPE hookd_store_commit_seconds_total counter\nhookd_store_commit_seconds_total %.6f\n",
			    (unsigned long long)a->published, (unsigned long long)a->publish_rejected,
			    (unsigned long long)ds.attempts, (unsigned long long)ds.succeeded,
			    (unsigned long long)ds.failed, (unsigned long long)ds.dead,
			    (unsigned long long)a->fstats.filtered,
			    (unsigned long long)a->fstats.policy_errors, ds.inflight, ds.pending,
			    (unsigned long long)a->store->stat_commits,
			    (unsigned long long)a->store->stat_ops, a->store->stat_commit_ns / 1e9);
	evbuffer_add_printf(buf,
			    "# HELP hookd_store_map_bytes storage.map_size\n"
			    "# TYPE hookd_store_map_bytes gauge\nhookd_store_map_bytes %llu\n"
			    "# HELP hookd_store_used_bytes Store pages in use (free list excluded)\n"
			    "# TYPE hookd_store_used_bytes gauge\nhookd_store_used_bytes %llu\n"
			    "# HELP hookd_store_reserved_bytes Room kept for outcomes of pending deliveries\n"
			    "# TYPE hookd_store_reserved_bytes gauge\nhookd_store_reserved_bytes %llu\n"
			    "# HELP hookd_store_budget_bytes Map size minus the base reserve\n"
			    "# TYPE hookd_store_budget_bytes gauge\nhookd_store_budget_bytes %llu\n"
			    "# HELP hookd_store_full 1 while publishes are refused with 507\n"
			    "# TYPE hookd_store_full gauge\nhookd_store_full %d\n"
			    "# HELP hookd_store_waiting_writes Delivery state changes waiting for space\n"
			    "# TYPE hookd_store_waiting_writes gauge\nhookd_store_waiting_writes %llu\n",
			    (unsigned long long)sp.map_bytes, (unsigned long long)sp.used_bytes,
			    (unsigned long long)sp.reserved_bytes, (unsigned long long)sp.budget_bytes,
			    sp.full, (unsigned long long)sp.waiting_writes);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, NULL, buf);
	evbuffer_free(buf);
}

/* ---------- routing ---------- */

/* The methods the API names in Allow, in this order. */
static const struct {
	int method;
	const char *name;
} api_method_names[] = {
	{EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_POST, "POST"},
	{EVHTTP_REQ_PUT, "PUT"},       {EVHTTP_REQ_PATCH, "PATCH"},
	{EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_OPTIONS, "OPTIONS"},
};

/* The methods a route serves, from the shape of its path alone (0: no such route). Whether
 * the app or endpoint it names exists is the handler's business (404). */
static int api_route_methods(char **seg, int nseg)
{
	const int get = EVHTTP_REQ_GET, post = EVHTTP_REQ_POST;
	if (nseg == 1 && (strcmp(seg[0], "healthz") == 0 || strcmp(seg[0], "metrics") == 0))
		return get;
	if (nseg < 2 || strcmp(seg[0], "v1") != 0 || nseg > API_MAX_SEGMENTS)
		return 0;
	if (strcmp(seg[1], "policies") == 0) {
		if (nseg == 2)
			return get;
		if (nseg == 3)
			return get | EVHTTP_REQ_PUT;
		return nseg == 4 && strcmp(seg[3], "test") == 0 ? post : 0;
	}
	if (strcmp(seg[1], "apps") != 0)
		return 0;
	if (nseg == 2)
		return get | post;
	if (nseg == 3)
		return get;
	if (strcmp(seg[3], "endpoints") == 0) {
		if (nseg == 4)
			return get | post;
		if (nseg == 5)
			return get | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE;
		return nseg == 7 && strcmp(seg[5], "secret") == 0 && strcmp(seg[6], "rotate") == 0
			       ? post
			       : 0;
	}
	if (strcmp(seg[3], "messages") == 0) {
		if (nseg == 4)
			return get | post;
		return nseg == 5 || (nseg == 6 && strcmp(seg[5], "attempts") == 0) ? get : 0;
	}
	if (strcmp(seg[3], "dead") == 0) {
		if (nseg == 4)
			return get;
		return nseg == 5 && strcmp(seg[4], "redrive") == 0 ? post : 0;
	}
	return 0;
}

/* Sets Allow to methods (plus OPTIONS, which every route answers). */
static void api_allow_set(struct evhttp_request *req, int methods)
{
	char allow[64] = "";
	size_t len = 0;
	methods |= EVHTTP_REQ_OPTIONS;
	for (size_t i = 0; i < sizeof(api_method_names) / sizeof(api_method_names[0]); i++)
		if (methods & api_method_names[i].method)
			len += (size_t)snprintf(allow + len, sizeof(allow) - len, "%s%s",
						len ? ", " : "", api_method_names[i].name);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
}

/* OPTIONS: 204 with Allow. Any other method the route does not serve: 405 with Allow
 * (HEAD, TRACE, CONNECT and names evhttp does not know, such as FOO, included). Returns 1
 * when it answered. */
static int api_method_check(struct evhttp_request *req, int method, int methods,
			    const char *path)
{
	if (method == EVHTTP_REQ_OPTIONS) {
		api_allow_set(req, methods);
		evhttp_send_reply(req, 204, NULL, NULL);
		return 1;
	}
	if (method & methods)
		return 0;
	api_allow_set(req, methods);
	api_error(req, 405, "method_not_allowed", NULL, "method not allowed on %.200s (see Allow)",
		  path);
	return 1;
}

/* Splits path into percent-decoded segments (in buf). A segment that decodes to a control
 * character (0x00-0x1F, 0x7F) is refused: a NUL would silently cut an id short
 * ("/v1/apps/ab%00/endpoints" acting on app "ab"), and no id or name contains one.
 * Returns the number of segments, or -1 after answering 400 (or 500). */
static int api_path_split(struct evhttp_request *req, const char *path, char *buf,
			  size_t buflen, char **seg)
{
	char *save = NULL, *tok;
	int nseg = 0;
	snprintf(buf, buflen, "%s", path);
	for (tok = strtok_r(buf, "/", &save); tok && nseg <= API_MAX_SEGMENTS;
	     tok = strtok_r(NULL, "/", &save)) {
		size_t n = 0;
		char *dec = evhttp_uridecode(tok, 0, &n);
		if (!dec) {
			api_error(req, 500, "internal", NULL, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)dec[i];
			if (ch < 0x20 || ch == 0x7f) {
				api_error(req, 400, "invalid_path", NULL,
					  "path segment %d '%.80s' contains a control character "
					  "(0x%02X) once decoded; ids and names never do",
					  nseg + 1, tok, ch);
				free(dec);
				return -1;
			}
		}
		memcpy(tok, dec, n + 1); /* decoding never lengthens a segment */
		free(dec);
		seg[nseg++] = tok;
	}
	return nseg;
}

static void api_route(struct evhttp_request *req, void *arg)
{
	struct api *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
	int method = evhttp_request_get_command(req);
	char pathbuf[1024], *seg[API_MAX_SEGMENTS + 1];
	int nseg, methods;
	struct evkeyvalq q;
	struct app *app;
	struct endpoint *ep;

	TAILQ_INIT(&q);
	if (!path || strlen(path) >= sizeof(pathbuf)) {
		api_error(req, 404, "not_found", NULL, "no such route");
		return;
	}
	if (query && evhttp_parse_query_str(query, &q) != 0) {
		api_error(req, 400, "invalid_field", NULL, "malformed query string");
		return;
	}
	if ((nseg = api_path_split(req, path, pathbuf, sizeof(pathbuf), seg)) < 0)
		goto out;
	methods = api_route_methods(seg, nseg);

	if (nseg == 1 && strcmp(seg[0], "healthz") == 0) {
		if (!api_method_check(req, method, methods, path))
			api_send(req, 200, json_pack("{s:s}", "status", "ok"));
		goto out;
	}
	if (!api_authorized(a, req)) {
		api_error(req, 401, "unauthorized", NULL,
			  "missing or wrong bearer key (Authorization: Bearer <api.admin_key>)");
		goto out;
	}
	if (!methods)
		goto notfound;
	if (api_method_check(req, method, methods, path))
		goto out;
	if (nseg == 1 && strcmp(seg[0], "metrics") == 0) {
		api_metrics(a, req);
		goto out;
	}
	if (strcmp(seg[1], "policies") == 0) {
		api_policies_route(a, req, method, seg, nseg);
		goto out;
	}
	if (strcmp(seg[1], "apps") != 0)
		goto notfound;
	if (nseg == 2) {
		if (method == EVHTTP_REQ_POST)
			api_apps_create(a, req);
		else if (method == EVHTTP_REQ_GET) {
			struct api_collect c = {json_array()};
			strmap_each(&a->reg->apps, api_collect_app, &c);
			api_send(req, 200, json_pack("{s:o}", "data", api_sorted(c.arr)));
		} else
			goto badmethod;
		goto out;
	}
	app = registry_app(a->reg, seg[2]);
	if (!app) {
		api_error(req, 404, "not_found", NULL, "app '%.80s' not found", seg[2]);
		goto out;
	}
	if (nseg == 3) {
		if (method != EVHTTP_REQ_GET)
			goto badmethod;
		api_send(req, 200, json_incref(app->json));
		goto out;
	}
	if (strcmp(seg[3], "endpoints") == 0) {
		if (nseg == 4) {
			if (method == EVHTTP_REQ_POST)
				api_endpoints_create(a, req, app);
			else if (method == EVHTTP_REQ_GET) {
				struct api_collect c = {json_array()};
				strmap_each(&app->endpoints, api_collect_ep, &c);
				api_send(req, 200, json_pack("{s:o}", "data", api_sorted(c.arr)));
			} else
				goto badmethod;
			goto out;
		}
		ep = strmap_get(&app->endpoints, seg[4]);
		if (!ep) {
			api_error(req, 404, "not_found", NULL, "endpoint '%.80s' not found in app '%s'",
				  seg[4], app->id);
			goto out;
		}
		if (nseg == 5) {
			if (method == EVHTTP_REQ_GET)
				api_send(req, 200, endpoint_api_view(ep));
			else if (method == EVHTTP_REQ_PATCH)
				api_endpoint_patch(a, req, app, ep);
			else if (method == EVHTTP_REQ_DELETE)
				api_endpoint_delete(a, req, app, ep);
			else
				goto badmethod;
			goto out;
		}
		if (nseg == 7 && strcmp(seg[5], "secret") == 0 && strcmp(seg[6], "rotate") == 0) {
			if (method != EVHTTP_REQ_POST)
				goto badmethod;
			api_endpoint_rotate(a, req, app, ep);
			goto out;
		}
		goto notfound;
	}
	if (strcmp(seg[3], "messages") == 0) {
		if (nseg == 4) {
			if (method == EVHTTP_REQ_POST)
				api_messages_create(a, req, app);
			else if (method == EVHTTP_REQ_GET)
				api_messages_list(a, req, app, &q);
			else
				goto badmethod;
			goto out;
		}
		if (nseg == 5 || (nseg == 6 && strcmp(seg[5], "attempts") == 0)) {
			if (method != EVHTTP_REQ_GET)
				goto badmethod;
			api_message_get(a, req, app, seg[4], nseg == 6);
			goto out;
		}
		goto notfound;
	}
	if (strcmp(seg[3], "dead") == 0) {
		if (nseg == 4 && method == EVHTTP_REQ_GET) {
			api_dead_list(a, req, app, &q);
			goto out;
		}
		if (nseg == 5 && strcmp(seg[4], "redrive") == 0) {
			if (method != EVHTTP_REQ_POST)
				goto badmethod;
			api_dead_redrive(a, req, app);
			goto out;
		}
		if (nseg == 4)
			goto badmethod;
	}
notfound:
	api_error(req, 404, "not_found", NULL, "no such route: %s", path);
	goto out;
badmethod: /* not reached while api_route_methods agrees with the handlers above */
	api_allow_set(req, methods);
	api_error(req, 405, "method_not_allowed", NULL, "method not allowed on %.200s (see Allow)",
		  path);
out:
	evhttp_clear_headers(&q);
}

int api_new(struct event_base *base, struct store *store, struct registry *reg,
	    struct dispatch *disp, struct policy_engine *policies, struct worker *worker,
	    const struct config *cfg, struct api **out)
{
	struct api *a = calloc(1, sizeof(*a));
	if (!a)
		return HOOKD_ENOMEM;
	a->base = base;
	a->store = store;
	a->reg = reg;
	a->disp = disp;
	a->policies = policies;
	a->worker = worker;
	a->cfg = cfg;
	a->fanout.store = store;
	a->fanout.disp = disp;
	a->fanout.reg = reg;
	a->fanout.policies = policies;
	a->fanout.worker = worker;
	a->fanout.stats = &a->fstats;
	if (cfg->admin_key && *cfg->admin_key) {
		crypto_generichash(a->key_hash, sizeof(a->key_hash),
				   (const unsigned char *)cfg->admin_key, strlen(cfg->admin_key), NULL, 0);
		a->has_key = 1;
	}
	a->http = evhttp_new(base);
	if (!a->http) {
		free(a);
		return HOOKD_ENOMEM;
	}
	if (api_conns_new(base, a->http, cfg, &a->conns) != HOOKD_OK) {
		evhttp_free(a->http);
		free(a);
		return HOOKD_ENOMEM;
	}
	/* A body over limits.max_payload_bytes is refused by the connection layer from its
	 * Content-Length or chunk sizes, before it is read (api_conn.h), and api_body_json
	 * checks again. evhttp's own limit, max(4 x limit, 1 MiB), is a backstop: past it evhttp
	 * answers its own 413 and, with lingering close, drains what the client still sends. */
	size_t cutoff = cfg->max_payload_bytes * 4;
	if (cutoff < 1024 * 1024)
		cutoff = 1024 * 1024;
	evhttp_set_max_body_size(a->http, (ev_ssize_t)cutoff);
	evhttp_set_flags(a->http, EVHTTP_SERVER_LINGERING_CLOSE);
	/* Every method reaches api_route, which answers 405 with Allow (or 204 to OPTIONS)
	 * for what a route does not serve; evhttp itself would answer 501, a server error. The
	 * top bit is evhttp's mark for a method it does not know (FOO). */
	evhttp_set_allowed_methods(a->http, 0xffff);
	evhttp_set_gencb(a->http, api_route, a);
	*out = a;
	return HOOKD_OK;
}

int api_listen(struct api *a, const char *host, uint16_t port, uint16_t *bound_port, char *err,
	       size_t errlen)
{
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(a->http, host, port);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (!bs) {
		snprintf(err, errlen, "cannot listen on %s:%u (address in use or not local?)", host, port);
		return HOOKD_EIO;
	}
	api_conns_attach(a->conns, bs);
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			*bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else
			*bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return HOOKD_OK;
}

void api_close(struct api *a)
{
	if (a && a->http) {
		api_conns_detach(a->conns); /* evhttp_free frees the listener */
		evhttp_free(a->http);
		a->http = NULL;
	}
}

void api_free(struct api *a)
{
	if (!a)
		return;
	api_close(a);
	api_conns_free(a->conns);
	free(a);
}
