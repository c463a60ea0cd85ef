/* registry.c - apps and endpoints in memory, validated from and to their stored JSON. */
#include "registry.h"

#include "clock.h"
#include "err.h"
#include "header.h"
#include "id.h"
#include "log.h"
#include "store.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what one endpoint may carry: generous for real use, small enough that a
 * hostile API client cannot make one endpoint cost megabytes on every delivery. */
#define ENDPOINT_MAX_TYPES 256
#define ENDPOINT_MAX_HEADERS 32
#define ENDPOINT_MAX_SCHEDULE 50
#define ENDPOINT_MAX_DELAY_S 604800 /* one week: longer waits are an outage, not a retry */

size_t registry_endpoint_key(const char *app_id, const char *ep_id, char *out)
{
	size_t a = strlen(app_id), e = strlen(ep_id);
	memcpy(out, app_id, a);
	out[a] = 0;
	memcpy(out + a + 1, ep_id, e);
	return a + 1 + e;
}

bool registry_type_valid(const char *type)
{
	size_t n = 0, seg = 0;
	if (!type)
		return false;
	for (; type[n]; n++) {
		char c = type[n];
		if (c == '.') {
			if (seg == 0)
				return false;
			seg = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
		seg++;
	}
	return n > 0 && n <= 128 && seg > 0;
}

static bool registry_filter_valid(const char *f)
{
	size_t n;
	char buf[160];
	if (strcmp(f, "*") == 0)
		return true;
	n = strlen(f);
	if (n > 2 && n < sizeof(buf) && strcmp(f + n - 2, ".*") == 0) {
		memcpy(buf, f, n - 2);
		buf[n - 2] = 0;
		return registry_type_valid(buf);
	}
	return registry_type_valid(f);
}

static bool header_name_valid(const char *n)
{
	return header_name_check(n, strlen(n)) == HOOKD_OK && !header_name_reserved(n);
}

static bool header_value_valid(const char *v)
{
	return header_value_check(v, strlen(v)) == HOOKD_OK;
}

#define FAIL(f, ...)                                   \
	do {                                           \
		snprintf(field, flen, "%s", f);        \
		snprintf(msg, mlen, __VA_ARGS__);      \
		goto fail;                             \
	} while (0)

json_t *endpoint_json_merge(const json_t *base, const json_t *req, const char *app_id,
			    int64_t now_ms, char *field, size_t flen, char *msg, size_t mlen)
{
	json_t *out = base ? json_deep_copy(base) : json_object();
	const char *key;
	json_t *val;
	char iso[CLOCK_ISO_LEN], idbuf[ID_MAX], path[96], why[160];
	const char *secret_type = NULL;
	int creating = base == NULL;

	field[0] = msg[0] = 0;
	if (!json_is_object(req))
		FAIL("", "request body must be a JSON object");
	clock_iso8601(now_ms, iso);

	json_object_foreach((json_t *)req, key, val) {
		if (strcmp(key, "id") == 0) {
			if (!creating)
				FAIL("id", "id cannot be changed");
			if (!json_is_string(val) || !id_valid(json_string_value(val)))
				FAIL("id", "id must match [A-Za-z0-9_-]{1,64}");
			json_object_set(out, "id", val);
		} else if (strcmp(key, "url") == 0) {
			if (!json_is_string(val))
				FAIL("url", "url must be a string");
			if (url_endpoint_check(json_string_value(val), why, sizeof(why)) != HOOKD_OK)
				FAIL("url", "url is not a valid http or https endpoint URL: %s", why);
			json_object_set(out, "url", val);
		} else if (strcmp(key, "description") == 0) {
			if (!json_is_string(val) || strlen(json_string_value(val)) > 1024)
				FAIL("description", "description must be a string of at most 1024 bytes");
			json_object_set(out, "description", val);
		} else if (strcmp(key, "event_types") == 0) {
			size_t i;
			json_t *t;
			if (json_is_null(val)) {
				json_object_set_new(out, "event_types", json_array());
				continue;
			}
			if (!json_is_array(val) || json_array_size(val) > ENDPOINT_MAX_TYPES)
				FAIL("event_types", "event_types must be an array of at most %d type names",
				     ENDPOINT_MAX_TYPES);
			json_array_foreach(val, i, t) {
				if (!json_is_string(t) || !registry_filter_valid(json_string_value(t))) {
					snprintf(path, sizeof(path), "event_types[%zu]", i);
					FAIL(path, "must be an event type (segments of [A-Za-z0-9_-] joined by '.'), optionally ending in .*");
				}
			}
			json_object_set(out, "event_types", val);
		} else if (strcmp(key, "secret") == 0) {
			struct sign_key k;
			char kerr[160];
			if (!creating)
				FAIL("secret", "use POST .../secret/rotate to change the secret");
			if (!json_is_string(val))
				FAIL("secret", "secret must be a string");
			if (sign_key_parse(json_string_value(val), &k, kerr, sizeof(kerr)) != HOOKD_OK ||
			    k.kind == SIGN_ED25519_PUBLIC)
				FAIL("secret", "invalid secret: %s",
				     k.kind == SIGN_ED25519_PUBLIC ? "a whpk_ public key cannot sign" : kerr);
			json_t *secrets = json_pack("[{s:O, s:I}]", "secret", val, "expires_at_ms", (json_int_t)0);
			json_object_set_new(out, "secrets", secrets);
			json_object_set_new(out, "secret_type",
					    json_string(k.kind == SIGN_HMAC ? "hmac" : "ed25519"));
		} else if (strcmp(key, "secret_type") == 0) {
			if (!creating)
				FAIL("secret_type", "use POST .../secret/rotate to change the secret");
			if (!json_is_string(val) || (strcmp(json_string_value(val), "hmac") != 0 &&
						     strcmp(json_string_value(val), "ed25519") != 0))
				FAIL("secret_type", "secret_type must be \"hmac\" or \"ed25519\"");
			secret_type = json_string_value(val);
		} else if (strcmp(key, "retry_schedule") == 0) {
			size_t i;
			json_t *d;
			if (json_is_null(val)) {
				json_object_set_new(out, "retry_schedule", json_null());
				continue;
			}
			if (!json_is_array(val) || json_array_size(val) == 0 ||
			    json_array_size(val) > ENDPOINT_MAX_SCHEDULE)
				FAIL("retry_schedule", "retry_schedule must be an array of 1 to %d delays in seconds",
				     ENDPOINT_MAX_SCHEDULE);
			json_array_foreach(val, i, d) {
				if (!json_is_integer(d) || json_integer_value(d) < 0 ||
				    json_integer_value(d) > ENDPOINT_MAX_DELAY_S) {
					snprintf(path, sizeof(path), "retry_schedule[%zu]", i);
					FAIL(path, "must be an integer number of seconds from 0 to %d",
					     ENDPOINT_MAX_DELAY_S);
				}
			}
			json_object_set(out, "retry_schedule", val);
		} else if (strcmp(key, "headers") == 0) {
			const char *hk;
			json_t *hv;
			if (json_is_null(val)) {
				json_object_set_new(out, "headers", json_object());
				continue;
			}
			if (!json_is_object(val) || json_object_size(val) > ENDPOINT_MAX_HEADERS)
				FAIL("headers", "headers must be an object of at most %d name: value pairs",
				     ENDPOINT_MAX_HEADERS);
			json_object_foreach(val, hk, hv) {
				snprintf(path, sizeof(path), "headers.%.80s", hk);
				if (!header_name_valid(hk))
					FAIL(path, "invalid or reserved header name");
				if (!json_is_string(hv) || !header_value_valid(json_string_value(hv)))
					FAIL(path, "header value must be a string without control characters (CR/LF), at most %d bytes",
					     HEADER_VALUE_MAX);
			}
			json_object_set(out, "headers", val);
		} else if (strcmp(key, "disabled") == 0) {
			if (!json_is_boolean(val))
				FAIL("disabled", "disabled must be true or false");
			json_object_set(out, "disabled", val);
			json_object_set_new(out, "disabled_reason",
					    json_is_true(val) ? json_string("disabled by operator")
							      : json_null());
		} else if (strcmp(key, "policy") == 0) {
			json_t *name, *params;
			if (json_is_null(val)) {
				json_object_set_new(out, "policy", json_null());
				continue;
			}
			name = json_object_get(val, "name");
			params = json_object_get(val, "params");
			if (!json_is_object(val) || !json_is_string(name) ||
			    !id_valid(json_string_value(name)))
				FAIL("policy.name", "policy must be {\"name\": \"<policy>\", \"params\"?: {...}}");
			if (params && !json_is_object(params) && !json_is_null(params))
				FAIL("policy.params", "policy params must be an object");
			json_t *pol = json_object();
			json_object_set(pol, "name", name);
			json_object_set_new(pol, "params", params && json_is_object(params)
								   ? json_deep_copy(params)
								   : json_object());
			json_object_set_new(out, "policy", pol);
		} else {
			snprintf(path, sizeof(path), "%.80s", key);
			FAIL(path, "unknown field '%.80s'", key);
		}
	}

	if (creating) {
		if (!json_object_get(out, "url"))
			FAIL("url", "url is required");
		if (!json_object_get(out, "id")) {
			id_make("ep_", now_ms, idbuf);
			json_object_set_new(out, "id", json_string(idbuf));
		}
		if (!json_object_get(out, "secrets")) {
			char text[SIGN_TEXT_MAX];
			enum sign_kind kind = secret_type && strcmp(secret_type, "ed25519") == 0 ? SIGN_ED25519 : SIGN_HMAC;
			if (sign_key_generate(kind, text, sizeof(text)) != HOOKD_OK)
				FAIL("secret", "could not generate a secret");
			json_object_set_new(out, "secrets",
					    json_pack("[{s:s, s:I}]", "secret", text, "expires_at_ms", (json_int_t)0));
			json_object_set_new(out, "secret_type", json_string(kind == SIGN_HMAC ? "hmac" : "ed25519"));
		} else if (secret_type && strcmp(secret_type, json_string_value(json_object_get(out, "secret_type"))) != 0) {
			FAIL("secret_type", "secret_type does not match the kind of the given secret");
		}
		json_object_set_new(out, "app_id", json_string(app_id));
		json_object_set_new(out, "created_at", json_string(iso));
		if (!json_object_get(out, "event_types"))
			json_object_set_new(out, "event_types", json_array());
		if (!json_object_get(out, "headers"))
			json_object_set_new(out, "headers", json_object());
		if (!json_object_get(out, "retry_schedule"))
			json_object_set_new(out, "retry_schedule", json_null());
		if (!json_object_get(out, "disabled")) {
			json_object_set_new(out, "disabled", json_false());
			json_object_set_new(out, "disabled_reason", json_null());
		}
		if (!json_object_get(out, "policy"))
			json_object_set_new(out, "policy", json_null());
		if (!json_object_get(out, "description"))
			json_object_set_new(out, "description", json_string(""));
	}
	json_object_set_new(out, "updated_at", json_string(iso));
	return out;
fail:
	json_decref(out);
	return NULL;
}
#undef FAIL

static void endpoint_clear(struct endpoint *ep)
{
	free(ep->url);
	for (size_t i = 0; i < ep->n_event_types; i++)
		free(ep->event_types[i]);
	free(ep->event_types);
	free(ep->schedule);
	header_lines_free(ep->header_lines, ep->n_headers);
	free(ep->policy_name);
	json_decref(ep->json);
	ep->url = NULL;
	ep->event_types = NULL;
	ep->schedule = NULL;
	ep->header_lines = NULL;
	ep->policy_name = NULL;
	ep->json = NULL;
	ep->n_event_types = ep->n_schedule = ep->n_headers = ep->n_secrets = 0;
}

/* Derives the runtime fields from json (stolen on success and on failure). */
static int endpoint_apply(struct endpoint *ep, json_t *json, char *err, size_t errlen)
{
	struct endpoint tmp;
	json_t *arr, *v, *pol;
	size_t i;
	int64_t now = clock_now_ms();

	memset(&tmp, 0, sizeof(tmp));
	tmp.json = json;
	tmp.url = strdup(json_string_value(json_object_get(json, "url")) ?: "");
	arr = json_object_get(json, "event_types");
	tmp.n_event_types = json_array_size(arr);
	tmp.event_types = calloc(tmp.n_event_types + 1, sizeof(char *));
	json_array_foreach(arr, i, v) tmp.event_types[i] = strdup(json_string_value(v) ?: "");
	arr = json_object_get(json, "retry_schedule");
	if (json_is_array(arr) && json_array_size(arr) > 0) {
		tmp.n_schedule = json_array_size(arr);
		tmp.schedule = calloc(tmp.n_schedule, sizeof(uint32_t));
		json_array_foreach(arr, i, v) tmp.schedule[i] = (uint32_t)json_integer_value(v);
	}
	if (header_lines_from_json(json_object_get(json, "headers"), &tmp.header_lines,
				   &tmp.n_headers) != HOOKD_OK) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Secrets: drop expired ones from the stored JSON too, so they stop signing. */
	arr = json_object_get(json, "secrets");
	for (i = 0; i < json_array_size(arr);) {
		json_t *s = json_array_get(arr, i);
		int64_t exp = json_integer_value(json_object_get(s, "expires_at_ms"));
		const char *text = json_string_value(json_object_get(s, "secret"));
		struct endpoint_secret *es = &tmp.secrets[tmp.n_secrets];
		if ((exp && exp <= now) || tmp.n_secrets >= ENDPOINT_MAX_SECRETS || !text) {
			json_array_remove(arr, i);
			continue;
		}
		if (sign_key_parse(text, &es->key, err, errlen) != HOOKD_OK)
			goto fail;
		snprintf(es->text, sizeof(es->text), "%s", text);
		es->expires_ms = exp;
		tmp.n_secrets++;
		i++;
	}
	if (tmp.n_secrets == 0) {
		snprintf(err, errlen, "endpoint has no signing secret");
		goto fail;
	}
	tmp.disabled = json_is_true(json_object_get(json, "disabled"));
	pol = json_object_get(json, "policy");
	if (json_is_object(pol)) {
		tmp.policy_name = strdup(json_string_value(json_object_get(pol, "name")) ?: "");
		tmp.policy_params = json_object_get(pol, "params");
	}
	if (!tmp.url || !tmp.event_types || !tmp.header_lines) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	endpoint_clear(ep);
	ep->json = tmp.json;
	ep->url = tmp.url;
	ep->event_types = tmp.event_types;
	ep->n_event_types = tmp.n_event_types;
	memcpy(ep->secrets, tmp.secrets, sizeof(tmp.secrets));
	ep->n_secrets = tmp.n_secrets;
	ep->schedule = tmp.schedule;
	ep->n_schedule = tmp.n_schedule;
	ep->header_lines = tmp.header_lines;
	ep->n_headers = tmp.n_headers;
	ep->disabled = tmp.disabled;
	ep->policy_name = tmp.policy_name;
	ep->policy_params = tmp.policy_params;
	return HOOKD_OK;
fail:
	endpoint_clear(&tmp);
	return HOOKD_EINVAL;
}

int header_lines_from_json(const json_t *obj, char ***lines, size_t *n)
{
	const char *k;
	json_t *v;
	char **out = calloc(json_object_size(obj) + 1, sizeof(char *));
	size_t count = 0;
	if (!out)
		return HOOKD_ENOMEM;
	json_object_foreach((json_t *)obj, k, v) {
		const char *val = json_string_value(v) ?: "";
		size_t len = strlen(k) + strlen(val) + 3;
		if (!(out[count] = malloc(len))) {
			header_lines_free(out, count);
			return HOOKD_ENOMEM;
		}
		snprintf(out[count++], len, "%s: %s", k, val);
	}
	*lines = out;
	*n = count;
	return HOOKD_OK;
}

void header_lines_free(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

void endpoint_ref(struct endpoint *ep)
{
	ep->refs++;
}

void endpoint_unref(struct endpoint *ep)
{
	if (--ep->refs > 0)
		return;
	endpoint_clear(ep);
	free(ep->id);
	free(ep->app_id);
	free(ep);
}

struct app *registry_app(struct registry *r, const char *id)
{
	return strmap_get(&r->apps, id);
}

struct endpoint *registry_endpoint(struct registry *r, const char *app_id, const char *ep_id)
{
	struct app *a = registry_app(r, app_id);
	return a ? strmap_get(&a->endpoints, ep_id) : NULL;
}

struct app *registry_app_install(struct registry *r, json_t *json)
{
	const char *id = json_string_value(json_object_get(json, "id"));
	struct app *a = id ? registry_app(r, id) : NULL;
	if (!id) {
		json_decref(json);
		return NULL;
	}
	if (a) {
		json_decref(a->json);
		a->json = json;
		return a;
	}
	a = calloc(1, sizeof(*a));
	if (!a || !(a->id = strdup(id)) || strmap_put(&r->apps, id, a) != HOOKD_OK) {
		if (a)
			free(a->id);
		free(a);
		json_decref(json);
		return NULL;
	}
	a->json = json;
	return a;
}

struct endpoint *registry_endpoint_install(struct registry *r, struct app *a, json_t *json,
					   char *err, size_t errlen)
{
	const char *id = json_string_value(json_object_get(json, "id"));
	struct endpoint *ep = id ? strmap_get(&a->endpoints, id) : NULL;
	int fresh = 0;

	if (!id) {
		snprintf(err, errlen, "endpoint without id");
		json_decref(json);
		return NULL;
	}
	if (!ep) {
		ep = calloc(1, sizeof(*ep));
		if (!ep || !(ep->id = strdup(id)) || !(ep->app_id = strdup(a->id))) {
			if (ep) {
				free(ep->id);
				free(ep);
			}
			json_decref(json);
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		fresh = 1;
	}
	if (endpoint_apply(ep, json, err, errlen) != HOOKD_OK) {
		if (fresh) {
			free(ep->id);
			free(ep->app_id);
			free(ep);
		}
		return NULL;
	}
	if (fresh) {
		ep->refs = 1;
		strmap_put(&a->endpoints, ep->id, ep);
	}
	return ep;
}

void registry_endpoint_remove(struct registry *r, struct app *a, struct endpoint *ep)
{
	strmap_del(&a->endpoints, ep->id);
	ep->deleted = true;
	endpoint_unref(ep);
}

json_t *endpoint_api_view(const struct endpoint *ep)
{
	json_t *v = json_deep_copy(ep->json);
	char pk[SIGN_TEXT_MAX];
	json_object_del(v, "secrets");
	if (ep->n_secrets) {
		json_object_set_new(v, "secret", json_string(ep->secrets[0].text));
		if (ep->secrets[0].key.kind == SIGN_ED25519 &&
		    sign_key_public_text(&ep->secrets[0].key, pk, sizeof(pk)) == HOOKD_OK)
			json_object_set_new(v, "public_key", json_string(pk));
	}
	return v;
}

bool endpoint_matches(const struct endpoint *ep, const char *type)
{
	if (ep->n_event_types == 0)
		return true;
	for (size_t i = 0; i < ep->n_event_types; i++) {
		const char *f = ep->event_types[i];
		size_t n = strlen(f);
		if (strcmp(f, "*") == 0 || strcmp(f, type) == 0)
			return true;
		if (n >= 2 && f[n - 1] == '*' && f[n - 2] == '.' && strncmp(f, type, n - 1) == 0)
			return true;
	}
	return false;
}

size_t endpoint_active_secrets(const struct endpoint *ep, int64_t now_ms,
			       const struct endpoint_secret **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < ep->n_secrets && n < max; i++)
		if (ep->secrets[i].expires_ms == 0 || ep->secrets[i].expires_ms > now_ms)
			out[n++] = &ep->secrets[i];
	return n;
}

int registry_load(struct registry *r, struct store *s, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	r->store = s;
	if (store_read_begin(s, &txn) != HOOKD_OK) {
		snprintf(err, errlen, "cannot read the store");
		return HOOKD_ESTORE;
	}
	mdb_cursor_open(txn, s->apps, &cur);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		json_t *j = json_loadb(v.mv_data, v.mv_size, 0, NULL);
		if (!j || !registry_app_install(r, j))
			log_error("registry: skipping unreadable app record %.*s", (int)k.mv_size,
				  (char *)k.mv_data);
	}
	mdb_cursor_close(cur);
	mdb_cursor_open(txn, s->endpoints, &cur);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		json_t *j = json_loadb(v.mv_data, v.mv_size, 0, NULL);
		const char *app_id = json_string_value(json_object_get(j, "app_id"));
		struct app *a = app_id ? registry_app(r, app_id) : NULL;
		char e[256];
		if (!a) {
			log_error("registry: endpoint record without its app, skipped");
			json_decref(j);
			continue;
		}
		if (!registry_endpoint_install(r, a, j, e, sizeof(e)))
			log_error("registry: endpoint unreadable: %s", e);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return HOOKD_OK;
}

static void registry_free_ep(const char *key, void *value, void *arg)
{
	struct endpoint *ep = value;
	ep->deleted = true;
	endpoint_unref(ep);
}

static void registry_free_app(const char *key, void *value, void *arg)
{
	struct app *a = value;
	strmap_each(&a->endpoints, registry_free_ep, NULL);
	strmap_free(&a->endpoints);
	json_decref(a->json);
	free(a->id);
	free(a);
}

void registry_free(struct registry *r)
{
	strmap_each(&r->apps, registry_free_app, NULL);
	strmap_free(&r->apps);
}
