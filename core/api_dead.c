/* api_dead.c - /v1/apps/{app}/dead: list dead letters and redrive them. */
#include "api-t.h"

#include "clock.h"
#include "dispatch.h"
#include "err.h"
#include "fanout.h"
#include "id.h"
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

/* api_dead_list's walk of the dead-letter index. */
struct api_dead_page {
	struct store_read *rd;
	json_t *arr;
	long limit;
};

static int api_dead_one(void *arg, int64_t dead_at_ms, const char *id)
{
	struct api_dead_page *pg = arg;
	struct delivery_rec r;
	char iso[CLOCK_ISO_LEN];
	int rc;
	if ((long)json_array_size(pg->arr) >= pg->limit)
		return STORE_WALK_STOP;
	if (strlen(id) >= DELIVERY_ID_MAX)
		return 0;
	rc = store_read_delivery(pg->rd, id, &r);
	if (rc == HOOKD_ESTORE || rc == HOOKD_EFULL)
		return rc;
	if (rc != HOOKD_OK || r.state != DLV_DEAD)
		return 0; /* redriven since, or gone: the index entry is stale */
	clock_iso8601(dead_at_ms, iso);
	json_array_append_new(pg->arr, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "delivery_id", id,
						 "message_id", r.msg_id, "endpoint_id", r.ep_id,
						 "attempts", (json_int_t)r.attempts, "dead_at", iso,
						 "reason", r.last_error));
	return 0;
}

void api_dead_list(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	struct evkeyvalq *q = args->query;
	int bad = 0, rc;
	long limit = api_query_long(q, "limit", API_LIST_DEFAULT, 1, API_LIST_MAX, req, &bad);
	struct api_dead_page pg = {NULL, NULL, limit};

	if (bad)
		return;
	if ((rc = store_read_begin(a->store, &pg.rd)) != HOOKD_OK) {
		api_error(req, 500, "internal", NULL, "cannot read the store: %s", hookd_strerror(rc));
		return;
	}
	pg.arr = json_array();
	rc = store_read_dead(pg.rd, app->id, api_dead_one, &pg);
	store_read_end(pg.rd);
	if (rc != HOOKD_OK) {
		json_decref(pg.arr);
		api_error(req, 500, "internal", NULL, "storage error: %s", hookd_strerror(rc));
		return;
	}
	api_send(req, 200, json_pack("{s:o}", "data", pg.arr));
}

/* A redrive request: the policy decisions of store_redrive_submit (which dead letters, and
 * what a redriven delivery becomes). */
struct api_redrive {
	struct api_pending *p;
	json_t *ids;        /* requested ids (array of strings) or NULL = all */
	int64_t since_ms;   /* -1 = no bound */
	int64_t now_ms;
};

/* Writer thread: is this dead letter asked for? */
static int api_redrive_select(void *arg, const char *id, int64_t dead_at_ms)
{
	struct api_redrive *r = arg;
	size_t i;
	json_t *x;
	if (strlen(id) >= DELIVERY_ID_MAX || (r->since_ms >= 0 && dead_at_ms < r->since_ms))
		return 0;
	if (!r->ids)
		return 1;
	json_array_foreach(r->ids, i, x) if (strcmp(json_string_value(x), id) == 0) return 1;
	return 0;
}

/* Writer thread: a redriven delivery is pending, due now, in a new retry cycle. */
void api_redrive_revive_at(struct delivery_rec *rec, int64_t now_ms)
{
	rec->state = DLV_PENDING;
	rec->cycle_failures = 0;
	rec->next_at_ms = now_ms;
	rec->updated_ms = now_ms;
	rec->last_error = "";
}

static void api_redrive_revive(void *arg, struct delivery_rec *rec)
{
	struct api_redrive *r = arg;
	api_redrive_revive_at(rec, r->now_ms);
}

/* Loop thread, once a redrive committed: the delivery back to the scheduler. */
void api_redrive_schedule(struct api *a, const char *dlv_id)
{
	struct delivery *dv = dispatch_load_stored(a->disp, dlv_id);
	if (!dv)
		return;
	/* A redrive re-runs the endpoint's policy (the operator may have fixed it). */
	if (dv->ep->policy_name) {
		struct store_read *rd;
		json_t *env = NULL;
		struct store_batch *b;
		int lrc;
		if (store_read_begin(a->store, &rd) == HOOKD_OK) {
			env = api_message_load(a, rd, dv->app_id, dv->msg_id, &lrc);
			store_read_end(rd);
		}
		if (env && fanout_capture_policy(dv, dv->ep) == HOOKD_OK) {
			fanout_apply_policy(a->policies, env, dv, &a->fstats);
			b = store_batch_new();
			if (b && dispatch_persist(b, dv, clock_now_ms()) == HOOKD_OK)
				store_batch_submit(a->store, b, 0, NULL, NULL);
			else
				store_batch_free(b);
		}
		json_decref(env);
	}
	dispatch_add(a->disp, dv);
}

static void api_redrive_done(void *arg, int rc, const char *const *ids, size_t n)
{
	struct api_redrive *r = arg;
	struct evhttp_request *req = api_pending_take(r->p);
	struct api *a = r->p->api;
	json_t *done_ids = json_array();

	if (rc == HOOKD_OK) {
		for (size_t i = 0; i < n; i++) {
			json_array_append_new(done_ids, json_string(ids[i]));
			api_redrive_schedule(a, ids[i]);
		}
		if (req)
			api_send(req, 200, json_pack("{s:I, s:O}", "redriven",
						     (json_int_t)json_array_size(done_ids),
						     "delivery_ids", done_ids));
	} else if (req) {
		api_store_failed(req, rc);
	}
	json_decref(r->ids);
	json_decref(done_ids);
	api_pending_free(r->p);
	free(r);
}

void api_dead_redrive(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct app *app = args->app;
	json_t *body = api_body_json(a, req, 0), *v;
	const char *key;
	struct api_redrive *r;
	size_t i;
	json_t *x;
	int rc;

	if (!body)
		return;
	r = calloc(1, sizeof(*r));
	if (!r) {
		api_error(req, 500, "internal", NULL, "out of memory");
		goto out;
	}
	r->since_ms = -1;
	r->now_ms = clock_now_ms();
	json_object_foreach(body, key, v) {
		if (strcmp(key, "delivery_ids") == 0) {
			if (!json_is_array(v) || json_array_size(v) > 10000)
				goto bad_ids;
			json_array_foreach(v, i, x) if (!json_is_string(x)) goto bad_ids;
			r->ids = json_incref(v);
		} else if (strcmp(key, "since") == 0) {
			if (json_is_integer(v) && json_integer_value(v) >= 0) {
				r->since_ms = json_integer_value(v) * 1000;
			} else if (!json_is_string(v) ||
				   clock_parse(json_string_value(v), &r->since_ms) != HOOKD_OK) {
				api_error(req, 400, "invalid_field", "since",
					  "since must be an ISO 8601 UTC time or Unix seconds");
				goto fail;
			}
		} else {
			api_error(req, 400, "invalid_field", key, "unknown field '%.80s' (expected delivery_ids, since)", key);
			goto fail;
		}
	}
	r->p = api_pending_new(a, req);
	if (!r->p) {
		api_error(req, 500, "internal", NULL, "out of memory");
		goto fail;
	}
	if ((rc = store_redrive_submit(a->store, app->id, api_redrive_select, api_redrive_revive,
				       api_redrive_done, r)) != HOOKD_OK) {
		api_pending_take(r->p);
		api_pending_free(r->p);
		api_store_failed(req, rc);
		goto fail;
	}
	goto out;
bad_ids:
	api_error(req, 400, "invalid_field", "delivery_ids", "delivery_ids must be an array of delivery id strings");
fail:
	json_decref(r->ids);
	free(r);
out:
	json_decref(body);
}

