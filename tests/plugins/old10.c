/* old10.c - a plugin built against ABI 1.0 (tests/plugins/abi-1.0/hookd/plugin.h: no
 * description in its descriptor, a shorter host table): the host must load it and deliver
 * through its transport, old10:///anything, which succeeds at once. */
#include <hookd/plugin.h>

#include <stdio.h>

#if HOOKD_PLUGIN_ABI_MINOR != 0
#error "old10.c must be built against tests/plugins/abi-1.0"
#endif

struct old_state {
	const struct hookd_host *host;
	struct hookd_plugin_ctx *ctx;
};

static struct old_state st;

static int old_send(void *state, const struct hookd_send *s)
{
	struct old_state *o = state;
	struct hookd_outcome out = {.size = sizeof(out), .result = HOOKD_SENT,
				    .retry_after_ms = -1};
	o->host->log(o->ctx, HOOKD_LOG_INFO, "old10 delivered %s attempt %u", s->message_id,
		     s->attempt);
	o->host->complete(o->ctx, s->token, &out);
	return 0;
}

static const struct hookd_transport old_transport = {
	.size = sizeof(struct hookd_transport), .scheme = "old10", .send = old_send};

static int old_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		    char *err, size_t errlen)
{
	st.host = host;
	st.ctx = ctx;
	*state = &st;
	host->log(ctx, HOOKD_LOG_INFO, "built for ABI %d.%d, host has %u.%u (table %u bytes)",
		  HOOKD_PLUGIN_ABI_MAJOR, HOOKD_PLUGIN_ABI_MINOR, host->abi_major,
		  host->abi_minor, host->size);
	return host->register_transport(ctx, &old_transport);
}

HOOKD_PLUGIN_DEFINE(.name = "old10", .version = "1.0.0", .init = old_init);
