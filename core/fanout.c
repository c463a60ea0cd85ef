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

int fanout_capture_policy(struct delivery *dv, const struct endpoint *ep)
{
	free(dv->policy_name);
	json_decref(dv->policy_params);
	dv->policy_name = ep->policy_name ? strdup(ep->policy_name) : NULL;
	dv->policy_params = ep->policy_params ? json_deep_copy(ep->policy_params) : NULL;
	return (ep->policy_name && !dv->policy_name) ? HOOKD_ENOMEM : HOOKD_OK;
}

void fanout_apply_policy(struct policy_engine *policies, const json_t *envelope,
			 struct delivery *dv, struct fanout_stats *stats)
{
	/* dv->ep->id is fixed for the endpoint's lifetime and dv holds a reference: safe to
	 * read from the policy thread, unlike the endpoint's mutable fields. */
	struct policy_input in = {envelope, dv->ep->id, dv->app_id, dv->policy_params};
	struct policy_result res;
	int rc;

	memset(&res, 0, sizeof(res));
	if (!dv->policy_name)
		return;
	rc = policies ? policy_run(policies, dv->policy_name, &in, &res) : HOOKD_ENOTFOUND;
	if (rc == HOOKD_ENOTFOUND) {
		dv->state = DLV_DEAD;
		snprintf(dv->last_error, sizeof(dv->last_error),
			 "policy_error: policy '%s' is not loaded", dv->policy_name);
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
		dv->body_stored = 0; /* (re)written with the next persist */
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

void fanout_run_policies(struct policy_engine *policies, const json_t *envelope,
			 struct delivery **dvs, size_t n, struct fanout_stats *stats)
{
	for (size_t i = 0; i < n; i++)
		if (dvs[i]->policy_name)
			fanout_apply_policy(policies, envelope, dvs[i], stats);
}

struct fanout_walk {
	struct app *app;
	const char *msg_id, *type;
	struct body *body;
	int needs_policy;
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
	if (ep->policy_name) {
		if (fanout_capture_policy(dv, ep) != HOOKD_OK) {
			delivery_free(dv);
			w->rc = HOOKD_ENOMEM;
			return;
		}
		w->needs_policy = 1;
	}
	if (w->stats)
		w->stats->deliveries++;
	w->out[w->n++] = dv;
}

int fanout_message(struct app *a, const char *msg_id, const char *type, struct body *body,
		   int64_t now_ms, struct delivery ***out, size_t *n_out, int *needs_policy,
		   struct fanout_stats *stats)
{
	struct fanout_walk w = {a, msg_id, type, body, 0, now_ms, NULL, 0, 0, HOOKD_OK, stats};
	strmap_each(&a->endpoints, fanout_one, &w);
	if (w.rc != HOOKD_OK) {
		for (size_t i = 0; i < w.n; i++)
			delivery_free(w.out[i]);
		free(w.out);
		return w.rc;
	}
	*out = w.out;
	*n_out = w.n;
	*needs_policy = w.needs_policy;
	return HOOKD_OK;
}
