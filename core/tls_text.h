/* tls_text.h - TLS material given as text (an endpoint's "tls" options): structural checks
 * of PEM certificates and private keys (RFC 7468) and of SPKI pins, and the prefix the API
 * shows of a private key.
 *
 * The checks are structural only (the blocks, their labels, base64 that decodes to DER): the
 * core does not link a TLS library, so whether a key matches its certificate, or a
 * certificate has expired, is found at the first attempt (libcurl's error is the attempt's
 * error). That is what catches pasting the wrong file, a key into the certificate's place,
 * or an encrypted key, at the API instead of at delivery time. */
#ifndef HOOKD_TLS_TEXT_H
#define HOOKD_TLS_TEXT_H

#include <stddef.h>

/* SPKI pins in one "sha256//..." list: more than a key rotation needs (current, next, a
 * backup), few enough to keep the option short. */
#define TLS_TEXT_PINS_MAX 8

/* HOOKD_OK when text holds one or more PEM CERTIFICATE blocks and no block of another kind
 * (text outside the blocks is ignored, as OpenSSL does); HOOKD_EINVAL with why otherwise
 * ("not a PEM certificate ...", "holds a PRIVATE KEY block ..."). *n (may be NULL) receives
 * the number of certificates. */
int tls_text_check_certs(const char *text, size_t *n, char *why, size_t whylen);

/* HOOKD_OK when text holds exactly one unencrypted PEM private key (PRIVATE KEY, RSA PRIVATE
 * KEY or EC PRIVATE KEY); encrypted keys are refused (there is no passphrase option).
 * HOOKD_EINVAL with why otherwise; why never quotes the key. */
int tls_text_check_key(const char *text, char *why, size_t whylen);

/* HOOKD_OK when text is libcurl's CURLOPT_PINNEDPUBLICKEY hash list: 1..TLS_TEXT_PINS_MAX
 * entries "sha256//<base64 of 32 bytes>" joined by ';'. HOOKD_EINVAL with why otherwise. */
int tls_text_check_pins(const char *text, char *why, size_t whylen);

/* What the API shows of a private key: its first line (the PEM header, "-----BEGIN PRIVATE
 * KEY-----", at most 64 bytes of it) followed by "…" (U+2026). Nothing of the key's base64
 * is ever shown. Writes into out (outlen >= 68) and returns it. */
const char *tls_text_key_prefix(const char *key, char *out, size_t outlen);

#endif
