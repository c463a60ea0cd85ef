/* resolve.h - a receiver's host name to an address the destination guard allows, without
 * blocking the loop: what the plugin transports (a URL's host) and the HTTP transport's
 * proxied attempts (the host the proxy is asked to CONNECT to) both need, in one place.
 *
 * An address literal is answered at once; a name by libevent's resolver (/etc/hosts, then
 * the nameservers of /etc/resolv.conf), made on first use. The answer is the first address
 * the guard allows, as curl tries a name's addresses in turn skipping refused ones; if it
 * allows none, the first address with its class, for the message. Loop thread only. */
#ifndef HOOKD_RESOLVE_H
#define HOOKD_RESOLVE_H

#include "ssrf.h"

#include <netinet/in.h>
#include <sys/socket.h>

struct event_base;
struct resolver;
struct resolve_req;

struct resolve_answer {
	/* 0: resolved (addr or refused set); else the resolver's error, with text. */
	int error;
	const char *error_text;	     /* "cannot start the resolver", libevent's gai text, ... */
	const struct sockaddr *addr; /* allowed by the guard; NULL if none was */
	char addr_text[INET6_ADDRSTRLEN]; /* addr, or the refused one, as text */
	const struct sockaddr *refused;	  /* addr NULL: the first address, refused */
	enum ssrf_class refused_class;
};

/* Called once per resolve_start that returned (or answered) without resolve_cancel; the
 * answer is valid during the call only. May be called before resolve_start returns. */
typedef void (*resolve_fn)(void *arg, const struct resolve_answer *ans);

/* ssrf is borrowed and must outlive it. NULL when out of memory. */
struct resolver *resolver_new(struct event_base *base, const struct ssrf_policy *ssrf);
/* Cancels nothing: cancel the requests in progress first (resolve_cancel). */
void resolver_free(struct resolver *r);

/* Starts resolving host (a name or an address literal, without brackets) and returns the
 * request to cancel, or NULL when fn has already been called (a literal, a cached or hosts
 * file answer, or an error). */
struct resolve_req *resolve_start(struct resolver *r, const char *host, resolve_fn fn, void *arg);
/* fn will not be called for q. */
void resolve_cancel(struct resolve_req *q);

#endif
