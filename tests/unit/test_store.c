/* test_store.c - LMDB store: batches, idempotency guard, group commit, map-full reserve;
 * and the binary delivery record. */
#include "check.h"

#include "err.h"
#include "id.h"
#include "janitor.h"
#include "record.h"
#include "store.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir_template[] = "/tmp/hookd-test-store-XXXXXX";

static void rm_dir(const char *dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
}

static int get_str(struct store *s, MDB_dbi dbi, const char *key, char *out, size_t outlen)
{
	MDB_txn *txn;
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc;
	if (store_read_begin(s, &txn) != HOOKD_OK)
		return -1;
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == 0) {
		size_t n = v.mv_size < outlen - 1 ? v.mv_size : outlen - 1;
		memcpy(out, v.mv_data, n);
		out[n] = 0;
	}
	mdb_txn_abort(txn);
	return rc;
}

static void test_batch_and_guard(struct store *s)
{
	struct store_batch *b = store_batch_new();
	unsigned char idem[8 + 8];
	char out[64];

	store_batch_put(b, s->apps, "a1", 2, "one", 3);
	store_batch_put(b, s->apps, "a2", 2, "two", 3);
	CHECK(store_batch_write_now(s, b) == HOOKD_OK);
	store_batch_free(b);
	CHECK(get_str(s, s->apps, "a1", out, sizeof(out)) == 0);
	CHECK_STR(out, "one");

	/* A guard key that exists and has not expired stops the whole batch. */
	store_be64(idem, 5000);
	memcpy(idem + 8, "msg_1234", 8);
	b = store_batch_new();
	store_batch_put(b, s->idem, "k", 1, idem, sizeof(idem));
	CHECK(store_batch_write_now(s, b) == HOOKD_OK);
	store_batch_free(b);

	b = store_batch_new();
	store_batch_guard(b, s->idem, "k", 1, 1000);
	store_batch_put(b, s->apps, "a3", 2, "three", 5);
	CHECK(store_batch_write_now(s, b) == HOOKD_EDUPLICATE);
	CHECK_STR(b->dup_value, "msg_1234");
	store_batch_free(b);
	CHECK(get_str(s, s->apps, "a3", out, sizeof(out)) == MDB_NOTFOUND);

	/* Expired guard: the batch goes through. */
	b = store_batch_new();
	store_batch_guard(b, s->idem, "k", 1, 6000);
	store_batch_put(b, s->apps, "a3", 2, "three", 5);
	CHECK(store_batch_write_now(s, b) == HOOKD_OK);
	store_batch_free(b);
	CHECK(get_str(s, s->apps, "a3", out, sizeof(out)) == 0);

	/* Deletes, including of absent keys, succeed. */
	b = store_batch_new();
	store_batch_del(b, s->apps, "a1", 2);
	store_batch_del(b, s->apps, "nope", 4);
	CHECK(store_batch_write_now(s, b) == HOOKD_OK);
	store_batch_free(b);
	CHECK(get_str(s, s->apps, "a1", out, sizeof(out)) == MDB_NOTFOUND);
}

#define BURST 2000
static int done_count, done_ok;
static struct event_base *base;

static void burst_done(struct store_batch *b)
{
	done_count++;
	if (b->op.rc == HOOKD_OK)
		done_ok++;
	if (done_count == BURST)
		event_base_loopbreak(base);
}

static void test_group_commit(struct store *s)
{
	uint64_t commits_before = s->stat_commits;
	char key[32];
	CHECK(store_start(s, base) == HOOKD_OK);
	for (int i = 0; i < BURST; i++) {
		struct store_batch *b = store_batch_new();
		int n = snprintf(key, sizeof(key), "burst-%05d", i);
		store_batch_put(b, s->messages, key, (size_t)n, "x", 1);
		store_batch_submit(s, b, STORE_OP_PUBLISH, burst_done, NULL);
	}
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	CHECK(done_count == BURST);
	CHECK(done_ok == BURST);
	/* Ops queued together share commits: far fewer fsyncs than ops. */
	uint64_t commits = s->stat_commits - commits_before;
	printf("group commit: %d ops in %llu commits\n", BURST, (unsigned long long)commits);
	CHECK(commits >= 1);
	CHECK(commits < BURST / 4);
	store_stop(s);
	char out[8];
	CHECK(get_str(s, s->messages, "burst-01999", out, sizeof(out)) == 0);
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
		int n = snprintf(key, sizeof(key), "m%03d", i);
		store_batch_put(b, s->messages, key, (size_t)n, big, sizeof(big));
		b->op.flags = STORE_OP_PUBLISH;
		int rc = store_batch_write_now(s, b);
		store_batch_free(b);
		if (rc != HOOKD_OK) {
			CHECK(rc == HOOKD_EFULL);
			full_at = i;
			break;
		}
	}
	CHECK(full_at > 0);
	CHECK(s->full);
	/* State changes of what is stored still fit in the reserve. */
	struct store_batch *b = store_batch_new();
	store_batch_put(b, s->deliveries, "dlv_1", 5, "state", 5);
	CHECK(store_batch_write_now(s, b) == HOOKD_OK);
	store_batch_free(b);
	store_close(s);
	rm_dir(dir);
}

static void test_janitor(struct store *s)
{
	char key[16];
	unsigned char val[8 + 8];
	struct store_batch *b = store_batch_new();
	for (int i = 0; i < 10; i++) {
		int n = snprintf(key, sizeof(key), "app\1k%d", i);
		store_be64(val, (uint64_t)(i < 6 ? 1000 : 9000)); /* 6 expired as of 5000 */
		memcpy(val + 8, "msg_abcd", 8);
		store_batch_put(b, s->idem, key, (size_t)n, val, sizeof(val));
	}
	CHECK(store_batch_write_now(s, b) == HOOKD_OK);
	store_batch_free(b);
	CHECK(janitor_sweep_now(s, 5000, 4) == 4); /* bounded slice */
	/* k4, k5 and "k" (from test_batch_and_guard, expiring at 5000), the last key of all */
	CHECK(janitor_sweep_now(s, 5000, 100) == 3);
	CHECK(janitor_sweep_now(s, 5000, 100) == 0);
	CHECK(janitor_sweep_now(s, 10000, 100) == 4);
}

static void put_delivery(struct store_batch *b, struct store *s, const char *msg_id, int n,
			 int state)
{
	struct delivery_rec r = {0};
	char id[96], akey[128];
	unsigned char *enc;
	size_t len;
	snprintf(id, sizeof(id), "dlv_%s_%d", msg_id + 4, n);
	r.state = state;
	r.app_id = "appR";
	r.msg_id = msg_id;
	r.ep_id = "ep";
	r.updated_ms = 777;
	record_encode(&r, &enc, &len);
	store_batch_put(b, s->deliveries, id, strlen(id), enc, len);
	free(enc);
	int alen = snprintf(akey, sizeof(akey), "%s", id);
	akey[alen] = 0;
	memcpy(akey + alen + 1, "\0\0\0\1", 4);
	store_batch_put(b, s->attempts, akey, (size_t)alen + 5, "{}", 2);
	if (state == DLV_DEAD) {
		unsigned char dk[128];
		memcpy(dk, "appR", 5); /* app \0 */
		store_be64(dk + 5, 777);
		memcpy(dk + 13, id, strlen(id));
		store_batch_put(b, s->dead, dk, 13 + strlen(id), "", 0);
	}
}

static int count_db(struct store *s, MDB_dbi dbi)
{
	MDB_txn *txn;
	MDB_stat st;
	store_read_begin(s, &txn);
	mdb_stat(txn, dbi, &st);
	mdb_txn_abort(txn);
	return (int)st.ms_entries;
}

static void test_retention(void)
{
	char dir[] = "/tmp/hookd-test-ret-XXXXXX", err[256];
	struct store *s;
	char old1[ID_MAX], old2[ID_MAX], fresh[ID_MAX], key[128];
	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	id_make("msg_", 1000000, old1);  /* long ago */
	id_make("msg_", 1000001, old2);
	id_make("msg_", 9000000, fresh);
	CHECK(id_time_ms(old1, 4) == 1000000 && id_time_ms(fresh, 4) == 9000000);
	struct store_batch *b = store_batch_new();
	const char *msgs[] = {old1, old2, fresh};
	for (int i = 0; i < 3; i++) {
		int n = snprintf(key, sizeof(key), "appR");
		key[n] = 0;
		n += 1 + snprintf(key + n + 1, sizeof(key) - (size_t)n - 1, "%s", msgs[i]);
		store_batch_put(b, s->messages, key, (size_t)n, "{}", 2);
	}
	put_delivery(b, s, old1, 0, DLV_SUCCEEDED); /* old1: settled -> pruned */
	put_delivery(b, s, old1, 1, DLV_DEAD);
	put_delivery(b, s, old2, 0, DLV_PENDING);   /* old2: a pending delivery -> kept */
	put_delivery(b, s, fresh, 0, DLV_SUCCEEDED);/* fresh: too young -> kept */
	CHECK(store_batch_write_now(s, b) == HOOKD_OK);
	store_batch_free(b);
	CHECK(count_db(s, s->messages) == 3 && count_db(s, s->deliveries) == 4);
	CHECK(count_db(s, s->dead) == 1);
	CHECK(janitor_prune_now(s, 5000000, 100) == 1);
	CHECK(count_db(s, s->messages) == 2);
	CHECK(count_db(s, s->deliveries) == 2);
	CHECK(count_db(s, s->attempts) == 2);
	CHECK(count_db(s, s->dead) == 0);
	CHECK(janitor_prune_now(s, 5000000, 100) == 0);
	CHECK(janitor_prune_now(s, 99000000, 100) == 1); /* now fresh is old enough; old2 still pending */
	CHECK(count_db(s, s->messages) == 1);
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
	test_record();
	event_base_free(base);
	libevent_global_shutdown();
	return check_done();
}
