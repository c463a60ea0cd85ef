/* test_retention.c - the retention step per app (store_retention.c) with the janitor's
 * decisions (janitor.h): each app's own cutoffs, payloads purged before their metadata,
 * pending messages untouched, bounded steps and apps taking turns. */
#include "check.h"
#include "store_fixture.h"

#include "delivery.h"
#include "err.h"
#include "id.h"
#include "janitor.h"
#include "record.h"
#include "store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t prefix_of(const char *msg_id, char *out, size_t outlen)
{
	if (outlen < DELIVERY_ID_MAX)
		return 0;
	return delivery_id_prefix(msg_id, out);
}

/* A message of app made at t_ms with one delivery in state (and its attempt); a policy
 * body of its own when body is set. The message id goes into id. */
static void put_msg(struct store_batch *b, const char *app, int64_t t_ms, int state,
		    const char *body, char id[ID_MAX])
{
	struct delivery_rec r = {0};
	char dlv[DELIVERY_ID_MAX], env[512];
	id_make("msg_", t_ms, id);
	snprintf(env, sizeof(env),
		 "{\"id\":\"%s\",\"type\":\"t.x\",\"timestamp\":\"x\",\"version\":\"1\","
		 "\"data\":{\"secret\":\"%0200d\"}}", id, 7);
	CHECK(store_publish_add_message(b, app, id, env, strlen(env)) == HOOKD_OK);
	snprintf(dlv, sizeof(dlv), "dlv_%s_0", id + 4);
	r.state = state;
	r.app_id = app;
	r.msg_id = id;
	r.ep_id = "ep";
	r.last_error = "";
	r.headers = "";
	r.body = "";
	r.updated_ms = 777;
	if (body) {
		r.flags = RECORD_CUSTOM_BODY;
		CHECK(store_batch_put_body(b, dlv, body, strlen(body)) == HOOKD_OK);
	}
	CHECK(store_batch_put_delivery(b, dlv, &r) == HOOKD_OK);
	CHECK(store_batch_put_attempt(b, dlv, 1, "{}", 2) == HOOKD_OK);
}

/* The stored envelope of app's msg as JSON (NULL when gone). */
static json_t *read_msg(struct store *s, const char *app, const char *msg)
{
	struct store_read *rd;
	const char *env;
	size_t len;
	json_t *j = NULL;
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	if (store_read_message(rd, app, msg, &env, &len) == HOOKD_OK)
		j = json_loadb(env, len, 0, NULL);
	store_read_end(rd);
	return j;
}

static int has_body(struct store *s, const char *msg, unsigned *flags)
{
	struct store_read *rd;
	struct delivery_rec r;
	const char *data;
	size_t len;
	char dlv[DELIVERY_ID_MAX];
	int rc;
	snprintf(dlv, sizeof(dlv), "dlv_%s_0", msg + 4);
	CHECK(store_read_begin(s, &rd) == HOOKD_OK);
	rc = store_read_body(rd, dlv, &data, &len) == HOOKD_OK;
	CHECK(store_read_delivery(rd, dlv, &r) == HOOKD_OK);
	*flags = r.flags;
	store_read_end(rd);
	return rc;
}

static struct store_counts counts(struct store *s)
{
	struct store_counts c = {0};
	CHECK(store_get_counts(s, &c) == HOOKD_OK);
	return c;
}

static void test_cutoffs(void)
{
	int64_t c, p, now = 100 * 86400000LL;
	janitor_app_cutoffs(now, -1, -1, 30, 0, &c, &p); /* the defaults */
	CHECK(c == now - 30 * 86400000LL && p == 0);
	janitor_app_cutoffs(now, 7, 2, 30, 0, &c, &p); /* the app's own */
	CHECK(c == now - 7 * 86400000LL && p == now - 2 * 86400000LL);
	janitor_app_cutoffs(now, 0, 3, 30, 0, &c, &p); /* keep messages, drop payloads */
	CHECK(c == 0 && p == now - 3 * 86400000LL);
	janitor_app_cutoffs(now, 5, -1, 30, 10, &c, &p); /* default payload longer: none */
	CHECK(c == now - 5 * 86400000LL && p == 0);
	janitor_app_cutoffs(now, -1, 0, 30, 10, &c, &p); /* the app's 0: as the message */
	CHECK(c == now - 30 * 86400000LL && p == 0);
}

static void test_purge_format(void)
{
	const char *env = "{\"id\":\"msg_1\",\"type\":\"a\",\"data\":{\"k\":[1,2]}}";
	char *out = NULL;
	size_t len = 0;
	CHECK(janitor_payload_purge(env, strlen(env), &out, &len) == 1);
	CHECK_STR(out, "{\"id\":\"msg_1\",\"type\":\"a\",\"data\":null,\"payload_purged\":true}");
	CHECK(len == strlen(out));
	char *again = NULL;
	CHECK(janitor_payload_purge(out, len, &again, &len) == 0 && again == NULL);
	free(out);
	CHECK(janitor_payload_purge("nope", 4, &out, &len) == 0);
}

static void test_per_app(void)
{
	char dir[] = "/tmp/hookd-test-appret-XXXXXX", err[256];
	char a1[ID_MAX], a2[ID_MAX], b1[ID_MAX], b2[ID_MAX], b3[ID_MAX], b4[ID_MAX], c1[ID_MAX];
	struct store *s;
	struct store_batch *b;
	json_t *m;
	unsigned flags;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	b = store_batch_new();
	/* In time order: ids are monotonic (id.h), a later id never carries an earlier time. */
	put_msg(b, "appA", 1000000, DLV_SUCCEEDED, NULL, a1); /* past A's cutoff: goes */
	put_msg(b, "appB", 1000010, DLV_FILTERED, NULL, b1);  /* past B's cutoff: goes */
	put_msg(b, "appC", 1000020, DLV_SUCCEEDED, NULL, c1); /* unlisted: defaults (keep) */
	put_msg(b, "appB", 3000000, DLV_SUCCEEDED, "{\"policy\":1}", b2); /* payload goes */
	put_msg(b, "appB", 4000000, DLV_PENDING, "{\"policy\":2}", b3);   /* pending: as is */
	put_msg(b, "appA", 6000000, DLV_DEAD, NULL, a2);      /* newer: kept whole */
	put_msg(b, "appB", 9000000, DLV_SUCCEEDED, NULL, b4); /* newer than both: whole */
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);
	CHECK(counts(s).messages == 7 && counts(s).bodies == 2);

	struct store_retention_app apps[] = {
		{.app_id = "appA", .cutoff_ms = 5000000},
		{.app_id = "appB", .cutoff_ms = 2000000, .payload_cutoff_ms = 8000000},
	};
	struct store_retention st = {
		.msg_max = 100,
		.apps = apps,
		.n_apps = 2,
		.delivery_prefix = prefix_of,
		.payload_purge = janitor_payload_purge,
	};
	CHECK(store_retention_now(s, &st) == HOOKD_OK);
	CHECK(st.msgs_deleted == 2);
	CHECK(st.payloads_purged == 1);
	CHECK(!st.more);
	CHECK((m = read_msg(s, "appA", a1)) == NULL);
	CHECK((m = read_msg(s, "appB", b1)) == NULL);
	m = read_msg(s, "appA", a2);
	CHECK(m && json_is_object(json_object_get(m, "data")) && !json_object_get(m, "payload_purged"));
	json_decref(m);
	/* b2: metadata kept, data null and marked; its body gone and its record says so. */
	m = read_msg(s, "appB", b2);
	CHECK(m && json_is_null(json_object_get(m, "data")));
	CHECK(m && json_is_true(json_object_get(m, "payload_purged")));
	CHECK(m && json_is_string(json_object_get(m, "type")));
	json_decref(m);
	CHECK(!has_body(s, b2, &flags) && !(flags & RECORD_CUSTOM_BODY));
	/* b3 is pending: untouched, body and all. */
	m = read_msg(s, "appB", b3);
	CHECK(m && json_is_object(json_object_get(m, "data")));
	json_decref(m);
	CHECK(has_body(s, b3, &flags) && (flags & RECORD_CUSTOM_BODY));
	m = read_msg(s, "appB", b4);
	CHECK(m && json_is_object(json_object_get(m, "data")));
	json_decref(m);
	m = read_msg(s, "appC", c1);
	CHECK(m != NULL);
	json_decref(m);
	/* Deliveries and attempts of b2 stay; a1's and b1's are gone. */
	CHECK(counts(s).messages == 5 && counts(s).deliveries == 5 && counts(s).attempts == 5);
	CHECK(counts(s).bodies == 1 && counts(s).epdlv == 5);

	/* Again: nothing left to do (b2 is purged already). */
	CHECK(store_retention_now(s, &st) == HOOKD_OK);
	CHECK(st.msgs_deleted == 0 && st.payloads_purged == 0);
	/* Later B's cutoff passes b2: the purged message goes with the rest. */
	apps[1].cutoff_ms = 3500000;
	CHECK(store_retention_now(s, &st) == HOOKD_OK);
	CHECK(st.msgs_deleted == 1 && st.payloads_purged == 0);
	CHECK((m = read_msg(s, "appB", b2)) == NULL);
	/* The unlisted app follows the step's defaults. */
	st.cutoff_ms = 5000000;
	CHECK(store_retention_now(s, &st) == HOOKD_OK);
	CHECK(st.msgs_deleted == 1);
	CHECK((m = read_msg(s, "appC", c1)) == NULL);
	store_close(s);
	rm_dir(dir);
}

/* At most msg_max per step and app_max per app; the apps take turns, and an app's walk
 * resumes past messages it had to keep (pending), so it never stalls on them. */
static void test_bounded_turns(void)
{
	char dir[] = "/tmp/hookd-test-appturn-XXXXXX", err[256], id[ID_MAX];
	struct store *s;
	struct store_batch *b;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(dir, 16 << 20, &s, err, sizeof(err)) == HOOKD_OK);
	b = store_batch_new();
	/* After test_per_app's times (ids are monotonic within the process). */
	for (int i = 0; i < 3; i++) /* small: 3 settled, old */
		put_msg(b, "small", 20000000 + i * 10, DLV_SUCCEEDED, NULL, id);
	for (int i = 0; i < 6; i++) /* big: 6 pending, then 20 settled, all old */
		put_msg(b, "big", 25000000 + i * 10, DLV_PENDING, NULL, id);
	for (int i = 0; i < 20; i++)
		put_msg(b, "big", 30000000 + i * 10, DLV_SUCCEEDED, NULL, id);
	CHECK(store_batch_write_now(s, b, 0) == HOOKD_OK);
	store_batch_free(b);

	struct store_retention_app apps[] = {
		{.app_id = "big", .cutoff_ms = 50000000},
		{.app_id = "small", .cutoff_ms = 50000000},
	};
	struct store_retention st = {
		.msg_max = 8,
		.app_max = 4,
		.apps = apps,
		.n_apps = 2,
		.delivery_prefix = prefix_of,
		.payload_purge = janitor_payload_purge,
	};
	/* Step 1: big gets its 4 (all pending: kept), small its 3. */
	CHECK(store_retention_now(s, &st) == HOOKD_OK);
	CHECK(st.msgs_deleted == 3 && st.more);
	CHECK(apps[0].visited && apps[0].next_after[0]);
	CHECK(counts(s).messages == 26);
	size_t steps = 1, total = 3;
	while (st.more) {
		CHECK(steps < 20);
		for (size_t i = 0; i < 2; i++) { /* what the janitor does with the results */
			if (apps[i].visited)
				memcpy(apps[i].after, apps[i].next_after, sizeof(apps[i].after));
			apps[i].visited = 0;
		}
		memcpy(st.start_after_app, st.next_after_app, sizeof(st.start_after_app));
		CHECK(store_retention_now(s, &st) == HOOKD_OK);
		CHECK(st.msgs_deleted <= 4); /* one app's turn at most, here */
		total += st.msgs_deleted;
		steps++;
	}
	CHECK(total == 23);
	CHECK(counts(s).messages == 6); /* the pending ones */
	CHECK(steps >= 6);              /* 26 examined in turns of at most 4 */
	store_close(s);
	rm_dir(dir);
}

int main(void)
{
	test_cutoffs();
	test_purge_format();
	test_per_app();
	test_bounded_turns();
	return check_done();
}
