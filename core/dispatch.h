/* dispatch.h - the scheduler and delivery engine (loop thread).
 *
 * Holds a bounded window of each endpoint's pending deliveries in memory
 * (delivery.window_per_endpoint, soonest due first); the rest wait in the store's due index,
 * which is per endpoint, and are read back as the window empties, so memory does not grow
 * with a backlog and a restart reads one window per endpoint, not the backlog. A min-heap by
 * due time over what is in memory drives a single libevent timer; due deliveries go to their
 * endpoint's transport subject to the global and per-endpoint in-flight caps (over-cap ones
 * wait in the endpoint's FIFO, in order; so are a disabled endpoint's held, until it is
 * enabled again). Each outcome is written as an attempt plus the new delivery state through
 * the store's writer (group commit), and the retry schedule decides what comes next. Message
 * bodies are shared between the deliveries of a message (reference counted) and are signed
 * per attempt, since webhook-timestamp is the time of the attempt. */
#ifndef HOOKD_DISPATCH_H
#define HOOKD_DISPATCH_H

#include "delivery.h"
#include "id.h"
#include "record.h"
#include "strmap.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;
struct store_batch;
struct registry;
struct endpoint;
struct transport;
struct config;

struct dispatch;

int dispatch_new(struct event_base *base, struct store *store, struct registry *reg,
		 const struct config *cfg, struct transport *transport, struct dispatch **out);
void dispatch_free(struct dispatch *d);

/* Finds the endpoints with pending deliveries in the store (startup, before the loop runs):
 * their windows are read once the loop runs. Drops the due entries of endpoints that are
 * no longer registered. */
int dispatch_load(struct dispatch *d, char *err, size_t errlen);

/* Adds the writes that store dv in its current state to batch (record, due key, dead key). */
int dispatch_persist(struct store_batch *b, struct delivery *dv, int64_t now_ms);

/* Hands a stored, pending delivery to the scheduler (takes ownership). Non-pending ones
 * are freed. */
void dispatch_add(struct dispatch *d, struct delivery *dv);

/* A live (pending or in-flight) delivery, or NULL. */
struct delivery *dispatch_live(struct dispatch *d, const char *dlv_id);

/* One message's policy deliveries, none stored yet, whose existence is guaranteed by its
 * fan-out marker (fanout.h; a restart redoes them while it is there). Takes dvs (not the
 * array). Finished ones (filtered, policy error) are stored now; pending ones are scheduled
 * at once and stored with their first outcome, so a delivery that succeeds at once costs
 * one write instead of two, and its output body is never written. The batch that stores
 * the last of them also gets last(b, app_id, msg_id): fan-out passes the deletion of its
 * marker (fanout_marker_delete), so the scheduler never names the marker itself. Until then
 * dispatch_unstored lists their ids (for the API, which reads them live). */
typedef int (*dispatch_last_write_fn)(struct store_batch *b, const char *app_id,
				      const char *msg_id);
void dispatch_add_unstored(struct dispatch *d, const char *app_id, const char *msg_id,
			   struct delivery **dvs, size_t n, dispatch_last_write_fn last);

/* Drops a delivery's reference to its unstored set (delivery_free); NULL is ignored. */
void dispatch_unstored_unref(struct unstored_set *set);

/* Ids of msg_id's deliveries not stored yet (they may also have been stored meanwhile, or
 * be gone); *n_out is their count. NULL when there are none. Valid until the loop runs. */
const char (*dispatch_unstored(struct dispatch *d, const char *msg_id,
			       size_t *n_out))[DELIVERY_ID_MAX];

/* The endpoint was deleted (already marked): its pending deliveries are recorded dead with
 * "endpoint deleted", so nothing stays pending forever for an endpoint that is gone. */
void dispatch_endpoint_deleted(struct dispatch *d, struct endpoint *ep);

/* The endpoint was re-enabled (or its limits changed): release its waiting deliveries,
 * oldest first. While an endpoint is disabled its due deliveries are held in its FIFO (no
 * attempt made, retry schedule untouched; a never-stored policy delivery is stored as it is
 * held); a release that finds every global slot busy goes first when one frees. */
void dispatch_endpoint_changed(struct dispatch *d, struct endpoint *ep);

/* Loads a stored pending delivery that is not live (after a redrive committed); the caller
 * hands it to dispatch_add. NULL if absent, not pending, or already live. */
struct delivery *dispatch_load_stored(struct dispatch *d, const char *dlv_id);

/* What the scheduler knows of one endpoint now, for its status feed (GET .../status). */
struct dispatch_ep_status {
	const char *breaker;            /* "closed", "open", "half_open" */
	uint32_t failures_in_a_row;
	int64_t opened_ms;              /* the breaker's last open (0: never since the start) */
	int64_t next_probe_ms;          /* open: when the probe goes (0 otherwise) */
	uint32_t inflight, waiting;     /* attempts out; due ones in its FIFO */
	double rate;                    /* attempts/s in effect now; 0 = no limit */
	bool throttled;                 /* rate is below its own limit: it asked for less */
	int64_t paused_until_ms;        /* a Retry-After pause (0: none) */
	/* the limits in effect (the endpoint's own or the daemon's defaults) */
	double per_second;              /* 0 = no limit */
	uint32_t burst, max_in_flight, consecutive_failures, window_s, cooldown_s;
	double failure_ratio;
	/* the last hour's attempts */
	uint64_t succeeded, failed;
	double p50_ms, p99_ms;          /* -1 when none */
	int64_t last_success_ms, last_failure_ms; /* 0: none since the start */
	int last_failure_status;        /* 0: the transport failed */
	const char *last_failure_error; /* valid until the loop runs */
};
void dispatch_endpoint_status(struct dispatch *d, struct endpoint *ep,
			      struct dispatch_ep_status *out);

/* Why a live pending delivery that is due does not go: "endpoint_disabled",
 * "breaker_open", "retry_after" (the endpoint asked for a pause), "max_in_flight",
 * "rate_limit"; NULL when it is not waiting. */
const char *dispatch_waiting_for(const struct delivery *dv);

/* Something an operator should hear of happened to ep ("endpoint.disabled",
 * "endpoint.breaker_opened", "endpoint.breaker_closed", "message.dead"): fn gets the type
 * and data (stolen), on the loop thread (ops.h publishes them). NULL fn: none. */
typedef void (*dispatch_event_fn)(void *arg, const char *type, const struct endpoint *ep,
				  json_t *data);
void dispatch_set_events(struct dispatch *d, dispatch_event_fn fn, void *arg);

/* Counters for /metrics and the benchmark. */
struct dispatch_stats {
	uint64_t attempts, succeeded, failed, dead;
	uint32_t inflight;
	size_t in_memory; /* deliveries the scheduler holds (its windows) */
};
void dispatch_get_stats(struct dispatch *d, struct dispatch_stats *out);

#endif
