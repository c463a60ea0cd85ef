/* delivery.h - a delivery (one message to one endpoint) in memory, the message bodies its
 * deliveries share, and the delivery id scheme.
 *
 * Delivery ids are dlv_<message ulid>_<n> (plain deliveries, stored at publish) and
 * dlv_<message ulid>_p<n> (deliveries through a policy, stored later, and re-planned by a
 * recovery): a message's deliveries are adjacent in the store's key order, and the two
 * series can never collide. Only the functions below spell the scheme. */
#ifndef HOOKD_DELIVERY_H
#define HOOKD_DELIVERY_H

#include "id.h"

#include <jansson.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct endpoint;
struct dispatch;
struct unstored_set;

/* Immutable bytes shared by reference (a message's envelope body). The count is atomic:
 * the policy thread replaces a delivery's body while the loop releases other deliveries
 * of the same message. */
struct body {
	atomic_int refs;
	size_t len;
	/* The JSON's top-level "type" string ("" when it has none), read once, when first asked
	 * (body_event_type, loop thread only); NULL until then. */
	char *type;
	char data[];
};

/* A copy of data (NUL-terminated after len bytes) with one reference, or NULL. */
struct body *body_new(const char *data, size_t len);
struct body *body_ref(struct body *b);
/* b's top-level "type" (a plugin transport hands it on, hookd_send.event_type): scanned the
 * first time only, so the attempts of a delivery and the deliveries sharing a body read it
 * once. "" when the body (a policy's output) has none, or it could not be kept. Loop thread
 * only. */
const char *body_event_type(struct body *b);
void body_unref(struct body *b);

/* "dlv_" + a message id without its "msg_" + "_p" + a number, with room. */
#define DELIVERY_ID_MAX (ID_MAX + 16)

/* The two numbering series of a message's deliveries (see the top of this file). */
enum delivery_series {
	DELIVERY_PLAIN = 0,  /* dlv_<m>_<n> */
	DELIVERY_POLICY = 1  /* dlv_<m>_p<n> */
};

/* Writes the id of msg_id's delivery number n in series into out; returns its length.
 * msg_id is an id made by id_make("msg_", ...): its 4-character prefix is dropped. */
size_t delivery_id_make(const char *msg_id, enum delivery_series series, size_t n,
			char out[DELIVERY_ID_MAX]);

/* Writes "dlv_<m>_", which every delivery id of msg_id (both series) starts with, into out;
 * returns its length. */
size_t delivery_id_prefix(const char *msg_id, char out[DELIVERY_ID_MAX]);

/* Writes "dlv_<m>_p", which the ids of msg_id's policy series start with; returns its
 * length. */
size_t delivery_id_policy_prefix(const char *msg_id, char out[DELIVERY_ID_MAX]);

/* Parses the len bytes of id (need not be NUL-terminated) as made by delivery_id_make:
 * the message id ("msg_..." into msg_id, ID_MAX bytes, unless msg_id is NULL), the series
 * and the number. HOOKD_EINVAL, with nothing written, when id is not of that form. */
int delivery_id_parse(const char *id, size_t len, char *msg_id, enum delivery_series *series,
		      size_t *n);

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
	int state;                 /* enum delivery_state (record.h) */
	uint32_t attempts, cycle_failures;
	int32_t last_status;
	int64_t next_at_ms;
	int64_t due_key_ms;        /* time part of the due-index key in the store, 0 = none */
	int64_t created_ms;
	char *last_error;          /* NULL = none; set with delivery_set_error (owned) */
	/* The scheduler's (dispatch.c), meaningless elsewhere: */
	size_t heap_idx;           /* position in the heap, or SIZE_MAX */
	struct delivery *wait_next;
	int waiting;               /* in its endpoint's FIFO */
	int probe;                 /* in flight as its endpoint's half-open probe (flow.h) */
	int live;                  /* in the live map, counted in its endpoint's window */
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

/* New pending delivery of msg_id to ep (reference taken) with a reference to body, due at
 * now_ms; owned by the caller until dispatch_add. NULL when out of memory. */
struct delivery *delivery_new(const char *id, const char *msg_id, const char *app_id,
			      struct endpoint *ep, struct body *body, int64_t now_ms);
/* Frees dv and drops the references it holds. NULL is ignored. */
void delivery_free(struct delivery *dv);
/* Sets policy output headers from a JSON object (copied). */
int delivery_set_headers(struct delivery *dv, const char *headers_json);

/* The text of the delivery's last failure, at most DELIVERY_ERROR_MAX - 1 bytes ("" clears
 * it). Kept on the heap only while there is one: most pending deliveries have none, and a
 * fixed buffer in every delivery was a third of a pending delivery's memory. Out of memory
 * keeps the previous text. */
#define DELIVERY_ERROR_MAX 512
void delivery_set_error(struct delivery *dv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Forgets the last failure (a success): no formatting, nothing to free when there is none. */
static inline void delivery_clear_error(struct delivery *dv)
{
	free(dv->last_error);
	dv->last_error = NULL;
}
/* The last failure's text, "" when there is none. */
static inline const char *delivery_error(const struct delivery *dv)
{
	return dv->last_error ? dv->last_error : "";
}

#endif
