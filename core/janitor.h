/* janitor.h - periodic housekeeping on the store, as ordinary writer ops in bounded slices
 * (it never holds up publishes for long):
 * - expired idempotency keys are deleted;
 * - messages older than storage.retention_days whose deliveries are all settled
 *   (succeeded, filtered or dead) are deleted with their deliveries, attempts, policy
 *   bodies and dead-letter entries. A message with anything pending is kept. */
#ifndef HOOKD_JANITOR_H
#define HOOKD_JANITOR_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;
struct janitor;

/* retention_days 0 = keep messages forever. */
int janitor_new(struct event_base *base, struct store *s, uint32_t retention_days,
		struct janitor **out);
void janitor_free(struct janitor *j);

/* One sweep step, synchronously (tests): deletes up to max expired keys as of now_ms and
 * returns how many it deleted. */
size_t janitor_sweep_now(struct store *s, int64_t now_ms, size_t max);

/* One retention step, synchronously (tests): deletes up to max settled messages created
 * before cutoff_ms, with everything that belongs to them; returns how many. */
size_t janitor_prune_now(struct store *s, int64_t cutoff_ms, size_t max);

#endif
