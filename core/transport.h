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
/* The most sockets the HTTP transport holds at once with delivery.max_inflight = infl: the
 * in-flight ones, and the idle ones its connection caches keep, which it lets grow to
 * infl + TRANSPORT_HTTP_MAX_CONNECTS before it closes each connection after its attempt
 * (transport_http.c); attempts started at that point may still open one each. */
#define TRANSPORT_HTTP_MAX_SOCKETS(infl) (2 * (uint64_t)(infl) + TRANSPORT_HTTP_MAX_CONNECTS)
/* The HTTP transport's connection caches: an endpoint's attempts always use the same one,
 * so no cache holds every connection (transport_http.c says why). 16 keeps a 1,024-way
 * fan-out to one receiver at ~64 connections per cache, the size of one busy endpoint's. */
#define TRANSPORT_HTTP_CACHES 16

/* How dispatch judges an attempt: HTTP's by its status (2xx succeeded, 410 disables the
 * endpoint, 429/503 honour Retry-After); a plugin transport says so itself. */
enum transport_verdict {
	TRANSPORT_BY_STATUS = 0,  /* HTTP: status decides (a zeroed result is this) */
	TRANSPORT_SENT,           /* delivered */
	TRANSPORT_RETRY,          /* failed: error says why; retry on the schedule */
	TRANSPORT_PERMANENT,      /* failed for good: the delivery goes to the dead letters */
};

struct transport_result {
	enum transport_verdict verdict;
	int status;               /* HTTP status, 0 if no response; a plugin's own status */
	char error[256];          /* transport error ("" if a response came) */
	int blocked;              /* refused by the destination policy */
	const char *response;     /* first bytes of the body; valid during done() only */
	size_t response_len;
	int64_t duration_ms;
	int64_t retry_after_s;    /* Retry-After in seconds, -1 if absent/unparseable */
	int64_t retry_after_ms;   /* TRANSPORT_RETRY: wait at least this long; -1 = schedule */
};

struct transport_request {
	const char *url;
	const char *const *headers; /* "Name: value" lines; copied by send() */
	size_t n_headers;
	const char *body;         /* must stay valid until done() */
	size_t body_len;
	/* TLS options of the endpoint (https only), each NULL when not set; copied by send().
	 * PEM text: the client certificate (with its intermediates) and its unencrypted key
	 * (both or neither), the CAs trusted instead of the system's; tls_pin is curl's
	 * CURLOPT_PINNEDPUBLICKEY list ("sha256//<base64>;..."). */
	const char *tls_cert_pem;
	const char *tls_key_pem;
	const char *tls_ca_pem;
	const char *tls_pin;
	/* "http://HOST:PORT" to go through (the request is tunnelled with CONNECT to the
	 * receiver's checked address); NULL or "" = direct. Copied by send(). */
	const char *proxy;
	uint32_t connect_timeout_ms;
	uint32_t timeout_ms;
	/* A client certificate and its key (PEM file paths) an auth scheme gave (auth.h), or
	 * NULL; read by send() only. */
	const char *auth_cert_path, *auth_key_path;
	void (*done)(void *arg, const struct transport_result *res);
	void *arg;
	/* What a plugin transport hands on (struct hookd_send); HTTP sends them as headers
	 * already. Borrowed, valid during send() only. event_type is set by dispatch for
	 * URLs other than http(s) only (read once per body, body_event_type). */
	const char *app_id;
	const char *endpoint_id;
	const char *message_id;
	const char *delivery_id;
	const char *event_type;
	uint32_t attempt;         /* 1 for the first */
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
/* The cache (0 .. TRANSPORT_HTTP_CACHES - 1) of an endpoint's attempts: a hash (FNV-1a) of
 * its app and id, or of url for a request that names neither. */
int transport_http_cache(const char *app_id, const char *endpoint_id, const char *url);

struct plugins;

/* The transport dispatch uses: http:// and https:// URLs go to http (owned from here on,
 * destroyed with it), every other scheme to the plugin transport that registered it
 * (plugins.h), under the request's timeout_ms enforced by a host timer. Before send(), a
 * transport with needs_address has its URL's host resolved without blocking the loop and
 * the address checked by ssrf, as HTTP's are. plugins (may be NULL: no plugins) and ssrf
 * are borrowed and must outlive it. Destroying it cancels the plugin sends in flight
 * (their deliveries stay pending in the store, as HTTP's do). */
struct transport *transport_plugin_new(struct event_base *base, struct transport *http,
				       struct plugins *plugins, const struct ssrf_policy *ssrf,
				       char *err, size_t errlen);

#endif
