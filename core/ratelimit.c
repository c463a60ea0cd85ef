/* ratelimit.c - one report per interval, with a count of the others (see ratelimit.h). */
#include "ratelimit.h"

bool ratelimit_check(struct ratelimit *r, int64_t now_ms, uint64_t *suppressed)
{
	if (r->next_ms != 0 && now_ms < r->next_ms) {
		r->suppressed++;
		return false;
	}
	*suppressed = r->suppressed;
	r->suppressed = 0;
	r->next_ms = now_ms + r->interval_ms;
	if (r->next_ms == 0)
		r->next_ms = 1; /* 0 means "never reported" */
	return true;
}
