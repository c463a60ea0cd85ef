/* hello.c - the smallest complete hookd plugin: a transport for hello:///NAME URLs that
 * logs each attempt and reports it delivered.
 *
 * Build it against the installed header alone, load it by pointing plugins.dir at the
 * directory it is in (docs/plugins.md):
 *   cc -std=c17 -shared -fPIC -I/usr/local/include -o hello.so hello.c */
#include <hookd/plugin.h>

struct hello {
	const struct hookd_host *host;
	struct hookd_plugin_ctx *ctx;
	struct hookd_transport transport;
};

static struct hello hello_state;

/* Runs on hookd's event loop: must not block. It may complete at once, as here, or later
 * from any thread (a real transport completes when its server acknowledges). */
static int hello_send(void *state, const struct hookd_send *s)
{
	struct hello *h = state;
	struct hookd_outcome done = {.size = sizeof(done), .result = HOOKD_SENT,
				     .retry_after_ms = -1};
	h->host->log(h->ctx, HOOKD_LOG_INFO, "hello %s: message %s (%s), attempt %u, %zu bytes",
		     s->path + 1, s->message_id, s->event_type, s->attempt, s->body_len);
	h->host->complete(h->ctx, s->token, &done);
	return 0;
}

static int hello_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx,
		      void **state, char *err, size_t errlen)
{
	struct hello *h = &hello_state;
	h->host = host;
	h->ctx = ctx;
	h->transport = (struct hookd_transport){
		.size = sizeof(h->transport),
		.scheme = "hello",
		.needs_address = 0, /* hello:///NAME: nothing to connect to */
		.send = hello_send,
	};
	*state = h;
	return host->register_transport(ctx, &h->transport);
}

HOOKD_PLUGIN_DEFINE(.name = "hello", .version = "1.0", .init = hello_init,
		    .description = "hello:///NAME: logs each attempt and reports it delivered");
