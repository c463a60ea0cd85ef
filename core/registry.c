/* registry.c - apps and endpoints in memory, validated from and to their stored JSON. */
#include "registry.h"

#include "clock.h"

#include "endpoint_schema.h"
#include "err.h"
#include "log.h"
#include "plugin.h"
#include "store.h"
#include "tls_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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
	return n > 0 && n <= REGISTRY_TYPE_MAX && seg > 0;
}

json_t *endpoint_json_merge(const json_t *base, const json_t *req, const char *app_id,
			    int64_t now_ms, char *field, size_t flen, char *msg, size_t mlen)
{
	struct endpoint_error e;
	json_t *out = endpoint_schema_merge(base, req, app_id, now_ms, &e);
	if (!out) {
		err_copy(field, flen, e.field);
		if (e.field[0])
			snprintf(msg, mlen, "%s: %s", e.field, e.msg);
		else
			snprintf(msg, mlen, "%s", e.msg);
	}
	return out;
}

static void endpoint_clear(struct endpoint *ep)
{
	endpoint_schema_release(ep);
	json_decref(ep->json);
	ep->json = NULL;
}

/* Derives the runtime fields from json (stolen on success and on failure). The rows'
 * appliers fill a copy of ep, so a failure leaves ep as it was and live deliveries keep
 * seeing a whole endpoint; on success the old members are released and the copy, which
 * carries ep's identity and runtime fields unchanged, takes its place. */
static int endpoint_apply(struct endpoint *ep, json_t *json, char *err, size_t errlen)
{
	struct endpoint tmp = *ep;

	if (endpoint_schema_apply(&tmp, json, err, errlen) != HOOKD_OK) {
		json_decref(json);
		return HOOKD_EINVAL;
	}
	endpoint_clear(ep);
	tmp.json = json;
	*ep = tmp;
	return HOOKD_OK;
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

/* An app's day count member: its value, or -1 when null, absent or not a count (records
 * from before issue 11 have neither member). */
static int64_t registry_app_days(json_t *json, const char *key)
{
	const json_t *v = json_object_get(json, key);
	/* Shown as null (the daemon's default) when a record has not got it. */
	if (!v)
		json_object_set_new(json, key, json_null());
	return json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
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
		a->retention_days = registry_app_days(json, "retention_days");
		a->payload_retention_days = registry_app_days(json, "payload_retention_days");
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
	a->retention_days = registry_app_days(json, "retention_days");
	a->payload_retention_days = registry_app_days(json, "payload_retention_days");
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

/* The struct is derived from the stored JSON (endpoint_apply); a state the daemon decides
 * by itself changes both here, so they never disagree and the text stored is the JSON. */
char *registry_endpoint_set_failing_since(struct registry *r, struct endpoint *ep, int64_t ms)
{
	char iso[CLOCK_ISO_LEN];
	ep->failing_since_ms = ms;
	if (ms)
		clock_iso8601(ms, iso);
	json_object_set_new(ep->json, "failing_since", ms ? json_string(iso) : json_null());
	return json_dumps(ep->json, JSON_COMPACT);
}

char *registry_endpoint_set_disabled(struct registry *r, struct endpoint *ep, bool disabled,
				     const char *reason)
{
	ep->disabled = disabled;
	json_object_set_new(ep->json, "disabled", json_boolean(disabled));
	json_object_set_new(ep->json, "disabled_reason",
			    reason ? json_string(reason) : json_null());
	return json_dumps(ep->json, JSON_COMPACT);
}

void endpoint_auth_ref(struct endpoint_auth *a)
{
	a->refs++;
}

void endpoint_auth_unref(struct endpoint_auth *a)
{
	if (!a || --a->refs > 0)
		return;
	for (size_t i = 0; i < a->n_opts; i++) {
		free((char *)a->opts[i].name);
		free((char *)a->opts[i].value);
	}
	free(a->opts);
	free(a->scheme);
	free(a);
}

const char *registry_secret_mask(const char *value, char *buf, size_t len)
{
	char head[REGISTRY_MASK_SHOWN + 1];
	if (strlen(value) < REGISTRY_MASK_MIN) {
		snprintf(buf, len, "***");
		return buf;
	}
	err_copy(head, sizeof(head), value);
	snprintf(buf, len, "%s\u2026", head);
	return buf;
}

bool registry_auth_option_secret(const struct plugin_auth *pa, const char *name)
{
	const char *const *s;
	if (!pa)
		return true;
	for (s = pa->a->secret_options; s && *s; s++)
		if (strcmp(*s, name) == 0)
			return true;
	return false;
}

/* The auth object of a view: the secret options' values masked. */
static void endpoint_view_auth(const struct endpoint *ep, json_t *auth)
{
	const struct plugin_auth *pa = ep->auth ? ep->auth->pa : NULL;
	const char *k;
	json_t *v;
	char mask[REGISTRY_MASK_MAX];

	json_object_foreach(auth, k, v) {
		char *text;
		if (strcmp(k, "scheme") == 0 || !registry_auth_option_secret(pa, k))
			continue;
		text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);
		registry_secret_mask(text ? text : json_string_value(v) ?: "", mask, sizeof(mask));
		free(text);
		json_object_set_new(auth, k, json_string(mask));
	}
}

json_t *endpoint_api_view(const struct endpoint *ep)
{
	json_t *v = json_deep_copy(ep->json);
	json_t *auth = json_object_get(v, "auth");
	char pk[SIGN_TEXT_MAX];
	json_object_del(v, "secrets");
	if (json_is_object(auth))
		endpoint_view_auth(ep, auth);
	if (ep->n_secrets) {
		json_object_set_new(v, "secret", json_string(ep->secrets[0].text));
		if (ep->secrets[0].key.kind == SIGN_ED25519 &&
		    sign_key_public_text(&ep->secrets[0].key, pk, sizeof(pk)) == HOOKD_OK)
			json_object_set_new(v, "public_key", json_string(pk));
	}
	/* tls.client_key is a secret: its PEM header line and "…" only (tls_text.h). */
	if (ep->tls_key_pem && json_is_object(json_object_get(v, "tls"))) {
		char prefix[80];
		json_object_set_new(json_object_get(v, "tls"), "client_key",
				    json_string(tls_text_key_prefix(ep->tls_key_pem, prefix,
								    sizeof(prefix))));
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

static int registry_load_app(void *arg, const char *app_id, const char *json, size_t len)
{
	struct registry *r = arg;
	json_t *j = json_loadb(json, len, 0, NULL);
	if (!j || !registry_app_install(r, j))
		log_error("registry: skipping unreadable app record %s", app_id);
	return 0;
}

static int registry_load_endpoint(void *arg, const char *key_app_id, const char *key_ep_id,
				  const char *json, size_t len)
{
	struct registry *r = arg;
	json_t *j = json_loadb(json, len, 0, NULL);
	const char *app_id = json_string_value(json_object_get(j, "app_id"));
	struct app *a = app_id ? registry_app(r, app_id) : NULL;
	char e[256];
	if (!a) {
		log_error("registry: endpoint record without its app, skipped");
		json_decref(j);
		return 0;
	}
	if (!registry_endpoint_install(r, a, j, e, sizeof(e)))
		log_error("registry: endpoint unreadable: %s", e);
	return 0;
}

int registry_load(struct registry *r, struct store *s, char *err, size_t errlen)
{
	struct store_read *rd;
	int rc;

	r->store = s;
	if (store_read_begin(s, &rd) != HOOKD_OK) {
		snprintf(err, errlen, "cannot read the store");
		return HOOKD_ESTORE;
	}
	rc = store_read_apps(rd, registry_load_app, r);
	if (rc == HOOKD_OK)
		rc = store_read_endpoints(rd, registry_load_endpoint, r);
	store_read_end(rd);
	if (rc != HOOKD_OK) {
		snprintf(err, errlen, "storage error: loading apps and endpoints: %s",
			 hookd_strerror(rc));
		return rc;
	}
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
