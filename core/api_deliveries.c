/* api_deliveries.c - /v1/apps/{app}/endpoints/{ep}/deliveries: one endpoint's deliveries in
 * one state, in publish order, a page at a time, with the endpoint's exact counts per state
 * (the store's endpoint index: store_read_endpoint_deliveries, store_read_endpoint_counts),
 * so an operator can see what did not arrive without walking messages. */
#include "api-t.h"

#include "clock.h"
#include "delivery.h"
#include "err.h"
#include "record.h"
#include "registry.h"
#include "store.h"

#include <event2/http.h>
#include <jansson.h>
#include <string.h>

/* The states a listing can ask for (in flight is stored, and listed, as pending). */
static const int api_dlv_states[] = {DLV_PENDING, DLV_SUCCEEDED, DLV_DEAD, DLV_FILTERED};

/* The state named by text, or -1. */
static int api_dlv_state(const char *text)
{
	for (size_t i = 0; i < sizeof(api_dlv_states) / sizeof(api_dlv_states[0]); i++)
		if (strcmp(text, delivery_state_name(api_dlv_states[i])) == 0)
			return api_dlv_states[i];
	return -1;
}

/* The walk's page: limit items, then one more tells that a next page exists. */
struct api_epdlv_page {
	const struct endpoint *ep;
	json_t *arr;
	long limit;
	int more;
};

static json_t *api_time_or_null(int64_t ms)
{
	char iso[CLOCK_ISO_LEN];
	if (ms <= 0)
		return json_null();
	clock_iso8601(ms, iso);
	return json_string(iso);
}

/* One stored delivery as the listing shows it: the record as committed. A pending one of a
 * disabled endpoint is held, as in GET of a message: no next attempt time, waiting_for. */
static json_t *api_epdlv_json(const char *id, const struct delivery_rec *r,
			      const struct endpoint *ep)
{
	int state = r->state == DLV_INFLIGHT ? DLV_PENDING : r->state;
	int held = state == DLV_PENDING && ep->disabled;
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", id, "message_id", r->msg_id,
			      "endpoint_id", r->ep_id, "state", delivery_state_name(state),
			      "attempts", (json_int_t)r->attempts);
	json_object_set_new(o, "next_attempt_at", state == DLV_PENDING && !held
							  ? api_time_or_null(r->next_at_ms)
							  : json_null());
	json_object_set_new(o, "waiting_for", held ? json_string("endpoint_disabled") : json_null());
	json_object_set_new(o, "last_status", r->last_status ? json_integer(r->last_status)
							     : json_null());
	json_object_set_new(o, "last_error", r->last_error[0] ? json_string(r->last_error)
							      : json_null());
	json_object_set_new(o, "created_at", api_time_or_null(r->created_ms));
	json_object_set_new(o, "updated_at", api_time_or_null(r->updated_ms));
	return o;
}

static int api_epdlv_one(void *arg, const char *id, const struct delivery_rec *r)
{
	struct api_epdlv_page *pg = arg;
	if ((long)json_array_size(pg->arr) >= pg->limit) {
		pg->more = 1;
		return STORE_WALK_STOP;
	}
	json_array_append_new(pg->arr, api_epdlv_json(id, r, pg->ep));
	return 0;
}

static json_t *api_counts_json(const struct store_ep_counts *c)
{
	return json_pack("{s:I, s:I, s:I, s:I}", "pending", (json_int_t)c->pending, "succeeded",
			 (json_int_t)c->succeeded, "dead", (json_int_t)c->dead, "filtered",
			 (json_int_t)c->filtered);
}

void api_endpoint_deliveries(struct api *a, struct evhttp_request *req,
			     const struct api_args *args)
{
	struct evkeyvalq *q = args->query;
	const char *state_text = evhttp_find_header(q, "state");
	const char *after = evhttp_find_header(q, "after");
	int bad = 0, state, rc;
	long limit = api_query_long(q, "limit", API_LIST_DEFAULT, 1, API_LIST_MAX, req, &bad);
	struct api_epdlv_page pg = {args->ep, NULL, limit, 0};
	struct store_ep_counts counts;
	struct store_read *rd;
	json_t *last;

	if (bad)
		return;
	state = api_dlv_state(state_text ? state_text : "pending");
	if (state < 0) {
		api_error(req, 400, "invalid_field", "state",
			  "state must be one of pending, succeeded, dead, filtered (default pending; "
			  "a delivery in flight is listed as pending)");
		return;
	}
	if (after && (!*after || strlen(after) >= DELIVERY_ID_MAX)) {
		api_error(req, 400, "invalid_field", "after", "after must be a delivery id");
		return;
	}
	if ((rc = store_read_begin(a->store, &rd)) != HOOKD_OK) {
		api_error(req, 500, "internal", NULL, "cannot read the store: %s", hookd_strerror(rc));
		return;
	}
	pg.arr = json_array();
	/* The page and the counts from one snapshot: they agree with each other. */
	rc = store_read_endpoint_deliveries(rd, args->app->id, args->ep->id, state, after,
					    api_epdlv_one, &pg);
	if (rc == HOOKD_OK)
		rc = store_read_endpoint_counts(rd, args->app->id, args->ep->id, &counts);
	store_read_end(rd);
	if (rc != HOOKD_OK) {
		json_decref(pg.arr);
		api_error(req, 500, "internal", NULL, "storage error: %s", hookd_strerror(rc));
		return;
	}
	last = pg.more ? json_array_get(pg.arr, json_array_size(pg.arr) - 1) : NULL;
	api_send(req, 200,
		 json_pack("{s:o, s:o, s:o}", "data", pg.arr, "next_after",
			   last ? json_incref(json_object_get(last, "id")) : json_null(), "counts",
			   api_counts_json(&counts)));
}
