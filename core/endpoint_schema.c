/* endpoint_schema.c - the endpoint's field table and what reads it: checking a request,
 * merging it into the stored JSON, and deriving struct endpoint from that JSON. */
#include "endpoint_schema.h"

#include "clock.h"
#include "err.h"
#include "header.h"
#include "id.h"
#include "log.h"
#include "plugin.h"
#include "policy.h"
#include "registry.h"
#include "sign.h"
#include "tls_text.h"
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
/* TLS material, as PEM text. A client certificate with its intermediates is 2-8 KiB; an
 * RSA-8192 key 6.4 KiB; a private CA's bundle (root and a few intermediates) a few KiB,
 * while the whole system bundle is 200 KiB, which is the default anyway. Each is copied
 * into the request of every attempt to the endpoint (curl's blob options), so the bounds
 * also bound that cost. */
#define ENDPOINT_TLS_CERT_MAX (32 * 1024)
#define ENDPOINT_TLS_KEY_MAX (16 * 1024)
#define ENDPOINT_TLS_CA_MAX (64 * 1024)
/* TLS_TEXT_PINS_MAX entries of "sha256//" + 44 base64 characters, with their ';'. */
#define ENDPOINT_TLS_PIN_MAX (TLS_TEXT_PINS_MAX * 53)
/* 50 entries of at most 7 days: a month-long schedule fits, a runaway one does not. */
#define ENDPOINT_MAX_SCHEDULE 50
#define ENDPOINT_MAX_DELAY_S 604800 /* one week: longer waits are an outage, not a retry */
/* A note for operators, shown in listings; a paragraph, not a document. */
#define ENDPOINT_MAX_DESCRIPTION 1024
/* Options of an auth object: the shipped schemes take at most five (oauth2); sixteen leaves
 * room for a third party's without letting one endpoint carry hundreds. */
#define ENDPOINT_MAX_AUTH_OPTIONS 16
/* An option's name: a word, like a config key. */
#define ENDPOINT_MAX_AUTH_NAME 64
/* An option's value: credentials end up in a header line, which receivers cap at 8 KiB
 * (HEADER_VALUE_MAX); a longer one could never be sent. */
#define ENDPOINT_MAX_AUTH_VALUE HEADER_VALUE_MAX

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

/* Sets out[name] to v (stolen); HOOKD_ENOMEM when v is NULL or the set fails. */
static int store_set(json_t *out, const char *name, json_t *v)
{
	return v && json_object_set_new(out, name, v) == 0 ? HOOKD_OK : HOOKD_ENOMEM;
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

	if (url_plugin_scheme(url, scheme) && (pt = plugins_transport(plugins_current(), scheme))) {
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

static int check_tls_cert(const struct endpoint_field *f, const char *path, const json_t *v,
			  struct endpoint_error *e)
{
	char why[200];
	if (tls_text_check_certs(json_string_value(v), NULL, why, sizeof(why)) != HOOKD_OK)
		return schema_fail(e, path, "%s", why);
	return HOOKD_OK;
}

static int check_tls_key(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	char why[200];
	if (tls_text_check_key(json_string_value(v), why, sizeof(why)) != HOOKD_OK)
		return schema_fail(e, path, "%s", why);
	return HOOKD_OK;
}

static int check_tls_pin(const struct endpoint_field *f, const char *path, const json_t *v,
			 struct endpoint_error *e)
{
	char why[200];
	if (tls_text_check_pins(json_string_value(v), why, sizeof(why)) != HOOKD_OK)
		return schema_fail(e, path, "%s", why);
	return HOOKD_OK;
}

static bool tls_member_set(const json_t *tls, const char *name)
{
	return json_is_string(json_object_get(tls, name));
}

/* A client certificate is useless without its key and a key without its certificate:
 * both or neither (the other members stand alone). */
static int check_tls(const struct endpoint_field *f, const char *path, const json_t *v,
		     struct endpoint_error *e)
{
	char sub[ENDPOINT_FIELD_PATH_MAX];
	bool cert = tls_member_set(v, "client_cert"), key = tls_member_set(v, "client_key");
	if (cert && !key)
		return schema_fail(e, schema_path_key(sub, sizeof(sub), path, "client_key"),
				   "required with tls.client_cert (the certificate's private key)");
	if (key && !cert)
		return schema_fail(e, schema_path_key(sub, sizeof(sub), path, "client_cert"),
				   "required with tls.client_key (the key's certificate)");
	return HOOKD_OK;
}

/* "" goes direct, whatever delivery.proxy says; otherwise url.h's proxy rules, the same as
 * delivery.proxy's. */
static int check_proxy(const struct endpoint_field *f, const char *path, const json_t *v,
		       struct endpoint_error *e)
{
	const char *s = json_string_value(v);
	char why[200], show[ERR_QUOTE_MAX];
	if (s[0] == '\0' || url_proxy_check(s, why, sizeof(why)) == HOOKD_OK)
		return HOOKD_OK;
	return schema_fail(e, path, "%s, got %s (\"\" to go direct, null for delivery.proxy)",
			   why, err_quote(s, show, sizeof(show)));
}

/* Options of the HTTP transport need a URL it delivers: TLS options an https:// one (on an
 * http:// URL they would silently do nothing), a proxy an http(s):// one (a plugin
 * transport's URL would ignore it). Checked on the whole endpoint (a create, or the stored
 * JSON after a patch), since either the url or the option may be the one that changed. */
static int check_transport_options(const json_t *obj, struct endpoint_error *e)
{
	static const char *const members[] = {"client_cert", "client_key", "ca", "pin"};
	const json_t *tls = json_object_get(obj, "tls");
	const char *url = json_string_value(json_object_get(obj, "url"));
	const char *proxy = json_string_value(json_object_get(obj, "proxy"));
	bool any = false;

	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
		any = any || tls_member_set(tls, members[i]);
	if (proxy && proxy[0] && url && strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0)
		return schema_fail(e, "proxy", "a proxy applies to http:// and https:// URLs only");
	if (!any || !url || strncasecmp(url, "https://", 8) == 0)
		return HOOKD_OK;
	return schema_fail(e, "tls",
			   "TLS options apply to https:// URLs only, and the url is not one "
			   "(change the url to https:// or set tls to null)");
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

/* ---- the auth object ------------------------------------------------------------------ */

/* An option's value as the plugin sees it (struct hookd_option): a string as is, a number
 * or boolean as JSON writes it. malloc'd; NULL when out of memory. */
static char *auth_option_text(const json_t *v)
{
	if (json_is_string(v))
		return strdup(json_string_value(v));
	return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

static void auth_options_free(struct hookd_option *opts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)opts[i].name);
		free((char *)opts[i].value);
	}
	free(opts);
}

/* The members of a checked auth object but scheme, as options; HOOKD_ENOMEM leaves
 * nothing allocated. */
static int auth_options_from_json(const json_t *obj, struct hookd_option **out, size_t *n)
{
	struct hookd_option *opts = calloc(json_object_size(obj) + 1, sizeof(*opts));
	const char *k;
	json_t *v;
	size_t count = 0;

	if (!opts)
		return HOOKD_ENOMEM;
	json_object_foreach((json_t *)obj, k, v) {
		if (strcmp(k, "scheme") == 0)
			continue;
		opts[count].name = strdup(k);
		opts[count].value = auth_option_text(v);
		count++;
		if (!opts[count - 1].name || !opts[count - 1].value) {
			auth_options_free(opts, count);
			return HOOKD_ENOMEM;
		}
	}
	*out = opts;
	*n = count;
	return HOOKD_OK;
}

/* Type and size of each option; which ones exist is the scheme's to say (its check). */
static int check_auth_options(const char *path, const json_t *v, struct endpoint_error *e)
{
	char sub[ENDPOINT_FIELD_PATH_MAX];
	const char *k;
	json_t *m;

	if (json_object_size(v) > ENDPOINT_MAX_AUTH_OPTIONS + 1)
		return schema_fail(e, path, "has %zu options, at most %d are allowed",
				   json_object_size(v) - 1, ENDPOINT_MAX_AUTH_OPTIONS);
	json_object_foreach((json_t *)v, k, m) {
		if (strcmp(k, "scheme") == 0)
			continue;
		schema_path_key(sub, sizeof(sub), path, k);
		if (strlen(k) == 0 || strlen(k) > ENDPOINT_MAX_AUTH_NAME)
			return schema_fail(e, sub, "option names are 1 to %d bytes long",
					   ENDPOINT_MAX_AUTH_NAME);
		if (!json_is_string(m) && !json_is_number(m) && !json_is_boolean(m))
			return schema_fail(e, sub, "must be a string, a number or a boolean");
		if (json_is_string(m) && json_string_length(m) > ENDPOINT_MAX_AUTH_VALUE)
			return schema_fail(e, sub, "must be at most %d bytes long, got %zu",
					   ENDPOINT_MAX_AUTH_VALUE, json_string_length(m));
	}
	return HOOKD_OK;
}

/* "basic, bearer": the registered schemes, for a message about an unknown one. */
static const char *auth_scheme_names(const struct plugins *p, char *buf, size_t len)
{
	plugins_auth_schemes(p, buf, len);
	if (!buf[0])
		snprintf(buf, len, "none; see plugins.dir");
	return buf;
}

/* {"scheme": NAME, ...options}: NAME a scheme a loaded plugin registered, each option a
 * string, number or boolean, then the scheme's own check. The daemon loads its plugins
 * before it reads the rest of the config file; where none are loaded at all (no
 * plugins_current(): a tool reading a config without the daemon) only the shape is
 * checked here, and a daemon applying the endpoint checks it again, whole. */
static int check_auth(const struct endpoint_field *f, const char *path, const json_t *v,
		      struct endpoint_error *e)
{
	const json_t *scheme = json_object_get(v, "scheme");
	const struct plugins *p = plugins_current();
	const struct plugin_auth *pa;
	char sub[ENDPOINT_FIELD_PATH_MAX], names[256], show[ERR_QUOTE_MAX];
	char field[ENDPOINT_FIELD_PATH_MAX / 2], why[sizeof(e->msg) - 64];
	struct hookd_option *opts;
	size_t n;
	int rc;

	schema_path_key(sub, sizeof(sub), path, "scheme");
	if (!scheme)
		return schema_fail(e, sub, "required: the name of an auth scheme (loaded: %s)",
				   p ? auth_scheme_names(p, names, sizeof(names)) : "see plugins");
	if (!json_is_string(scheme))
		return schema_fail(e, sub, "must be a string");
	if (check_auth_options(path, v, e) != HOOKD_OK)
		return HOOKD_EINVAL;
	if (!p)
		return HOOKD_OK;
	if (!(pa = plugins_auth(p, json_string_value(scheme))))
		return schema_fail(e, sub, "unknown auth scheme %s (loaded: %s)",
				   err_quote(json_string_value(scheme), show, sizeof(show)),
				   auth_scheme_names(p, names, sizeof(names)));
	if (!pa->a->check)
		return HOOKD_OK;
	if (auth_options_from_json(v, &opts, &n) != HOOKD_OK)
		return schema_nomem(e);
	field[0] = why[0] = '\0';
	rc = pa->a->check(pa->state, opts, n, field, sizeof(field), why, sizeof(why));
	auth_options_free(opts, n);
	if (rc == 0)
		return HOOKD_OK;
	field[sizeof(field) - 1] = why[sizeof(why) - 1] = '\0';
	if (field[0])
		schema_path_key(sub, sizeof(sub), path, field);
	else
		snprintf(sub, sizeof(sub), "%s", path);
	return schema_fail(e, sub, "%s", why[0] ? why : "refused by the auth scheme");
}

/* The object as given, but a secret option given back exactly as the API shows it (a
 * client that PATCHes what it read) keeps the value stored for it, when the scheme stays
 * the same: the mask is not a credential anyone means to set. out holds the stored JSON
 * being patched (a copy of the base), so its "auth" is the one being replaced. */
static int store_auth(const struct endpoint_field *f, const json_t *v, const json_t *req,
		      int64_t now_ms, json_t *out, struct endpoint_error *e)
{
	json_t *old = json_object_get(out, f->name), *copy, *m;
	const struct plugins *p = plugins_current();
	const struct plugin_auth *pa;
	const char *k, *scheme;
	char mask[REGISTRY_MASK_MAX];

	if (!v || json_is_null(v))
		return store_set(out, f->name, json_null()) == HOOKD_OK ? HOOKD_OK
									: schema_nomem(e);
	if (!(copy = json_deep_copy(v)))
		return schema_nomem(e);
	scheme = json_string_value(json_object_get(v, "scheme"));
	pa = p && scheme ? plugins_auth(p, scheme) : NULL;
	if (json_is_object(old) && scheme &&
	    strcmp(json_string_value(json_object_get(old, "scheme")) ?: "", scheme) == 0) {
		json_object_foreach(copy, k, m) {
			json_t *was = json_object_get(old, k);
			if (strcmp(k, "scheme") == 0 || !json_is_string(m) || !json_is_string(was) ||
			    !registry_auth_option_secret(pa, k))
				continue;
			registry_secret_mask(json_string_value(was), mask, sizeof(mask));
			if (strcmp(mask, json_string_value(m)) == 0 &&
			    json_object_set_new(copy, k, json_copy(was))) {
				json_decref(copy);
				return schema_nomem(e);
			}
		}
	}
	return store_set(out, f->name, copy) == HOOKD_OK ? HOOKD_OK : schema_nomem(e);
}

/* ---- stored forms -------------------------------------------------------------------- */

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

/* disabled_reason says who disabled it: the operator here, hookd after a 410 or a long
 * run of failures. Enabling it (or creating it) also forgets that run ("failing_since"),
 * so an endpoint re-enabled after an auto-disable gets the whole time again. */
static int store_disabled(const struct endpoint_field *f, const json_t *v, const json_t *req,
			  int64_t now_ms, json_t *out, struct endpoint_error *e)
{
	bool on = json_is_true(v);
	if (store_set(out, f->name, json_boolean(on)) ||
	    store_set(out, "disabled_reason",
		      on ? json_string("disabled by operator") : json_null()) ||
	    (!on && store_set(out, "failing_since", json_null())))
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
	const char *since = json_string_value(json_object_get(stored, "failing_since"));
	ep->disabled = json_is_true(json_object_get(stored, "disabled"));
	if (!since || clock_parse(since, &ep->failing_since_ms) != HOOKD_OK)
		ep->failing_since_ms = 0;
	return HOOKD_OK;
}

/* A member of an object row as an integer or number; -1 when null or absent (the default). */
static int64_t apply_int_member(const json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

static double apply_number_member(const json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);
	return json_is_number(v) ? json_number_value(v) : -1;
}

static int apply_breaker(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	json_t *b = json_object_get(stored, "breaker");
	ep->flow.consecutive_failures = apply_int_member(b, "consecutive_failures");
	ep->flow.failure_ratio = apply_number_member(b, "failure_ratio");
	ep->flow.window_s = apply_int_member(b, "window_seconds");
	ep->flow.cooldown_s = apply_int_member(b, "cooldown_seconds");
	return HOOKD_OK;
}

static int apply_rate_limit(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	json_t *r = json_object_get(stored, "rate_limit");
	ep->flow.per_second = apply_number_member(r, "per_second");
	ep->flow.burst = apply_int_member(r, "burst");
	return HOOKD_OK;
}

static int apply_max_in_flight(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	ep->flow.max_in_flight = apply_int_member(stored, "max_in_flight");
	return HOOKD_OK;
}

static int apply_auto_disable(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	ep->flow.auto_disable_s = apply_int_member(stored, "auto_disable_seconds");
	return HOOKD_OK;
}

static int apply_max_pending(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	ep->flow.max_pending = apply_int_member(stored, "max_pending");
	return HOOKD_OK;
}

/* Borrowed from the stored JSON (ep->json once installed), like policy_params: the
 * transport copies what it needs when an attempt starts. */
static const char *apply_tls_member(const json_t *tls, const char *name)
{
	return json_string_value(json_object_get(tls, name));
}

static int apply_tls(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	json_t *tls = json_object_get(stored, "tls");
	ep->tls_cert_pem = apply_tls_member(tls, "client_cert");
	ep->tls_key_pem = apply_tls_member(tls, "client_key");
	ep->tls_ca_pem = apply_tls_member(tls, "ca");
	ep->tls_pin = apply_tls_member(tls, "pin");
	return HOOKD_OK;
}

static void release_tls(struct endpoint *ep)
{
	ep->tls_cert_pem = ep->tls_key_pem = ep->tls_ca_pem = ep->tls_pin = NULL;
}

static int apply_proxy(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	ep->proxy = json_string_value(json_object_get(stored, "proxy"));
	return HOOKD_OK;
}

static void release_proxy(struct endpoint *ep)
{
	ep->proxy = NULL;
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

/* The scheme is looked up now: an endpoint whose scheme is no longer loaded (its plugin
 * removed) stays, and its attempts fail naming the scheme until it is back. */
static int apply_auth(struct endpoint *ep, json_t *stored, char *err, size_t errlen)
{
	json_t *obj = json_object_get(stored, "auth");
	const struct plugins *p = plugins_current();
	struct endpoint_auth *a;

	ep->auth = NULL;
	if (!json_is_object(obj))
		return HOOKD_OK;
	if (!(a = calloc(1, sizeof(*a))))
		return apply_nomem(err, errlen);
	a->refs = 1;
	if (!(a->scheme = strdup(json_string_value(json_object_get(obj, "scheme")) ?: "")) ||
	    auth_options_from_json(obj, &a->opts, &a->n_opts) != HOOKD_OK) {
		endpoint_auth_unref(a);
		return apply_nomem(err, errlen);
	}
	a->pa = p ? plugins_auth(p, a->scheme) : NULL;
	if (!a->pa)
		log_warn("endpoint %s/%s: auth scheme '%s' is not loaded; its attempts fail until "
			 "it is", ep->app_id ?: "?", ep->id ?: "?", a->scheme);
	ep->auth = a;
	return HOOKD_OK;
}

static void release_auth(struct endpoint *ep)
{
	endpoint_auth_unref(ep->auth);
	ep->auth = NULL;
}

/* ---- the table ----------------------------------------------------------------------- */

static const struct endpoint_field policy_fields[] = {
	{.name = "name", .type = EPF_STRING, .flags = EPF_REQUIRED, .check = check_policy_name},
	{.name = "params", .type = EPF_ANY_OBJECT, .flags = EPF_NULLABLE, .dflt = "{}"},
	{0},
};

static const struct endpoint_field tls_fields[] = {
	{.name = "client_cert", .type = EPF_STRING, .flags = EPF_NULLABLE,
	 .max = ENDPOINT_TLS_CERT_MAX, .dflt = "null", .check = check_tls_cert},
	{.name = "client_key", .type = EPF_STRING, .flags = EPF_NULLABLE,
	 .max = ENDPOINT_TLS_KEY_MAX, .dflt = "null", .check = check_tls_key},
	{.name = "ca", .type = EPF_STRING, .flags = EPF_NULLABLE, .max = ENDPOINT_TLS_CA_MAX,
	 .dflt = "null", .check = check_tls_cert},
	{.name = "pin", .type = EPF_STRING, .flags = EPF_NULLABLE, .max = ENDPOINT_TLS_PIN_MAX,
	 .dflt = "null", .check = check_tls_pin},
	{0},
};

/* Each member null (or left out) is the daemon's delivery.breaker.* of the same name. */
static const struct endpoint_field breaker_fields[] = {
	/* 0 turns the rule off; a million failures in a row is no longer a breaker. */
	{.name = "consecutive_failures", .type = EPF_INT, .flags = EPF_NULLABLE, .min = 0,
	 .max = 1000000, .dflt = "null"},
	/* The share of failed attempts in the window (at least FLOW_RATIO_MIN_ATTEMPTS of
	 * them) that opens it; 0 turns the rule off. */
	{.name = "failure_ratio", .type = EPF_NUMBER, .flags = EPF_NULLABLE, .min = 0, .max = 1,
	 .dflt = "null"},
	/* A second to a day: the window is kept as FLOW_SLOTS counters whatever its length. */
	{.name = "window_seconds", .type = EPF_INT, .flags = EPF_NULLABLE, .min = 1,
	 .max = 86400, .dflt = "null"},
	/* The wait before the first probe; it doubles after each failed one, up to the daemon's
	 * delivery.breaker.max_cooldown_seconds. A day between probes is already "disabled". */
	{.name = "cooldown_seconds", .type = EPF_INT, .flags = EPF_NULLABLE, .min = 1,
	 .max = 86400, .dflt = "null"},
	{0},
};

static const struct endpoint_field rate_limit_fields[] = {
	/* Attempts per second; 0 = no limit (also when the daemon's default has one). Above
	 * 100,000 a second one endpoint is past what one hookd sends in all. */
	{.name = "per_second", .type = EPF_NUMBER, .flags = EPF_REQUIRED, .min = 0,
	 .max = 100000},
	/* Attempts that may go at once after a quiet time; null = per_second rounded up. */
	{.name = "burst", .type = EPF_INT, .flags = EPF_NULLABLE, .min = 1, .max = 100000,
	 .dflt = "null"},
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
	{.name = "breaker", .type = EPF_OBJECT, .flags = EPF_NULLABLE, .dflt = "null",
	 .sub = breaker_fields, .apply = apply_breaker},
	{.name = "rate_limit", .type = EPF_OBJECT, .flags = EPF_NULLABLE, .dflt = "null",
	 .sub = rate_limit_fields, .apply = apply_rate_limit},
	/* Attempts of this endpoint out at once; null = delivery.max_inflight_per_endpoint,
	 * whose range this is. */
	{.name = "max_in_flight", .type = EPF_INT, .flags = EPF_NULLABLE, .min = 1, .max = 65536,
	 .dflt = "null", .apply = apply_max_in_flight},
	/* Failing without a success for this long disables the endpoint (its deliveries are
	 * held, not dropped); 0 = never; null = delivery.auto_disable_seconds. A year is the
	 * longest anyone keeps sending into a void. */
	{.name = "auto_disable_seconds", .type = EPF_INT, .flags = EPF_NULLABLE, .min = 0,
	 .max = 31536000, .dflt = "null", .apply = apply_auto_disable},
	/* Pending deliveries past which a publish to it gets 429; 0 = no cap; null =
	 * delivery.max_pending_per_endpoint, whose range this is. */
	{.name = "max_pending", .type = EPF_INT, .flags = EPF_NULLABLE, .min = 0,
	 .max = 1000000000, .dflt = "null", .apply = apply_max_pending},
	{.name = "headers", .type = EPF_STRING_MAP, .flags = EPF_NULLABLE,
	 .max_items = ENDPOINT_MAX_HEADERS, .dflt = "{}", .check = check_headers,
	 .apply = apply_headers, .release = release_headers},
	{.name = "disabled", .type = EPF_BOOL, .dflt = "false", .store = store_disabled,
	 .apply = apply_disabled},
	{.name = "tls", .type = EPF_OBJECT, .flags = EPF_NULLABLE, .dflt = "null",
	 .sub = tls_fields, .check = check_tls, .apply = apply_tls, .release = release_tls},
	{.name = "proxy", .type = EPF_STRING, .flags = EPF_NULLABLE, .max = URL_MAX,
	 .dflt = "null", .check = check_proxy, .apply = apply_proxy, .release = release_proxy},
	{.name = "policy", .type = EPF_OBJECT, .flags = EPF_NULLABLE, .dflt = "null",
	 .sub = policy_fields, .apply = apply_policy, .release = release_policy},
	{.name = "auth", .type = EPF_ANY_OBJECT, .flags = EPF_NULLABLE, .dflt = "null",
	 .check = check_auth, .store = store_auth, .apply = apply_auth, .release = release_auth},
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
	case EPF_INT:
		if (!json_is_integer(v))
			return schema_fail(e, path, "must be an integer");
		if (json_integer_value(v) < f->min || json_integer_value(v) > f->max)
			return schema_fail(e, path, "expected %lld..%lld, got %lld",
					   (long long)f->min, (long long)f->max,
					   (long long)json_integer_value(v));
		break;
	case EPF_NUMBER:
		if (!json_is_number(v))
			return schema_fail(e, path, "must be a number");
		if (json_number_value(v) < (double)f->min || json_number_value(v) > (double)f->max)
			return schema_fail(e, path, "expected %lld..%lld, got %g", (long long)f->min,
					   (long long)f->max, json_number_value(v));
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
	if (check_transport_options(req, e) != HOOKD_OK)
		return HOOKD_EINVAL;
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
	if (merge_fields(req, creating, now_ms, out, e) != HOOKD_OK ||
	    check_transport_options(out, e) != HOOKD_OK)
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
