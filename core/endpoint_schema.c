/* endpoint_schema.c - the endpoint's field table and what reads it: checking a request,
 * merging it into the stored JSON, and deriving struct endpoint from that JSON. */
#include "endpoint_schema.h"

#include "clock.h"
#include "err.h"
#include "header.h"
#include "id.h"
#include "plugin.h"
#include "policy.h"
#include "registry.h"
#include "sign.h"
#include "url.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bounds on what one endpoint may carry: generous for real use, small enough that a hostile
 * API client cannot make one endpoint cost megabytes on every delivery. */

/* Matched against every published type; 256 patterns is plenty for one subscription. */
#define ENDPOINT_MAX_TYPES 256
/* 50 entries of at most 7 days: a month-long schedule fits, a runaway one does not. */
#define ENDPOINT_MAX_SCHEDULE 50
#define ENDPOINT_MAX_DELAY_S 604800 /* one week: longer waits are an outage, not a retry */
/* A note for operators, shown in listings; a paragraph, not a document. */
#define ENDPOINT_MAX_DESCRIPTION 1024

static int schema_fail(struct endpoint_error *e, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Fills e and returns HOOKD_EINVAL, so a check can end with `return schema_fail(...)`. */
static int schema_fail(struct endpoint_error *e, const char *field, const char *fmt, ...)
{
	va_list ap;
	err_copy(e->field, sizeof(e->field), field);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return HOOKD_EINVAL;
}

static int schema_nomem(struct endpoint_error *e)
{
	e->field[0] = '\0';
	snprintf(e->msg, sizeof(e->msg), "out of memory");
	return HOOKD_ENOMEM;
}

/* "name[i]" and "name.key", for messages about one entry of a field. */
static const char *schema_path_index(char *buf, size_t len, const char *name, size_t i)
{
	snprintf(buf, len, "%s[%zu]", name, i);
	return buf;
}

/* A key longer than the buffer is cut on a character boundary (header names are checked
 * for length after the path is built). */
static const char *schema_path_key(char *buf, size_t len, const char *name, const char *key)
{
	int n = snprintf(buf, len, "%s.", name);
	if (n > 0 && (size_t)n < len)
		err_copy(buf + n, len - (size_t)n, key);
	return buf;
}

/* ---- rules of single fields ---------------------------------------------------------- */

static int check_id(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	char show[ERR_QUOTE_MAX];
	if (!id_valid(json_string_value(v)))
		return schema_fail(e, path, "must match [A-Za-z0-9_-]{1,64}, got %s",
				   err_quote(json_string_value(v), show, sizeof(show)));
	return HOOKD_OK;
}

/* http(s) URLs by url.h's rules; any other scheme selects the plugin transport that
 * registered it (plugin.h): its authority is checked by url.h (a host and port when the
 * transport connects to a server, none for a local one), then by the plugin's check_url.
 * A scheme no loaded plugin serves is refused with the list of those that are loaded. */
static int check_url(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	const char *url = json_string_value(v);
	char why[256], show[ERR_QUOTE_MAX], scheme[URL_SCHEME_MAX + 1];
	const struct plugin_transport *pt = NULL;
	int rc;

	if (url_scheme(url, scheme) && strcmp(scheme, "http") != 0 &&
	    strcmp(scheme, "https") != 0 &&
	    (pt = plugins_transport(plugins_current(), scheme))) {
		rc = url_plugin_check(url, pt->t->needs_address != 0, why, sizeof(why));
		if (rc == HOOKD_ETOOBIG)
			return schema_fail(e, path, "%s", why);
		if (rc != HOOKD_OK)
			return schema_fail(e, path, "%s, got %s (a %s:// URL of plugin %s)", why,
					   err_quote(url, show, sizeof(show)), scheme,
					   plugins_ctx_name(pt->ctx));
		why[0] = '\0';
		if (pt->t->check_url && pt->t->check_url(pt->state, url, why, sizeof(why)) != 0) {
			why[sizeof(why) - 1] = '\0';
			return schema_fail(e, path, "%s, got %s (plugin %s)",
					   why[0] ? why : "refused by the transport",
					   err_quote(url, show, sizeof(show)), plugins_ctx_name(pt->ctx));
		}
		return HOOKD_OK;
	}
	rc = url_endpoint_check(url, why, sizeof(why));
	if (rc == HOOKD_OK)
		return HOOKD_OK;
	if (rc == HOOKD_ETOOBIG)
		return schema_fail(e, path, "%s (not a valid http or https endpoint URL)", why);
	if (scheme[0] && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		char loaded[200];
		plugins_schemes(plugins_current(), loaded, sizeof(loaded));
		return schema_fail(e, path,
				   "%s, got %s (not a valid http or https endpoint URL, and no "
				   "loaded plugin serves the scheme '%s'; %s%s)",
				   why, err_quote(url, show, sizeof(show)), scheme,
				   loaded[0] ? "plugin schemes loaded: " : "no plugin transports are loaded",
				   loaded);
	}
	if (!scheme[0]) {
		char loaded[200];
		plugins_schemes(plugins_current(), loaded, sizeof(loaded));
		return schema_fail(e, path,
				   "%s, got %s (not a valid http or https endpoint URL%s%s)", why,
				   err_quote(url, show, sizeof(show)),
				   loaded[0] ? "; plugin schemes loaded: " : "", loaded);
	}
	return schema_fail(e, path, "%s, got %s (not a valid http or https endpoint URL)", why,
			   err_quote(url, show, sizeof(show)));
}

/* Exact names ("invoice.paid"), prefixes ("order.*": every type under "order.") or "*"
 * (every type, as leaving the filter out). A name follows registry_type_valid, so a filter
 * can only name types that can be published. */
static int check_event_type(const char *path, const char *s, struct endpoint_error *e)
{
	char show[ERR_QUOTE_MAX], prefix[REGISTRY_TYPE_MAX + 1];
	size_t len = strlen(s);
	const char *star = strchr(s, '*');

	if (strcmp(s, "*") == 0)
		return HOOKD_OK;
	if (len == 0 || len > REGISTRY_TYPE_MAX)
		return schema_fail(e, path, "must be 1 to %d bytes long, got %zu", REGISTRY_TYPE_MAX,
				   len);
	err_quote(s, show, sizeof(show));
	if (star && !(star == s + len - 1 && len >= 3 && s[len - 2] == '.'))
		return schema_fail(e, path,
				   "'*' is only allowed as a final '.*' (prefix.*), got %s ('*' "
				   "alone means every type)",
				   show);
	memcpy(prefix, s, star ? len - 2 : len);
	prefix[star ? len - 2 : len] = '\0';
	if (!registry_type_valid(prefix))
		return schema_fail(e, path,
				   "must be an event type (segments of A-Z a-z 0-9 _ - joined by "
				   "'.'), optionally ending in .*, got %s",
				   show);
	return HOOKD_OK;
}

static int check_event_types(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	char sub[ENDPOINT_FIELD_PATH_MAX];
	size_t i;
	json_t *t;
	json_array_foreach(v, i, t) {
		schema_path_index(sub, sizeof(sub), path, i);
		if (check_event_type(sub, json_string_value(t), e) != HOOKD_OK)
			return HOOKD_EINVAL;
	}
	return HOOKD_OK;
}

/* header.h's rules, and one value per name: names are case-insensitive in HTTP. */
static int check_headers(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	char sub[ENDPOINT_FIELD_PATH_MAX], show[ERR_QUOTE_MAX], other[ERR_QUOTE_MAX];
	const char *name, *seen;
	json_t *value, *sv;

	json_object_foreach((json_t *)v, name, value) {
		const char *text = json_string_value(value);
		size_t vlen = json_string_length(value);
		int rc;
		schema_path_key(sub, sizeof(sub), path, name);
		if (header_name_check(name, strlen(name)) != HOOKD_OK)
			return schema_fail(e, sub,
					   "%s is not a valid header name (1 to %d of A-Z a-z 0-9 "
					   "!#$%%&'*+-.^_`|~)",
					   err_quote(name, show, sizeof(show)), HEADER_NAME_MAX);
		if (header_name_reserved(name))
			return schema_fail(e, sub,
					   "this header is set by hookd itself (a reserved name)");
		json_object_foreach((json_t *)v, seen, sv) {
			if (seen == name)
				break;
			if (strcasecmp(seen, name) == 0)
				return schema_fail(e, sub,
						   "%s is the same header as %s (names are "
						   "case-insensitive)",
						   err_quote(name, show, sizeof(show)),
						   err_quote(seen, other, sizeof(other)));
		}
		rc = header_value_check(text, vlen);
		if (rc == HOOKD_ETOOBIG)
			return schema_fail(e, sub, "header values must be at most %d bytes, got %zu",
					   HEADER_VALUE_MAX, vlen);
		if (rc != HOOKD_OK)
			return schema_fail(e, sub,
					   "header values must not contain control characters "
					   "(CR/LF would inject headers)");
	}
	return HOOKD_OK;
}

/* whsec_ (HMAC) or whsk_ (Ed25519) text that sign.c can parse; never echoed. */
static int check_secret(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	const char *s = json_string_value(v);
	struct sign_key k;
	char why[160];

	if (strncmp(s, "whsec_", 6) != 0 && strncmp(s, "whsk_", 5) != 0 &&
	    strncmp(s, "whpk_", 5) != 0)
		return schema_fail(e, path,
				   "expected a whsec_... (hmac) or whsk_... (ed25519) secret (value "
				   "not shown)");
	if (strncmp(s, "whpk_", 5) == 0)
		return schema_fail(e, path,
				   "invalid secret: a whpk_ public key cannot sign; give the whsk_ "
				   "secret key (value not shown)");
	/* Ed25519 keys are checked by deriving the public half; sodium must be ready, also
	 * when the config file is read before the daemon initialised it. */
	if (sign_init() != HOOKD_OK)
		return schema_fail(e, path, "cannot check the secret: libsodium did not start");
	if (sign_key_parse(s, &k, why, sizeof(why)) != HOOKD_OK)
		return schema_fail(e, path, "invalid secret: %s (value not shown)", why);
	return HOOKD_OK;
}

static int check_secret_type(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	const char *s = json_string_value(v);
	char show[ERR_QUOTE_MAX];
	if (strcmp(s, "hmac") != 0 && strcmp(s, "ed25519") != 0)
		return schema_fail(e, path, "expected 'hmac' or 'ed25519', got %s",
				   err_quote(s, show, sizeof(show)));
	return HOOKD_OK;
}

static int check_policy_name(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	char show[ERR_QUOTE_MAX];
	if (!policy_name_valid(json_string_value(v)))
		return schema_fail(e, path, "expected 1 to 64 of a-z 0-9 _ -, got %s",
				   err_quote(json_string_value(v), show, sizeof(show)));
	return HOOKD_OK;
}

/* ---- stored forms -------------------------------------------------------------------- */

static int store_set(json_t *out, const char *name, json_t *v)
{
	return v && json_object_set_new(out, name, v) == 0 ? HOOKD_OK : HOOKD_ENOMEM;
}

/* Given, or generated ("ep_" + a sortable id) on a create that leaves it out. */
static int store_id(const struct endpoint_field *f, const json_t *v, const json_t *req,
		    int64_t now_ms, json_t *out, struct endpoint_error *e)
{
	char idbuf[ID_MAX];
	if (json_is_string(v))
		return store_set(out, f->name, json_copy((json_t *)v));
	id_make("ep_", now_ms, idbuf);
	return store_set(out, f->name, json_string(idbuf));
}

static const char *secret_type_name(enum sign_kind kind)
{
	return kind == SIGN_HMAC ? "hmac" : "ed25519";
}

/* Stored as the list of signing secrets (the current one never expires; rotation adds
 * the old ones with an expiry) and secret_type from the key's kind. Without a secret, one
 * is generated of secret_type's kind. */
static int store_secret(const struct endpoint_field *f, const json_t *v, const json_t *req,
			int64_t now_ms, json_t *out, struct endpoint_error *e)
{
	char text[SIGN_TEXT_MAX];
	struct sign_key k;
	enum sign_kind kind;

	if (json_is_string(v)) {
		if (sign_key_parse(json_string_value(v), &k, NULL, 0) != HOOKD_OK)
			return schema_fail(e, f->name, "invalid secret (value not shown)");
		snprintf(text, sizeof(text), "%s", json_string_value(v));
		kind = k.kind;
	} else {
		const char *type = json_string_value(json_object_get(req, "secret_type"));
		kind = type && strcmp(type, "ed25519") == 0 ? SIGN_ED25519 : SIGN_HMAC;
		if (sign_key_generate(kind, text, sizeof(text)) != HOOKD_OK)
			return schema_fail(e, f->name, "could not generate a secret");
	}
	if (store_set(out, "secrets",
		      json_pack("[{s:s, s:I}]", "secret", text, "expires_at_ms", (json_int_t)0)) ||
	    store_set(out, "secret_type", json_string(secret_type_name(kind))))
		return schema_nomem(e);
	return HOOKD_OK;
}

/* disabled_reason says who disabled it: the operator here, hookd after a 410. */
static int store_disabled(const struct endpoint_field *f, const json_t *v, const json_t *req,
			  int64_t now_ms, json_t *out, struct endpoint_error *e)
{
	bool on = json_is_true(v);
	if (store_set(out, f->name, json_boolean(on)) ||
	    store_set(out, "disabled_reason",
		      on ? json_string("disabled by operator") : json_null()))
		return schema_nomem(e);
	return HOOKD_OK;
}

/* ---- deriving struct endpoint -------------------------------------------------------- */

static char **strings_from_json(const json_t *arr, size_t *n)
{
	size_t i;
	json_t *v;
	char **out = calloc(json_array_size(arr) + 1, sizeof(char *));
	if (!out)
		return NULL;
	json_array_foreach(arr, i, v) {
		if (!(out[i] = strdup(json_string_value(v) ?: ""))) {
			while (i-- > 0)
				free(out[i]);
			free(out);
			return NULL;
		}
	}
	*n = json_array_size(arr);
	return out;
}

static int apply_nomem(char *err, size_t errlen)
{
	err_set(err, errlen, "out of memory");
	return HOOKD_ENOMEM;
}

static int apply_url(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	ep->url = strdup(json_string_value(json_object_get(stored, "url")) ?: "");
	return ep->url ? HOOKD_OK : apply_nomem(err, errlen);
}

static void release_url(struct endpoint *ep)
{
	free(ep->url);
	ep->url = NULL;
}

static int apply_event_types(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	ep->n_event_types = 0;
	ep->event_types = strings_from_json(json_object_get(stored, "event_types"),
					    &ep->n_event_types);
	return ep->event_types ? HOOKD_OK : apply_nomem(err, errlen);
}

static void release_event_types(struct endpoint *ep)
{
	for (size_t i = 0; i < ep->n_event_types; i++)
		free(ep->event_types[i]);
	free(ep->event_types);
	ep->event_types = NULL;
	ep->n_event_types = 0;
}

/* The current secret and the rotated-out ones still in their grace period; expired ones
 * are dropped from the stored JSON too, so they stop signing. */
static int apply_secrets(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	json_t *arr = json_object_get(stored, "secrets");
	int64_t now = clock_now_ms();

	ep->n_secrets = 0;
	for (size_t i = 0; i < json_array_size(arr);) {
		json_t *s = json_array_get(arr, i);
		int64_t exp = json_integer_value(json_object_get(s, "expires_at_ms"));
		const char *text = json_string_value(json_object_get(s, "secret"));
		struct endpoint_secret *es = &ep->secrets[ep->n_secrets];
		if ((exp && exp <= now) || ep->n_secrets >= ENDPOINT_MAX_SECRETS || !text) {
			json_array_remove(arr, i);
			continue;
		}
		if (sign_key_parse(text, &es->key, err, errlen) != HOOKD_OK) {
			ep->n_secrets = 0;
			return HOOKD_EINVAL;
		}
		snprintf(es->text, sizeof(es->text), "%s", text);
		es->expires_ms = exp;
		ep->n_secrets++;
		i++;
	}
	if (ep->n_secrets == 0) {
		err_set(err, errlen, "endpoint has no signing secret");
		return HOOKD_EINVAL;
	}
	return HOOKD_OK;
}

static void release_secrets(struct endpoint *ep)
{
	ep->n_secrets = 0;
}

static int apply_schedule(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	json_t *arr = json_object_get(stored, "retry_schedule"), *v;
	size_t i;

	ep->schedule = NULL;
	ep->n_schedule = 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return HOOKD_OK; /* null: the daemon's delivery.retry_schedule */
	if (!(ep->schedule = calloc(json_array_size(arr), sizeof(uint32_t))))
		return apply_nomem(err, errlen);
	json_array_foreach(arr, i, v) ep->schedule[i] = (uint32_t)json_integer_value(v);
	ep->n_schedule = json_array_size(arr);
	return HOOKD_OK;
}

static void release_schedule(struct endpoint *ep)
{
	free(ep->schedule);
	ep->schedule = NULL;
	ep->n_schedule = 0;
}

static int apply_headers(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	ep->header_lines = NULL;
	ep->n_headers = 0;
	if (header_lines_from_json(json_object_get(stored, "headers"), &ep->header_lines,
				   &ep->n_headers) != HOOKD_OK)
		return apply_nomem(err, errlen);
	return HOOKD_OK;
}

static void release_headers(struct endpoint *ep)
{
	header_lines_free(ep->header_lines, ep->n_headers);
	ep->header_lines = NULL;
	ep->n_headers = 0;
}

static int apply_disabled(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	ep->disabled = json_is_true(json_object_get(stored, "disabled"));
	return HOOKD_OK;
}

static int apply_policy(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	json_t *pol = json_object_get(stored, "policy");
	ep->policy_name = NULL;
	ep->policy_params = NULL;
	if (!json_is_object(pol))
		return HOOKD_OK;
	if (!(ep->policy_name = strdup(json_string_value(json_object_get(pol, "name")) ?: "")))
		return apply_nomem(err, errlen);
	ep->policy_params = json_object_get(pol, "params"); /* borrowed from ep->json */
	return HOOKD_OK;
}

static void release_policy(struct endpoint *ep)
{
	free(ep->policy_name);
	ep->policy_name = NULL;
	ep->policy_params = NULL;
}

/* ---- the table ----------------------------------------------------------------------- */

static const struct endpoint_field policy_fields[] = {
	{.name = "name", .type = EPF_STRING, .flags = EPF_REQUIRED, .check = check_policy_name},
	{.name = "params", .type = EPF_ANY_OBJECT, .flags = EPF_NULLABLE, .dflt = "{}"},
	{0},
};

/* The order of the rows is the order of the stored JSON. How to add a row: the comment
 * above struct endpoint_field (endpoint_schema.h). */
const struct endpoint_field endpoint_fields[] = {
	{.name = "id", .type = EPF_STRING, .flags = EPF_CREATE_ONLY,
	 .fixed = "id cannot be changed", .check = check_id, .store = store_id},
	{.name = "url", .type = EPF_STRING, .flags = EPF_REQUIRED, .check = check_url,
	 .apply = apply_url, .release = release_url},
	{.name = "description", .type = EPF_STRING, .max = ENDPOINT_MAX_DESCRIPTION,
	 .dflt = "\"\""},
	{.name = "event_types", .type = EPF_STRINGS, .flags = EPF_NULLABLE,
	 .max_items = ENDPOINT_MAX_TYPES, .dflt = "[]", .check = check_event_types,
	 .apply = apply_event_types, .release = release_event_types},
	{.name = "secret", .type = EPF_STRING, .flags = EPF_CREATE_ONLY | EPF_NULLABLE,
	 .fixed = "use POST .../secret/rotate to change the secret", .check = check_secret,
	 .store = store_secret, .apply = apply_secrets, .release = release_secrets},
	{.name = "secret_type", .type = EPF_STRING,
	 .flags = EPF_CREATE_ONLY | EPF_NULLABLE | EPF_NOT_STORED,
	 .fixed = "use POST .../secret/rotate to change the secret", .check = check_secret_type},
	{.name = "retry_schedule", .type = EPF_SECONDS, .flags = EPF_NULLABLE, .min = 0,
	 .max = ENDPOINT_MAX_DELAY_S, .max_items = ENDPOINT_MAX_SCHEDULE, .dflt = "null",
	 .apply = apply_schedule, .release = release_schedule},
	{.name = "headers", .type = EPF_STRING_MAP, .flags = EPF_NULLABLE,
	 .max_items = ENDPOINT_MAX_HEADERS, .dflt = "{}", .check = check_headers,
	 .apply = apply_headers, .release = release_headers},
	{.name = "disabled", .type = EPF_BOOL, .dflt = "false", .store = store_disabled,
	 .apply = apply_disabled},
	{.name = "policy", .type = EPF_OBJECT, .flags = EPF_NULLABLE, .dflt = "null",
	 .sub = policy_fields, .apply = apply_policy, .release = release_policy},
	{0},
};

const struct endpoint_field *endpoint_field_find(const struct endpoint_field *rows,
						 const char *name)
{
	for (const struct endpoint_field *f = rows; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* "id, url, description, ...": what an unknown field could have been. */
static const char *schema_names(const struct endpoint_field *rows, char *buf, size_t len)
{
	size_t w = 0;
	buf[0] = '\0';
	for (const struct endpoint_field *f = rows; f->name && w < len; f++) {
		int n = snprintf(buf + w, len - w, "%s%s", w ? ", " : "", f->name);
		if (n < 0)
			break;
		w += (size_t)n;
	}
	return buf;
}

/* ---- checking ------------------------------------------------------------------------ */

static int check_value(const struct endpoint_field *f, const char *path, const json_t *v,
		       struct endpoint_error *e);

static int check_seconds(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	char sub[ENDPOINT_FIELD_PATH_MAX];
	size_t i;
	json_t *d;

	if (!json_is_array(v))
		return schema_fail(e, path, "must be an array of 1 to %zu delays in seconds",
				   f->max_items);
	if (json_array_size(v) == 0 || json_array_size(v) > f->max_items)
		return schema_fail(e, path, "must have 1 to %zu entries, got %zu", f->max_items,
				   json_array_size(v));
	json_array_foreach(v, i, d) {
		schema_path_index(sub, sizeof(sub), path, i);
		if (!json_is_integer(d))
			return schema_fail(e, sub, "must be an integer number of seconds");
		if (json_integer_value(d) < f->min || json_integer_value(d) > f->max)
			return schema_fail(e, sub, "expected %lld..%lld seconds, got %lld",
					   (long long)f->min, (long long)f->max,
					   (long long)json_integer_value(d));
	}
	return HOOKD_OK;
}

static int check_strings(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	char sub[ENDPOINT_FIELD_PATH_MAX];
	size_t i;
	json_t *s;

	if (!json_is_array(v))
		return schema_fail(e, path, "must be an array of strings");
	if (json_array_size(v) > f->max_items)
		return schema_fail(e, path, "has %zu entries, at most %zu are allowed",
				   json_array_size(v), f->max_items);
	json_array_foreach(v, i, s) {
		if (!json_is_string(s))
			return schema_fail(e, schema_path_index(sub, sizeof(sub), path, i),
					   "must be a string");
	}
	return HOOKD_OK;
}

static int check_string_map(const struct endpoint_field *f, const char *path, const json_t *v,
			    struct endpoint_error *e)
{
	char sub[ENDPOINT_FIELD_PATH_MAX];
	const char *k;
	json_t *s;

	if (!json_is_object(v))
		return schema_fail(e, path, "must be an object of names to string values");
	if (json_object_size(v) > f->max_items)
		return schema_fail(e, path, "has %zu entries, at most %zu are allowed",
				   json_object_size(v), f->max_items);
	json_object_foreach((json_t *)v, k, s) {
		if (!json_is_string(s))
			return schema_fail(e, schema_path_key(sub, sizeof(sub), path, k),
					   "must be a string");
	}
	return HOOKD_OK;
}

/* The members of an EPF_OBJECT value, each through its sub-row. */
static int check_object(const struct endpoint_field *f, const char *path, const json_t *v,
			struct endpoint_error *e)
{
	char sub[ENDPOINT_FIELD_PATH_MAX], names[256], show[ERR_QUOTE_MAX];
	const char *k;
	json_t *m;

	if (!json_is_object(v))
		return schema_fail(e, path, "must be an object with the members %s (or null)",
				   schema_names(f->sub, names, sizeof(names)));
	json_object_foreach((json_t *)v, k, m) {
		const struct endpoint_field *s = endpoint_field_find(f->sub, k);
		schema_path_key(sub, sizeof(sub), path, k);
		if (!s)
			return schema_fail(e, sub, "unknown field %s (expected %s)",
					   err_quote(k, show, sizeof(show)),
					   schema_names(f->sub, names, sizeof(names)));
		if (check_value(s, sub, m, e) != HOOKD_OK)
			return HOOKD_EINVAL;
	}
	for (const struct endpoint_field *s = f->sub; s->name; s++)
		if ((s->flags & EPF_REQUIRED) && !json_object_get(v, s->name))
			return schema_fail(e, schema_path_key(sub, sizeof(sub), path, s->name),
					   "required");
	return HOOKD_OK;
}

/* Type and limits of the row, then its own rules. path is where v sits ("policy.name"). */
static int check_value(const struct endpoint_field *f, const char *path, const json_t *v,
		       struct endpoint_error *e)
{
	int rc = HOOKD_OK;

	if (json_is_null(v)) {
		if (f->flags & EPF_NULLABLE)
			return HOOKD_OK;
		return schema_fail(e, path, "must not be null");
	}
	switch (f->type) {
	case EPF_STRING:
		if (!json_is_string(v))
			return schema_fail(e, path, "must be a string");
		if (f->max > 0 && json_string_length(v) > (size_t)f->max)
			return schema_fail(e, path, "must be at most %lld bytes long, got %zu",
					   (long long)f->max, json_string_length(v));
		break;
	case EPF_BOOL:
		if (!json_is_boolean(v))
			return schema_fail(e, path, "must be true or false");
		break;
	case EPF_STRINGS:
		rc = check_strings(f, path, v, e);
		break;
	case EPF_SECONDS:
		rc = check_seconds(f, path, v, e);
		break;
	case EPF_STRING_MAP:
		rc = check_string_map(f, path, v, e);
		break;
	case EPF_OBJECT:
		rc = check_object(f, path, v, e);
		break;
	case EPF_ANY_OBJECT:
		if (!json_is_object(v))
			return schema_fail(e, path, "must be an object");
		break;
	}
	if (rc == HOOKD_OK && f->check)
		rc = f->check(f, path, v, e);
	return rc;
}

int endpoint_schema_check_member(const char *name, const json_t *v, bool creating,
				 struct endpoint_error *e)
{
	const struct endpoint_field *f = endpoint_field_find(endpoint_fields, name);
	char names[256], show[ERR_QUOTE_MAX];

	e->field[0] = e->msg[0] = '\0';
	if (!f)
		return schema_fail(e, name, "unknown field %s (expected %s)",
				   err_quote(name, show, sizeof(show)),
				   schema_names(endpoint_fields, names, sizeof(names)));
	if (!creating && (f->flags & EPF_CREATE_ONLY))
		return schema_fail(e, f->name, "%s", f->fixed);
	return check_value(f, f->name, v, e);
}

int endpoint_schema_check_secret_pair(const json_t *req, struct endpoint_error *e)
{
	const char *secret = json_string_value(json_object_get(req, "secret"));
	const char *type = json_string_value(json_object_get(req, "secret_type"));

	e->field[0] = e->msg[0] = '\0';
	if (secret && type) {
		bool ed = strcmp(type, "ed25519") == 0;
		const char *want = ed ? "whsk_" : "whsec_";
		if (strncmp(secret, want, strlen(want)) != 0)
			return schema_fail(e, "secret",
					   "secret_type %s needs a %s... secret (value not shown)",
					   type, want);
	}
	return HOOKD_OK;
}

int endpoint_schema_check_whole(const json_t *req, bool creating, struct endpoint_error *e)
{
	e->field[0] = e->msg[0] = '\0';
	if (!creating)
		return HOOKD_OK;
	for (const struct endpoint_field *f = endpoint_fields; f->name; f++)
		if ((f->flags & EPF_REQUIRED) && !json_object_get(req, f->name))
			return schema_fail(e, f->name, "required");
	return endpoint_schema_check_secret_pair(req, e);
}

/* ---- merging ------------------------------------------------------------------------- */

static json_t *schema_default(const struct endpoint_field *f)
{
	return json_loads(f->dflt, JSON_DECODE_ANY, NULL);
}

static int store_value(const struct endpoint_field *f, const json_t *v, json_t *out);

/* An EPF_OBJECT value as stored: each sub-row's member as given, or its default. */
static json_t *store_object(const struct endpoint_field *f, const json_t *v)
{
	json_t *obj = json_object();
	if (!obj)
		return NULL;
	for (const struct endpoint_field *s = f->sub; s->name; s++) {
		if (store_value(s, json_object_get(v, s->name), obj) != HOOKD_OK) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

/* The stored form when the row has no store function: the value as given (a copy, so the
 * stored JSON shares nothing with the request), or dflt when it is left out or null. */
static int store_value(const struct endpoint_field *f, const json_t *v, json_t *out)
{
	if (!v || json_is_null(v))
		return f->dflt ? store_set(out, f->name, schema_default(f)) : HOOKD_OK;
	if (f->type == EPF_OBJECT)
		return store_set(out, f->name, store_object(f, v));
	return store_set(out, f->name, json_deep_copy(v));
}

static int merge_field(const struct endpoint_field *f, const json_t *v, const json_t *req,
		       int64_t now_ms, json_t *out, struct endpoint_error *e)
{
	if (f->flags & EPF_NOT_STORED)
		return HOOKD_OK;
	if (f->store)
		return f->store(f, v, req, now_ms, out, e);
	return store_value(f, v, out) == HOOKD_OK ? HOOKD_OK : schema_nomem(e);
}

/* Checks every member of req, then what spans them. */
static int merge_check(const json_t *req, bool creating, struct endpoint_error *e)
{
	const char *key;
	json_t *v;

	if (!json_is_object(req))
		return schema_fail(e, "", "request body must be a JSON object");
	json_object_foreach((json_t *)req, key, v) {
		if (endpoint_schema_check_member(key, v, creating, e) != HOOKD_OK)
			return HOOKD_EINVAL;
	}
	return endpoint_schema_check_whole(req, creating, e);
}

/* A create stores every row (given, generated or default); a patch only what it names. */
static int merge_fields(const json_t *req, bool creating, int64_t now_ms, json_t *out,
			struct endpoint_error *e)
{
	for (const struct endpoint_field *f = endpoint_fields; f->name; f++) {
		const json_t *v = json_object_get(req, f->name);
		int rc;
		if (!v && !creating)
			continue;
		if ((rc = merge_field(f, v, req, now_ms, out, e)) != HOOKD_OK)
			return rc;
	}
	return HOOKD_OK;
}

json_t *endpoint_schema_merge(const json_t *base, const json_t *req, const char *app_id,
			      int64_t now_ms, struct endpoint_error *e)
{
	bool creating = base == NULL;
	char iso[CLOCK_ISO_LEN];
	json_t *out = NULL;

	e->field[0] = e->msg[0] = '\0';
	if (merge_check(req, creating, e) != HOOKD_OK)
		return NULL;
	if (!(out = creating ? json_object() : json_deep_copy(base))) {
		schema_nomem(e);
		return NULL;
	}
	clock_iso8601(now_ms, iso);
	if (merge_fields(req, creating, now_ms, out, e) != HOOKD_OK)
		goto fail;
	if (creating && (store_set(out, "app_id", json_string(app_id)) ||
			 store_set(out, "created_at", json_string(iso)))) {
		schema_nomem(e);
		goto fail;
	}
	if (store_set(out, "updated_at", json_string(iso))) {
		schema_nomem(e);
		goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* ---- applying ------------------------------------------------------------------------ */

int endpoint_schema_apply(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	for (const struct endpoint_field *f = endpoint_fields; f->name; f++) {
		int rc;
		if (!f->apply || (rc = f->apply(ep, stored, err, errlen)) == HOOKD_OK)
			continue;
		while (f-- > endpoint_fields)
			if (f->release)
				f->release(ep);
		return rc;
	}
	return HOOKD_OK;
}

void endpoint_schema_release(struct endpoint *ep)
{
	for (const struct endpoint_field *f = endpoint_fields; f->name; f++)
		if (f->release)
			f->release(ep);
}
