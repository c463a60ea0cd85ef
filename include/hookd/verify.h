/* hookd/verify.h - consumer-side verification of hookd's (Standard Webhooks) signatures.
 *
 * For receivers written in C: pass the three webhook-* headers, the exact body bytes and
 * the endpoint's secret, get 0 if the delivery is authentic and fresh. Works for HMAC
 * (whsec_, "v1" entries) and Ed25519 (whsk_ or, on the receiver side, the public whpk_,
 * "v1a" entries). Thread-safe; initialises libsodium itself.
 *
 * Ownership: every pointer argument is borrowed, only read during the call and never kept.
 * err, if not NULL, is written with a NUL-terminated reason (truncated to errlen). */
#ifndef HOOKD_VERIFY_H
#define HOOKD_VERIFY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return values of hookd_verify (equal to the daemon's own error codes). */
#define HOOKD_VERIFY_OK 0         /* authentic and within the tolerance */
#define HOOKD_VERIFY_EINVAL (-2)  /* unusable secret or arguments; err says which */
#define HOOKD_VERIFY_EFAILED (-10) /* missing header, stale/future timestamp, bad signature */

/* Longest reason hookd_verify writes, NUL included; a buffer this size is never truncated. */
#define HOOKD_VERIFY_ERR_MAX 160

/* Verifies one delivery.
 *   secret_or_public_key  "whsec_...", "whsk_..." or "whpk_..." text
 *   webhook_id, webhook_timestamp, webhook_signature  the header values as received
 *   body, body_len        the raw request body (body may be NULL when body_len is 0)
 *   now                   current Unix time in seconds (e.g. time(NULL))
 *   tolerance_s           accepted |now - webhook-timestamp|, >= 0; the reference libraries
 *                         use 300 (5 minutes)
 * Returns HOOKD_VERIFY_OK if any signature entry of the key's version verifies; entries
 * of other versions are ignored. */
int hookd_verify(const char *secret_or_public_key, const char *webhook_id,
		 const char *webhook_timestamp, const void *body, size_t body_len,
		 const char *webhook_signature, long long now, long long tolerance_s, char *err,
		 size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
