/* fuzz_record.c - libFuzzer target: delivery records read back from the store. Decoding
 * arbitrary bytes must never read out of bounds; what decodes must re-encode identically. */
#include "err.h"
#include "record.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct delivery_rec r;
	unsigned char *enc;
	size_t len;
	if (record_decode(data, size, &r) != HOOKD_OK)
		return 0;
	if (record_encode(&r, &enc, &len) != HOOKD_OK)
		return 0;
	struct delivery_rec r2;
	if (record_decode(enc, len, &r2) != HOOKD_OK || r2.attempts != r.attempts ||
	    strcmp(r2.ep_id, r.ep_id) != 0 || r2.body_len != r.body_len)
		abort();
	free(enc);
	return 0;
}
