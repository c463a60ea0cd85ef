/* store.h - the LMDB environment and its single writer thread (group commit).
 *
 * Every write goes through store_submit(): the writer thread takes everything queued since
 * its last commit, applies it in one write transaction, commits (one fsync for the whole
 * batch), and then runs each op's done callback on the event-loop thread. So a publish is
 * answered only after it is durable, and a burst of publishes costs one fsync, not one each.
 * Reads use read-only transactions from any thread (MDB_NOTLS).
 *
 * Named databases (keys are bytes; "\0" separates string parts; times are big-endian so
 * cursor order is time order):
 *   apps        app_id                          -> app JSON
 *   endpoints   app_id \0 ep_id                  -> endpoint JSON (secrets included)
 *   messages    app_id \0 msg_id                 -> envelope body (the exact bytes sent)
 *   deliveries  dlv_id                           -> delivery record (record.h, binary)
 *   attempts    dlv_id \0 be32(attempt)           -> attempt JSON
 *   due         be64(next_at_ms) dlv_id          -> (empty) the scheduler's index
 *   dead        app_id \0 be64(dead_at_ms) dlv_id -> (empty) the dead-letter index
 *   idem        app_id \0 key                    -> be64(expires_ms) msg_id
 *   policies    name                             -> Lua source uploaded through the API
 *   bodies      dlv_id                           -> a policy's output body (written once)
 *   fanout      app_id \0 msg_id                 -> (empty) policy fan-out still to do */
#ifndef HOOKD_STORE_H
#define HOOKD_STORE_H

#include "ratelimit.h"

#include <lmdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

struct store_op;
struct store;

/* Runs on the writer thread inside the batch's write transaction. Return HOOKD_OK, or an
 * error; a store error (HOOKD_EFULL/HOOKD_ESTORE) makes the batch be retried op by op so
 * only the failing op fails. Must not write anything before deciding a non-store failure
 * (e.g. HOOKD_EDUPLICATE). */
typedef int (*store_apply_fn)(struct store *s, MDB_txn *txn, struct store_op *op);
/* Runs on the loop thread after the batch committed (or failed: op->rc says). */
typedef void (*store_done_fn)(struct store_op *op);

#define STORE_OP_PUBLISH 1u /* refused with HOOKD_EFULL when it does not fit the budget */
/* A state change of something already stored (a delivery's outcome, an endpoint disabled
 * by its answers): never dropped for lack of space. If it cannot be committed because the
 * map is full, the writer keeps it, in order, and commits it once space is free (retried
 * every STORE_WAIT_RETRY_MS, and at once after any commit that freed pages); its done
 * callback runs then. Later KEEP ops queue behind it, so a delivery's states are never
 * committed out of order. Held in memory meanwhile: bounded by the live deliveries (one
 * outcome each per attempt of their schedule). */
#define STORE_OP_KEEP 2u

/* Embed in the caller's own struct; the caller owns it until done runs. */
struct store_op {
	struct store_op *next;
	store_apply_fn apply;
	store_done_fn done; /* may be NULL */
	unsigned flags;
	int rc;
};

struct store {
	MDB_env *env;
	MDB_dbi apps, endpoints, messages, deliveries, attempts, due, dead, idem, policies, bodies,
		fanout;
	uint64_t map_size;
	size_t page_size;
	/* Space accounting, updated by the writer after each commit (others read them):
	 * used_bytes   pages in use: LMDB's last page number minus its free list (the last
	 *              page number never shrinks; freed pages are reused from the free list);
	 * reserved     room kept for the outcomes of what is stored: per pending delivery
	 *              and per policy fan-out still to do (see store.c);
	 * full         set while a publish of typical size would not fit: used + reserved
	 *              + a margin past the budget (map size minus STORE_BASE_RESERVE). */
	atomic_int full;
	_Atomic uint64_t used_bytes, reserved_bytes, budget_bytes;
	_Atomic uint64_t stat_waiting; /* KEEP ops waiting for space */
	/* statistics (writer thread writes, others read approximately) */
	_Atomic uint64_t stat_commits, stat_ops;
	_Atomic uint64_t stat_commit_ns; /* wall time spent applying and committing batches */

	pthread_t writer;
	int writer_running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_op *queue_head, *queue_tail; /* guarded by lock */
	size_t queue_n;                            /* guarded by lock */
	unsigned linger_us, linger_ops;            /* guarded by lock: see store_set_commit_delay */
	struct store_op *done_head, *done_tail;   /* guarded by lock */
	int stopping;                              /* guarded by lock */
	struct event *done_ev;
	/* writer thread only */
	uint64_t batch_cost;                       /* estimated bytes admitted since measured */
	uint64_t refused_need;                     /* cost of the last refused publish */
	struct store_op *wait_head, *wait_tail;    /* KEEP ops waiting for space, in order */
	int64_t wait_retry_ns;                     /* next retry of the waiting ops */
	uint64_t wait_used;                        /* used_bytes when they last failed */
	struct ratelimit wait_log, replay_log;     /* "waiting for space", "replayed" */
};

/* Opens (creating) the environment in directory path with the given map size. */
int store_open(const char *path, uint64_t map_size, struct store **out, char *err, size_t errlen);
/* Starts the writer thread; done callbacks run on base's loop. */
int store_start(struct store *s, struct event_base *base);
/* Queues op (any thread). */
void store_submit(struct store *s, struct store_op *op);
/* Applies op synchronously in its own write transaction (startup, before store_start). */
int store_write_now(struct store *s, struct store_op *op);
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

/* Begins a read-only transaction. HOOKD_ESTORE on failure. */
int store_read_begin(struct store *s, MDB_txn **txn);

/* Maps an LMDB return code to a hookd error (logging unexpected ones). */
int store_err(int mdb_rc, const char *what);

/* Key helpers. */
void store_be64(unsigned char out[8], uint64_t v);
uint64_t store_get_be64(const unsigned char in[8]);
void store_be32(unsigned char out[4], uint32_t v);



/* A one-key write (put, or delete when val is NULL) with a completion callback on the loop
 * thread: the common case for apps and endpoints. Key and value are copied. */
int store_kv_submit(struct store *s, MDB_dbi dbi, const void *key, size_t klen, const void *val,
		    size_t vlen, void (*cb)(void *arg, int rc), void *arg);
/* The same, synchronously (startup only). */
int store_kv_now(struct store *s, MDB_dbi dbi, const void *key, size_t klen, const void *val,
		 size_t vlen);

/* A multi-key write, applied atomically within the batch's transaction: the delivery path's
 * op (attempt + record + due index) and the publish op (message + deliveries + due index +
 * idempotency key). Items are copied in. An optional idempotency guard makes the whole op
 * fail with HOOKD_EDUPLICATE, writing nothing, when the guard key exists and has not
 * expired; dup_value then holds the stored value after its 8-byte expiry. */
struct store_batch_item {
	MDB_dbi dbi;
	int del;
	size_t klen, vlen;
	unsigned char *key, *val; /* owned */
};

struct store_batch {
	struct store_op op; /* first */
	struct store_batch_item *items;
	size_t n, cap;
	int has_guard;
	MDB_dbi guard_dbi;
	unsigned char guard_key[320];
	size_t guard_klen;
	int64_t guard_now_ms;
	char dup_value[128];
	void (*cb)(struct store_batch *b);
	void *arg;
};

struct store_batch *store_batch_new(void);
int store_batch_put(struct store_batch *b, MDB_dbi dbi, const void *key, size_t klen,
		    const void *val, size_t vlen);
int store_batch_del(struct store_batch *b, MDB_dbi dbi, const void *key, size_t klen);
/* Sets the idempotency guard (key <= 320 bytes). */
void store_batch_guard(struct store_batch *b, MDB_dbi dbi, const void *key, size_t klen,
		       int64_t now_ms);
/* Queues b; cb runs on the loop thread with b->op.rc set, then b is freed. */
void store_batch_submit(struct store *s, struct store_batch *b, unsigned flags,
			void (*cb)(struct store_batch *b), void *arg);
void store_batch_free(struct store_batch *b);
/* Applies b synchronously (startup only); b stays the caller's. */
int store_batch_write_now(struct store *s, struct store_batch *b);

#endif
