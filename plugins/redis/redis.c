/* redis.c - hookd transport plugin: each delivery is appended to a Redis stream with XADD.
 *
 *   URL      redis://HOST[:PORT]/STREAM[?maxlen=N]   (PORT defaults to 6379)
 *   options  plugins.options.redis.maxlen             trim every stream to about N entries
 *                                                     (XADD MAXLEN ~ N) unless the URL says
 *            plugins.options.redis.connect_timeout_ms default 2000
 *            plugins.options.redis.password, .username  AUTH on every connection
 *   command  XADD STREAM [MAXLEN ~ N] * id <webhook-id> type <event type> body <envelope>
 *                                       headers <the request's headers as a JSON object>
 *
 * The attempt succeeds on XADD's reply (the entry id): Redis has then applied it. An error
 * reply (WRONGTYPE, OOM, ...), a connection that fails or drops, or no connection within
 * connect_timeout_ms fail it retryably with the reason. A consumer de-duplicates on the
 * `id` field: a retry after a lost reply appends the message again, with the same id.
 *
 * hiredis' async API is driven on hookd's own loop: the ev hooks of a redisAsyncContext
 * (addRead, delRead, addWrite, delWrite, cleanup) map to the host's watch_fd, watch_update
 * and unwatch_fd (hiredis' libevent adapter would want the event_base, which the ABI does
 * not hand out, and would tie the plugin to libevent). No threads: everything runs on the
 * loop thread. One connection per server (address and port), shared by every endpoint
 * that names it and pipelined; a connection that failed is dropped and the next send
 * opens a new one. */
#include <hookd/plugin.h>

#include "../common/plugin_early.h"
#include "../common/plugin_url.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIS_DEFAULT_PORT 6379
/* As the nats plugin: a server that takes longer to accept a connection is as good as
 * down for an attempt that will be retried. */
#define REDIS_CONNECT_TIMEOUT_MS 2000
/* Redis keys may be up to 512 MB; a stream name in a URL is a routing key, and a bound
 * keeps a mistyped URL from turning into a huge key. */
#define REDIS_STREAM_MAX 1024

struct redis_plugin;
struct redis_server;

/* One connection (one redisAsyncContext). Freed when hiredis is done with the context
 * (redis_ev_cleanup), or after the watch callback that led there returns. */
struct redis_conn {
	struct redis_plugin *p;
	struct redis_server *srv; /* NULL once the server has a newer connection */
	redisAsyncContext *ac;	  /* NULL once hiredis freed it */
	struct hookd_watch *watch;
	int events; /* HOOKD_FD_* hiredis asked for */
	struct hookd_timer *connect_timer;
	int connected;
	int in_handler;	      /* inside redis_on_fd: free after it returns */
	char why[200];	      /* why we closed it, for the attempts it fails */
	char auth_error[200]; /* the server refused our AUTH: what it said */
};

/* One server named by endpoints, with its current connection (NULL: open on next send). */
struct redis_server {
	struct redis_server *next;
	char address[64];
	int port;
	char label[80]; /* address:port, bracketed for IPv6 */
	struct redis_conn *conn;
};

/* One XADD in flight: the privdata of its reply callback. */
struct redis_req {
	struct redis_req *prev, *next;
	struct redis_plugin *p;
	struct redis_conn *conn;
	uint64_t token;
	int cancelled;
	char stream[64]; /* for messages, cut */
};

struct redis_plugin {
	const struct hookd_host *host;
	struct hookd_plugin_ctx *ctx;
	struct hookd_transport transport;
	long maxlen; /* 0: no trimming */
	uint32_t connect_timeout_ms;
	/* AUTH [username] password on every new connection (plugins.options.redis.username,
	 * .password; the host's, valid until cleanup), NULL when not set. */
	const char *username, *password;
	struct redis_server *servers;
	struct redis_req *reqs;	   /* in flight */
	struct plugin_early *early; /* failures waiting for their 0 ms timer */
	struct hookd_counter *sent, *failed;
	int closing;
};

static void redis_complete(struct redis_plugin *p, uint64_t token, enum hookd_result r,
			   const char *fmt, ...) HOOKD_PLUGIN_PRINTF(4, 5);

static void redis_complete(struct redis_plugin *p, uint64_t token, enum hookd_result r,
			   const char *fmt, ...)
{
	char msg[512] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct hookd_outcome o = {
	    .size = sizeof o, .result = r, .status = 0, .message = msg, .retry_after_ms = -1};
	struct hookd_counter *c = r == HOOKD_SENT ? p->sent : p->failed;
	if (c)
		p->host->counter_add(c, 1);
	p->host->complete(p->ctx, token, &o);
}

/* ---- URLs ------------------------------------------------------------------------------ */

static int redis_stream_check(const char *s, char *err, size_t errlen)
{
	size_t n = strlen(s);
	if (n == 0) {
		snprintf(err, errlen, "the stream must not be empty (redis://HOST:PORT/STREAM)");
		return -1;
	}
	if (n > REDIS_STREAM_MAX) {
		snprintf(err, errlen, "the stream name is longer than %d bytes", REDIS_STREAM_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			snprintf(err, errlen,
				 "the stream name must not contain control characters");
			return -1;
		}
	}
	return 0;
}

/* The query's maxlen (N >= 1), 0 for none, dflt when it does not say, -1 when malformed. */
static long redis_query_maxlen(const char *query, long dflt, char *err, size_t errlen)
{
	long maxlen = dflt;
	const char *q = query;
	while (q && *q) {
		const char *end = strchr(q, '&');
		size_t len = end ? (size_t)(end - q) : strlen(q);
		if (len > 7 && strncmp(q, "maxlen=", 7) == 0) {
			char num[24];
			size_t vl = len - 7;
			char *e = NULL;
			if (vl >= sizeof num) {
				snprintf(err, errlen,
					 "maxlen must be a number from 0 to 1000000000");
				return -1;
			}
			memcpy(num, q + 7, vl);
			num[vl] = '\0';
			long v = strtol(num, &e, 10);
			if (*e || v < 0 || v > 1000000000) {
				snprintf(err, errlen,
					 "maxlen must be a number from 0 to 1000000000");
				return -1;
			}
			maxlen = v;
		} else if (len > 0) {
			snprintf(err, errlen,
				 "unknown URL parameter '%.*s' (only maxlen=N is known)",
				 (int)(len > 40 ? 40 : len), q);
			return -1;
		}
		q = end ? end + 1 : NULL;
	}
	return maxlen;
}

static int redis_check_url(void *state, const char *url, char *err, size_t errlen)
{
	struct redis_plugin *p = state;
	char stream[REDIS_STREAM_MAX + 2];
	const char *query;
	switch (plugin_url_dest(url, stream, sizeof stream, &query)) {
	case PLUGIN_URL_OK:
		break;
	case PLUGIN_URL_FRAGMENT:
		snprintf(err, errlen, "a Redis URL has no fragment");
		return -1;
	case PLUGIN_URL_TOO_LONG:
		snprintf(err, errlen, "the stream name is longer than %d bytes", REDIS_STREAM_MAX);
		return -1;
	case PLUGIN_URL_NUL:
		snprintf(err, errlen, "the stream name must not contain control characters");
		return -1;
	default:
		snprintf(err, errlen, "expected redis://HOST:PORT/STREAM");
		return -1;
	}
	if (redis_stream_check(stream, err, errlen) != 0)
		return -1;
	if (redis_query_maxlen(query, p->maxlen, err, errlen) < 0)
		return -1;
	return 0;
}

/* ---- the hiredis adapter: a redisAsyncContext on the host's loop ----------------------- */

static void redis_conn_free(struct redis_conn *c)
{
	if (c->connect_timer)
		c->p->host->timer_stop(c->p->ctx, c->connect_timer);
	if (c->srv && c->srv->conn == c)
		c->srv->conn = NULL;
	free(c);
}

static void redis_on_fd(int fd, int events, void *arg)
{
	struct redis_conn *c = arg;
	c->in_handler++;
	if ((events & HOOKD_FD_READ) && c->ac)
		redisAsyncHandleRead(c->ac);
	if ((events & HOOKD_FD_WRITE) && c->ac)
		redisAsyncHandleWrite(c->ac);
	c->in_handler--;
	if (!c->ac && !c->in_handler)
		redis_conn_free(c);
}

static void redis_ev_set(struct redis_conn *c, int events)
{
	struct redis_plugin *p = c->p;
	if (events == c->events)
		return;
	c->events = events;
	if (!c->ac)
		return;
	if (!c->watch)
		c->watch = p->host->watch_fd(p->ctx, c->ac->c.fd, events, redis_on_fd, c);
	else
		p->host->watch_update(p->ctx, c->watch, events);
}

static void redis_ev_add_read(void *priv)
{
	struct redis_conn *c = priv;
	redis_ev_set(c, c->events | HOOKD_FD_READ);
}

static void redis_ev_del_read(void *priv)
{
	struct redis_conn *c = priv;
	redis_ev_set(c, c->events & ~HOOKD_FD_READ);
}

static void redis_ev_add_write(void *priv)
{
	struct redis_conn *c = priv;
	redis_ev_set(c, c->events | HOOKD_FD_WRITE);
}

static void redis_ev_del_write(void *priv)
{
	struct redis_conn *c = priv;
	redis_ev_set(c, c->events & ~HOOKD_FD_WRITE);
}

/* hiredis frees the context right after this (having failed its pending replies first):
 * the connection is done. */
static void redis_ev_cleanup(void *priv)
{
	struct redis_conn *c = priv;
	if (c->watch) {
		c->p->host->unwatch_fd(c->p->ctx, c->watch);
		c->watch = NULL;
	}
	c->ac = NULL;
	if (c->srv && c->srv->conn == c)
		c->srv->conn = NULL;
	if (!c->in_handler)
		redis_conn_free(c);
}

static void redis_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_conn *c = ac->ev.data;
	if (c->connect_timer) {
		c->p->host->timer_stop(c->p->ctx, c->connect_timer);
		c->connect_timer = NULL;
	}
	if (status == REDIS_OK) {
		c->connected = 1;
		if (c->srv)
			c->p->host->log(c->p->ctx, HOOKD_LOG_INFO, "connected to redis://%s",
					c->srv->label);
	}
	/* On failure hiredis fails the queued commands and frees the context. */
}

static void redis_on_connect_timeout(void *arg)
{
	struct redis_conn *c = arg;
	c->connect_timer = NULL;
	snprintf(c->why, sizeof c->why, "no connection within %u ms",
		 (unsigned)c->p->connect_timeout_ms);
	if (c->srv && c->srv->conn == c)
		c->srv->conn = NULL;
	if (c->ac)
		redisAsyncFree(c->ac); /* fails the queued commands, then redis_ev_cleanup */
}

/* AUTH's reply: a refusal is kept for the attempts behind it (their XADDs are refused
 * with NOAUTH, which says less). */
static void redis_on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_conn *c = privdata;
	redisReply *rep = reply;
	if (rep && rep->type == REDIS_REPLY_ERROR)
		snprintf(c->auth_error, sizeof c->auth_error, "%.*s",
			 (int)(rep->len > 190 ? 190 : rep->len), rep->str);
}

static struct redis_conn *redis_conn_open(struct redis_plugin *p, struct redis_server *srv,
					  char *err, size_t errlen)
{
	redisAsyncContext *ac = redisAsyncConnect(srv->address, srv->port);
	if (!ac) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (ac->err) {
		snprintf(err, errlen, "cannot connect to redis://%s: %s", srv->label, ac->errstr);
		redisAsyncFree(ac);
		return NULL;
	}
	struct redis_conn *c = calloc(1, sizeof *c);
	if (!c) {
		redisAsyncFree(ac);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->p = p;
	c->srv = srv;
	c->ac = ac;
	ac->ev.data = c;
	ac->ev.addRead = redis_ev_add_read;
	ac->ev.delRead = redis_ev_del_read;
	ac->ev.addWrite = redis_ev_add_write;
	ac->ev.delWrite = redis_ev_del_write;
	ac->ev.cleanup = redis_ev_cleanup;
	redisAsyncSetConnectCallback(ac, redis_on_connect);
	if (p->password) {
		/* First on the connection: the XADDs pipelined behind it run authenticated. */
		const char *argv[3] = {"AUTH", p->username ? p->username : p->password,
				       p->password};
		size_t argl[3] = {4, strlen(argv[1]), strlen(p->password)};
		redisAsyncCommandArgv(ac, redis_on_auth, c, p->username ? 3 : 2, argv, argl);
	}
	c->connect_timer =
	    p->host->timer_start(p->ctx, p->connect_timeout_ms, redis_on_connect_timeout, c);
	srv->conn = c;
	return c;
}

/* ---- attempts -------------------------------------------------------------------------- */

static void redis_req_unlink(struct redis_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		r->p->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_req *r = privdata;
	struct redis_plugin *p = r->p;
	struct redis_conn *c = r->conn;
	redisReply *rep = reply;
	redis_req_unlink(r);
	if (!r->cancelled && !p->closing) {
		if (!rep) {
			const char *why = c->why[0]			? c->why
					  : ac->errstr && ac->errstr[0] ? ac->errstr
									: "connection closed";
			if (c->srv)
				redis_complete(p, r->token, HOOKD_RETRY,
					       "XADD %s on redis://%s: %s", r->stream,
					       c->srv->label, why);
			else
				redis_complete(p, r->token, HOOKD_RETRY, "XADD %s: %s", r->stream,
					       why);
		} else if (rep->type == REDIS_REPLY_ERROR && c->auth_error[0]) {
			redis_complete(p, r->token, HOOKD_RETRY, "redis://%s refused AUTH: %s",
				       c->srv ? c->srv->label : "", c->auth_error);
		} else if (rep->type == REDIS_REPLY_ERROR) {
			redis_complete(p, r->token, HOOKD_RETRY, "XADD %s: %.*s", r->stream,
				       (int)(rep->len > 300 ? 300 : rep->len), rep->str);
		} else if (rep->type == REDIS_REPLY_STRING) {
			redis_complete(p, r->token, HOOKD_SENT, "%s", "");
		} else {
			redis_complete(p, r->token, HOOKD_RETRY,
				       "XADD %s: unexpected reply type %d", r->stream, rep->type);
		}
	}
	if (!rep && c->srv && c->srv->conn == c)
		c->srv->conn = NULL; /* the next send opens a new connection */
	free(r);
}

/* A failure found in send(), completed from the loop (plugin_early.h). */
static void redis_early_complete(void *owner, uint64_t token, const char *msg)
{
	redis_complete(owner, token, HOOKD_RETRY, "%s", msg);
}

static int redis_fail_soon(struct redis_plugin *p, uint64_t token, const char *msg)
{
	return plugin_fail_soon(p->host, p->ctx, &p->early, redis_early_complete, p, token, msg);
}

/* A growable text buffer for the headers' JSON. */
struct redis_buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void redis_buf_put(struct redis_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->len + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void redis_buf_json_str(struct redis_buf *b, const char *s)
{
	redis_buf_put(b, "\"", 1);
	for (const char *c = s; *c; c++) {
		size_t run = strcspn(c, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r"
					"\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b"
					"\x1c\x1d\x1e\x1f");
		redis_buf_put(b, c, run);
		c += run;
		if (!*c)
			break;
		char esc[8];
		if (*c == '"' || *c == '\\')
			snprintf(esc, sizeof esc, "\\%c", *c);
		else
			snprintf(esc, sizeof esc, "\\u%04x", (unsigned char)*c);
		redis_buf_put(b, esc, strlen(esc));
	}
	redis_buf_put(b, "\"", 1);
}

/* {"name":"value",...} of the request's headers, in their order; NULL on out of memory.
 * The caller frees it. */
static char *redis_headers_json(const struct hookd_send *s, size_t *out_len)
{
	struct redis_buf b = {0};
	redis_buf_put(&b, "{", 1);
	for (size_t i = 0; i < s->n_headers; i++) {
		if (i)
			redis_buf_put(&b, ",", 1);
		redis_buf_json_str(&b, s->headers[i].name);
		redis_buf_put(&b, ":", 1);
		redis_buf_json_str(&b, s->headers[i].value);
	}
	redis_buf_put(&b, "}", 1);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*out_len = b.len;
	return b.p;
}

static struct redis_server *redis_server_get(struct redis_plugin *p, const char *address, int port)
{
	for (struct redis_server *s = p->servers; s; s = s->next)
		if (s->port == port && strcmp(s->address, address) == 0)
			return s;
	if (strlen(address) >= sizeof(((struct redis_server *)0)->address))
		return NULL;
	struct redis_server *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	snprintf(s->address, sizeof s->address, "%s", address);
	s->port = port;
	plugin_url_label(s->label, sizeof s->label, address, port);
	s->next = p->servers;
	p->servers = s;
	return s;
}

static int redis_send(void *state, const struct hookd_send *s)
{
	struct redis_plugin *p = state;
	char err[300];
	if (!s->address)
		return -1;
	const char *stream = s->path[0] == '/' ? s->path + 1 : s->path;
	if (redis_stream_check(stream, err, sizeof err) != 0)
		return redis_fail_soon(p, s->token, err);
	long maxlen = redis_query_maxlen(s->query, p->maxlen, err, sizeof err);
	if (maxlen < 0)
		return redis_fail_soon(p, s->token, err);
	struct redis_server *srv =
	    redis_server_get(p, s->address, s->port ? s->port : REDIS_DEFAULT_PORT);
	if (!srv)
		return -1;
	struct redis_conn *c = srv->conn;
	if (!c && !(c = redis_conn_open(p, srv, err, sizeof err)))
		return redis_fail_soon(p, s->token, err);

	size_t hlen = 0;
	char *headers = redis_headers_json(s, &hlen);
	struct redis_req *r = calloc(1, sizeof *r);
	if (!headers || !r) {
		free(headers);
		free(r);
		return -1;
	}
	r->p = p;
	r->conn = c;
	r->token = s->token;
	snprintf(r->stream, sizeof r->stream, "%s", stream);

	char maxbuf[24];
	const char *argv[16];
	size_t argl[16];
	int n = 0;
#define REDIS_ARG(str, l) (argv[n] = (str), argl[n] = (l), n++)
	REDIS_ARG("XADD", 4);
	REDIS_ARG(stream, strlen(stream));
	if (maxlen > 0) {
		snprintf(maxbuf, sizeof maxbuf, "%ld", maxlen);
		REDIS_ARG("MAXLEN", 6);
		REDIS_ARG("~", 1);
		REDIS_ARG(maxbuf, strlen(maxbuf));
	}
	REDIS_ARG("*", 1);
	REDIS_ARG("id", 2);
	REDIS_ARG(s->message_id, strlen(s->message_id));
	const char *etype = s->event_type ? s->event_type : "";
	REDIS_ARG("type", 4);
	REDIS_ARG(etype, strlen(etype));
	REDIS_ARG("body", 4);
	REDIS_ARG(s->body, s->body_len);
	REDIS_ARG("headers", 7);
	REDIS_ARG(headers, hlen);
#undef REDIS_ARG
	int rc = redisAsyncCommandArgv(c->ac, redis_on_reply, r, n, argv, argl);
	free(headers);
	if (rc != REDIS_OK) {
		/* the context is going away (disconnecting): the next send opens a new one */
		if (srv->conn == c)
			srv->conn = NULL;
		free(r);
		snprintf(err, sizeof err, "redis://%s: the connection is closing, try again",
			 srv->label);
		return redis_fail_soon(p, s->token, err);
	}
	r->next = p->reqs;
	if (p->reqs)
		p->reqs->prev = r;
	p->reqs = r;
	return 0;
}

/* The host gave up on token (timeout): its reply, if it ever comes, is dropped, and the
 * connection, which did not answer in time, is closed so the next send opens a new one. */
static void redis_cancel(void *state, uint64_t token)
{
	struct redis_plugin *p = state;
	for (struct redis_req *r = p->reqs; r; r = r->next) {
		if (r->token == token && !r->cancelled) {
			r->cancelled = 1;
			struct redis_conn *c = r->conn;
			if (c->srv && c->srv->conn == c) {
				c->srv->conn = NULL;
				snprintf(c->why, sizeof c->why,
					 "closed after an attempt timed out on it");
				if (c->ac && !p->closing)
					redisAsyncDisconnect(c->ac);
			}
			return;
		}
	}
}

/* ---- init and cleanup ------------------------------------------------------------------ */

static void redis_cleanup(void *state)
{
	struct redis_plugin *p = state;
	if (!p)
		return;
	p->closing = 1;
	/* Each redisAsyncFree fails its replies (dropped: closing) and ends in
	 * redis_ev_cleanup, which frees the connection. */
	for (struct redis_server *s = p->servers; s; s = s->next) {
		if (s->conn && s->conn->ac) {
			struct redis_conn *c = s->conn;
			s->conn = NULL;
			redisAsyncFree(c->ac);
		}
	}
	/* Connections no longer current but still closing (after a cancel) */
	while (p->reqs) {
		struct redis_conn *c = p->reqs->conn;
		if (c->ac)
			redisAsyncFree(c->ac);
		else {
			struct redis_req *r = p->reqs;
			redis_req_unlink(r);
			free(r);
		}
	}
	plugin_early_drop_all(p->host, p->ctx, &p->early);
	while (p->servers) {
		struct redis_server *s = p->servers;
		p->servers = s->next;
		free(s);
	}
	free(p);
}

static int redis_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		      char *err, size_t errlen)
{
	struct redis_plugin *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->host = host;
	p->ctx = ctx;
	p->connect_timeout_ms = REDIS_CONNECT_TIMEOUT_MS;
	const char *v = host->option(ctx, "maxlen");
	if (v) {
		char *e = NULL;
		long n = strtol(v, &e, 10);
		if (!*v || *e || n < 0 || n > 1000000000) {
			snprintf(err, errlen,
				 "plugins.options.redis.maxlen must be a number from 0 "
				 "to 1000000000");
			free(p);
			return -1;
		}
		p->maxlen = n;
	}
	v = host->option(ctx, "connect_timeout_ms");
	if (v) {
		char *e = NULL;
		long n = strtol(v, &e, 10);
		if (!*v || *e || n < 1 || n > 600000) {
			snprintf(err, errlen,
				 "plugins.options.redis.connect_timeout_ms must be a "
				 "number of milliseconds from 1 to 600000");
			free(p);
			return -1;
		}
		p->connect_timeout_ms = (uint32_t)n;
	}
	p->username = host->option(ctx, "username");
	p->password = host->option(ctx, "password");
	if (p->username && !p->password) {
		snprintf(err, errlen, "plugins.options.redis.username needs a password");
		free(p);
		return -1;
	}
	p->sent = host->counter(ctx, "sent", "XADDs Redis answered with an entry id");
	p->failed = host->counter(ctx, "failed", "attempts that failed (retryable)");
	p->transport = (struct hookd_transport){
	    .size = sizeof p->transport,
	    .scheme = "redis",
	    .needs_address = 1,
	    .check_url = redis_check_url,
	    .send = redis_send,
	    .cancel = redis_cancel,
	};
	if (host->register_transport(ctx, &p->transport) != 0) {
		snprintf(err, errlen, "cannot register the redis:// transport");
		free(p);
		return -1;
	}
	*state = p;
	return 0;
}

HOOKD_PLUGIN_DEFINE(.name = "redis", .version = "1.0", .init = redis_init, .cleanup = redis_cleanup,
		    .description = "redis://HOST:PORT/STREAM: XADD with the message id as a field");
