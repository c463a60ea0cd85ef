/* test_tls_text.c - the structural checks of an endpoint's TLS material (tls_text.c) and the
 * prefix the API shows of a key. The PEM below is structurally valid (base64 of bytes that
 * start with a DER SEQUENCE), which is all these checks look at, not a usable certificate;
 * real ones, made by openssl, are in tests/integration/test_tls.py. */
#include "check.h"
#include "err.h"
#include "tls_text.h"

#include <stdlib.h>

static const char cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBfTCCASOgAwIBAgIUXGJ3JwQ4l0D5h0rQ1vV3Yw2Gm4kwCgYIKoZIzj0EAwIw\n"
	"FDESMBAGA1UEAwwJdGxzLXRleHQwHhcNMjYxMjAyMDAwMDAwWhcNMjYxMjAzMDAw\n"
	"MDAwWjAUMRIwEAYDVQQDDAl0bHMtdGV4dDBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
	"A0IABA==\n"
	"-----END CERTIFICATE-----\n";
static const char key[] = "-----BEGIN PRIVATE KEY-----\n"
			  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
			  "-----END PRIVATE KEY-----\n";

static void test_certs(void)
{
	char why[300], two[sizeof(cert) * 2 + 32];
	size_t n = 0;
	CHECK(tls_text_check_certs(cert, &n, why, sizeof(why)) == HOOKD_OK && n == 1);
	snprintf(two, sizeof(two), "Bag Attributes: x\n%s\n%s", cert, cert);
	CHECK(tls_text_check_certs(two, &n, why, sizeof(why)) == HOOKD_OK && n == 2);
	CHECK(tls_text_check_certs("", NULL, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "not a PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)");
	CHECK(tls_text_check_certs(key, NULL, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "holds a PRIVATE KEY block") == why);
	snprintf(two, sizeof(two), "%s%s", cert, key);
	CHECK(tls_text_check_certs(two, NULL, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(tls_text_check_certs("-----BEGIN CERTIFICATE-----\nMIIB\n", NULL, why,
				   sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "no matching -----END") != NULL);
	CHECK(tls_text_check_certs("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
				   NULL, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "not a PEM certificate: certificate 1 is not base64 of DER");
	/* base64 that is not DER (does not start with a SEQUENCE) */
	CHECK(tls_text_check_certs("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
				   NULL, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(tls_text_check_certs("-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n",
				   NULL, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "'X509 CRL'") != NULL);
}

static void test_keys(void)
{
	char why[300], two[sizeof(key) * 2];
	CHECK(tls_text_check_key(key, why, sizeof(why)) == HOOKD_OK);
	CHECK(tls_text_check_key(cert, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "this is a certificate") != NULL);
	CHECK(tls_text_check_key("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED "
				 "PRIVATE KEY-----\n",
				 why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "encrypted private keys are not supported") == why);
	CHECK(tls_text_check_key("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: "
				 "AES-128-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----\n",
				 why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "encrypted") != NULL);
	snprintf(two, sizeof(two), "%s%s", key, key);
	CHECK(tls_text_check_key(two, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "more than one PEM block") != NULL);
	CHECK(tls_text_check_key("hunter2", why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "hunter2") == NULL);
}

static void test_pins(void)
{
	const char *one = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	char why[300], list[600];
	CHECK(tls_text_check_pins(one, why, sizeof(why)) == HOOKD_OK);
	snprintf(list, sizeof(list), "%s;%s", one, one);
	CHECK(tls_text_check_pins(list, why, sizeof(why)) == HOOKD_OK);
	snprintf(list, sizeof(list), "%s;", one);
	CHECK(tls_text_check_pins(list, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "entry 2 is not") != NULL);
	CHECK(tls_text_check_pins("sha256//AAAA", why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "expected sha256//<base64 of 32 bytes>") == why);
	CHECK(tls_text_check_pins("sha1//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", why,
				  sizeof(why)) == HOOKD_EINVAL);
	CHECK(tls_text_check_pins("", why, sizeof(why)) == HOOKD_EINVAL);
	list[0] = '\0';
	for (int i = 0; i <= TLS_TEXT_PINS_MAX; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ";" : "", one);
	CHECK(tls_text_check_pins(list, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "at most 8 pins") != NULL);
}

static void test_prefix(void)
{
	char out[80];
	CHECK_STR(tls_text_key_prefix(key, out, sizeof(out)), "-----BEGIN PRIVATE KEY-----\u2026");
	CHECK_STR(tls_text_key_prefix("\n\r\n-----BEGIN EC PRIVATE KEY-----\r\nMHc", out, sizeof(out)),
		  "-----BEGIN EC PRIVATE KEY-----\u2026");
	CHECK(strlen(tls_text_key_prefix(
		      "0123456789012345678901234567890123456789012345678901234567890123456789", out,
		      sizeof(out))) == 64 + 3);
}

int main(void)
{
	test_certs();
	test_keys();
	test_pins();
	test_prefix();
	return check_done();
}
