/* fuzz_verify.c - libFuzzer target: a receiver's view of hostile webhook headers. The input
 * is split into signature header, timestamp and body; verification must fail cleanly. */
#include "sign.h"

#include <hookd/verify.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char sig[512], ts[32], err[256];
	size_t a = size < 3 ? size : size / 3, b = size < 3 ? 0 : size / 3;
	static int ready;
	if (!ready) {
		sign_init();
		ready = 1;
	}
	size_t sl = a < sizeof(sig) - 1 ? a : sizeof(sig) - 1;
	size_t tl = b < sizeof(ts) - 1 ? b : sizeof(ts) - 1;
	memcpy(sig, data, sl);
	sig[sl] = 0;
	memcpy(ts, data + a, tl);
	ts[tl] = 0;
	hookd_verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", ts, data + a + b,
		     size - a - b, sig, 1614265330, 300, err, sizeof(err));
	return 0;
}
