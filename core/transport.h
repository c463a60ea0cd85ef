/* transport.h - how a delivery leaves the process. HTTP (libcurl multi on the event loop)
 * is the first implementation; plugins add others behind the same interface.
 *
 * send() never blocks: it starts the request and returns; done() is called exactly once,
 * later, on the loop thread, unless send() itself failed (then done is not called). */
#ifndef HOOKD_TRANSPORT_H
#define HOOKD_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

/* Response bytes kept per attempt, the first ones of the body (an attempt's "response" in
 * the API): enough for an error page's message, bounded so a receiver streaming megabytes
 * back cannot grow the store. */
#define TRANSPORT_RESPONSE_MAX 4096
/* Idle receiver connections the HTTP transport keeps open (curl's connection cache) beside
 * the ones in use: a few per busy endpoint; past this curl closes the oldest. 256 covers a
 * few hundred active endpoints without hoarding file descriptors (the API's connection cap
 * reserves them). */
#define TRANSPORT_HTTP_MAX_CONNECTS 256

struct transport_result {
	int status;               /* HTTP status, 0 if no response */
	char error[256];          /* transport error ("" if a response came) */
	int blocked;              /* refused by the destination policy */
	const char *response;     /* first bytes of the body; valid during done() only */
	size_t response_len;
	int64_t duration_ms;
	int64_t retry_after_s;    /* Retry-After in seconds, -1 if absent/unparseable */
};

struct transport_request {
	const char *url;
	const char *const *headers; /* "Name: value" lines; copied by send() */
	size_t n_headers;
	const char *body;         /* must stay valid until done() */
	size_t body_len;
	uint32_t connect_timeout_ms;
	uint32_t timeout_ms;
	/* A client certificate and its key (PEM file paths) an auth scheme gave (auth.h), or
	 * NULL; read by send() only. */
	const char *auth_cert_path, *auth_key_path;
	void (*done)(void *arg, const struct transport_result *res);
	void *arg;
};

struct transport {
	const char *name;
	int (*send)(struct transport *t, const struct transport_request *req);
	void (*destroy)(struct transport *t);
};

struct event_base;
struct ssrf_policy;

/* The HTTP(S) transport. ssrf is borrowed and must outlive the transport. max_inflight is
 * the most requests the caller has in flight at once (delivery.max_inflight). */
struct transport *transport_http_new(struct event_base *base, const struct ssrf_policy *ssrf,
				     unsigned max_inflight, char *err, size_t errlen);

#endif
