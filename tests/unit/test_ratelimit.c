/* test_ratelimit.c - one report per interval with the count of the others (core/ratelimit.c). */
#include "check.h"
#include "ratelimit.h"

#include <stdint.h>

int main(void)
{
	struct ratelimit r = {.interval_ms = 1000};
	uint64_t n = 99;

	/* The first event is reported at once, with nothing suppressed before it. */
	CHECK(ratelimit_check(&r, 5000, &n) && n == 0);
	/* Within the interval: counted, not reported; *suppressed is left alone. */
	n = 99;
	for (int i = 0; i < 1000; i++)
		CHECK(!ratelimit_check(&r, 5000 + i, &n));
	CHECK(n == 99);
	/* The first one after the interval is reported with the count of the others. */
	CHECK(ratelimit_check(&r, 6000, &n) && n == 1000);
	CHECK(!ratelimit_check(&r, 6999, &n));
	CHECK(ratelimit_check(&r, 60000, &n) && n == 1);
	/* Time 0 is a time like any other (the monotonic clock may start there). */
	struct ratelimit z = {.interval_ms = 1000};
	CHECK(ratelimit_check(&z, 0, &n) && n == 0);
	CHECK(!ratelimit_check(&z, 10, &n));
	CHECK(ratelimit_check(&z, 1000, &n) && n == 1);
	return check_done();
}
