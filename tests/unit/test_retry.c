/* test_retry.c - retry schedule, jitter and Retry-After (core/retry.c). */
#include <stdint.h>

#include "check.h"
#include "retry.h"

/* Enough draws that a jitter confined to a narrow band (or none) shows: with a uniform
 * ±20%, the chance that 10,000 draws all miss the outer 10% on one side is 0.75^10000. */
#define DRAWS 10000

/* Draws DRAWS delays for failures against schedule and checks bounds, spread and mean. */
static void check_jitter(const uint32_t *schedule, size_t n, uint32_t failures)
{
	int64_t base = (int64_t)schedule[failures - 1] * 1000;
	int64_t lo = base - base * RETRY_JITTER_PERCENT / 100;
	int64_t hi = base + base * RETRY_JITTER_PERCENT / 100;
	int64_t min = INT64_MAX, max = INT64_MIN, out_of_bounds = 0;
	double sum = 0;

	for (int i = 0; i < DRAWS; i++) {
		int64_t d = retry_delay_ms(schedule, n, failures);

		if (d < lo || d > hi || d < 0)
			out_of_bounds++;
		if (d < min)
			min = d;
		if (d > max)
			max = d;
		sum += (double)d;
	}
	if (out_of_bounds || !((double)min < 0.9 * (double)base) ||
	    !((double)max > 1.1 * (double)base))
		fprintf(stderr, "  base %lld ms: min %lld max %lld, %lld out of [%lld, %lld]\n",
			(long long)base, (long long)min, (long long)max, (long long)out_of_bounds,
			(long long)lo, (long long)hi);
	CHECK(out_of_bounds == 0);
	CHECK((double)min < 0.9 * (double)base);
	CHECK((double)max > 1.1 * (double)base);
	/* The mean of a uniform ±20% is the base; 2% is many standard errors away. */
	CHECK(sum / DRAWS > 0.98 * (double)base && sum / DRAWS < 1.02 * (double)base);
}

static void test_default_schedule(void)
{
	static const uint32_t expected[] = { 5, 300, 1800, 7200, 18000, 36000, 36000 };

	CHECK(retry_default_schedule_len == 7);
	for (size_t i = 0; i < 7; i++)
		CHECK(retry_default_schedule[i] == expected[i]);
}

static void test_jitter(void)
{
	static const uint32_t one[] = { 1 };
	static const uint32_t huge[] = { UINT32_MAX }; /* beyond randombytes_uniform's 32 bits */

	for (uint32_t f = 1; f <= retry_default_schedule_len; f++)
		check_jitter(retry_default_schedule, retry_default_schedule_len, f);
	check_jitter(one, 1, 1);
	check_jitter(huge, 1, 1);

	/* NULL means the default schedule. */
	{
		int64_t d = retry_delay_ms(NULL, 0, 2);

		CHECK(d >= 240000 && d <= 360000);
	}
}

static void test_zero_and_exhaustion(void)
{
	static const uint32_t zero[] = { 0, 0 };
	static const uint32_t three[] = { 1, 2, 3 };

	for (int i = 0; i < 1000; i++) {
		CHECK(retry_delay_ms(zero, 2, 1) == 0);
		CHECK(retry_delay_ms(zero, 2, 2) == 0);
	}
	CHECK(retry_delay_ms(zero, 2, 3) == RETRY_EXHAUSTED);
	CHECK(retry_delay_ms(three, 3, 3) >= 2400 && retry_delay_ms(three, 3, 3) <= 3600);
	CHECK(retry_delay_ms(three, 3, 4) == RETRY_EXHAUSTED);
	CHECK(retry_delay_ms(three, 3, UINT32_MAX) == RETRY_EXHAUSTED);
	CHECK(retry_delay_ms(three, 0, 1) == RETRY_EXHAUSTED); /* no retries configured */
	CHECK(retry_delay_ms(retry_default_schedule, retry_default_schedule_len, 7) >= 28800000);
	CHECK(retry_delay_ms(retry_default_schedule, retry_default_schedule_len, 8) ==
	      RETRY_EXHAUSTED);
	CHECK(retry_delay_ms(NULL, 0, 8) == RETRY_EXHAUSTED);
	CHECK(retry_delay_ms(three, 3, 0) == 0);
}

/* "Wed, 21 Oct 2015 07:28:00 GMT" */
#define FIXDATE_T 1445412480

struct after_case {
	const char *value;
	int64_t now, want;
};

static const struct after_case after_cases[] = {
	/* delta-seconds */
	{ "120", FIXDATE_T, 120 },
	{ "0", FIXDATE_T, 0 },
	{ "007", FIXDATE_T, 7 },
	{ " 120 ", FIXDATE_T, 120 },
	{ "120\r\n", FIXDATE_T, 120 },
	{ "\t3600", FIXDATE_T, 3600 },
	{ "2147483647", FIXDATE_T, 2147483647 },
	{ "2147483648", FIXDATE_T, 2147483648LL },
	{ "99999999999999999999999999", FIXDATE_T, 2147483648LL }, /* saturates, RFC 9110 */
	/* refused */
	{ "", FIXDATE_T, -1 },
	{ "   ", FIXDATE_T, -1 },
	{ "-5", FIXDATE_T, -1 },
	{ "+5", FIXDATE_T, -1 },
	{ "5s", FIXDATE_T, -1 },
	{ "1.5", FIXDATE_T, -1 },
	{ "1e3", FIXDATE_T, -1 },
	{ "12 34", FIXDATE_T, -1 },
	{ "0x10", FIXDATE_T, -1 },
	{ "soon", FIXDATE_T, -1 },
	{ "Wed, 21 Oct 2015 07:28:00", FIXDATE_T, -1 },       /* no GMT */
	{ "Wed, 21 Oct 2015 07:28:00 GMT junk", FIXDATE_T, -1 },
	{ "Wed, 21 Foo 2015 07:28:00 GMT", FIXDATE_T, -1 },
	{ "Wed, 32 Oct 2015 07:28:00 GMT", FIXDATE_T, -1 },
	{ "Wed, 21 Oct 2015 25:28:00 GMT", FIXDATE_T, -1 },
	{ "2015-10-21T07:28:00Z", FIXDATE_T, -1 },
	/* HTTP-date relative to a fixed now */
	{ "Wed, 21 Oct 2015 07:28:00 GMT", FIXDATE_T - 120, 120 },
	{ "Wed, 21 Oct 2015 07:28:00 GMT", FIXDATE_T - 86400, 86400 },
	{ "Wed, 21 Oct 2015 07:28:00 GMT", FIXDATE_T, 0 },
	{ "Wed, 21 Oct 2015 07:28:00 GMT", FIXDATE_T + 1, 0 },        /* past */
	{ "Wed, 21 Oct 2015 07:28:00 GMT", FIXDATE_T + 999999, 0 },   /* long past */
	{ "  Wed, 21 Oct 2015 07:28:00 GMT\r\n", FIXDATE_T - 60, 60 },
	{ "Thu, 01 Jan 1970 00:00:00 GMT", FIXDATE_T, 0 },
	{ "Wed, 21 Oct 2015 07:30:00 GMT", FIXDATE_T, 120 },
	/* the obsolete forms RFC 9110 still asks recipients to take */
	{ "Wednesday, 21-Oct-15 07:28:00 GMT", FIXDATE_T - 30, 30 },
	{ "Wed Oct 21 07:28:00 2015", FIXDATE_T - 45, 45 },
};

static void test_retry_after_parse(void)
{
	for (size_t i = 0; i < sizeof(after_cases) / sizeof(after_cases[0]); i++) {
		const struct after_case *c = &after_cases[i];
		int64_t got = retry_after_parse(c->value, c->now);

		if (got != c->want)
			fprintf(stderr, "  Retry-After \"%s\": got %lld, want %lld\n", c->value,
				(long long)got, (long long)c->want);
		CHECK(got == c->want);
	}
	CHECK(retry_after_parse(NULL, FIXDATE_T) == -1);
}

static void test_retry_with_retry_after(void)
{
	/* Retry-After longer than the schedule wins; shorter loses. */
	CHECK(retry_with_retry_after(5000, 120, 3600) == 120000);
	CHECK(retry_with_retry_after(500000, 120, 3600) == 500000);
	CHECK(retry_with_retry_after(120000, 120, 3600) == 120000);
	/* Capped. */
	CHECK(retry_with_retry_after(5000, 999999, 3600) == 3600000);
	CHECK(retry_with_retry_after(5000, 2147483648LL, 3600) == 3600000);
	CHECK(retry_with_retry_after(5000, 3600, 3600) == 3600000);
	CHECK(retry_with_retry_after(5000000, 999999, 3600) == 5000000);
	CHECK(retry_with_retry_after(5000, 60, 0) == 5000);
	CHECK(retry_with_retry_after(0, 0, 3600) == 0);
	CHECK(retry_with_retry_after(0, 1, 3600) == 1000);
	CHECK(retry_with_retry_after(5000, (int64_t)UINT32_MAX + 5, UINT32_MAX) ==
	      (int64_t)UINT32_MAX * 1000);
	/* Unparseable leaves the schedule alone; exhausted stays exhausted. */
	CHECK(retry_with_retry_after(5000, -1, 3600) == 5000);
	CHECK(retry_with_retry_after(RETRY_EXHAUSTED, 60, 3600) == RETRY_EXHAUSTED);
	/* End to end with a parsed value. */
	CHECK(retry_with_retry_after(retry_delay_ms(retry_default_schedule,
						    retry_default_schedule_len, 1),
				     retry_after_parse("Wed, 21 Oct 2015 07:38:00 GMT", FIXDATE_T),
				     3600) == 600000);
}

int main(void)
{
	test_default_schedule();
	test_jitter();
	test_zero_and_exhaustion();
	test_retry_after_parse();
	test_retry_with_retry_after();
	return check_done();
}
