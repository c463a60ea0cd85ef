/* resolve.c - host names to guarded addresses without blocking the loop (resolve.h). */
#include "resolve.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct resolver {
	struct event_base *base;
	const struct ssrf_policy *ssrf;
	struct evdns_base *dns; /* made by the first name that is not a literal */
};

/* One name being resolved, freed by its callback (resolve_cb) whatever happens. Cancelling
 * clears fn: libevent then calls back with EVUTIL_EAI_CANCEL, or with an answer that raced
 * the cancel, and only this is freed. */
struct resolve_req {
	struct resolver *r;
	struct evdns_getaddrinfo_request *q;
	resolve_fn fn;
	void *arg;
};

struct resolver *resolver_new(struct event_base *base, const struct ssrf_policy *ssrf)
{
	struct resolver *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->base = base;
	r->ssrf = ssrf;
	return r;
}

void resolver_free(struct resolver *r)
{
	if (!r)
		return;
	if (r->dns)
		evdns_base_free(r->dns, 0);
	free(r);
}

static void fail(int error, const char *text, resolve_fn fn, void *arg)
{
	struct resolve_answer ans;
	memset(&ans, 0, sizeof(ans));
	ans.error = error;
	ans.error_text = text;
	fn(arg, &ans);
}

/* The first of the n addresses (in order) the guard allows, else the first, refused. */
static void answer(struct resolver *r, const struct sockaddr *const *sas, size_t n, resolve_fn fn,
		   void *arg)
{
	struct resolve_answer ans;
	if (!n) {
		fail(EVUTIL_EAI_NODATA, "no IPv4 or IPv6 address", fn, arg);
		return;
	}
	memset(&ans, 0, sizeof(ans));
	ans.refused = sas[0];
	for (size_t i = 0; i < n && !ans.addr; i++)
		if (ssrf_policy_check(r->ssrf, sas[i], i ? NULL : &ans.refused_class))
			ans.addr = sas[i];
	if (ans.addr)
		ans.refused = NULL;
	ssrf_addr_text(ans.addr ? ans.addr : ans.refused, ans.addr_text, sizeof(ans.addr_text));
	fn(arg, &ans);
}

#define RESOLVE_ADDRS_MAX 16

static void resolve_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct resolve_req *q = arg;
	resolve_fn fn = q->fn;

	q->q = NULL;
	q->fn = NULL;
	if (fn && (result != 0 || !res)) {
		int e = result ? result : EVUTIL_EAI_FAIL;
		fail(e, evutil_gai_strerror(e), fn, q->arg);
	} else if (fn) {
		const struct sockaddr *sas[RESOLVE_ADDRS_MAX];
		size_t n = 0;
		for (struct evutil_addrinfo *ai = res; ai && n < RESOLVE_ADDRS_MAX;
		     ai = ai->ai_next)
			if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
				sas[n++] = ai->ai_addr;
		answer(q->r, sas, n, fn, q->arg);
	}
	if (res)
		evutil_freeaddrinfo(res);
	free(q);
}

/* host as an address literal (IPv4, or IPv6 without brackets, as URLs' hosts come). */
static bool literal(const char *host, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

struct resolve_req *resolve_start(struct resolver *r, const char *host, resolve_fn fn, void *arg)
{
	struct sockaddr_storage ss;
	struct evutil_addrinfo hints;
	struct resolve_req *q;
	struct evdns_getaddrinfo_request *h;

	if (literal(host, &ss)) {
		const struct sockaddr *sa = (const struct sockaddr *)&ss;
		answer(r, &sa, 1, fn, arg);
		return NULL;
	}
	if (!r->dns) {
		r->dns = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						     EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		/* libevent's default mixes the case of the name (DNS 0x20) and checks the answer
		 * has it back; some resolvers and middleboxes do not keep it. */
		if (r->dns)
			evdns_base_set_option(r->dns, "randomize-case:", "0");
	}
	if (!r->dns || !(q = malloc(sizeof(*q)))) {
		fail(EVUTIL_EAI_MEMORY, r->dns ? "out of memory" : "cannot start the resolver", fn,
		     arg);
		return NULL;
	}
	q->r = r;
	q->q = NULL;
	q->fn = fn;
	q->arg = arg;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* NULL when already answered (a hosts-file or cached answer, an error): resolve_cb ran
	 * and freed q. */
	h = evdns_getaddrinfo(r->dns, host, NULL, &hints, resolve_cb, q);
	if (!h)
		return NULL;
	q->q = h;
	return q;
}

void resolve_cancel(struct resolve_req *q)
{
	struct evdns_getaddrinfo_request *h;
	if (!q)
		return;
	q->fn = NULL;
	h = q->q;
	if (h)
		evdns_getaddrinfo_cancel(h); /* resolve_cb frees q, now or later */
}
