/* test_epstats.c - an endpoint's last hour of outcomes (core/epstats.c). */
#include "check.h"
#include "epstats.h"

#include <string.h>

#define MIN_MS (60 * 1000)

static void test_quantiles_within_a_bin(void)
{
	struct epstats s;
	struct epstats_view v;
	int64_t t = 1800000000000LL;
	memset(&s, 0, sizeof(s));
	epstats_read(&s, t, &v);
	CHECK(v.ok == 0 && v.fail == 0 && v.p50_ms < 0 && v.p99_ms < 0);
	for (int i = 0; i < 980; i++)
		epstats_add(&s, true, 200, NULL, 10, t);
	for (int i = 0; i < 20; i++)
		epstats_add(&s, false, 503, "HTTP 503", 1000, t);
	epstats_read(&s, t, &v);
	CHECK(v.ok == 980 && v.fail == 20);
	/* Bins grow by sqrt(2): 10 ms reads as 8..11.3, 1000 ms as 724..1024. */
	CHECK(v.p50_ms > 8 && v.p50_ms <= 11.32);
	CHECK(v.p99_ms > 724 && v.p99_ms <= 1024.1);
	CHECK(s.last_failure_status == 503);
	CHECK_STR(s.last_failure_error, "HTTP 503");
	CHECK(s.last_success_ms == t && s.last_failure_ms == t);
	/* 0 and 1 ms land in the first bin; hours in the last. */
	memset(&s, 0, sizeof(s));
	epstats_add(&s, true, 200, NULL, 0, t);
	epstats_add(&s, true, 200, NULL, 1, t);
	epstats_read(&s, t, &v);
	CHECK(v.p99_ms <= 1);
	epstats_add(&s, true, 200, NULL, 4 * 3600 * 1000, t);
	epstats_read(&s, t, &v);
	CHECK(v.p99_ms > 500000);
}

/* Outcomes older than an hour stop counting, with or without new ones in between. */
static void test_the_hour_slides(void)
{
	struct epstats s;
	struct epstats_view v;
	int64_t t = 1800000000000LL - 1800000000000LL % (5 * MIN_MS);
	memset(&s, 0, sizeof(s));
	epstats_add(&s, false, 0, "timed out", 5000, t);
	epstats_add(&s, true, 200, NULL, 5, t + 30 * MIN_MS);
	epstats_read(&s, t + 59 * MIN_MS, &v);
	CHECK(v.ok == 1 && v.fail == 1);
	epstats_read(&s, t + 66 * MIN_MS, &v); /* its five-minute slot ended over an hour ago */
	CHECK(v.ok == 1 && v.fail == 0);
	epstats_read(&s, t + 100 * MIN_MS, &v);
	CHECK(v.ok == 0 && v.fail == 0 && v.p50_ms < 0);
	epstats_add(&s, true, 200, NULL, 5, t + 200 * MIN_MS); /* after a long silence */
	epstats_read(&s, t + 200 * MIN_MS, &v);
	CHECK(v.ok == 1 && v.fail == 0);
	CHECK(s.last_failure_ms == t); /* the last failure is remembered, not counted */
}

int main(void)
{
	test_quantiles_within_a_bin();
	test_the_hour_slides();
	return check_done();
}
