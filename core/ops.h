/* ops.h - operational webhooks: hookd tells the operator what happened to the endpoints it
 * delivers to (endpoint.disabled, endpoint.enabled, endpoint.breaker_opened,
 * endpoint.breaker_closed, message.dead), as messages published into the app named by
 * operational_webhooks.app (docs/configuration.md). They go out like any message of that
 * app: to each of its endpoints that subscribes to the type, signed, retried, recorded, with
 * its breaker and limits. Nothing is published about that app's own endpoints, so a failing
 * operator endpoint does not feed itself.
 *
 * Loop thread only. An event while the app does not exist (or out of memory, or a full
 * store) is logged and dropped: these are notifications about deliveries, never deliveries
 * themselves, and the state they describe stays visible in the API. */
#ifndef HOOKD_OPS_H
#define HOOKD_OPS_H

#include <jansson.h>

struct registry;
struct store;
struct dispatch;
struct endpoint;
struct ops;

/* app_id NULL: operational webhooks are off (ops_event then does nothing). */
int ops_new(const char *app_id, struct registry *reg, struct store *store,
	    struct dispatch *disp, struct ops **out);
void ops_free(struct ops *o);

/* Publishes event type about ep with data (stolen; "app_id", "endpoint_id" and "at" are
 * added). NULL o is ignored. */
void ops_event(struct ops *o, const char *type, const struct endpoint *ep, json_t *data);

/* The same, in the shape of dispatch's event hook (dispatch_set_events). */
void ops_dispatch_event(void *arg, const char *type, const struct endpoint *ep, json_t *data);

#endif
