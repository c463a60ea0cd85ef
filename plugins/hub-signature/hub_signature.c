/* hub-signature - the "hub-signature" auth scheme: GitHub's webhook signature,
 * "X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>", for receivers built for
 * GitHub's webhooks (GitHub docs, "Validating webhook deliveries"). Options: secret (a
 * secret: the HMAC key, its bytes as given), header (optional: another header name).
 * The MAC covers the exact bytes sent, which are the same on every attempt; the Standard
 * Webhooks signature hookd sends beside it is unchanged. */
#include <hookd/plugin.h>

#include "../auth_options.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUB_DEFAULT_HEADER "X-Hub-Signature-256"

static const char *const hub_options[] = {"secret", "header", NULL};
static const char *const hub_required[] = {"secret", NULL};
static const char *const hub_secrets[] = {"secret", NULL};

/* An RFC 9110 token, as the host requires of any header name. */
static int hub_header_ok(const char *s)
{
	if (!*s || strlen(s) > 256)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
			return 0;
	return 1;
}

static int hub_check(void *state, const struct hookd_option *opts, size_t n, char *field,
		     size_t fieldlen, char *err, size_t errlen)
{
	const char *header = auth_opt(opts, n, "header");
	if (auth_opts_check(opts, n, hub_options, hub_required, field, fieldlen, err, errlen))
		return 1;
	if (header && !hub_header_ok(header)) {
		snprintf(field, fieldlen, "header");
		snprintf(err, errlen, "must be a header name (1 to 256 of A-Z a-z 0-9 "
			 "!#$%%&'*+-.^_`|~)");
		return 1;
	}
	return 0;
}

static enum hookd_auth_status hub_decorate(void *state, const struct hookd_auth_request *r,
					   char *err, size_t errlen)
{
	struct auth_plugin *h = state;
	const char *secret = auth_opt(r->options, r->n_options, "secret");
	const char *header = auth_opt(r->options, r->n_options, "header");
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char value[sizeof("sha256=") + 2 * sizeof(mac)];
	crypto_auth_hmacsha256_state st;

	if (!secret) {
		snprintf(err, errlen, "the endpoint has no secret option");
		return HOOKD_AUTH_ERROR;
	}
	/* Any key length (HMAC hashes a long key first): the _init form, not crypto_auth's
	 * fixed 32-byte key. */
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)r->body, r->body_len);
	crypto_auth_hmacsha256_final(&st, mac);
	memcpy(value, "sha256=", 7);
	sodium_bin2hex(value + 7, sizeof(value) - 7, mac, sizeof(mac));
	h->host->auth_add_header(r->out, header && *header ? header : HUB_DEFAULT_HEADER, value);
	sodium_memzero(&st, sizeof(st));
	return HOOKD_AUTH_DONE;
}

static const struct hookd_auth hub_auth = {
	.size = sizeof(struct hookd_auth),
	.name = "hub-signature",
	.secret_options = hub_secrets,
	.refresh_on_401 = 0,
	.check = hub_check,
	.decorate = hub_decorate,
};

static int hub_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		    char *err, size_t errlen)
{
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium did not start");
		return 1;
	}
	return auth_plugin_init(host, ctx, &hub_auth, state, err, errlen);
}

HOOKD_PLUGIN_DEFINE(.name = "hub-signature", .version = "1.0", .init = hub_init,
		    .cleanup = auth_plugin_cleanup,
		    .description = "auth scheme hub-signature: X-Hub-Signature-256: sha256=<hex>");
