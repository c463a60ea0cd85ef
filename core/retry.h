/* retry.h - when to try a failed delivery again.
 *
 * A schedule is a list of delays in seconds: entry i is the wait after the (i+1)-th
 * consecutive failed attempt of a cycle. A redrive starts a new cycle. Each delay gets
 * uniform ±20% jitter so that endpoints recovering from an outage are not hit by a
 * synchronized retry storm. */
#ifndef HOOKD_RETRY_H
#define HOOKD_RETRY_H

#include <stddef.h>
#include <stdint.h>

/* 5s, 5m, 30m, 2h, 5h, 10h, 10h: the example schedule of the Standard Webhooks spec up to
 * its 10 h step, then one more 10 h in place of its 14 h, 20 h and 24 h: a delivery that keeps failing is given up about 27.6 hours after its first
 * attempt rather than 75 (before jitter and Retry-After). */
extern const uint32_t retry_default_schedule[];
extern const size_t retry_default_schedule_len;

#define RETRY_JITTER_PERCENT 20
#define RETRY_EXHAUSTED (-1)

/* Delay in ms before the next attempt after `failures` failed attempts in this cycle
 * (failures >= 1), jittered by ±RETRY_JITTER_PERCENT. RETRY_EXHAUSTED when failures > n.
 * schedule NULL means the default schedule (n is then ignored); failures 0 gives 0 (the
 * first attempt is due now). */
int64_t retry_delay_ms(const uint32_t *schedule, size_t n, uint32_t failures);

/* Parses a Retry-After value: delta-seconds or an IMF-fixdate HTTP-date (the obsolete RFC 850
 * and asctime forms too, as RFC 9110 asks of recipients), relative to now (Unix seconds).
 * Surrounding whitespace and CRLF are ignored. Returns seconds to wait (>= 0; a date in
 * the past gives 0; delta-seconds saturate at 2^31) or -1 if unparseable. */
int64_t retry_after_parse(const char *value, int64_t now);

/* The delay actually used when the receiver sent Retry-After: at least retry_after_s (capped
 * at cap_s), never less than the scheduled delay_ms. RETRY_EXHAUSTED stays exhausted and a
 * negative retry_after_s (unparseable) leaves delay_ms unchanged. */
int64_t retry_with_retry_after(int64_t delay_ms, int64_t retry_after_s, uint32_t cap_s);

#endif
