/* fanout.c - message -> deliveries, with the policy hook. */
#include "fanout.h"

#include "dispatch.h"
#include "err.h"
#include "log.h"
#include "policy.h"
#include "record.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fanout_apply_policy(struct policy_engine *policies, struct endpoint *ep,
			 const json_t *envelope, struct delivery *dv, struct fanout_stats *stats)
{
	struct policy_input in = {envelope, ep->id, ep->app_id, ep->policy_params};
	struct policy_result res;
	int rc;

	memset(&res, 0, sizeof(res));
	rc = policies ? policy_run(policies, ep->policy_name, &in, &res) : HOOKD_ENOTFOUND;
	if (rc == HOOKD_ENOTFOUND) {
		dv->state = DLV_DEAD;
		snprintf(dv->last_error, sizeof(dv->last_error),
			 "policy_error: policy '%s' is not loaded", ep->policy_name);
		if (stats)
			stats->policy_errors++;
		return;
	}
	switch (res.action) {
	case POLICY_DELIVER: {
		char *text = json_dumps(res.envelope, JSON_COMPACT | JSON_PRESERVE_ORDER);
		char *hdrs = res.headers && json_object_size(res.headers)
				     ? json_dumps(res.headers, JSON_COMPACT)
				     : NULL;
		struct body *b = text ? body_new(text, strlen(text)) : NULL;
		if (!b) {
			dv->state = DLV_DEAD;
			snprintf(dv->last_error, sizeof(dv->last_error),
				 "policy_error: output could not be serialized");
			free(hdrs);
			free(text);
			break;
		}
		body_unref(dv->body);
		dv->body = b;
		dv->custom_body = 1;
		if (hdrs && delivery_set_headers(dv, hdrs) != HOOKD_OK) {
			dv->state = DLV_DEAD;
			snprintf(dv->last_error, sizeof(dv->last_error),
				 "policy_error: invalid headers");
		}
		free(hdrs);
		free(text);
		break;
	}
	case POLICY_FILTERED:
		dv->state = DLV_FILTERED;
		snprintf(dv->last_error, sizeof(dv->last_error), "%s",
			 res.reason[0] ? res.reason : "filtered by policy");
		if (stats)
			stats->filtered++;
		break;
	case POLICY_ERROR:
	default:
		dv->state = DLV_DEAD;
		snprintf(dv->last_error, sizeof(dv->last_error), "policy_error: %.480s", res.reason);
		if (stats)
			stats->policy_errors++;
		break;
	}
	policy_result_free(&res);
}

struct fanout_walk {
	struct policy_engine *policies;
	struct app *app;
	const char *msg_id, *type;
	const json_t *envelope;
	struct body *body;
	int64_t now_ms;
	struct delivery **out;
	size_t n, cap;
	int rc;
	struct fanout_stats *stats;
};

static void fanout_one(const char *key, void *value, void *arg)
{
	struct fanout_walk *w = arg;
	struct endpoint *ep = value;
	struct delivery *dv;
	char id[DELIVERY_ID_MAX];

	if (w->rc != HOOKD_OK || ep->disabled || !endpoint_matches(ep, w->type))
		return;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 8;
		struct delivery **n = realloc(w->out, cap * sizeof(*n));
		if (!n) {
			w->rc = HOOKD_ENOMEM;
			return;
		}
		w->out = n;
		w->cap = cap;
	}
	/* dlv_<message ulid>_<n>: a message's deliveries are adjacent in the store. */
	snprintf(id, sizeof(id), "dlv_%s_%zu", w->msg_id + 4, w->n);
	dv = delivery_new(id, w->msg_id, w->app->id, ep, w->body, w->now_ms);
	if (!dv) {
		w->rc = HOOKD_ENOMEM;
		return;
	}
	if (ep->policy_name)
		fanout_apply_policy(w->policies, ep, w->envelope, dv, w->stats);
	if (w->stats)
		w->stats->deliveries++;
	w->out[w->n++] = dv;
}

int fanout_message(struct policy_engine *policies, struct app *a, const char *msg_id,
		   const char *type, const json_t *envelope, struct body *body, int64_t now_ms,
		   struct delivery ***out, size_t *n_out, struct fanout_stats *stats)
{
	struct fanout_walk w = {policies, a, msg_id, type, envelope, body, now_ms, NULL, 0, 0,
				HOOKD_OK, stats};
	strmap_each(&a->endpoints, fanout_one, &w);
	if (w.rc != HOOKD_OK) {
		for (size_t i = 0; i < w.n; i++)
			delivery_free(w.out[i]);
		free(w.out);
		return w.rc;
	}
	*out = w.out;
	*n_out = w.n;
	return HOOKD_OK;
}
