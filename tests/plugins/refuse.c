/* refuse.c - fixtures for the loader's refusals, one shared object per FIXTURE value
 * (tests/plugins/CMakeLists.txt; tests/integration/test_plugins.py loads each):
 *   nosym      no hookd_plugin symbol at all
 *   abi2       ABI major 2
 *   minornew   ABI 1.(host's minor + 1)
 *   initfail   init() fails with its own message
 *   dupa/dupb  two plugins that both register the transport scheme "dup"
 * Built with nothing but the public header. */
#include <hookd/plugin.h>

#include <stdio.h>

#define FIX_NOSYM 1
#define FIX_ABI2 2
#define FIX_MINORNEW 3
#define FIX_INITFAIL 4
#define FIX_DUPA 5
#define FIX_DUPB 6

#if FIXTURE == FIX_NOSYM
HOOKD_PLUGIN_EXPORT const int hookd_not_a_plugin = 1;
#else

static int dup_send(void *state, const struct hookd_send *s)
{
	return 1;
}

static const struct hookd_transport dup_transport = {
	.size = sizeof(struct hookd_transport), .scheme = "dup", .send = dup_send};

static int fix_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		    char *err, size_t errlen)
{
#if FIXTURE == FIX_INITFAIL
	(void)dup_transport;
	snprintf(err, errlen, "the fixture refuses to start: no broker configured");
	return 1;
#else
	*state = NULL;
	if (host->register_transport(ctx, &dup_transport) != 0) {
		snprintf(err, errlen, "could not register dup://");
		return 1;
	}
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
#endif
#endif
