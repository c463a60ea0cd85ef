/* janitor.h - periodic housekeeping on the store, as ordinary writer ops in bounded slices
 * (it never holds up publishes for long):
 * - expired idempotency keys are deleted;
 * - messages older than their app's retention_days (storage.retention_days when the app
 *   sets none) whose deliveries are all settled (succeeded, filtered or dead) are deleted
 *   with their deliveries, attempts, policy bodies and dead-letter entries;
 * - settled messages older than their app's payload_retention_days (default
 *   storage.payload_retention_days; 0 = as long as the message) keep their record,
 *   deliveries and attempts but lose their payload: the stored envelope's "data" becomes
 *   null and it ends in "payload_purged":true (janitor_payload_purge), and their policy
 *   bodies go.
 * A message with anything pending is kept whole. The apps take turns, a slice each per
 * step, so one app with a huge history does not hold up the others' retention. */
#ifndef HOOKD_JANITOR_H
#define HOOKD_JANITOR_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;
struct registry;
struct janitor;

/* The daemon's defaults: retention_days 0 = keep messages forever; payload_retention_days
 * 0 = payloads as long as their message. reg (the apps' own days) is read on the loop
 * thread at each step and must outlive the janitor. */
int janitor_new(struct event_base *base, struct store *s, struct registry *reg,
		uint32_t retention_days, uint32_t payload_retention_days, struct janitor **out);
void janitor_free(struct janitor *j);

/* One sweep step, synchronously (tests): deletes up to max expired keys as of now_ms and
 * returns how many it deleted. */
size_t janitor_sweep_now(struct store *s, int64_t now_ms, size_t max);

/* One retention step, synchronously (tests): deletes up to max settled messages created
 * before cutoff_ms, with everything that belongs to them; returns how many. */
size_t janitor_prune_now(struct store *s, int64_t cutoff_ms, size_t max);

/* The cutoffs (ms; 0 = none) for an app's days (-1 = the default's) at now_ms, as the
 * retention step takes them (store.h). */
void janitor_app_cutoffs(int64_t now_ms, int64_t app_days, int64_t app_payload_days,
			 uint32_t def_days, uint32_t def_payload_days, int64_t *cutoff_ms,
			 int64_t *payload_cutoff_ms);

/* The retention step's payload_purge (store.h): env with "data" null and
 * "payload_purged":true last, malloc'd into *out; 0 when env already ends so, or is not
 * a JSON object. Thread-safe. */
int janitor_payload_purge(const char *env, size_t len, char **out, size_t *outlen);

#endif
