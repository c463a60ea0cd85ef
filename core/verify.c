/* verify.c - the public hookd_verify() (include/hookd/verify.h) on top of sign.c. */
#include "hookd/verify.h"

#include <stdio.h>

#include <sodium.h>

#include "err.h"
#include "sign.h"

/* The public header promises its codes equal the core's; keep them from drifting apart. */
_Static_assert(HOOKD_VERIFY_OK == HOOKD_OK, "verify.h OK code");
_Static_assert(HOOKD_VERIFY_EINVAL == HOOKD_EINVAL, "verify.h EINVAL code");
_Static_assert(HOOKD_VERIFY_EFAILED == HOOKD_ECRYPTO, "verify.h EFAILED code");

int hookd_verify(const char *secret_or_public_key, const char *webhook_id,
		 const char *webhook_timestamp, const void *body, size_t body_len,
		 const char *webhook_signature, long long now, long long tolerance_s, char *err,
		 size_t errlen)
{
	struct sign_key key;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	rc = sign_init();
	if (rc != HOOKD_OK) {
		if (err && errlen)
			snprintf(err, errlen, "libsodium failed to initialise");
		return HOOKD_ECRYPTO;
	}
	rc = sign_key_parse(secret_or_public_key, &key, err, errlen);
	if (rc != HOOKD_OK)
		goto cleanup;
	rc = sign_verify(&key, webhook_id, webhook_timestamp, body, body_len, webhook_signature,
			 now, tolerance_s, err, errlen);

cleanup:
	sodium_memzero(&key, sizeof(key));
	return rc;
}
