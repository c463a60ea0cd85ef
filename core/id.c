/* id.c - ULID-style ids, monotonic within a millisecond. */
#include "id.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static unsigned char last_rand[10];

void id_make(const char *prefix, int64_t now_ms, char out[ID_MAX])
{
	unsigned char bytes[16];
	char body[ID_BODY_LEN + 1];
	int i;

	pthread_mutex_lock(&id_lock);
	if (now_ms <= last_ms) {
		/* Same (or earlier: clock step) millisecond: keep the time, add one to the random
		 * part so ids stay strictly increasing. */
		now_ms = last_ms;
		for (i = 9; i >= 0; i--)
			if (++last_rand[i] != 0)
				break;
	} else {
		randombytes_buf(last_rand, sizeof(last_rand));
		last_rand[0] &= 0x7f; /* headroom so increments do not wrap in practice */
		last_ms = now_ms;
	}
	for (i = 0; i < 6; i++)
		bytes[i] = (unsigned char)((uint64_t)now_ms >> (40 - 8 * i));
	memcpy(bytes + 6, last_rand, 10);
	pthread_mutex_unlock(&id_lock);

	/* 128 bits -> 26 base32 digits, most significant first (the top 2 bits of the first digit
	 * are always zero). */
	for (i = 0; i < ID_BODY_LEN; i++) {
		int bit = 128 - 5 * (ID_BODY_LEN - i); /* start bit of this digit, may be < 0 */
		unsigned v = 0;
		for (int b = 0; b < 5; b++) {
			int pos = bit + b;
			v <<= 1;
			if (pos >= 0)
				v |= (bytes[pos / 8] >> (7 - pos % 8)) & 1;
		}
		body[i] = crockford[v];
	}
	body[ID_BODY_LEN] = '\0';
	snprintf(out, ID_MAX, "%s%s", prefix, body);
}

int id_valid(const char *text)
{
	size_t n = 0;
	if (!text)
		return 0;
	for (; text[n]; n++) {
		char c = text[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
		if (n >= 64)
			return 0;
	}
	return n > 0;
}

int64_t id_time_ms(const char *id, size_t prefix_len)
{
	uint64_t v = 0;
	if (strlen(id) < prefix_len + 10)
		return -1;
	/* The first 10 digits carry 50 bits: 2 zero bits, then the 48-bit time. */
	for (size_t i = prefix_len; i < prefix_len + 10; i++) {
		const char *p = strchr(crockford, id[i]);
		if (!p || !id[i])
			return -1;
		v = (v << 5) | (uint64_t)(p - crockford);
	}
	return (int64_t)(v & 0xffffffffffffULL);
}
