/* api-t.h - the API's internal types and helpers, shared by the route files
 * (api.c: apps, endpoints, messages, dead letters; api_policies.c: policies). */
#ifndef HOOKD_API_T_H
#define HOOKD_API_T_H

#include "fanout.h"

#include <jansson.h>
#include <sodium.h>
#include <stdint.h>

struct evhttp;
struct evhttp_request;
struct event_base;

struct api {
	struct event_base *base;
	struct evhttp *http;
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
