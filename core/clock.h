/* clock.h - wall and monotonic time, and ISO 8601 text. */
#ifndef HOOKD_CLOCK_H
#define HOOKD_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock in ms since the Unix epoch (what is stored and shown). */
int64_t clock_now_ms(void);
/* Monotonic clock in ns (fine durations). */
int64_t clock_mono_ns(void);

/* Writes "2026-11-28T23:59:59.123Z" (24 chars + NUL; the buffer has room for any year). */
#define CLOCK_ISO_LEN 64
void clock_iso8601(int64_t ms, char out[CLOCK_ISO_LEN]);

/* Parses an ISO 8601 UTC time ("2026-11-28T23:59:59Z", fraction and "+00:00" allowed) or
 * a decimal Unix-seconds string into ms. HOOKD_EINVAL if neither. */
int clock_parse(const char *text, int64_t *ms_out);

#endif
