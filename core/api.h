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
/* Operational events of the operator's own actions (an endpoint enabled or disabled
 * through the API) go to o (ops.h); NULL: none. */
struct ops;
void api_set_ops(struct api *a, struct ops *o);
/* Opens the API's listening socket on host:port (port 0 = any free port; host a name or an
 * address, the first address it resolves to is used). main.c calls it before the data
 * directory is opened, so a daemon that cannot listen stops without touching its data.
 * *fd receives the socket (nonblocking, close-on-exec), owned by the caller until
 * api_listen; *bound_port the port bound. HOOKD_EIO on failure, err saying why in words from
 * errno: "cannot listen on 127.0.0.1:8080: address already in use". */
int api_socket_open(const char *host, uint16_t port, int *fd, uint16_t *bound_port,
		    char *err, size_t errlen);
/* Serves the API on fd from api_socket_open. a owns fd from then on, also when this fails
 * (it is closed then); api_close closes it. */
int api_listen(struct api *a, int fd, char *err, size_t errlen);
/* Stops listening and drops open connections (answers still pending are discarded). */
void api_close(struct api *a);
/* Frees a; after the writer and the policy thread have finished (their callbacks use it). */
void api_free(struct api *a);

#endif
