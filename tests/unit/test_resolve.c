/* test_resolve.c - core/resolve.c: address literals answered at once and guarded, the first
 * allowed address of a name, refusals with the refused address and its class. Loopback and
 * literals only: "localhost" comes from /etc/hosts, no DNS query leaves the machine. */
#include "check.h"

#include "resolve.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

struct got {
	int calls;
	int error;
	int allowed;
	char text[64];
	enum ssrf_class cls;
};

static void on_answer(void *arg, const struct resolve_answer *ans)
{
	struct got *g = arg;
	g->calls++;
	g->error = ans->error;
	g->allowed = ans->addr != NULL;
	snprintf(g->text, sizeof(g->text), "%s", ans->error ? "" : ans->addr_text);
	g->cls = ans->refused ? ans->refused_class : SSRF_PUBLIC;
}

int main(void)
{
	struct event_base *base = event_base_new();
	struct ssrf_policy loop = {0}, none = {0};
	char err[128];
	struct resolver *r, *strict;
	struct got g;

	CHECK(ssrf_policy_allow(&loop, "127.0.0.0/8", err, sizeof(err)) == 0);
	CHECK(ssrf_policy_allow(&loop, "::1/128", err, sizeof(err)) == 0);
	r = resolver_new(base, &loop);
	strict = resolver_new(base, &none);
	CHECK(r && strict);

	/* A literal is answered inside resolve_start, which returns no request. */
	memset(&g, 0, sizeof(g));
	CHECK(resolve_start(r, "127.0.0.2", on_answer, &g) == NULL);
	CHECK(g.calls == 1 && g.error == 0 && g.allowed && strcmp(g.text, "127.0.0.2") == 0);
	memset(&g, 0, sizeof(g));
	CHECK(resolve_start(r, "::1", on_answer, &g) == NULL);
	CHECK(g.calls == 1 && g.allowed && strcmp(g.text, "::1") == 0);

	/* Refused by the guard: the address and its class come back for the message. */
	memset(&g, 0, sizeof(g));
	CHECK(resolve_start(strict, "127.0.0.1", on_answer, &g) == NULL);
	CHECK(g.calls == 1 && g.error == 0 && !g.allowed && g.cls == SSRF_LOOPBACK);
	CHECK(strcmp(g.text, "127.0.0.1") == 0);
	memset(&g, 0, sizeof(g));
	CHECK(resolve_start(strict, "10.1.2.3", on_answer, &g) == NULL);
	CHECK(g.calls == 1 && !g.allowed && g.cls == SSRF_PRIVATE);

	/* A name from /etc/hosts: resolved (now or on the loop), guarded the same way. */
	memset(&g, 0, sizeof(g));
	struct resolve_req *q = resolve_start(r, "localhost", on_answer, &g);
	if (q)
		event_base_dispatch(base);
	CHECK(g.calls == 1);
	CHECK(g.error == 0 && g.allowed);
	CHECK(strcmp(g.text, "127.0.0.1") == 0 || strcmp(g.text, "::1") == 0);
	memset(&g, 0, sizeof(g));
	q = resolve_start(strict, "localhost", on_answer, &g);
	if (q)
		event_base_dispatch(base);
	CHECK(g.calls == 1 && g.error == 0 && !g.allowed && g.cls == SSRF_LOOPBACK);

	resolve_cancel(NULL); /* nothing to cancel: no-op */
	resolver_free(r);
	resolver_free(strict);
	ssrf_policy_free(&loop);
	event_base_free(base);
	return check_done();
}
