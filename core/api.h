/* api.h - the HTTP API (libevent evhttp on the loop thread). See docs/api.md.
 *
 * Writes are answered from the store's done callbacks, after their commit: a 202 for a
 * publish means the message and its deliveries are durable. */
#ifndef HOOKD_API_H
#define HOOKD_API_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;
struct registry;
struct dispatch;
struct policy_engine;
struct worker;
struct config;
struct api;

/* worker: the policy thread (NULL: policies run inline on the loop). */
int api_new(struct event_base *base, struct store *store, struct registry *reg,
	    struct dispatch *disp, struct policy_engine *policies, struct worker *worker,
	    const struct config *cfg, struct api **out);
/* Binds host:port (port 0 = any free port); *bound_port receives the port. */
int api_listen(struct api *a, const char *host, uint16_t port, uint16_t *bound_port,
	       char *err, size_t errlen);
/* Stops listening and drops open connections (answers still pending are discarded). */
void api_close(struct api *a);
/* Frees a; after the writer and the policy thread have finished (their callbacks use it). */
void api_free(struct api *a);

#endif
