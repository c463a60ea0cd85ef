/* ratelimit.h - at most one report per interval for a recurring event, with a count of
 * the ones not reported (a warning that could repeat thousands of times a second, such as
 * an accept() failing while descriptors are exhausted, must not fill the log). */
#ifndef HOOKD_RATELIMIT_H
#define HOOKD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
	int64_t interval_ms; /* set by the owner; 0 reports every event */
	int64_t next_ms;     /* the earliest time of the next report (0: report the next event) */
	uint64_t suppressed; /* events since the last report that were not reported */
};

/* Counts one event at now_ms (a monotonic clock). Returns true when it is to be reported:
 * the first event, then the first one at least interval_ms after the last report.
 * *suppressed receives how many events were not reported since then. */
bool ratelimit_check(struct ratelimit *r, int64_t now_ms, uint64_t *suppressed);

#endif
