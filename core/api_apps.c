/* api_apps.c - /v1/apps: create, list and read apps. */
#include "api-t.h"

#include "clock.h"
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
			api_send(req, 201, app ? json_incref(app->json) : json_object());
	} else if (req) {
		api_store_failed(req, rc);
	}
	api_pending_free(p);
}

void api_apps_create(struct api *a, struct evhttp_request *req, const struct api_args *args)
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
	/* As in the config file (apps[].name), the name defaults to the id; with neither there
	 * is nothing to show an operator, so one of them is required. */
	if (!name && !id) {
		api_error(req, 400, "missing_field", "name", "name is required when no id is given");
		goto out;
	}
	if (!name)
		name = id;
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
