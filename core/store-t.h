/* store-t.h - the store's private header, shared by the store_*.c files and nothing else:
 * the struct behind the opaque handles, the named databases, the op the writer applies, the
 * key layouts (store.h lists them) and the one prefix scan. The only header besides the
 * store's own files that may include <lmdb.h> (scripts/lint.sh checks). */
#ifndef HOOKD_STORE_T_H
#define HOOKD_STORE_T_H

#include "ratelimit.h"
#include "store.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The named databases, in the order store_open opens them (store.h describes each). */
enum store_db {
	STORE_DB_APPS,
	STORE_DB_ENDPOINTS,
	STORE_DB_MESSAGES,
	STORE_DB_DELIVERIES,
	STORE_DB_ATTEMPTS,
	STORE_DB_DUE,
	STORE_DB_DEAD,
	STORE_DB_IDEM,
	STORE_DB_POLICIES,
	STORE_DB_BODIES,
	STORE_DB_FANOUT,
	STORE_DB_EPDLV,   /* derived from deliveries (store_epindex.c) */
	STORE_DB_EPCOUNT, /* derived from deliveries (store_epindex.c) */
	STORE_DB_COUNT
};

struct store_op;
struct store_epdelta;

/* Runs on the writer thread inside the batch's write transaction. Return HOOKD_OK, or an
 * error; a store error (HOOKD_EFULL/HOOKD_ESTORE) makes the batch be retried op by op so
 * only the failing op fails. Must not write anything before deciding a non-store failure
 * (e.g. HOOKD_EDUPLICATE). */
typedef int (*store_apply_fn)(struct store *s, MDB_txn *txn, struct store_op *op);
/* Runs on the loop thread after the batch committed (or failed: op->rc says). */
typedef void (*store_done_fn)(struct store_op *op);

/* Embedded first in each kind of op (batch, redrive, retention step); owned by whoever
 * queued it until done runs. */
struct store_op {
	struct store_op *next;
	store_apply_fn apply;
	store_done_fn done; /* may be NULL */
	unsigned flags;     /* STORE_OP_* */
	int rc;
};

struct store {
	MDB_env *env;
	MDB_dbi dbi[STORE_DB_COUNT];
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
	_Atomic uint64_t stat_syncs; /* forced syncs of a commit nothing followed (see store.c) */
	_Atomic uint64_t stat_commit_ns; /* wall time spent applying and committing batches */

	pthread_t writer;
	int writer_running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_op *queue_head, *queue_tail; /* guarded by lock */
	size_t queue_n;                            /* guarded by lock */
	unsigned linger_us, linger_ops;            /* guarded by lock: see store_set_commit_delay */
	/* guarded by lock: when the last op was queued, and the mean gap between ops
	 * (exponentially weighted, 1/8 per op), which decides whether a commit that nothing
	 * followed waits for the next op rather than paying a sync of its own. */
	int64_t last_submit_ns, gap_ns;
	struct store_op *done_head, *done_tail;   /* guarded by lock */
	int stopping;                              /* guarded by lock */
	struct event *done_ev;
	/* writer thread only */
	uint64_t batch_cost;                       /* estimated bytes admitted since measured */
	uint64_t refused_need;                     /* cost of the last refused publish */
	struct store_op *wait_head, *wait_tail;    /* KEEP ops waiting for space, in order */
	/* Committed, answered only once durable: LMDB is opened with MDB_NOMETASYNC, so a
	 * commit's meta page reaches the disk with the next commit's sync (or store_sync). */
	struct store_op *unsynced_head, *unsynced_tail;
	uint64_t txn_commits;                      /* successful mdb_txn_commit calls */
	int64_t wait_retry_ns;                     /* next retry of the waiting ops */
	uint64_t wait_used;                        /* used_bytes when they last failed */
	uint64_t file_size;                        /* of the data file, as written (store_prealloc) */
	_Atomic uint64_t data_end;                 /* LMDB's last page's end, at the last measure */
	int prealloc_off;                          /* a write ahead failed: not tried again */
	struct ratelimit wait_log, replay_log;     /* "waiting for space", "replayed" */
	/* the endpoint count changes of the open write transaction (store_epindex.c): whoever
	 * runs write transactions (the writer; before it starts, store_write_now's caller) */
	struct store_epdelta *epd;
	size_t epd_n, epd_cap, epd_slots;
	uint32_t *epd_idx;                         /* epd_slots slots: entry index + 1, 0 free */
};

/* A read-only snapshot (MDB_NOTLS: any thread, several per thread). */
struct store_read {
	struct store *s;
	MDB_txn *txn;
};

/* LMDB's default largest key (MDB_MAXKEYSIZE with the default build). */
#define STORE_KEY_MAX 511

struct store_batch_item {
	enum store_db db;
	int del;
	size_t klen, vlen;
	unsigned char *key, *val; /* owned (one allocation, key first) */
};

/* An optional idempotency guard makes the whole op fail with HOOKD_EDUPLICATE, writing
 * nothing, when the guard key exists and has not expired; dup_value then holds the stored
 * value after its 8-byte expiry. */
struct store_batch {
	struct store_op op; /* first */
	struct store_batch_item *items;
	size_t n, cap;
	int has_guard;
	enum store_db guard_db;
	unsigned char guard_key[STORE_KEY_MAX];
	size_t guard_klen;
	int64_t guard_now_ms;
	char dup_value[128];
	void (*cb)(struct store_batch *b);
	void *arg;
};

/* ---- the writer (store.c) ---- */

/* Queues op (any thread). */
void store_submit(struct store *s, struct store_op *op);
/* Applies op synchronously in its own write transaction (startup, before store_start). */
int store_write_now(struct store *s, struct store_op *op);
/* Maps an LMDB return code to a hookd error (logging unexpected ones, naming what). */
int store_err(int mdb_rc, const char *what);
/* Adds one write (del: a delete, val ignored) to b; key and value are copied. */
int store_batch_add(struct store_batch *b, enum store_db db, const void *key, size_t klen,
		    const void *val, size_t vlen, int del);
/* Sets b's idempotency guard. */
void store_batch_set_guard(struct store_batch *b, enum store_db db, const void *key,
			   size_t klen, int64_t now_ms);

/* ---- key layouts (store_key.c) ----
 * Builders return HOOKD_OK, or HOOKD_EINVAL when the key would exceed STORE_KEY_MAX. */
struct store_key {
	size_t len;
	unsigned char b[STORE_KEY_MAX];
};

/* epcount values: one be64 per delivery_state, indexed by it (store_epindex.c). */
#define STORE_EPCOUNT_SLOTS 5
/* One endpoint's count changes in the open write transaction (store_epindex.c). */
struct store_epdelta {
	struct store_key ck;
	int64_t d[STORE_EPCOUNT_SLOTS];
};

void store_be64(unsigned char out[8], uint64_t v);
uint64_t store_get_be64(const unsigned char in[8]);
void store_be32(unsigned char out[4], uint32_t v);
uint32_t store_get_be32(const unsigned char in[4]);

/* s: apps, policies, deliveries, bodies. */
int store_key_str(struct store_key *k, const char *s);
/* a \0 b: endpoints, messages, idem, fanout; b NULL: the prefix a \0 of a's keys. */
int store_key_pair(struct store_key *k, const char *a, const char *b);
/* dlv_id \0 be32(attempt): attempts; with_attempt 0: the prefix dlv_id \0. */
int store_key_attempt(struct store_key *k, const char *dlv_id, int with_attempt,
		      uint32_t attempt);
/* app_id \0 ep_id \0 be64(at_ms) dlv_id: due; dlv_id NULL: the prefix app_id \0 ep_id \0 of
 * one endpoint's entries. */
int store_key_due(struct store_key *k, const char *app_id, const char *ep_id, int64_t at_ms,
		  const char *dlv_id);
/* Rewrites due entries of the layout before per-endpoint keys (be64(at_ms) dlv_id, from
 * hookd before issue 9) into the current one, in txn (store_open). */
int store_index_migrate(struct store *s, MDB_txn *txn, size_t *moved);
/* app_id \0 ep_id \0 u8(state) dlv_id (idlen bytes): epdlv; dlv_id NULL: the prefix of one
 * endpoint's deliveries in that state. */
int store_key_epdlv(struct store_key *k, const char *app_id, const char *ep_id, int state,
		    const void *dlv_id, size_t idlen);
/* app_id \0 be64(dead_at_ms) dlv_id: dead. */
int store_key_dead(struct store_key *k, const char *app_id, int64_t dead_at_ms,
		   const char *dlv_id);

/* Copies the klen bytes of key into out, NUL-terminated. HOOKD_EINVAL if klen > outlen - 1. */
int store_key_text(const void *key, size_t klen, char *out, size_t outlen);
/* Splits a \0 b (copied into out, STORE_KEY_MAX + 1 bytes): *a = out, *b after the first
 * NUL. HOOKD_EINVAL when the key has no NUL or is too long. */
int store_key_split(const void *key, size_t klen, char out[STORE_KEY_MAX + 1], const char **a,
		    const char **b);

/* ---- the endpoint index (store_epindex.c) ----
 * Every write of a delivery record goes through these two, whoever makes it (a batch, the
 * redrive, retention), so epdlv and epcount always agree with the records in the same
 * transaction. key/klen is the delivery id (the deliveries database's key). */
/* Writes the encoded record val, moving its epdlv entry and counts when its state changed. */
int store_delivery_put(struct store *s, MDB_txn *txn, const void *key, size_t klen,
		       const void *val, size_t vlen);
/* Deletes the record (absent: not an error), with its epdlv entry and count. */
int store_delivery_del(struct store *s, MDB_txn *txn, const void *key, size_t klen);
/* store_open, in its first transaction: absent is whether epdlv or epcount was missing (a
 * data directory from before them). Then they are emptied, and if deliveries exist a rebuild
 * is marked, which store_epindex_rebuild does (and resumes, after a crash) in transactions
 * of its own. */
int store_epindex_open(struct store *s, MDB_txn *txn, int absent);
/* Writes the count changes summed while txn's ops applied; called just before every commit
 * of a write transaction (a failure is the commit's: abort, and replay op by op). Forget
 * drops them, after an abort. */
int store_epindex_flush(struct store *s, MDB_txn *txn);
void store_epindex_forget(struct store *s);
int store_epindex_rebuild(struct store *s);

/* ---- the one prefix scan (store_key.c) ----
 * What a scan callback returns: go on, stop, or delete the entry it was shown and go on to
 * the next one; a negative hookd error stops the scan, which returns it. */
#define STORE_SCAN_NEXT 0
#define STORE_SCAN_STOP STORE_WALK_STOP
#define STORE_SCAN_DEL 2
typedef int (*store_scan_fn)(void *arg, const MDB_val *k, const MDB_val *v);
/* Walks db in key order from the first key >= from (flen bytes; flen 0: from the first key)
 * while keys start with the first plen bytes of from (plen 0: to the end). Returns HOOKD_OK,
 * fn's error, or a store error (cursor, read or delete). */
int store_scan(struct store *s, MDB_txn *txn, enum store_db db, const void *from, size_t flen,
	       size_t plen, store_scan_fn fn, void *arg);
/* The same over a built key as both start and prefix. */
int store_scan_prefix(struct store *s, MDB_txn *txn, enum store_db db,
		      const struct store_key *prefix, store_scan_fn fn, void *arg);
/* One value: HOOKD_OK, HOOKD_ENOTFOUND, or a store error. */
int store_get(struct store *s, MDB_txn *txn, enum store_db db, const struct store_key *k,
	      MDB_val *v);
/* Deletes one key; an absent key is not an error. */
int store_del(struct store *s, MDB_txn *txn, enum store_db db, const struct store_key *k);
/* Writes one key. */
int store_put(struct store *s, MDB_txn *txn, enum store_db db, const struct store_key *k,
	      const void *val, size_t vlen);

#endif
