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
 * by endpoints without a policy) for every enabled endpoint of a that subscribes to type.
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

#endif
