/* epstats.c - an endpoint's last hour of outcomes (epstats.h). */
#include "epstats.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The upper bound of bin i in ms: sqrt(2)^i (bin 0: up to 1 ms). */
static double epstats_bound(int i)
{
	return pow(M_SQRT2, i);
}

/* The first bin whose bound is at least ms: ceil(2 log2 ms), one log2 per attempt. */
static int epstats_bin(int64_t ms)
{
	int i;
	if (ms <= 1)
		return 0;
	i = (int)ceil(2.0 * log2((double)ms) - 1e-9);
	return i < EPSTATS_BINS - 1 ? i : EPSTATS_BINS - 1;
}

static void epstats_clear(struct epstats *s, uint32_t slot)
{
	s->ok[slot] = s->fail[slot] = 0;
	memset(s->lat[slot], 0, sizeof(s->lat[slot]));
}

/* Moves the current slot to now, clearing the slots it passes (all of them after an hour
 * of silence). A clock set back keeps the current slot. */
static void epstats_advance(struct epstats *s, int64_t now)
{
	int64_t steps;
	if (!s->slot_ms) {
		s->slot_ms = now - now % EPSTATS_SLOT_MS;
		return;
	}
	if (now < s->slot_ms + EPSTATS_SLOT_MS)
		return;
	steps = (now - s->slot_ms) / EPSTATS_SLOT_MS;
	if (steps > EPSTATS_SLOTS)
		steps = EPSTATS_SLOTS;
	for (int64_t i = 0; i < steps; i++) {
		s->slot = (s->slot + 1) % EPSTATS_SLOTS;
		epstats_clear(s, s->slot);
	}
	s->slot_ms = now - now % EPSTATS_SLOT_MS;
}

void epstats_add(struct epstats *s, bool ok, int status, const char *error, int64_t duration_ms,
		 int64_t now_ms)
{
	epstats_advance(s, now_ms);
	if (ok) {
		s->ok[s->slot]++;
		s->last_success_ms = now_ms;
	} else {
		s->fail[s->slot]++;
		s->last_failure_ms = now_ms;
		s->last_failure_status = status;
		snprintf(s->last_failure_error, sizeof(s->last_failure_error), "%s", error ? error : "");
	}
	s->lat[s->slot][epstats_bin(duration_ms < 0 ? 0 : duration_ms)]++;
}

/* The q-quantile of the summed histogram, interpolated inside its bin. */
static double epstats_quantile(const uint64_t *bins, uint64_t total, double q)
{
	double rank = q * (double)total, seen = 0;
	for (int i = 0; i < EPSTATS_BINS; i++) {
		if (!bins[i])
			continue;
		if (seen + (double)bins[i] >= rank) {
			double lo = i ? epstats_bound(i - 1) : 0, hi = epstats_bound(i);
			return lo + (hi - lo) * ((rank - seen) / (double)bins[i]);
		}
		seen += (double)bins[i];
	}
	return epstats_bound(EPSTATS_BINS - 1);
}

void epstats_read(const struct epstats *s, int64_t now_ms, struct epstats_view *out)
{
	uint64_t bins[EPSTATS_BINS] = {0}, total = 0;
	memset(out, 0, sizeof(*out));
	out->p50_ms = out->p99_ms = -1;
	if (!s->slot_ms)
		return;
	/* Slots older than an hour by now_ms are not counted (nothing has moved them out). */
	for (uint32_t k = 0; k < EPSTATS_SLOTS; k++) {
		uint32_t slot = (s->slot + EPSTATS_SLOTS - k) % EPSTATS_SLOTS;
		if (s->slot_ms - (int64_t)k * EPSTATS_SLOT_MS + EPSTATS_SLOT_MS <=
		    now_ms - (int64_t)EPSTATS_SLOTS * EPSTATS_SLOT_MS)
			break;
		out->ok += s->ok[slot];
		out->fail += s->fail[slot];
		for (int i = 0; i < EPSTATS_BINS; i++)
			bins[i] += s->lat[slot][i];
	}
	for (int i = 0; i < EPSTATS_BINS; i++)
		total += bins[i];
	if (!total)
		return;
	out->p50_ms = epstats_quantile(bins, total, 0.50);
	out->p99_ms = epstats_quantile(bins, total, 0.99);
}
