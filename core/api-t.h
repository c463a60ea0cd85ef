/* api-t.h - the API's internal types and helpers, shared by api.c (server, routing) and
 * the resource files (api_apps.c, api_endpoints.c, api_deliveries.c, api_messages.c,
 * api_dead.c, api_policies.c, api_metrics.c). */
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
struct body;
struct delivery;
struct app;
struct store_read;
struct endpoint;
struct evkeyvalq;

struct api {
	struct event_base *base;
	struct evhttp *http;
	struct api_conns *conns;    /* connection cap, timeouts, header limits (api_conn.h) */
	struct store *store;
	struct registry *reg;
	struct dispatch *disp;
	struct ops *ops;            /* operational webhooks (ops.h), or NULL */
	struct recover_job *jobs;   /* recover jobs, newest first (api_recover.c) */
	size_t n_jobs;
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
	struct body *envelope; /* the envelope's bytes for the policies (only when there are some) */
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
/* Answers a failed store write: 507 when the store is full, 500 naming the error else. */
void api_store_failed(struct evhttp_request *req, int rc);
/* Reads the integer query parameter name in [min, max] (def when absent); on a bad value
 * answers 400 and sets *bad. */
long api_query_long(struct evkeyvalq *q, const char *name, long def, long min, long max,
		    struct evhttp_request *req, int *bad);
/* Returns arr's items sorted by id in a new array (strmap order is arbitrary); arr is stolen. */
json_t *api_sorted(json_t *arr);

/* Page sizes for listings: 50 by default like Svix, 1000 at most to bound one response. */
#define API_LIST_DEFAULT 50
#define API_LIST_MAX 1000

/* What the router found in the path: the app (":app") and endpoint (":ep") it names, any
 * other captured segment (a message id, a policy name), and the parsed query string. */
struct api_args {
	struct app *app;
	struct endpoint *ep;
	const char *id;
	struct evkeyvalq *query;
};

/* A route's handler (api.c's table names them all). */
typedef void (*api_handler_fn)(struct api *a, struct evhttp_request *req,
			       const struct api_args *args);

void api_healthz(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_metrics(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_policies_list(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_policy_get(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_policy_put(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_policy_test(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_apps_list(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_apps_create(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_app_get(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_app_patch(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_endpoints_list(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_endpoints_create(struct api *a, struct evhttp_request *req,
			  const struct api_args *args);
void api_endpoint_get(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_endpoint_patch(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_endpoint_delete(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_endpoint_rotate(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_endpoint_status(struct api *a, struct evhttp_request *req, const struct api_args *args);
/* An endpoint's deliveries in one state, paged, with its counts (api_deliveries.c). */
void api_endpoint_deliveries(struct api *a, struct evhttp_request *req,
			     const struct api_args *args);
void api_messages_list(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_messages_create(struct api *a, struct evhttp_request *req,
			 const struct api_args *args);
void api_message_get(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_message_attempts(struct api *a, struct evhttp_request *req,
			  const struct api_args *args);
/* The stored envelope of app_id's message msg_id, read in snapshot rd, as JSON; NULL (with
 * *rc HOOKD_ENOTFOUND or a store error) if there is none (api_messages.c). */
json_t *api_message_load(struct api *a, struct store_read *rd, const char *app_id,
			 const char *msg_id, int *rc);
void api_dead_list(struct api *a, struct evhttp_request *req, const struct api_args *args);
/* What a redrive does to a dead record (writer thread): pending, due at now_ms, a new retry
 * cycle, no error. */
struct delivery_rec;
void api_redrive_revive_at(struct delivery_rec *rec, int64_t now_ms);
/* Loop thread, after a redrive committed: hands the delivery to the scheduler, re-running
 * its endpoint's policy (the operator may have fixed it). */
void api_redrive_schedule(struct api *a, const char *dlv_id);
/* Recover jobs (api_recover.c). */
void api_endpoint_recover(struct api *a, struct evhttp_request *req, const struct api_args *args);
void api_endpoint_recover_get(struct api *a, struct evhttp_request *req,
			      const struct api_args *args);
void api_recover_free(struct api *a);
void api_dead_redrive(struct api *a, struct evhttp_request *req, const struct api_args *args);
/* Loads the policies stored through the API into the engine (start, and after SIGHUP
 * reloads the directory: API uploads win over files of the same name). */
void api_policies_load_stored(struct store *s, struct policy_engine *e);

#endif
