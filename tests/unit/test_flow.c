/* test_flow.c - breaker, rate limit, throttling and pauses (core/flow.c), on a clock the
 * test moves itself. */
#include "check.h"
#include "flow.h"

static struct flow_limits limits(void)
{
	struct flow_limits l = {
		.consecutive_failures = 5,
		.failure_ratio = 0,
		.window_s = 60,
		.cooldown_s = 10,
		.cooldown_max_s = 40,
		.per_second = 0,
		.burst = 1,
		.max_in_flight = 4,
	};
	return l;
}

static enum flow_event fail(struct flow *f, const struct flow_limits *l, int64_t now)
{
	return flow_outcome(f, l, false, 500, -1, false, now);
}

static void test_failure_kinds(void)
{
	CHECK(!flow_is_failure(true, 200));
	CHECK(flow_is_failure(false, 0));   /* connect, timeout, reset */
	CHECK(flow_is_failure(false, 500));
	CHECK(flow_is_failure(false, 503));
	CHECK(flow_is_failure(false, 429));
	CHECK(flow_is_failure(false, 408));
	CHECK(flow_is_failure(false, 302)); /* not followed: the endpoint is misconfigured */
	CHECK(!flow_is_failure(false, 400)); /* that message was refused; the endpoint is up */
	CHECK(!flow_is_failure(false, 422));
}

/* N failures in a row open it; a success in between starts the count again. */
static void test_consecutive_opens(void)
{
	struct flow f;
	struct flow_limits l = limits();
	int64_t t = 1000000;
	flow_init(&f);
	for (int i = 0; i < 4; i++)
		CHECK(fail(&f, &l, t++) == FLOW_NONE);
	CHECK(flow_outcome(&f, &l, true, 200, -1, false, t++) == FLOW_NONE);
	for (int i = 0; i < 4; i++)
		CHECK(fail(&f, &l, t++) == FLOW_NONE);
	CHECK(f.breaker == FLOW_CLOSED);
	CHECK(fail(&f, &l, t) == FLOW_OPENED);
	CHECK(f.breaker == FLOW_OPEN);
	/* Open: nothing is admitted before the cooldown, and flow_admit says when. */
	CHECK(flow_admit(&f, &l, 0, t + 1) == t + 10000);
	CHECK(flow_admit(&f, &l, 0, t + 9999) == t + 10000);
	/* 4xx refusals of one message do not open it. */
	flow_init(&f);
	for (int i = 0; i < 50; i++)
		CHECK(flow_outcome(&f, &l, false, 400, -1, false, t + i) == FLOW_NONE);
	CHECK(f.breaker == FLOW_CLOSED);
}

/* One probe per cooldown; a failed probe doubles the cooldown up to its cap; a success
 * closes it. */
static void test_half_open_probe(void)
{
	struct flow f;
	struct flow_limits l = limits();
	int64_t t = 5000000, at;
	flow_init(&f);
	for (int i = 0; i < 5; i++)
		fail(&f, &l, t);
	CHECK(f.breaker == FLOW_OPEN);
	t += 10000;
	CHECK(flow_admit(&f, &l, 0, t) == 0); /* the probe */
	CHECK(f.breaker == FLOW_HALF_OPEN);
	CHECK(flow_admit(&f, &l, 0, t) == FLOW_AFTER_COMPLETION); /* one at a time */
	/* An attempt from before it opened ends now: it does not decide. */
	CHECK(flow_outcome(&f, &l, true, 200, -1, false, t) == FLOW_NONE);
	CHECK(f.breaker == FLOW_HALF_OPEN);
	/* The probe fails: open again for twice as long, then four times, then capped. */
	CHECK(flow_outcome(&f, &l, false, 0, -1, true, t) == FLOW_REOPENED);
	CHECK((at = flow_admit(&f, &l, 0, t)) == t + 20000);
	t = at;
	CHECK(flow_admit(&f, &l, 0, t) == 0);
	CHECK(flow_outcome(&f, &l, false, 503, -1, true, t) == FLOW_REOPENED);
	CHECK((at = flow_admit(&f, &l, 0, t)) == t + 40000);
	t = at;
	CHECK(flow_admit(&f, &l, 0, t) == 0);
	CHECK(flow_outcome(&f, &l, false, 500, -1, true, t) == FLOW_REOPENED);
	CHECK(flow_admit(&f, &l, 0, t) == t + 40000); /* cooldown_max_s */
	t += 40000;
	CHECK(flow_admit(&f, &l, 0, t) == 0);
	CHECK(flow_outcome(&f, &l, true, 204, -1, true, t) == FLOW_CLOSED_AGAIN);
	CHECK(f.breaker == FLOW_CLOSED);
	/* Closed again, the cooldown starts over: five failures give 10 s. */
	for (int i = 0; i < 5; i++)
		fail(&f, &l, t);
	CHECK(flow_admit(&f, &l, 0, t) == t + 10000);
}

/* After a close the backlog goes out on a ramp: 1 per second, doubling every second. */
static void test_ramp_after_close(void)
{
	struct flow f;
	struct flow_limits l = limits();
	int64_t t = 9000000;
	int sent;
	l.max_in_flight = 1000;
	flow_init(&f);
	for (int i = 0; i < 5; i++)
		fail(&f, &l, t);
	t += 10000;
	CHECK(flow_admit(&f, &l, 0, t) == 0);
	CHECK(flow_outcome(&f, &l, true, 200, -1, true, t) == FLOW_CLOSED_AGAIN);
	/* Count what may start in each of the next seconds, asking every millisecond. */
	int per_s[6] = {0};
	for (int64_t ms = 0; ms < 6000; ms++)
		while (flow_admit(&f, &l, 0, t + ms) == 0)
			per_s[ms / 1000]++;
	for (sent = 0; sent < 5; sent++)
		fprintf(stderr, "  ramp second %d: %d\n", sent, per_s[sent]);
	CHECK(per_s[0] >= 1 && per_s[0] <= 2);
	CHECK(per_s[1] >= 1 && per_s[1] <= 3);
	CHECK(per_s[3] >= 6 && per_s[3] <= 10);
	CHECK(per_s[5] > per_s[3] * 2);
	/* The ramp ends: unlimited again after some seconds. */
	for (int i = 0; i < 1000; i++)
		CHECK(flow_admit(&f, &l, 0, t + 20000) == 0);
}

/* per_second with burst: a burst at once, then one token per 1/rate. */
static void test_token_bucket(void)
{
	struct flow f;
	struct flow_limits l = limits();
	int64_t t = 3000000, at;
	l.per_second = 10;
	l.burst = 3;
	l.max_in_flight = 100;
	flow_init(&f);
	for (int i = 0; i < 3; i++)
		CHECK(flow_admit(&f, &l, 0, t) == 0);
	CHECK((at = flow_admit(&f, &l, 0, t)) == t + 100);
	CHECK(flow_admit(&f, &l, 0, at) == 0);
	CHECK(flow_admit(&f, &l, 0, at) == at + 100);
	/* Over ten seconds, ten per second plus the burst, never more. */
	int n = 0;
	for (int64_t ms = 0; ms < 10000; ms++)
		while (flow_admit(&f, &l, 0, at + 1 + ms) == 0)
			n++;
	CHECK(n >= 99 && n <= 103);
	CHECK(flow_rate(&f, &l, at) == 10);
	/* The in-flight cap: only a completion changes the answer. */
	flow_init(&f);
	CHECK(flow_admit(&f, &l, 100, t) == FLOW_AFTER_COMPLETION);
	CHECK(flow_admit(&f, &l, 99, t) == 0);
}

/* 429/503 halve what the endpoint was sending, once per second; the rate holds, then grows
 * back to the endpoint's own; Retry-After pauses it. */
static void test_throttle(void)
{
	struct flow f;
	struct flow_limits l = limits();
	int64_t t = 7000000;
	l.per_second = 100;
	l.burst = 100;
	l.max_in_flight = 1000;
	l.consecutive_failures = 0;
	flow_init(&f);
	CHECK(flow_outcome(&f, &l, false, 503, -1, false, t) == FLOW_THROTTLED);
	CHECK(flow_rate(&f, &l, t) == 50);
	/* The rest of that burst's answers are the same signal. */
	CHECK(flow_outcome(&f, &l, false, 503, -1, false, t + 10) == FLOW_NONE);
	CHECK(flow_rate(&f, &l, t + 10) == 50);
	CHECK(flow_outcome(&f, &l, false, 429, -1, false, t + 1010) == FLOW_THROTTLED);
	CHECK(flow_rate(&f, &l, t + 1010) == 25);
	CHECK(flow_outcome(&f, &l, false, 502, -1, false, t + 2020) == FLOW_THROTTLED);
	CHECK(flow_outcome(&f, &l, false, 504, -1, false, t + 3030) == FLOW_THROTTLED);
	CHECK(flow_rate(&f, &l, t + 3030) == 6.25);
	/* Held for FLOW_THROTTLE_HOLD_MS after the last one, then doubling each second. */
	CHECK(flow_rate(&f, &l, t + 3030 + FLOW_THROTTLE_HOLD_MS - 1) == 6.25);
	CHECK(flow_rate(&f, &l, t + 3030 + FLOW_THROTTLE_HOLD_MS + 1000) == 12.5);
	CHECK(flow_rate(&f, &l, t + 3030 + FLOW_THROTTLE_HOLD_MS + 60000) == 100);
	/* Paced strictly while lowered: no burst saved up. */
	flow_init(&f);
	flow_outcome(&f, &l, false, 503, -1, false, t);
	CHECK(flow_admit(&f, &l, 0, t + 2000) == 0);
	CHECK(flow_admit(&f, &l, 0, t + 2000) > t + 2000);

	/* Without a limit of its own: half of what it was sending in the last second. */
	l.per_second = 0;
	flow_init(&f);
	for (int i = 0; i < 40; i++)
		CHECK(flow_admit(&f, &l, 0, t + i) == 0);
	CHECK(flow_outcome(&f, &l, false, 429, -1, false, t + 100) == FLOW_THROTTLED);
	CHECK(flow_rate(&f, &l, t + 100) == 20);

	/* Sending far below its own limit: halved from what it sends, and never below
	 * FLOW_MIN_RATE, so a quiet endpoint's retries keep to their schedule. */
	l.per_second = 100;
	flow_init(&f);
	for (int i = 0; i < 4; i++)
		CHECK(flow_admit(&f, &l, 0, t + i * 250) == 0);
	CHECK(flow_outcome(&f, &l, false, 503, -1, false, t + 900) == FLOW_THROTTLED);
	CHECK(flow_rate(&f, &l, t + 900) == 2);
	for (int k = 1; k <= 5; k++)
		flow_outcome(&f, &l, false, 503, -1, false, t + 900 + k * 1000);
	CHECK(flow_rate(&f, &l, t + 5900) == FLOW_MIN_RATE);
	l.per_second = 0;

	/* Retry-After: nothing until then. */
	flow_init(&f);
	flow_outcome(&f, &l, false, 429, 3000, false, t);
	CHECK(flow_admit(&f, &l, 0, t + 1) == t + 3000);
	CHECK(flow_admit(&f, &l, 0, t + 3000) == 0);
}

/* The ratio rule: only with enough outcomes in the window, and only within the window. */
static void test_failure_ratio(void)
{
	struct flow f;
	struct flow_limits l = limits();
	int64_t t = 2000000;
	l.consecutive_failures = 0;
	l.failure_ratio = 0.5;
	l.window_s = 10;
	flow_init(&f);
	/* Alternating: never two failures in a row, half of all. */
	for (int i = 0; i < FLOW_RATIO_MIN_ATTEMPTS - 2; i++)
		CHECK(flow_outcome(&f, &l, i % 2 == 0, i % 2 ? 500 : 200, -1, false, t + i) ==
		      FLOW_NONE);
	CHECK(flow_outcome(&f, &l, true, 200, -1, false, t + 50) == FLOW_NONE);
	CHECK(fail(&f, &l, t + 51) == FLOW_OPENED); /* 20 outcomes, 10 failed */
	/* Outcomes older than the window do not count. */
	flow_init(&f);
	for (int i = 0; i < 15; i++)
		fail(&f, &l, t);
	for (int i = 0; i < 15; i++)
		flow_outcome(&f, &l, true, 200, -1, false, t + 20000 + i);
	CHECK(fail(&f, &l, t + 20100) == FLOW_NONE); /* 16 in the window: too few */
	CHECK(f.breaker == FLOW_CLOSED);
}

int main(void)
{
	test_failure_kinds();
	test_consecutive_opens();
	test_half_open_probe();
	test_ramp_after_close();
	test_token_bucket();
	test_throttle();
	test_failure_ratio();
	return check_done();
}
