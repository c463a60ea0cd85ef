/* api_endpoints.c - /v1/apps/{app}/endpoints: create, list, read, update, delete, rotate secrets. */
#include "api-t.h"

#include "clock.h"
#include "dispatch.h"
#include "endpoint_schema.h"
#include "err.h"
#include "ops.h"
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
	const struct endpoint *prev =
		strmap_get(&app->endpoints, json_string_value(json_object_get(p->json, "id")) ?: "");
	bool was_disabled = prev && prev->disabled; /* installed in place: read it first */
	struct endpoint *ep = registry_endpoint_install(p->api->reg, app, json_incref(p->json), err,
							sizeof(err));
	if (!ep) {
		if (req)
			api_error(req, 500, "internal", NULL, "endpoint stored but not loaded: %s", err);
	} else {
		if (!creating && was_disabled != ep->disabled)
			ops_event(p->api->ops, ep->disabled ? "endpoint.disabled" : "endpoint.enabled",
				  ep,
				  ep->disabled ? json_pack("{s:s}", "reason", "disabled by operator")
					       : json_object());
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
	char *text;
	int rc = HOOKD_ENOMEM;
	if (!p) {
		json_decref(stored);
		return HOOKD_ENOMEM;
	}
	snprintf(p->id, sizeof(p->id), "%s", app->id);
	p->json = stored;
	p->data = (void *)(intptr_t)kind;
	p->now_ms = previous_expires_ms;
	text = json_dumps(stored, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text ||
	    (rc = store_endpoint_write(a->store, app->id,
				       json_string_value(json_object_get(stored, "id")), text,
				       api_endpoint_saved, p)) != HOOKD_OK) {
		free(text);
		api_pending_take(p);
		api_pending_free(p);
		return rc;
	}
	free(text);
	return HOOKD_OK;
}

void api_endpoints_create(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	json_t *body = api_body_json(a, req, 1), *stored;
	char field[128], msg[512];
	int rc;
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
	if ((rc = api_endpoint_save(a, req, app, stored, 1, 0)) != HOOKD_OK)
		api_store_failed(req, rc);
}

void api_endpoint_patch(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	struct endpoint *ep = args->ep;
	json_t *body = api_body_json(a, req, 1), *stored;
	char field[128], msg[512];
	int rc;
	if (!body)
		return;
	stored = endpoint_json_merge(ep->json, body, app->id, clock_now_ms(), field, sizeof(field),
				     msg, sizeof(msg));
	json_decref(body);
	if (!stored) {
		api_error(req, 400, "invalid_field", field, "%s", msg);
		return;
	}
	if ((rc = api_endpoint_save(a, req, app, stored, 0, 0)) != HOOKD_OK)
		api_store_failed(req, rc);
}

void api_endpoint_rotate(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	struct endpoint *ep = args->ep;
	json_t *body = api_body_json(a, req, 0), *stored = NULL, *secrets, *v, *old;
	const char *key, *secret = NULL, *type = NULL;
	json_int_t grace = 86400;
	char text[SIGN_TEXT_MAX];
	struct sign_key k;
	int64_t now = clock_now_ms();
	size_t i;
	int rc;

	if (!body)
		return;
	json_object_foreach(body, key, v) {
		struct endpoint_error e;
		if (strcmp(key, "secret") == 0 || strcmp(key, "secret_type") == 0) {
			/* The endpoint schema's rules for a secret, as at creation. */
			if (endpoint_schema_check_member(key, v, true, &e) != HOOKD_OK) {
				api_error(req, 400, "invalid_field", e.field, "%s: %s", e.field, e.msg);
				goto out;
			}
			if (strcmp(key, "secret") == 0)
				secret = json_string_value(v);
			else
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
	{
		struct endpoint_error e;
		if (endpoint_schema_check_secret_pair(body, &e) != HOOKD_OK) {
			api_error(req, 400, "invalid_field", e.field, "%s: %s", e.field, e.msg);
			goto out;
		}
	}
	if (secret) {
		snprintf(text, sizeof(text), "%s", secret);
	} else {
		enum sign_kind kind = type ? (strcmp(type, "ed25519") == 0 ? SIGN_ED25519 : SIGN_HMAC)
					   : ep->secrets[0].key.kind;
		if (sign_key_generate(kind, text, sizeof(text)) != HOOKD_OK) {
			api_error(req, 500, "internal", NULL, "could not generate a secret");
			goto out;
		}
	}
	if (sign_key_parse(text, &k, NULL, 0) != HOOKD_OK) { /* checked or generated above */
		api_error(req, 500, "internal", NULL, "could not read the new secret");
		goto out;
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
	if ((rc = api_endpoint_save(a, req, app, stored, 2, now + grace * 1000)) != HOOKD_OK)
		api_store_failed(req, rc);
out:
	json_decref(body);
}

static void api_endpoint_deleted(void *arg, int rc)
{
	struct api_pending *p = arg;
	struct evhttp_request *req = api_pending_take(p);
	struct app *app = registry_app(p->api->reg, p->id);
	struct endpoint *ep = app ? strmap_get(&app->endpoints, json_string_value(p->json)) : NULL;
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

void api_endpoint_delete(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	struct endpoint *ep = args->ep;
	struct api_pending *p = api_pending_new(a, req);
	int rc = HOOKD_ENOMEM;
	/* Once the delete is durable the callback finds the endpoint by p->id and p->json. */
	if (!p || !(p->json = json_string(ep->id)) ||
	    snprintf(p->id, sizeof(p->id), "%s", app->id) >= (int)sizeof(p->id) ||
	    (rc = store_endpoint_write(a->store, app->id, ep->id, NULL, api_endpoint_deleted,
				       p)) != HOOKD_OK) {
		if (p) {
			api_pending_take(p);
			api_pending_free(p);
		}
		api_store_failed(req, rc);
		return;
	}
}


static void api_collect_ep(const char *key, void *value, void *arg)
{
	json_array_append_new(arg, endpoint_api_view(value));
}

void api_endpoints_list(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	json_t *arr = json_array();
	strmap_each(&args->app->endpoints, api_collect_ep, arr);
	api_send(req, 200, json_pack("{s:o}", "data", api_sorted(arr)));
}

void api_endpoint_get(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	api_send(req, 200, endpoint_api_view(args->ep));
}
