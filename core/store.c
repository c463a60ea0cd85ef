/* store.c - LMDB environment and the group-commit writer thread. */
#include "store.h"

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

/* Publishes are refused past 90% of the map: the remaining 10% keeps room for the state
 * changes (attempts, retries, dead letters) of what is already accepted, since LMDB's
 * copy-on-write needs fresh pages even to update a record in place. */
#define STORE_HIGH_WATER_PCT 90
/* Upper bound on ops per transaction: keeps one commit's latency bounded under a flood
 * (64 records per commit already reach ~170k records/s here; 4096 is far past the knee). */
#define STORE_MAX_BATCH 4096

void store_be64(unsigned char out[8], uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char)(v >> (56 - 8 * i));
}

uint64_t store_get_be64(const unsigned char in[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | in[i];
	return v;
}

void store_be32(unsigned char out[4], uint32_t v)
{
	for (int i = 0; i < 4; i++)
		out[i] = (unsigned char)(v >> (24 - 8 * i));
}

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

int store_open(const char *path, uint64_t map_size, struct store **out, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	MDB_txn *txn = NULL;
	MDB_envinfo info;
	MDB_stat st;
	int rc;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return HOOKD_ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->map_size = map_size;

	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "data_dir %s: %s", path, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, 16)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, map_size)) != 0 ||
	    (rc = mdb_env_open(s->env, path, MDB_NOTLS, 0600)) != 0) {
		snprintf(err, errlen, "opening store in %s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		goto fail_rc;
	struct {
		const char *name;
		MDB_dbi *dbi;
	} dbs[] = {{"apps", &s->apps},         {"endpoints", &s->endpoints},
		   {"messages", &s->messages}, {"deliveries", &s->deliveries},
		   {"attempts", &s->attempts}, {"due", &s->due},
		   {"dead", &s->dead},         {"idem", &s->idem},
		   {"policies", &s->policies}, {"bodies", &s->bodies},
		   {"fanout", &s->fanout}};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++)
		if ((rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi)) != 0)
			goto fail_rc;
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		goto fail_rc;
	}
	txn = NULL;
	mdb_env_stat(s->env, &st);
	mdb_env_info(s->env, &info);
	s->page_size = st.ms_psize;
	s->full = (uint64_t)(info.me_last_pgno + 1) * s->page_size * 100 >
		  map_size * STORE_HIGH_WATER_PCT;
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
	free(s);
	return HOOKD_ESTORE;
}

static int store_apply_one(struct store *s, MDB_txn *txn, struct store_op *op)
{
	if ((op->flags & STORE_OP_PUBLISH) && s->full)
		return HOOKD_EFULL;
	return op->apply(s, txn, op);
}

static int store_is_store_error(int rc)
{
	return rc == HOOKD_EFULL || rc == HOOKD_ESTORE;
}

static void store_update_full(struct store *s)
{
	MDB_envinfo info;
	mdb_env_info(s->env, &info);
	s->full = (uint64_t)(info.me_last_pgno + 1) * s->page_size * 100 >
		  s->map_size * STORE_HIGH_WATER_PCT;
}

int store_write_now(struct store *s, struct store_op *op)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		return op->rc = store_err(rc, "begin");
	op->rc = store_apply_one(s, txn, op);
	if (op->rc != HOOKD_OK) {
		mdb_txn_abort(txn);
		return op->rc;
	}
	rc = mdb_txn_commit(txn);
	op->rc = store_err(rc, "commit");
	store_update_full(s);
	return op->rc;
}

/* Applies a batch in one transaction. If a store error hits, the transaction is lost for
 * everyone, so the batch is replayed one op per transaction: only the guilty op fails. */
static void store_commit_batch(struct store *s, struct store_op *batch)
{
	MDB_txn *txn;
	struct store_op *op;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	int failed = 0;

	if (rc != 0) {
		rc = store_err(rc, "begin");
		for (op = batch; op; op = op->next)
			op->rc = rc;
		return;
	}
	for (op = batch; op; op = op->next) {
		op->rc = store_apply_one(s, txn, op);
		if (store_is_store_error(op->rc) && !(op->rc == HOOKD_EFULL && s->full &&
						      (op->flags & STORE_OP_PUBLISH))) {
			failed = 1;
			break;
		}
	}
	if (!failed) {
		rc = mdb_txn_commit(txn);
		if (rc == 0) {
			s->stat_commits++;
			store_update_full(s);
			return;
		}
		log_warn("store: batch commit failed (%s); retrying op by op", mdb_strerror(rc));
	} else {
		mdb_txn_abort(txn);
	}
	for (op = batch; op; op = op->next)
		store_write_now(s, op);
	s->stat_commits++;
}

static void *store_writer_main(void *arg)
{
	struct store *s = arg;
	for (;;) {
		struct store_op *batch, *last;
		size_t n = 0;

		pthread_mutex_lock(&s->lock);
		while (!s->queue_head && !s->stopping)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!s->queue_head && s->stopping) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		if (s->linger_us && !s->stopping) {
			/* Group-commit delay: let the batch fill a little before paying an fsync. */
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += (long)s->linger_us * 1000;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (s->queue_n < s->linger_ops && !s->stopping &&
			       pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
				;
		}
		batch = s->queue_head;
		for (last = batch, n = 1; last->next && n < STORE_MAX_BATCH; last = last->next)
			n++;
		s->queue_head = last->next;
		if (!s->queue_head)
			s->queue_tail = NULL;
		s->queue_n -= n;
		last->next = NULL;
		pthread_mutex_unlock(&s->lock);

		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		store_commit_batch(s, batch);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s->stat_commit_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
						(t1.tv_nsec - t0.tv_nsec));
		s->stat_ops += n;

		pthread_mutex_lock(&s->lock);
		if (s->done_tail)
			s->done_tail->next = batch;
		else
			s->done_head = batch;
		s->done_tail = last;
		pthread_mutex_unlock(&s->lock);
		event_active(s->done_ev, EV_READ, 0);
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
	free(s);
}

void store_set_commit_delay(struct store *s, unsigned delay_us, unsigned enough_ops)
{
	pthread_mutex_lock(&s->lock);
	s->linger_us = delay_us;
	s->linger_ops = enough_ops;
	pthread_mutex_unlock(&s->lock);
}

int store_read_begin(struct store *s, MDB_txn **txn)
{
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	return store_err(rc, "read begin");
}

struct store_batch *store_batch_new(void)
{
	return calloc(1, sizeof(struct store_batch));
}

static int store_batch_add(struct store_batch *b, MDB_dbi dbi, const void *key, size_t klen,
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
	it->dbi = dbi;
	it->klen = klen;
	it->vlen = vlen;
	it->del = del;
	b->n++;
	return HOOKD_OK;
}

int store_batch_put(struct store_batch *b, MDB_dbi dbi, const void *key, size_t klen,
		    const void *val, size_t vlen)
{
	return store_batch_add(b, dbi, key, klen, val, vlen, 0);
}

int store_batch_del(struct store_batch *b, MDB_dbi dbi, const void *key, size_t klen)
{
	return store_batch_add(b, dbi, key, klen, NULL, 0, 1);
}

void store_batch_guard(struct store_batch *b, MDB_dbi dbi, const void *key, size_t klen,
		       int64_t now_ms)
{
	if (klen > sizeof(b->guard_key))
		klen = sizeof(b->guard_key);
	b->has_guard = 1;
	b->guard_dbi = dbi;
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
		rc = mdb_get(txn, b->guard_dbi, &k, &v);
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
		if (it->del) {
			rc = mdb_del(txn, it->dbi, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		} else {
			rc = mdb_put(txn, it->dbi, &k, &v, 0);
		}
		if (rc != 0)
			return store_err(rc, "batch write");
	}
	return HOOKD_OK;
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

int store_batch_write_now(struct store *s, struct store_batch *b)
{
	b->op.apply = store_batch_apply;
	b->op.done = NULL;
	return store_write_now(s, &b->op);
}

/* The one-key write is a one-item batch: one write mechanism, one place that commits. */
struct store_kv_cb {
	void (*cb)(void *arg, int rc);
	void *arg;
};

static void store_kv_done(struct store_batch *b)
{
	struct store_kv_cb *k = b->arg;
	if (k->cb)
		k->cb(k->arg, b->op.rc);
	free(k);
}

static struct store_batch *store_kv_batch(MDB_dbi dbi, const void *key, size_t klen,
					  const void *val, size_t vlen)
{
	struct store_batch *b = store_batch_new();
	int rc;
	if (!b)
		return NULL;
	rc = val ? store_batch_put(b, dbi, key, klen, val, vlen) : store_batch_del(b, dbi, key, klen);
	if (rc != HOOKD_OK) {
		store_batch_free(b);
		return NULL;
	}
	return b;
}

int store_kv_submit(struct store *s, MDB_dbi dbi, const void *key, size_t klen, const void *val,
		    size_t vlen, void (*cb)(void *arg, int rc), void *arg)
{
	struct store_batch *b = store_kv_batch(dbi, key, klen, val, vlen);
	struct store_kv_cb *k = malloc(sizeof(*k));
	if (!b || !k) {
		store_batch_free(b);
		free(k);
		return HOOKD_ENOMEM;
	}
	k->cb = cb;
	k->arg = arg;
	store_batch_submit(s, b, 0, store_kv_done, k);
	return HOOKD_OK;
}

int store_kv_now(struct store *s, MDB_dbi dbi, const void *key, size_t klen, const void *val,
		 size_t vlen)
{
	struct store_batch *b = store_kv_batch(dbi, key, klen, val, vlen);
	int rc;
	if (!b)
		return HOOKD_ENOMEM;
	rc = store_batch_write_now(s, b);
	store_batch_free(b);
	return rc;
}
