/* api_apps.c - /v1/apps: create, list, read and change apps (name, retention). */
#include "api-t.h"

#include "clock.h"
#include "config.h"
#include "err.h"
#include "id.h"
#include "registry.h"
#include "store.h"

#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void api_app_saved(void *arg, int rc)
{
	struct api_pending *p = arg;
	struct evhttp_request *req = api_pending_take(p);
	if (rc == HOOKD_OK) {
		struct app *app = registry_app_install(p->api->reg, json_incref(p->json));
		if (req)
			api_send(req, p->app ? 200 : 201, app ? json_incref(app->json) : json_object());
	} else if (req) {
		api_store_failed(req, rc);
	}
	api_pending_free(p);
}

/* Ten years is "keep", as storage.retention_days (config_schema.c); 0 says so explicitly. */
#define API_APP_DAYS_MAX 3650

/* Member key (retention_days or payload_retention_days) of a request: an integer in
 * 0..API_APP_DAYS_MAX, or null for the daemon's default. 0, or 400 answered. */
static int api_app_days(struct evhttp_request *req, const char *key, const json_t *v)
{
	if (json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= 0 &&
				json_integer_value(v) <= API_APP_DAYS_MAX))
		return 0;
	api_error(req, 400, "invalid_field", key, "%s must be an integer 0..%d, or null for "
		  "storage.%s", key, API_APP_DAYS_MAX, key);
	return -1;
}

/* The fields a request may set (create: id too) into out (the app's JSON being built);
 * id, when given, into *id. Then the rule across them: payload_retention_days, when set,
 * must not exceed the retention_days the app ends up with (its own, or
 * storage.retention_days when null), 0 being "keep" for both. 0, or 400 answered. */
static int api_app_fields(struct api *a, struct evhttp_request *req, json_t *body, int create,
			  json_t *out, const char **id)
{
	const char *key;
	json_t *v, *rv, *pv;
	int named_retention = 0;

	json_object_foreach(body, key, v) {
		if (create && strcmp(key, "id") == 0) {
			if (!json_is_string(v) || !id_valid(json_string_value(v))) {
				api_error(req, 400, "invalid_field", "id", "id must match [A-Za-z0-9_-]{1,64}");
				return -1;
			}
			*id = json_string_value(v);
		} else if (strcmp(key, "name") == 0) {
			if (!json_is_string(v) || !*json_string_value(v) || strlen(json_string_value(v)) > 256) {
				api_error(req, 400, "invalid_field", "name", "name must be a non-empty string of at most 256 bytes");
				return -1;
			}
			json_object_set(out, "name", v);
		} else if (strcmp(key, "retention_days") == 0 ||
			   strcmp(key, "payload_retention_days") == 0) {
			if (api_app_days(req, key, v))
				return -1;
			json_object_set(out, key, v);
			named_retention |= key[0] == 'r';
		} else {
			api_error(req, 400, "invalid_field", key, "unknown field '%.80s'", key);
			return -1;
		}
	}
	rv = json_object_get(out, "retention_days");
	pv = json_object_get(out, "payload_retention_days");
	if (json_is_integer(pv) && json_integer_value(pv) > 0) {
		json_int_t days = json_is_integer(rv) ? json_integer_value(rv) : a->cfg->retention_days;
		/* Named for what the request changed: lowering retention_days under the stored
		 * payload_retention_days is refused as retention_days. */
		const char *field = named_retention && !json_object_get(body, "payload_retention_days")
					    ? "retention_days" : "payload_retention_days";
		if (days > 0 && json_integer_value(pv) > days) {
			api_error(req, 400, "invalid_field", field,
				  "payload_retention_days (%lld) must not exceed retention_days (%lld%s); "
				  "0 keeps payloads as long as their messages",
				  (long long)json_integer_value(pv), (long long)days,
				  json_is_integer(rv) ? "" : ", storage.retention_days");
			return -1;
		}
	}
	return 0;
}

/* Stores json (stolen) as app id's record and answers with it once committed: 201 for a
 * new app, 200 for a change of app (p->app says which). */
static void api_app_store(struct api *a, struct evhttp_request *req, const char *id,
			  struct app *app, json_t *json)
{
	struct api_pending *p = api_pending_new(a, req);
	char *text;
	int rc = HOOKD_ENOMEM;

	if (!p) {
		json_decref(json);
		api_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	p->json = json;
	p->app = app;
	text = json_dumps(p->json, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text || (rc = store_app_write(a->store, id, text, api_app_saved, p)) != HOOKD_OK) {
		free(text);
		api_pending_take(p);
		api_pending_free(p);
		api_store_failed(req, rc);
		return;
	}
	free(text);
}

void api_apps_create(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	json_t *body = api_body_json(a, req, 1), *out = NULL;
	const char *id = NULL, *name;
	char idbuf[ID_MAX], iso[CLOCK_ISO_LEN];
	int64_t now = clock_now_ms();

	if (!body)
		return;
	out = json_pack("{s:n, s:n, s:n, s:n}", "id", "name", "retention_days",
			"payload_retention_days");
	if (!out) {
		api_error(req, 500, "internal", NULL, "out of memory");
		goto out;
	}
	if (api_app_fields(a, req, body, 1, out, &id))
		goto out;
	name = json_string_value(json_object_get(out, "name"));
	/* As in the config file (apps[].name), the name defaults to the id; with neither there
	 * is nothing to show an operator, so one of them is required. */
	if (!name && !id) {
		api_error(req, 400, "missing_field", "name", "name is required when no id is given");
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
	/* Members in the order the view has always had: id, name, created_at, then the new. */
	if (json_object_set_new(out, "id", json_string(id)) ||
	    (!name && json_object_set_new(out, "name", json_string(id))) ||
	    json_object_set_new(out, "created_at", json_string(iso))) {
		api_error(req, 500, "internal", NULL, "out of memory");
		goto out;
	}
	{
		json_t *rd = json_incref(json_object_get(out, "retention_days"));
		json_t *pd = json_incref(json_object_get(out, "payload_retention_days"));
		json_object_del(out, "retention_days");
		json_object_del(out, "payload_retention_days");
		json_object_set_new(out, "retention_days", rd);
		json_object_set_new(out, "payload_retention_days", pd);
	}
	api_app_store(a, req, id, NULL, out);
	out = NULL;
out:
	json_decref(out);
	json_decref(body);
}

/* PATCH /v1/apps/{app}: name, retention_days, payload_retention_days (null: the daemon's
 * default again); the members it does not name stay. */
void api_app_patch(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	json_t *body = api_body_json(a, req, 1), *out;

	if (!body)
		return;
	out = json_deep_copy(args->app->json);
	if (!out) {
		api_error(req, 500, "internal", NULL, "out of memory");
	} else if (api_app_fields(a, req, body, 0, out, NULL)) {
		json_decref(out);
	} else {
		api_app_store(a, req, args->app->id, args->app, out);
	}
	json_decref(body);
}

static void api_collect_app(const char *key, void *value, void *arg)
{
	json_array_append(arg, ((struct app *)value)->json);
}

void api_apps_list(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	json_t *arr = json_array();
	strmap_each(&a->reg->apps, api_collect_app, arr);
	api_send(req, 200, json_pack("{s:o}", "data", api_sorted(arr)));
}

void api_app_get(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	api_send(req, 200, json_incref(args->app->json));
}
