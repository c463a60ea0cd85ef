/* flow.c - one endpoint's breaker, rate limit and throttling (flow.h). */
#include "flow.h"

#include <math.h>
#include <string.h>

void flow_init(struct flow *f)
{
	memset(f, 0, sizeof(*f));
	f->breaker = FLOW_CLOSED;
}

bool flow_is_failure(bool ok, int status)
{
	if (ok)
		return false;
	if (status >= 400 && status < 500 && status != 408 && status != 429)
		return false; /* the receiver refused this message; the endpoint is up */
	return true;
}

const char *flow_breaker_name(enum flow_breaker b)
{
	switch (b) {
	case FLOW_OPEN:
		return "open";
	case FLOW_HALF_OPEN:
		return "half_open";
	case FLOW_CLOSED:
		break;
	}
	return "closed";
}

/* ---- the sliding window ---- */

static int64_t flow_slot_len(const struct flow_limits *l)
{
	int64_t len = (int64_t)l->window_s * 1000 / FLOW_SLOTS;
	return len > 0 ? len : 1;
}

/* Moves the window to now, clearing the slots that fell out of it. */
static void flow_window_advance(struct flow *f, const struct flow_limits *l, int64_t now)
{
	int64_t len = flow_slot_len(l);
	if (!f->slot_ms || now - f->slot_ms >= len * FLOW_SLOTS) {
		memset(f->ok, 0, sizeof(f->ok));
		memset(f->fail, 0, sizeof(f->fail));
		f->slot = 0;
		f->slot_ms = now;
		return;
	}
	while (now - f->slot_ms >= len) {
		f->slot = (f->slot + 1) % FLOW_SLOTS;
		f->ok[f->slot] = f->fail[f->slot] = 0;
		f->slot_ms += len;
	}
}

static bool flow_ratio_trips(const struct flow *f, const struct flow_limits *l)
{
	uint64_t ok = 0, fail = 0;
	if (l->failure_ratio <= 0)
		return false;
	for (int i = 0; i < FLOW_SLOTS; i++) {
		ok += f->ok[i];
		fail += f->fail[i];
	}
	return ok + fail >= FLOW_RATIO_MIN_ATTEMPTS &&
	       (double)fail >= l->failure_ratio * (double)(ok + fail);
}

/* ---- rates ---- */

/* The endpoint's own ceiling: its rate limit, or the end of a ramp when it has none. */
static double flow_ceiling(const struct flow_limits *l)
{
	return l->per_second > 0 ? l->per_second : FLOW_RAMP_END_RATE;
}

/* Grows a lowered rate back: doubling every second once the hold after the last throttling
 * answer is over; cleared once it reaches the endpoint's own ceiling. */
static void flow_limit_update(struct flow *f, const struct flow_limits *l, int64_t now)
{
	int64_t from;
	if (f->limit <= 0)
		return;
	from = f->limit_ms;
	if (f->throttled_ms && f->throttled_ms + FLOW_THROTTLE_HOLD_MS > from)
		from = f->throttled_ms + FLOW_THROTTLE_HOLD_MS;
	while (now - from >= 1000 && f->limit > 0) {
		f->limit *= 2;
		from += 1000;
		f->limit_ms = from;
		if (f->limit >= flow_ceiling(l))
			f->limit = 0;
	}
}

/* The rate in effect with f's lowered rate as it stands (flow_limit_update done). */
static double flow_rate_of(const struct flow *f, const struct flow_limits *l)
{
	if (f->limit > 0 && (l->per_second <= 0 || f->limit < l->per_second))
		return f->limit;
	return l->per_second > 0 ? l->per_second : 0;
}

/* For a reader (the status feed): the growth due by now, on a copy. */
double flow_rate(const struct flow *f, const struct flow_limits *l, int64_t now_ms)
{
	struct flow g = *f;
	flow_limit_update(&g, l, now_ms);
	return flow_rate_of(&g, l);
}

/* Takes a token at the rate in effect: 0, or when the next one is there. */
static int64_t flow_take(struct flow *f, const struct flow_limits *l, int64_t now)
{
	double rate, cap;
	flow_limit_update(f, l, now);
	rate = flow_rate_of(f, l);
	if (rate <= 0)
		return 0;
	/* A lowered rate paces strictly; the endpoint's own limit allows its burst. */
	cap = f->limit > 0 ? 1.0 : (double)(l->burst ? l->burst : 1);
	if (now > f->tokens_ms) {
		f->tokens += (double)(now - f->tokens_ms) * rate / 1000.0;
		f->tokens_ms = now;
	}
	if (f->tokens > cap)
		f->tokens = cap;
	if (f->tokens >= 1.0) {
		f->tokens -= 1.0;
		return 0;
	}
	int64_t wait = (int64_t)ceil((1.0 - f->tokens) * 1000.0 / rate);
	return now + (wait > 0 ? wait : 1);
}

static void flow_count_start(struct flow *f, int64_t now)
{
	int64_t s = now / 1000;
	if (s != f->started_s) {
		f->started_last_s = s == f->started_s + 1 ? f->started_this_s : 0;
		f->started_this_s = 0;
		f->started_s = s;
	}
	f->started_this_s++;
}

/* ---- admission ---- */

int64_t flow_admit(struct flow *f, const struct flow_limits *l, uint32_t inflight,
		   int64_t now_ms)
{
	int64_t at;
	if (f->paused_until_ms > now_ms)
		return f->paused_until_ms;
	if (f->breaker == FLOW_OPEN) {
		if (now_ms < f->probe_at_ms)
			return f->probe_at_ms;
		f->breaker = FLOW_HALF_OPEN;
		f->probe_out = false;
	}
	if (f->breaker == FLOW_HALF_OPEN) {
		if (f->probe_out)
			return FLOW_AFTER_COMPLETION;
		f->probe_out = true; /* the probe goes whatever the bucket says: one attempt */
		flow_count_start(f, now_ms);
		return 0;
	}
	if (inflight >= l->max_in_flight)
		return FLOW_AFTER_COMPLETION;
	if ((at = flow_take(f, l, now_ms)) != 0)
		return at;
	flow_count_start(f, now_ms);
	return 0;
}

/* ---- outcomes ---- */

static int64_t flow_cooldown_ms(const struct flow_limits *l, uint32_t opens)
{
	int64_t c = (int64_t)l->cooldown_s * 1000, max = (int64_t)l->cooldown_max_s * 1000;
	for (uint32_t i = 1; i < opens && c < max; i++)
		c *= 2;
	return c < max ? c : max;
}

static void flow_open(struct flow *f, const struct flow_limits *l, int64_t now)
{
	f->breaker = FLOW_OPEN;
	f->opens++;
	f->opened_ms = now;
	f->probe_at_ms = now + flow_cooldown_ms(l, f->opens);
	f->probe_out = false;
}

/* The probe succeeded: closed, and the backlog goes out on a ramp, not at once. */
static void flow_close(struct flow *f, const struct flow_limits *l, int64_t now)
{
	f->breaker = FLOW_CLOSED;
	f->consecutive = 0;
	f->opens = 0;
	f->probe_out = false;
	memset(f->ok, 0, sizeof(f->ok));
	memset(f->fail, 0, sizeof(f->fail));
	f->slot_ms = 0;
	if (flow_ceiling(l) > FLOW_RAMP_START_RATE) {
		f->limit = FLOW_RAMP_START_RATE;
		f->limit_ms = now;
		f->throttled_ms = 0;
		f->tokens = 1.0; /* the first one may go at once */
		f->tokens_ms = now;
	}
}

/* 429, 502, 503, 504: the endpoint asks for less. Halves what it was sending, once per
 * second (the answers of one burst arrive together and are one signal). */
static bool flow_throttle(struct flow *f, const struct flow_limits *l, int64_t now)
{
	double current, lowered;
	bool first = !f->throttled_ms || now - f->throttled_ms >= 1000;
	f->throttled_ms = now;
	if (!first)
		return false;
	flow_limit_update(f, l, now);
	current = flow_rate_of(f, l);
	{
		uint32_t seen = f->started_this_s > f->started_last_s ? f->started_this_s
								     : f->started_last_s;
		/* What it was sending, when that is below its limit (or it has none). */
		if (seen && (current <= 0 || (double)seen < current))
			current = (double)seen;
		if (current <= 0)
			current = 2 * FLOW_MIN_RATE;
	}
	lowered = current / 2 > FLOW_MIN_RATE ? current / 2 : FLOW_MIN_RATE;
	if (f->limit <= 0 || lowered < f->limit) {
		f->limit = lowered;
		f->limit_ms = now;
		if (f->tokens > 1.0)
			f->tokens = 1.0;
	}
	return true;
}

enum flow_event flow_outcome(struct flow *f, const struct flow_limits *l, bool ok, int status,
			     int64_t retry_after_ms, bool probe, int64_t now_ms)
{
	bool failed = flow_is_failure(ok, status);
	enum flow_event ev = FLOW_NONE;

	flow_window_advance(f, l, now_ms);
	if (failed)
		f->fail[f->slot]++;
	else
		f->ok[f->slot]++;
	if (!ok && (status == 429 || status == 502 || status == 503 || status == 504) &&
	    flow_throttle(f, l, now_ms))
		ev = FLOW_THROTTLED;
	if (!ok && retry_after_ms >= 0 && now_ms + retry_after_ms > f->paused_until_ms)
		f->paused_until_ms = now_ms + retry_after_ms;

	switch (f->breaker) {
	case FLOW_HALF_OPEN:
		if (!probe)
			break; /* started before it opened: the probe decides */
		if (failed) {
			flow_open(f, l, now_ms);
			return FLOW_REOPENED;
		}
		flow_close(f, l, now_ms);
		return FLOW_CLOSED_AGAIN;
	case FLOW_OPEN:
		break;
	case FLOW_CLOSED:
		if (!failed) {
			f->consecutive = 0;
			break;
		}
		f->consecutive++;
		if ((l->consecutive_failures && f->consecutive >= l->consecutive_failures) ||
		    flow_ratio_trips(f, l)) {
			flow_open(f, l, now_ms);
			return FLOW_OPENED;
		}
		break;
	}
	return ev;
}
