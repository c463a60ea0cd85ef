/* ops.c - operational webhooks (ops.h). */
#include "ops.h"

#include "clock.h"
#include "delivery.h"
#include "dispatch.h"
#include "err.h"
#include "fanout.h"
#include "id.h"
#include "log.h"
#include "ratelimit.h"
#include "registry.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

struct ops {
	char *app_id;
	struct registry *reg;
	struct store *store;
	struct dispatch *disp;
	struct fanout_stats stats;
	struct ratelimit dropped_log;
	uint64_t dropped;
};

/* One event on its way to the store: what the commit callback hands to the scheduler. */
struct ops_pending {
	struct ops *o;
	char *envelope;
	struct delivery **dvs;
	size_t n_dvs;
};

int ops_new(const char *app_id, struct registry *reg, struct store *store,
	    struct dispatch *disp, struct ops **out)
{
	struct ops *o = calloc(1, sizeof(*o));
	if (!o || (app_id && !(o->app_id = strdup(app_id)))) {
		free(o);
		return HOOKD_ENOMEM;
	}
	o->reg = reg;
	o->store = store;
	o->disp = disp;
	o->dropped_log.interval_ms = 60000;
	*out = o;
	return HOOKD_OK;
}

void ops_free(struct ops *o)
{
	if (!o)
		return;
	free(o->app_id);
	free(o);
}

static void ops_pending_free(struct ops_pending *p)
{
	for (size_t i = 0; i < p->n_dvs; i++)
		delivery_free(p->dvs[i]);
	free(p->dvs);
	free(p->envelope);
	free(p);
}

static void ops_drop(struct ops *o, const char *type, const char *why)
{
	uint64_t skipped;
	o->dropped++;
	if (ratelimit_check(&o->dropped_log, clock_now_ms(), &skipped))
		log_warn("operational webhook %s not sent: %s (%llu more dropped since the last "
			 "warning)", type, why, (unsigned long long)skipped);
}

static void ops_published(struct store_batch *b)
{
	struct ops_pending *p = store_batch_arg(b);
	if (store_batch_rc(b) == HOOKD_OK) {
		for (size_t i = 0; i < p->n_dvs; i++)
			dispatch_add(p->o->disp, p->dvs[i]);
		p->n_dvs = 0;
	} else {
		ops_drop(p->o, "event", hookd_strerror(store_batch_rc(b)));
	}
	ops_pending_free(p);
}

/* The envelope, as a publish through the API would store it. */
static char *ops_envelope(const char *id, const char *type, const char *iso, const json_t *data)
{
	json_t *env = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "id", id, "type", type,
				"timestamp", iso, "version", "1", "source", "hookd", "data", data);
	char *text = env ? json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(env);
	return text;
}

void ops_event(struct ops *o, const char *type, const struct endpoint *ep, json_t *data)
{
	struct ops_pending *p = NULL;
	struct app *app;
	struct body *bytes = NULL;
	char id[ID_MAX], iso[CLOCK_ISO_LEN];
	int64_t now = clock_now_ms();
	int needs_policy = 0;
	size_t keep = 0;

	if (!o || !o->app_id || strcmp(ep->app_id, o->app_id) == 0) {
		json_decref(data); /* off, or about the operator's own endpoints */
		return;
	}
	if (!(app = registry_app(o->reg, o->app_id))) {
		ops_drop(o, type, "operational_webhooks.app names no app");
		json_decref(data);
		return;
	}
	clock_iso8601(now, iso);
	id_make("msg_", now, id);
	if (!data || json_object_set_new(data, "app_id", json_string(ep->app_id)) ||
	    json_object_set_new(data, "endpoint_id", json_string(ep->id)) ||
	    json_object_set_new(data, "at", json_string(iso)) || !(p = calloc(1, sizeof(*p))) ||
	    !(p->envelope = ops_envelope(id, type, iso, data)) ||
	    !(bytes = body_new(p->envelope, strlen(p->envelope))) ||
	    fanout_message(app, id, type, bytes, now, &p->dvs, &p->n_dvs, &needs_policy,
			   &o->stats) != HOOKD_OK) {
		ops_drop(o, type, "out of memory");
		goto out;
	}
	/* The operator's endpoints get the event as it is: a routing policy there is not run
	 * (its deliveries are left out). */
	for (size_t i = 0; i < p->n_dvs; i++) {
		if (p->dvs[i]->policy_name)
			delivery_free(p->dvs[i]);
		else
			p->dvs[keep++] = p->dvs[i];
	}
	p->n_dvs = keep;
	p->o = o;
	if (keep) {
		struct fanout_publish pub = {.app_id = app->id, .msg_id = id,
					     .envelope = p->envelope, .dvs = p->dvs,
					     .n_dvs = p->n_dvs, .now_ms = now};
		if (fanout_publish(o->store, &pub, ops_published, p) == HOOKD_OK)
			p = NULL;
		else
			ops_drop(o, type, "out of memory");
	}
out:
	if (p)
		ops_pending_free(p);
	body_unref(bytes);
	json_decref(data);
}

void ops_dispatch_event(void *arg, const char *type, const struct endpoint *ep, json_t *data)
{
	ops_event(arg, type, ep, data);
}
