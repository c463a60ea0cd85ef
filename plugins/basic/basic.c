/* basic - the "basic" auth scheme (RFC 7617): "Authorization: Basic base64(user:password)".
 * Options: username, password (a secret). The credentials are sent as given, in UTF-8
 * (the charset RFC 7617 section 2.1 lets a server ask for, and what JSON carries). */
#include <hookd/plugin.h>

#include "../auth_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const basic_options[] = {"username", "password", NULL};
static const char *const basic_required[] = {"username", NULL};
static const char *const basic_secrets[] = {"password", NULL};

/* RFC 7617 section 2: the user-id cannot contain a colon (the first one ends it). An empty
 * password is allowed (some APIs take a key as the user and nothing after the colon). */
static int basic_check(void *state, const struct hookd_option *opts, size_t n, char *field,
		       size_t fieldlen, char *err, size_t errlen)
{
	const char *user = auth_opt(opts, n, "username");
	if (auth_opts_check(opts, n, basic_options, basic_required, field, fieldlen, err,
			    errlen))
		return 1;
	if (strchr(user, ':')) {
		snprintf(field, fieldlen, "username");
		snprintf(err, errlen, "must not contain ':' (RFC 7617: it ends the user-id)");
		return 1;
	}
	return 0;
}

static enum hookd_auth_status basic_decorate(void *state, const struct hookd_auth_request *r,
					     char *err, size_t errlen)
{
	struct auth_plugin *b = state;
	const char *user = auth_opt(r->options, r->n_options, "username");
	const char *pass = auth_opt(r->options, r->n_options, "password");
	size_t plen, elen;
	char *plain = NULL, *value = NULL;
	enum hookd_auth_status st = HOOKD_AUTH_ERROR;

	if (!user) {
		snprintf(err, errlen, "the endpoint has no username option");
		return HOOKD_AUTH_ERROR;
	}
	if (!pass)
		pass = "";
	plen = strlen(user) + 1 + strlen(pass);
	elen = sizeof("Basic ") + 4 * ((plen + 2) / 3) + 1;
	if (!(plain = malloc(plen + 1)) || !(value = malloc(elen))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(plain, plen + 1, "%s:%s", user, pass);
	memcpy(value, "Basic ", 6);
	auth_base64((const unsigned char *)plain, plen, value + 6, elen - 6);
	b->host->auth_add_header(r->out, "Authorization", value);
	st = HOOKD_AUTH_DONE;
out:
	if (plain) {
		memset(plain, 0, plen);
		free(plain);
	}
	free(value);
	return st;
}

static const struct hookd_auth basic_auth = {
	.size = sizeof(struct hookd_auth),
	.name = "basic",
	.secret_options = basic_secrets,
	.refresh_on_401 = 0, /* static credentials: no fresher ones to get */
	.check = basic_check,
	.decorate = basic_decorate,
};

static int basic_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx,
		      void **state, char *err, size_t errlen)
{
	return auth_plugin_init(host, ctx, &basic_auth, state, err, errlen);
}

HOOKD_PLUGIN_DEFINE(.name = "basic", .version = "1.0", .init = basic_init,
		    .cleanup = auth_plugin_cleanup,
		    .description = "auth scheme basic: Authorization: Basic (RFC 7617)");
