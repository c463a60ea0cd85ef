/* janitor.h - periodic housekeeping on the store: expired idempotency keys are deleted so
 * the idem database does not grow without bound. Runs as ordinary writer ops, in bounded
 * slices, so it never holds up publishes for long. */
#ifndef HOOKD_JANITOR_H
#define HOOKD_JANITOR_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;
struct janitor;

int janitor_new(struct event_base *base, struct store *s, struct janitor **out);
void janitor_free(struct janitor *j);

/* One sweep step, synchronously (tests): deletes up to max expired keys as of now_ms and
 * returns how many it deleted. */
size_t janitor_sweep_now(struct store *s, int64_t now_ms, size_t max);

#endif
