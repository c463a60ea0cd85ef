/* api_messages.c - /v1/apps/{app}/messages: publish, list, read a message with its deliveries and attempts. */
#include "api-t.h"

#include "clock.h"
#include "config.h"
#include "delivery.h"
#include "dispatch.h"
#include "err.h"
#include "fanout.h"
#include "id.h"
#include "json_scan.h"
#include "jsontext.h"
#include "policy.h"
#include "record.h"
#include "registry.h"
#include "store.h"

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
/* The longest "source" label accepted, in bytes (the limit the API has always had). */
#define API_SOURCE_MAX 128

static void api_published(struct store_batch *b)
{
	struct api_pending *p = store_batch_arg(b);
	struct api *a = p->api;
	struct evhttp_request *req = api_pending_take(p);
	int rc = store_batch_rc(b);

	if (rc == HOOKD_OK) {
		for (size_t i = 0; i < p->n_dvs; i++)
			dispatch_add(a->disp, p->dvs[i]);
		p->n_dvs = 0;
		a->published++;
		if (req)
			api_send(req, 202, json_incref(p->json));
		if (p->n_policy) {
			fanout_defer(&a->fanout, p->app->id, p->id, body_ref(p->envelope),
				     p->policy_dvs, p->n_policy);
			p->policy_dvs = NULL;
			p->n_policy = 0;
		}
	} else if (rc == HOOKD_EDUPLICATE) {
		if (req)
			api_send(req, 200, json_pack("{s:s, s:b}", "id", store_publish_duplicate(b),
						     "duplicate", 1));
	} else {
		a->publish_rejected++;
		if (req)
			api_store_failed(req, rc);
	}
	api_pending_free(p);
}

/* Stores the message, its deliveries and the idempotency key in one op (fanout_publish); the
 * answer goes out from api_published once that op is committed. Takes p (answers errors
 * itself). */
static void api_publish_commit(struct api_pending *p)
{
	struct api *a = p->api;
	struct fanout_publish pub = {
		.app_id = p->app->id,
		.msg_id = p->id,
		.envelope = p->text,
		.dvs = p->dvs,
		.n_dvs = p->n_dvs,
		.deferred = p->n_policy > 0,
		.idem_key = p->idem,
		.now_ms = p->now_ms,
		.idem_expires_ms = p->now_ms + API_IDEMPOTENCY_MS,
	};
	int rc = fanout_publish(a->store, &pub, api_published, p);
	if (rc != HOOKD_OK) {
		struct evhttp_request *req = api_pending_take(p);
		if (req)
			api_store_failed(req, rc);
		api_pending_free(p);
	}
}

/* A publish request once read and checked (api_publish_read). The members of sc point into
 * body (the request's input buffer, len bytes, as long as the request lives); type and, when
 * given, version and source are decoded here; idem is the Idempotency-Key header (NULL when
 * absent), owned by the request. id, iso and now_ms are the message's id and time, given once
 * the request is accepted. */
struct api_publish_msg {
	const char *body;
	struct json_scan sc;
	const struct json_member *data, *version_m, *source_m;
	const char *idem;
	char type[REGISTRY_TYPE_MAX + 1];
	char version[64];
	char source[API_SOURCE_MAX + 1];
	char id[ID_MAX], iso[CLOCK_ISO_LEN];
	int64_t now_ms;
};

/* Decodes string value v of the body into out (cap bytes with the NUL). 1 if it is a string
 * of at most cap - 1 bytes once decoded, 0 else; *n is its decoded length either way. */
static int api_publish_string(const struct api_publish_msg *m, const struct json_member *v,
			      char *out, size_t cap, size_t *n)
{
	*n = 0;
	if (m->body[v->value.off] != '"')
		return 0;
	*n = json_scan_string(m->body + v->value.off + 1, v->value.len - 2, out, cap - 1);
	if (*n >= cap)
		return 0;
	out[*n] = 0;
	return 1;
}

/* Checks one member of the request body into m. HOOKD_EINVAL once it answered 400 (or 500
 * when out of memory). The checks and their words are those of the tree-based reader this
 * replaced: a string's length is its decoded length. */
static int api_publish_field(struct evhttp_request *req, const struct json_member *v,
			     struct api_publish_msg *m)
{
	/* The longest name, "version", and its NUL: a longer key is unknown whatever it holds. */
	char key[8];
	size_t n = json_scan_string(m->body + v->key.off, v->key.len, key, sizeof(key) - 1);

	key[n < sizeof(key) ? n : 0] = 0;
	if (strcmp(key, "type") == 0) {
		if (!api_publish_string(m, v, m->type, sizeof(m->type), &n) ||
		    !registry_type_valid(m->type)) {
			api_error(req, 400, "invalid_field", "type",
				  "type must be segments of [A-Za-z0-9_-] joined by '.', at most 128 bytes");
			return HOOKD_EINVAL;
		}
	} else if (strcmp(key, "data") == 0) {
		if (m->body[v->value.off] != '{') {
			api_error(req, 400, "invalid_field", "data", "data must be a JSON object");
			return HOOKD_EINVAL;
		}
		m->data = v;
	} else if (strcmp(key, "version") == 0) {
		if (!api_publish_string(m, v, m->version, sizeof(m->version), &n) || n == 0) {
			api_error(req, 400, "invalid_field", "version", "version must be a non-empty string of at most %zu bytes", sizeof(m->version) - 1);
			return HOOKD_EINVAL;
		}
		m->version_m = v;
	} else if (strcmp(key, "source") == 0) {
		if (!api_publish_string(m, v, m->source, sizeof(m->source), &n)) {
			api_error(req, 400, "invalid_field", "source", "source must be a string of at most %d bytes", API_SOURCE_MAX);
			return HOOKD_EINVAL;
		}
		m->source_m = v;
	} else {
		/* The whole key, decoded, names the field (the message shows its first 80 bytes). */
		char *name = malloc(v->key.len + 1);
		if (!name) {
			api_error(req, 500, "internal", NULL, "out of memory");
			return HOOKD_EINVAL;
		}
		name[json_scan_string(m->body + v->key.off, v->key.len, name, v->key.len)] = 0;
		api_error(req, 400, "invalid_field", name, "unknown field '%.80s' (expected type, data, version, source)", name);
		free(name);
		return HOOKD_EINVAL;
	}
	return HOOKD_OK;
}

/* Reads the request body's fields, in their order, and the Idempotency-Key header into m,
 * so the first mistake is the one named. HOOKD_EINVAL once it answered 400. */
static int api_publish_read(struct evhttp_request *req, struct api_publish_msg *m)
{
	m->idem = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
	/* Only the first JSON_SCAN_MEMBERS members are recorded, and that is enough: keys are
	 * unique, so of any five members one is not type, data, version or source, and the
	 * walk stops at the first mistake. */
	for (size_t i = 0; i < m->sc.n_members && i < JSON_SCAN_MEMBERS; i++) {
		if (api_publish_field(req, &m->sc.member[i], m) != HOOKD_OK)
			return HOOKD_EINVAL;
	}
	if (!m->type[0]) {
		api_error(req, 400, "missing_field", "type", "type is required");
		return HOOKD_EINVAL;
	}
	if (!m->data) {
		api_error(req, 400, "missing_field", "data", "data is required");
		return HOOKD_EINVAL;
	}
	if (m->idem && (strlen(m->idem) == 0 || strlen(m->idem) > API_IDEMPOTENCY_KEY_MAX)) {
		api_error(req, 400, "invalid_field", "Idempotency-Key",
			  "Idempotency-Key must be 1 to %d bytes", API_IDEMPOTENCY_KEY_MAX);
		return HOOKD_EINVAL;
	}
	return HOOKD_OK;
}

/* Scans the request body into m->sc. HOOKD_OK, or HOOKD_EINVAL once it answered 400/413.
 * Every refused body is handed to api_body_json, which words the answer exactly as for any
 * other route (jansson's line, column and reason): json_scan refuses exactly what jansson
 * refuses (json_scan.h), and refusals are rare enough for a second parse. */
static int api_publish_scan(struct api *a, struct evhttp_request *req, struct api_publish_msg *m)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_t *j;

	m->body = len ? (const char *)evbuffer_pullup(in, -1) : NULL;
	if (m->body && len <= a->cfg->max_payload_bytes &&
	    json_scan(m->body, len, &m->sc) == HOOKD_OK && m->sc.top == '{')
		return HOOKD_OK;
	if (!(j = api_body_json(a, req, 1)))
		return HOOKD_EINVAL;
	/* jansson took what the scanner refused: a NUL byte after a number or a literal, which
	 * jansson skips and the scanner does not (json_scan.h), answered in the scanner's
	 * words. (Anything else would be a scanner defect, which test_json_scan's differential
	 * cases and fuzz_json_scan look for.) */
	json_decref(j);
	if (m->sc.err)
		api_error(req, 400, "invalid_json", NULL, "invalid JSON at position %zu: %s",
			  m->sc.err_pos, m->sc.err);
	else
		api_error(req, 500, "internal", NULL, "out of memory");
	return HOOKD_EINVAL;
}

/* Appends string member v as json_dumps writes it: its own bytes when it holds no escape
 * (valid UTF-8 with no control character, quote or backslash, which json_dumps writes as
 * they are), else the decoded text s written by jansson. */
static void api_envelope_string(struct jsontext_buf *b, const struct api_publish_msg *m,
				const struct json_member *v, const char *s)
{
	json_t *j;
	char *t;

	if (!v->value_escaped) {
		jsontext_raw(b, m->body + v->value.off, v->value.len);
		return;
	}
	j = json_string(s);
	t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	if (t)
		jsontext_cstr(b, t);
	else
		b->failed = 1;
	free(t);
	json_decref(j);
}

/* The body every endpoint without a policy receives, and the stored message: the envelope's
 * own fields, then the producer's "data" bytes exactly as they arrived (numbers keep their
 * spelling). Byte for byte what dumping the envelope tree with jansson wrote before; a "data"
 * key written with escapes still gets its value dumped by jansson, as then. NULL when out of
 * memory; the caller frees it. */
static char *api_envelope_text(const struct api_publish_msg *m)
{
	struct jsontext_buf b = {0};

	/* id, type and timestamp are of characters JSON writes as they are. */
	jsontext_cstr(&b, "{\"id\":\"");
	jsontext_cstr(&b, m->id);
	jsontext_cstr(&b, "\",\"type\":\"");
	jsontext_cstr(&b, m->type);
	jsontext_cstr(&b, "\",\"timestamp\":\"");
	jsontext_cstr(&b, m->iso);
	jsontext_cstr(&b, "\",\"version\":");
	if (m->version_m)
		api_envelope_string(&b, m, m->version_m, m->version);
	else
		jsontext_cstr(&b, "\"1\"");
	if (m->source_m) {
		jsontext_cstr(&b, ",\"source\":");
		api_envelope_string(&b, m, m->source_m, m->source);
	}
	jsontext_cstr(&b, ",\"data\":");
	if (!m->data->key_escaped) {
		jsontext_raw(&b, m->body + m->data->value.off, m->data->value.len);
	} else {
		json_t *d = json_loadb(m->body + m->data->value.off, m->data->value.len, 0, NULL);
		char *t = d ? json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		if (t)
			jsontext_cstr(&b, t);
		else
			b.failed = 1;
		free(t);
		json_decref(d);
	}
	jsontext_cstr(&b, "}");
	if (b.failed) {
		jsontext_free(&b);
		return NULL;
	}
	return b.data;
}

/* Plans the fan-out of m (the endpoints it goes to, as deliveries of bytes) into p, with what
 * the commit and the 202 answer need. *needs_policy is set when some deliveries go through a
 * policy. HOOKD_OK, or an error for which the caller answers 500 (p frees what it got). */
static int api_publish_plan(struct api *a, struct app *app, const struct api_publish_msg *m,
			    struct body *bytes, struct api_pending *p, int *needs_policy)
{
	int rc = fanout_message(app, m->id, m->type, bytes, m->now_ms, &p->dvs, &p->n_dvs,
				needs_policy, &a->fstats);
	if (rc != HOOKD_OK)
		return rc;
	if (m->idem && !(p->idem = strdup(m->idem)))
		return HOOKD_ENOMEM;
	snprintf(p->id, sizeof(p->id), "%s", m->id);
	p->app = app;
	p->now_ms = m->now_ms;
	p->json = json_pack("{s:s, s:s, s:s}", "id", m->id, "type", m->type, "timestamp", m->iso);
	return HOOKD_OK;
}

/* Sets the policy deliveries of p apart (p->policy_dvs) from the plain ones, which are stored
 * with the message; the policy ones come after, from the envelope bytes. HOOKD_OK or
 * HOOKD_ENOMEM (p frees what it got). */
static int api_publish_defer(struct api_pending *p, struct body *envelope)
{
	size_t m = 0;

	/* The policies read the envelope as a tree: it is parsed from these bytes where they
	 * run (fanout_defer), so a publish whose endpoints have no policy never builds one. */
	p->envelope = body_ref(envelope);
	p->policy_dvs = calloc(p->n_dvs, sizeof(*p->policy_dvs));
	if (!p->policy_dvs)
		return HOOKD_ENOMEM;
	for (size_t i = 0; i < p->n_dvs; i++) {
		if (p->dvs[i]->policy_name)
			p->policy_dvs[p->n_policy++] = p->dvs[i];
		else
			p->dvs[m++] = p->dvs[i];
	}
	p->n_dvs = m;
	return HOOKD_OK;
}

/* Backpressure: how long a publisher refused for a full queue is told to wait. The queue
 * drains at the endpoints' pace, which hookd cannot promise; a second is the usual shortest
 * back-off of a client, and a client that comes back too soon is refused again at no cost. */
#define API_BACKPRESSURE_RETRY_S "1"

static void api_refuse_pending(struct evhttp_request *req, const char *fmt, uint64_t have,
			       uint64_t cap, const char *what)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
			  API_BACKPRESSURE_RETRY_S);
	api_error(req, 429, "too_many_pending", NULL, fmt, what, (unsigned long long)have,
		  (unsigned long long)cap);
}

/* The caps on pending deliveries (delivery.max_pending in all, an endpoint's max_pending or
 * delivery.max_pending_per_endpoint): a publish that would add to a queue already at its
 * cap is refused with 429 and Retry-After, before anything is stored; nothing accepted is
 * dropped. The counts are the store's (exact as of the last commit): publishes still on
 * their way to the writer are not in them, so a burst may pass a cap by what is in flight.
 * HOOKD_OK, or HOOKD_EFULL when refused (answered here); a store error lets it through (the
 * write reports it). */
static int api_publish_backpressure(struct api *a, struct evhttp_request *req,
				    const struct api_pending *p)
{
	const struct config *c = a->cfg;
	struct store_read *rd;
	uint64_t total;
	int refused = 0, any = c->max_pending > 0;

	for (size_t i = 0; i < p->n_dvs && !any; i++) {
		int64_t own = p->dvs[i]->ep->flow.max_pending;
		any = own > 0 || (own < 0 && c->max_pending_per_endpoint > 0);
	}
	if (!any || !p->n_dvs || store_read_begin(a->store, &rd) != HOOKD_OK)
		return HOOKD_OK;
	if (c->max_pending && store_read_pending_total(rd, &total) == HOOKD_OK &&
	    total >= c->max_pending) {
		api_refuse_pending(req, "%s has %llu pending deliveries (cap %llu); retry later",
				   total, c->max_pending, "the queue (delivery.max_pending)");
		refused = 1;
	}
	for (size_t i = 0; i < p->n_dvs && !refused; i++) {
		const struct endpoint *ep = p->dvs[i]->ep;
		int64_t cap = ep->flow.max_pending >= 0 ? ep->flow.max_pending
							: (int64_t)c->max_pending_per_endpoint;
		struct store_ep_counts n;
		char what[2 * ID_MAX + 64];
		if (cap <= 0 || store_read_endpoint_counts(rd, ep->app_id, ep->id, &n) != HOOKD_OK ||
		    n.pending < (uint64_t)cap)
			continue;
		snprintf(what, sizeof(what), "endpoint %s (max_pending)", ep->id);
		api_refuse_pending(req, "%s has %llu pending deliveries (cap %llu); retry later",
				   n.pending, (uint64_t)cap, what);
		refused = 1;
	}
	store_read_end(rd);
	return refused ? HOOKD_EFULL : HOOKD_OK;
}

void api_messages_create(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct api_publish_msg m = {.now_ms = clock_now_ms()};
	struct api_pending *p = NULL;
	struct body *bytes = NULL;
	char *text = NULL;
	int needs_policy = 0;

	if (api_publish_scan(a, req, &m) != HOOKD_OK || api_publish_read(req, &m) != HOOKD_OK)
		return;
	id_make("msg_", m.now_ms, m.id);
	clock_iso8601(m.now_ms, m.iso);
	text = api_envelope_text(&m);
	p = api_pending_new(a, req);
	if (!text || !p || !(bytes = body_new(text, strlen(text))))
		goto oom;
	if (api_publish_plan(a, args->app, &m, bytes, p, &needs_policy) != HOOKD_OK)
		goto oom;
	if (api_publish_backpressure(a, req, p) != HOOKD_OK) {
		a->publish_rejected++;
		goto out;
	}
	p->text = text;
	text = NULL;
	if (needs_policy && api_publish_defer(p, bytes) != HOOKD_OK)
		goto oom;
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
}

/* One delivery as the API shows it: the stored record r, overlaid with the live copy. r may
 * be NULL for a delivery not stored yet (then live is not). ep is its endpoint, or NULL if
 * gone. A pending delivery of a disabled endpoint is held: no attempt is made until the
 * endpoint is enabled again. It stays "pending" (the state Svix and Convoy users know; it is
 * counted as pending everywhere) with "waiting_for": "endpoint_disabled" saying why it does
 * not move, and no next attempt time, since none is known. A due one that waits for its
 * endpoint's breaker, rate limit or in-flight cap says so the same way
 * (dispatch_waiting_for). */
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
	const char *err = fresh || !r ? delivery_error(live) : r->last_error;
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
	const char *why = held ? "endpoint_disabled" : dispatch_waiting_for(live);
	json_object_set_new(o, "waiting_for", why ? json_string(why) : json_null());
	json_object_set_new(o, "last_error", err[0] ? json_string(err) : json_null());
	json_object_set_new(o, "last_status", status ? json_integer(status) : json_null());
	return o;
}

/* api_message_deliveries' walk of the stored records. */
struct api_dlv_walk {
	struct api *a;
	json_t *arr, *ids;
};

static int api_message_delivery(void *arg, const char *id, const struct delivery_rec *r)
{
	struct api_dlv_walk *w = arg;
	if (strlen(id) >= DELIVERY_ID_MAX)
		return 0;
	json_array_append_new(w->arr, api_delivery_json(id, r, dispatch_live(w->a->disp, id),
							registry_endpoint(w->a->reg, r->app_id,
									  r->ep_id)));
	if (w->ids)
		json_array_append_new(w->ids, json_string(id));
	return 0;
}

/* The deliveries of a message: records under its delivery id prefix (delivery.h), and the
 * policy deliveries that are out but not stored yet (dispatch_add_unstored), in id order.
 * NULL with *rc set on a store error. */
static json_t *api_message_deliveries(struct api *a, struct store_read *rd, const char *msg_id,
				      json_t **dlv_ids, int *rc)
{
	struct api_dlv_walk w = {a, json_array(), NULL};
	char prefix[DELIVERY_ID_MAX];
	const char (*unstored)[DELIVERY_ID_MAX];
	size_t n_unstored, i, j;

	if (dlv_ids)
		w.ids = *dlv_ids = json_array();
	delivery_id_prefix(msg_id, prefix);
	if ((*rc = store_read_deliveries(rd, prefix, api_message_delivery, &w)) != HOOKD_OK) {
		json_decref(w.arr);
		return NULL;
	}
	unstored = dispatch_unstored(a->disp, msg_id, &n_unstored);
	for (i = 0; i < n_unstored; i++) {
		const struct delivery *live = dispatch_live(a->disp, unstored[i]);
		json_t *o;
		if (!live)
			continue; /* stored meanwhile (listed above), or being stored */
		int cmp = 1;
		/* In id order; skip it if the store scan listed it already. */
		for (j = 0; j < json_array_size(w.arr); j++) {
			cmp = strcmp(json_string_value(json_object_get(json_array_get(w.arr, j), "id")),
				     unstored[i]);
			if (cmp >= 0)
				break;
		}
		if (cmp == 0)
			continue;
		o = api_delivery_json(unstored[i], NULL, live, live->ep);
		json_array_insert_new(w.arr, j, o);
	}
	return w.arr;
}

json_t *api_message_load(struct api *a, struct store_read *rd, const char *app_id,
			 const char *msg_id, int *rc)
{
	const char *text;
	size_t len;
	json_t *msg;
	if (strlen(msg_id) < 5) {
		*rc = HOOKD_ENOTFOUND;
		return NULL;
	}
	if ((*rc = store_read_message(rd, app_id, msg_id, &text, &len)) != HOOKD_OK)
		return NULL;
	if (!(msg = json_loadb(text, len, 0, NULL)))
		*rc = HOOKD_EINVAL;
	return msg;
}

static int api_message_attempt(void *arg, uint32_t attempt, const char *json, size_t len)
{
	json_t *at = json_loadb(json, len, 0, NULL);
	if (at)
		json_array_append_new(arg, at);
	return 0;
}

static int api_is_store_error(int rc)
{
	return rc == HOOKD_ESTORE || rc == HOOKD_EFULL;
}

static void api_message_show(struct api *a, struct evhttp_request *req, struct app *app,
			     const char *msg_id, int attempts)
{
	struct store_read *rd;
	json_t *msg, *dlv_ids = NULL, *out = NULL, *dl;
	int rc;
	if ((rc = store_read_begin(a->store, &rd)) != HOOKD_OK) {
		api_error(req, 500, "internal", NULL, "cannot read the store: %s", hookd_strerror(rc));
		return;
	}
	msg = api_message_load(a, rd, app->id, msg_id, &rc);
	if (!msg) {
		store_read_end(rd);
		if (api_is_store_error(rc))
			api_error(req, 500, "internal", NULL, "storage error: %s", hookd_strerror(rc));
		else
			api_error(req, 404, "not_found", NULL, "message '%s' not found in app '%s'",
				  msg_id, app->id);
		return;
	}
	if (!attempts) {
		if ((dl = api_message_deliveries(a, rd, msg_id, NULL, &rc)))
			out = json_pack("{s:O, s:s, s:O, s:O, s:o, s:O, s:O, s:o}", "id",
					json_object_get(msg, "id"), "app_id", app->id, "type",
					json_object_get(msg, "type"), "version", json_object_get(msg, "version"),
					"source", json_object_get(msg, "source") ? json_incref(json_object_get(msg, "source")) : json_null(),
					"timestamp", json_object_get(msg, "timestamp"), "data",
					json_object_get(msg, "data"), "deliveries", dl);
		/* The janitor's mark (janitor.h): data is null past payload_retention_days. */
		if (out)
			json_object_set_new(out, "payload_purged",
					    json_boolean(json_is_true(json_object_get(msg, "payload_purged"))));
	} else if ((dl = api_message_deliveries(a, rd, msg_id, &dlv_ids, &rc))) {
		json_t *list = json_array(), *idv;
		size_t i;
		json_array_foreach(dlv_ids, i, idv) {
			rc = store_read_attempts(rd, json_string_value(idv), api_message_attempt, list);
			if (rc != HOOKD_OK)
				break;
		}
		json_decref(dl);
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
		if (rc == HOOKD_OK)
			out = json_pack("{s:o}", "data", list);
		else
			json_decref(list);
	}
	json_decref(dlv_ids);
	store_read_end(rd);
	json_decref(msg);
	if (rc != HOOKD_OK)
		api_error(req, 500, "internal", NULL, "storage error: %s", hookd_strerror(rc));
	else
		api_send(req, 200, out);
}

/* api_messages_list's walk: the page, and whether a next one exists. */
struct api_msg_page {
	struct app *app;
	json_t *arr, *last;
	long limit;
};

static int api_messages_one(void *arg, const char *msg_id, const char *envelope, size_t len)
{
	struct api_msg_page *pg = arg;
	json_t *m;
	if ((long)json_array_size(pg->arr) >= pg->limit) {
		pg->last = json_array_get(pg->arr, json_array_size(pg->arr) - 1);
		return STORE_WALK_STOP;
	}
	if (!(m = json_loadb(envelope, len, 0, NULL)))
		return 0;
	json_object_del(m, "data");
	json_object_set_new(m, "app_id", json_string(pg->app->id));
	json_object_set_new(m, "payload_purged", json_boolean(json_is_true(json_object_get(m, "payload_purged"))));
	json_array_append_new(pg->arr, m);
	return 0;
}

void api_messages_list(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	struct evkeyvalq *q = args->query;
	int bad = 0, rc;
	long limit = api_query_long(q, "limit", API_LIST_DEFAULT, 1, API_LIST_MAX, req, &bad);
	const char *after = evhttp_find_header(q, "after");
	struct api_msg_page pg = {app, NULL, NULL, limit};
	struct store_read *rd;

	if (bad)
		return;
	if (after && strlen(after) > ID_MAX) {
		api_error(req, 400, "invalid_field", "after", "after must be a message id");
		return;
	}
	if ((rc = store_read_begin(a->store, &rd)) != HOOKD_OK) {
		api_error(req, 500, "internal", NULL, "cannot read the store: %s", hookd_strerror(rc));
		return;
	}
	pg.arr = json_array();
	rc = store_read_messages(rd, app->id, after, api_messages_one, &pg);
	if (rc != HOOKD_OK) {
		store_read_end(rd);
		json_decref(pg.arr);
		api_error(req, 500, "internal", NULL, "storage error: %s", hookd_strerror(rc));
		return;
	}
	store_read_end(rd);
	api_send(req, 200, json_pack("{s:o, s:o}", "data", pg.arr, "next_after",
				     pg.last ? json_incref(json_object_get(pg.last, "id")) : json_null()));
}


void api_message_get(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	api_message_show(a, req, args->app, args->id, 0);
}

void api_message_attempts(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	api_message_show(a, req, args->app, args->id, 1);
}
