/* refuse.c - fixtures for the loader's refusals, one shared object per FIXTURE value
 * (tests/plugins/CMakeLists.txt; tests/integration/test_plugins.py loads each):
 *   nosym      no hookd_plugin symbol at all
 *   abi2       ABI major 2
 *   minornew   ABI 1.(host's minor + 1)
 *   initfail   init() fails with its own message
 *   dupa/dupb  two plugins that both register the transport scheme "dup"
 *   autha/authb  two plugins that both register the auth scheme "same"
 *   badscheme  registers the transport scheme "Bad_Scheme"
 * Built with nothing but the public header. */
#include <hookd/plugin.h>

#include <stdio.h>

#define FIX_NOSYM 1
#define FIX_ABI2 2
#define FIX_MINORNEW 3
#define FIX_INITFAIL 4
#define FIX_DUPA 5
#define FIX_DUPB 6
#define FIX_AUTHA 7
#define FIX_AUTHB 8
#define FIX_BADSCHEME 9

#if FIXTURE == FIX_NOSYM
HOOKD_PLUGIN_EXPORT const int hookd_not_a_plugin = 1;
#else

static int dup_send(void *state, const struct hookd_send *s)
{
	return 1;
}

static const struct hookd_transport dup_transport = {
	.size = sizeof(struct hookd_transport),
#if FIXTURE == FIX_BADSCHEME
	.scheme = "Bad_Scheme",
#elif FIXTURE == FIX_AUTHA
	.scheme = "autha",
#elif FIXTURE == FIX_AUTHB
	.scheme = "authb",
#else
	.scheme = "dup",
#endif
	.send = dup_send};

static enum hookd_auth_status same_decorate(void *state, const struct hookd_auth_request *r,
					    char *err, size_t errlen)
{
	return HOOKD_AUTH_DONE;
}

static const struct hookd_auth same_auth = {
	.size = sizeof(struct hookd_auth), .name = "same", .decorate = same_decorate};

static int fix_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		    char *err, size_t errlen)
{
#if FIXTURE == FIX_INITFAIL
	(void)dup_transport;
	(void)same_auth;
	snprintf(err, errlen, "the fixture refuses to start: no broker configured");
	return 1;
#else
	*state = NULL;
	if (host->register_transport(ctx, &dup_transport) != 0) {
		snprintf(err, errlen, "could not register %s://", dup_transport.scheme);
		return 1;
	}
#if FIXTURE == FIX_AUTHA || FIXTURE == FIX_AUTHB
	if (host->register_auth(ctx, &same_auth) != 0) {
		snprintf(err, errlen, "could not register the auth scheme");
		return 1;
	}
#else
	(void)same_auth;
#endif
	return 0;
#endif
}

#if FIXTURE == FIX_ABI2
HOOKD_PLUGIN_EXPORT const struct hookd_plugin hookd_plugin = {
	.abi_major = 2, .abi_minor = 0, .size = sizeof(struct hookd_plugin), .name = "abi2",
	.version = "1", .init = fix_init};
#elif FIXTURE == FIX_MINORNEW
HOOKD_PLUGIN_EXPORT const struct hookd_plugin hookd_plugin = {
	.abi_major = HOOKD_PLUGIN_ABI_MAJOR, .abi_minor = HOOKD_PLUGIN_ABI_MINOR + 1,
	.size = sizeof(struct hookd_plugin), .name = "minornew", .version = "1",
	.init = fix_init};
#elif FIXTURE == FIX_INITFAIL
HOOKD_PLUGIN_DEFINE(.name = "initfail", .version = "1", .init = fix_init);
#elif FIXTURE == FIX_DUPA
HOOKD_PLUGIN_DEFINE(.name = "dupa", .version = "1", .init = fix_init);
#elif FIXTURE == FIX_DUPB
HOOKD_PLUGIN_DEFINE(.name = "dupb", .version = "1", .init = fix_init);
#elif FIXTURE == FIX_AUTHA
HOOKD_PLUGIN_DEFINE(.name = "autha", .version = "1", .init = fix_init);
#elif FIXTURE == FIX_AUTHB
HOOKD_PLUGIN_DEFINE(.name = "authb", .version = "1", .init = fix_init);
#elif FIXTURE == FIX_BADSCHEME
HOOKD_PLUGIN_DEFINE(.name = "badscheme", .version = "1", .init = fix_init);
#endif
#endif
