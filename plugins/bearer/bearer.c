/* bearer - the "bearer" auth scheme: a static token sent as "Authorization: Bearer TOKEN"
 * (RFC 6750 section 2.1). Options: token (a secret). */
#include <hookd/plugin.h>

#include "../auth_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const bearer_options[] = {"token", NULL};

static int bearer_check(void *state, const struct hookd_option *opts, size_t n, char *field,
			size_t fieldlen, char *err, size_t errlen)
{
	return auth_opts_check(opts, n, bearer_options, bearer_options, field, fieldlen, err,
			       errlen);
}

static enum hookd_auth_status bearer_decorate(void *state, const struct hookd_auth_request *r,
					      char *err, size_t errlen)
{
	struct auth_plugin *b = state;
	const char *token = auth_opt(r->options, r->n_options, "token");
	size_t len;
	char *value;

	if (!token) {
		snprintf(err, errlen, "the endpoint has no token option");
		return HOOKD_AUTH_ERROR;
	}
	len = strlen(token) + sizeof("Bearer ");
	if (!(value = malloc(len))) {
		snprintf(err, errlen, "out of memory");
		return HOOKD_AUTH_ERROR;
	}
	snprintf(value, len, "Bearer %s", token);
	b->host->auth_add_header(r->out, "Authorization", value);
	free(value);
	return HOOKD_AUTH_DONE;
}

static const struct hookd_auth bearer_auth = {
	.size = sizeof(struct hookd_auth),
	.name = "bearer",
	.secret_options = bearer_options,
	.refresh_on_401 = 0, /* a static token is no fresher the second time */
	.check = bearer_check,
	.decorate = bearer_decorate,
};

static int bearer_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx,
		       void **state, char *err, size_t errlen)
{
	return auth_plugin_init(host, ctx, &bearer_auth, state, err, errlen);
}

HOOKD_PLUGIN_DEFINE(.name = "bearer", .version = "1.0", .init = bearer_init,
		    .cleanup = auth_plugin_cleanup,
		    .description = "auth scheme bearer: Authorization: Bearer <token>");
