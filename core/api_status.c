/* api_status.c - GET /v1/apps/{app}/endpoints/{id}/status: an endpoint's health as the
 * scheduler sees it now (breaker, rates, what is in flight and waiting) and over the last
 * hour (success ratio, latency, last success and failure). */
#include "api-t.h"

#include "clock.h"
#include "config.h"
#include "dispatch.h"
#include "err.h"
#include "registry.h"
#include "store.h"

#include <event2/http.h>
#include <jansson.h>

/* An ISO 8601 time, or null for 0 (never). */
static json_t *status_time(int64_t ms)
{
	char iso[CLOCK_ISO_LEN];
	if (!ms)
		return json_null();
	clock_iso8601(ms, iso);
	return json_string(iso);
}

/* A latency, rounded to 0.1 ms, or null when no attempt ended in the last hour. */
static json_t *status_ms(double ms)
{
	if (ms < 0)
		return json_null();
	return json_real((double)(long long)(ms * 10 + 0.5) / 10);
}

static json_t *status_last_failure(const struct dispatch_ep_status *st)
{
	if (!st->last_failure_ms)
		return json_null();
	return json_pack("{s:o, s:o, s:s}", "at", status_time(st->last_failure_ms), "status",
			 st->last_failure_status ? json_integer(st->last_failure_status)
						 : json_null(),
			 "error", st->last_failure_error);
}

static json_t *status_rate_limit(const struct dispatch_ep_status *st)
{
	return json_pack("{s:o, s:o, s:i, s:b, s:o}", "per_second",
			 st->rate > 0 ? json_real(st->rate) : json_null(), "limit",
			 st->per_second > 0 ? json_real(st->per_second) : json_null(), "burst",
			 (json_int_t)st->burst, "throttled", st->throttled, "paused_until",
			 status_time(st->paused_until_ms));
}

static json_t *status_breaker(const struct dispatch_ep_status *st)
{
	return json_pack("{s:s, s:i, s:o, s:o, s:i, s:f, s:i, s:i}", "state", st->breaker,
			 "failures_in_a_row", (json_int_t)st->failures_in_a_row, "opened_at",
			 status_time(st->opened_ms), "next_probe_at", status_time(st->next_probe_ms),
			 "consecutive_failures", (json_int_t)st->consecutive_failures,
			 "failure_ratio", st->failure_ratio, "window_seconds",
			 (json_int_t)st->window_s, "cooldown_seconds", (json_int_t)st->cooldown_s);
}

void api_endpoint_status(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct endpoint *ep = args->ep;
	struct dispatch_ep_status st;
	uint64_t ended;
	json_t *reason = json_object_get(ep->json, "disabled_reason");
	json_t *out;

	struct store_ep_counts counts = {0};
	struct store_read *rd = NULL;
	int64_t cap = ep->flow.max_pending >= 0 ? ep->flow.max_pending
						: (int64_t)a->cfg->max_pending_per_endpoint;

	/* Exact as of the last commit (the store's endpoint counts): in flight ones are
	 * stored, and counted, as pending. */
	if (store_read_begin(a->store, &rd) != HOOKD_OK ||
	    store_read_endpoint_counts(rd, ep->app_id, ep->id, &counts) != HOOKD_OK) {
		store_read_end(rd);
		api_store_failed(req, HOOKD_ESTORE);
		return;
	}
	store_read_end(rd);
	dispatch_endpoint_status(a->disp, ep, &st);
	ended = st.succeeded + st.failed;
	out = json_pack("{s:s, s:s, s:s, s:o, s:i, s:i, s:o, s:o, s:o, s:{s:I, s:I}, s:{s:o, s:o},"
			" s:o, s:i, s:b, s:O}",
			"app_id", ep->app_id, "endpoint_id", ep->id, "breaker", st.breaker,
			"breaker_detail", status_breaker(&st), "inflight", (json_int_t)st.inflight,
			"waiting", (json_int_t)st.waiting, "last_success",
			status_time(st.last_success_ms), "last_failure", status_last_failure(&st),
			"success_ratio",
			ended ? json_real((double)st.succeeded / (double)ended) : json_null(),
			"last_hour", "succeeded", (json_int_t)st.succeeded, "failed",
			(json_int_t)st.failed, "latency_ms", "p50", status_ms(st.p50_ms), "p99",
			status_ms(st.p99_ms), "rate_limit", status_rate_limit(&st), "max_in_flight",
			(json_int_t)st.max_in_flight, "disabled", ep->disabled, "disabled_reason",
			json_is_string(reason) ? reason : json_null());
	if (!out || json_object_set_new(out, "pending", json_integer((json_int_t)counts.pending)) ||
	    json_object_set_new(out, "dead", json_integer((json_int_t)counts.dead)) ||
	    json_object_set_new(out, "max_pending", cap > 0 ? json_integer(cap) : json_null())) {
		json_decref(out);
		api_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	api_send(req, 200, out);
}
