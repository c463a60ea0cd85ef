/* test_delivery.c - the delivery id scheme and shared bodies (core/delivery.c). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "delivery.h"
#include "registry.h"
#include "err.h"
#include "id.h"

#define MSG "msg_01HZX3J5K6M7N8P9QRSTVWXYZ0"

/* make, then parse back: the same message, series and number. */
static void check_round_trip(enum delivery_series series, size_t n, const char *want)
{
	char id[DELIVERY_ID_MAX], msg[ID_MAX];
	enum delivery_series s = !series;
	size_t len = delivery_id_make(MSG, series, n, id), got = SIZE_MAX;

	CHECK_STR(id, want);
	CHECK(len == strlen(want));
	CHECK(delivery_id_parse(id, len, msg, &s, &got) == HOOKD_OK);
	CHECK_STR(msg, MSG);
	CHECK(s == series);
	CHECK(got == n);
}

static void test_make_parse(void)
{
	check_round_trip(DELIVERY_PLAIN, 0, "dlv_01HZX3J5K6M7N8P9QRSTVWXYZ0_0");
	check_round_trip(DELIVERY_PLAIN, 17, "dlv_01HZX3J5K6M7N8P9QRSTVWXYZ0_17");
	check_round_trip(DELIVERY_POLICY, 0, "dlv_01HZX3J5K6M7N8P9QRSTVWXYZ0_p0");
	check_round_trip(DELIVERY_POLICY, 123456, "dlv_01HZX3J5K6M7N8P9QRSTVWXYZ0_p123456");
	check_round_trip(DELIVERY_POLICY, SIZE_MAX,
			 "dlv_01HZX3J5K6M7N8P9QRSTVWXYZ0_p18446744073709551615");
}

/* Ids made by id_make fit, in both series, with the largest number. */
static void test_fits(void)
{
	char msg[ID_MAX], id[DELIVERY_ID_MAX];
	id_make("msg_", 1700000000000, msg);
	size_t len = delivery_id_make(msg, DELIVERY_POLICY, SIZE_MAX, id);
	CHECK(len == strlen(id));
	CHECK(len == 4 + ID_BODY_LEN + 2 + 20);
	CHECK(delivery_id_parse(id, len, NULL, NULL, NULL) == HOOKD_OK);
}

/* Every id of a message starts with its prefix; only policy ones with the policy prefix;
 * another message's ids start with neither. */
static void test_prefixes(void)
{
	char prefix[DELIVERY_ID_MAX], pprefix[DELIVERY_ID_MAX], id[DELIVERY_ID_MAX];
	size_t plen = delivery_id_prefix(MSG, prefix);
	size_t pplen = delivery_id_policy_prefix(MSG, pprefix);

	CHECK_STR(prefix, "dlv_01HZX3J5K6M7N8P9QRSTVWXYZ0_");
	CHECK(plen == strlen(prefix));
	CHECK_STR(pprefix, "dlv_01HZX3J5K6M7N8P9QRSTVWXYZ0_p");
	CHECK(pplen == strlen(pprefix));

	delivery_id_make(MSG, DELIVERY_PLAIN, 3, id);
	CHECK(strncmp(id, prefix, plen) == 0);
	CHECK(strncmp(id, pprefix, pplen) != 0);
	delivery_id_make(MSG, DELIVERY_POLICY, 3, id);
	CHECK(strncmp(id, prefix, plen) == 0);
	CHECK(strncmp(id, pprefix, pplen) == 0);
	delivery_id_make("msg_01HZX3J5K6M7N8P9QRSTVWXYZ1", DELIVERY_PLAIN, 3, id);
	CHECK(strncmp(id, prefix, plen) != 0);
}

/* Parsing takes a length (store keys are not NUL-terminated) and refuses what
 * delivery_id_make never writes, leaving the outputs alone. */
static void test_parse_refuses(void)
{
	static const char *bad[] = {
		"", "dlv", "dlv_", "dlv__0", "dlv_X", "dlv_X_", "dlv_X_p", "dlv_X_q1",
		"dlv_X_1a", "dlv_X_-1", "dlv_X_+1", "dlv_X_01", "dlv_X_p00", "dlv_X_ 1",
		"msg_X_1", "DLV_X_1", "dlv_X_18446744073709551616", "dlv_X_p99999999999999999999",
		"dlv_0123456789012345678901234567890123456789012345_1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char msg[ID_MAX] = "untouched";
		enum delivery_series s = DELIVERY_POLICY;
		size_t n = 42;
		int rc = delivery_id_parse(bad[i], strlen(bad[i]), msg, &s, &n);
		if (rc != HOOKD_EINVAL)
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
		CHECK(rc == HOOKD_EINVAL);
		CHECK_STR(msg, "untouched");
		CHECK(s == DELIVERY_POLICY && n == 42);
	}

	/* A key longer than the id: only len bytes count. */
	const char key[] = "dlv_ABC_p12XYZ";
	size_t n = 0;
	enum delivery_series s = DELIVERY_PLAIN;
	char msg[ID_MAX];
	CHECK(delivery_id_parse(key, 11, msg, &s, &n) == HOOKD_OK);
	CHECK_STR(msg, "msg_ABC");
	CHECK(s == DELIVERY_POLICY && n == 12);
	CHECK(delivery_id_parse(key, sizeof(key) - 1, msg, &s, &n) == HOOKD_EINVAL);
}

static void test_body_refs(void)
{
	struct body *b = body_new("{\"a\":1}", 7);
	CHECK(b && b->len == 7 && memcmp(b->data, "{\"a\":1}", 8) == 0);
	CHECK(body_ref(b) == b);
	body_unref(b);
	body_unref(b); /* the last reference: freed (ASan checks) */
	CHECK(body_ref(NULL) == NULL);
	body_unref(NULL);
}

static void test_error_text(void)
{
	char long_text[2 * DELIVERY_ERROR_MAX];
	static struct endpoint ep = {.refs = 1}; /* the registry's reference: never freed */
	struct delivery *dv = delivery_new("dlv_x_0", "msg_x", "app", &ep, NULL, 0);
	CHECK(dv != NULL);
	CHECK(dv->last_error == NULL); /* none: nothing on the heap */
	CHECK_STR(delivery_error(dv), "");
	delivery_set_error(dv, "HTTP %d", 503);
	CHECK_STR(delivery_error(dv), "HTTP 503");
	delivery_set_error(dv, "%s", "connection refused");
	CHECK_STR(delivery_error(dv), "connection refused");
	memset(long_text, 'e', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = 0;
	delivery_set_error(dv, "%s", long_text);
	CHECK(strlen(delivery_error(dv)) == DELIVERY_ERROR_MAX - 1);
	delivery_set_error(dv, "%s", ""); /* cleared: freed again */
	CHECK(dv->last_error == NULL);
	delivery_set_error(dv, "HTTP %d", 500);
	delivery_clear_error(dv); /* a success */
	CHECK(dv->last_error == NULL);
	CHECK_STR(delivery_error(dv), "");
	delivery_set_error(dv, "last: %s", "x");
	delivery_free(dv); /* the text goes with it (ASan checks) */
}

int main(void)
{
	test_make_parse();
	test_fits();
	test_prefixes();
	test_parse_refuses();
	test_body_refs();
	test_error_text();
	return check_done();
}
