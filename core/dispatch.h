/* dispatch.h - the scheduler and delivery engine (loop thread).
 *
 * Holds every pending delivery in memory: a min-heap by due time drives a single libevent
 * timer; due deliveries go to their endpoint's transport subject to the global and
 * per-endpoint in-flight caps (over-cap ones wait in the endpoint's FIFO, in order; so are a
 * disabled endpoint's held, until it is enabled again). Each
 * outcome is written as an attempt plus the new delivery state through the store's writer
 * (group commit), and the retry schedule decides what comes next. Message bodies are shared
 * between the deliveries of a message (reference counted) and are signed per attempt, since
 * webhook-timestamp is the time of the attempt. */
#ifndef HOOKD_DISPATCH_H
#define HOOKD_DISPATCH_H

#include "id.h"
#include "record.h"
#include "strmap.h"

#include <jansson.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;
struct store_batch;
struct registry;
struct endpoint;
struct transport;
struct config;

/* Immutable bytes shared by reference (a message's envelope body). The count is atomic:
 * the policy thread replaces a delivery's body while the loop releases other deliveries
 * of the same message. */
struct body {
	atomic_int refs;
	size_t len;
	char data[];
};

struct body *body_new(const char *data, size_t len);
struct body *body_ref(struct body *b);
void body_unref(struct body *b);

#define DELIVERY_ID_MAX (ID_MAX + 16)

struct delivery {
	char id[DELIVERY_ID_MAX];
	char msg_id[ID_MAX];
	char *app_id;              /* owned */
	struct endpoint *ep;       /* reference held */
	struct body *body;         /* reference held */
	int custom_body;           /* body is a policy's output (kept in the bodies database) */
	int body_stored;           /* ... and already written there */
	char *headers_json;        /* policy headers as JSON object text, or NULL (owned) */
	char **extra_lines;        /* the same as "Name: value" lines (owned) */
	size_t n_extra;
	int state;
	uint32_t attempts, cycle_failures;
	int32_t last_status;
	int64_t next_at_ms;
	int64_t due_key_ms;        /* time part of the due-index key in the store, 0 = none */
	int64_t created_ms;
	char last_error[512];
	size_t heap_idx;           /* position in the heap, or SIZE_MAX */
	struct delivery *wait_next;
	int waiting;
	struct dispatch *dispatch; /* set while in flight */
	/* Set by fan-out when the endpoint has a policy still to run, so the policy thread
	 * never reads the endpoint (which the loop may change meanwhile): the name copied, the
	 * params a reference to JSON that is never modified in place. Owned. */
	char *policy_name;
	json_t *policy_params;
	/* Scheduled before it was ever stored (dispatch_add_unstored): the set it belongs to,
	 * reference held; cleared by the first dispatch_persist. */
	struct unstored_set *unstored;
};

struct dispatch;

int dispatch_new(struct event_base *base, struct store *store, struct registry *reg,
		 const struct config *cfg, struct transport *http, struct dispatch **out);
void dispatch_free(struct dispatch *d);

/* Loads every pending delivery from the store (startup, before the loop runs). */
int dispatch_load(struct dispatch *d, char *err, size_t errlen);

/* New delivery for ep (reference taken), owned by the caller until dispatch_add. */
struct delivery *delivery_new(const char *id, const char *msg_id, const char *app_id,
			      struct endpoint *ep, struct body *body, int64_t now_ms);
void delivery_free(struct delivery *dv);
/* Sets policy output headers from a JSON object (copied). */
int delivery_set_headers(struct delivery *dv, const char *headers_json);

/* Adds the writes that store dv in its current state to batch (record, due key, dead key). */
int dispatch_persist(struct store *s, struct store_batch *b, struct delivery *dv,
		     int64_t now_ms);

/* Hands a stored, pending delivery to the scheduler (takes ownership). Non-pending ones
 * are freed. */
void dispatch_add(struct dispatch *d, struct delivery *dv);

/* A live (pending or in-flight) delivery, or NULL. */
struct delivery *dispatch_live(struct dispatch *d, const char *dlv_id);

/* One message's policy deliveries, none stored yet, whose existence is guaranteed by its
 * fan-out marker (fanout.h; a restart redoes them while it is there). Takes dvs (not the
 * array). Finished ones (filtered, policy error) are stored now; pending ones are scheduled
 * at once and stored with their first outcome, so a delivery that succeeds at once costs
 * one write instead of two, and its output body is never written. The write that stores
 * the last of them also deletes the marker (fanout_marker_delete). Until then
 * dispatch_unstored lists their ids (for the API, which reads them live). */
void dispatch_add_unstored(struct dispatch *d, const char *app_id, const char *msg_id,
			   struct delivery **dvs, size_t n);

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

/* Counters for /metrics and the benchmark. */
struct dispatch_stats {
	uint64_t attempts, succeeded, failed, dead;
	uint32_t inflight;
	size_t pending;
};
void dispatch_get_stats(struct dispatch *d, struct dispatch_stats *out);

#endif
