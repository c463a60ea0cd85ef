/* epstats.h - one endpoint's last hour of outcomes, for its status feed: successes,
 * failures and a latency histogram per five-minute slot, and the last success and failure.
 *
 * Fixed size (about 2 KiB), whatever the traffic: twelve slots of counters, each with a
 * histogram of EPSTATS_BINS bins whose bounds grow by sqrt(2) from 1 ms, so a percentile
 * read from it is within that bin (interpolated inside it). Loop thread only. */
#ifndef HOOKD_EPSTATS_H
#define HOOKD_EPSTATS_H

#include <stdbool.h>
#include <stdint.h>

#define EPSTATS_SLOTS 12
#define EPSTATS_SLOT_MS (5 * 60 * 1000)
/* sqrt(2)^39 ms is about 12 minutes: past any delivery.timeout_ms anyone uses; longer ones
 * land in the last bin. */
#define EPSTATS_BINS 40
#define EPSTATS_ERROR_MAX 200

struct epstats {
	int64_t slot_ms; /* start of the current slot (0: nothing yet) */
	uint32_t slot;
	uint32_t ok[EPSTATS_SLOTS], fail[EPSTATS_SLOTS];
	uint32_t lat[EPSTATS_SLOTS][EPSTATS_BINS];
	int64_t last_success_ms, last_failure_ms; /* 0: none since the start */
	int last_failure_status;                  /* 0: the transport failed */
	char last_failure_error[EPSTATS_ERROR_MAX];
};

/* An attempt ended at now_ms (wall clock) after duration_ms; error describes a failure. */
void epstats_add(struct epstats *s, bool ok, int status, const char *error, int64_t duration_ms,
		 int64_t now_ms);

struct epstats_view {
	uint64_t ok, fail;      /* over the last hour */
	double p50_ms, p99_ms;  /* -1 when no attempt ended in the last hour */
};
void epstats_read(const struct epstats *s, int64_t now_ms, struct epstats_view *out);

#endif
