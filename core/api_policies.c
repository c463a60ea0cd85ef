/* api_policies.c - /v1/policies: upload, list, read and dry-run routing policies.
 *
 * Uploaded sources are stored (so they survive a restart) and compiled into the engine; a
 * source that fails to compile is refused with its line and the running version stays. */
#include "api-t.h"

#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "policy.h"
#include "store.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void api_policy_saved(void *arg, int rc)
{
	struct api_pending *p = arg;
	struct evhttp_request *req = api_pending_take(p);
	if (req) {
		if (rc == HOOKD_OK) {
			char iso[CLOCK_ISO_LEN];
			clock_iso8601(clock_now_ms(), iso);
			json_object_set_new(p->json, "updated_at", json_string(iso));
			api_send(req, 200, json_incref(p->json));
		} else {
			api_error(req, rc == HOOKD_EFULL ? 507 : 500,
				  rc == HOOKD_EFULL ? "storage_full" : "internal", NULL,
				  "policy compiled and running, but not stored: %s", hookd_strerror(rc));
		}
	}
	api_pending_free(p);
}

/* PUT /v1/policies/{name}: the body is the Lua source, or {"source": "..."} when sent as
 * application/json. */
static void api_policy_store(struct api *a, struct evhttp_request *req, const char *name)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ctype = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	size_t len = evbuffer_get_length(in);
	const char *src;
	json_t *j = NULL;
	char err[512];
	struct api_pending *p;
	int rc = HOOKD_ENOMEM;

	if (len > a->cfg->max_payload_bytes) {
		api_error(req, 413, "payload_too_large", NULL,
			  "policy source is %zu bytes; limits.max_payload_bytes is %zu", len,
			  a->cfg->max_payload_bytes);
		return;
	}
	if (ctype && strncmp(ctype, "application/json", 16) == 0) {
		j = api_body_json(a, req, 1);
		if (!j)
			return;
		if (!json_is_string(json_object_get(j, "source"))) {
			api_error(req, 400, "missing_field", "source", "source (the Lua text) is required");
			json_decref(j);
			return;
		}
		src = json_string_value(json_object_get(j, "source"));
		len = json_string_length(json_object_get(j, "source"));
	} else {
		src = (const char *)evbuffer_pullup(in, -1);
		if (!src)
			src = "";
	}
	if (len == 0) {
		api_error(req, 400, "missing_field", "source", "the policy source is empty");
		json_decref(j);
		return;
	}
	if (policy_engine_put(a->policies, name, src, len, err, sizeof(err)) != HOOKD_OK) {
		api_error(req, 400, "policy_compile_error", "source",
			  "policy '%s' refused (the running version, if any, stays): %s", name, err);
		json_decref(j);
		return;
	}
	p = api_pending_new(a, req);
	if (p)
		p->json = json_pack("{s:s, s:I}", "name", name, "size", (json_int_t)len);
	if (!p || (rc = store_policy_write(a->store, name, src, len, api_policy_saved, p)) !=
			  HOOKD_OK) {
		if (p) {
			api_pending_take(p);
			api_pending_free(p);
		}
		api_store_failed(req, rc);
		json_decref(j);
		return;
	}
	log_info("policy %s updated through the API (%zu bytes)", name, len);
	json_decref(j);
}

static void api_policy_collect(const char *name, size_t source_len, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s, s:I}", "name", name, "size", (json_int_t)source_len));
}

/* POST /v1/policies/{name}/test {"message": {...}, "params": {...}} -> what it would do. */
static void api_policy_dry_run(struct api *a, struct evhttp_request *req, const char *name)
{
	json_t *body = api_body_json(a, req, 1), *msg, *params, *env = NULL, *out;
	struct policy_input in;
	struct policy_result res;
	char iso[CLOCK_ISO_LEN];
	int rc;

	if (!body)
		return;
	msg = json_object_get(body, "message");
	params = json_object_get(body, "params");
	if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "type"))) {
		api_error(req, 400, "missing_field", "message",
			  "message must be an object with at least type (and usually data)");
		goto out;
	}
	if (params && !json_is_object(params)) {
		api_error(req, 400, "invalid_field", "params", "params must be an object");
		goto out;
	}
	/* The envelope as a publish would build it; missing fields get placeholders. */
	clock_iso8601(clock_now_ms(), iso);
	env = json_object();
	json_object_set_new(env, "id", json_incref(json_object_get(msg, "id")) ?: json_string("msg_test"));
	json_object_set(env, "type", json_object_get(msg, "type"));
	json_object_set_new(env, "timestamp",
			    json_incref(json_object_get(msg, "timestamp")) ?: json_string(iso));
	json_object_set_new(env, "version",
			    json_incref(json_object_get(msg, "version")) ?: json_string("1"));
	if (json_object_get(msg, "source"))
		json_object_set(env, "source", json_object_get(msg, "source"));
	json_object_set_new(env, "data", json_incref(json_object_get(msg, "data")) ?: json_object());
	memset(&in, 0, sizeof(in));
	in.envelope = env;
	in.endpoint_id = "ep_test";
	in.app_id = "app_test";
	in.params = params;
	memset(&res, 0, sizeof(res));
	rc = policy_run(a->policies, name, &in, &res);
	if (rc == HOOKD_ENOTFOUND) {
		api_error(req, 404, "not_found", NULL, "policy '%s' is not loaded", name);
		goto out;
	}
	if (res.action == POLICY_DELIVER) {
		out = json_pack("{s:s, s:O, s:o}", "action", "deliver", "body", res.envelope, "headers",
				res.headers ? json_incref(res.headers) : json_object());
	} else {
		out = json_pack("{s:s, s:s}", "action",
				res.action == POLICY_FILTERED ? "filtered" : "error", "reason",
				res.reason);
	}
	policy_result_free(&res);
	api_send(req, 200, out);
out:
	json_decref(env);
	json_decref(body);
}

void api_policies_list(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	json_t *arr = json_array();
	policy_engine_each(a->policies, api_policy_collect, arr);
	api_send(req, 200, json_pack("{s:o}", "data", arr));
}

/* The name in /v1/policies/:name, or NULL after answering 400. */
static const char *api_policy_name(struct evhttp_request *req, const struct api_args *args)
{
	if (policy_name_valid(args->id))
		return args->id;
	api_error(req, 400, "invalid_field", "name", "policy names match [a-z0-9_-]{1,64}");
	return NULL;
}

void api_policy_get(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	const char *name = api_policy_name(req, args), *src;
	size_t len;
	if (!name)
		return;
	src = policy_engine_source(a->policies, name, &len);
	if (!src)
		api_error(req, 404, "not_found", NULL, "policy '%s' is not loaded", name);
	else
		api_send(req, 200, json_pack("{s:s, s:s%}", "name", name, "source", src, len));
}

void api_policy_put(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	const char *name = api_policy_name(req, args);
	if (name)
		api_policy_store(a, req, name);
}

void api_policy_test(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	const char *name = api_policy_name(req, args);
	if (name)
		api_policy_dry_run(a, req, name);
}

static int api_policy_load_one(void *arg, const char *name, const char *src, size_t len)
{
	char err[512];
	if (strlen(name) >= 80)
		return 0; /* not a name the API accepts */
	if (policy_engine_put(arg, name, src, len, err, sizeof(err)) != HOOKD_OK)
		log_warn("policy %s (stored): %s", name, err);
	return 0;
}

void api_policies_load_stored(struct store *s, struct policy_engine *e)
{
	struct store_read *rd;
	int rc;
	if (store_read_begin(s, &rd) != HOOKD_OK)
		return;
	if ((rc = store_read_policies(rd, api_policy_load_one, e)) != HOOKD_OK)
		log_error("policies: reading the stored policies: %s", hookd_strerror(rc));
	store_read_end(rd);
}
