/* plugin_early.h - what the broker plugins (redis, mqtt) share to fail an attempt that
 * failed inside send() (a bad destination, no connection to be had): send() must not
 * complete it itself, so the failure is completed from a 0 ms host timer. Header-only, as
 * plugin_url.h, so each plugin stays one shared object built from its own .c file. */
#ifndef HOOKD_PLUGIN_EARLY_H
#define HOOKD_PLUGIN_EARLY_H

#include <hookd/plugin.h>

#include <stdio.h>
#include <stdlib.h>

/* The plugin's own completion: counts it and calls host->complete with HOOKD_RETRY. */
typedef void (*plugin_early_fn)(void *owner, uint64_t token, const char *msg);

struct plugin_early {
	struct plugin_early *next;
	struct plugin_early **list; /* the owner's list, which the timer takes it off */
	plugin_early_fn fn;
	void *owner;
	uint64_t token;
	struct hookd_timer *timer;
	char msg[300];
};

static inline void plugin_early_fire(void *arg)
{
	struct plugin_early *e = arg;
	for (struct plugin_early **ep = e->list; *ep; ep = &(*ep)->next) {
		if (*ep == e) {
			*ep = e->next;
			break;
		}
	}
	e->fn(e->owner, e->token, e->msg);
	free(e);
}

/* Fails token soon, from the loop, with msg. 0, or -1 (then send() returns nonzero). */
static inline int plugin_fail_soon(const struct hookd_host *host, struct hookd_plugin_ctx *ctx,
				   struct plugin_early **list, plugin_early_fn fn, void *owner,
				   uint64_t token, const char *msg)
{
	struct plugin_early *e = calloc(1, sizeof *e);
	if (!e)
		return -1;
	e->list = list;
	e->fn = fn;
	e->owner = owner;
	e->token = token;
	snprintf(e->msg, sizeof e->msg, "%s", msg);
	e->timer = host->timer_start(ctx, 0, plugin_early_fire, e);
	if (!e->timer) {
		free(e);
		return -1;
	}
	e->next = *list;
	*list = e;
	return 0;
}

/* At cleanup: the failures still waiting are dropped with their timers. */
static inline void plugin_early_drop_all(const struct hookd_host *host,
					 struct hookd_plugin_ctx *ctx, struct plugin_early **list)
{
	while (*list) {
		struct plugin_early *e = *list;
		*list = e->next;
		host->timer_stop(ctx, e->timer);
		free(e);
	}
}

#endif
