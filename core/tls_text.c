/* tls_text.c - structural checks of PEM certificates, keys and SPKI pins (tls_text.h). */
#include "tls_text.h"

#include "err.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TLS_PEM_BEGIN "-----BEGIN "
#define TLS_PEM_END "-----END "
#define TLS_PEM_DASHES "-----"
/* A PEM label is a short upper-case name ("CERTIFICATE", "ENCRYPTED PRIVATE KEY"). */
#define TLS_PEM_LABEL_MAX 64
/* SHA-256 digests, as the pin's base64 must decode to. */
#define TLS_PIN_HASH_LEN 32

/* One block found by tls_pem_next. */
struct tls_pem_block {
	char label[TLS_PEM_LABEL_MAX + 1];
	const char *body;  /* between the BEGIN and the END line */
	size_t body_len;
};

enum tls_pem_step { TLS_PEM_NONE, TLS_PEM_BLOCK, TLS_PEM_BROKEN };

/* Finds the next "-----BEGIN L-----" ... "-----END L-----" block at or after *pos and moves
 * *pos past it. TLS_PEM_NONE when there is no further BEGIN line, TLS_PEM_BROKEN when a
 * BEGIN line has no matching END line or a bad label. */
static enum tls_pem_step tls_pem_next(const char **pos, struct tls_pem_block *b)
{
	const char *begin = strstr(*pos, TLS_PEM_BEGIN), *label, *dashes, *end;
	char end_line[sizeof(TLS_PEM_END) + TLS_PEM_LABEL_MAX + sizeof(TLS_PEM_DASHES)];
	size_t llen;

	if (!begin)
		return TLS_PEM_NONE;
	label = begin + strlen(TLS_PEM_BEGIN);
	dashes = strstr(label, TLS_PEM_DASHES);
	if (!dashes || (llen = (size_t)(dashes - label)) == 0 || llen > TLS_PEM_LABEL_MAX ||
	    memchr(label, '\n', llen))
		return TLS_PEM_BROKEN;
	memcpy(b->label, label, llen);
	b->label[llen] = '\0';
	snprintf(end_line, sizeof(end_line), "%s%s%s", TLS_PEM_END, b->label, TLS_PEM_DASHES);
	b->body = dashes + strlen(TLS_PEM_DASHES);
	end = strstr(b->body, end_line);
	if (!end)
		return TLS_PEM_BROKEN;
	b->body_len = (size_t)(end - b->body);
	*pos = end + strlen(end_line);
	return TLS_PEM_BLOCK;
}

/* true when the block's body is base64 (whitespace ignored, '=' padding only at the end)
 * of DER, which starts with a SEQUENCE (0x30). A body with RFC 1421 headers ("Proc-Type:
 * 4,ENCRYPTED") is not. Only the first group is decoded: no allocation, whatever the size. */
static bool tls_pem_body_der(const struct tls_pem_block *b)
{
	char head[4];
	unsigned char bin[3];
	size_t nhead = 0, n = 0, pad = 0, bin_len = 0;

	for (size_t i = 0; i < b->body_len; i++) {
		char c = b->body[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=')
			pad++;
		else if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				  (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return false;
		if (nhead < sizeof(head))
			head[nhead++] = c;
		n++;
	}
	if (n == 0 || n % 4 != 0 || pad > 2 || nhead < sizeof(head))
		return false;
	return sodium_base642bin(bin, sizeof(bin), head, sizeof(head), NULL, &bin_len, NULL,
				 sodium_base64_VARIANT_ORIGINAL) == 0 &&
	       bin_len > 0 && bin[0] == 0x30;
}

static bool tls_label_is_key(const char *label)
{
	return strstr(label, "PRIVATE KEY") != NULL;
}

int tls_text_check_certs(const char *text, size_t *n, char *why, size_t whylen)
{
	const char *pos = text;
	struct tls_pem_block b;
	size_t count = 0;
	enum tls_pem_step step;

	while ((step = tls_pem_next(&pos, &b)) == TLS_PEM_BLOCK) {
		if (tls_label_is_key(b.label)) {
			err_set(why, whylen,
				"holds a %s block: give only certificates here (the client key "
				"goes in tls.client_key)",
				b.label);
			return HOOKD_EINVAL;
		}
		if (strcmp(b.label, "CERTIFICATE") != 0) {
			err_set(why, whylen,
				"not a PEM certificate: holds a '%s' block (expected -----BEGIN "
				"CERTIFICATE----- blocks)",
				b.label);
			return HOOKD_EINVAL;
		}
		if (!tls_pem_body_der(&b)) {
			err_set(why, whylen,
				"not a PEM certificate: certificate %zu is not base64 of DER", count + 1);
			return HOOKD_EINVAL;
		}
		count++;
	}
	if (step == TLS_PEM_BROKEN || count == 0) {
		err_set(why, whylen,
			step == TLS_PEM_BROKEN
				? "not a PEM certificate: a -----BEGIN line has no matching -----END line"
				: "not a PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)");
		return HOOKD_EINVAL;
	}
	if (n)
		*n = count;
	return HOOKD_OK;
}

int tls_text_check_key(const char *text, char *why, size_t whylen)
{
	const char *pos = text;
	struct tls_pem_block b;
	enum tls_pem_step step = tls_pem_next(&pos, &b);

	if (step != TLS_PEM_BLOCK || !tls_label_is_key(b.label)) {
		err_set(why, whylen,
			step == TLS_PEM_BLOCK && strcmp(b.label, "CERTIFICATE") == 0
				? "not a PEM private key: this is a certificate (it goes in "
				  "tls.client_cert)"
				: "not a PEM private key (expected -----BEGIN PRIVATE KEY-----; value "
				  "not shown)");
		return HOOKD_EINVAL;
	}
	if (strcmp(b.label, "ENCRYPTED PRIVATE KEY") == 0 ||
	    memmem(b.body, b.body_len, "ENCRYPTED", 9)) {
		err_set(why, whylen,
			"encrypted private keys are not supported (there is no passphrase option); "
			"give the key unencrypted (value not shown)");
		return HOOKD_EINVAL;
	}
	if ((strcmp(b.label, "PRIVATE KEY") != 0 && strcmp(b.label, "RSA PRIVATE KEY") != 0 &&
	     strcmp(b.label, "EC PRIVATE KEY") != 0) ||
	    !tls_pem_body_der(&b)) {
		err_set(why, whylen,
			"not a PEM private key (expected one PRIVATE KEY, RSA PRIVATE KEY or EC "
			"PRIVATE KEY block; value not shown)");
		return HOOKD_EINVAL;
	}
	if (tls_pem_next(&pos, &b) != TLS_PEM_NONE) {
		err_set(why, whylen, "holds more than one PEM block: give exactly one private key "
				     "(value not shown)");
		return HOOKD_EINVAL;
	}
	return HOOKD_OK;
}

int tls_text_check_pins(const char *text, char *why, size_t whylen)
{
	const char *p = text;
	size_t n = 0;

	for (;;) {
		const char *semi = strchr(p, ';');
		size_t len = semi ? (size_t)(semi - p) : strlen(p), b64_len, bin_len = 0;
		unsigned char bin[TLS_PIN_HASH_LEN + 1];
		const char *end = NULL;

		if (++n > TLS_TEXT_PINS_MAX) {
			err_set(why, whylen, "at most %d pins (joined by ';')", TLS_TEXT_PINS_MAX);
			return HOOKD_EINVAL;
		}
		b64_len = len > 8 ? len - 8 : 0;
		if (len < 8 || strncmp(p, "sha256//", 8) != 0 ||
		    sodium_base642bin(bin, sizeof(bin), p + 8, b64_len, NULL, &bin_len, &end,
				      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    end != p + len || bin_len != TLS_PIN_HASH_LEN) {
			err_set(why, whylen,
				"expected sha256//<base64 of 32 bytes> (the SHA-256 of the server's "
				"public key, several joined by ';'), entry %zu is not",
				n);
			return HOOKD_EINVAL;
		}
		if (!semi)
			return HOOKD_OK;
		p = semi + 1;
	}
}

const char *tls_text_key_prefix(const char *key, char *out, size_t outlen)
{
	size_t len;
	key += strspn(key, " \t\r\n");
	len = strcspn(key, "\r\n");
	if (len > 64)
		len = 64;
	snprintf(out, outlen, "%.*s\u2026", (int)len, key);
	return out;
}
