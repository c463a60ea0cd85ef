/* fanout.h - one message becomes one delivery per subscribed endpoint.
 *
 * This is the seam where routing policies run: for an endpoint with a policy, its filter
 * and transform decide whether a delivery is sent, and with which body and headers (the
 * result is stored, so every retry sends the identical bytes). Planning happens on the
 * loop thread; the policies themselves may run on the policy thread (worker.h), since a
 * policy may use its whole CPU budget. */
#ifndef HOOKD_FANOUT_H
#define HOOKD_FANOUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct body;
struct delivery;
struct endpoint;
struct policy_engine;

struct fanout_stats {
	uint64_t deliveries, filtered, policy_errors;
};

/* Loop thread. Creates the deliveries of message msg_id (body: the envelope's bytes, shared
 * by endpoints without a policy) for every endpoint of a that subscribes to type, disabled
 * ones included (their deliveries are held by the scheduler until re-enabled).
 * Deliveries whose endpoint has a policy carry a copy of its name and params, and
 * *needs_policy is set. *out is a malloc'd array the caller frees (with the deliveries). */
int fanout_message(struct app *a, const char *msg_id, const char *type, struct body *body,
		   int64_t now_ms, struct delivery ***out, size_t *n_out, int *needs_policy,
		   struct fanout_stats *stats);

/* Copies ep's policy into dv (loop thread), so fanout_apply_policy can run anywhere. */
int fanout_capture_policy(struct delivery *dv, const struct endpoint *ep);

/* Any thread, for deliveries the caller owns exclusively: runs each carried policy on the
 * envelope (the parsed body object, only read). Sets state, body, headers and last_error of
 * each from the outcome. policies may be NULL (every policy then fails as not loaded). */
void fanout_run_policies(struct policy_engine *policies, const json_t *envelope,
			 struct delivery **dvs, size_t n, struct fanout_stats *stats);
void fanout_apply_policy(struct policy_engine *policies, const json_t *envelope,
			 struct delivery *dv, struct fanout_stats *stats);

/* ---- deferred policy fan-out ----
 * A publish is acknowledged once the message, its plain deliveries and a "fan-out pending"
 * marker are durable (fanout_publish); the deliveries that go through a policy are made
 * afterwards, on the policy thread. They are sent at once and stored with their first
 * outcome; the write that stores the last of them removes the marker (dispatch_add_unstored,
 * through fanout_marker_delete). A publisher's 202 never waits for subscribers' policies,
 * and fanout_recover finishes at the next start whatever a crash left undone (re-running
 * the policies of the deliveries not stored). The marker's whole life is here: put with
 * the message, deleted with the last delivery it stands for, recovered at start. */
struct store;
struct store_batch;
struct dispatch;
struct registry;
struct worker;

struct fanout_ctx {
	struct store *store;
	struct dispatch *disp;
	struct registry *reg;
	struct policy_engine *policies;
	struct worker *worker;      /* NULL: run inline */
	struct fanout_stats *stats; /* loop-thread counters */
};

/* What one publish stores, in one op: the envelope, the plain deliveries (pending), the
 * fan-out marker when policy deliveries follow, and the idempotency key if any. Everything
 * is the caller's; the op copies what it stores. */
struct fanout_publish {
	const char *app_id, *msg_id;
	const char *envelope;    /* the stored body (NUL-terminated) */
	struct delivery **dvs;   /* the deliveries without a policy */
	size_t n_dvs;
	int deferred;            /* policy deliveries follow (fanout_defer): put the marker */
	const char *idem_key;    /* the Idempotency-Key, or NULL */
	int64_t now_ms;          /* the publish time (deliveries, and the key's guard) */
	int64_t idem_expires_ms; /* until when the key answers with this message */
};

/* Builds the publish op and queues it (store_publish_submit: cb runs on the loop thread with
 * the outcome, HOOKD_EDUPLICATE naming the first message). On failure (out of memory, a key
 * too long) nothing is queued and cb is not called. */
int fanout_publish(struct store *s, const struct fanout_publish *pub,
		   void (*cb)(struct store_batch *b), void *arg);


/* Loop thread, after the publish committed: runs the policies of dvs (all carrying one) on
 * the policy thread, then hands them to dispatch_add_unstored. Takes the deliveries (and
 * the array) and a reference to envelope, the stored envelope's bytes: the policy thread
 * parses them into the tree the policies read (the publish path itself builds none), and
 * the reference is released on the loop. */
void fanout_defer(struct fanout_ctx *ctx, const char *app_id, const char *msg_id,
		  struct body *envelope, struct delivery **dvs, size_t n);

/* Startup, before the writer thread starts: finishes every fan-out whose marker is still
 * stored (for endpoints with no stored delivery of the message yet), storing the
 * deliveries before scheduling them. Returns how many messages it finished. */
size_t fanout_recover(struct fanout_ctx *ctx);

#endif
