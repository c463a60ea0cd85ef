/* sign.c - Standard Webhooks signatures (v1 HMAC-SHA256, v1a Ed25519) via libsodium.
 *
 * The signed content is "{id}.{timestamp}.{body}". For v1 it is fed to HMAC-SHA256 piece by
 * piece so that signing a delivery never copies or allocates. Pure Ed25519 (RFC 8032) hashes
 * the message twice and libsodium only signs contiguous messages (its streaming API is
 * Ed25519ph, a different signature that Standard Webhooks receivers reject), so v1a builds
 * the content in one heap buffer per call. */
#include "sign.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"

/* Standard Webhooks: "whsec_" secrets hold 24 to 64 random bytes. Fewer would weaken the
 * MAC below the 192 bits the spec asks for; more is pointless for HMAC-SHA256, whose block
 * is 64 bytes (longer keys are hashed down first). */
#define SIGN_HMAC_KEY_MIN 24
#define SIGN_HMAC_KEY_MAX 64

/* What sign_key_generate puts in a new whsec_ secret: 256 bits, the HMAC-SHA256 output size
 * and what the reference libraries generate. */
#define SIGN_HMAC_KEY_GENERATED 32

/* Decode buffer for key text: a secret is at most SIGN_TEXT_MAX - 1 characters, so at most
 * 122 base64 characters after the shortest prefix, which decode to at most 91 bytes. */
#define SIGN_DECODE_MAX 96

/* Longest decimal int64 ("-9223372036854775808") plus NUL. */
#define SIGN_TS_TEXT_MAX 21

struct sign_prefix {
	const char *text;
	enum sign_kind kind;
};

static const struct sign_prefix sign_prefixes[] = {
	{ "whsec_", SIGN_HMAC },
	{ "whsk_", SIGN_ED25519 },
	{ "whpk_", SIGN_ED25519_PUBLIC },
};

int sign_init(void)
{
	/* 0 = initialised now, 1 = already initialised; both are fine. */
	return sodium_init() < 0 ? HOOKD_ECRYPTO : HOOKD_OK;
}

/* Checks that a whsk_ key's second half is the public key of its first half: a key pasted
 * together from two pairs would otherwise sign with one and advertise the other. */
static bool sign_ed25519_key_consistent(const unsigned char sk[64])
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk2[crypto_sign_SECRETKEYBYTES];
	bool ok;

	crypto_sign_seed_keypair(pk, sk2, sk);
	ok = sodium_memcmp(pk, sk + crypto_sign_SEEDBYTES, sizeof(pk)) == 0;
	sodium_memzero(sk2, sizeof(sk2));
	return ok;
}

int sign_key_parse(const char *text, struct sign_key *out, char *err, size_t errlen)
{
	unsigned char bin[SIGN_DECODE_MAX];
	const struct sign_prefix *prefix = NULL;
	const char *b64, *b64_end = NULL;
	size_t text_len, b64_len, bin_len = 0;
	int rc = HOOKD_EINVAL;

	if (!out) {
		err_set(err, errlen, "no key to parse into");
		return HOOKD_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (!text) {
		err_set(err, errlen, "no secret given");
		return HOOKD_EINVAL;
	}
	for (size_t i = 0; i < sizeof(sign_prefixes) / sizeof(sign_prefixes[0]); i++) {
		if (strncmp(text, sign_prefixes[i].text, strlen(sign_prefixes[i].text)) == 0) {
			prefix = &sign_prefixes[i];
			break;
		}
	}
	if (!prefix) {
		err_set(err, errlen, "secret must start with whsec_, whsk_ or whpk_");
		return HOOKD_EINVAL;
	}
	text_len = strlen(text);
	if (text_len >= SIGN_TEXT_MAX) {
		err_set(err, errlen, "%s key is too long: %zu characters, at most %d",
			     prefix->text, text_len, SIGN_TEXT_MAX - 1);
		return HOOKD_EINVAL;
	}
	b64 = text + strlen(prefix->text);
	b64_len = text_len - strlen(prefix->text);
	if (sodium_base642bin(bin, sizeof(bin), b64, b64_len, NULL, &bin_len, &b64_end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    b64_end != b64 + b64_len) {
		if (b64_end && b64_end < b64 + b64_len)
			err_set(err, errlen,
				     "%s key is not valid base64 (bad character at offset %zu)",
				     prefix->text, (size_t)(b64_end - b64));
		else
			err_set(err, errlen, "%s key is not valid base64 (bad length or padding)",
				     prefix->text);
		goto cleanup;
	}

	switch (prefix->kind) {
	case SIGN_HMAC:
		if (bin_len < SIGN_HMAC_KEY_MIN || bin_len > SIGN_HMAC_KEY_MAX) {
			err_set(err, errlen, "whsec_ key must decode to %d..%d bytes, got %zu",
				     SIGN_HMAC_KEY_MIN, SIGN_HMAC_KEY_MAX, bin_len);
			goto cleanup;
		}
		break;
	case SIGN_ED25519:
		if (bin_len != crypto_sign_SECRETKEYBYTES) {
			err_set(err, errlen, "whsk_ key must decode to %d bytes, got %zu",
				     crypto_sign_SECRETKEYBYTES, bin_len);
			goto cleanup;
		}
		if (!sign_ed25519_key_consistent(bin)) {
			err_set(err, errlen,
				     "whsk_ key's last 32 bytes are not the public key of its first 32");
			goto cleanup;
		}
		break;
	case SIGN_ED25519_PUBLIC:
		if (bin_len != crypto_sign_PUBLICKEYBYTES) {
			err_set(err, errlen, "whpk_ key must decode to %d bytes, got %zu",
				     crypto_sign_PUBLICKEYBYTES, bin_len);
			goto cleanup;
		}
		break;
	}
	out->kind = prefix->kind;
	out->len = bin_len;
	memcpy(out->key, bin, bin_len);
	rc = HOOKD_OK;

cleanup:
	sodium_memzero(bin, sizeof(bin));
	return rc;
}

/* Writes prefix followed by the base64 of bin to out. */
static int sign_text_write(const char *prefix, const unsigned char *bin, size_t bin_len,
			   char *out, size_t outlen)
{
	size_t plen = strlen(prefix);
	size_t need = plen + sodium_base64_encoded_len(bin_len, sodium_base64_VARIANT_ORIGINAL);

	if (!out || outlen < need) /* need counts the NUL */
		return HOOKD_EINVAL;
	memcpy(out, prefix, plen);
	sodium_bin2base64(out + plen, outlen - plen, bin, bin_len, sodium_base64_VARIANT_ORIGINAL);
	return HOOKD_OK;
}

int sign_key_generate(enum sign_kind kind, char *out, size_t outlen)
{
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	int rc = HOOKD_EINVAL;

	switch (kind) {
	case SIGN_HMAC:
		randombytes_buf(sk, SIGN_HMAC_KEY_GENERATED);
		rc = sign_text_write("whsec_", sk, SIGN_HMAC_KEY_GENERATED, out, outlen);
		break;
	case SIGN_ED25519:
		if (crypto_sign_keypair(pk, sk) != 0) {
			rc = HOOKD_ECRYPTO;
			break;
		}
		rc = sign_text_write("whsk_", sk, sizeof(sk), out, outlen);
		break;
	case SIGN_ED25519_PUBLIC:
		break; /* a public key alone is useless; generate a whsk_ and derive it */
	}
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

int sign_key_public_text(const struct sign_key *key, char *out, size_t outlen)
{
	if (!key)
		return HOOKD_EINVAL;
	if (key->kind == SIGN_ED25519 && key->len == crypto_sign_SECRETKEYBYTES)
		return sign_text_write("whpk_", key->key + crypto_sign_SEEDBYTES,
				       crypto_sign_PUBLICKEYBYTES, out, outlen);
	if (key->kind == SIGN_ED25519_PUBLIC && key->len == crypto_sign_PUBLICKEYBYTES)
		return sign_text_write("whpk_", key->key, crypto_sign_PUBLICKEYBYTES, out, outlen);
	return HOOKD_EINVAL;
}

/* HMAC-SHA256 over id "." ts "." body, fed in pieces: no copy of the body. */
static void sign_hmac_content(const struct sign_key *key, const char *id, const char *ts,
			      const void *body, size_t body_len,
			      unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key->key, key->len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	if (body_len)
		crypto_auth_hmacsha256_update(&st, body, body_len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

/* Builds id "." ts "." body in one heap buffer (Ed25519 needs it contiguous). The caller
 * frees *out. */
static int sign_content_build(const char *id, const char *ts, const void *body,
			      size_t body_len, unsigned char **out, size_t *out_len)
{
	size_t id_len = strlen(id), ts_len = strlen(ts);
	size_t len = id_len + 1 + ts_len + 1;
	unsigned char *buf;

	if (body_len > SIZE_MAX - len)
		return HOOKD_ETOOBIG;
	len += body_len;
	buf = malloc(len);
	if (!buf)
		return HOOKD_ENOMEM;
	memcpy(buf, id, id_len);
	buf[id_len] = '.';
	memcpy(buf + id_len + 1, ts, ts_len);
	buf[id_len + 1 + ts_len] = '.';
	if (body_len)
		memcpy(buf + id_len + 1 + ts_len + 1, body, body_len);
	*out = buf;
	*out_len = len;
	return HOOKD_OK;
}

int sign_compute(const struct sign_key *key, const char *id, int64_t timestamp,
		 const void *body, size_t body_len, char *out, size_t outlen)
{
	char ts[SIGN_TS_TEXT_MAX];
	unsigned char sig[crypto_sign_BYTES];
	unsigned char *content = NULL;
	size_t content_len = 0;
	int rc = HOOKD_EINVAL;

	/* A "." in the id would make "{id}.{ts}.{body}" ambiguous; the spec forbids it. */
	if (!key || !id || !*id || strchr(id, '.') || (!body && body_len) || !out)
		return HOOKD_EINVAL;
	snprintf(ts, sizeof(ts), "%" PRId64, timestamp);

	switch (key->kind) {
	case SIGN_HMAC:
		if (key->len < SIGN_HMAC_KEY_MIN || key->len > SIGN_HMAC_KEY_MAX)
			break;
		sign_hmac_content(key, id, ts, body, body_len, sig);
		rc = sign_text_write("v1,", sig, crypto_auth_hmacsha256_BYTES, out, outlen);
		break;
	case SIGN_ED25519:
		if (key->len != crypto_sign_SECRETKEYBYTES)
			break;
		rc = sign_content_build(id, ts, body, body_len, &content, &content_len);
		if (rc != HOOKD_OK)
			break;
		if (crypto_sign_detached(sig, NULL, content, content_len, key->key) != 0) {
			rc = HOOKD_ECRYPTO;
			break;
		}
		rc = sign_text_write("v1a,", sig, crypto_sign_BYTES, out, outlen);
		break;
	case SIGN_ED25519_PUBLIC:
		break; /* cannot sign with a public key */
	}
	free(content);
	sodium_memzero(sig, sizeof(sig));
	return rc;
}

/* Parses webhook-timestamp strictly: decimal digits only, no sign, no leading zeros (the
 * spec's form). Because the accepted text is canonical, verification can MAC the text as
 * received and it equals what the sender formatted from the integer. */
static bool sign_timestamp_parse(const char *text, int64_t *out)
{
	char *end = NULL;
	long long v;

	if (!text || text[0] < '0' || text[0] > '9' || (text[0] == '0' && text[1] != '\0'))
		return false;
	for (const char *p = text; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

int sign_verify(const struct sign_key *key, const char *id, const char *timestamp,
		const void *body, size_t body_len, const char *signature_header, int64_t now,
		int64_t tolerance_s, char *err, size_t errlen)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	unsigned char sig[crypto_sign_BYTES];
	const unsigned char *pk = NULL;
	/* Ed25519 (secret or public key) unless the key says HMAC. */
	const char *version = "v1a", *p;
	size_t want_len = crypto_sign_BYTES;
	unsigned char *content = NULL;
	size_t content_len = 0, version_len, seen = 0;
	int64_t ts, skew;
	bool ok_key = false;
	int rc = HOOKD_ECRYPTO;

	if (!key || tolerance_s < 0 || (!body && body_len)) {
		err_set(err, errlen, "invalid arguments");
		rc = HOOKD_EINVAL;
		goto cleanup;
	}
	switch (key->kind) {
	case SIGN_HMAC:
		ok_key = key->len >= SIGN_HMAC_KEY_MIN && key->len <= SIGN_HMAC_KEY_MAX;
		version = "v1";
		want_len = crypto_auth_hmacsha256_BYTES;
		break;
	case SIGN_ED25519:
		ok_key = key->len == crypto_sign_SECRETKEYBYTES;
		pk = key->key + crypto_sign_SEEDBYTES;
		break;
	case SIGN_ED25519_PUBLIC:
		ok_key = key->len == crypto_sign_PUBLICKEYBYTES;
		pk = key->key;
		break;
	}
	if (!ok_key) {
		err_set(err, errlen, "key is not a parsed whsec_, whsk_ or whpk_ key");
		rc = HOOKD_EINVAL;
		goto cleanup;
	}
	version_len = strlen(version);

	if (!id || !*id) {
		err_set(err, errlen, "missing webhook-id");
		goto cleanup;
	}
	if (!timestamp || !*timestamp) {
		err_set(err, errlen, "missing webhook-timestamp");
		goto cleanup;
	}
	if (!signature_header || !*signature_header) {
		err_set(err, errlen, "missing webhook-signature");
		goto cleanup;
	}
	if (!sign_timestamp_parse(timestamp, &ts)) {
		err_set(err, errlen, "invalid webhook-timestamp '%.32s': not integer Unix seconds",
			     timestamp);
		goto cleanup;
	}
	/* Overflow means the two are absurdly far apart: out of any tolerance. */
	if (__builtin_sub_overflow(now, ts, &skew) || skew > tolerance_s) {
		err_set(err, errlen, "timestamp too old: %" PRId64 " is more than %" PRId64
			     " s before now (%" PRId64 ")", ts, tolerance_s, now);
		goto cleanup;
	}
	if (skew < -tolerance_s) {
		err_set(err, errlen, "timestamp too new: %" PRId64 " is more than %" PRId64
			     " s after now (%" PRId64 ")", ts, tolerance_s, now);
		goto cleanup;
	}

	if (key->kind == SIGN_HMAC) {
		sign_hmac_content(key, id, timestamp, body, body_len, mac);
	} else {
		rc = sign_content_build(id, timestamp, body, body_len, &content, &content_len);
		if (rc != HOOKD_OK) {
			err_set(err, errlen, "%s", rc == HOOKD_ENOMEM ? "out of memory"
									: "message too large");
			goto cleanup;
		}
		rc = HOOKD_ECRYPTO;
	}

	/* Entries are "version,base64" separated by spaces; other versions are skipped, so a
	 * sender may add a v1a next to a v1 (or sign with two keys while rotating). */
	p = signature_header;
	while (*p) {
		const char *entry, *comma, *b64;
		size_t entry_len, sig_len = 0;

		while (*p == ' ')
			p++;
		entry = p;
		while (*p && *p != ' ')
			p++;
		entry_len = (size_t)(p - entry);
		if (entry_len == 0)
			continue;
		comma = memchr(entry, ',', entry_len);
		if (!comma || (size_t)(comma - entry) != version_len ||
		    memcmp(entry, version, version_len) != 0)
			continue;
		seen++;
		b64 = comma + 1;
		if (sodium_base642bin(sig, sizeof(sig), b64, (size_t)(p - b64), NULL, &sig_len, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    sig_len != want_len)
			continue;
		if (key->kind == SIGN_HMAC) {
			if (sodium_memcmp(sig, mac, sizeof(mac)) == 0) {
				rc = HOOKD_OK;
				break;
			}
		} else if (crypto_sign_verify_detached(sig, content, content_len, pk) == 0) {
			rc = HOOKD_OK;
			break;
		}
	}
	if (rc != HOOKD_OK) {
		if (seen == 0)
			err_set(err, errlen, "no %s signature in webhook-signature", version);
		else
			err_set(err, errlen, "no matching signature (%zu %s entr%s checked)", seen,
				     version, seen == 1 ? "y" : "ies");
	}

cleanup:
	free(content);
	sodium_memzero(mac, sizeof(mac));
	return rc;
}
