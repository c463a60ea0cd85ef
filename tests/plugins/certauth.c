/* certauth - a test fixture auth scheme "certfile": hands the host the client certificate
 * and key files named by its options (cert, key) through auth_client_cert, the ABI 1.1
 * call no shipped scheme makes. tests/integration/test_tls.py uses it for mTLS. */
#include <hookd/plugin.h>

#include <stdio.h>
#include <string.h>

static const struct hookd_host *fix_host;

static const char *fix_opt(const struct hookd_auth_request *r, const char *name)
{
	for (size_t i = 0; i < r->n_options; i++)
		if (strcmp(r->options[i].name, name) == 0)
			return r->options[i].value;
	return NULL;
}

static enum hookd_auth_status fix_decorate(void *state, const struct hookd_auth_request *r,
					   char *err, size_t errlen)
{
	const char *cert = fix_opt(r, "cert"), *key = fix_opt(r, "key");
	(void)state;
	if (!cert || !key) {
		snprintf(err, errlen, "cert and key options are required");
		return HOOKD_AUTH_ERROR;
	}
	fix_host->auth_client_cert(r->out, cert, key);
	return HOOKD_AUTH_DONE;
}

static const struct hookd_auth fix_auth = {
    .size = sizeof(struct hookd_auth), .name = "certfile", .decorate = fix_decorate};

static int fix_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		    char *err, size_t errlen)
{
	fix_host = host;
	*state = NULL;
	if (host->register_auth(ctx, &fix_auth) != 0) {
		snprintf(err, errlen, "could not register the auth scheme certfile");
		return 1;
	}
	return 0;
}

HOOKD_PLUGIN_DEFINE(.name = "certauth", .version = "1", .init = fix_init);
