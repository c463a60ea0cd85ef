/* bench_util.h - clocks and percentiles shared by the bench tools (header only: each
 * tool is one executable and these are a few lines each). */
#ifndef HOOKD_BENCH_UTIL_H
#define HOOKD_BENCH_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Wall clock: the one publish writes into "sent_ns" and the sink compares against, so
 * publish→receipt latency can be taken across processes. */
static inline uint64_t bench_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Monotonic clock: for durations inside one process. */
static inline uint64_t bench_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Sorts v in place (n values in ns) so bench_percentile_us can be called on it. */
static inline void bench_sort_u64(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof *v, bench_cmp_u64);
}

/* Nearest-rank percentile of sorted ns values, returned in microseconds. */
static inline double bench_percentile_us(const uint64_t *sorted, size_t n, double pct)
{
	if (n == 0)
		return 0.0;
	size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1000.0;
}

#endif
