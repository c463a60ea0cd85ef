/* retry.c - retry schedule with jitter, and Retry-After.
 *
 * Randomness comes from libsodium's randombytes_uniform: unbiased, thread-safe, and
 * already initialised by sign_init() at startup (it also self-initialises). */
#include "retry.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

const uint32_t retry_default_schedule[] = { 5, 300, 1800, 7200, 18000, 36000, 36000 };
const size_t retry_default_schedule_len =
	sizeof(retry_default_schedule) / sizeof(retry_default_schedule[0]);

/* RFC 9110 section 10.2.3 via 8.8.x: a delta-seconds too large to represent is taken as
 * 2^31 seconds (about 68 years); the caller's cap brings it down to something useful. */
#define RETRY_AFTER_DELTA_MAX ((int64_t)1 << 31)

/* Uniform in [0, range] milliseconds. randombytes_uniform takes a 32-bit bound; a range
 * beyond it (a schedule entry over ~124 days) is drawn in coarser steps so the result stays
 * uniform, with a granularity of range / 2^32 ms (under half a second for any uint32
 * entry). */
static int64_t retry_uniform_ms(int64_t range)
{
	uint64_t r = (uint64_t)range, step;

	if (r < UINT32_MAX)
		return (int64_t)randombytes_uniform((uint32_t)(r + 1));
	step = r / UINT32_MAX + 1;
	return (int64_t)((uint64_t)randombytes_uniform((uint32_t)(r / step + 1)) * step);
}

int64_t retry_delay_ms(const uint32_t *schedule, size_t n, uint32_t failures)
{
	int64_t base, spread, delay;

	if (!schedule) {
		schedule = retry_default_schedule;
		n = retry_default_schedule_len;
	}
	if (failures == 0)
		return 0; /* nothing failed yet: the first attempt is due now */
	if (failures > n)
		return RETRY_EXHAUSTED;
	base = (int64_t)schedule[failures - 1] * 1000;
	spread = base * RETRY_JITTER_PERCENT / 100;
	delay = base - spread + retry_uniform_ms(2 * spread);
	return delay < 0 ? 0 : delay;
}

/* Parses an HTTP-date (RFC 9110 section 5.6.7) into Unix seconds. IMF-fixdate is what
 * senders must produce; recipients must also take the two obsolete forms. strptime reads
 * day and month names in the current LC_TIME locale; hookd never calls setlocale, so that
 * is "C", the English names HTTP uses. */
static bool retry_http_date_parse(const char *text, int64_t *out)
{
	static const char *const formats[] = {
		"%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
		"%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850:     Sunday, 06-Nov-94 08:49:37 GMT */
		"%a %b %e %H:%M:%S %Y",      /* asctime:     Sun Nov  6 08:49:37 1994 */
	};

	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		struct tm tm;
		const char *end;
		time_t t;

		memset(&tm, 0, sizeof(tm));
		end = strptime(text, formats[i], &tm);
		if (!end || *end != '\0')
			continue;
		t = timegm(&tm);
		if (t == (time_t)-1)
			continue;
		*out = (int64_t)t;
		return true;
	}
	return false;
}

static bool retry_is_ows(char c)
{
	/* Field values arrive with optional whitespace around them and, from curl's header
	 * callback, with the line's CRLF. */
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Longest Retry-After value looked at: an asctime date is 24 characters, an IMF-fixdate
 * 29; anything much longer is not a valid value. */
#define RETRY_AFTER_TEXT_MAX 64

int64_t retry_after_parse(const char *value, int64_t now)
{
	char buf[RETRY_AFTER_TEXT_MAX];
	size_t len;
	int64_t when;

	if (!value)
		return -1;
	while (retry_is_ows(*value))
		value++;
	len = strlen(value);
	while (len > 0 && retry_is_ows(value[len - 1]))
		len--;
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, value, len);
	buf[len] = '\0';

	if (buf[0] >= '0' && buf[0] <= '9') {
		int64_t secs = 0;

		/* delta-seconds is 1*DIGIT: no sign, no fraction, no unit. Accumulate by hand
		 * to saturate instead of failing on overflow. */
		for (size_t i = 0; i < len; i++) {
			if (buf[i] < '0' || buf[i] > '9')
				return -1;
			if (secs < RETRY_AFTER_DELTA_MAX)
				secs = secs * 10 + (buf[i] - '0');
		}
		return secs < RETRY_AFTER_DELTA_MAX ? secs : RETRY_AFTER_DELTA_MAX;
	}
	if (!retry_http_date_parse(buf, &when))
		return -1;
	if (when <= now)
		return 0;
	return when - now;
}

int64_t retry_with_retry_after(int64_t delay_ms, int64_t retry_after_s, uint32_t cap_s)
{
	int64_t wait_ms;

	/* Retry-After asks for a later attempt; it does not revive an exhausted delivery,
	 * and an unparseable value (-1) is as if there were none. */
	if (delay_ms == RETRY_EXHAUSTED || retry_after_s < 0)
		return delay_ms;
	wait_ms = (retry_after_s < (int64_t)cap_s ? retry_after_s : (int64_t)cap_s) * 1000;
	return wait_ms > delay_ms ? wait_ms : delay_ms;
}
