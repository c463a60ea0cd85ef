/* transport_plugin.c - the transport dispatch sends through: http(s) URLs go to the HTTP
 * transport, any other scheme to the plugin transport that registered it (plugin.h).
 *
 * The host owns time and the destination guard for plugins. An attempt is named by a
 * 64-bit token (never reused) and kept in a table until it ends, which happens once: by
 * the plugin's complete(), by the host's timer after the request's timeout_ms (the plugin's
 * cancel() is called, the attempt recorded "timed out"), or by a failure before the plugin
 * was reached (no such transport, address refused, name not resolved, send() refused). A
 * completion for a token that already ended is ignored with a log line naming the plugin
 * and the delivery (the last PLUGIN_RECENT ended tokens are remembered for that). Results
 * are always handed to dispatch from a callback of the loop, never inside send(). */
#include "transport.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "plugin.h"
#include "resolve.h"
#include "ssrf.h"
#include "url.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ended tokens remembered to name the delivery of a late or second complete(): a plugin
 * completes late within its own timeout, so a few seconds of attempts at a high rate are
 * enough; 1024 entries are ~120 KiB. */
#define PLUGIN_RECENT 1024
/* Buckets of the table of attempts in flight (chained): delivery.max_inflight is 1024 by
 * default. */
#define PLUGIN_BUCKETS 1024
/* A delivery id as dispatch makes them (delivery.h), with room. */
#define PLUGIN_ID_MAX 96
/* Header lines an attempt carries at most: dispatch's own four, the endpoint's and a
 * policy's are each bounded by their schema well below this. */
#define PLUGIN_HEADERS_MAX 256

enum attempt_state {
	ATTEMPT_RESOLVING, /* waiting for the name's addresses */
	ATTEMPT_SENT,      /* the plugin has it: waiting for complete() */
	ATTEMPT_FAILING,   /* ends with fail at the next loop pass */
};

struct plugin_tp;

struct attempt {
	struct plugin_tp *tp;
	uint64_t token;
	const struct plugin_transport *pt;
	enum attempt_state state;
	struct event timer;      /* the timeout, or the deferred end of a failing attempt */
	struct resolve_req *dns; /* ATTEMPT_RESOLVING: the name being resolved */
	void (*done)(void *arg, const struct transport_result *res);
	void *arg;
	int64_t started_ns;
	uint32_t timeout_ms;
	struct url_parts parts;
	char scheme[URL_SCHEME_MAX + 1];
	char address[INET6_ADDRSTRLEN];
	char *strings;           /* the copies below live in this one block */
	const char *url, *app_id, *endpoint_id, *message_id, *delivery_id, *event_type, *path;
	char **lines;            /* "Name: value" header lines (in strings) */
	size_t n_lines;
	const char *body;
	size_t body_len;
	uint32_t attempt;
	char fail_msg[256];
	int fail_blocked;
	struct attempt *hnext;                   /* bucket chain */
	struct attempt *prev, *next;             /* every attempt, for shutdown */
};

struct recent {
	uint64_t token;
	char delivery_id[PLUGIN_ID_MAX];
	uint32_t attempt;
	int timed_out;
};

struct plugin_tp {
	struct transport base;
	struct event_base *evbase;
	struct transport *http;
	struct plugins *plugins;
	struct resolver *resolver;
	uint64_t next_token;
	struct attempt *buckets[PLUGIN_BUCKETS];
	struct attempt *all;
	struct recent recent[PLUGIN_RECENT];
};

static struct attempt **bucket_of(struct plugin_tp *tp, uint64_t token)
{
	return &tp->buckets[(token * 0x9E3779B97F4A7C15ull) >> 54];
}

static struct attempt *attempt_find(struct plugin_tp *tp, uint64_t token)
{
	for (struct attempt *a = *bucket_of(tp, token); a; a = a->hnext)
		if (a->token == token)
			return a;
	return NULL;
}

static void attempt_unlink(struct plugin_tp *tp, struct attempt *a)
{
	struct attempt **ap = bucket_of(tp, a->token);
	while (*ap && *ap != a)
		ap = &(*ap)->hnext;
	if (*ap)
		*ap = a->hnext;
	if (a->prev)
		a->prev->next = a->next;
	else
		tp->all = a->next;
	if (a->next)
		a->next->prev = a->prev;
}

static void attempt_free(struct attempt *a)
{
	event_del(&a->timer);
	free(a->lines);
	free(a->strings);
	free(a);
}

/* Ends a: out of the table, remembered, handed to dispatch, freed. */
static void attempt_end(struct attempt *a, struct transport_result *res, int timed_out)
{
	struct plugin_tp *tp = a->tp;
	struct recent *r = &tp->recent[a->token % PLUGIN_RECENT];
	attempt_unlink(tp, a);
	r->token = a->token;
	snprintf(r->delivery_id, sizeof(r->delivery_id), "%s", a->delivery_id);
	r->attempt = a->attempt;
	r->timed_out = timed_out;
	res->duration_ms = (clock_mono_ns() - a->started_ns) / 1000000;
	a->done(a->arg, res);
	attempt_free(a);
}

static void attempt_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a = arg;
	struct transport_result res;
	const char *plugin = a->pt ? plugins_ctx_name(a->pt->ctx) : "?";

	memset(&res, 0, sizeof(res));
	res.retry_after_s = -1;
	res.retry_after_ms = -1;
	res.verdict = TRANSPORT_RETRY;
	if (a->state == ATTEMPT_FAILING) {
		res.blocked = a->fail_blocked;
		snprintf(res.error, sizeof(res.error), "%s", a->fail_msg);
		attempt_end(a, &res, 0);
		return;
	}
	snprintf(res.error, sizeof(res.error), "plugin %s: timed out after %u ms", plugin,
		 a->timeout_ms);
	if (a->state == ATTEMPT_RESOLVING) {
		resolve_cancel(a->dns);
		a->dns = NULL;
		log_warn("plugin %s: delivery %s attempt %u timed out after %u ms resolving %s",
			 plugin, a->delivery_id, a->attempt, a->timeout_ms, a->parts.host);
	} else {
		log_warn("plugin %s: delivery %s attempt %u (token %llu) timed out after %u ms: "
			 "cancelled, to be retried",
			 plugin, a->delivery_id, a->attempt, (unsigned long long)a->token,
			 a->timeout_ms);
		if (a->pt->t->cancel)
			a->pt->t->cancel(a->pt->state, a->token);
	}
	attempt_end(a, &res, 1);
}

/* Ends a at the next loop pass with a retryable failure (dispatch is never called back
 * from inside its own send()). */
static void attempt_fail(struct attempt *a, int blocked, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void attempt_fail(struct attempt *a, int blocked, const char *fmt, ...)
{
	static const struct timeval now = {0, 0};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->fail_msg, sizeof(a->fail_msg), fmt, ap);
	va_end(ap);
	a->fail_blocked = blocked;
	a->state = ATTEMPT_FAILING;
	event_del(&a->timer);
	evtimer_add(&a->timer, &now);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes len bytes of in into out (len + 1 bytes of room). false on "%00" or a
 * malformed escape: a path that a plugin would read cut short or wrong. */
static bool path_decode(const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (in[i] != '%') {
			out[o++] = in[i];
			continue;
		}
		if (i + 2 >= len || (hi = hex_value(in[i + 1])) < 0 ||
		    (lo = hex_value(in[i + 2])) < 0 || (hi == 0 && lo == 0))
			return false;
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	return true;
}

/* Hands a to its plugin: the struct hookd_send, valid during send() only. */
static void attempt_send(struct attempt *a)
{
	struct hookd_header hdr[PLUGIN_HEADERS_MAX];
	char *names = NULL;
	size_t n = 0, names_len = 0;
	struct hookd_send s;
	int rc;

	for (size_t i = 0; i < a->n_lines; i++)
		names_len += strlen(a->lines[i]) + 1;
	if (names_len && !(names = malloc(names_len))) {
		attempt_fail(a, 0, "plugin %s: out of memory", plugins_ctx_name(a->pt->ctx));
		return;
	}
	/* "Name: value" lines split into name and value (the name copied to end it). */
	for (size_t i = 0, off = 0; i < a->n_lines && n < PLUGIN_HEADERS_MAX; i++) {
		const char *line = a->lines[i], *colon = strchr(line, ':');
		size_t nlen;
		if (!colon)
			continue;
		nlen = (size_t)(colon - line);
		memcpy(names + off, line, nlen);
		names[off + nlen] = '\0';
		hdr[n].name = names + off;
		off += nlen + 1;
		colon++;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		hdr[n].value = colon;
		n++;
	}
	memset(&s, 0, sizeof(s));
	s.size = sizeof(s);
	s.token = a->token;
	s.url = a->url;
	s.scheme = a->scheme;
	s.host = a->parts.host;
	s.address = a->pt->t->needs_address ? a->address : NULL;
	s.port = a->parts.port;
	s.path = a->path;
	s.query = a->parts.query;
	s.app_id = a->app_id;
	s.endpoint_id = a->endpoint_id;
	s.message_id = a->message_id;
	s.delivery_id = a->delivery_id;
	s.event_type = a->event_type;
	s.attempt = a->attempt;
	s.headers = hdr;
	s.n_headers = n;
	s.body = a->body;
	s.body_len = a->body_len;
	s.timeout_ms = a->timeout_ms;
	a->state = ATTEMPT_SENT;
	rc = a->pt->t->send(a->pt->state, &s);
	free(names);
	if (rc != 0)
		attempt_fail(a, 0, "plugin %s: send() could not start the attempt (returned %d)",
			     plugins_ctx_name(a->pt->ctx), rc);
}

/* The host's address, guarded (resolve.h): the attempt goes on to the plugin with it, or
 * fails (refused by the guard, or not resolved). */
static void attempt_resolved(void *arg, const struct resolve_answer *ans)
{
	struct attempt *a = arg;

	a->dns = NULL;
	if (ans->error) {
		attempt_fail(a, 0, "plugin %s: cannot resolve %s: %s", plugins_ctx_name(a->pt->ctx),
			     a->parts.host, ans->error_text);
		return;
	}
	if (!ans->addr) {
		attempt_fail(a, 1,
			     "destination blocked: %s is a %s address (not in "
			     "security.allow_destinations)",
			     ans->addr_text, ssrf_class_name(ans->refused_class));
		return;
	}
	snprintf(a->address, sizeof(a->address), "%s", ans->addr_text);
	attempt_send(a);
}

/* Copies what the attempt keeps past send(): the request's strings and header lines (the
 * body stays valid until done(), transport.h). */
static int attempt_copy(struct attempt *a, const struct transport_request *req)
{
	char type[256];
	const char *src[7] = {req->url,
			      req->app_id ? req->app_id : "",
			      req->endpoint_id ? req->endpoint_id : "",
			      req->message_id ? req->message_id : "",
			      req->delivery_id ? req->delivery_id : "",
			      type,
			      ""};
	const char **dst[6] = {&a->url, &a->app_id, &a->endpoint_id, &a->message_id,
			       &a->delivery_id, &a->event_type};
	size_t total = 0, off = 0, n_lines = req->n_headers;
	char *p;

	snprintf(type, sizeof(type), "%s", req->event_type ? req->event_type : "");

	if (n_lines > PLUGIN_HEADERS_MAX)
		n_lines = PLUGIN_HEADERS_MAX;
	for (size_t i = 0; i < 6; i++)
		total += strlen(src[i]) + 1;
	for (size_t i = 0; i < n_lines; i++)
		total += strlen(req->headers[i]) + 1;
	total += a->parts.path_len + 1 + a->parts.query_len + 1;
	if (!(p = a->strings = malloc(total)) ||
	    (n_lines && !(a->lines = calloc(n_lines, sizeof(*a->lines)))))
		return HOOKD_ENOMEM;
	for (size_t i = 0; i < 6; i++) {
		size_t len = strlen(src[i]) + 1;
		memcpy(p + off, src[i], len);
		*dst[i] = p + off;
		off += len;
	}
	for (size_t i = 0; i < n_lines; i++) {
		size_t len = strlen(req->headers[i]) + 1;
		memcpy(p + off, req->headers[i], len);
		a->lines[i] = p + off;
		off += len;
	}
	a->n_lines = n_lines;
	/* The query, NUL-terminated (the URL may go on with a fragment), then the room for
	 * the decoded path (path_decode). */
	memcpy(p + off, a->parts.query, a->parts.query_len);
	p[off + a->parts.query_len] = '\0';
	a->parts.query = p + off;
	off += a->parts.query_len + 1;
	a->path = p + off;
	/* The path was split from req->url: re-point it into the copy. */
	if (a->parts.path_len)
		a->parts.path = a->url + (a->parts.path - req->url);
	return HOOKD_OK;
}

static int plugin_tp_send(struct transport *base, const struct transport_request *req)
{
	struct plugin_tp *tp = (struct plugin_tp *)base;
	char scheme[URL_SCHEME_MAX + 1];
	struct attempt *a;
	struct timeval tv;

	if (!url_plugin_scheme(req->url, scheme))
		return tp->http->send(tp->http, req);
	if (!(a = calloc(1, sizeof(*a))))
		return HOOKD_ENOMEM;
	a->tp = tp;
	a->token = ++tp->next_token;
	a->done = req->done;
	a->arg = req->arg;
	a->body = req->body;
	a->body_len = req->body_len;
	a->attempt = req->attempt;
	a->timeout_ms = req->timeout_ms ? req->timeout_ms : 1;
	a->started_ns = clock_mono_ns();
	memcpy(a->scheme, scheme, sizeof(scheme));
	a->pt = plugins_transport(tp->plugins, scheme);
	evtimer_assign(&a->timer, tp->evbase, attempt_timer_cb, a);
	url_split(req->url, &a->parts);
	if (attempt_copy(a, req) != HOOKD_OK) {
		free(a->lines);
		free(a->strings);
		free(a);
		return HOOKD_ENOMEM;
	}
	a->hnext = *bucket_of(tp, a->token);
	*bucket_of(tp, a->token) = a;
	a->next = tp->all;
	if (tp->all)
		tp->all->prev = a;
	tp->all = a;

	if (!a->pt) {
		char loaded[200];
		plugins_schemes(tp->plugins, loaded, sizeof(loaded));
		attempt_fail(a, 0, "no plugin transport serves '%s://' (loaded: %s)", scheme,
			     loaded[0] ? loaded : "none");
		return HOOKD_OK;
	}
	if (!path_decode(a->parts.path, a->parts.path_len, (char *)a->path)) {
		attempt_fail(a, 0, "plugin %s: the URL's path has a bad or %%00 escape",
			     plugins_ctx_name(a->pt->ctx));
		return HOOKD_OK;
	}
	tv.tv_sec = a->timeout_ms / 1000;
	tv.tv_usec = (a->timeout_ms % 1000) * 1000;
	evtimer_add(&a->timer, &tv);
	if (!a->pt->t->needs_address) {
		attempt_send(a);
		return HOOKD_OK;
	}
	/* A literal, or a name answered at once, goes on (or fails) inside resolve_start. */
	a->state = ATTEMPT_RESOLVING;
	a->dns = resolve_start(tp->resolver, a->parts.host, attempt_resolved, a);
	return HOOKD_OK;
}

/* A plugin's complete(), on the loop (plugins.h queues it). */
static void plugin_tp_complete(void *arg, struct hookd_plugin_ctx *ctx, uint64_t token,
			       const struct hookd_outcome *o)
{
	struct plugin_tp *tp = arg;
	struct attempt *a = attempt_find(tp, token);
	struct transport_result res;

	if (!a || a->state != ATTEMPT_SENT || a->pt->ctx != ctx) {
		const struct recent *r = &tp->recent[token % PLUGIN_RECENT];
		if (a && a->pt && a->pt->ctx != ctx)
			log_warn("plugin %s: complete() for token %llu ignored: that attempt "
				 "(delivery %s) belongs to plugin %s",
				 plugins_ctx_name(ctx), (unsigned long long)token, a->delivery_id,
				 plugins_ctx_name(a->pt->ctx));
		else if (r->token == token && token)
			log_warn("plugin %s: complete() for delivery %s attempt %u ignored: %s",
				 plugins_ctx_name(ctx), r->delivery_id, r->attempt,
				 r->timed_out ? "it came after the host timed the attempt out"
					      : "the attempt was already completed (a second "
						"complete())");
		else
			log_warn("plugin %s: complete() for unknown token %llu ignored",
				 plugins_ctx_name(ctx), (unsigned long long)token);
		return;
	}
	memset(&res, 0, sizeof(res));
	res.retry_after_s = -1;
	res.retry_after_ms = -1;
	res.status = o->status;
	switch (o->result) {
	case HOOKD_SENT:
		res.verdict = TRANSPORT_SENT;
		break;
	case HOOKD_FAILED:
		res.verdict = TRANSPORT_PERMANENT;
		break;
	case HOOKD_RETRY:
		res.verdict = TRANSPORT_RETRY;
		res.retry_after_ms = o->retry_after_ms;
		break;
	default:
		res.verdict = TRANSPORT_RETRY;
		snprintf(res.error, sizeof(res.error), "plugin %s: unknown result %d",
			 plugins_ctx_name(ctx), (int)o->result);
		break;
	}
	if (!res.error[0] && res.verdict != TRANSPORT_SENT)
		snprintf(res.error, sizeof(res.error), "%s",
			 o->message && o->message[0] ? o->message
			 : res.verdict == TRANSPORT_PERMANENT ? "failed (no reason given)"
							      : "failed, to be retried (no reason given)");
	attempt_end(a, &res, 0);
}

static void plugin_tp_destroy(struct transport *base)
{
	struct plugin_tp *tp = (struct plugin_tp *)base;
	if (!tp)
		return;
	plugins_set_complete(tp->plugins, NULL, NULL);
	/* Abandoned as HTTP's are: their deliveries stay pending in the store. The plugins
	 * hear of it (cancel) before their cleanup runs. */
	while (tp->all) {
		struct attempt *a = tp->all;
		attempt_unlink(tp, a);
		if (a->state == ATTEMPT_SENT && a->pt->t->cancel)
			a->pt->t->cancel(a->pt->state, a->token);
		resolve_cancel(a->dns);
		a->dns = NULL;
		attempt_free(a);
	}
	resolver_free(tp->resolver);
	if (tp->http)
		tp->http->destroy(tp->http);
	free(tp);
}

struct transport *transport_plugin_new(struct event_base *base, struct transport *http,
				       struct plugins *plugins, const struct ssrf_policy *ssrf,
				       char *err, size_t errlen)
{
	struct plugin_tp *tp = calloc(1, sizeof(*tp));
	if (!tp) {
		err_set(err, errlen, "out of memory");
		if (http)
			http->destroy(http);
		return NULL;
	}
	tp->base.name = "plugin";
	tp->base.send = plugin_tp_send;
	tp->base.destroy = plugin_tp_destroy;
	tp->evbase = base;
	tp->http = http;
	tp->plugins = plugins;
	if (!(tp->resolver = resolver_new(base, ssrf))) {
		err_set(err, errlen, "out of memory");
		plugin_tp_destroy(&tp->base);
		return NULL;
	}
	plugins_set_complete(plugins, plugin_tp_complete, tp);
	return &tp->base;
}
