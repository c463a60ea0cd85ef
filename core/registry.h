/* registry.h - apps and endpoints: their stored JSON, validation, and the in-memory cache
 * the loop thread reads on every publish and delivery (never the store on the hot path).
 *
 * The stored JSON of an endpoint is the source of truth; struct endpoint is derived from it
 * by endpoint_apply() through the schema rows' appliers (endpoint_schema.h: secrets parsed
 * once, headers pre-formatted). Loop thread only. */
#ifndef HOOKD_REGISTRY_H
#define HOOKD_REGISTRY_H

#include "sign.h"
#include "strmap.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct store;
struct dispatch_ep;
struct hookd_option;
struct plugin_auth;

/* Kept signing secrets per endpoint: the current one plus up to 4 rotated-out ones still in
 * their grace period (a rotation every few hours with 24 h grace stays well under this). */
#define ENDPOINT_MAX_SECRETS 5
/* Extra headers of an endpoint: more than any receiver asks for, few enough that one
 * endpoint cannot bloat every request (dispatch sizes a request's header list from it). */
#define ENDPOINT_MAX_HEADERS 32

struct endpoint_secret {
	struct sign_key key;
	char text[SIGN_TEXT_MAX];
	int64_t expires_ms; /* 0 = current (never expires) */
};

/* An endpoint's "auth" object (endpoint_schema.c's auth row, docs/api.md), derived from
 * its stored JSON. Reference counted: an attempt waiting for credentials (auth.c) keeps
 * the version it started with while a PATCH installs another or the endpoint goes. */
struct endpoint_auth {
	int refs;
	char *scheme;                   /* the scheme's name, as stored */
	const struct plugin_auth *pa;   /* the loaded scheme; NULL when none is loaded by that
					 * name now (attempts then fail, retryable, naming it) */
	struct hookd_option *opts;      /* the object's members but scheme, values as text
					 * (numbers and booleans as JSON writes them); owned */
	size_t n_opts;
};

void endpoint_auth_ref(struct endpoint_auth *a);
/* Frees a at its last reference; NULL is a no-op. */
void endpoint_auth_unref(struct endpoint_auth *a);

struct endpoint {
	char *id, *app_id;
	json_t *json;             /* stored form (owned) */
	char *url;
	char **event_types;       /* NULL/0 = all */
	size_t n_event_types;
	struct endpoint_secret secrets[ENDPOINT_MAX_SECRETS];
	size_t n_secrets;
	uint32_t *schedule;       /* NULL = daemon default */
	size_t n_schedule;
	char **header_lines;      /* "Name: value", ready for the transport */
	size_t n_headers;
	/* "tls": PEM text and the pin list, each NULL when not set; borrowed from json. */
	const char *tls_cert_pem, *tls_key_pem, *tls_ca_pem, *tls_pin;
	const char *proxy;        /* NULL = delivery.proxy, "" = direct; borrowed from json */
	bool disabled;
	/* "breaker", "rate_limit", "max_in_flight": the endpoint's own; a negative member means
	 * the daemon's default (delivery.breaker.*, delivery.rate_limit.*,
	 * delivery.max_inflight_per_endpoint). dispatch.c merges them into flow_limits. */
	struct endpoint_flow {
		int64_t consecutive_failures, window_s, cooldown_s;
		double failure_ratio;
		double per_second;        /* rate_limit null: negative */
		int64_t burst;
		int64_t max_in_flight;
		int64_t auto_disable_s;   /* null: delivery.auto_disable_seconds */
		int64_t max_pending;      /* null: delivery.max_pending_per_endpoint */
	} flow;
	/* "failing_since": when the endpoint's current run of failed attempts began, stored
	 * once it has lasted a while (dispatch.c), so auto-disable counts across restarts; 0
	 * when it is not failing. */
	int64_t failing_since_ms;
	char *policy_name;        /* NULL = no policy */
	json_t *policy_params;    /* borrowed from json */
	struct endpoint_auth *auth; /* NULL = no auth scheme; one reference owned */

	/* lifetime */
	int refs;                 /* registry + live deliveries + the scheduler's runtime */
	bool deleted;             /* removed from its app; freed with its last reference */

	/* The scheduler's per-endpoint runtime (in-flight count, FIFO of waiting deliveries):
	 * owned by dispatch.c, which alone sets, reads and frees it; the registry never reads
	 * it. NULL until the endpoint's first delivery is scheduled. */
	struct dispatch_ep *sched;
};

struct app {
	char *id;
	json_t *json;             /* {"id","name","created_at","retention_days",
	                           * "payload_retention_days"} (owned) */
	struct strmap endpoints;  /* ep id -> struct endpoint */
	/* From json: days, or -1 when null (storage.retention_days,
	 * storage.payload_retention_days); the janitor reads them (janitor.h). */
	int64_t retention_days, payload_retention_days;
};

struct registry {
	struct strmap apps;       /* app id -> struct app */
	struct store *store;
};

int registry_load(struct registry *r, struct store *s, char *err, size_t errlen);
void registry_free(struct registry *r);

struct app *registry_app(struct registry *r, const char *id);
struct endpoint *registry_endpoint(struct registry *r, const char *app_id, const char *ep_id);

/* Creates the in-memory app from its JSON (stolen). */
struct app *registry_app_install(struct registry *r, json_t *json);

/* Validates a create/patch request against the endpoint schema (endpoint_schema.h) and
 * returns the new stored JSON (base = NULL to create). On a bad field returns NULL with the
 * field's JSON path in field and "path: why" in msg ("required" in msg means the field was
 * missing). */
json_t *endpoint_json_merge(const json_t *base, const json_t *req, const char *app_id,
			    int64_t now_ms, char *field, size_t flen, char *msg, size_t mlen);

/* Installs (creates or updates in place) the endpoint described by json (stolen). Live
 * deliveries keep their pointer: an update changes the struct in place. NULL on failure. */
struct endpoint *registry_endpoint_install(struct registry *r, struct app *a, json_t *json,
					   char *err, size_t errlen);
/* Removes an endpoint from its app; the struct lives on until its last reference goes. */
void registry_endpoint_remove(struct registry *r, struct app *a, struct endpoint *ep);
/* Sets (ms > 0) or clears (0) ep's "failing_since"; returns the new stored JSON as
 * compact text to store, like registry_endpoint_set_disabled. */
char *registry_endpoint_set_failing_since(struct registry *r, struct endpoint *ep, int64_t ms);
/* Disables (or re-enables) ep: "disabled" and "disabled_reason" in its stored JSON (reason,
 * or null when NULL) and ep->disabled, at once. Returns the new stored JSON as compact text
 * for the caller to store (store_batch_put_endpoint; malloc'd, the caller's), or NULL when
 * out of memory for the text (ep is changed all the same). For the daemon's own decisions
 * (410 Gone); an operator's change goes through endpoint_json_merge. */
char *registry_endpoint_set_disabled(struct registry *r, struct endpoint *ep, bool disabled,
				     const char *reason);
void endpoint_ref(struct endpoint *ep);
void endpoint_unref(struct endpoint *ep);

/* The API view: the stored JSON minus the secrets list, plus secret and public_key, with
 * the values of the auth scheme's secret options shown as registry_secret_mask does. New
 * ref. */
json_t *endpoint_api_view(const struct endpoint *ep);

/* What the API shows of a secret auth option's value (docs/api.md, "auth"): its first
 * REGISTRY_MASK_SHOWN bytes (cut at a character boundary) followed by "…", or "***" when
 * the value is shorter than REGISTRY_MASK_MIN bytes, where four bytes would be a third of
 * it or more. Writes into buf (at least REGISTRY_MASK_MAX bytes); returns buf. */
#define REGISTRY_MASK_SHOWN 4
#define REGISTRY_MASK_MIN 12
#define REGISTRY_MASK_MAX 16
const char *registry_secret_mask(const char *value, char *buf, size_t len);
/* true if option name of scheme pa is a secret (its secret_options). Every option is, for
 * a scheme that is not loaded (pa NULL): nothing says which are safe to show. */
bool registry_auth_option_secret(const struct plugin_auth *pa, const char *name);

/* true if ep subscribes to type (exact, "prefix.*", or "*"; no filter = everything). */
bool endpoint_matches(const struct endpoint *ep, const char *type);

/* Secrets that sign now (current + unexpired old). */
size_t endpoint_active_secrets(const struct endpoint *ep, int64_t now_ms,
			       const struct endpoint_secret **out, size_t max);

/* Turns a JSON object of header name -> string into malloc'd "Name: value" lines, the form
 * the transport takes. *lines (NULL-terminated, n entries) is the caller's: free with
 * header_lines_free. HOOKD_ENOMEM leaves nothing allocated. */
int header_lines_from_json(const json_t *obj, char ***lines, size_t *n);
void header_lines_free(char **lines, size_t n);

/* The longest event type name, in bytes: dotted names like "invoice.payment.failed" are far
 * shorter, and the bound keeps type filters and message records small. */
#define REGISTRY_TYPE_MAX 128

/* true if type is a valid event type name: segments [A-Za-z0-9_-]+ joined by '.', at most
 * REGISTRY_TYPE_MAX bytes. */
bool registry_type_valid(const char *type);

#endif
