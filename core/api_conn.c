/* api_conn.c - the API's connections: cap, header deadline, header and body limits, accept
 * errors (see api_conn.h). */
#include "api_conn.h"

#include "api_scan.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "ratelimit.h"
#include "transport.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Descriptors the daemon holds besides API connections and delivery sockets (at most
 * TRANSPORT_HTTP_MAX_SOCKETS(max_inflight)): an idle daemon holds 16 (stdio, LMDB's data
 * and lock files, epoll, the loop's and the policy thread's pipes, the listener), and 64
 * leaves room for curl's resolver, the policy directory being read and the log. */
#define API_CONN_FD_SPARE 64
/* The cap never goes below this, even on a starved descriptor limit: fewer connections and a
 * publisher, an operator and a health check could not all be served. */
#define API_CONN_MIN 16
/* After accept() fails (descriptors exhausted), the listener rests this long: without a rest
 * the pending connection keeps the socket readable and the loop spins at full CPU; a closing
 * connection ends the rest at once. */
#define API_CONN_ACCEPT_BACKOFF_MS 100
/* A refused request's remaining bytes are read and discarded up to this much (and for at
 * most api.header_timeout_ms): enough for a client to finish sending any request within the
 * limits and read the answer instead of a reset; one still sending after that is not
 * listening, and is disconnected. */
#define API_CONN_DRAIN_MAX (1024 * 1024)
/* Accept failures are reported at most once a second (with the count of the others). */
#define API_CONN_ACCEPT_LOG_MS 1000
/* Reaching the cap is a state more than an event: once every 10 s says it persists. */
#define API_CONN_CAP_LOG_MS 10000

struct api_conns;

struct api_conn {
	struct api_conns *owner;   /* NULL once the layer is freed (libevent frees us later) */
	struct bufferevent *bev;   /* the filter evhttp reads (owned by evhttp) */
	struct bufferevent *under; /* the socket under it (owned by bev) */
	LIST_ENTRY(api_conn) link;
	struct api_scan scan;
	int64_t deadline_ms;       /* header deadline, or the end of a refusal's drain; 0: none */
	int64_t timeout_ms;        /* the read timeout set on under; -1: none */
	size_t drained;            /* bytes discarded since the refusal */
	bool refused;              /* answered (or being dropped): input is discarded */
};

struct api_conns {
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener; /* evhttp's; NULL when detached */
	struct event *resume;            /* ends an accept backoff */
	struct api_scan_limits limits;
	int64_t header_timeout_ms;
	uint32_t cap, open;
	bool accepting, accept_paused, attached;
	struct ratelimit accept_log, cap_log;
	LIST_HEAD(, api_conn) conns;
	LIST_ENTRY(api_conns) link;
};

/* The listener's error callback gets evhttp's argument (the evhttp), not ours: the layers
 * are found by their listener in this list (one per daemon). Loop thread only. */
static LIST_HEAD(, api_conns) api_conns_all = LIST_HEAD_INITIALIZER(api_conns_all);

static int64_t api_conn_now_ms(void)
{
	return clock_mono_ns() / 1000000;
}

uint32_t api_conns_cap(uint32_t configured, uint64_t nofile, uint32_t max_inflight)
{
	uint64_t reserve = TRANSPORT_HTTP_MAX_SOCKETS(max_inflight) + API_CONN_FD_SPARE;
	uint64_t room = nofile > reserve + API_CONN_MIN ? nofile - reserve : API_CONN_MIN;
	return (uint64_t)configured < room ? configured : (uint32_t)(room > UINT32_MAX ? UINT32_MAX : room);
}

/* Accepts while under the cap and not resting after an accept error. */
static void api_conns_update(struct api_conns *c)
{
	bool want = c->open < c->cap && !c->accept_paused;
	uint64_t suppressed;
	if (!c->listener || want == c->accepting)
		return;
	if (want)
		evconnlistener_enable(c->listener);
	else
		evconnlistener_disable(c->listener);
	c->accepting = want;
	if (!want && c->open >= c->cap &&
	    ratelimit_check(&c->cap_log, api_conn_now_ms(), &suppressed))
		log_warn("api: %u connections open, the cap (api.max_connections, bounded by the "
			 "descriptor limit); new connections wait in the queue until one closes",
			 c->open);
}

static void api_conns_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_conns *c = arg;
	c->accept_paused = false;
	api_conns_update(c);
}

static void api_conns_accept_failed(struct evconnlistener *lev, void *arg)
{
	int err = errno;
	struct api_conns *c;
	uint64_t suppressed;
	struct timeval tv = {0, API_CONN_ACCEPT_BACKOFF_MS * 1000};

	LIST_FOREACH(c, &api_conns_all, link)
		if (c->listener == lev)
			break;
	if (!c)
		return;
	if (ratelimit_check(&c->accept_log, api_conn_now_ms(), &suppressed))
		log_warn("api: accept failed: %s (%llu more failures since the last report); %u API "
			 "connections open; retrying in %d ms",
			 strerror(err), (unsigned long long)suppressed, c->open,
			 API_CONN_ACCEPT_BACKOFF_MS);
	c->accept_paused = true;
	api_conns_update(c);
	event_add(c->resume, &tv);
}

/* Sets the read timeout of the socket (ms; -1 none): its expiry makes evhttp drop the
 * connection, as for any socket timeout. */
static void api_conn_timeout_set(struct api_conn *conn, int64_t ms)
{
	struct timeval tv;
	if (ms == conn->timeout_ms && ms < 0)
		return;
	conn->timeout_ms = ms;
	if (ms < 0) {
		bufferevent_set_timeouts(conn->under, NULL, NULL);
		return;
	}
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	bufferevent_set_timeouts(conn->under, &tv, NULL);
}

/* Drops the connection now, as if its socket had timed out (evhttp_error_cb frees it). Deferred:
 * this runs inside the filter, on a bufferevent evhttp is about to free. */
static void api_conn_kill(struct api_conn *conn)
{
	conn->refused = true;
	bufferevent_trigger_event(conn->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT,
				  BEV_TRIG_DEFER_CALLBACKS);
}

/* Answers the refused request with the API's JSON error and half-closes the socket. Only
 * when nothing else is being written (evhttp is reading this very request, so no earlier
 * answer is pending). */
static void api_conn_answer(struct api_conn *conn)
{
	int status = conn->scan.status, fd = (int)bufferevent_getfd(conn->under);
	const char *reason = status == 431   ? "Request Header Fields Too Large"
			     : status == 413 ? "Payload Too Large"
					     : "Bad Request";
	const char *code = status == 431   ? "headers_too_large"
			   : status == 413 ? "payload_too_large"
					   : "invalid_request";
	json_t *j = json_pack("{s:{s:s, s:s, s:n}}", "error", "code", code, "message",
			      conn->scan.why, "field");
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	char msg[1024];
	int len;
	ssize_t sent;

	if (!text || fd < 0 || evbuffer_get_length(bufferevent_get_output(conn->bev)) ||
	    evbuffer_get_length(bufferevent_get_output(conn->under)))
		goto out;
	len = snprintf(msg, sizeof(msg),
		       "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		       "Connection: close\r\n\r\n%s\n",
		       status, reason, strlen(text) + 1, text);
	if (len <= 0 || (size_t)len >= sizeof(msg))
		goto out;
	/* The socket's send buffer is empty: one small write goes out whole. */
	sent = send(fd, msg, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent == len)
		shutdown(fd, SHUT_WR);
	else if (sent >= 0)
		bufferevent_write(conn->under, msg + sent, (size_t)(len - sent));
out:
	free(text);
	json_decref(j);
}

/* The input filter: every byte the client sends passes here before evhttp sees it. */
static enum bufferevent_filter_result api_conn_input(struct evbuffer *src, struct evbuffer *dst,
						     ev_ssize_t limit,
						     enum bufferevent_flush_mode mode, void *ctx)
{
	struct api_conn *conn = ctx;
	struct api_conns *c = conn->owner;
	size_t len = evbuffer_get_length(src), off = 0, last_start = 0;
	unsigned ends = 0;
	int64_t now;
	struct evbuffer_ptr ptr;

	if (!c) {
		evbuffer_add_buffer(dst, src);
		return BEV_OK;
	}
	now = api_conn_now_ms();
	if (conn->refused) {
		conn->drained += len;
		evbuffer_drain(src, len);
		if (conn->drained > API_CONN_DRAIN_MAX || now >= conn->deadline_ms)
			api_conn_kill(conn);
		else
			api_conn_timeout_set(conn, conn->deadline_ms - now);
		return BEV_NEED_MORE;
	}

	evbuffer_ptr_set(src, &ptr, 0, EVBUFFER_PTR_SET);
	while (off < len && conn->scan.status == 0) {
		struct evbuffer_iovec v;
		struct api_scan_step step;
		if (evbuffer_peek(src, -1, &ptr, &v, 1) < 1 || v.iov_len == 0)
			break;
		api_scan_feed(&conn->scan, v.iov_base, v.iov_len, &step);
		ends += step.ends;
		if (step.begun)
			last_start = off + step.last_start;
		off += step.used;
		if (off < len && evbuffer_ptr_set(src, &ptr, step.used, EVBUFFER_PTR_ADD) != 0)
			break;
	}

	if (conn->scan.status) {
		/* Requests before the refused one still go to evhttp and get their answers; the
		 * refused one is answered here if evhttp is reading it (no answer pending). */
		size_t keep = ends ? last_start : 0;
		evbuffer_remove_buffer(src, dst, keep);
		conn->drained = evbuffer_get_length(src);
		evbuffer_drain(src, conn->drained);
		conn->refused = true;
		conn->deadline_ms = now + c->header_timeout_ms;
		log_debug("api: request refused (%d): %s", conn->scan.status, conn->scan.why);
		if (!ends)
			api_conn_answer(conn);
		api_conn_timeout_set(conn, c->header_timeout_ms);
		return keep ? BEV_OK : BEV_NEED_MORE;
	}
	evbuffer_add_buffer(dst, src);

	/* The header deadline: from a request's first byte (from the accept for the first
	 * request) to the end of its header fields. The socket's read timeout is kept at what
	 * is left, so a client that stops sending is cut off too. */
	if (ends)
		conn->deadline_ms = 0;
	if (api_scan_in_header(&conn->scan)) {
		if (!conn->deadline_ms)
			conn->deadline_ms = now + c->header_timeout_ms;
		if (now >= conn->deadline_ms) {
			log_debug("api: request headers not complete within api.header_timeout_ms "
				  "(%lld ms): connection closed", (long long)c->header_timeout_ms);
			api_conn_kill(conn);
		} else {
			api_conn_timeout_set(conn, conn->deadline_ms - now);
		}
	} else if (conn->scan.phase != API_SCAN_START || !conn->deadline_ms) {
		conn->deadline_ms = 0;
		api_conn_timeout_set(conn, -1);
	}
	return len ? BEV_OK : BEV_NEED_MORE;
}

/* bufferevent_filter (libevent 2.1.12) moves output down to the socket only when it is added
 * while the filter is write-enabled, and evhttp adds a response before it enables writing:
 * an answer given later (after a store commit) would sit there until the client sent another
 * byte. Each addition schedules the socket's write callback, which makes the filter move it. */
static void api_conn_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
			       void *arg)
{
	struct api_conn *conn = arg;
	if (info->n_added)
		bufferevent_trigger(conn->under, EV_WRITE,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The bufferevent is gone (libevent's finalizer): the connection is closed. */
static void api_conn_freed(void *ctx)
{
	struct api_conn *conn = ctx;
	struct api_conns *c = conn->owner;
	if (c) {
		LIST_REMOVE(conn, link);
		c->open--;
		if (c->accept_paused) {
			/* A descriptor was just given back: try accepting again now. */
			c->accept_paused = false;
			event_del(c->resume);
		}
		api_conns_update(c);
	}
	free(conn);
}

/* evhttp's bevcb: called for every accepted connection, before evhttp sets its socket. */
static struct bufferevent *api_conn_bev_new(struct event_base *base, void *arg)
{
	struct api_conns *c = arg;
	struct api_conn *conn = calloc(1, sizeof(*conn));
	struct bufferevent *under = NULL;

	if (!conn || !(under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)))
		goto fail;
	conn->bev = bufferevent_filter_new(under, api_conn_input, NULL, BEV_OPT_CLOSE_ON_FREE,
					   api_conn_freed, conn);
	if (!conn->bev)
		goto fail;
	if (!evbuffer_add_cb(bufferevent_get_output(conn->bev), api_conn_output_cb, conn)) {
		bufferevent_free(conn->bev); /* frees under, and conn (api_conn_freed) */
		log_warn("api: out of memory for a new connection");
		return NULL;
	}
	conn->owner = c;
	conn->under = under;
	conn->timeout_ms = -1;
	api_scan_init(&conn->scan, &c->limits);
	conn->deadline_ms = api_conn_now_ms() + c->header_timeout_ms;
	api_conn_timeout_set(conn, c->header_timeout_ms);
	LIST_INSERT_HEAD(&c->conns, conn, link);
	c->open++;
	api_conns_update(c);
	return conn->bev;
fail:
	/* evhttp falls back to a plain bufferevent: this one connection goes unwatched. */
	log_warn("api: out of memory for a new connection's limits");
	if (under)
		bufferevent_free(under);
	free(conn);
	return NULL;
}

int api_conns_new(struct event_base *base, struct evhttp *http, const struct config *cfg,
		  struct api_conns **out)
{
	struct api_conns *c = calloc(1, sizeof(*c));
	struct rlimit rl;
	uint64_t nofile = 1024;
	struct timeval idle;

	if (!c)
		return HOOKD_ENOMEM;
	c->resume = evtimer_new(base, api_conns_resume_cb, c);
	if (!c->resume) {
		free(c);
		return HOOKD_ENOMEM;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		nofile = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : (uint64_t)rl.rlim_cur;
	c->base = base;
	c->http = http;
	c->cap = api_conns_cap(cfg->api_max_connections, nofile, cfg->max_inflight);
	c->limits.max_header_bytes = cfg->max_header_bytes;
	c->limits.max_header_lines = cfg->max_header_lines;
	c->limits.max_body_bytes = cfg->max_payload_bytes;
	c->header_timeout_ms = cfg->api_header_timeout_ms;
	c->accepting = true;
	c->accept_log.interval_ms = API_CONN_ACCEPT_LOG_MS;
	c->cap_log.interval_ms = API_CONN_CAP_LOG_MS;
	LIST_INIT(&c->conns);
	if (c->cap < cfg->api_max_connections)
		log_msg(c->cap < 64 ? LOG_WARN : LOG_INFO,"api: at most %u connections (api.max_connections is %u; the descriptor "
			 "limit is %llu, of which %llu are kept for deliveries and the daemon)",
			 c->cap, cfg->api_max_connections, (unsigned long long)nofile,
			 (unsigned long long)(TRANSPORT_HTTP_MAX_SOCKETS(cfg->max_inflight) + API_CONN_FD_SPARE));
	idle.tv_sec = (time_t)(cfg->api_idle_timeout_ms / 1000);
	idle.tv_usec = (suseconds_t)(cfg->api_idle_timeout_ms % 1000) * 1000;
	evhttp_set_timeout_tv(http, &idle);
	/* The filter refuses larger header blocks first (with a JSON 431); evhttp's own limit
	 * is a backstop. */
	evhttp_set_max_headers_size(http, (ev_ssize_t)cfg->max_header_bytes);
	evhttp_set_bevcb(http, api_conn_bev_new, c);
	*out = c;
	return HOOKD_OK;
}

void api_conns_attach(struct api_conns *c, struct evhttp_bound_socket *bs)
{
	c->listener = evhttp_bound_socket_get_listener(bs);
	evconnlistener_set_error_cb(c->listener, api_conns_accept_failed);
	if (!c->attached)
		LIST_INSERT_HEAD(&api_conns_all, c, link);
	c->attached = true;
	c->accepting = true;
	api_conns_update(c);
}

void api_conns_detach(struct api_conns *c)
{
	if (!c)
		return;
	if (c->attached)
		LIST_REMOVE(c, link);
	c->attached = false;
	c->listener = NULL;
	event_del(c->resume);
}

void api_conns_free(struct api_conns *c)
{
	struct api_conn *conn;
	if (!c)
		return;
	api_conns_detach(c);
	while ((conn = LIST_FIRST(&c->conns)) != NULL) {
		LIST_REMOVE(conn, link);
		conn->owner = NULL;
	}
	event_free(c->resume);
	free(c);
}
