/* flow.h - when one endpoint may take its next attempt: circuit breaker, token-bucket rate
 * limit, throttling after the endpoint asks for less, and its Retry-After pauses.
 *
 * Pure logic over a clock the caller passes (milliseconds), so the unit tests drive every
 * transition without sleeping; dispatch.c keeps one struct flow per endpoint, asks
 * flow_admit before each attempt and reports each outcome with flow_outcome. Nothing here
 * holds deliveries: those that may not go yet wait in the endpoint's FIFO, inside its
 * bounded window, and the rest in the store's due index (dispatch.h).
 *
 * Breaker: closed -> open after `consecutive_failures` failed attempts in a row, or when
 * at least FLOW_RATIO_MIN_ATTEMPTS attempts ended in the last `window_s` and the share that
 * failed reached `failure_ratio`. Open: nothing is admitted until the cooldown ends; the
 * cooldown doubles with each open that follows a failed probe, up to `cooldown_max_s`.
 * Half-open: one attempt (the probe) is admitted; its success closes the breaker, its
 * failure opens it again. Only the probe's outcome moves a half-open breaker; outcomes of
 * attempts started before it opened are counted in the window and nothing else.
 * After a close the endpoint is not given its backlog at once: it ramps up from
 * FLOW_RAMP_START_RATE per second, doubling every second, to its own limit.
 *
 * What counts as a failure for the breaker: a transport error (connect, timeout, reset),
 * 5xx, 408 and 429. Other 4xx answers are the receiver refusing that message, not the
 * endpoint being unhealthy: they are failures of the delivery, not of the endpoint.
 *
 * Rate limit: tokens at `per_second` (0 = none), at most `burst` saved. Throttling: a 429,
 * 502, 503 or 504 halves the endpoint's effective rate (at most once per second, from what
 * it was actually sending when that is less, never below FLOW_MIN_RATE), for at least
 * FLOW_THROTTLE_HOLD_MS; after that quiet time the
 * rate grows by half every second until it is back at the endpoint's own limit. A
 * Retry-After on 429 or 503 also pauses the endpoint until then (capped by the caller). */
#ifndef HOOKD_FLOW_H
#define HOOKD_FLOW_H

#include <stdbool.h>
#include <stdint.h>

/* The ratio rule needs this many outcomes in its window: three failures out of four
 * attempts is noise, not an outage. */
#define FLOW_RATIO_MIN_ATTEMPTS 20
/* The sliding window is kept as this many slots of window_s / FLOW_SLOTS each. */
#define FLOW_SLOTS 10
/* After a close, attempts per second. */
#define FLOW_RAMP_START_RATE 1.0
/* The lowest rate throttling brings an endpoint to: below one a second the retry schedule
 * is already the slower pace, and a throttle there would only push retries past it. */
#define FLOW_MIN_RATE 1.0
/* A throttled rate holds this long after the last throttling answer before it grows. */
#define FLOW_THROTTLE_HOLD_MS 5000
/* A ramp (after a close, or a throttle's recovery) ends above this many per second when the
 * endpoint has no limit of its own: past it the in-flight cap is the only limit anyway. */
#define FLOW_RAMP_END_RATE 10000.0

/* The limits in effect: the endpoint's own, or the daemon's defaults (delivery.breaker,
 * delivery.rate_limit, delivery.max_inflight_per_endpoint) where it has none. */
struct flow_limits {
	uint32_t consecutive_failures; /* 0: this rule is off */
	double failure_ratio;          /* 0: this rule is off */
	uint32_t window_s;             /* >= 1 */
	uint32_t cooldown_s;           /* >= 1 */
	uint32_t cooldown_max_s;       /* >= cooldown_s */
	double per_second;             /* 0: no rate limit */
	uint32_t burst;                /* >= 1 */
	uint32_t max_in_flight;        /* >= 1 */
};

enum flow_breaker { FLOW_CLOSED, FLOW_OPEN, FLOW_HALF_OPEN };

/* One endpoint's state; zero it (flow_init) before use. */
struct flow {
	enum flow_breaker breaker;
	uint32_t consecutive;   /* failures in a row */
	uint32_t opens;         /* opens since the last close (the cooldown grows with them) */
	int64_t opened_ms;      /* when it last opened */
	int64_t probe_at_ms;    /* open: when the cooldown ends */
	bool probe_out;         /* half-open: the probe is in flight */
	/* sliding window of outcomes */
	uint32_t ok[FLOW_SLOTS], fail[FLOW_SLOTS];
	int64_t slot_ms;        /* start of the current slot (0: none yet) */
	uint32_t slot;          /* index of the current slot */
	/* rate limit */
	double tokens;
	int64_t tokens_ms;      /* when tokens were last refilled */
	/* throttling and ramps: a rate below the endpoint's own limit; 0 = none */
	double limit;
	int64_t limit_ms;       /* when limit last changed */
	int64_t throttled_ms;   /* the last throttling answer */
	/* attempts started, per second, to know what "half" of the sending rate is */
	uint32_t started_this_s, started_last_s;
	int64_t started_s;      /* the second started_this_s counts */
	int64_t paused_until_ms; /* Retry-After */
};

/* What flow_outcome did to the breaker, for the log and the status feed. */
enum flow_event {
	FLOW_NONE,
	FLOW_OPENED,       /* closed -> open */
	FLOW_REOPENED,     /* the probe failed: half-open -> open, with a longer cooldown */
	FLOW_CLOSED_AGAIN, /* the probe succeeded: half-open -> closed */
	FLOW_THROTTLED,    /* the effective rate was lowered */
};

void flow_init(struct flow *f);

/* Whether an attempt may start now, with inflight attempts of the endpoint out: 0 when it
 * may (and the attempt is counted: a token, the probe), otherwise the time in ms at which
 * to ask again, or FLOW_AFTER_COMPLETION when only an attempt's completion can change the
 * answer (the in-flight cap, a probe out). Moves an open breaker whose cooldown ended to
 * half-open. */
#define FLOW_AFTER_COMPLETION INT64_MAX
int64_t flow_admit(struct flow *f, const struct flow_limits *l, uint32_t inflight,
		   int64_t now_ms);

/* An attempt ended. status is its HTTP status (0 when the transport failed), ok whether it
 * succeeded, retry_after_ms the pause asked for (-1: none; the caller caps it), probe
 * whether it was the attempt flow_admit let through half-open (the caller notes that: the
 * breaker was FLOW_HALF_OPEN right after the admit). */
enum flow_event flow_outcome(struct flow *f, const struct flow_limits *l, bool ok, int status,
			     int64_t retry_after_ms, bool probe, int64_t now_ms);

/* Whether an outcome counts against the endpoint (see above). */
bool flow_is_failure(bool ok, int status);

/* The rate in effect (attempts per second; 0 = unlimited) and the breaker's name. */
double flow_rate(const struct flow *f, const struct flow_limits *l, int64_t now_ms);
const char *flow_breaker_name(enum flow_breaker b);

#endif
