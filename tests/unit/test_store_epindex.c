/* test_store_epindex.c - the store's per-endpoint delivery index and counts (epdlv,
 * epcount): kept through publish, outcomes, dead letters, redrive and retention; rebuilt
 * when a data directory from before them is opened (also after an interrupted rebuild);
 * listed by state in pages. */
#include "check.h"
#include "store_fixture.h"

#include "delivery.h"
#include "err.h"
#include "id.h"
#include "janitor.h"
#include "record.h"
#include "store.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct event_base *base;

static struct store_ep_counts ep_counts(struct store *s, const char *app, const char *ep)
{
	struct store_ep_counts c = {99, 99, 99, 99};
	struct store_read *rd;
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	CHECK(store_read_endpoint_counts(rd, app, ep, &c) == HOOKD_OK);
	store_read_end(rd);
	return c;
}

#define CHECK_COUNTS(s, app, ep, p, ok, d, f)                                              \
	do {                                                                               \
		struct store_ep_counts c_ = ep_counts(s, app, ep);                         \
		CHECK(c_.pending == (p) && c_.succeeded == (ok) && c_.dead == (d) &&       \
		      c_.filtered == (f));                                                 \
		if (c_.pending != (p) || c_.succeeded != (ok) || c_.dead != (d) ||          \
		    c_.filtered != (f))                                                    \
			fprintf(stderr, "  counts %s/%s: %llu %llu %llu %llu\n", app, ep,  \
				(unsigned long long)c_.pending,                            \
				(unsigned long long)c_.succeeded,                          \
				(unsigned long long)c_.dead,                               \
				(unsigned long long)c_.filtered);                          \
	} while (0)

/* Writes msg's delivery n to ep in state (a record as dispatch_persist makes one). */
static void put(struct store *s, const char *msg, size_t n, const char *ep, int state,
		int attempts)
{
	struct delivery_rec r = {0};
	struct store_batch *b = store_batch_new();
	char id[DELIVERY_ID_MAX];
	delivery_id_make(msg, DELIVERY_PLAIN, n, id);
	r.state = state;
	r.attempts = (uint32_t)attempts;
	r.app_id = "appX";
	r.msg_id = msg;
	r.ep_id = ep;
	r.last_error = state == DLV_DEAD ? "HTTP 500" : "";
	r.headers = "";
	r.body = "";
	r.next_at_ms = 5000;
	r.updated_ms = 777;
	CHECK(store_batch_put_delivery(b, id, &r) == HOOKD_OK);
	if (state == DLV_DEAD)
		CHECK(store_batch_put_dead(b, "appX", 777, id) == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
}

static void add_message(struct store *s, const char *msg)
{
	struct store_batch *b = store_batch_new();
	CHECK(store_publish_add_message(b, "appX", msg, "{}", 2) == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
}

/* A page of a listing: "id:state" joined by commas, after after_id, at most limit. */
struct page {
	char out[1024];
	int limit, n;
};

static int page_one(void *arg, const char *dlv_id, const struct delivery_rec *r)
{
	struct page *p = arg;
	size_t len = strlen(p->out);
	if (p->n == p->limit)
		return STORE_WALK_STOP;
	/* the id's number after the last '_': short to compare */
	snprintf(p->out + len, sizeof(p->out) - len, "%s%s:%d", p->n ? "," : "",
		 strrchr(dlv_id, '_') + 1, r->state);
	p->n++;
	return 0;
}

static const char *list(struct store *s, const char *ep, int state, const char *after,
			int limit, struct page *p)
{
	struct store_read *rd;
	memset(p, 0, sizeof(*p));
	p->limit = limit;
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	CHECK(store_read_endpoint_deliveries(rd, "appX", ep, state, after, page_one, p) ==
	      HOOKD_OK);
	store_read_end(rd);
	return p->out;
}

static int redrive_rc = 1;

static void redrive_done(void *arg, int rc, const char *const *ids, size_t n)
{
	redrive_rc = rc;
	event_base_loopbreak(base);
}

/* Counts and listings follow every kind of write: a publish (new pending, a filtered one),
 * a retry in the same state, outcomes, dead letters, a redrive (through its own op), and
 * retention deleting settled messages. */
static void test_counts_follow_writes(void)
{
	char dir[] = "/tmp/hookd-test-epidx-XXXXXX", err[256];
	char m1[ID_MAX], m2[ID_MAX], m3[ID_MAX];
	struct store *s;
	struct store_counts sc;
	struct page p;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	CHECK_COUNTS(s, "appX", "e1", 0, 0, 0, 0); /* none: zeros */
	{
		struct store_batch *b = store_batch_new();
		CHECK(store_batch_put_endpoint(b, "appX", "e1", "{}") == HOOKD_OK);
		CHECK(store_batch_put_endpoint(b, "appX", "e2", "{}") == HOOKD_OK);
		CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
		store_batch_free(b);
	}
	id_make("msg_", 1000000, m1);
	id_make("msg_", 1000001, m2);
	id_make("msg_", 9000000, m3);
	add_message(s, m1);
	add_message(s, m2);
	add_message(s, m3);
	/* publish: m1 to e1 and e2, m2 to e1 (and filtered for e2), m3 to e1 */
	put(s, m1, 0, "e1", DLV_PENDING, 0);
	put(s, m1, 1, "e2", DLV_PENDING, 0);
	put(s, m2, 0, "e1", DLV_PENDING, 0);
	put(s, m2, 1, "e2", DLV_FILTERED, 0);
	put(s, m3, 0, "e1", DLV_PENDING, 0);
	CHECK_COUNTS(s, "appX", "e1", 3, 0, 0, 0);
	CHECK_COUNTS(s, "appX", "e2", 1, 0, 0, 1);
	CHECK_COUNTS(s, "appX", "e", 0, 0, 0, 0); /* a prefix of an id is not that endpoint */
	CHECK_COUNTS(s, "app", "e1", 0, 0, 0, 0);
	/* a retry: rewritten pending, nothing moves; in flight is stored as pending */
	put(s, m1, 0, "e1", DLV_PENDING, 1);
	put(s, m2, 0, "e1", DLV_INFLIGHT, 1);
	CHECK_COUNTS(s, "appX", "e1", 3, 0, 0, 0);
	CHECK_STR(list(s, "e1", DLV_PENDING, NULL, 10, &p), "0:0,0:1,0:0");
	CHECK_STR(list(s, "e1", DLV_INFLIGHT, NULL, 10, &p), "0:0,0:1,0:0");
	/* outcomes: m1 succeeds at e1, dies at e2; m2 dies at e1 */
	put(s, m1, 0, "e1", DLV_SUCCEEDED, 2);
	put(s, m1, 1, "e2", DLV_DEAD, 5);
	put(s, m2, 0, "e1", DLV_DEAD, 5);
	CHECK_COUNTS(s, "appX", "e1", 1, 1, 1, 0);
	CHECK_COUNTS(s, "appX", "e2", 0, 0, 1, 1);
	CHECK_STR(list(s, "e1", DLV_DEAD, NULL, 10, &p), "0:4");
	CHECK_STR(list(s, "e1", DLV_SUCCEEDED, NULL, 10, &p), "0:2");
	CHECK_STR(list(s, "e2", DLV_FILTERED, NULL, 10, &p), "1:3");
	CHECK(store_get_counts(s, &sc) == HOOKD_OK && sc.epdlv == 5 && sc.epcount == 2);

	/* redrive: both dead ones back to pending, in the redrive's own transaction */
	CHECK(store_start(s, base) == HOOKD_OK);
	CHECK(store_redrive_submit(s, "appX", select_all, revive_now, redrive_done, NULL) ==
	      HOOKD_OK);
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	CHECK(redrive_rc == HOOKD_OK);
	store_stop(s);
	CHECK_COUNTS(s, "appX", "e1", 2, 1, 0, 0);
	CHECK_COUNTS(s, "appX", "e2", 1, 0, 0, 1);
	CHECK_STR(list(s, "e1", DLV_DEAD, NULL, 10, &p), "");
	CHECK_STR(list(s, "e1", DLV_PENDING, NULL, 10, &p), "0:0,0:0");

	/* retention: m1 settles (succeeded at e1, dead again at e2) and goes, as does m2 once
	 * its delivery to e1 succeeds (its filtered one at e2 with it); m3 is young. */
	put(s, m1, 1, "e2", DLV_DEAD, 6);
	put(s, m2, 0, "e1", DLV_SUCCEEDED, 6);
	CHECK_COUNTS(s, "appX", "e1", 1, 2, 0, 0);
	CHECK_COUNTS(s, "appX", "e2", 0, 0, 1, 1);
	CHECK(janitor_prune_now(s, 5000000, 100) == 2);
	CHECK_COUNTS(s, "appX", "e1", 1, 0, 0, 0);
	CHECK_COUNTS(s, "appX", "e2", 0, 0, 0, 0);
	CHECK(store_get_counts(s, &sc) == HOOKD_OK && sc.deliveries == 1 && sc.epdlv == 1 &&
	      sc.epcount == 1); /* e2 has no delivery left: no counts key */
	CHECK_STR(list(s, "e1", DLV_PENDING, NULL, 10, &p), "0:0");
	/* an unknown state is refused */
	{
		struct store_read *rd;
		CHECK(store_read_begin(s, &rd) == HOOKD_OK);
		CHECK(store_read_endpoint_deliveries(rd, "appX", "e1", 9, NULL, page_one, &p) ==
		      HOOKD_EINVAL);
		store_read_end(rd);
	}
	/* and the counts are what is on disk: the same after a reopen */
	store_close(s);
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	CHECK_COUNTS(s, "appX", "e1", 1, 0, 0, 0);
	store_close(s);
	rm_dir(dir);
}

/* Pages in id order (publish order): after the last id of a page, the next page. */
static void test_pages(void)
{
	char dir[] = "/tmp/hookd-test-eppage-XXXXXX", err[256], m[ID_MAX];
	char after[DELIVERY_ID_MAX];
	struct store *s;
	struct page p;
	const char *ids[7];
	static char idbuf[7][DELIVERY_ID_MAX];

	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	for (int i = 0; i < 7; i++) {
		id_make("msg_", 2000000 + i, m);
		delivery_id_make(m, DELIVERY_PLAIN, 0, idbuf[i]);
		ids[i] = idbuf[i];
		put(s, m, 0, "e1", i == 3 ? DLV_SUCCEEDED : DLV_PENDING, 0);
	}
	/* six pending: pages of 2 are ids 0 1, 2 4, 5 6 (3 succeeded) */
	list(s, "e1", DLV_PENDING, NULL, 2, &p);
	CHECK(p.n == 2);
	{
		/* the walk gives ids; compare with the ones made */
		char want[256];
		snprintf(want, sizeof(want), "%s:0,%s:0", strrchr(ids[0], '_') + 1,
			 strrchr(ids[1], '_') + 1);
		CHECK_STR(p.out, want);
	}
	snprintf(after, sizeof(after), "%s", ids[1]);
	list(s, "e1", DLV_PENDING, after, 2, &p);
	CHECK(p.n == 2);
	snprintf(after, sizeof(after), "%s", ids[4]);
	list(s, "e1", DLV_PENDING, after, 2, &p);
	CHECK(p.n == 2);
	snprintf(after, sizeof(after), "%s", ids[6]);
	list(s, "e1", DLV_PENDING, after, 2, &p);
	CHECK(p.n == 0);
	/* after an id that is not in the list (the succeeded one): from the next one */
	list(s, "e1", DLV_PENDING, ids[3], 10, &p);
	CHECK(p.n == 3);
	list(s, "e1", DLV_SUCCEEDED, NULL, 10, &p);
	CHECK(p.n == 1);
	store_close(s);
	rm_dir(dir);
}

/* Takes dir's endpoint index away with LMDB directly, leaving what hookd before the index
 * wrote: the same records, no epdlv or epcount database. */
static void drop_index(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 16) == 0);
	CHECK(mdb_env_open(env, dir, MDB_NOTLS, 0600) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	CHECK(mdb_dbi_open(txn, "epdlv", 0, &dbi) == 0 && mdb_drop(txn, dbi, 1) == 0);
	CHECK(mdb_dbi_open(txn, "epcount", 0, &dbi) == 0 && mdb_drop(txn, dbi, 1) == 0);
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
}

/* Puts the marker of an unfinished rebuild whose last indexed record is last_done. */
static void interrupt_rebuild(const char *dir, const char *last_done)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {8, "\0rebuild"}, v = {strlen(last_done), (void *)last_done};
	CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 16) == 0);
	CHECK(mdb_env_open(env, dir, MDB_NOTLS, 0600) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	CHECK(mdb_dbi_open(txn, "epcount", 0, &dbi) == 0 && mdb_put(txn, dbi, &k, &v, 0) == 0);
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
}

/* A data directory from before the index is indexed when opened; a new one starts empty;
 * an interrupted rebuild resumes after the last record it indexed, counting each once.
 * 20,000 records: more than two of the rebuild's chunks. */
static void test_rebuild(void)
{
	/* id_make keeps ids increasing within a process (earlier tests used later times), so
	 * the midpoint's id is kept as made, not made again. */
	char dir[] = "/tmp/hookd-test-eprebuild-XXXXXX", err[256], m[ID_MAX], mid[DELIVERY_ID_MAX];
	struct store *s;
	struct store_counts sc;
	struct page p;
	const int n = 20000;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 256 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	CHECK(store_get_counts(s, &sc) == HOOKD_OK && sc.epdlv == 0 && sc.epcount == 0);
	{
		struct store_batch *b = store_batch_new();
		for (int i = 0; i < n; i++) {
			struct delivery_rec r = {0};
			char id[DELIVERY_ID_MAX];
			id_make("msg_", 3000000 + i, m);
			delivery_id_make(m, DELIVERY_PLAIN, 0, id);
			if (i == n / 2)
				snprintf(mid, sizeof(mid), "%s", id);
			r.state = i % 4 == 0 ? DLV_DEAD : i % 4 == 1 ? DLV_SUCCEEDED : DLV_PENDING;
			r.app_id = "appX";
			r.msg_id = m;
			r.ep_id = i % 2 ? "odd" : "even";
			r.last_error = r.headers = r.body = "";
			CHECK(store_batch_put_delivery(b, id, &r) == HOOKD_OK);
		}
		CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
		store_batch_free(b);
	}
	/* even: i % 4 in {0, 2}: 5000 dead, 5000 pending; odd: 5000 succeeded, 5000 pending */
	CHECK_COUNTS(s, "appX", "even", 5000, 0, 5000, 0);
	CHECK_COUNTS(s, "appX", "odd", 5000, 5000, 0, 0);
	store_close(s);

	drop_index(dir);
	CHECK(store_open(dir, 256 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	CHECK(store_get_counts(s, &sc) == HOOKD_OK && sc.epdlv == (uint64_t)n &&
	      sc.epcount == 2); /* and no marker left */
	CHECK_COUNTS(s, "appX", "even", 5000, 0, 5000, 0);
	CHECK_COUNTS(s, "appX", "odd", 5000, 5000, 0, 0);
	list(s, "odd", DLV_SUCCEEDED, NULL, 100000, &p);
	CHECK(p.n == 5000);
	store_close(s);

	/* Interrupted: a rebuild that died after committing its chunks up to some record left
	 * the marker naming it. Resuming indexes exactly the records after that one: shown on
	 * empty index databases with the marker at the midpoint, so what the resume adds is all
	 * there is to count. */
	{
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		drop_index(dir);
		CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 16) == 0);
		CHECK(mdb_env_open(env, dir, MDB_NOTLS, 0600) == 0);
		CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
		CHECK(mdb_dbi_open(txn, "epdlv", MDB_CREATE, &dbi) == 0);
		CHECK(mdb_dbi_open(txn, "epcount", MDB_CREATE, &dbi) == 0);
		CHECK(mdb_txn_commit(txn) == 0);
		mdb_env_close(env);
		interrupt_rebuild(dir, mid);
		CHECK(store_open(dir, 256 << 20, &s, err, sizeof(err)) == HOOKD_OK);
		CHECK(store_get_counts(s, &sc) == HOOKD_OK && sc.epdlv == (uint64_t)(n / 2 - 1) &&
		      sc.epcount == 2); /* the marker is gone */
		store_close(s);
	}
	rm_dir(dir);
}

int main(void)
{
	evthread_use_pthreads();
	base = event_base_new();
	test_counts_follow_writes();
	test_pages();
	test_rebuild();
	event_base_free(base);
	libevent_global_shutdown();
	return check_done();
}
