/* api-t.h - the API's internal types and helpers, shared by the route files
 * (api.c: apps, endpoints, messages, dead letters; api_policies.c: policies). */
#ifndef HOOKD_API_T_H
#define HOOKD_API_T_H

#include "fanout.h"
#include "id.h"

#include <jansson.h>
#include <sodium.h>
#include <stdint.h>

struct evhttp;
struct evhttp_request;
struct event_base;
struct evhttp_connection;
struct api_conns;
struct delivery;
struct app;

struct api {
	struct event_base *base;
	struct evhttp *http;
	struct api_conns *conns;    /* connection cap, timeouts, header limits (api_conn.h) */
	struct store *store;
	struct registry *reg;
	struct dispatch *disp;
	struct policy_engine *policies;
	struct worker *worker; /* the policy thread */
	const struct config *cfg;
	unsigned char key_hash[crypto_generichash_BYTES];
	int has_key;
	struct fanout_stats fstats;
	struct fanout_ctx fanout;   /* deferred policy fan-out (fanout.h) */
	uint64_t published, publish_rejected;
};

/* A request answered later, after a commit. The client may go away meanwhile: the
 * connection's close callback clears req so the answer is dropped, not sent to freed memory. */
struct api_pending {
	struct api *api;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	void *data;
	json_t *json;
	struct delivery **dvs;
	size_t n_dvs;
	struct app *app;
	char id[ID_MAX + 80];
	int64_t now_ms;
	/* publish: what the commit needs, and the policy half of the fan-out (fanout_defer) */
	json_t *envelope; /* the envelope as a tree, for the policies (only when there are some) */
	char *text;
	char *idem;
	struct delivery **policy_dvs;
	size_t n_policy;
};

/* Starts a pending answer for req (watches its connection). */
struct api_pending *api_pending_new(struct api *a, struct evhttp_request *req);
/* Detaches from the connection; returns the request to answer, or NULL if it went away. */
struct evhttp_request *api_pending_take(struct api_pending *p);
/* Frees p and everything it holds. */
void api_pending_free(struct api_pending *p);

/* Sends body (stolen, may be NULL) as JSON with status. */
void api_send(struct evhttp_request *req, int status, json_t *body);
/* Sends {"error": {"code", "message", "field"}}. */
void api_error(struct evhttp_request *req, int status, const char *code, const char *field,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Parses the request body as a JSON object, answering 400/413 itself on failure (NULL).
 * An empty body is {} unless required. */
json_t *api_body_json(struct api *a, struct evhttp_request *req, int required);
/* /v1/policies... (api_policies.c); seg[0] = "v1", seg[1] = "policies". */
void api_policies_route(struct api *a, struct evhttp_request *req, int method, char **seg,
			int nseg);
/* Loads the policies stored through the API into the engine (start, and after SIGHUP
 * reloads the directory: API uploads win over files of the same name). */
void api_policies_load_stored(struct store *s, struct policy_engine *e);

#endif
