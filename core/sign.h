/* sign.h - Standard Webhooks signatures (v1 HMAC-SHA256, v1a Ed25519) via libsodium.
 *
 * Signed content is "{id}.{timestamp}.{body}". Secrets are text:
 *   whsec_<base64 of 24..64 random bytes>      HMAC key  -> "v1,<base64 sig>"
 *   whsk_<base64 of 64 bytes: seed ‖ public>    Ed25519   -> "v1a,<base64 sig>"
 *   whpk_<base64 of 32 bytes>                   Ed25519 public key (verify only)
 * Keys are parsed once (endpoint cache) and used for every attempt. */
#ifndef HOOKD_SIGN_H
#define HOOKD_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include <sodium/crypto_auth_hmacsha256.h>

enum sign_kind { SIGN_HMAC = 1, SIGN_ED25519 = 2, SIGN_ED25519_PUBLIC = 3 };

/* Filled in by sign_key_parse only (a key built by hand has no hmac state). Holds key
 * material: zero it (sodium_memzero) when done with it. */
struct sign_key {
	enum sign_kind kind;
	size_t len;              /* bytes used in key */
	unsigned char key[64];   /* HMAC key, or Ed25519 seed‖public (64) or public (32) */
	/* HMAC: the MAC's state with the key already absorbed (its inner and outer padded
	 * blocks, one SHA-256 compression each), so that each signature starts from a copy
	 * instead of hashing the key again. Unused for Ed25519. */
	crypto_auth_hmacsha256_state hmac;
};

/* Longest text a secret or one signature entry can take, NUL included. */
#define SIGN_TEXT_MAX 128

/* Must be called once (sodium_init). Returns HOOKD_OK or HOOKD_ECRYPTO. */
int sign_init(void);

/* Parses whsec_/whsk_/whpk_ text. HOOKD_EINVAL on a bad prefix, bad base64 or wrong length;
 * if err is not NULL it receives a message saying which. */
int sign_key_parse(const char *text, struct sign_key *out, char *err, size_t errlen);

/* Generates a new secret of kind (SIGN_HMAC: 32 random bytes; SIGN_ED25519: keypair)
 * and writes its text ("whsec_..." / "whsk_...") to out. */
int sign_key_generate(enum sign_kind kind, char *out, size_t outlen);

/* Writes the "whpk_..." public key of an Ed25519 secret key. HOOKD_EINVAL for HMAC keys. */
int sign_key_public_text(const struct sign_key *key, char *out, size_t outlen);

/* Writes one signature entry ("v1,..." or "v1a,...") over id.timestamp.body to out
 * (SIGN_TEXT_MAX always suffices). v1 (HMAC) feeds the pieces to the MAC and never
 * allocates; v1a (Ed25519) allocates one buffer of id + timestamp + body for the call,
 * because pure Ed25519 needs the message contiguous. HOOKD_EINVAL for an id that is empty
 * or contains "." (the spec forbids it: it makes the signed content ambiguous), a public
 * key, or an out buffer too small; HOOKD_ENOMEM if the v1a buffer cannot be allocated. */
int sign_compute(const struct sign_key *key, const char *id, int64_t timestamp,
		 const void *body, size_t body_len, char *out, size_t outlen);

/* Verifies a webhook-signature header (space-separated entries; any valid entry wins)
 * with key (HMAC, Ed25519 secret or public). The timestamp text must be integer Unix seconds
 * within tolerance_s of now (digits only, no sign or leading zeros). Returns HOOKD_OK, or
 * HOOKD_ECRYPTO with a reason in err ("timestamp too old", "no matching signature", ...);
 * HOOKD_EINVAL if key is not a parsed key or tolerance_s < 0. Entries of the other version
 * (v1a for an HMAC key, v1 for an Ed25519 key) are ignored. err may be NULL. */
int sign_verify(const struct sign_key *key, const char *id, const char *timestamp,
		const void *body, size_t body_len, const char *signature_header, int64_t now,
		int64_t tolerance_s, char *err, size_t errlen);

#endif
