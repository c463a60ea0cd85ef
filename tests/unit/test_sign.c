/* test_sign.c - Standard Webhooks signing and verification (core/sign.c, core/verify.c).
 *
 * The fixed vectors come from /work/shared/conformance/standard-webhooks.md (the reference
 * libraries' own tests); everything else is round trips and refusals. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "err.h"
#include "hookd/verify.h"
#include "sign.h"

/* The reference libraries' default tolerance (5 minutes). */
#define TOL 300

struct vector {
	const char *name, *key, *id;
	int64_t ts;
	const char *ts_text, *body, *sig;
};

static const struct vector vectors[] = {
	{ "A", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
	  1614265330, "1614265330", "{\"test\": 2432232314}",
	  "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" },
	{ "B", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
	  1649367553, "1649367553", "{\"email\":\"test@example.com\",\"username\":\"test_user\"}",
	  "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=" },
	{ "C",
	  "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==",
	  "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "1614265330", "{\"test\": 2432232314}",
	  "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==" },
};

static const char *vector_c_public = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
static const char *vector_b_negative = "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=";

static bool contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle)) {
		fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", hay, needle);
		return false;
	}
	return true;
}

/* Key text for prefix and n bytes of value fill (for length refusals). */
static void key_text(char *out, size_t outlen, const char *prefix, size_t n, unsigned char fill)
{
	unsigned char bin[128];
	size_t plen = strlen(prefix);

	memset(bin, fill, sizeof(bin));
	memcpy(out, prefix, plen);
	sodium_bin2base64(out + plen, outlen - plen, bin, n, sodium_base64_VARIANT_ORIGINAL);
}

static void test_vectors(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		struct sign_key key;
		char sig[SIGN_TEXT_MAX], err[HOOKD_VERIFY_ERR_MAX] = "";
		size_t blen = strlen(v->body);

		fprintf(stderr, "vector %s\n", v->name);
		CHECK(sign_key_parse(v->key, &key, err, sizeof(err)) == HOOKD_OK);
		CHECK(sign_compute(&key, v->id, v->ts, v->body, blen, sig, sizeof(sig)) == HOOKD_OK);
		CHECK_STR(sig, v->sig);
		CHECK(sign_verify(&key, v->id, v->ts_text, v->body, blen, v->sig, v->ts, TOL, err,
				  sizeof(err)) == HOOKD_OK);
		CHECK(hookd_verify(v->key, v->id, v->ts_text, v->body, blen, v->sig, v->ts, TOL, err,
				   sizeof(err)) == HOOKD_VERIFY_OK);
		CHECK_STR(err, "");
	}

	/* The negative case: a v1 signature that is not B's. */
	{
		const struct vector *b = &vectors[1];
		char err[HOOKD_VERIFY_ERR_MAX] = "";

		CHECK(hookd_verify(b->key, b->id, b->ts_text, b->body, strlen(b->body),
				   vector_b_negative, b->ts, TOL, err, sizeof(err)) ==
		      HOOKD_VERIFY_EFAILED);
		CHECK(contains(err, "no matching signature"));
	}

	/* Vector C's public key is derived from its secret key, and verifies alone. */
	{
		const struct vector *c = &vectors[2];
		struct sign_key key, pub;
		char text[SIGN_TEXT_MAX], err[HOOKD_VERIFY_ERR_MAX] = "";

		CHECK(sign_key_parse(c->key, &key, NULL, 0) == HOOKD_OK);
		CHECK(key.kind == SIGN_ED25519 && key.len == 64);
		CHECK(sign_key_public_text(&key, text, sizeof(text)) == HOOKD_OK);
		CHECK_STR(text, vector_c_public);
		CHECK(sign_key_parse(vector_c_public, &pub, err, sizeof(err)) == HOOKD_OK);
		CHECK(pub.kind == SIGN_ED25519_PUBLIC && pub.len == 32);
		CHECK(sign_key_public_text(&pub, text, sizeof(text)) == HOOKD_OK);
		CHECK_STR(text, vector_c_public);
		CHECK(sign_verify(&pub, c->id, c->ts_text, c->body, strlen(c->body), c->sig, c->ts,
				  TOL, err, sizeof(err)) == HOOKD_OK);
		CHECK(hookd_verify(vector_c_public, c->id, c->ts_text, c->body, strlen(c->body),
				   c->sig, c->ts, TOL, err, sizeof(err)) == HOOKD_VERIFY_OK);
		/* A public key cannot sign. */
		CHECK(sign_compute(&pub, c->id, c->ts, c->body, strlen(c->body), text,
				   sizeof(text)) == HOOKD_EINVAL);
	}
}

/* Generates a key of kind, signs, verifies; returns the generated text in out. */
static void round_trip(enum sign_kind kind, const void *body, size_t body_len)
{
	struct sign_key key, pub;
	char text[SIGN_TEXT_MAX], pub_text[SIGN_TEXT_MAX], sig[SIGN_TEXT_MAX];
	char err[HOOKD_VERIFY_ERR_MAX] = "";
	const char *id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
	int64_t ts = 1700000000;

	CHECK(sign_key_generate(kind, text, sizeof(text)) == HOOKD_OK);
	CHECK(strncmp(text, kind == SIGN_HMAC ? "whsec_" : "whsk_", kind == SIGN_HMAC ? 6 : 5) == 0);
	CHECK(sign_key_parse(text, &key, err, sizeof(err)) == HOOKD_OK);
	CHECK(key.kind == kind);
	CHECK(key.len == (kind == SIGN_HMAC ? 32 : 64));
	CHECK(sign_compute(&key, id, ts, body, body_len, sig, sizeof(sig)) == HOOKD_OK);
	CHECK(strncmp(sig, kind == SIGN_HMAC ? "v1," : "v1a,", kind == SIGN_HMAC ? 3 : 4) == 0);
	CHECK(sign_verify(&key, id, "1700000000", body, body_len, sig, ts, TOL, err,
			  sizeof(err)) == HOOKD_OK);
	CHECK(hookd_verify(text, id, "1700000000", body, body_len, sig, ts + 10, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_OK);
	if (kind == SIGN_ED25519) {
		CHECK(sign_key_public_text(&key, pub_text, sizeof(pub_text)) == HOOKD_OK);
		CHECK(sign_key_parse(pub_text, &pub, err, sizeof(err)) == HOOKD_OK);
		CHECK(sign_verify(&pub, id, "1700000000", body, body_len, sig, ts, TOL, err,
				  sizeof(err)) == HOOKD_OK);
	} else {
		CHECK(sign_key_public_text(&key, pub_text, sizeof(pub_text)) == HOOKD_EINVAL);
	}
}

static void test_round_trips(void)
{
	static const char body[] = "{\"type\":\"invoice.paid\",\"data\":{\"id\":42}}";
	unsigned char big[70000];
	char a[SIGN_TEXT_MAX], b[SIGN_TEXT_MAX];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 131 + 7);
	round_trip(SIGN_HMAC, body, strlen(body));
	round_trip(SIGN_ED25519, body, strlen(body));
	round_trip(SIGN_HMAC, NULL, 0);
	round_trip(SIGN_ED25519, NULL, 0);
	round_trip(SIGN_HMAC, big, sizeof(big));
	round_trip(SIGN_ED25519, big, sizeof(big));

	/* Generated keys differ; a public key is not generated on its own. */
	CHECK(sign_key_generate(SIGN_HMAC, a, sizeof(a)) == HOOKD_OK);
	CHECK(sign_key_generate(SIGN_HMAC, b, sizeof(b)) == HOOKD_OK);
	CHECK(strcmp(a, b) != 0);
	CHECK(sign_key_generate(SIGN_ED25519_PUBLIC, a, sizeof(a)) == HOOKD_EINVAL);
	/* Output buffers one byte short are refused rather than truncated. */
	CHECK(sign_key_generate(SIGN_HMAC, a, 6 + 44) == HOOKD_EINVAL);
	CHECK(sign_key_generate(SIGN_HMAC, a, 6 + 44 + 1) == HOOKD_OK);
	CHECK(sign_key_generate(SIGN_ED25519, a, 5 + 88) == HOOKD_EINVAL);
	CHECK(sign_key_generate(SIGN_ED25519, a, 5 + 88 + 1) == HOOKD_OK);
}

static void test_rotation(void)
{
	const struct vector *a = &vectors[0], *c = &vectors[2];
	const char *other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"; /* vector B's key */
	struct sign_key k1, k2, k3;
	char s1[SIGN_TEXT_MAX], s2[SIGN_TEXT_MAX], header[4 * SIGN_TEXT_MAX];
	char k3_text[SIGN_TEXT_MAX], err[HOOKD_VERIFY_ERR_MAX] = "";
	size_t blen = strlen(a->body);

	CHECK(sign_key_parse(a->key, &k1, NULL, 0) == HOOKD_OK);
	CHECK(sign_key_parse(other, &k2, NULL, 0) == HOOKD_OK);
	CHECK(sign_key_generate(SIGN_HMAC, k3_text, sizeof(k3_text)) == HOOKD_OK);
	CHECK(sign_key_parse(k3_text, &k3, NULL, 0) == HOOKD_OK);
	CHECK(sign_compute(&k1, a->id, a->ts, a->body, blen, s1, sizeof(s1)) == HOOKD_OK);
	CHECK(sign_compute(&k2, a->id, a->ts, a->body, blen, s2, sizeof(s2)) == HOOKD_OK);
	snprintf(header, sizeof(header), "%s %s", s1, s2);
	CHECK(sign_verify(&k1, a->id, a->ts_text, a->body, blen, header, a->ts, TOL, err,
			  sizeof(err)) == HOOKD_OK);
	CHECK(sign_verify(&k2, a->id, a->ts_text, a->body, blen, header, a->ts, TOL, err,
			  sizeof(err)) == HOOKD_OK);
	CHECK(sign_verify(&k3, a->id, a->ts_text, a->body, blen, header, a->ts, TOL, err,
			  sizeof(err)) == HOOKD_ECRYPTO);
	CHECK(contains(err, "no matching signature (2 v1 entries checked)"));

	/* Mixed versions, extra spaces, junk entries: v1a entries are ignored by an HMAC key and
	 * v1 entries by an Ed25519 key. */
	snprintf(header, sizeof(header), "  v2,abc %s garbage v1,!!!! v1,AAAA   %s  ", c->sig, s2);
	CHECK(sign_verify(&k2, a->id, a->ts_text, a->body, blen, header, a->ts, TOL, err,
			  sizeof(err)) == HOOKD_OK);
	CHECK(hookd_verify(c->key, c->id, c->ts_text, c->body, blen, header, c->ts, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_OK);
	CHECK(hookd_verify(vector_c_public, c->id, c->ts_text, c->body, blen, header, c->ts, TOL,
			   err, sizeof(err)) == HOOKD_VERIFY_OK);

	/* Only other versions present. */
	CHECK(sign_verify(&k1, a->id, a->ts_text, a->body, blen, c->sig, a->ts, TOL, err,
			  sizeof(err)) == HOOKD_ECRYPTO);
	CHECK(contains(err, "no v1 signature"));
	CHECK(hookd_verify(vector_c_public, a->id, a->ts_text, a->body, blen, s1, a->ts, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_EFAILED);
	CHECK(contains(err, "no v1a signature"));
	/* The v1 MAC bytes relabelled as v1a do not pass (wrong length, wrong scheme). */
	snprintf(header, sizeof(header), "v1a,%s", s1 + 3);
	CHECK(hookd_verify(vector_c_public, a->id, a->ts_text, a->body, blen, header, a->ts, TOL,
			   err, sizeof(err)) == HOOKD_VERIFY_EFAILED);
}

static void test_tampering(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		char body[128], id[64], ts_next[32], sig[SIGN_TEXT_MAX];
		char err[HOOKD_VERIFY_ERR_MAX] = "";
		size_t blen = strlen(v->body);

		memcpy(body, v->body, blen + 1);
		body[blen / 2] ^= 1;
		CHECK(hookd_verify(v->key, v->id, v->ts_text, body, blen, v->sig, v->ts, TOL, err,
				   sizeof(err)) == HOOKD_VERIFY_EFAILED);
		CHECK(contains(err, "no matching signature"));
		/* Truncated and extended bodies. */
		CHECK(hookd_verify(v->key, v->id, v->ts_text, v->body, blen - 1, v->sig, v->ts, TOL,
				   err, sizeof(err)) == HOOKD_VERIFY_EFAILED);
		memcpy(body, v->body, blen);
		body[blen] = ' ';
		CHECK(hookd_verify(v->key, v->id, v->ts_text, body, blen + 1, v->sig, v->ts, TOL, err,
				   sizeof(err)) == HOOKD_VERIFY_EFAILED);

		snprintf(id, sizeof(id), "%sX", v->id);
		CHECK(hookd_verify(v->key, id, v->ts_text, v->body, blen, v->sig, v->ts, TOL, err,
				   sizeof(err)) == HOOKD_VERIFY_EFAILED);
		CHECK(contains(err, "no matching signature"));

		/* A timestamp one second later, still within tolerance, is not what was signed. */
		snprintf(ts_next, sizeof(ts_next), "%" PRId64, v->ts + 1);
		CHECK(hookd_verify(v->key, v->id, ts_next, v->body, blen, v->sig, v->ts, TOL, err,
				   sizeof(err)) == HOOKD_VERIFY_EFAILED);
		CHECK(contains(err, "no matching signature"));

		/* One flipped signature bit. */
		snprintf(sig, sizeof(sig), "%s", v->sig);
		sig[strlen(sig) - 5] = sig[strlen(sig) - 5] == 'A' ? 'B' : 'A';
		CHECK(hookd_verify(v->key, v->id, v->ts_text, v->body, blen, sig, v->ts, TOL, err,
				   sizeof(err)) == HOOKD_VERIFY_EFAILED);
	}
}

static void test_timestamps(void)
{
	const struct vector *a = &vectors[0], *c = &vectors[2];
	static const char *bad[] = { "abc", "-1614265330", "+1614265330", "01614265330",
				     "1614265330 ", " 1614265330", "1614265330.5", "1.6e9",
				     "99999999999999999999" };
	char err[HOOKD_VERIFY_ERR_MAX] = "";
	size_t blen = strlen(a->body);

	/* Exactly at the tolerance is accepted, one second beyond is not, both ways. */
	CHECK(hookd_verify(a->key, a->id, a->ts_text, a->body, blen, a->sig, a->ts + TOL, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_OK);
	CHECK(hookd_verify(a->key, a->id, a->ts_text, a->body, blen, a->sig, a->ts - TOL, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_OK);
	CHECK(hookd_verify(a->key, a->id, a->ts_text, a->body, blen, a->sig, a->ts + TOL + 1, TOL,
			   err, sizeof(err)) == HOOKD_VERIFY_EFAILED);
	CHECK(contains(err, "timestamp too old"));
	CHECK(hookd_verify(a->key, a->id, a->ts_text, a->body, blen, a->sig, a->ts - TOL - 1, TOL,
			   err, sizeof(err)) == HOOKD_VERIFY_EFAILED);
	CHECK(contains(err, "timestamp too new"));
	CHECK(hookd_verify(c->key, c->id, c->ts_text, c->body, blen, c->sig, c->ts + 86400, TOL,
			   err, sizeof(err)) == HOOKD_VERIFY_EFAILED);
	CHECK(contains(err, "timestamp too old"));
	/* Extreme now values do not overflow into acceptance. */
	CHECK(hookd_verify(a->key, a->id, a->ts_text, a->body, blen, a->sig, INT64_MIN, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_EFAILED);
	CHECK(hookd_verify(a->key, a->id, a->ts_text, a->body, blen, a->sig, INT64_MAX, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_EFAILED);
	/* Zero tolerance accepts only the exact second. */
	CHECK(hookd_verify(a->key, a->id, a->ts_text, a->body, blen, a->sig, a->ts, 0, err,
			   sizeof(err)) == HOOKD_VERIFY_OK);
	CHECK(hookd_verify(a->key, a->id, a->ts_text, a->body, blen, a->sig, a->ts, -1, err,
			   sizeof(err)) == HOOKD_VERIFY_EINVAL);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(hookd_verify(a->key, a->id, bad[i], a->body, blen, a->sig, a->ts, TOL, err,
				   sizeof(err)) == HOOKD_VERIFY_EFAILED);
		CHECK(contains(err, "invalid webhook-timestamp"));
	}

	/* Missing headers. */
	CHECK(hookd_verify(a->key, "", a->ts_text, a->body, blen, a->sig, a->ts, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_EFAILED);
	CHECK(contains(err, "missing webhook-id"));
	CHECK(hookd_verify(a->key, a->id, NULL, a->body, blen, a->sig, a->ts, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_EFAILED);
	CHECK(contains(err, "missing webhook-timestamp"));
	CHECK(hookd_verify(a->key, a->id, a->ts_text, a->body, blen, "", a->ts, TOL, err,
			   sizeof(err)) == HOOKD_VERIFY_EFAILED);
	CHECK(contains(err, "missing webhook-signature"));
}

static void test_bad_keys(void)
{
	struct sign_key key;
	char text[256], err[HOOKD_VERIFY_ERR_MAX];
	const struct vector *a = &vectors[0], *c = &vectors[2];

	CHECK(sign_key_parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &key, err, sizeof(err)) ==
	      HOOKD_EINVAL);
	CHECK_STR(err, "secret must start with whsec_, whsk_ or whpk_");
	CHECK(sign_key_parse("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &key, err, sizeof(err)) ==
	      HOOKD_EINVAL);
	CHECK(sign_key_parse("", &key, err, sizeof(err)) == HOOKD_EINVAL);
	CHECK(sign_key_parse(NULL, &key, err, sizeof(err)) == HOOKD_EINVAL);

	/* Lengths: whsec_ 24..64 bytes, whsk_ 64, whpk_ 32. */
	key_text(text, sizeof(text), "whsec_", 23, 7);
	CHECK(sign_key_parse(text, &key, err, sizeof(err)) == HOOKD_EINVAL);
	CHECK_STR(err, "whsec_ key must decode to 24..64 bytes, got 23");
	key_text(text, sizeof(text), "whsec_", 24, 7);
	CHECK(sign_key_parse(text, &key, err, sizeof(err)) == HOOKD_OK && key.len == 24);
	key_text(text, sizeof(text), "whsec_", 64, 7);
	CHECK(sign_key_parse(text, &key, err, sizeof(err)) == HOOKD_OK && key.len == 64);
	key_text(text, sizeof(text), "whsec_", 65, 7);
	CHECK(sign_key_parse(text, &key, err, sizeof(err)) == HOOKD_EINVAL);
	CHECK_STR(err, "whsec_ key must decode to 24..64 bytes, got 65");
	CHECK(sign_key_parse("whsec_", &key, err, sizeof(err)) == HOOKD_EINVAL);
	CHECK_STR(err, "whsec_ key must decode to 24..64 bytes, got 0");
	key_text(text, sizeof(text), "whsk_", 32, 7);
	CHECK(sign_key_parse(text, &key, err, sizeof(err)) == HOOKD_EINVAL);
	CHECK_STR(err, "whsk_ key must decode to 64 bytes, got 32");
	key_text(text, sizeof(text), "whpk_", 64, 7);
	CHECK(sign_key_parse(text, &key, err, sizeof(err)) == HOOKD_EINVAL);
	CHECK_STR(err, "whpk_ key must decode to 32 bytes, got 64");
	key_text(text, sizeof(text), "whsec_", 91, 7);
	CHECK(sign_key_parse(text, &key, err, sizeof(err)) == HOOKD_EINVAL);
	CHECK(contains(err, "too long"));

	/* Base64 damage: a bad character, missing padding, URL-safe alphabet. */
	CHECK(sign_key_parse("whsec_MfKQ9r8GKYqrTwjUPD8I!PZIo2LaLaSw", &key, err, sizeof(err)) ==
	      HOOKD_EINVAL);
	CHECK_STR(err, "whsec_ key is not valid base64 (bad character at offset 20)");
	CHECK(sign_key_parse("whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4", &key, err,
			     sizeof(err)) == HOOKD_EINVAL);
	CHECK(contains(err, "whpk_ key is not valid base64"));
	CHECK(sign_key_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ", &key, err, sizeof(err)) ==
	      HOOKD_EINVAL);
	CHECK(sign_key_parse("whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD", &key, err, sizeof(err)) ==
	      HOOKD_EINVAL);

	/* A whsk_ whose public half belongs to another seed. */
	snprintf(text, sizeof(text), "%s", c->key);
	text[strlen(text) - 4] = text[strlen(text) - 4] == 'A' ? 'B' : 'A';
	CHECK(sign_key_parse(text, &key, err, sizeof(err)) == HOOKD_EINVAL);
	CHECK(contains(err, "not the public key"));

	/* A failed parse leaves no key material behind, and the key is refused afterwards. */
	CHECK(key.len == 0);
	CHECK(sign_verify(&key, a->id, a->ts_text, a->body, strlen(a->body), a->sig, a->ts, TOL,
			  err, sizeof(err)) == HOOKD_EINVAL);
	CHECK(hookd_verify("whsec_", a->id, a->ts_text, a->body, strlen(a->body), a->sig, a->ts,
			   TOL, err, sizeof(err)) == HOOKD_VERIFY_EINVAL);
	CHECK_STR(err, "whsec_ key must decode to 24..64 bytes, got 0");
	/* err may be NULL. */
	CHECK(sign_key_parse("nope", &key, NULL, 0) == HOOKD_EINVAL);
	CHECK(hookd_verify("nope", a->id, a->ts_text, a->body, strlen(a->body), a->sig, a->ts, TOL,
			   NULL, 0) == HOOKD_VERIFY_EINVAL);
}

static void test_compute_refusals(void)
{
	const struct vector *a = &vectors[0];
	struct sign_key key;
	char sig[SIGN_TEXT_MAX];

	CHECK(sign_key_parse(a->key, &key, NULL, 0) == HOOKD_OK);
	/* An id with "." would make the signed content ambiguous. */
	CHECK(sign_compute(&key, "msg.1", a->ts, a->body, strlen(a->body), sig, sizeof(sig)) ==
	      HOOKD_EINVAL);
	CHECK(sign_compute(&key, "", a->ts, a->body, strlen(a->body), sig, sizeof(sig)) ==
	      HOOKD_EINVAL);
	CHECK(sign_compute(&key, NULL, a->ts, a->body, strlen(a->body), sig, sizeof(sig)) ==
	      HOOKD_EINVAL);
	CHECK(sign_compute(&key, a->id, a->ts, NULL, 3, sig, sizeof(sig)) == HOOKD_EINVAL);
	/* "v1," + 44 base64 characters + NUL = 48. */
	CHECK(sign_compute(&key, a->id, a->ts, a->body, strlen(a->body), sig, 47) == HOOKD_EINVAL);
	CHECK(sign_compute(&key, a->id, a->ts, a->body, strlen(a->body), sig, 48) == HOOKD_OK);
	CHECK_STR(sig, a->sig);
}

int main(void)
{
	CHECK(sign_init() == HOOKD_OK);
	CHECK(sign_init() == HOOKD_OK); /* idempotent */
	test_vectors();
	test_round_trips();
	test_rotation();
	test_tampering();
	test_timestamps();
	test_bad_keys();
	test_compute_refusals();
	return check_done();
}
