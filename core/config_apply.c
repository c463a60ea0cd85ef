/* config_apply.c - declared apps and endpoints, and the policy directory, applied to the
 * running daemon. The checks already ran when the file was read (config_read.c, through the
 * endpoint schema); this only turns the declaration into stored state. */
#include "config_apply.h"

#include "clock.h"
#include "config.h"
#include "endpoint_schema.h"
#include "err.h"
#include "policy.h"
#include "registry.h"
#include "sign.h"
#include "store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The API request that makes the stored endpoint match its declaration. A create takes the
 * declared fields as they are. An update leaves out what only a create may set (id and
 * secret: the secret is handled by config_apply_secret) and gives every other field the
 * file leaves out its default, so removing a key from the file removes it from the
 * endpoint. */
static json_t *config_endpoint_request(const struct config_endpoint *ce, bool creating)
{
	json_t *req = json_deep_copy(ce->fields);
	if (!req || creating)
		return req;
	for (const struct endpoint_field *f = endpoint_fields; f->name; f++) {
		json_t *dflt;
		if (f->flags & EPF_CREATE_ONLY) {
			json_object_del(req, f->name);
			continue;
		}
		if (json_object_get(req, f->name) || !f->dflt)
			continue;
		if (!(dflt = json_loads(f->dflt, JSON_DECODE_ANY, NULL)) ||
		    json_object_set_new(req, f->name, dflt)) {
			json_decref(req);
			return NULL;
		}
	}
	return req;
}

/* A secret changed in the file replaces the endpoint's current one at once (the API's
 * rotation, with its grace period, is for secrets managed through the API). */
static int config_apply_secret(const struct config_endpoint *ce, const struct endpoint *ep,
			       json_t *stored, char *err, size_t errlen)
{
	const char *secret = json_string_value(json_object_get(ce->fields, "secret"));
	struct sign_key k;
	char why[256];

	if (!ep || !secret || strcmp(secret, ep->secrets[0].text) == 0)
		return HOOKD_OK;
	if (sign_key_parse(secret, &k, why, sizeof(why)) != HOOKD_OK) {
		snprintf(err, errlen, "line %d: secret: %s", ce->line, why);
		return HOOKD_ECONFIG;
	}
	if (json_object_set_new(stored, "secrets",
				json_pack("[{s:s, s:I}]", "secret", secret, "expires_at_ms",
					  (json_int_t)0)) ||
	    json_object_set_new(stored, "secret_type",
				json_string(k.kind == SIGN_HMAC ? "hmac" : "ed25519"))) {
		snprintf(err, errlen, "line %d: endpoint %s: out of memory", ce->line, ce->id);
		return HOOKD_ENOMEM;
	}
	return HOOKD_OK;
}

static int config_apply_endpoint(const struct config_endpoint *ce, size_t i, size_t j,
				 struct registry *reg, struct app *app, struct store *s,
				 char *err, size_t errlen)
{
	struct endpoint *ep = strmap_get(&app->endpoints, ce->id);
	json_t *req = config_endpoint_request(ce, ep == NULL), *stored;
	char field[128], msg[512], lerr[256], *text;
	int rc;

	if (!req) {
		snprintf(err, errlen, "line %d: endpoint %s: out of memory", ce->line, ce->id);
		return HOOKD_ENOMEM;
	}
	stored = endpoint_json_merge(ep ? ep->json : NULL, req, app->id, clock_now_ms(), field,
				     sizeof(field), msg, sizeof(msg));
	json_decref(req);
	if (!stored) {
		snprintf(err, errlen, "line %d: apps[%zu].endpoints[%zu].%s", ce->line, i, j, msg);
		return HOOKD_ECONFIG;
	}
	if ((rc = config_apply_secret(ce, ep, stored, err, errlen)) != HOOKD_OK) {
		json_decref(stored);
		return rc;
	}
	text = json_dumps(stored, JSON_COMPACT | JSON_PRESERVE_ORDER);
	rc = text ? store_endpoint_write_now(s, app->id, ce->id, text) : HOOKD_ENOMEM;
	free(text);
	if (rc != HOOKD_OK) {
		json_decref(stored);
		snprintf(err, errlen, "line %d: endpoint %s: cannot store: %s", ce->line, ce->id,
			 hookd_strerror(rc));
		return HOOKD_ECONFIG;
	}
	if (!registry_endpoint_install(reg, app, stored, lerr, sizeof(lerr))) {
		snprintf(err, errlen, "line %d: endpoint %s: %s", ce->line, ce->id, lerr);
		return HOOKD_ECONFIG;
	}
	return HOOKD_OK;
}

/* Sets member key of aj to the declared days, unless the file does not name them. */
static int config_app_days(json_t *aj, const char *key, uint32_t days)
{
	if (days == CONFIG_DAYS_UNSET)
		return json_object_get(aj, key) ? 0 : json_object_set_new(aj, key, json_null());
	return json_object_set_new(aj, key, json_integer(days));
}

/* The app's stored JSON with the declared name and retention (created_at, and the days the
 * file does not name, kept from an earlier start or the API). The file's check
 * (config_read.c) could only compare a payload_retention_days with the retention_days the
 * file names; here it is compared with the one the app ends up with. */
static struct app *config_apply_app(const struct config *c, size_t i, struct registry *reg,
				    struct store *s, char *err, size_t errlen)
{
	const struct config_app *ca = &c->apps[i];
	struct app *app = registry_app(reg, ca->id);
	char iso[CLOCK_ISO_LEN], *text;
	json_t *aj, *rv, *pv;
	int rc;

	clock_iso8601(clock_now_ms(), iso);
	aj = app ? json_deep_copy(app->json)
		 : json_pack("{s:s, s:s}", "id", ca->id, "created_at", iso);
	if (aj && (json_object_set_new(aj, "name", json_string(ca->name ? ca->name : ca->id)) ||
		   config_app_days(aj, "retention_days", ca->retention_days) ||
		   config_app_days(aj, "payload_retention_days", ca->payload_retention_days))) {
		json_decref(aj);
		aj = NULL;
	}
	rv = json_object_get(aj, "retention_days");
	pv = json_object_get(aj, "payload_retention_days");
	if (json_is_integer(pv) && json_integer_value(pv) > 0) {
		json_int_t days = json_is_integer(rv) ? json_integer_value(rv) : c->retention_days;
		if (days > 0 && json_integer_value(pv) > days) {
			snprintf(err, errlen,
				 "line %d: apps[%zu].payload_retention_days: %lld must not exceed the "
				 "app's retention_days (%lld%s)",
				 ca->line, i, (long long)json_integer_value(pv), (long long)days,
				 json_is_integer(rv) ? ", stored" : ", storage.retention_days");
			json_decref(aj);
			return NULL;
		}
	}
	text = aj ? json_dumps(aj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	rc = text ? store_app_write_now(s, ca->id, text) : HOOKD_ENOMEM;
	free(text);
	if (rc != HOOKD_OK) {
		json_decref(aj);
		aj = NULL;
	}
	if (!aj || !(app = registry_app_install(reg, aj))) {
		snprintf(err, errlen, "app %s (line %d): cannot store: %s", ca->id, ca->line,
			 hookd_strerror(rc != HOOKD_OK ? rc : HOOKD_ENOMEM));
		return NULL;
	}
	return app;
}

int config_apply_declared(const struct config *c, struct registry *reg, struct store *s,
			  char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n_apps; i++) {
		const struct config_app *ca = &c->apps[i];
		struct app *app = config_apply_app(c, i, reg, s, err, errlen);
		if (!app)
			return HOOKD_ECONFIG;
		for (size_t j = 0; j < ca->n_endpoints; j++) {
			int rc = config_apply_endpoint(&ca->endpoints[j], i, j, reg, app, s, err,
						       errlen);
			if (rc != HOOKD_OK)
				return rc;
		}
	}
	return HOOKD_OK;
}

int config_apply_policies(const struct config *c, struct policy_engine *pe, char *err,
			  size_t errlen)
{
	if (!c->policy_dir)
		return HOOKD_OK;
	return policy_engine_load_dir(pe, c->policy_dir, err, errlen);
}
