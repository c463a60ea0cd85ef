/* record.c - delivery record encoding. */
#include "record.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

#define RECORD_VERSION 1
#define RECORD_FIXED (4 + 4 + 4 + 4 + 8 + 8 + 8)

const char *delivery_state_name(int state)
{
	switch (state) {
	case DLV_PENDING: return "pending";
	case DLV_INFLIGHT: return "inflight";
	case DLV_SUCCEEDED: return "succeeded";
	case DLV_FILTERED: return "filtered";
	case DLV_DEAD: return "dead";
	}
	return "unknown";
}

static unsigned char *record_put_str(unsigned char *p, const char *s, size_t len)
{
	uint32_t n = (uint32_t)len;
	memcpy(p, &n, 4);
	if (len)
		memcpy(p + 4, s, len);
	p[4 + len] = 0;
	return p + 4 + len + 1;
}

int record_encode(const struct delivery_rec *r, unsigned char **out, size_t *len)
{
	const char *strs[6] = {r->app_id, r->msg_id, r->ep_id, r->last_error, r->body, r->headers};
	size_t lens[6], total = RECORD_FIXED;
	unsigned char *buf, *p;

	for (int i = 0; i < 6; i++) {
		if (!strs[i])
			strs[i] = "";
		lens[i] = (i == 4) ? r->body_len : strlen(strs[i]);
		if (i == 4 && !r->body)
			lens[i] = 0;
		total += 4 + lens[i] + 1;
	}
	buf = malloc(total);
	if (!buf)
		return HOOKD_ENOMEM;
	p = buf;
	p[0] = RECORD_VERSION;
	p[1] = (unsigned char)r->state;
	p[2] = (unsigned char)r->flags;
	p[3] = 0;
	memcpy(p + 4, &r->attempts, 4);
	memcpy(p + 8, &r->cycle_failures, 4);
	memcpy(p + 12, &r->last_status, 4);
	memcpy(p + 16, &r->next_at_ms, 8);
	memcpy(p + 24, &r->created_ms, 8);
	memcpy(p + 32, &r->updated_ms, 8);
	p += RECORD_FIXED;
	for (int i = 0; i < 6; i++)
		p = record_put_str(p, strs[i], lens[i]);
	*out = buf;
	*len = total;
	return HOOKD_OK;
}

int record_decode(const void *data, size_t len, struct delivery_rec *r)
{
	const unsigned char *p = data, *end = p + len;
	const char **strs[6] = {&r->app_id, &r->msg_id, &r->ep_id, &r->last_error, &r->body,
				&r->headers};

	if (len < RECORD_FIXED || p[0] != RECORD_VERSION)
		return HOOKD_EINVAL;
	memset(r, 0, sizeof(*r));
	r->state = p[1];
	r->flags = p[2];
	memcpy(&r->attempts, p + 4, 4);
	memcpy(&r->cycle_failures, p + 8, 4);
	memcpy(&r->last_status, p + 12, 4);
	memcpy(&r->next_at_ms, p + 16, 8);
	memcpy(&r->created_ms, p + 24, 8);
	memcpy(&r->updated_ms, p + 32, 8);
	p += RECORD_FIXED;
	for (int i = 0; i < 6; i++) {
		uint32_t n;
		if (end - p < 5)
			return HOOKD_EINVAL;
		memcpy(&n, p, 4);
		if ((size_t)(end - p) < 4 + (size_t)n + 1 || p[4 + n] != 0)
			return HOOKD_EINVAL;
		*strs[i] = (const char *)p + 4;
		if (i == 4)
			r->body_len = n;
		p += 4 + n + 1;
	}
	return HOOKD_OK;
}
