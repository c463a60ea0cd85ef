/* test_store.c - LMDB store: batches, idempotency guard, group commit, map-full reserve;
 * and the binary delivery record. */
#include "check.h"
#include "store_fixture.h"

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
#include <sys/stat.h>
#include <unistd.h>

static char dir_template[] = "/tmp/hookd-test-store-XXXXXX";

/* The stored JSON of app id, copied into out: HOOKD_OK or the getter's error. */
static int get_app(struct store *s, const char *id, char *out, size_t outlen)
{
	struct store_read *rd;
	const char *json;
	size_t len;
	int rc;
	if (store_read_begin(s, &rd) != HOOKD_OK)
		return -1;
	rc = store_read_app(rd, id, &json, &len);
	if (rc == HOOKD_OK) {
		size_t n = len < outlen - 1 ? len : outlen - 1;
		memcpy(out, json, n);
		out[n] = 0;
	}
	store_read_end(rd);
	return rc;
}

static void test_batch_and_guard(struct store *s)
{
	struct store_batch *b = store_batch_new();
	char out[64];

	CHECK(store_batch_put_app(b, "a1", "one") == HOOKD_OK);
	CHECK(store_batch_put_app(b, "a2", "two") == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
	CHECK(get_app(s, "a1", out, sizeof(out)) == HOOKD_OK);
	CHECK_STR(out, "one");

	/* A guard key that exists and has not expired stops the whole batch. */
	b = store_batch_new();
	CHECK(store_publish_set_idempotency(b, "app", "k", "msg_1234", 0, 5000) == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);

	b = store_batch_new();
	CHECK(store_publish_set_idempotency(b, "app", "k", "msg_5678", 1000, 5000) == HOOKD_OK);
	CHECK(store_batch_put_app(b, "a3", "three") == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_EDUPLICATE);
	CHECK_STR(store_publish_duplicate(b), "msg_1234");
	store_batch_free(b);
	CHECK(get_app(s, "a3", out, sizeof(out)) == HOOKD_ENOTFOUND);

	/* Expired guard: the batch goes through (the key keeps expiring at 5000, which
	 * test_janitor counts on). */
	b = store_batch_new();
	CHECK(store_publish_set_idempotency(b, "app", "k", "msg_5678", 6000, 5000) == HOOKD_OK);
	CHECK(store_batch_put_app(b, "a3", "three") == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
	CHECK(get_app(s, "a3", out, sizeof(out)) == HOOKD_OK);

	/* Deletes, including of absent keys, succeed. */
	b = store_batch_new();
	CHECK(store_batch_del_app(b, "a1") == HOOKD_OK);
	CHECK(store_batch_del_app(b, "nope") == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
	CHECK(get_app(s, "a1", out, sizeof(out)) == HOOKD_ENOTFOUND);

	/* A key longer than LMDB takes is refused when added, not when committed. */
	char long_id[600];
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = 0;
	b = store_batch_new();
	CHECK(store_batch_put_app(b, long_id, "{}") == HOOKD_EINVAL);
	CHECK(store_batch_count(b) == 0);
	store_batch_free(b);
	CHECK(get_app(s, long_id, out, sizeof(out)) == HOOKD_ENOTFOUND);
}

#define BURST 2000
static int done_count, done_ok;
static struct event_base *base;
static int burst_target = BURST;

static void burst_done(struct store_batch *b)
{
	done_count++;
	if (store_batch_rc(b) == HOOKD_OK)
		done_ok++;
	if (done_count == burst_target)
		event_base_loopbreak(base);
}

static void test_group_commit(struct store *s)
{
	struct store_stats st;
	char key[32];
	store_get_stats(s, &st);
	uint64_t commits_before = st.commits;
	CHECK(store_start(s, base) == HOOKD_OK);
	for (int i = 0; i < BURST; i++) {
		struct store_batch *b = store_batch_new();
		snprintf(key, sizeof(key), "burst-%05d", i);
		CHECK(store_publish_add_message(b, "app", key, "x", 1) == HOOKD_OK);
		store_publish_submit(s, b, burst_done, NULL);
	}
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	CHECK(done_count == BURST);
	CHECK(done_ok == BURST);
	/* Ops queued together share commits: far fewer fsyncs than ops. */
	store_get_stats(s, &st);
	uint64_t commits = st.commits - commits_before;
	printf("group commit: %d ops in %llu commits\n", BURST, (unsigned long long)commits);
	CHECK(commits >= 1);
	CHECK(commits < BURST / 4);
	store_stop(s);
	struct store_read *rd;
	const char *env;
	size_t len;
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	CHECK(store_read_message(rd, "app", "burst-01999", &env, &len) == HOOKD_OK);
	CHECK(len == 1 && env[0] == 'x');
	store_read_end(rd);
}

/* The writer answers an op only once its commit is durable: LMDB runs with
 * MDB_NOMETASYNC, so a commit's meta page is synced by the next commit or, when nothing
 * follows, by an explicit sync before the answer (store.c, store_settle). */
static struct store_stats durable_seen;
static struct store *durable_store;

static void durable_done(struct store_batch *b)
{
	store_get_stats(durable_store, &durable_seen);
	event_base_loopbreak(base);
}

static void test_answer_after_durable(void)
{
	char dir[] = "/tmp/hookd-test-sync-XXXXXX", err[256];
	struct store_stats st0;
	struct store_batch *b;
	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 16 << 20, &durable_store, err, sizeof(err)) == HOOKD_OK);
	CHECK(store_start(durable_store, base) == HOOKD_OK);
	store_get_stats(durable_store, &st0);
	b = store_batch_new();
	CHECK(store_publish_add_message(b, "app", "msg_durable", "x", 1) == HOOKD_OK);
	store_publish_submit(durable_store, b, durable_done, NULL);
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	/* One commit, and the sync of its meta page happened before the answer. */
	CHECK(durable_seen.commits - st0.commits == 1);
	CHECK(durable_seen.syncs - st0.syncs == 1);
	store_stop(durable_store);
	store_close(durable_store);
	rm_dir(dir);
}

static off_t data_file_size(const char *dir)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Commits that grow the data file cost a journal commit in their fdatasync: the writer keeps
 * the file written ahead of LMDB's last page (store.c, store_prealloc: 4 MiB at least),
 * never past the map size, and a store whose file ends in those zeros opens and reads as
 * before. */
static void prealloc_one(const char *dir, uint64_t map_size, int n)
{
	char err[256], key[32];
	static char val[16384];
	struct store *s;
	struct store_space sp;
	struct store_read *rd;
	const char *v;
	size_t len;

	memset(val, 'p', sizeof(val));
	CHECK(store_open(dir, map_size, &s, err, sizeof(err)) == HOOKD_OK);
	CHECK(store_start(s, base) == HOOKD_OK);
	done_count = done_ok = 0;
	for (int i = 0; i < n; i++) {
		struct store_batch *b = store_batch_new();
		snprintf(key, sizeof(key), "pre-%04d", i);
		CHECK(store_publish_add_message(b, "app", key, val, sizeof(val)) == HOOKD_OK);
		store_publish_submit(s, b, burst_done, NULL);
	}
	burst_target = n;
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	burst_target = BURST;
	CHECK(done_ok == n);
	store_get_space(s, &sp);
	store_close(s); /* the writer writes ahead after answering: done once it is stopped */
	off_t size = data_file_size(dir);
	printf("prealloc: map %llu, used %llu, file %lld bytes\n", (unsigned long long)map_size,
	       (unsigned long long)sp.used_bytes, (long long)size);
	CHECK(size <= (off_t)map_size);
	if (map_size >= sp.used_bytes + (8u << 20))
		CHECK(size >= (off_t)(sp.used_bytes + (4u << 20)));
	else
		CHECK(size == (off_t)map_size);
	/* Reopened: what was written reads back, and the file is not cut short. */
	CHECK(store_open(dir, map_size, &s, err, sizeof(err)) == HOOKD_OK);
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	snprintf(key, sizeof(key), "pre-%04d", n - 1);
	CHECK(store_read_message(rd, "app", key, &v, &len) == HOOKD_OK);
	CHECK(len == sizeof(val) && v[0] == 'p' && v[len - 1] == 'p');
	store_read_end(rd);
	CHECK(data_file_size(dir) == size);
	store_close(s);
}

static void test_prealloc(void)
{
	char big[] = "/tmp/hookd-test-pre-XXXXXX", small[] = "/tmp/hookd-test-pre-XXXXXX";
	CHECK(mkdtemp(big) != NULL);
	prealloc_one(big, 64u << 20, 300); /* ~5 MiB of messages: past the first step */
	rm_dir(big);
	CHECK(mkdtemp(small) != NULL);
	prealloc_one(small, 2u << 20, 20); /* the map is smaller than a step */
	rm_dir(small);
}

static void test_map_full(void)
{
	char dir[] = "/tmp/hookd-test-full-XXXXXX";
	char err[256], key[32];
	struct store *s;
	static char big[16384];
	int i, full_at = -1;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 1024 * 1024, &s, err, sizeof(err)) == HOOKD_OK);
	memset(big, 'x', sizeof(big));
	for (i = 0; i < 200; i++) {
		struct store_batch *b = store_batch_new();
		snprintf(key, sizeof(key), "m%03d", i);
		CHECK(store_publish_add_message(b, "app", key, big, sizeof(big)) == HOOKD_OK);
		int rc = store_batch_write_now(s, b, STORE_OP_PUBLISH);
		store_batch_free(b);
		if (rc != HOOKD_OK) {
			CHECK(rc == HOOKD_EFULL);
			full_at = i;
			break;
		}
	}
	CHECK(full_at > 0);
	struct store_space sp;
	store_get_space(s, &sp);
	CHECK(sp.full);
	/* State changes of what is stored still fit in the reserve. */
	struct store_batch *b = store_batch_new();
	struct delivery_rec r = {.state = DLV_DEAD, .app_id = "app", .msg_id = "m000",
				 .ep_id = "ep", .last_error = "x"};
	CHECK(store_batch_put_delivery(b, "dlv_1", &r) == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
	store_close(s);
	rm_dir(dir);
}

static void test_janitor(struct store *s)
{
	char key[16];
	struct store_batch *b = store_batch_new();
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		/* 6 expired as of 5000; app "acme" sorts before test_batch_and_guard's "app" */
		CHECK(store_publish_set_idempotency(b, "acme", key, "msg_abcd", 0,
						    i < 6 ? 1000 : 9000) == HOOKD_OK);
	}
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
	CHECK(janitor_sweep_now(s, 5000, 4) == 4); /* bounded slice */
	/* k4, k5 and "k" (from test_batch_and_guard, expiring at 5000), the last key of all */
	CHECK(janitor_sweep_now(s, 5000, 100) == 3);
	CHECK(janitor_sweep_now(s, 5000, 100) == 0);
	CHECK(janitor_sweep_now(s, 10000, 100) == 4);
}

static void put_delivery(struct store_batch *b, const char *msg_id, int n, int state)
{
	struct delivery_rec r = {0};
	char id[96];
	snprintf(id, sizeof(id), "dlv_%s_%d", msg_id + 4, n);
	r.state = state;
	r.app_id = "appR";
	r.msg_id = msg_id;
	r.ep_id = "ep";
	r.last_error = "";
	r.headers = "";
	r.body = "";
	r.updated_ms = 777;
	CHECK(store_batch_put_delivery(b, id, &r) == HOOKD_OK);
	CHECK(store_batch_put_attempt(b, id, 1, "{}", 2) == HOOKD_OK);
	if (state == DLV_DEAD)
		CHECK(store_batch_put_dead(b, "appR", 777, id) == HOOKD_OK);
}

static struct store_counts counts(struct store *s)
{
	struct store_counts c = {0};
	CHECK(store_get_counts(s, &c) == HOOKD_OK);
	return c;
}

static void test_retention(void)
{
	char dir[] = "/tmp/hookd-test-ret-XXXXXX", err[256];
	struct store *s;
	char old1[ID_MAX], old2[ID_MAX], fresh[ID_MAX];
	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	id_make("msg_", 1000000, old1);  /* long ago */
	id_make("msg_", 1000001, old2);
	id_make("msg_", 9000000, fresh);
	CHECK(id_time_ms(old1, 4) == 1000000 && id_time_ms(fresh, 4) == 9000000);
	struct store_batch *b = store_batch_new();
	const char *msgs[] = {old1, old2, fresh};
	for (int i = 0; i < 3; i++)
		CHECK(store_publish_add_message(b, "appR", msgs[i], "{}", 2) == HOOKD_OK);
	put_delivery(b, old1, 0, DLV_SUCCEEDED); /* old1: settled -> pruned */
	put_delivery(b, old1, 1, DLV_DEAD);
	put_delivery(b, old2, 0, DLV_PENDING);   /* old2: a pending delivery -> kept */
	put_delivery(b, fresh, 0, DLV_SUCCEEDED);/* fresh: too young -> kept */
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
	CHECK(counts(s).messages == 3 && counts(s).deliveries == 4);
	CHECK(counts(s).dead == 1);
	CHECK(janitor_prune_now(s, 5000000, 100) == 1);
	CHECK(counts(s).messages == 2);
	CHECK(counts(s).deliveries == 2);
	CHECK(counts(s).attempts == 2);
	CHECK(counts(s).dead == 0);
	CHECK(janitor_prune_now(s, 5000000, 100) == 0);
	CHECK(janitor_prune_now(s, 99000000, 100) == 1); /* now fresh is old enough; old2 still pending */
	CHECK(counts(s).messages == 1);
	store_close(s);
	rm_dir(dir);
}

/* ---- typed reads and the redrive op ---- */

static int collect_id(void *arg, const char *dlv_id, const struct delivery_rec *r)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%s:%d", n ? "," : "", dlv_id, r->state);
	return 0;
}

static int collect_attempt(void *arg, uint32_t attempt, const char *json, size_t len)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%u=%.*s", n ? "," : "", attempt, (int)len, json);
	return 0;
}

static int collect_msg(void *arg, const char *msg_id, const char *envelope, size_t len)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%s", n ? "," : "", msg_id);
	return strcmp(msg_id, "msg_c") == 0 ? STORE_WALK_STOP : 0;
}

static int count_dead(void *arg, int64_t dead_at_ms, const char *dlv_id)
{
	(*(int *)arg)++;
	return 0;
}

static int redrive_rc = 1;
static char redrive_ids[256];

static void redrive_done(void *arg, int rc, const char *const *ids, size_t n)
{
	redrive_rc = rc;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(redrive_ids);
		snprintf(redrive_ids + len, sizeof(redrive_ids) - len, "%s%s", i ? "," : "", ids[i]);
	}
	event_base_loopbreak(base);
}

static int collect_due(void *arg, int64_t at_ms, const char *id);

static void test_reads_and_redrive(void)
{
	char dir[] = "/tmp/hookd-test-reads-XXXXXX", err[256], out[256] = "";
	struct store *s;
	struct store_read *rd;
	struct store_batch *b;
	struct delivery_rec r = {.state = DLV_DEAD, .app_id = "appD", .msg_id = "msg_a",
				 .ep_id = "ep1", .last_error = "HTTP 500", .updated_ms = 100};
	int dead = 0;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	b = store_batch_new();
	CHECK(store_batch_put_endpoint(b, "appD", "ep1", "{}") == HOOKD_OK);
	CHECK(store_publish_add_message(b, "appD", "msg_a", "{}", 2) == HOOKD_OK);
	CHECK(store_publish_add_message(b, "appD", "msg_b", "{}", 2) == HOOKD_OK);
	CHECK(store_publish_add_message(b, "appD", "msg_c", "{}", 2) == HOOKD_OK);
	CHECK(store_publish_add_message(b, "appD", "msg_d", "{}", 2) == HOOKD_OK);
	CHECK(store_publish_add_message(b, "appE", "msg_e", "{}", 2) == HOOKD_OK);
	CHECK(store_batch_put_delivery(b, "dlv_a_0", &r) == HOOKD_OK);
	CHECK(store_batch_put_dead(b, "appD", 100, "dlv_a_0") == HOOKD_OK);
	r.ep_id = "gone"; /* its endpoint is not stored: stays dead */
	CHECK(store_batch_put_delivery(b, "dlv_a_1", &r) == HOOKD_OK);
	CHECK(store_batch_put_dead(b, "appD", 101, "dlv_a_1") == HOOKD_OK);
	CHECK(store_batch_put_dead(b, "appD", 102, "dlv_stale") == HOOKD_OK); /* no record */
	CHECK(store_batch_put_attempt(b, "dlv_a_0", 2, "{\"n\":2}", 7) == HOOKD_OK);
	CHECK(store_batch_put_attempt(b, "dlv_a_0", 1, "{\"n\":1}", 7) == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);

	/* Walks: a prefix of ids, attempts in order, messages after one, stopping early. */
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	CHECK(store_read_deliveries(rd, "dlv_a_", collect_id, out) == HOOKD_OK);
	CHECK_STR(out, "dlv_a_0:4,dlv_a_1:4");
	out[0] = 0;
	CHECK(store_read_attempts(rd, "dlv_a_0", collect_attempt, out) == HOOKD_OK);
	CHECK_STR(out, "1={\"n\":1},2={\"n\":2}");
	out[0] = 0;
	CHECK(store_read_messages(rd, "appD", "msg_a", collect_msg, out) == HOOKD_OK);
	CHECK_STR(out, "msg_b,msg_c");
	CHECK(store_read_dead(rd, "appD", count_dead, &dead) == HOOKD_OK && dead == 3);
	store_read_end(rd);

	/* Redrive: the live one goes back to pending and due; the stale entry goes; the one
	 * whose endpoint is gone stays dead and listed. */
	CHECK(store_start(s, base) == HOOKD_OK);
	CHECK(store_redrive_submit(s, "appD", select_all, revive_now, redrive_done, NULL) ==
	      HOOKD_OK);
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	CHECK(redrive_rc == HOOKD_OK);
	CHECK_STR(redrive_ids, "dlv_a_0");
	store_stop(s);
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	CHECK(store_read_delivery(rd, "dlv_a_0", &r) == HOOKD_OK);
	CHECK(r.state == DLV_PENDING && r.next_at_ms == 4242);
	CHECK(store_read_delivery(rd, "dlv_a_1", &r) == HOOKD_OK && r.state == DLV_DEAD);
	dead = 0;
	CHECK(store_read_dead(rd, "appD", count_dead, &dead) == HOOKD_OK && dead == 1);
	store_read_end(rd);
	CHECK(counts(s).due == 1);
	out[0] = 0;
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	CHECK(store_read_due(rd, "appD", "ep1", collect_due, out) == HOOKD_OK);
	CHECK_STR(out, "4242:dlv_a_0");
	store_read_end(rd);
	store_close(s);
	rm_dir(dir);
}

static int collect_due(void *arg, int64_t at_ms, const char *id)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%lld:%s", n ? "," : "", (long long)at_ms, id);
	return 0;
}

static int collect_due_ep(void *arg, const char *app_id, const char *ep_id)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%s/%s", n ? "," : "", app_id, ep_id);
	return 0;
}

/* The due index is per endpoint: one endpoint's entries soonest first, and the endpoints
 * that have any, each once, found by seeking rather than walking the entries. */
static void test_due_index(void)
{
	char dir[] = "/tmp/hookd-test-due-XXXXXX", err[256], out[256] = "";
	struct store *s;
	struct store_read *rd;
	struct store_batch *b;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	b = store_batch_new();
	CHECK(store_batch_put_due(b, "appA", "ep1", 300, "d3") == HOOKD_OK);
	CHECK(store_batch_put_due(b, "appA", "ep1", 100, "d1") == HOOKD_OK);
	CHECK(store_batch_put_due(b, "appA", "ep1", 200, "d2") == HOOKD_OK);
	CHECK(store_batch_put_due(b, "appA", "ep10", 50, "x") == HOOKD_OK);
	CHECK(store_batch_put_due(b, "appA", "ep10", 60, "x2") == HOOKD_OK);
	CHECK(store_batch_put_due(b, "appB", "ep1", 10, "y") == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	CHECK(store_read_due(rd, "appA", "ep1", collect_due, out) == HOOKD_OK);
	CHECK_STR(out, "100:d1,200:d2,300:d3");
	out[0] = 0;
	CHECK(store_read_due(rd, "appA", "ep", collect_due, out) == HOOKD_OK);
	CHECK_STR(out, ""); /* a prefix of an endpoint id is not that endpoint */
	CHECK(store_read_due_endpoints(rd, collect_due_ep, out) == HOOKD_OK);
	CHECK_STR(out, "appA/ep1,appA/ep10,appB/ep1");
	store_read_end(rd);
	b = store_batch_new();
	CHECK(store_batch_del_due(b, "appA", "ep10", 50, "x") == HOOKD_OK);
	CHECK(store_batch_del_due(b, "appA", "ep10", 60, "x2") == HOOKD_OK);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
	out[0] = 0;
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	CHECK(store_read_due_endpoints(rd, collect_due_ep, out) == HOOKD_OK);
	CHECK_STR(out, "appA/ep1,appB/ep1");
	store_read_end(rd);
	store_close(s);
	rm_dir(dir);
}

/* A store written before the due index was per endpoint (be64(at_ms) dlv_id) is rewritten
 * when opened: pending records keep their entry under their endpoint, stale entries go. */
static void test_due_migration(void)
{
	char dir[] = "/tmp/hookd-test-duemig-XXXXXX", err[256], out[256] = "";
	static const char *names[] = {"apps", "endpoints", "messages", "deliveries", "attempts",
				      "due", "dead", "idem", "policies", "bodies", "fanout"};
	struct delivery_rec r = {.state = DLV_PENDING, .app_id = "appM", .msg_id = "msg_m",
				 .ep_id = "epM", .last_error = "", .next_at_ms = 1000};
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi[11];
	unsigned char *enc, key[64];
	size_t len;
	struct store *s;
	struct store_read *rd;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 16) == 0);
	CHECK(mdb_env_open(env, dir, MDB_NOTLS, 0600) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	for (int i = 0; i < 11; i++)
		CHECK(mdb_dbi_open(txn, names[i], MDB_CREATE, &dbi[i]) == 0);
	CHECK(record_encode(&r, &enc, &len) == HOOKD_OK);
	{
		MDB_val k = {4, "p1_0"}, v = {len, enc};
		CHECK(mdb_put(txn, dbi[3], &k, &v, 0) == 0);
	}
	free(enc);
	/* p1_0 at its time; p1_0 at an older time (superseded); one with no record. */
	{
		const struct {
			uint64_t at;
			const char *id;
		} old[] = {{1000, "p1_0"}, {999, "p1_0"}, {5, "gone_0"}};
		for (int i = 0; i < 3; i++) {
			size_t n = strlen(old[i].id);
			MDB_val k = {8 + n, key}, v = {0, ""};
			for (int j = 0; j < 8; j++)
				key[j] = (unsigned char)(old[i].at >> (56 - 8 * j));
			memcpy(key + 8, old[i].id, n);
			CHECK(mdb_put(txn, dbi[5], &k, &v, 0) == 0);
		}
	}
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);

	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	CHECK(counts(s).due == 1);
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	CHECK(store_read_due(rd, "appM", "epM", collect_due, out) == HOOKD_OK);
	CHECK_STR(out, "1000:p1_0");
	out[0] = 0;
	CHECK(store_read_due_endpoints(rd, collect_due_ep, out) == HOOKD_OK);
	CHECK_STR(out, "appM/epM");
	store_read_end(rd);
	store_close(s);
	/* Opened again: nothing left to rewrite, the entry stays. */
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	CHECK(counts(s).due == 1);
	store_close(s);
	rm_dir(dir);
}

static void test_record(void)
{
	struct delivery_rec r = {0}, d;
	unsigned char *enc;
	size_t len;
	r.state = DLV_DEAD;
	r.flags = RECORD_CUSTOM_BODY;
	r.attempts = 7;
	r.cycle_failures = 3;
	r.last_status = 503;
	r.next_at_ms = 1764460800123LL;
	r.created_ms = 1764460000000LL;
	r.updated_ms = 1764460900000LL;
	r.app_id = "acme";
	r.msg_id = "msg_01ABC";
	r.ep_id = "ep_1";
	r.last_error = "HTTP 503";
	r.body = "{\"a\":1}";
	r.body_len = 7;
	r.headers = "{\"x-t\":\"1\"}";
	CHECK(record_encode(&r, &enc, &len) == HOOKD_OK);
	CHECK(record_decode(enc, len, &d) == HOOKD_OK);
	CHECK(d.state == DLV_DEAD && d.attempts == 7 && d.cycle_failures == 3);
	CHECK(d.flags == RECORD_CUSTOM_BODY);
	CHECK(d.last_status == 503 && d.next_at_ms == r.next_at_ms);
	CHECK(d.created_ms == r.created_ms && d.updated_ms == r.updated_ms);
	CHECK_STR(d.app_id, "acme");
	CHECK_STR(d.msg_id, "msg_01ABC");
	CHECK_STR(d.ep_id, "ep_1");
	CHECK_STR(d.last_error, "HTTP 503");
	CHECK(d.body_len == 7 && memcmp(d.body, "{\"a\":1}", 7) == 0);
	CHECK_STR(d.headers, "{\"x-t\":\"1\"}");
	/* Every truncation is refused, never read past. */
	int refused = 1;
	for (size_t n = 0; n < len; n++)
		if (record_decode(enc, n, &d) != HOOKD_EINVAL)
			refused = 0;
	CHECK(refused);
	enc[0] = 99;
	CHECK(record_decode(enc, len, &d) == HOOKD_EINVAL);
	free(enc);
	CHECK_STR(delivery_state_name(DLV_SUCCEEDED), "succeeded");
}

int main(void)
{
	char err[256];
	struct store *s;

	evthread_use_pthreads();
	base = event_base_new();
	CHECK(mkdtemp(dir_template) != NULL);
	CHECK(store_open(dir_template, 64 * 1024 * 1024, &s, err, sizeof(err)) == HOOKD_OK);
	test_batch_and_guard(s);
	test_janitor(s);
	test_group_commit(s);
	store_close(s);
	rm_dir(dir_template);
	/* A directory that cannot be created is an error naming it. */
	CHECK(store_open("/proc/hookd-no/such", 1 << 20, &s, err, sizeof(err)) != HOOKD_OK);
	CHECK(strstr(err, "/proc/hookd-no/such") != NULL);
	test_map_full();
	test_retention();
	test_reads_and_redrive();
	test_due_index();
	test_due_migration();
	test_record();
	test_answer_after_durable();
	test_prealloc();
	event_base_free(base);
	libevent_global_shutdown();
	return check_done();
}
