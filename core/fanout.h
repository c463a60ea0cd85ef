/* fanout.h - one message becomes one delivery per subscribed endpoint.
 *
 * This is the seam where routing policies run: for an endpoint with a policy, its filter
 * and transform decide whether a delivery is sent, and with which body and headers (the
 * result is stored, so every retry sends the identical bytes). Loop thread only. */
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

/* Creates the deliveries of message msg_id (envelope: the parsed body object; body: its
 * serialized bytes, shared by endpoints without a policy) for every enabled endpoint of a
 * that subscribes to type. *out is a malloc'd array the caller frees (and the deliveries
 * in it). policies may be NULL (no engine: endpoints with a policy get a policy error). */
int fanout_message(struct policy_engine *policies, struct app *a, const char *msg_id,
		   const char *type, const json_t *envelope, struct body *body, int64_t now_ms,
		   struct delivery ***out, size_t *n_out, struct fanout_stats *stats);

/* Runs ep's policy for an existing delivery (a redrive re-runs the policy). Sets state,
 * body, headers and last_error of dv from the outcome. */
void fanout_apply_policy(struct policy_engine *policies, struct endpoint *ep,
			 const json_t *envelope, struct delivery *dv, struct fanout_stats *stats);

#endif
