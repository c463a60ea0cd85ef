/* transport_http.c - deliveries over HTTP with libcurl's multi-socket API on libevent.
 *
 * One multi handle for the process, with TRANSPORT_HTTP_CACHES connection caches (curl
 * shares, each endpoint's attempts always in the same one): keep-alive and reuse per host
 * across deliveries, and no cache holding every connection. libcurl 7.88 walks the whole cache of
 * a handle each time the handle leaves the multi (curl_multi_remove_handle, looking for a
 * connect-only connection) and the host's connections each time it picks one to reuse, so
 * with 1,024 connections to one host (100 endpoints on one receiver) a request paid two
 * walks of ~1,000 connections. Sockets are opened by us (CURLOPT_OPENSOCKETFUNCTION) so the
 * destination policy sees the address curl is about to connect to, after DNS: a host name
 * that resolves or rebinds to a private address is refused there.
 *
 * Two kinds of endpoints cost more, and only they: those with TLS options (their PEM text
 * is copied into the handle per attempt, http_xfer_tls) and those that go through an
 * egress proxy (the receiver's name is resolved and checked here first, http_proxy_begin,
 * since curl would only resolve and connect to the proxy). Everything else sets exactly
 * the options it set before. */
#include "transport.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "resolve.h"
#include "retry.h"
#include "ssrf.h"
#include "url.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Free easy handles kept for reuse, with their options set (http_xfer_new). */
#define HTTP_POOL_MAX 256
/* Response header bytes accepted per attempt (status line, every header line, 1xx
 * responses and trailers together). libcurl 7.88 refuses one line over 100 KiB
 * (CURL_MAX_HTTP_HEADER) but only Debian's backported fix for CVE-2023-38039 bounds the
 * total (at 300 KiB); the same 100 KiB for the total gives one limit and one message for
 * both. Real servers send far less: Node's own limit is 16 KiB, nginx's default 32 KiB. */
#define HTTP_RESPONSE_HEADER_MAX (100 * 1024)

struct http_transport;
struct http_xfer;

struct http_xfer {
	struct http_transport *t;
	CURL *easy;
	/* The request's header list (CURLOPT_HTTPHEADER): nodes and their text are kept with
	 * the handle and reused, grown only when an attempt has more (http_xfer_headers). */
	struct curl_slist *hnodes;
	size_t hnodes_cap;
	char *htext;
	size_t htext_cap;
	void (*done)(void *arg, const struct transport_result *res);
	void *arg;
	int64_t started_ns;
	int blocked;
	char blocked_msg[200];     /* why it was blocked, or why a proxied one failed early */
	int tls_set;               /* the handle carries TLS options (http_xfer_tls) */
	int cache;                 /* the connection cache set on the handle, -1 for none yet */
	int forbid_reuse;          /* CURLOPT_FORBID_REUSE set on the handle */
	int proxy_set;             /* the handle carries proxy options (http_proxy_begin) */
	int proxied;               /* this attempt goes through the proxy */
	/* A proxied attempt: the resolution of the receiver's name in progress, the
	 * CURLOPT_CONNECT_TO entry that pins the checked address, and the event that ends an
	 * attempt refused before curl saw it (done() must not run inside send()). */
	struct resolve_req *dns;
	struct curl_slist connect_to;
	char connect_to_text[INET6_ADDRSTRLEN + 8];
	char target[256];          /* the receiver's host name, for messages */
	struct event early;        /* also the attempt's deadline while the name resolves */
	int early_assigned;
	uint32_t timeout_ms;       /* the attempt's, for what is left of it after resolving */
	/* curl's detail of a failure (CURLOPT_ERRORBUFFER): added to the error of TLS and
	 * proxied attempts, whose generic texts ("Failure when receiving data from the peer")
	 * do not say that the proxy refused the tunnel or which certificate check failed. */
	char curl_err[CURL_ERROR_SIZE];
	int body_cut;              /* stopped reading: the excerpt was full */
	int header_too_large;      /* stopped reading: over HTTP_RESPONSE_HEADER_MAX */
	int header_end;            /* the blank line after the last response's headers came */
	size_t header_len;
	size_t resp_len;
	char resp[TRANSPORT_RESPONSE_MAX];
	struct http_xfer *next_free;
	struct http_xfer *prev_active, *next_active; /* in flight, for cleanup at shutdown */
};

/* A socket curl waits on. Those we opened (http_opensocket_cb) are known until curl
 * closes them through http_closesocket_cb, so when a transfer ends and curl stops waiting
 * on its connection (CURL_POLL_REMOVE: the connection goes idle into curl's cache) the
 * event is left in the loop, "parked", and the next transfer on that connection, which
 * waits for the same readability, finds it there: no epoll_ctl to delete and re-add it and
 * no allocation per request. Sockets curl opened itself (a resolver's wake-up pair) are
 * closed without telling us, so they are deleted at CURL_POLL_REMOVE as before. */
struct http_sock {
	struct event ev; /* embedded: changing what we wait for re-arms it, no allocation */
	struct http_transport *t;
	curl_socket_t fd;
	short kind;
	int added;       /* ev is in the loop */
	int owned;       /* opened by us, in t->socks until http_closesocket_cb */
	int parked;      /* curl does not wait on it now (idle in its connection cache) */
};

struct http_transport {
	struct transport base;
	struct event_base *evbase;
	CURLM *multi;
	CURLSH *caches[TRANSPORT_HTTP_CACHES];
	struct event *timer;
	const struct ssrf_policy *ssrf;
	struct http_xfer *pool;
	size_t pool_n;
	struct http_xfer *active;
	struct http_sock **socks; /* the sockets we opened and curl has not closed, by fd */
	size_t socks_cap;
	size_t socks_open;        /* sockets we opened and curl has not closed */
	size_t socks_max;         /* above this many, an attempt's connection is closed after it */
	const char *capath;       /* curl's built-in CURLOPT_CAPATH (static in libcurl) */
	struct resolver *resolver; /* the receivers' names of proxied attempts (resolve.h) */
};

static void http_active_unlink(struct http_transport *t, struct http_xfer *x)
{
	if (x->prev_active)
		x->prev_active->next_active = x->next_active;
	else if (t->active == x)
		t->active = x->next_active;
	if (x->next_active)
		x->next_active->prev_active = x->prev_active;
	x->prev_active = x->next_active = NULL;
}

static void http_check_done(struct http_transport *t);

static void http_sock_unloop(struct http_sock *s)
{
	if (s->added)
		event_del(&s->ev);
	s->added = 0;
}

/* The socket we opened as fd, or NULL. */
static struct http_sock *http_sock_find(struct http_transport *t, curl_socket_t fd)
{
	return fd >= 0 && (size_t)fd < t->socks_cap ? t->socks[fd] : NULL;
}

static void http_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_sock *s = arg;
	struct http_transport *t = s->t; /* s may be freed inside curl_multi_socket_action */
	int running, flags = 0;
	if (s->parked) {
		/* Its idle connection became readable (the receiver closed it or sent something
		 * unasked): curl is not waiting on it and finds out when it next looks at the
		 * connection. Out of the loop, or this would fire again at once. */
		http_sock_unloop(s);
		return;
	}
	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(t->multi, fd, flags, &running);
	http_check_done(t);
}

static void http_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_transport *t = arg;
	int running;
	curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check_done(t);
}

static int http_timer_fn(CURLM *multi, long timeout_ms, void *arg)
{
	struct http_transport *t = arg;
	if (timeout_ms < 0) {
		evtimer_del(t->timer);
	} else {
		struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
		evtimer_add(t->timer, &tv);
	}
	return 0;
}

static int http_socket_fn(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct http_transport *t = arg;
	struct http_sock *s = sockp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (!s)
			return 0;
		curl_multi_assign(t->multi, fd, NULL);
		if (!s->owned) {
			http_sock_unloop(s);
			free(s);
			return 0;
		}
		s->parked = 1;
		if (s->kind & EV_WRITE)
			http_sock_unloop(s); /* an idle socket is writable: it would fire at once */
		return 0;
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	       ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (!s) {
		s = http_sock_find(t, fd); /* ours, parked or not yet waited on */
		if (!s) {
			s = calloc(1, sizeof(*s));
			if (!s)
				return -1;
			s->t = t;
			s->fd = fd;
		}
		curl_multi_assign(t->multi, fd, s);
	}
	s->parked = 0;
	if (s->added && s->kind == kind)
		return 0; /* unchanged, or parked waiting for the same: no epoll_ctl */
	http_sock_unloop(s);
	s->kind = kind;
	event_assign(&s->ev, t->evbase, fd, kind, http_event_cb, s);
	if (event_add(&s->ev, NULL) != 0)
		return -1;
	s->added = 1;
	return 0;
}

/* Keeps the first TRANSPORT_RESPONSE_MAX body bytes and stops the transfer as soon as
 * more arrive: the status is in by then and the rest would only be thrown away, while an
 * endless or slow body would hold the attempt (and its in-flight slot) until timeout_ms.
 * The short count makes curl end the transfer with CURLE_WRITE_ERROR, which
 * http_check_done() reports as the completed response it is; curl closes a connection
 * ended that way, so the unread rest is never taken for the next response. A body that
 * fits is read to its end and the connection stays in the cache for reuse. */
static size_t http_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	size_t n = size * nmemb, room = sizeof(x->resp) - x->resp_len;
	memcpy(x->resp + x->resp_len, data, n < room ? n : room);
	x->resp_len += n < room ? n : room;
	if (n > room) {
		x->body_cut = 1;
		return 0;
	}
	return n;
}

/* Counts response header bytes; past HTTP_RESPONSE_HEADER_MAX the transfer stops (a
 * receiver sending headers forever would otherwise grow curl's header store until the
 * timeout). curl calls this with whole lines only. */
static size_t http_header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	size_t n = size * nmemb;
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
		x->header_end = 0; /* a new response (after a 1xx): its headers follow */
	else if ((n == 2 && data[0] == '\r') || (n == 1 && data[0] == '\n'))
		x->header_end = 1;
	x->header_len += n;
	if (x->header_len > HTTP_RESPONSE_HEADER_MAX) {
		x->header_too_large = 1;
		return 0;
	}
	return n;
}

/* True when curl ended a transfer for a response header line over its own 100 KiB limit:
 * libcurl 7.88 reports that as CURLE_OUT_OF_MEMORY, with no other detail (its header
 * buffer refuses to grow). Told apart from a real allocation failure by where it happened:
 * the request was sent and the response's headers had begun but not ended. (A genuine
 * malloc failure in exactly that window would be misnamed; it is not worth a guess more.)
 * Totals never reach curl's own limit: http_header_cb stops them first. */
static int http_curl_header_too_large(struct http_xfer *x, CURLcode rc)
{
	long sent = 0;
	if (rc != CURLE_OUT_OF_MEMORY || x->header_end)
		return 0;
	return curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent > 0;
}

static curl_socket_t http_sock_open(struct http_transport *t, const struct curl_sockaddr *a);

static curl_socket_t http_opensocket_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct http_xfer *x = arg;
	enum ssrf_class cls;
	if (!ssrf_policy_check(x->t->ssrf, &a->addr, &cls)) {
		char text[INET6_ADDRSTRLEN];
		ssrf_addr_text(&a->addr, text, sizeof(text));
		x->blocked = 1;
		snprintf(x->blocked_msg, sizeof(x->blocked_msg),
			 x->proxied ? "proxy blocked: %s is a %s address (not in "
				      "security.allow_destinations)"
				    : "destination blocked: %s is a %s address (not in "
				      "security.allow_destinations)",
			 text, ssrf_class_name(cls));
		return CURL_SOCKET_BAD;
	}
	return http_sock_open(x->t, a);
}

/* Opens the socket for a connection and records it in t->socks (see struct http_sock). */
static curl_socket_t http_sock_open(struct http_transport *t, const struct curl_sockaddr *a)
{
	struct http_sock *s;
	curl_socket_t fd = socket(a->family, a->socktype, a->protocol);

	if (fd < 0)
		return CURL_SOCKET_BAD;
	if ((size_t)fd >= t->socks_cap) {
		size_t cap = t->socks_cap ? t->socks_cap : 64;
		struct http_sock **socks;
		while (cap <= (size_t)fd)
			cap *= 2;
		socks = realloc(t->socks, cap * sizeof(*socks));
		if (!socks)
			goto fail;
		memset(socks + t->socks_cap, 0, (cap - t->socks_cap) * sizeof(*socks));
		t->socks = socks;
		t->socks_cap = cap;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto fail;
	s->t = t;
	s->fd = fd;
	s->owned = 1;
	t->socks[fd] = s;
	t->socks_open++;
	return fd;
fail:
	close(fd);
	return CURL_SOCKET_BAD;
}

/* curl closes a socket we opened: out of the loop first (libevent must not keep an fd
 * that may be reused for anything else), then closed. */
static int http_closesocket_cb(void *arg, curl_socket_t fd)
{
	struct http_transport *t = arg;
	struct http_sock *s = http_sock_find(t, fd);
	if (s) {
		http_sock_unloop(s);
		t->socks[fd] = NULL;
		t->socks_open--;
		free(s);
	}
	return close(fd);
}

/* A new easy handle with the options every attempt shares, set once: a handle is reused
 * for attempt after attempt (the pool) and keeps them, so an attempt sets only what
 * differs (http_send). Resetting the handle per attempt instead (curl_easy_reset) frees
 * and re-copies every string option curl holds, its defaults included. */
static struct http_xfer *http_xfer_new(struct http_transport *t)
{
	struct http_xfer *x = calloc(1, sizeof(*x));
	CURL *e;
	if (!x)
		return NULL;
	x->t = t;
	x->cache = -1;
	x->easy = e = curl_easy_init();
	if (!e) {
		free(x);
		return NULL;
	}
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "hookd/" HOOKD_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, http_opensocket_cb);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
	/* A connection keeps the close callback of the handle that opened it, and outlives
	 * that handle's transfer: its data is the transport, not x. */
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, http_closesocket_cb);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, t);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* No proxy, whatever the environment says: curl would otherwise take http_proxy,
	 * https_proxy or all_proxy from it, open its socket to the proxy, and the destination
	 * policy (which sees only that socket) would check the proxy instead of the receiver.
	 * An empty string disables proxies, environment included (CURLOPT_PROXY(3)). */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
	return x;
}

static void http_xfer_free(struct http_xfer *x)
{
	if (x->early_assigned)
		event_del(&x->early);
	curl_easy_cleanup(x->easy);
	free(x->hnodes);
	free(x->htext);
	free(x);
}

static void http_xfer_release(struct http_transport *t, struct http_xfer *x)
{
	if (t->pool_n < HTTP_POOL_MAX) {
		x->next_free = t->pool;
		t->pool = x;
		t->pool_n++;
	} else {
		http_xfer_free(x);
	}
}

/* An empty Expect stops curl from waiting for "100 Continue" on bodies over 1 KiB: a full
 * round trip per delivery otherwise. */
static const char http_expect_none[] = "Expect:";

/* Copies the request's header lines, and http_expect_none after them, into x's own list
 * for CURLOPT_HTTPHEADER. The nodes are curl's public struct curl_slist filled in here
 * rather than by curl_slist_append, which would allocate a node and a copy of the text
 * per line per attempt; curl only reads the list, until the transfer ends. */
static int http_xfer_headers(struct http_xfer *x, const struct transport_request *req)
{
	size_t n = req->n_headers + 1, text_len = sizeof(http_expect_none);
	char *p;

	for (size_t i = 0; i < req->n_headers; i++)
		text_len += strlen(req->headers[i]) + 1;
	if (n > x->hnodes_cap) {
		struct curl_slist *nodes = realloc(x->hnodes, n * sizeof(*nodes));
		if (!nodes)
			return HOOKD_ENOMEM;
		x->hnodes = nodes;
		x->hnodes_cap = n;
	}
	if (text_len > x->htext_cap) {
		char *text = realloc(x->htext, text_len);
		if (!text)
			return HOOKD_ENOMEM;
		x->htext = text;
		x->htext_cap = text_len;
	}
	p = x->htext;
	for (size_t i = 0; i < n; i++) {
		const char *line = i < req->n_headers ? req->headers[i] : http_expect_none;
		size_t len = strlen(line) + 1;
		memcpy(p, line, len);
		x->hnodes[i].data = p;
		x->hnodes[i].next = i + 1 < n ? &x->hnodes[i + 1] : NULL;
		p += len;
	}
	return HOOKD_OK;
}

static void http_check_done(struct http_transport *t)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(t->multi, &left))) {
		struct http_xfer *x;
		struct transport_result res;
		struct curl_header *h;
		long status = 0;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(t->multi, x->easy);
		http_active_unlink(t, x);
		memset(&res, 0, sizeof(res));
		res.retry_after_s = -1;
		res.retry_after_ms = -1;
		res.duration_ms = (clock_mono_ns() - x->started_ns) / 1000000;
		if (m->data.result == CURLE_OK ||
		    (m->data.result == CURLE_WRITE_ERROR && x->body_cut)) {
			curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
			res.status = (int)status;
			if (curl_easy_header(x->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) ==
			    CURLHE_OK)
				res.retry_after_s = retry_after_parse(h->value, clock_now_ms() / 1000);
		} else if (x->blocked) {
			res.blocked = 1;
			snprintf(res.error, sizeof(res.error), "%s", x->blocked_msg);
		} else if (x->header_too_large ||
			   http_curl_header_too_large(x, m->data.result)) {
			snprintf(res.error, sizeof(res.error),
				 "response header too large (over %d KiB)",
				 HTTP_RESPONSE_HEADER_MAX / 1024);
		} else if ((x->proxied || x->tls_set) && x->curl_err[0]) {
			const char *generic = curl_easy_strerror(m->data.result);
			if (strstr(x->curl_err, generic)) /* the detail already says it */
				snprintf(res.error, sizeof(res.error), "%.255s", x->curl_err);
			else
				snprintf(res.error, sizeof(res.error), "%.60s (%.180s)", generic,
					 x->curl_err);
		} else {
			snprintf(res.error, sizeof(res.error), "%s", curl_easy_strerror(m->data.result));
		}
		res.response = x->resp;
		res.response_len = x->resp_len;
		x->done(x->arg, &res);
		http_xfer_release(t, x);
	}
}

/* Sets the endpoint's TLS options on the handle, or clears those a previous attempt left
 * there: a handle serves every endpoint in turn, and one endpoint's certificate, CAs or pin
 * must never apply to another's attempt. The blobs are copied by curl (CURL_BLOB_COPY): the
 * endpoint may be changed while the attempt runs. Given CAs replace the system's: CAINFO_BLOB
 * overrides the CAINFO bundle, and CAPATH (the system's hashed directory, which OpenSSL
 * would search too) is cleared for the attempt and restored after. curl does not reuse a
 * connection, nor resume a TLS session, made with another client certificate, CA blob or
 * pin: they are part of the SSL config it compares (tests/integration/test_tls.py checks
 * this). */
static void http_xfer_tls(struct http_transport *t, struct http_xfer *x,
			  const struct transport_request *req)
{
	CURL *e = x->easy;
	struct curl_blob cert = {(void *)req->tls_cert_pem, 0, CURL_BLOB_COPY};
	struct curl_blob key = {(void *)req->tls_key_pem, 0, CURL_BLOB_COPY};
	struct curl_blob ca = {(void *)req->tls_ca_pem, 0, CURL_BLOB_COPY};

	cert.len = cert.data ? strlen(req->tls_cert_pem) : 0;
	key.len = key.data ? strlen(req->tls_key_pem) : 0;
	ca.len = ca.data ? strlen(req->tls_ca_pem) : 0;
	curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, cert.data ? &cert : NULL);
	curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, key.data ? &key : NULL);
	curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, ca.data ? &ca : NULL);
	curl_easy_setopt(e, CURLOPT_CAPATH, ca.data ? NULL : t->capath);
	curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, req->tls_pin);
	x->tls_set = cert.data || key.data || ca.data || req->tls_pin;
}

static int http_xfer_start(struct http_transport *t, struct http_xfer *x)
{
	x->started_ns = clock_mono_ns();
	if (curl_multi_add_handle(t->multi, x->easy) != CURLM_OK)
		return HOOKD_EIO;
	return HOOKD_OK;
}

static void http_active_link(struct http_transport *t, struct http_xfer *x)
{
	x->next_active = t->active;
	x->prev_active = NULL;
	if (t->active)
		t->active->prev_active = x;
	t->active = x;
}

/* Ends a proxied attempt that never reached curl (refused by the guard, name not
 * resolved, or the handle not accepted): x->blocked and x->blocked_msg say why. Or the
 * attempt's timeout came while its name was still resolving: the resolution is abandoned
 * (its callback finds the wait orphaned). */
static void http_early_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_xfer *x = arg;
	struct http_transport *t = x->t;
	struct transport_result res;

	if (x->dns) {
		resolve_cancel(x->dns);
		x->dns = NULL;
		snprintf(x->blocked_msg, sizeof(x->blocked_msg),
			 "resolving host %.100s timed out after %u ms", x->target, x->timeout_ms);
	}
	http_active_unlink(t, x);
	memset(&res, 0, sizeof(res));
	res.retry_after_s = -1;
	res.duration_ms = (clock_mono_ns() - x->started_ns) / 1000000;
	res.blocked = x->blocked;
	snprintf(res.error, sizeof(res.error), "%s", x->blocked_msg);
	res.response = x->resp;
	x->done(x->arg, &res);
	http_xfer_release(t, x);
}

/* Arms x->early to fire after ms (0: on the loop's next turn). */
static void http_early_arm(struct http_xfer *x, uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	if (!x->early_assigned) {
		evtimer_assign(&x->early, x->t->evbase, http_early_cb, x);
		x->early_assigned = 1;
	}
	evtimer_add(&x->early, &tv);
}

static void http_early_fail(struct http_xfer *x)
{
	http_early_arm(x, 0);
}

/* The receiver's address, checked by the guard like a direct connection's (resolve.h), is
 * pinned with CURLOPT_CONNECT_TO, so curl asks the proxy to CONNECT to this address (not
 * the name, which the proxy would resolve again and might get another answer for: the
 * rebinding the guard exists to stop). TLS still verifies the URL's host name. */
static void http_proxy_resolved(void *arg, const struct resolve_answer *ans)
{
	struct http_xfer *x = arg;
	int64_t started;

	x->dns = NULL;
	if (x->early_assigned)
		event_del(&x->early); /* the deadline while resolving; curl's timeout takes over */
	if (ans->error) {
		snprintf(x->blocked_msg, sizeof(x->blocked_msg), "could not resolve host %.100s: %s",
			 x->target, ans->error_text);
		http_early_fail(x);
		return;
	}
	if (!ans->addr) {
		x->blocked = 1;
		snprintf(x->blocked_msg, sizeof(x->blocked_msg),
			 "destination blocked: %.100s is a %s address (not in "
			 "security.allow_destinations; not passed to the proxy)",
			 ans->addr_text, ssrf_class_name(ans->refused_class));
		http_early_fail(x);
		return;
	}
	/* "::ADDR:" = any host and port of this handle's URL, connect to ADDR on the URL's
	 * port. */
	snprintf(x->connect_to_text, sizeof(x->connect_to_text),
		 ans->addr->sa_family == AF_INET6 ? "::[%s]:" : "::%s:", ans->addr_text);
	x->connect_to.data = x->connect_to_text;
	x->connect_to.next = NULL;
	curl_easy_setopt(x->easy, CURLOPT_CONNECT_TO, &x->connect_to);
	if (x->timeout_ms) { /* what the resolution left of the attempt's time */
		int64_t spent = (clock_mono_ns() - x->started_ns) / 1000000;
		int64_t left = (int64_t)x->timeout_ms - spent;
		curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
	}
	started = x->started_ns;
	if (http_xfer_start(x->t, x) != HOOKD_OK) {
		snprintf(x->blocked_msg, sizeof(x->blocked_msg), "cannot start the request");
		http_early_fail(x);
	}
	x->started_ns = started; /* the attempt's duration includes the resolution */
}

/* A proxied attempt: the proxy itself is checked by the guard when curl opens its socket
 * (http_opensocket_cb); the receiver's host is resolved and checked first, without
 * blocking the loop (resolve.h), and its address handed to the proxy
 * (http_proxy_resolved). Every request is tunnelled with CONNECT, http:// ones too: the
 * proxy relays bytes and never sees or changes a signed request. x is on the active list
 * meanwhile, so shutdown finds it. */
static int http_proxy_begin(struct http_transport *t, struct http_xfer *x,
			    const struct transport_request *req)
{
	unsigned port;

	if (url_endpoint_host(req->url, x->target, sizeof(x->target), &port) != HOOKD_OK)
		return HOOKD_EINVAL;
	curl_easy_setopt(x->easy, CURLOPT_PROXY, req->proxy);
	curl_easy_setopt(x->easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
	x->proxy_set = 1;
	x->started_ns = clock_mono_ns();
	http_active_link(t, x);
	/* A literal, or a name answered at once, is handled inside resolve_start. */
	x->dns = resolve_start(t->resolver, x->target, http_proxy_resolved, x);
	if (x->dns)
		http_early_arm(x, x->timeout_ms); /* the attempt's timeout covers resolving too */
	return HOOKD_OK;
}

/* Back to a direct attempt on a handle a proxied one used. */
static void http_proxy_clear(struct http_xfer *x)
{
	curl_easy_setopt(x->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(x->easy, CURLOPT_HTTPPROXYTUNNEL, 0L);
	curl_easy_setopt(x->easy, CURLOPT_CONNECT_TO, NULL);
	x->proxy_set = 0;
}

int transport_http_cache(const char *app_id, const char *endpoint_id, const char *url)
{
	const char *parts[2] = {app_id, endpoint_id};
	uint32_t h = 2166136261u;
	if (!parts[0] && !parts[1])
		parts[0] = url;
	for (int i = 0; i < 2; i++) {
		for (const unsigned char *p = (const unsigned char *)parts[i]; p && *p; p++)
			h = (h ^ *p) * 16777619u;
		h = (h ^ '/') * 16777619u;
	}
	return (int)(h % TRANSPORT_HTTP_CACHES);
}

static int http_send(struct transport *base, const struct transport_request *req)
{
	struct http_transport *t = (struct http_transport *)base;
	struct http_xfer *x = t->pool;

	if (x) {
		t->pool = x->next_free;
		t->pool_n--;
	} else {
		x = http_xfer_new(t);
		if (!x)
			return HOOKD_ENOMEM;
	}
	x->blocked = 0;
	x->blocked_msg[0] = '\0';
	x->body_cut = 0;
	x->header_too_large = 0;
	x->header_end = 0;
	x->header_len = 0;
	x->resp_len = 0;
	x->done = req->done;
	x->arg = req->arg;
	x->timeout_ms = req->timeout_ms;
	if (http_xfer_headers(x, req) != HOOKD_OK) {
		http_xfer_release(t, x);
		return HOOKD_ENOMEM;
	}

	/* What differs between attempts; the rest was set once by http_xfer_new. */
	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hnodes);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	int cache = transport_http_cache(req->app_id, req->endpoint_id, req->url);
	if (cache != x->cache) {
		curl_easy_setopt(e, CURLOPT_SHARE, t->caches[cache]);
		x->cache = cache;
	}
	/* Each cache is capped (CURLMOPT_MAXCONNECTS) as the one cache was; all of them
	 * together by this: while the sockets open are at the budget, an attempt's connection
	 * is closed after it instead of going idle into its cache, so idle connections one
	 * cache keeps cannot add up, cache by cache, past it. */
	int forbid = t->socks_open >= t->socks_max;
	if (forbid != x->forbid_reuse) {
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, (long)forbid);
		x->forbid_reuse = forbid;
	}
	/* Set on every attempt, NULL included: the handle is reused for other endpoints. An
	 * endpoint's own tls.client_cert (a blob, http_xfer_tls) wins over an auth scheme's
	 * certificate: the paths are not set then, rather than left to curl's precedence. */
	curl_easy_setopt(e, CURLOPT_SSLCERT, req->tls_cert_pem ? NULL : req->auth_cert_path);
	curl_easy_setopt(e, CURLOPT_SSLKEY, req->tls_cert_pem ? NULL : req->auth_key_path);
	if (x->tls_set || req->tls_cert_pem || req->tls_key_pem || req->tls_ca_pem || req->tls_pin)
		http_xfer_tls(t, x, req);
	x->proxied = req->proxy && req->proxy[0];
	if (x->proxy_set && !x->proxied)
		http_proxy_clear(x);
	if (x->proxied) {
		int rc = http_proxy_begin(t, x, req);
		if (rc != HOOKD_OK)
			http_xfer_release(t, x);
		return rc;
	}
	if (http_xfer_start(t, x) != HOOKD_OK) {
		http_xfer_release(t, x);
		return HOOKD_EIO;
	}
	http_active_link(t, x);
	return HOOKD_OK;
}

static void http_destroy(struct transport *base)
{
	struct http_transport *t = (struct http_transport *)base;
	struct http_xfer *x, *next;
	if (!t)
		return;
	/* Transfers still in flight at shutdown are abandoned: their deliveries stay pending
	 * in the store and are sent again after the restart (at-least-once). */
	for (x = t->active; x; x = next) {
		next = x->next_active;
		resolve_cancel(x->dns);
		curl_multi_remove_handle(t->multi, x->easy);
		http_xfer_free(x);
	}
	resolver_free(t->resolver);
	for (x = t->pool; x; x = next) {
		next = x->next_free;
		http_xfer_free(x);
	}
	if (t->multi)
		curl_multi_cleanup(t->multi);
	for (int i = 0; i < TRANSPORT_HTTP_CACHES; i++)
		if (t->caches[i]) /* closes the cached connections (http_closesocket_cb) */
			curl_share_cleanup(t->caches[i]);
	for (size_t fd = 0; fd < t->socks_cap; fd++) {
		if (t->socks[fd]) { /* not closed by curl: cannot happen, but do not leak it */
			http_sock_unloop(t->socks[fd]);
			free(t->socks[fd]);
		}
	}
	free(t->socks);
	if (t->timer)
		event_free(t->timer);
	free(t);
}

struct transport *transport_http_new(struct event_base *base, const struct ssrf_policy *ssrf,
				     unsigned max_inflight, char *err, size_t errlen)
{
	struct http_transport *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->base.name = "http";
	t->base.send = http_send;
	t->base.destroy = http_destroy;
	t->evbase = base;
	t->ssrf = ssrf;
	t->multi = curl_multi_init();
	t->timer = evtimer_new(base, http_timer_cb, t);
	t->resolver = resolver_new(base, ssrf);
	for (int i = 0; i < TRANSPORT_HTTP_CACHES; i++) {
		t->caches[i] = curl_share_init();
		if (!t->caches[i] ||
		    curl_share_setopt(t->caches[i], CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) !=
			    CURLSHE_OK) {
			snprintf(err, errlen, "cannot create the HTTP client's connection caches");
			http_destroy(&t->base);
			return NULL;
		}
	}
	if (t->multi) {
		CURL *probe = curl_easy_init();
		char *capath = NULL;
		if (probe && curl_easy_getinfo(probe, CURLINFO_CAPATH, &capath) == CURLE_OK)
			t->capath = capath;
		curl_easy_cleanup(probe);
	}
	if (!t->multi || !t->timer || !t->resolver) {
		snprintf(err, errlen, "cannot create the HTTP client");
		http_destroy(&t->base);
		return NULL;
	}
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, http_socket_fn);
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, http_timer_fn);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
	/* curl's cap counts the connections in use too, and is applied as each request ends:
	 * at the in-flight cap alone, every request that ended above it closed a connection
	 * (with 100 endpoints and 1,024 in flight most requests paid a new connection). It is
	 * applied to each cache; socks_max bounds them together (http_send). */
	t->socks_max = (size_t)max_inflight + TRANSPORT_HTTP_MAX_CONNECTS;
	curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)t->socks_max);
	return &t->base;
}
