/* store.c - the LMDB environment, the group-commit writer thread, batches, space
 * accounting and statistics. */
#include "store-t.h"

#include "clock.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Space rules. A publish is admitted only if, after it, the pages in use plus the room
 * reserved for the outcomes of everything stored still fit in the budget: the map size
 * minus a base reserve. The base reserve is the working room of copy-on-write (LMDB needs
 * fresh pages even to update or delete a record, a few per B-tree level per database a
 * transaction touches) so that outcomes, redrives and the janitor's deletes can always run:
 * 10% of the map, at least 64 pages (a delete-heavy retention step of a few messages
 * dirties ~30 pages across the 13 databases; twice that for two metas' worth of churn). */
#define STORE_BASE_RESERVE_PCT 10
#define STORE_BASE_RESERVE_MIN_PAGES 64
/* The last pages of the map belong to the janitor: no batch write (outcomes, API writes)
 * may take the store past map size minus this, so that retention can always delete and
 * give space back. 48 pages: a retention step of JANITOR_MIN_SLICE messages dirties ~30
 * (measured before the endpoint index, which adds the epdlv leaves of the deleted deliveries
 * and one epcount page per endpoint: a few more; not measured again). */
#define STORE_JANITOR_RESERVE_PAGES 48
/* Per pending delivery (one entry in the due index): the attempts and the final state still
 * to be written for it. An attempt record is ~250 bytes of JSON plus the response excerpt
 * (usually a few bytes, up to 4 KiB) and its key; the record itself is rewritten in place
 * and the dead index entry is ~70 bytes. LMDB leaves pages 50-100% full, so 2 KiB covers
 * the final outcome with a long excerpt, or three attempts with short ones. Outcomes past
 * this reserve still wait in memory for space (STORE_OP_KEEP) rather than being lost. */
#define STORE_OUTCOME_RESERVE 2048
/* Per policy fan-out still to do (a marker in the fanout database): its deliveries' records
 * and first outcomes, and possibly a policy output body; 8 KiB covers a few policy
 * endpoints with small outputs. */
#define STORE_FANOUT_RESERVE 8192
/* `full` (reported by /metrics and in 507s) is set when a publish of this size would not
 * fit: a 1 KiB envelope with one delivery and its index entries, doubled for page fill. */
#define STORE_FULL_MARGIN (4096 + STORE_OUTCOME_RESERVE)
/* Per delivery a publish creates: its endpoint index entry (epdlv: the app and endpoint ids,
 * ~50 bytes in practice, the state byte and the delivery id, ~30) doubled for page fill like
 * the items. Later state changes move the entry (one key for another of the same size) and
 * rewrite the endpoint's counts in place: no growth, so nothing is added for them. */
#define STORE_EPINDEX_COST (2 * (80 + 16))
/* Waiting KEEP ops are retried this often while nothing frees space (1 s: the janitor runs
 * every few seconds while the store is full; a retry that fails costs one aborted txn). */
#define STORE_WAIT_RETRY_MS 1000
/* At most one warning this often about writes waiting for space or batches replayed. */
#define STORE_WARN_INTERVAL_MS 10000
/* Upper bound on ops per transaction: keeps one commit's latency bounded under a flood
 * (64 records per commit already reach ~170k records/s here; 4096 is far past the knee). */
#define STORE_MAX_BATCH 4096
/* The data file is kept written (with zeros) this far past LMDB's last page, in steps of
 * STORE_PREALLOC_STEP, never past storage.map_size (store_prealloc). */
#define STORE_PREALLOC_LOW (4u << 20)
#define STORE_PREALLOC_STEP (4u << 20)

int store_err(int rc, const char *what)
{
	if (rc == MDB_SUCCESS)
		return HOOKD_OK;
	if (rc == MDB_NOTFOUND)
		return HOOKD_ENOTFOUND;
	if (rc == MDB_KEYEXIST)
		return HOOKD_EEXIST;
	if (rc == MDB_MAP_FULL)
		return HOOKD_EFULL;
	log_error("store: %s: %s", what, mdb_strerror(rc));
	return HOOKD_ESTORE;
}

static void store_measure(struct store *s);

/* Indexed by enum store_db. */
static const char *const store_db_names[STORE_DB_COUNT] = {
	[STORE_DB_APPS] = "apps",	  [STORE_DB_ENDPOINTS] = "endpoints",
	[STORE_DB_MESSAGES] = "messages", [STORE_DB_DELIVERIES] = "deliveries",
	[STORE_DB_ATTEMPTS] = "attempts", [STORE_DB_DUE] = "due",
	[STORE_DB_DEAD] = "dead",	  [STORE_DB_IDEM] = "idem",
	[STORE_DB_POLICIES] = "policies", [STORE_DB_BODIES] = "bodies",
	[STORE_DB_FANOUT] = "fanout",	  [STORE_DB_EPDLV] = "epdlv",
	[STORE_DB_EPCOUNT] = "epcount",
};

int store_open(const char *path, uint64_t map_size, struct store **out, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	MDB_txn *txn = NULL;
	MDB_stat st;
	size_t moved = 0;
	MDB_dbi probe;
	int rc, epindex_absent;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return HOOKD_ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->map_size = map_size;
	s->wait_log.interval_ms = s->replay_log.interval_ms = STORE_WARN_INTERVAL_MS;

	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "data_dir %s: %s", path, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, 16)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, map_size)) != 0 ||
	    (rc = mdb_env_open(s->env, path, MDB_NOTLS | MDB_NOMETASYNC, 0600)) != 0) {
		snprintf(err, errlen, "opening store in %s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		goto fail_rc;
	/* The derived databases missing: a data directory from before them (or a new one). */
	epindex_absent = mdb_dbi_open(txn, store_db_names[STORE_DB_EPDLV], 0, &probe) != 0 ||
			 mdb_dbi_open(txn, store_db_names[STORE_DB_EPCOUNT], 0, &probe) != 0;
	for (size_t i = 0; i < STORE_DB_COUNT; i++)
		if ((rc = mdb_dbi_open(txn, store_db_names[i], MDB_CREATE, &s->dbi[i])) != 0)
			goto fail_rc;
	if (store_epindex_open(s, txn, epindex_absent) != HOOKD_OK) {
		snprintf(err, errlen, "opening store in %s: cannot create the endpoint index", path);
		goto fail;
	}
	if (store_index_migrate(s, txn, &moved) != HOOKD_OK) {
		snprintf(err, errlen, "opening store in %s: cannot rewrite the due index", path);
		goto fail;
	}
	if (moved)
		log_info("store: due index rewritten per endpoint (%zu pending deliveries)", moved);
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		goto fail_rc;
	}
	txn = NULL;
	if (store_epindex_rebuild(s) != HOOKD_OK) {
		snprintf(err, errlen, "opening store in %s: cannot rebuild the endpoint index", path);
		goto fail;
	}
	mdb_env_stat(s->env, &st);
	s->page_size = st.ms_psize;
	{
		uint64_t base = map_size / 100 * STORE_BASE_RESERVE_PCT;
		uint64_t min = (uint64_t)STORE_BASE_RESERVE_MIN_PAGES * s->page_size;
		base = base < min ? min : base;
		s->budget_bytes = map_size > base ? map_size - base : 0;
	}
	{
		struct stat fst;
		mdb_filehandle_t fd;
		if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &fst) == 0)
			s->file_size = (uint64_t)fst.st_size;
		else
			s->prealloc_off = 1;
	}
	store_measure(s);
	*out = s;
	return HOOKD_OK;

fail_rc:
	snprintf(err, errlen, "opening store in %s: %s", path, mdb_strerror(rc));
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (s->env)
		mdb_env_close(s->env);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->epd);
	free(s->epd_idx);
	free(s);
	return HOOKD_ESTORE;
}

/* Pages on LMDB's free list (database 0 holds, per freeing transaction, an array of page
 * numbers whose first element is its count). */
static uint64_t store_free_pages(MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t n = 0;
	int rc;
	if (mdb_cursor_open(txn, 0, &cur) != 0)
		return 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (v.mv_size >= sizeof(size_t))
			n += *(const size_t *)v.mv_data;
	mdb_cursor_close(cur);
	return n;
}

/* Measures the space after a commit: pages in use, the reserve for what is stored, and the
 * full flag. The free list is walked only when the high page mark alone says the budget is
 * near (it is a few records long in steady state, so this stays cheap when it is). */
static void store_measure(struct store *s)
{
	MDB_envinfo info;
	MDB_stat due, fan;
	MDB_txn *txn;
	uint64_t used, reserved = 0, budget = s->budget_bytes;
	uint64_t need = s->refused_need > STORE_FULL_MARGIN ? s->refused_need : STORE_FULL_MARGIN;

	mdb_env_info(s->env, &info);
	used = s->data_end = (uint64_t)(info.me_last_pgno + 1) * s->page_size;
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0) {
		if (mdb_stat(txn, s->dbi[STORE_DB_DUE], &due) == 0)
			reserved += (uint64_t)due.ms_entries * STORE_OUTCOME_RESERVE;
		if (mdb_stat(txn, s->dbi[STORE_DB_FANOUT], &fan) == 0)
			reserved += (uint64_t)fan.ms_entries * STORE_FANOUT_RESERVE;
		if (used + reserved + need > budget) {
			uint64_t fp = store_free_pages(txn) * s->page_size;
			used = fp < used ? used - fp : 0;
		}
		mdb_txn_abort(txn);
	}
	s->used_bytes = used;
	s->reserved_bytes = reserved;
	s->batch_cost = 0;
	s->full = used + reserved + need > budget;
}

/* A batch's cost in bytes: its items, doubled for page fill and index overhead; for a
 * publish also the outcome reserve of each delivery it creates. 0 for other ops. */
static uint64_t store_batch_cost(struct store *s, const struct store_op *op, int publish);

static int store_apply_one(struct store *s, MDB_txn *txn, struct store_op *op)
{
	int publish = (op->flags & STORE_OP_PUBLISH) != 0;
	uint64_t cost = store_batch_cost(s, op, publish);
	uint64_t hard = s->map_size - (uint64_t)STORE_JANITOR_RESERVE_PAGES * s->page_size;
	int rc;
	if (publish &&
	    s->used_bytes + s->reserved_bytes + s->batch_cost + cost > s->budget_bytes) {
		/* Full until a publish this big fits (the janitor reads it to sweep sooner). */
		if (cost > s->refused_need)
			s->refused_need = cost;
		s->full = 1;
		return HOOKD_EFULL;
	}
	if (cost && s->used_bytes + s->batch_cost + cost > hard)
		return HOOKD_EFULL;
	rc = op->apply(s, txn, op);
	if (rc == HOOKD_OK)
		s->batch_cost += cost;
	if (rc == HOOKD_OK && publish)
		s->refused_need = 0;
	return rc;
}

void store_get_space(struct store *s, struct store_space *out)
{
	out->map_bytes = s->map_size;
	out->used_bytes = s->used_bytes;
	out->reserved_bytes = s->reserved_bytes;
	out->budget_bytes = s->budget_bytes;
	out->waiting_writes = s->stat_waiting;
	out->full = s->full;
}

void store_get_stats(struct store *s, struct store_stats *out)
{
	out->commits = s->stat_commits;
	out->ops = s->stat_ops;
	out->commit_ns = s->stat_commit_ns;
	out->syncs = s->stat_syncs;
}

int store_get_counts(struct store *s, struct store_counts *out)
{
	uint64_t *fields[STORE_DB_COUNT] = {
		[STORE_DB_APPS] = &out->apps,		[STORE_DB_ENDPOINTS] = &out->endpoints,
		[STORE_DB_MESSAGES] = &out->messages,	[STORE_DB_DELIVERIES] = &out->deliveries,
		[STORE_DB_ATTEMPTS] = &out->attempts,	[STORE_DB_DUE] = &out->due,
		[STORE_DB_DEAD] = &out->dead,		[STORE_DB_IDEM] = &out->idem,
		[STORE_DB_POLICIES] = &out->policies,	[STORE_DB_BODIES] = &out->bodies,
		[STORE_DB_FANOUT] = &out->fanout,	[STORE_DB_EPDLV] = &out->epdlv,
		[STORE_DB_EPCOUNT] = &out->epcount,
	};
	MDB_txn *txn;
	MDB_stat st;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return store_err(rc, "read begin");
	for (size_t i = 0; i < STORE_DB_COUNT; i++) {
		if ((rc = mdb_stat(txn, s->dbi[i], &st)) != 0)
			break;
		*fields[i] = st.ms_entries;
	}
	mdb_txn_abort(txn);
	return store_err(rc, "stat");
}

static int store_is_store_error(int rc)
{
	return rc == HOOKD_EFULL || rc == HOOKD_ESTORE;
}

int store_write_now(struct store *s, struct store_op *op)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		return op->rc = store_err(rc, "begin");
	op->rc = store_apply_one(s, txn, op);
	if (op->rc == HOOKD_OK)
		op->rc = store_epindex_flush(s, txn);
	if (op->rc != HOOKD_OK) {
		store_epindex_forget(s);
		mdb_txn_abort(txn);
		return op->rc;
	}
	rc = mdb_txn_commit(txn);
	op->rc = store_err(rc, "commit");
	if (rc == 0)
		s->txn_commits++;
	store_measure(s);
	return op->rc;
}

/* Ops whose done callbacks are due, in order (writer thread, handed to the loop). */
struct store_oplist {
	struct store_op *head, *tail;
};

static void store_oplist_push(struct store_oplist *l, struct store_op *op)
{
	op->next = NULL;
	if (l->tail)
		l->tail->next = op;
	else
		l->head = op;
	l->tail = op;
}

static void store_wait_push(struct store *s, struct store_op *op)
{
	op->next = NULL;
	if (s->wait_tail)
		s->wait_tail->next = op;
	else
		s->wait_head = op;
	s->wait_tail = op;
	s->stat_waiting++;
}

/* A KEEP op failed for lack of space: it and every later KEEP op wait; retried later. */
static void store_wait_begin(struct store *s)
{
	s->wait_used = s->used_bytes;
	s->wait_retry_ns = clock_mono_ns() + (int64_t)STORE_WAIT_RETRY_MS * 1000000;
}

/* Replays ops one transaction each (after their batch failed as a whole), so only the
 * guilty op fails. A KEEP op that does not fit waits, and so does every KEEP op after it. */
static void store_replay(struct store *s, struct store_op *list, struct store_oplist *done)
{
	struct store_op *op, *next;
	int waiting = s->wait_head != NULL;
	for (op = list; op; op = next) {
		next = op->next;
		if ((op->flags & STORE_OP_KEEP) && waiting) {
			store_wait_push(s, op);
			continue;
		}
		store_write_now(s, op);
		if ((op->flags & STORE_OP_KEEP) && op->rc == HOOKD_EFULL) {
			store_wait_push(s, op);
			waiting = 1;
			continue;
		}
		store_oplist_push(done, op);
	}
	if (s->wait_head)
		store_wait_begin(s);
}

static void store_warn_replay(struct store *s, const char *why)
{
	uint64_t skipped;
	if (ratelimit_check(&s->replay_log, clock_mono_ns() / 1000000, &skipped))
		log_warn("store: batch commit failed (%s); retried op by op (%llu more times "
			 "since the last warning)", why, (unsigned long long)skipped);
}

/* Applies a batch in one transaction. If a store error hits, the transaction is lost for
 * everyone, so the batch is replayed one op per transaction: only the guilty op fails. */
static void store_commit_batch(struct store *s, struct store_op *batch, struct store_oplist *done)
{
	MDB_txn *txn;
	struct store_op *op, *next, **pp;
	int rc, failed = 0;

	/* While older state changes wait for space, newer ones wait behind them. */
	if (s->wait_head) {
		for (pp = &batch; (op = *pp);) {
			if (op->flags & STORE_OP_KEEP) {
				*pp = op->next;
				store_wait_push(s, op);
			} else {
				pp = &op->next;
			}
		}
		if (!batch)
			return;
	}
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0) {
		rc = store_err(rc, "begin");
		for (op = batch; op; op = next) {
			next = op->next;
			op->rc = rc;
			store_oplist_push(done, op);
		}
		return;
	}
	for (op = batch; op; op = op->next) {
		op->rc = store_apply_one(s, txn, op);
		if (store_is_store_error(op->rc) && !(op->rc == HOOKD_EFULL &&
						      (op->flags & STORE_OP_PUBLISH))) {
			failed = 1;
			break;
		}
	}
	/* The endpoint counts of the whole batch, once per endpoint (store_epindex.c); failing,
	 * the batch is replayed op by op like a failed commit. */
	if (!failed && (rc = store_epindex_flush(s, txn)) != HOOKD_OK) {
		failed = 1;
		store_warn_replay(s, hookd_strerror(rc));
	}
	if (!failed) {
		rc = mdb_txn_commit(txn);
		if (rc == 0) {
			s->txn_commits++;
			s->stat_commits++;
			store_measure(s);
			for (op = batch; op; op = next) {
				next = op->next;
				store_oplist_push(done, op);
			}
			return;
		}
		store_warn_replay(s, mdb_strerror(rc));
	} else {
		store_epindex_forget(s);
		mdb_txn_abort(txn);
	}
	store_measure(s); /* forget the aborted batch's admitted cost */
	store_replay(s, batch, done);
	s->stat_commits++;
}

/* Retries the state changes waiting for space: all in one transaction, else one by one up
 * to the first that still does not fit. */
static void store_retry_waiting(struct store *s, struct store_oplist *done)
{
	struct store_op *list = s->wait_head, *op, *next;
	uint64_t n = s->stat_waiting;
	MDB_txn *txn;
	int ok = 0;

	s->wait_head = s->wait_tail = NULL;
	s->stat_waiting = 0;
	if (mdb_txn_begin(s->env, NULL, 0, &txn) == 0) {
		ok = 1;
		for (op = list; op && ok; op = op->next)
			ok = (op->rc = store_apply_one(s, txn, op)) == HOOKD_OK;
		if (ok)
			ok = store_epindex_flush(s, txn) == HOOKD_OK;
		if (!ok) {
			store_epindex_forget(s);
			mdb_txn_abort(txn);
		} else {
			ok = mdb_txn_commit(txn) == 0;
		}
	}
	if (ok) {
		s->txn_commits++;
		s->stat_commits++;
		store_measure(s);
		for (op = list; op; op = next) {
			next = op->next;
			store_oplist_push(done, op);
		}
	} else {
		store_measure(s); /* forget the aborted attempt's admitted cost */
		store_replay(s, list, done);
	}
	if (!s->wait_head)
		log_info("store: %llu state changes that waited for space are committed",
			 (unsigned long long)n);
}

/* Keeps the data file written, with zeros, STORE_PREALLOC_LOW past LMDB's last page. A
 * commit that grows the file makes its fdatasync commit the file system's journal too (new
 * blocks, a new size); one that only overwrites blocks already written does not. At 5,000
 * publishes/s on the 2-core machine, seven alternated pairs: publish p50 lower in every one,
 * median 8.9 -> 6.1 ms (bench/README.md).
 * Runs on the writer thread between commits, under a write transaction of its own (taken
 * only to hold LMDB's writer lock: synchronous writes from other threads cannot allocate
 * pages meanwhile) and aborted. The zeros are not synced here: the next commit's sync
 * carries them, once per step. LMDB never reads past its last page, and a crash that
 * leaves zeros past it leaves a longer file, nothing else. A failed write (the disk is
 * full) turns this off until the next start. */
static void store_prealloc(struct store *s)
{
	static char zeros[1u << 18]; /* never written: in .bss, not 256 KiB of the binary */
	MDB_envinfo info;
	MDB_txn *txn;
	mdb_filehandle_t fd;
	uint64_t end, want;

	if (s->prealloc_off || s->file_size >= s->map_size ||
	    s->file_size >= s->data_end + STORE_PREALLOC_LOW) /* data_end: store_measure's */
		return;
	if (mdb_env_get_fd(s->env, &fd) != 0 || mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
		return;
	mdb_env_info(s->env, &info); /* another thread may have committed meanwhile */
	end = (uint64_t)(info.me_last_pgno + 1) * s->page_size;
	if (s->file_size < end)
		s->file_size = end;
	want = end + STORE_PREALLOC_LOW + STORE_PREALLOC_STEP;
	if (want > s->map_size)
		want = s->map_size;
	while (s->file_size < want) {
		size_t n = want - s->file_size < sizeof(zeros) ? (size_t)(want - s->file_size)
							       : sizeof(zeros);
		ssize_t w = pwrite(fd, zeros, n, (off_t)s->file_size);
		if (w <= 0) {
			log_warn("store: writing the data file ahead of use failed: %s (commits that "
				 "grow it cost more; the store works as before)",
				 w < 0 ? strerror(errno) : "nothing written");
			s->prealloc_off = 1;
			break;
		}
		s->file_size += (uint64_t)w;
	}
	mdb_txn_abort(txn);
}

static void store_warn_waiting(struct store *s)
{
	uint64_t skipped;
	if (!s->wait_head || !ratelimit_check(&s->wait_log, clock_mono_ns() / 1000000, &skipped))
		return;
	log_warn("store: %llu delivery state changes wait for space (%llu of %llu bytes in use, "
		 "%llu reserved; storage.map_size %llu): they are kept and committed once space "
		 "is freed (retention, storage.retention_days)",
		 (unsigned long long)s->stat_waiting, (unsigned long long)s->used_bytes,
		 (unsigned long long)s->budget_bytes, (unsigned long long)s->reserved_bytes,
		 (unsigned long long)s->map_size);
}

/* The CLOCK_REALTIME time ns from now, for pthread_cond_timedwait. */
static struct timespec store_deadline(int64_t ns)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += (time_t)(ns / 1000000000LL);
	t.tv_nsec += (long)(ns % 1000000000LL);
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Waits for work: queued ops, or the retry time of ops waiting for space. Lock held. */
static void store_writer_wait(struct store *s)
{
	while (!s->queue_head && !s->stopping) {
		if (!s->wait_head) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		int64_t left = s->wait_retry_ns - clock_mono_ns();
		if (left <= 0)
			return;
		struct timespec until = store_deadline(left);
		pthread_cond_timedwait(&s->cond, &s->lock, &until);
	}
}

static void store_hand_done(struct store *s, struct store_oplist *done)
{
	if (!done->head)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->done_tail)
		s->done_tail->next = done->head;
	else
		s->done_head = done->head;
	s->done_tail = done->tail;
	pthread_mutex_unlock(&s->lock);
	event_active(s->done_ev, EV_READ, 0);
}

/* Durability with one sync per commit. LMDB is opened with MDB_NOMETASYNC: a commit
 * fdatasyncs its data pages but writes its meta page (the pointer that makes the commit
 * current) without a sync of its own; the next commit's fdatasync carries it to the disk.
 * So when a commit returns, everything committed before it is durable, and it is durable
 * itself except for its meta page: after a power loss LMDB opens at the previous commit.
 * The ops of a commit are therefore answered (their done callbacks: a publish's 202) only
 * after the next commit returned, or after store_sync when nothing follows soon, which
 * costs the sync that LMDB would otherwise have paid on every commit. A kill -9 loses
 * nothing either way: the page cache survives the process.
 *
 * committed: the ops this round handled (committed or failed), in order; a round that
 * committed anything made what was unsynced before it durable. */
static void store_settle(struct store *s, struct store_oplist *committed, int did_commit,
			 struct store_oplist *answer)
{
	if (did_commit && s->unsynced_head) {
		answer->head = s->unsynced_head;
		answer->tail = s->unsynced_tail;
		s->unsynced_head = s->unsynced_tail = NULL;
	}
	if (!committed->head)
		return;
	if (s->unsynced_tail)
		s->unsynced_tail->next = committed->head;
	else
		s->unsynced_head = committed->head;
	s->unsynced_tail = committed->tail;
}

/* Makes the last commit durable (its meta page) and moves the unsynced ops to answer. */
static void store_sync(struct store *s, struct store_oplist *answer)
{
	int rc;
	if (!s->unsynced_head)
		return;
	if ((rc = mdb_env_sync(s->env, 1)) != 0)
		log_error("store: sync failed: %s (answers go out; the data is written, its last "
			  "commit may not survive a power loss)", mdb_strerror(rc));
	s->stat_syncs++;
	if (answer->tail)
		answer->tail->next = s->unsynced_head;
	else
		answer->head = s->unsynced_head;
	answer->tail = s->unsynced_tail;
	s->unsynced_head = s->unsynced_tail = NULL;
}

/* The longest wait for a next op before a commit nothing followed is synced on its own,
 * and the gap between ops counted at most (one idle minute must not weigh for long). */
#define STORE_SYNC_WAIT_NS 300000
#define STORE_GAP_CAP_NS 10000000

static void *store_writer_main(void *arg)
{
	struct store *s = arg;
	for (;;) {
		struct store_op *batch = NULL, *last;
		struct store_oplist done = {NULL, NULL}, answer = {NULL, NULL};
		int idle;
		size_t n = 0;

		pthread_mutex_lock(&s->lock);
		store_writer_wait(s);
		if (!s->queue_head && s->stopping) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		if (s->queue_head && s->linger_us && !s->stopping) {
			/* Group-commit delay: let the batch fill a little before paying an fsync. */
			struct timespec until = store_deadline((int64_t)s->linger_us * 1000);
			while (s->queue_n < s->linger_ops && !s->stopping &&
			       pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
				;
		}
		if (s->queue_head) {
			batch = s->queue_head;
			for (last = batch, n = 1; last->next && n < STORE_MAX_BATCH; last = last->next)
				n++;
			s->queue_head = last->next;
			if (!s->queue_head)
				s->queue_tail = NULL;
			s->queue_n -= n;
			last->next = NULL;
		}
		pthread_mutex_unlock(&s->lock);

		struct timespec t0, t1;
		uint64_t commits0 = s->txn_commits;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (s->wait_head &&
		    (clock_mono_ns() >= s->wait_retry_ns || s->used_bytes < s->wait_used))
			store_retry_waiting(s, &done);
		if (batch)
			store_commit_batch(s, batch, &done);
		/* That batch may have freed space (a retention step): retry at once. */
		if (batch && s->wait_head && s->used_bytes < s->wait_used)
			store_retry_waiting(s, &done);
		store_warn_waiting(s);
		/* Answered once durable: what the previous commit left unsynced now, this round's
		 * after the next commit, or at once with a sync when nothing is queued. */
		store_settle(s, &done, s->txn_commits != commits0, &answer);
		pthread_mutex_lock(&s->lock);
		idle = !s->queue_head;
		if (idle && s->unsynced_head && !s->stopping && s->gap_ns &&
		    s->gap_ns < STORE_SYNC_WAIT_NS) {
			/* Ops arrive faster than a sync takes: the next one is likely to come
			 * within the wait, and its commit then carries this one's meta page to the
			 * disk, so the sync is saved (under load, half of all syncs were these).
			 * At lower rates the wait would only add latency: none then. */
			struct timespec until = store_deadline(2 * s->gap_ns < STORE_SYNC_WAIT_NS
								       ? 2 * s->gap_ns
								       : STORE_SYNC_WAIT_NS);
			while (!s->queue_head && !s->stopping &&
			       pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
				;
			idle = !s->queue_head;
		}
		pthread_mutex_unlock(&s->lock);
		if (idle)
			store_sync(s, &answer);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s->stat_commit_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
						(t1.tv_nsec - t0.tv_nsec));
		s->stat_ops += n;
		store_hand_done(s, &answer);
		if (batch) /* after the answers: they do not wait for it */
			store_prealloc(s);
	}
	{
		struct store_oplist answer = {NULL, NULL};
		store_sync(s, &answer);
		store_hand_done(s, &answer);
	}
	if (s->wait_head) {
		/* Their deliveries are still pending on disk: sent again after the restart. */
		struct store_oplist done = {NULL, NULL};
		struct store_op *op, *next;
		log_warn("store: %llu state changes still waited for space at shutdown; their "
			 "deliveries stay pending and are sent again after a restart",
			 (unsigned long long)s->stat_waiting);
		for (op = s->wait_head; op; op = next) {
			next = op->next;
			op->rc = HOOKD_EFULL;
			store_oplist_push(&done, op);
		}
		s->wait_head = s->wait_tail = NULL;
		s->stat_waiting = 0;
		store_hand_done(s, &done);
	}
	return NULL;
}

static void store_run_done(struct store *s)
{
	struct store_op *op, *next;
	pthread_mutex_lock(&s->lock);
	op = s->done_head;
	s->done_head = s->done_tail = NULL;
	pthread_mutex_unlock(&s->lock);
	for (; op; op = next) {
		next = op->next;
		op->next = NULL;
		if (op->done)
			op->done(op);
	}
}

static void store_done_cb(evutil_socket_t fd, short what, void *arg)
{
	store_run_done(arg);
}

int store_start(struct store *s, struct event_base *base)
{
	int rc;
	/* What start-up wrote synchronously (store_write_now: declared apps and endpoints,
	 * recovered fan-outs) is made durable before anything is served (MDB_NOMETASYNC). */
	if ((rc = mdb_env_sync(s->env, 1)) != 0)
		return store_err(rc, "sync");
	s->done_ev = event_new(base, -1, 0, store_done_cb, s);
	if (!s->done_ev)
		return HOOKD_ENOMEM;
	if (pthread_create(&s->writer, NULL, store_writer_main, s) != 0) {
		event_free(s->done_ev);
		s->done_ev = NULL;
		return HOOKD_EIO;
	}
	s->writer_running = 1;
	return HOOKD_OK;
}

void store_submit(struct store *s, struct store_op *op)
{
	op->next = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->queue_tail)
		s->queue_tail->next = op;
	else
		s->queue_head = op;
	s->queue_tail = op;
	s->queue_n++;
	{
		int64_t now = clock_mono_ns(), gap = s->last_submit_ns ? now - s->last_submit_ns : 0;
		if (gap > STORE_GAP_CAP_NS)
			gap = STORE_GAP_CAP_NS;
		s->gap_ns = s->gap_ns ? (s->gap_ns * 7 + gap) / 8 : gap;
		s->last_submit_ns = now;
	}
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void store_stop(struct store *s)
{
	if (!s->writer_running)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->writer, NULL);
	s->writer_running = 0;
	store_run_done(s);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_stop(s);
	if (s->done_ev)
		event_free(s->done_ev);
	mdb_env_close(s->env);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->epd);
	free(s->epd_idx);
	free(s);
}

void store_set_commit_delay(struct store *s, unsigned delay_us, unsigned enough_ops)
{
	pthread_mutex_lock(&s->lock);
	s->linger_us = delay_us;
	s->linger_ops = enough_ops;
	pthread_mutex_unlock(&s->lock);
}

int store_read_begin(struct store *s, struct store_read **out)
{
	struct store_read *rd = malloc(sizeof(*rd));
	int rc;
	if (!rd)
		return HOOKD_ENOMEM;
	rd->s = s;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rd->txn);
	if (rc != 0) {
		free(rd);
		return store_err(rc, "read begin");
	}
	*out = rd;
	return HOOKD_OK;
}

void store_read_end(struct store_read *rd)
{
	if (!rd)
		return;
	mdb_txn_abort(rd->txn);
	free(rd);
}

struct store_batch *store_batch_new(void)
{
	return calloc(1, sizeof(struct store_batch));
}

int store_batch_add(struct store_batch *b, enum store_db db, const void *key, size_t klen,
		    const void *val, size_t vlen, int del)
{
	struct store_batch_item *it;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct store_batch_item *n = realloc(b->items, cap * sizeof(*n));
		if (!n)
			return HOOKD_ENOMEM;
		b->items = n;
		b->cap = cap;
	}
	it = &b->items[b->n];
	memset(it, 0, sizeof(*it));
	it->key = malloc(klen + vlen + 1);
	if (!it->key)
		return HOOKD_ENOMEM;
	memcpy(it->key, key, klen);
	it->val = it->key + klen;
	if (vlen)
		memcpy(it->val, val, vlen);
	it->db = db;
	it->klen = klen;
	it->vlen = vlen;
	it->del = del;
	b->n++;
	return HOOKD_OK;
}

void store_batch_set_guard(struct store_batch *b, enum store_db db, const void *key,
			   size_t klen, int64_t now_ms)
{
	if (klen > sizeof(b->guard_key))
		klen = sizeof(b->guard_key);
	b->has_guard = 1;
	b->guard_db = db;
	memcpy(b->guard_key, key, klen);
	b->guard_klen = klen;
	b->guard_now_ms = now_ms;
}

static int store_batch_apply(struct store *s, MDB_txn *txn, struct store_op *op)
{
	struct store_batch *b = (struct store_batch *)op;
	int rc;
	if (b->has_guard) {
		MDB_val k = {b->guard_klen, b->guard_key}, v;
		rc = mdb_get(txn, s->dbi[b->guard_db], &k, &v);
		if (rc == 0 && v.mv_size >= 8 &&
		    (int64_t)store_get_be64(v.mv_data) > b->guard_now_ms) {
			size_t n = v.mv_size - 8 < sizeof(b->dup_value) - 1 ? v.mv_size - 8
									     : sizeof(b->dup_value) - 1;
			memcpy(b->dup_value, (char *)v.mv_data + 8, n);
			b->dup_value[n] = 0;
			return HOOKD_EDUPLICATE;
		}
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_err(rc, "guard");
	}
	for (size_t i = 0; i < b->n; i++) {
		struct store_batch_item *it = &b->items[i];
		MDB_val k = {it->klen, it->key}, v = {it->vlen, it->val};
		if (it->db == STORE_DB_DELIVERIES) {
			/* The endpoint index follows every record write (store_epindex.c). */
			rc = it->del ? store_delivery_del(s, txn, it->key, it->klen)
				     : store_delivery_put(s, txn, it->key, it->klen, it->val, it->vlen);
			if (rc != HOOKD_OK)
				return rc;
			continue;
		}
		if (it->del) {
			rc = mdb_del(txn, s->dbi[it->db], &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		} else {
			rc = mdb_put(txn, s->dbi[it->db], &k, &v, 0);
		}
		if (rc != 0)
			return store_err(rc, "batch write");
	}
	return HOOKD_OK;
}

static uint64_t store_batch_cost(struct store *s, const struct store_op *op, int publish)
{
	const struct store_batch *b = (const struct store_batch *)op;
	uint64_t cost = 0;
	if (op->apply != store_batch_apply)
		return 0;
	for (size_t i = 0; i < b->n; i++) {
		if (b->items[i].del)
			continue; /* deletes free space (their copy-on-write is the base reserve's) */
		cost += 2 * (b->items[i].klen + b->items[i].vlen + 16);
		if (publish && b->items[i].db == STORE_DB_DELIVERIES)
			cost += STORE_OUTCOME_RESERVE + STORE_EPINDEX_COST;
	}
	return cost;
}

void store_batch_free(struct store_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->items[i].key);
	free(b->items);
	free(b);
}

static void store_batch_done(struct store_op *op)
{
	struct store_batch *b = (struct store_batch *)op;
	if (b->cb)
		b->cb(b);
	store_batch_free(b);
}

void store_batch_submit(struct store *s, struct store_batch *b, unsigned flags,
			void (*cb)(struct store_batch *b), void *arg)
{
	b->op.apply = store_batch_apply;
	b->op.done = store_batch_done;
	b->op.flags = flags;
	b->cb = cb;
	b->arg = arg;
	store_submit(s, &b->op);
}

int store_batch_write_now(struct store *s, struct store_batch *b, unsigned flags)
{
	b->op.apply = store_batch_apply;
	b->op.done = NULL;
	b->op.flags = flags;
	return store_write_now(s, &b->op);
}

int store_batch_rc(const struct store_batch *b)
{
	return b->op.rc;
}

void *store_batch_arg(const struct store_batch *b)
{
	return b->arg;
}

size_t store_batch_count(const struct store_batch *b)
{
	return b->n;
}
