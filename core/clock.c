/* clock.c - time helpers. */
#include "clock.h"

#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t clock_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void clock_iso8601(int64_t ms, char out[CLOCK_ISO_LEN])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(out, CLOCK_ISO_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int clock_parse(const char *text, int64_t *ms_out)
{
	struct tm tm;
	const char *p;
	char *end;
	int64_t frac_ms = 0;

	if (!text || !*text)
		return HOOKD_EINVAL;
	/* Plain Unix seconds. */
	long long secs = strtoll(text, &end, 10);
	if (*end == '\0' && end != text) {
		if (secs < 0)
			return HOOKD_EINVAL;
		*ms_out = (int64_t)secs * 1000;
		return HOOKD_OK;
	}
	memset(&tm, 0, sizeof(tm));
	p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return HOOKD_EINVAL;
	if (*p == '.') {
		int digits = 0;
		p++;
		while (*p >= '0' && *p <= '9') {
			if (digits < 3) {
				frac_ms = frac_ms * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		while (digits++ < 3)
			frac_ms *= 10;
	}
	if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0 && *p != '\0')
		return HOOKD_EINVAL;
	*ms_out = (int64_t)timegm(&tm) * 1000 + frac_ms;
	return HOOKD_OK;
}
