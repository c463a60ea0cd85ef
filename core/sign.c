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

/* The prefix text starts with, or NULL if none of whsec_, whsk_, whpk_. */
static const struct sign_prefix *sign_prefix_find(const char *text)
{
	for (size_t i = 0; i < sizeof(sign_prefixes) / sizeof(sign_prefixes[0]); i++)
		if (strncmp(text, sign_prefixes[i].text, strlen(sign_prefixes[i].text)) == 0)
			return &sign_prefixes[i];
	return NULL;
}

/* Decodes the base64 after the prefix (text_len characters of text in all) into bin,
 * which the caller zeroes afterwards whatever the outcome: a failed decode may have
 * written part of the key. */
static int sign_key_decode(const struct sign_prefix *prefix, const char *text, size_t text_len,
			   unsigned char *bin, size_t bin_max, size_t *bin_len, char *err,
			   size_t errlen)
{
	const char *b64 = text + strlen(prefix->text), *b64_end = NULL;
	size_t b64_len = text_len - strlen(prefix->text);

	if (sodium_base642bin(bin, bin_max, b64, b64_len, NULL, bin_len, &b64_end,
			      sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    b64_end == b64 + b64_len)
		return HOOKD_OK;
	if (b64_end && b64_end < b64 + b64_len)
		err_set(err, errlen, "%s key is not valid base64 (bad character at offset %zu)",
			prefix->text, (size_t)(b64_end - b64));
	else
		err_set(err, errlen, "%s key is not valid base64 (bad length or padding)",
			prefix->text);
	return HOOKD_EINVAL;
}

/* Checks that the decoded key has the length its kind needs (and, for whsk_, that its
 * halves belong together). */
static int sign_key_check(enum sign_kind kind, const unsigned char *bin, size_t bin_len,
			  char *err, size_t errlen)
{
	switch (kind) {
	case SIGN_HMAC:
		if (bin_len < SIGN_HMAC_KEY_MIN || bin_len > SIGN_HMAC_KEY_MAX) {
			err_set(err, errlen, "whsec_ key must decode to %d..%d bytes, got %zu",
				SIGN_HMAC_KEY_MIN, SIGN_HMAC_KEY_MAX, bin_len);
			return HOOKD_EINVAL;
		}
		break;
	case SIGN_ED25519:
		if (bin_len != crypto_sign_SECRETKEYBYTES) {
			err_set(err, errlen, "whsk_ key must decode to %d bytes, got %zu",
				crypto_sign_SECRETKEYBYTES, bin_len);
			return HOOKD_EINVAL;
		}
		if (!sign_ed25519_key_consistent(bin)) {
			err_set(err, errlen,
				"whsk_ key's last 32 bytes are not the public key of its first 32");
			return HOOKD_EINVAL;
		}
		break;
	case SIGN_ED25519_PUBLIC:
		if (bin_len != crypto_sign_PUBLICKEYBYTES) {
			err_set(err, errlen, "whpk_ key must decode to %d bytes, got %zu",
				crypto_sign_PUBLICKEYBYTES, bin_len);
			return HOOKD_EINVAL;
		}
		break;
	}
	return HOOKD_OK;
}

int sign_key_parse(const char *text, struct sign_key *out, char *err, size_t errlen)
{
	unsigned char bin[SIGN_DECODE_MAX];
	const struct sign_prefix *prefix;
	size_t text_len, bin_len = 0;
	int rc;

	if (!out) {
		err_set(err, errlen, "no key to parse into");
		return HOOKD_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (!text) {
		err_set(err, errlen, "no secret given");
		return HOOKD_EINVAL;
	}
	prefix = sign_prefix_find(text);
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
	rc = sign_key_decode(prefix, text, text_len, bin, sizeof(bin), &bin_len, err, errlen);
	if (rc != HOOKD_OK)
		goto cleanup;
	rc = sign_key_check(prefix->kind, bin, bin_len, err, errlen);
	if (rc != HOOKD_OK)
		goto cleanup;
	out->kind = prefix->kind;
	out->len = bin_len;
	memcpy(out->key, bin, bin_len);
	if (out->kind == SIGN_HMAC)
		crypto_auth_hmacsha256_init(&out->hmac, bin, bin_len);

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

/* HMAC-SHA256 over id "." ts "." body, fed in pieces: no copy of the body. Starts from the
 * key's keyed state (sign_key_parse). */
static void sign_hmac_content(const struct sign_key *key, const char *id, const char *ts,
			      const void *body, size_t body_len,
			      unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st = key->hmac;

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

/* What one sign_verify call compares the entries of the header with. */
struct sign_expect {
	enum sign_kind kind;
	const char *version;          /* the entries that count: "v1" (HMAC) or "v1a" (Ed25519) */
	size_t version_len;
	size_t want_len;              /* bytes a signature of that version decodes to */
	const unsigned char *mac;     /* HMAC: the expected MAC (the caller's, zeroed by it) */
	const unsigned char *pk;      /* Ed25519: the public key, inside the caller's key */
	unsigned char *content;       /* Ed25519: the signed content (heap, freed by the caller) */
	size_t content_len;
};

/* Fills kind, version, want_len and pk of ex for key; false if key is not a parsed key. */
static bool sign_expect_init(const struct sign_key *key, struct sign_expect *ex)
{
	bool ok_key = false;

	/* Ed25519 (secret or public key) unless the key says HMAC. */
	ex->kind = key->kind;
	ex->version = "v1a";
	ex->want_len = crypto_sign_BYTES;
	switch (key->kind) {
	case SIGN_HMAC:
		ok_key = key->len >= SIGN_HMAC_KEY_MIN && key->len <= SIGN_HMAC_KEY_MAX;
		ex->version = "v1";
		ex->want_len = crypto_auth_hmacsha256_BYTES;
		break;
	case SIGN_ED25519:
		ok_key = key->len == crypto_sign_SECRETKEYBYTES;
		ex->pk = key->key + crypto_sign_SEEDBYTES;
		break;
	case SIGN_ED25519_PUBLIC:
		ok_key = key->len == crypto_sign_PUBLICKEYBYTES;
		ex->pk = key->key;
		break;
	}
	ex->version_len = strlen(ex->version);
	return ok_key;
}

/* Checks that the three webhook-* headers are there and that the timestamp is integer Unix
 * seconds within tolerance_s of now. HOOKD_OK, or HOOKD_ECRYPTO with the reason in err. */
static int sign_headers_check(const char *id, const char *timestamp,
			      const char *signature_header, int64_t now, int64_t tolerance_s,
			      char *err, size_t errlen)
{
	int64_t ts, skew;

	if (!id || !*id) {
		err_set(err, errlen, "missing webhook-id");
		return HOOKD_ECRYPTO;
	}
	if (!timestamp || !*timestamp) {
		err_set(err, errlen, "missing webhook-timestamp");
		return HOOKD_ECRYPTO;
	}
	if (!signature_header || !*signature_header) {
		err_set(err, errlen, "missing webhook-signature");
		return HOOKD_ECRYPTO;
	}
	if (!sign_timestamp_parse(timestamp, &ts)) {
		err_set(err, errlen, "invalid webhook-timestamp '%.32s': not integer Unix seconds",
			     timestamp);
		return HOOKD_ECRYPTO;
	}
	/* Overflow means the two are absurdly far apart: out of any tolerance. */
	if (__builtin_sub_overflow(now, ts, &skew) || skew > tolerance_s) {
		err_set(err, errlen, "timestamp too old: %" PRId64 " is more than %" PRId64
			     " s before now (%" PRId64 ")", ts, tolerance_s, now);
		return HOOKD_ECRYPTO;
	}
	if (skew < -tolerance_s) {
		err_set(err, errlen, "timestamp too new: %" PRId64 " is more than %" PRId64
			     " s after now (%" PRId64 ")", ts, tolerance_s, now);
		return HOOKD_ECRYPTO;
	}
	return HOOKD_OK;
}

/* Computes what the entries are checked against: for HMAC the MAC into mac (which ex then
 * points to), for Ed25519 the signed content into ex->content. HOOKD_OK, or HOOKD_ENOMEM /
 * HOOKD_ETOOBIG with the reason in err. */
static int sign_expect_content(const struct sign_key *key, const char *id, const char *timestamp,
			       const void *body, size_t body_len,
			       unsigned char mac[crypto_auth_hmacsha256_BYTES],
			       struct sign_expect *ex, char *err, size_t errlen)
{
	int rc;

	if (key->kind == SIGN_HMAC) {
		sign_hmac_content(key, id, timestamp, body, body_len, mac);
		ex->mac = mac;
		return HOOKD_OK;
	}
	rc = sign_content_build(id, timestamp, body, body_len, &ex->content, &ex->content_len);
	if (rc != HOOKD_OK)
		err_set(err, errlen, "%s", rc == HOOKD_ENOMEM ? "out of memory"
							: "message too large");
	return rc;
}

/* Whether b64 (b64_len characters, one entry's signature) is a valid signature of ex. */
static bool sign_entry_matches(const struct sign_expect *ex, const char *b64, size_t b64_len)
{
	unsigned char sig[crypto_sign_BYTES];
	size_t sig_len = 0;

	if (sodium_base642bin(sig, sizeof(sig), b64, b64_len, NULL, &sig_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    sig_len != ex->want_len)
		return false;
	if (ex->kind == SIGN_HMAC)
		return sodium_memcmp(sig, ex->mac, crypto_auth_hmacsha256_BYTES) == 0;
	return crypto_sign_verify_detached(sig, ex->content, ex->content_len, ex->pk) == 0;
}

/* Entries are "version,base64" separated by spaces; other versions are skipped, so a
 * sender may add a v1a next to a v1 (or sign with two keys while rotating). Returns
 * HOOKD_OK at the first entry of ex's version that matches, else HOOKD_ECRYPTO; *seen
 * counts the entries of that version looked at. */
static int sign_entries_scan(const struct sign_expect *ex, const char *signature_header,
			     size_t *seen)
{
	const char *p = signature_header;

	while (*p) {
		const char *entry, *comma, *b64;
		size_t entry_len;

		while (*p == ' ')
			p++;
		entry = p;
		while (*p && *p != ' ')
			p++;
		entry_len = (size_t)(p - entry);
		if (entry_len == 0)
			continue;
		comma = memchr(entry, ',', entry_len);
		if (!comma || (size_t)(comma - entry) != ex->version_len ||
		    memcmp(entry, ex->version, ex->version_len) != 0)
			continue;
		(*seen)++;
		b64 = comma + 1;
		if (sign_entry_matches(ex, b64, (size_t)(p - b64)))
			return HOOKD_OK;
	}
	return HOOKD_ECRYPTO;
}

int sign_verify(const struct sign_key *key, const char *id, const char *timestamp,
		const void *body, size_t body_len, const char *signature_header, int64_t now,
		int64_t tolerance_s, char *err, size_t errlen)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	struct sign_expect ex;
	size_t seen = 0;
	int rc;

	memset(&ex, 0, sizeof(ex));
	if (!key || tolerance_s < 0 || (!body && body_len)) {
		err_set(err, errlen, "invalid arguments");
		rc = HOOKD_EINVAL;
		goto cleanup;
	}
	if (!sign_expect_init(key, &ex)) {
		err_set(err, errlen, "key is not a parsed whsec_, whsk_ or whpk_ key");
		rc = HOOKD_EINVAL;
		goto cleanup;
	}
	rc = sign_headers_check(id, timestamp, signature_header, now, tolerance_s, err, errlen);
	if (rc != HOOKD_OK)
		goto cleanup;
	rc = sign_expect_content(key, id, timestamp, body, body_len, mac, &ex, err, errlen);
	if (rc != HOOKD_OK)
		goto cleanup;
	rc = sign_entries_scan(&ex, signature_header, &seen);
	if (rc != HOOKD_OK) {
		if (seen == 0)
			err_set(err, errlen, "no %s signature in webhook-signature", ex.version);
		else
			err_set(err, errlen, "no matching signature (%zu %s entr%s checked)", seen,
				     ex.version, seen == 1 ? "y" : "ies");
	}

cleanup:
	free(ex.content);
	sodium_memzero(mac, sizeof(mac));
	return rc;
}
