/* json_scan_bench.c - CPU per publish body: parsing it into a jansson tree (what the publish
 * path did, and what the policy path still does with the envelope) against json_scan (what
 * the publish path does now), for issue 9's figures in bench/README.md.
 *
 *   build/bench/json_scan_bench [iterations per round]
 *
 * Two bodies of about 1.3 KiB: the one bench/publish.c sends in bench/run.sh's passes (a 1 KiB
 * pad string), and an order event with ~60 members, numbers, nesting and escapes. Times are
 * the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so other processes on the machine cost a
 * round little; the methods alternate within each of 9 rounds and the minimum and median
 * round are printed. */
#include "err.h"
#include "json_scan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 9

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Keeps the compiler from dropping the work. */
static volatile size_t sink;

static int run_jansson(const char *t, size_t n, size_t flags)
{
	json_t *j = json_loadb(t, n, flags, NULL);
	if (!j)
		return -1;
	sink += json_object_size(j);
	json_decref(j);
	return 0;
}

static int run_scan(const char *t, size_t n)
{
	struct json_scan sc;
	if (json_scan(t, n, &sc) != HOOKD_OK)
		return -1;
	sink += sc.n_members;
	return 0;
}

enum method { M_TREE, M_SCAN, M_ENVELOPE, M_COUNT };
static const char *const METHOD_NAMES[M_COUNT] = {
	"jansson tree of the body (publish path before)",
	"json_scan of the body (publish path now)",
	"jansson tree of the envelope (policy thread, now)",
};

static void bench_body(const char *label, const char *body, long iters)
{
	size_t n = strlen(body);
	double ns[M_COUNT][ROUNDS];
	/* The envelope the policy thread parses: the body's data after the envelope's fields. */
	char *env = malloc(n + 160);
	const char *data = strstr(body, "\"data\":");
	int envn = snprintf(env, n + 160,
			    "{\"id\":\"msg_2fGx3kQ9Zt1R0a8YbN4mW6cVdE\",\"type\":\"a.b\",\"timestamp\":"
			    "\"2026-12-02T10:00:00.000Z\",\"version\":\"1\",%.*s",
			    (int)(n - (size_t)(data - body)), data);

	for (int r = -1; r < ROUNDS; r++) { /* round -1 warms up */
		for (int m = 0; m < M_COUNT; m++) {
			uint64_t t0 = cpu_ns();
			for (long i = 0; i < iters; i++) {
				int rc = m == M_TREE ? run_jansson(body, n, JSON_REJECT_DUPLICATES)
					 : m == M_SCAN ? run_scan(body, n)
						       : run_jansson(env, (size_t)envn, 0);
				if (rc != 0) {
					fprintf(stderr, "%s: %s refused the body\n", label, METHOD_NAMES[m]);
					exit(1);
				}
			}
			if (r >= 0)
				ns[m][r] = (double)(cpu_ns() - t0) / (double)iters;
		}
	}
	printf("%s (%zu bytes), CPU ns per body over %d rounds of %ld:\n", label, n, ROUNDS, iters);
	for (int m = 0; m < M_COUNT; m++) {
		qsort(ns[m], ROUNDS, sizeof(double), cmp_double);
		printf("  %-52s min %8.0f  median %8.0f\n", METHOD_NAMES[m], ns[m][0], ns[m][ROUNDS / 2]);
	}
	free(env);
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
	char pad[1025], *bench;
	size_t cap = 2048;

	if (iters < 1)
		iters = 1;
	for (int i = 0; i < 1024; i++)
		pad[i] = (char)('a' + i % 26);
	pad[1024] = 0;
	/* As bench/publish.c formats it (its default --pad 1024). */
	bench = malloc(cap);
	snprintf(bench, cap,
		 "{\"type\":\"bench.event\",\"data\":{\"sent_ns\":\"1764669600123456789\",\"customer\":"
		 "{\"email\":\"ann.lee@example.com\",\"name\":\"Ann Lee\"},\"pad\":\"%s\"}}",
		 pad);
	static const char order[] =
		"{\"type\":\"order.created\",\"version\":\"2\",\"source\":\"shop\",\"data\":{"
		"\"order_id\":\"ord_8812\",\"amount\":15000,\"total\":150.25,\"currency\":\"EUR\","
		"\"status\":\"open\",\"region\":\"eu-west\",\"priority\":3,\"gift\":false,"
		"\"customer\":{\"id\":\"cus_11\",\"email\":\"ann@example.com\",\"name\":\"Ann Exampl\\u00e9\","
		"\"phone\":\"+33 1 23 45 67 89\",\"vip\":true,\"address\":{\"line1\":\"1 rue de la Paix\","
		"\"line2\":null,\"city\":\"Paris\",\"postal_code\":\"75002\",\"country\":\"FR\","
		"\"geo\":{\"lat\":48.8686,\"lon\":2.3314}}},\"card\":{\"brand\":\"visa\",\"last4\":\"4242\","
		"\"exp_month\":12,\"exp_year\":2030,\"funding\":\"credit\"},\"items\":[{\"sku\":\"SKU-1\","
		"\"name\":\"Widget\",\"qty\":2,\"price\":2500,\"tags\":[\"blue\",\"small\"]},{\"sku\":"
		"\"SKU-2\",\"name\":\"Gadget \\\"pro\\\"\",\"qty\":1,\"price\":10000,\"tags\":[]},{\"sku\":"
		"\"SKU-3\",\"name\":\"Gizmo\",\"qty\":4,\"price\":0,\"tags\":[\"free\"]},{\"sku\":\"SKU-4\","
		"\"name\":\"Doohickey\",\"qty\":1,\"price\":-250,\"tags\":[\"refund\",\"manual\"]}],"
		"\"metadata\":{\"campaign\":\"spring\",\"channel\":\"web\",\"coupon\":null,\"ab\":\"b\","
		"\"notes\":\"leave at the door,\\nring twice; the dog is friendly\",\"ref\":\"https:\\/\\/"
		"example.com\\/r\\/123\"},\"shipping\":{\"method\":\"express\",\"carrier\":\"dhl\","
		"\"tracking\":\"JD014600003828\",\"cost\":9.99,\"eta_days\":2,\"signature\":true},"
		"\"discounts\":[{\"code\":\"SPRING10\",\"pct\":10},{\"code\":\"LOYAL\",\"amount\":5.5e0}],"
		"\"created_at\":\"2024-05-01T11:59:58Z\",\"updated_at\":\"2024-05-01T12:00:01Z\","
		"\"ip\":\"203.0.113.7\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64)\"}}";

	bench_body("bench/publish.c body", bench, iters);
	bench_body("order event body", order, iters);
	free(bench);
	return 0;
}
