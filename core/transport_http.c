/* transport_http.c - deliveries over HTTP with libcurl's multi-socket API on libevent.
 *
 * One multi handle for the process: its connection cache gives keep-alive and reuse per
 * host across deliveries. Sockets are opened by us (CURLOPT_OPENSOCKETFUNCTION) so the
 * destination policy sees the address curl is about to connect to, after DNS: a host name
 * that resolves or rebinds to a private address is refused there. */
#include "transport.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "retry.h"
#include "ssrf.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
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
	char blocked_msg[200];
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
	struct event *timer;
	const struct ssrf_policy *ssrf;
	struct http_xfer *pool;
	size_t pool_n;
	struct http_xfer *active;
	struct http_sock **socks; /* the sockets we opened and curl has not closed, by fd */
	size_t socks_cap;
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
		char text[INET6_ADDRSTRLEN] = "?";
		if (a->family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr, text, sizeof(text));
		else if (a->family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr, text, sizeof(text));
		x->blocked = 1;
		snprintf(x->blocked_msg, sizeof(x->blocked_msg),
			 "destination blocked: %s is a %s address (not in security.allow_destinations)",
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
	return x;
}

static void http_xfer_free(struct http_xfer *x)
{
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
		} else {
			snprintf(res.error, sizeof(res.error), "%s", curl_easy_strerror(m->data.result));
		}
		res.response = x->resp;
		res.response_len = x->resp_len;
		x->done(x->arg, &res);
		http_xfer_release(t, x);
	}
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
	x->body_cut = 0;
	x->header_too_large = 0;
	x->header_end = 0;
	x->header_len = 0;
	x->resp_len = 0;
	x->done = req->done;
	x->arg = req->arg;
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
	x->started_ns = clock_mono_ns();
	if (curl_multi_add_handle(t->multi, e) != CURLM_OK) {
		http_xfer_release(t, x);
		return HOOKD_EIO;
	}
	x->next_active = t->active;
	if (t->active)
		t->active->prev_active = x;
	t->active = x;
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
		curl_multi_remove_handle(t->multi, x->easy);
		http_xfer_free(x);
	}
	for (x = t->pool; x; x = next) {
		next = x->next_free;
		http_xfer_free(x);
	}
	if (t->multi)
		curl_multi_cleanup(t->multi); /* closes the cached connections (http_closesocket_cb) */
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
	if (!t->multi || !t->timer) {
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
	 * (with 100 endpoints and 1,024 in flight most requests paid a new connection). */
	curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS,
			  (long)max_inflight + TRANSPORT_HTTP_MAX_CONNECTS);
	return &t->base;
}
