/* store.h - the durable store: an LMDB environment, its single writer thread (group commit),
 * and typed reads and writes of everything hookd keeps. Callers speak in apps, endpoints,
 * messages, deliveries and attempts; no key layout and no LMDB type leaves the store.
 *
 * Every write goes through the writer thread: it takes everything queued since its last
 * commit, applies it in one write transaction, commits (one fsync for the whole batch), and
 * then runs each op's done callback on the event-loop thread. So a publish is answered only
 * after it is durable, and a burst of publishes costs one fsync, not one each. Reads use
 * read-only snapshots (struct store_read) from any thread.
 *
 * Named databases (keys are bytes; "\0" separates string parts; times are big-endian so
 * cursor order is time order):
 *   apps        app_id                          -> app JSON
 *   endpoints   app_id \0 ep_id                  -> endpoint JSON (secrets included)
 *   messages    app_id \0 msg_id                 -> envelope body (the exact bytes sent)
 *   deliveries  dlv_id                           -> delivery record (record.h, binary)
 *   attempts    dlv_id \0 be32(attempt)           -> attempt JSON
 *   due         app_id \0 ep_id \0 be64(next_at_ms) dlv_id
 *                                                -> (empty) the scheduler's index, per endpoint
 *   dead        app_id \0 be64(dead_at_ms) dlv_id -> (empty) the dead-letter index
 *   idem        app_id \0 key                    -> be64(expires_ms) msg_id
 *   policies    name                             -> Lua source uploaded through the API
 *   bodies      dlv_id                           -> a policy's output body (written once)
 *   fanout      app_id \0 msg_id                 -> (empty) policy fan-out still to do
 *   epdlv       app_id \0 ep_id \0 u8(state) dlv_id
 *                                                -> (empty) an endpoint's deliveries per state
 *                                                   (delivery_state; in flight is stored as
 *                                                   pending), in id order = publish order
 *   epcount     app_id \0 ep_id                  -> be64 count per state, indexed by
 *                                                   delivery_state (STORE_EPCOUNT_SLOTS)
 *               \0 "rebuild"                     -> the last delivery id indexed while a
 *                                                   rebuild is unfinished (store_epindex.c)
 * epdlv and epcount are derived from deliveries, kept by the store in the transaction that
 * writes or deletes a record (callers do nothing), and rebuilt when a data directory from
 * before them is opened.
 *
 * The store_*.c family (the only files that include <lmdb.h>; store-t.h is their private
 * header with the struct, the key layouts and the one prefix scan):
 *   store.c            environment, writer thread, batches, space accounting, statistics
 *   store_key.c        key layouts (build and parse) and the prefix scan
 *   store_meta.c       apps, endpoints, policies
 *   store_msg.c        messages, deliveries, attempts, policy bodies; the publish op
 *   store_index.c      due index, dead-letter index, idempotency keys, fan-out markers
 *   store_redrive.c    the redrive transaction (dead deliveries back to pending)
 *   store_retention.c  the janitor's step (expired idempotency keys, settled old messages)
 *   store_epindex.c    the per-endpoint delivery index and counts (epdlv, epcount)
 *
 * Conventions: functions return HOOKD_OK or a negative hookd error (err.h): HOOKD_ESTORE
 * and HOOKD_EFULL are store errors, HOOKD_ENOTFOUND an absent record, HOOKD_EINVAL a key
 * too long for LMDB. Strings and bytes passed in are copied. */
#ifndef HOOKD_STORE_H
#define HOOKD_STORE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct delivery_rec;

struct store;       /* opaque */
struct store_batch; /* opaque: a multi-key write applied atomically */
struct store_read;  /* opaque: a consistent read-only snapshot */

/* ---- the environment ---- */

/* Opens (creating) the environment in directory path with the given map size. */
int store_open(const char *path, uint64_t map_size, struct store **out, char *err, size_t errlen);
/* Starts the writer thread; done callbacks run on base's loop. */
int store_start(struct store *s, struct event_base *base);
/* Drains the queue, stops the writer, runs remaining done callbacks. */
void store_stop(struct store *s);
void store_close(struct store *s);

/* Group-commit delay (storage.commit_delay_us): before a commit, the writer waits up to
 * delay_us for the queue to reach enough_ops, so one fsync covers more work. 0 = commit as
 * soon as anything is queued (the default: lowest latency). */
void store_set_commit_delay(struct store *s, unsigned delay_us, unsigned enough_ops);

/* Space, for /metrics and the API (approximate: measured after the last commit). */
struct store_space {
	uint64_t map_bytes, used_bytes, reserved_bytes, budget_bytes, waiting_writes;
	int full;
};
void store_get_space(struct store *s, struct store_space *out);

/* The writer's counters, for /metrics (approximate: read while the writer runs). */
struct store_stats {
	uint64_t commits;   /* write transactions committed */
	uint64_t ops;       /* ops taken from the queue */
	uint64_t commit_ns; /* wall time spent applying, committing and syncing batches */
	uint64_t syncs;     /* extra syncs: a commit made durable at once as nothing followed */
};
void store_get_stats(struct store *s, struct store_stats *out);

/* Entries per named database (a fresh snapshot; tests and diagnostics). */
struct store_counts {
	uint64_t apps, endpoints, messages, deliveries, attempts, due, dead, idem, policies,
		bodies, fanout, epdlv, epcount;
};
int store_get_counts(struct store *s, struct store_counts *out);

/* ---- batches: the writes of one op, applied atomically ---- */

#define STORE_OP_PUBLISH 1u /* refused with HOOKD_EFULL when it does not fit the budget */
/* A state change of something already stored (a delivery's outcome, an endpoint disabled
 * by its answers): never dropped for lack of space. If it cannot be committed because the
 * map is full, the writer keeps it, in order, and commits it once space is free (retried
 * every STORE_WAIT_RETRY_MS, and at once after any commit that freed pages); its done
 * callback runs then. Later KEEP ops queue behind it, so a delivery's states are never
 * committed out of order. Held in memory meanwhile: bounded by the live deliveries (one
 * outcome each per attempt of their schedule). */
#define STORE_OP_KEEP 2u

/* NULL when out of memory. The adders below copy what they are given; each returns
 * HOOKD_OK, HOOKD_ENOMEM, or HOOKD_EINVAL (a key too long). */
struct store_batch *store_batch_new(void);
void store_batch_free(struct store_batch *b);
/* Queues b (flags: STORE_OP_*); cb runs on the loop thread once b is committed or failed
 * (store_batch_rc says), then b is freed. cb may be NULL. */
void store_batch_submit(struct store *s, struct store_batch *b, unsigned flags,
			void (*cb)(struct store_batch *b), void *arg);
/* Applies b synchronously in its own write transaction on the caller's thread (startup,
 * before store_start; tests). b stays the caller's. */
int store_batch_write_now(struct store *s, struct store_batch *b, unsigned flags);
/* In cb: the outcome (HOOKD_OK, a store error, HOOKD_EDUPLICATE) and the arg submitted. */
int store_batch_rc(const struct store_batch *b);
void *store_batch_arg(const struct store_batch *b);
/* Writes queued in b so far. */
size_t store_batch_count(const struct store_batch *b);

/* apps, endpoints, policies (store_meta.c); json is NUL-terminated JSON text. */
int store_batch_put_app(struct store_batch *b, const char *app_id, const char *json);
int store_batch_del_app(struct store_batch *b, const char *app_id);
int store_batch_put_endpoint(struct store_batch *b, const char *app_id, const char *ep_id,
			     const char *json);
int store_batch_del_endpoint(struct store_batch *b, const char *app_id, const char *ep_id);
int store_batch_put_policy(struct store_batch *b, const char *name, const char *src,
			   size_t len);
int store_batch_del_policy(struct store_batch *b, const char *name);

/* deliveries, attempts, bodies (store_msg.c). */
/* The delivery record (encoded by the store; record.h). */
int store_batch_put_delivery(struct store_batch *b, const char *dlv_id,
			     const struct delivery_rec *r);
int store_batch_put_attempt(struct store_batch *b, const char *dlv_id, uint32_t attempt,
			    const char *json, size_t len);
/* A policy's output body for dlv_id. */
int store_batch_put_body(struct store_batch *b, const char *dlv_id, const char *data,
			 size_t len);

/* indexes (store_index.c). */
int store_batch_put_due(struct store_batch *b, const char *app_id, const char *ep_id,
			int64_t at_ms, const char *dlv_id);
int store_batch_del_due(struct store_batch *b, const char *app_id, const char *ep_id,
			int64_t at_ms, const char *dlv_id);
int store_batch_put_dead(struct store_batch *b, const char *app_id, int64_t dead_at_ms,
			 const char *dlv_id);
int store_batch_put_fanout_marker(struct store_batch *b, const char *app_id,
				  const char *msg_id);
int store_batch_del_fanout_marker(struct store_batch *b, const char *app_id,
				  const char *msg_id);

/* ---- the publish op: a batch submitted with STORE_OP_PUBLISH ----
 * The message (store_publish_add_message), its deliveries (the adders above: record, due
 * entry), a fan-out marker, and at most one idempotency key. */
int store_publish_add_message(struct store_batch *b, const char *app_id, const char *msg_id,
			      const char *envelope, size_t len);
/* Remembers key (app_id's Idempotency-Key) for msg_id until expires_ms, and guards the
 * whole op: if the key is stored and has not expired as of now_ms, the op fails with
 * HOOKD_EDUPLICATE, writing nothing, and store_publish_duplicate names the first message. */
int store_publish_set_idempotency(struct store_batch *b, const char *app_id, const char *key,
				  const char *msg_id, int64_t now_ms, int64_t expires_ms);
void store_publish_submit(struct store *s, struct store_batch *b,
			  void (*cb)(struct store_batch *b), void *arg);
/* After HOOKD_EDUPLICATE: the message id stored with the key (owned by b). */
const char *store_publish_duplicate(const struct store_batch *b);

/* ---- one-key writes with a completion callback on the loop thread ----
 * json (or src) NULL deletes. cb(arg, rc) runs once committed or failed. HOOKD_ENOMEM or
 * HOOKD_EINVAL when nothing could be queued (cb is then not called). */
int store_app_write(struct store *s, const char *app_id, const char *json,
		    void (*cb)(void *arg, int rc), void *arg);
int store_endpoint_write(struct store *s, const char *app_id, const char *ep_id,
			 const char *json, void (*cb)(void *arg, int rc), void *arg);
int store_policy_write(struct store *s, const char *name, const char *src, size_t len,
		       void (*cb)(void *arg, int rc), void *arg);
/* The same, synchronously (startup only). */
int store_app_write_now(struct store *s, const char *app_id, const char *json);
int store_endpoint_write_now(struct store *s, const char *app_id, const char *ep_id,
			     const char *json);

/* ---- reads: a snapshot, its getters and walks ----
 * Data handed out (pointers, records' strings) is owned by the snapshot and valid until
 * store_read_end. A walk calls fn per entry in key order; fn returns 0 to go on,
 * STORE_WALK_STOP to stop, or a negative hookd error to stop with that error. A walk returns
 * HOOKD_OK (finished or stopped), fn's error, or a store error. A snapshot is used by one
 * thread at a time; several may be open at once, also while writes happen. */
#define STORE_WALK_STOP 1

/* HOOKD_ESTORE (logged) when no snapshot can be taken. */
int store_read_begin(struct store *s, struct store_read **out);
void store_read_end(struct store_read *rd);

/* Getters: HOOKD_OK, HOOKD_ENOTFOUND, or a store error. */
int store_read_app(struct store_read *rd, const char *app_id, const char **json, size_t *len);
int store_read_message(struct store_read *rd, const char *app_id, const char *msg_id,
		       const char **envelope, size_t *len);
/* The decoded record (HOOKD_EINVAL when it does not decode). */
int store_read_delivery(struct store_read *rd, const char *dlv_id, struct delivery_rec *out);
int store_read_body(struct store_read *rd, const char *dlv_id, const char **data, size_t *len);

/* Walks (strings passed to fn are NUL-terminated; json and data are not). */
int store_read_apps(struct store_read *rd,
		    int (*fn)(void *arg, const char *app_id, const char *json, size_t len),
		    void *arg);
int store_read_endpoints(struct store_read *rd,
			 int (*fn)(void *arg, const char *app_id, const char *ep_id,
				   const char *json, size_t len),
			 void *arg);
int store_read_policies(struct store_read *rd,
			int (*fn)(void *arg, const char *name, const char *src, size_t len),
			void *arg);
/* app_id's messages, oldest first, from the first after after_id (NULL: from the first). */
int store_read_messages(struct store_read *rd, const char *app_id, const char *after_id,
			int (*fn)(void *arg, const char *msg_id, const char *envelope, size_t len),
			void *arg);
/* The deliveries whose id starts with id_prefix (the caller's id scheme: a message's
 * deliveries share a prefix), in id order; records that do not decode are skipped. */
int store_read_deliveries(struct store_read *rd, const char *id_prefix,
			  int (*fn)(void *arg, const char *dlv_id, const struct delivery_rec *r),
			  void *arg);
/* dlv_id's attempts, in attempt order. */
int store_read_attempts(struct store_read *rd, const char *dlv_id,
			int (*fn)(void *arg, uint32_t attempt, const char *json, size_t len),
			void *arg);
/* One endpoint's entries in the due index, soonest first (ties by delivery id). */
int store_read_due(struct store_read *rd, const char *app_id, const char *ep_id,
		   int (*fn)(void *arg, int64_t at_ms, const char *dlv_id), void *arg);
/* The endpoints that have entries in the due index, once each, in key order: a seek per
 * endpoint, not a walk of the entries (startup with a large backlog stays fast). */
int store_read_due_endpoints(struct store_read *rd,
			     int (*fn)(void *arg, const char *app_id, const char *ep_id),
			     void *arg);
/* app_id's dead-letter index, oldest first. */
int store_read_dead(struct store_read *rd, const char *app_id,
		    int (*fn)(void *arg, int64_t dead_at_ms, const char *dlv_id), void *arg);
/* The fan-out markers (policy fan-outs still to do). */
int store_read_fanout_markers(struct store_read *rd,
			      int (*fn)(void *arg, const char *app_id, const char *msg_id),
			      void *arg);

/* Pending deliveries in all (entries of the due index: in flight ones included), O(1). */
int store_read_pending_total(struct store_read *rd, uint64_t *out);

/* One endpoint's deliveries per state, exact as of the snapshot (they change in the same
 * transaction as the records): O(1) to read, for status and backpressure. A delivery in
 * flight is stored, and counted, as pending. */
struct store_ep_counts {
	uint64_t pending, succeeded, dead, filtered;
};
/* All zero (and HOOKD_OK) for an endpoint with no stored delivery; else HOOKD_OK or a store
 * error. */
int store_read_endpoint_counts(struct store_read *rd, const char *app_id, const char *ep_id,
			       struct store_ep_counts *out);
/* The endpoint's deliveries in state (delivery_state; DLV_INFLIGHT means pending), in id
 * order (publish order), from the first after after_id (NULL: from the first), each with its
 * decoded record (r's strings are the snapshot's). HOOKD_EINVAL for a state that is not a
 * delivery_state. */
int store_read_endpoint_deliveries(struct store_read *rd, const char *app_id,
				   const char *ep_id, int state, const char *after_id,
				   int (*fn)(void *arg, const char *dlv_id,
					     const struct delivery_rec *r),
				   void *arg);

/* ---- the redrive transaction (store_redrive.c) ----
 * One write op over app_id's dead-letter index. For each entry select (writer thread)
 * decides whether it is asked for; a chosen delivery that is still dead and whose endpoint
 * is still stored is handed to revive (writer thread), which turns its record into the
 * pending one to store (state, schedule, times, error); it is stored with a due entry at
 * its next_at_ms. The index entry of every chosen one goes (redriven, or stale); deliveries
 * whose endpoint is gone stay dead and listed. done (loop thread) gets the outcome and the
 * ids redriven (owned by the store, valid during the call). HOOKD_ENOMEM if nothing was
 * queued (done is then not called). */
int store_redrive_submit(struct store *s, const char *app_id,
			 int (*select)(void *arg, const char *dlv_id, int64_t dead_at_ms),
			 void (*revive)(void *arg, struct delivery_rec *r),
			 void (*done)(void *arg, int rc, const char *const *ids, size_t n),
			 void *arg);

/* The same for the dead deliveries ids of app_id (copied), each looked up rather than the
 * app's dead-letter index scanned (a recover walks an endpoint's dead ones through
 * store_read_endpoint_deliveries and redrives them a page at a time). Ids that are not dead
 * any more, or whose endpoint is gone, are left as they are. */
int store_redrive_ids_submit(struct store *s, const char *app_id, const char *const *ids,
			     size_t n, void (*revive)(void *arg, struct delivery_rec *r),
			     void (*done)(void *arg, int rc, const char *const *ids, size_t n),
			     void *arg);

/* ---- the retention step (store_retention.c) ----
 * One write op with the janitor's decisions as parameters:
 * - idempotency keys expiring at or before idem_now_ms go, at most idem_max;
 * - per app, messages created before its cutoff (their id's time) whose deliveries are all
 *   settled (none pending, no fan-out marker) go with their deliveries, attempts, policy
 *   bodies and dead-letter entries;
 * - per app, settled messages created before its payload cutoff (and not before its
 *   cutoff) lose their payload but keep everything else: payload_purge rewrites the stored
 *   envelope (the caller's format), and their deliveries' policy bodies go, stored apart
 *   or inline in older records. A message payload_purge calls already purged is skipped.
 * At most msg_max messages (and at most STORE_RETENTION_MAX) are examined per step, at most
 * app_max of them per app. The walk takes the apps with messages in id order, beginning
 * after start_after_app and going round once, so that every app gets its turn whatever the
 * size of another's history. An app listed in apps (sorted by app_id, strcmp order) has
 * its own cutoffs and resumes its walk after its after id; an app that is not uses
 * cutoff_ms and payload_cutoff_ms, from its oldest message. A cutoff of 0 is none. A
 * message's deliveries are those whose id starts with delivery_prefix(msg_id) (the
 * caller's id scheme; writes at most outlen bytes with the NUL, returns the length).
 * The results say what this step did and where the next one goes on (the inputs are left
 * as they were: a step may be applied twice when its batch is replayed). */
#define STORE_RETENTION_MAX 256
/* An app or message id with its NUL (ids are at most 64 bytes: id.h). */
#define STORE_RETENTION_ID_LEN 72
struct store_retention_app {
	const char *app_id;        /* the caller's, valid until the step's done has run */
	int64_t cutoff_ms, payload_cutoff_ms;
	char after[STORE_RETENTION_ID_LEN]; /* "" = from the oldest */
	/* result: where this app's walk stopped, "" when it reached the cutoffs (the next
	 * walk begins at the oldest again); untouched when the app was not visited */
	char next_after[STORE_RETENTION_ID_LEN];
	int visited;
};
struct store_retention {
	int64_t idem_now_ms;
	size_t idem_max;
	int64_t cutoff_ms, payload_cutoff_ms; /* apps not listed in apps */
	size_t msg_max, app_max;              /* app_max 0: msg_max */
	struct store_retention_app *apps;     /* the caller's, valid until done has run */
	size_t n_apps;
	char start_after_app[STORE_RETENTION_ID_LEN]; /* "" = from the first app */
	size_t (*delivery_prefix)(const char *msg_id, char *out, size_t outlen);
	/* The envelope without its payload, malloc'd into *out (the store frees it): 1, or 0
	 * when env is already purged (nothing to write), or a negative hookd error. Writer
	 * thread. NULL: no payload is purged. */
	int (*payload_purge)(const char *env, size_t len, char **out, size_t *outlen);
	/* results */
	size_t idem_deleted, msgs_deleted, payloads_purged;
	int more; /* some app's walk stopped short of its cutoffs: go on soon */
	char next_after_app[STORE_RETENTION_ID_LEN]; /* the next step's start_after_app */
};
/* Synchronously (tests). */
int store_retention_now(struct store *s, struct store_retention *st);
/* Queued; done (loop thread) gets the outcome and the step with its counts (valid during
 * the call). HOOKD_ENOMEM if nothing was queued (done is then not called). */
int store_retention_submit(struct store *s, const struct store_retention *st,
			   void (*done)(void *arg, int rc, const struct store_retention *st),
			   void *arg);

#endif
