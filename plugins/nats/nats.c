/* nats.c - hookd transport plugin: each delivery is published to a NATS subject, with the
 * Standard Webhooks headers as NATS headers; with JetStream, the attempt succeeds only on
 * the stream's publish acknowledgement.
 *
 *   URL      nats://HOST[:PORT]/SUBJECT[?jetstream=1]   (PORT defaults to 4222)
 *   options  plugins.options.nats.jetstream: true       JetStream for every endpoint whose
 *                                                       URL does not say jetstream=0
 *            plugins.options.nats.connect_timeout_ms    default 2000
 *            plugins.options.nats.user, .password, .token   credentials for every server
 *
 * What "sent" means. Core NATS has no acknowledgement: a message is sent once the server
 * has read it, which we know when a PING written after it is answered (libnats'
 * natsConnection_FlushTimeout). A subject nobody subscribes to drops the message, and that
 * is still a success: core NATS promises no more. JetStream (jetstream=1) waits for the
 * PubAck of the stream that stores the subject; no stream (the server answers "no
 * responders"), a negative ack or no ack before the attempt's timeout fail the attempt,
 * retryably. Every message carries Nats-Msg-Id: the webhook-id, so a retry of a message
 * the stream did store is acknowledged as a duplicate and stored once.
 *
 * Threads. libnats blocks on connect and flush, and runs threads of its own. Each server
 * (address and port) has one connection, reused across endpoints and attempts, and one
 * worker thread of ours that owns it: send() on the loop thread builds the message (memory
 * only) and queues it; the worker takes everything queued, connects if it must, publishes
 * the batch and flushes once (one round trip for the batch), then completes each attempt.
 * JetStream acks arrive on a libnats thread (nats_on_ack), which completes those attempts.
 * Reconnection is ours, not libnats': a connection the server closed is closed for good
 * (no library reconnect buffering messages we would report as sent), its unacknowledged
 * JetStream attempts fail at once (nats_on_closed), and the next batch reconnects. A server
 * that is down fails the attempts of the batch retryably; the endpoint's retry schedule
 * decides when to try again. */
#include <hookd/plugin.h>

#include "../common/plugin_url.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NATS_DEFAULT_PORT 4222
/* How long a connect may take when the plugin options do not say: a loopback or LAN
 * server answers in milliseconds; a server that takes longer is as good as down for an
 * attempt whose default timeout is 30 s and which will be retried. */
#define NATS_CONNECT_TIMEOUT_MS 2000
/* NATS has no hard limit on subjects; the server's own protocol parser handles any length,
 * but a subject is a routing key, and the documented recommendation is to stay short. */
#define NATS_SUBJECT_MAX 255
/* Unacknowledged JetStream publishes tracked per connection: buckets of a chained hash by
 * message pointer. Collisions only cost a walk; 256 keeps it short at bench rates. */
#define NATS_PENDING_BUCKETS 256

struct nats_plugin;

/* One attempt queued for a worker (loop thread to worker), owning its message. */
struct nats_job {
	struct nats_job *next;
	uint64_t token;
	natsMsg *msg;
	int jetstream;
	uint32_t timeout_ms;
};

/* A JetStream publish waiting for its ack: msg is the library's (only the key here). */
struct nats_pending {
	struct nats_pending *next;
	natsMsg *msg;
	uint64_t token;
};

/* One server: its connection, its worker, its queue. Listed in the plugin (loop thread);
 * freed at cleanup only, after libnats' threads are gone (their callbacks get it). */
struct nats_conn {
	struct nats_conn *next;
	struct nats_plugin *p;
	char address[64];
	int port;
	char label[80]; /* address:port, bracketed for IPv6 */
	pthread_t thread;
	int started;

	pthread_mutex_t mu; /* the queue, stop and pending */
	pthread_cond_t cv;
	struct nats_job *head, **tail;
	int stop;
	struct nats_pending *pending[NATS_PENDING_BUCKETS];

	/* The worker's connection, also under mu so cleanup can close it to cut short a
	 * flush or ack wait of a server that stopped answering. */
	natsConnection *nc;
	jsCtx *js;
	int closing_nc; /* cleanup is closing nc outside mu: the worker must not free it yet */
};

struct nats_plugin {
	const struct hookd_host *host;
	struct hookd_plugin_ctx *ctx;
	struct hookd_transport transport;
	int jetstream_default;
	int connect_timeout_ms;
	/* Credentials for every server (plugins.options.nats.user/password, .token): owned by
	 * the host, valid until cleanup. NULL when not set. */
	const char *user, *password, *token;
	struct nats_conn *conns; /* loop thread */
	atomic_int closing;	 /* cleanup began: the host is no longer waiting for anything */
	struct hookd_counter *published, *acked, *failed;
};

static void nats_log(struct nats_plugin *p, enum hookd_log_level lvl, const char *fmt, ...)
    HOOKD_PLUGIN_PRINTF(3, 4);

static void nats_log(struct nats_plugin *p, enum hookd_log_level lvl, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	p->host->log(p->ctx, lvl, "%s", line);
}

static void nats_complete(struct nats_plugin *p, uint64_t token, enum hookd_result result,
			  const char *fmt, ...) HOOKD_PLUGIN_PRINTF(4, 5);

/* Ends one attempt (any thread): result and a message formatted like printf. */
static void nats_complete(struct nats_plugin *p, uint64_t token, enum hookd_result result,
			  const char *fmt, ...)
{
	if (atomic_load(&p->closing))
		return;
	char msg[512] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	}
	struct hookd_outcome o = {
	    .size = sizeof o, .result = result, .status = 0, .message = msg, .retry_after_ms = -1};
	struct hookd_counter *n = result == HOOKD_SENT ? p->acked : p->failed;
	if (n)
		p->host->counter_add(n, 1);
	p->host->complete(p->ctx, token, &o);
}

/* libnats' last error on this thread without its "(file.c:123): " prefix, or the status
 * text. */
static const char *nats_error_text(natsStatus s)
{
	natsStatus last = NATS_OK;
	const char *t = nats_GetLastError(&last);
	if (!t || !*t)
		return natsStatus_GetText(s);
	if (t[0] == '(') {
		const char *e = strstr(t, "): ");
		if (e)
			t = e + 3;
	}
	return t;
}

/* ---- URLs ------------------------------------------------------------------------------ */

/* A subject we may publish to: tokens of visible ASCII split by '.', none empty, no
 * wildcards ('*' and '>' subscribe to many subjects; a publish names one). */
static int nats_subject_check(const char *s, char *err, size_t errlen)
{
	size_t n = strlen(s);
	if (n == 0) {
		snprintf(err, errlen, "the subject must not be empty (nats://HOST:PORT/SUBJECT)");
		return -1;
	}
	if (n > NATS_SUBJECT_MAX) {
		snprintf(err, errlen, "the subject is longer than %d bytes", NATS_SUBJECT_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f) {
			snprintf(err, errlen, "the subject must be visible ASCII without spaces");
			return -1;
		}
		if (c == '*' || c == '>') {
			snprintf(err, errlen,
				 "the subject must not contain the wildcards '*' or '>'");
			return -1;
		}
		if (c == '.' && (i == 0 || i + 1 == n || s[i + 1] == '.')) {
			snprintf(err, errlen,
				 "the subject must not have an empty token "
				 "(a leading, trailing or doubled '.')");
			return -1;
		}
	}
	return 0;
}

/* The query's jetstream setting: 1 or 0, or dflt when it does not say. Refuses anything
 * else, so a typo is not silently core NATS. */
static int nats_query_jetstream(const char *query, int dflt, char *err, size_t errlen)
{
	int js = dflt;
	const char *q = query;
	while (q && *q) {
		const char *end = strchr(q, '&');
		size_t len = end ? (size_t)(end - q) : strlen(q);
		if (len == 0) {
			/* "a&&b": nothing to set */
		} else if (len > 10 && strncmp(q, "jetstream=", 10) == 0) {
			const char *v = q + 10;
			size_t vl = len - 10;
			if ((vl == 1 && *v == '1') || (vl == 4 && strncmp(v, "true", 4) == 0))
				js = 1;
			else if ((vl == 1 && *v == '0') || (vl == 5 && strncmp(v, "false", 5) == 0))
				js = 0;
			else {
				snprintf(err, errlen, "jetstream must be 1, 0, true or false");
				return -1;
			}
		} else {
			snprintf(err, errlen,
				 "unknown URL parameter '%.*s' (only jetstream=1 is known)",
				 (int)(len > 40 ? 40 : len), q);
			return -1;
		}
		q = end ? end + 1 : NULL;
	}
	return js;
}

static int nats_check_url(void *state, const char *url, char *err, size_t errlen)
{
	struct nats_plugin *p = state;
	char subject[NATS_SUBJECT_MAX + 2];
	const char *query;
	switch (plugin_url_dest(url, subject, sizeof subject, &query)) {
	case PLUGIN_URL_OK:
		break;
	case PLUGIN_URL_FRAGMENT:
		snprintf(err, errlen, "a NATS URL has no fragment");
		return -1;
	case PLUGIN_URL_TOO_LONG:
		snprintf(err, errlen, "the subject is longer than %d bytes", NATS_SUBJECT_MAX);
		return -1;
	case PLUGIN_URL_NUL:
		snprintf(err, errlen, "the subject must be visible ASCII without spaces");
		return -1;
	default:
		snprintf(err, errlen, "expected nats://HOST:PORT/SUBJECT");
		return -1;
	}
	if (nats_subject_check(subject, err, errlen) != 0)
		return -1;
	if (nats_query_jetstream(query, p->jetstream_default, err, errlen) < 0)
		return -1;
	return 0;
}

/* ---- JetStream acks (libnats' threads) ------------------------------------------------- */

static size_t nats_bucket(const natsMsg *m)
{
	uintptr_t v = (uintptr_t)m;
	return (size_t)((v >> 4) ^ (v >> 12)) % NATS_PENDING_BUCKETS;
}

/* Takes the pending entry of m out, or NULL (cancelled or failed already). c->mu held. */
static struct nats_pending *nats_pending_take(struct nats_conn *c, const natsMsg *m)
{
	struct nats_pending **pp = &c->pending[nats_bucket(m)];
	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->msg == m) {
			struct nats_pending *e = *pp;
			*pp = e->next;
			return e;
		}
	}
	return NULL;
}

static void nats_on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	struct nats_conn *c = closure;
	struct nats_plugin *p = c->p;
	pthread_mutex_lock(&c->mu);
	struct nats_pending *e = nats_pending_take(c, msg);
	pthread_mutex_unlock(&c->mu);
	if (e) {
		const char *subj = natsMsg_GetSubject(msg);
		if (pa && !pae) {
			nats_complete(p, e->token, HOOKD_SENT, "%s", "");
		} else if (pae && pae->Err == NATS_NO_RESPONDERS) {
			nats_complete(p, e->token, HOOKD_RETRY,
				      "JetStream did not acknowledge the publish to %s: no stream "
				      "stores the subject (no responders)",
				      subj);
		} else if (pae && pae->Err == NATS_TIMEOUT) {
			nats_complete(p, e->token, HOOKD_RETRY,
				      "JetStream did not acknowledge the publish to %s in time",
				      subj);
		} else if (pae && pae->ErrCode) {
			nats_complete(p, e->token, HOOKD_RETRY,
				      "JetStream refused the publish to %s: %s (error %d)", subj,
				      pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err),
				      (int)pae->ErrCode);
		} else {
			nats_complete(p, e->token, HOOKD_RETRY,
				      "JetStream did not acknowledge the publish to %s: %s", subj,
				      pae ? natsStatus_GetText(pae->Err) : "no ack");
		}
		free(e);
	}
	natsMsg_Destroy(msg);
}

/* The server closed the connection (we do not let libnats reconnect): the JetStream
 * attempts still waiting cannot be acked on it any more. */
static void nats_on_closed(natsConnection *nc, void *closure)
{
	struct nats_conn *c = closure;
	struct nats_pending *gone = NULL;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < NATS_PENDING_BUCKETS; i++) {
		while (c->pending[i]) {
			struct nats_pending *e = c->pending[i];
			c->pending[i] = e->next;
			e->next = gone;
			gone = e;
		}
	}
	pthread_mutex_unlock(&c->mu);
	while (gone) {
		struct nats_pending *e = gone;
		gone = e->next;
		nats_complete(c->p, e->token, HOOKD_RETRY,
			      "the connection to nats://%s closed before JetStream "
			      "acknowledged the publish",
			      c->label);
		free(e);
	}
}

/* ---- the worker ------------------------------------------------------------------------ */

/* Drops the connection (worker thread). Its pending acks fail through nats_on_closed. */
static void nats_conn_drop(struct nats_conn *c)
{
	pthread_mutex_lock(&c->mu);
	while (c->closing_nc)
		pthread_cond_wait(&c->cv, &c->mu);
	natsConnection *nc = c->nc;
	jsCtx *js = c->js;
	c->nc = NULL;
	c->js = NULL;
	pthread_mutex_unlock(&c->mu);
	if (js)
		jsCtx_Destroy(js);
	if (nc) {
		natsConnection_Close(nc);
		natsConnection_Destroy(nc);
	}
}

/* Connects if there is no open connection (worker thread). 0, or -1 with err. */
static int nats_conn_ensure(struct nats_conn *c, char *err, size_t errlen)
{
	if (c->nc && !natsConnection_IsClosed(c->nc))
		return 0;
	nats_conn_drop(c);

	struct nats_plugin *p = c->p;
	natsOptions *o = NULL;
	char url[128];
	snprintf(url, sizeof url, "nats://%s", c->label);
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, url);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, "hookd");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, p->connect_timeout_ms);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(o, false);
	if (s == NATS_OK)
		s = natsOptions_SetNoEcho(o, true);
	if (s == NATS_OK && p->user)
		s = natsOptions_SetUserInfo(o, p->user, p->password ? p->password : "");
	if (s == NATS_OK && p->token)
		s = natsOptions_SetToken(o, p->token);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, nats_on_closed, c);
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, o);
	if (s == NATS_OK) {
		jsOptions jo;
		jsOptions_Init(&jo);
		jo.PublishAsync.AckHandler = nats_on_ack;
		jo.PublishAsync.AckHandlerClosure = c;
		s = natsConnection_JetStream(&js, nc, &jo);
	}
	if (s != NATS_OK) {
		snprintf(err, errlen, "cannot connect to %s: %s", url, nats_error_text(s));
		jsCtx_Destroy(js);
		natsConnection_Destroy(nc);
		natsOptions_Destroy(o);
		return -1;
	}
	pthread_mutex_lock(&c->mu);
	c->nc = nc;
	c->js = js;
	pthread_mutex_unlock(&c->mu);
	natsOptions_Destroy(o);
	nats_log(p, HOOKD_LOG_INFO, "connected to %s", url);
	return 0;
}

static void nats_job_free(struct nats_job *j)
{
	natsMsg_Destroy(j->msg);
	free(j);
}

/* How long to wait for the server's answer (PONG or PubAck) in an attempt of timeout_ms:
 * 90 % of it, ahead of the host's own timer, so the attempt records why it failed rather
 * than a bare timeout. */
static uint32_t nats_wait_ms(uint32_t timeout_ms)
{
	return timeout_ms > 1000 ? timeout_ms - timeout_ms / 10 : timeout_ms;
}

/* Publishes one batch taken from the queue, flushes once, completes each attempt. */
static void nats_conn_run_batch(struct nats_conn *c, struct nats_job *batch)
{
	struct nats_plugin *p = c->p;
	char err[300];
	uint32_t wait_ms = UINT32_MAX;
	for (struct nats_job *j = batch; j; j = j->next)
		if (nats_wait_ms(j->timeout_ms) < wait_ms)
			wait_ms = nats_wait_ms(j->timeout_ms);

	if (nats_conn_ensure(c, err, sizeof err) != 0) {
		while (batch) {
			struct nats_job *j = batch;
			batch = j->next;
			nats_complete(p, j->token, HOOKD_RETRY, "%s", err);
			nats_job_free(j);
		}
		return;
	}

	struct nats_job *flushing = NULL, **ftail = &flushing;
	while (batch) {
		struct nats_job *j = batch;
		batch = j->next;
		j->next = NULL;
		natsStatus s;
		if (j->jetstream) {
			struct nats_pending *e = malloc(sizeof *e);
			if (!e) {
				nats_complete(p, j->token, HOOKD_RETRY, "out of memory");
				nats_job_free(j);
				continue;
			}
			e->msg = j->msg;
			e->token = j->token;
			size_t b = nats_bucket(j->msg);
			pthread_mutex_lock(&c->mu);
			e->next = c->pending[b];
			c->pending[b] = e;
			pthread_mutex_unlock(&c->mu);
			jsPubOptions po;
			jsPubOptions_Init(&po);
			po.MaxWait = nats_wait_ms(j->timeout_ms);
			natsMsg *m = j->msg;
			s = js_PublishMsgAsync(c->js, &m, &po);
			if (s == NATS_OK) {
				/* the library owns it now; nats_on_ack completes the attempt */
				if (p->published)
					p->host->counter_add(p->published, 1);
				j->msg = NULL;
				free(j);
				continue;
			}
			pthread_mutex_lock(&c->mu);
			struct nats_pending *mine = nats_pending_take(c, j->msg);
			pthread_mutex_unlock(&c->mu);
			free(mine);
			if (mine)
				nats_complete(p, j->token, HOOKD_RETRY,
					      "JetStream publish to %s failed: %s",
					      natsMsg_GetSubject(j->msg), nats_error_text(s));
			nats_job_free(j);
			continue;
		}
		s = natsConnection_PublishMsg(c->nc, j->msg);
		if (s != NATS_OK) {
			nats_complete(p, j->token, HOOKD_RETRY,
				      "publish to %s on nats://%s failed: %s",
				      natsMsg_GetSubject(j->msg), c->label, nats_error_text(s));
			nats_job_free(j);
			continue;
		}
		if (p->published)
			p->host->counter_add(p->published, 1);
		*ftail = j;
		ftail = &j->next;
	}
	if (!flushing)
		return;
	/* The server answered a PING sent after the batch: it has read every message. */
	natsStatus s = natsConnection_FlushTimeout(c->nc, wait_ms);
	if (s != NATS_OK)
		snprintf(err, sizeof err, "nats://%s did not confirm the publish: %s", c->label,
			 nats_error_text(s));
	while (flushing) {
		struct nats_job *j = flushing;
		flushing = j->next;
		if (s == NATS_OK)
			nats_complete(p, j->token, HOOKD_SENT, "%s", "");
		else
			nats_complete(p, j->token, HOOKD_RETRY, "%s", err);
		nats_job_free(j);
	}
}

static void *nats_conn_main(void *arg)
{
	struct nats_conn *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->mu);
		while (!c->stop && !c->head)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->stop) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		struct nats_job *batch = c->head;
		c->head = NULL;
		c->tail = &c->head;
		pthread_mutex_unlock(&c->mu);
		nats_conn_run_batch(c, batch);
	}
	nats_conn_drop(c);
	return NULL;
}

/* ---- the loop thread ------------------------------------------------------------------- */

static struct nats_conn *nats_conn_get(struct nats_plugin *p, const char *address, int port)
{
	for (struct nats_conn *c = p->conns; c; c = c->next)
		if (c->port == port && strcmp(c->address, address) == 0)
			return c;
	if (strlen(address) >= sizeof(((struct nats_conn *)0)->address))
		return NULL;
	struct nats_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->p = p;
	snprintf(c->address, sizeof c->address, "%s", address);
	c->port = port;
	plugin_url_label(c->label, sizeof c->label, address, port);
	c->tail = &c->head;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&c->thread, NULL, nats_conn_main, c) != 0) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return NULL;
	}
	c->started = 1;
	c->next = p->conns;
	p->conns = c;
	return c;
}

static int nats_send(void *state, const struct hookd_send *s)
{
	struct nats_plugin *p = state;
	char err[200];
	if (!s->address)
		return -1;
	const char *subject = s->path[0] == '/' ? s->path + 1 : s->path;
	if (nats_subject_check(subject, err, sizeof err) != 0) {
		nats_log(p, HOOKD_LOG_WARN, "%s: %s", s->url, err);
		return -1;
	}
	int js = nats_query_jetstream(s->query, p->jetstream_default, err, sizeof err);
	if (js < 0) {
		nats_log(p, HOOKD_LOG_WARN, "%s: %s", s->url, err);
		return -1;
	}
	struct nats_conn *c = nats_conn_get(p, s->address, s->port ? s->port : NATS_DEFAULT_PORT);
	if (!c)
		return -1;
	struct nats_job *j = calloc(1, sizeof *j);
	if (!j)
		return -1;
	natsStatus st = natsMsg_Create(&j->msg, subject, NULL, s->body, (int)s->body_len);
	for (size_t i = 0; st == NATS_OK && i < s->n_headers; i++)
		st = natsMsgHeader_Set(j->msg, s->headers[i].name, s->headers[i].value);
	if (st == NATS_OK)
		st = natsMsgHeader_Set(j->msg, "Nats-Msg-Id", s->message_id);
	if (st != NATS_OK) {
		nats_log(p, HOOKD_LOG_WARN, "cannot build the message for %s: %s", s->url,
			 natsStatus_GetText(st));
		nats_job_free(j);
		return -1;
	}
	j->token = s->token;
	j->jetstream = js;
	j->timeout_ms = s->timeout_ms ? s->timeout_ms : 30000;
	pthread_mutex_lock(&c->mu);
	*c->tail = j;
	c->tail = &j->next;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* The host stopped waiting: an attempt still queued is dropped; one in flight finishes and
 * its completion is ignored by the host. */
static void nats_cancel(void *state, uint64_t token)
{
	struct nats_plugin *p = state;
	for (struct nats_conn *c = p->conns; c; c = c->next) {
		pthread_mutex_lock(&c->mu);
		for (struct nats_job **jp = &c->head; *jp; jp = &(*jp)->next) {
			if ((*jp)->token == token) {
				struct nats_job *j = *jp;
				*jp = j->next;
				if (c->tail == &j->next)
					c->tail = jp;
				pthread_mutex_unlock(&c->mu);
				nats_job_free(j);
				return;
			}
		}
		for (size_t i = 0; i < NATS_PENDING_BUCKETS; i++) {
			for (struct nats_pending **ep = &c->pending[i]; *ep; ep = &(*ep)->next) {
				if ((*ep)->token == token) {
					struct nats_pending *e = *ep;
					*ep = e->next;
					pthread_mutex_unlock(&c->mu);
					free(e);
					return;
				}
			}
		}
		pthread_mutex_unlock(&c->mu);
	}
}

/* ---- init and cleanup ------------------------------------------------------------------ */

static int nats_option_bool(const char *v, int dflt, int *out)
{
	if (!v) {
		*out = dflt;
		return 0;
	}
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*out = 1;
	else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static void nats_cleanup(void *state)
{
	struct nats_plugin *p = state;
	if (!p)
		return;
	atomic_store(&p->closing, 1);
	for (struct nats_conn *c = p->conns; c; c = c->next) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		natsConnection *nc = c->nc;
		c->closing_nc = nc != NULL;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		if (!nc)
			continue;
		/* A worker waiting on the server (a flush) returns at once. Not under mu:
		 * libnats' threads take it in nats_on_ack and nats_on_closed. */
		natsConnection_Close(nc);
		pthread_mutex_lock(&c->mu);
		c->closing_nc = 0;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
	for (struct nats_conn *c = p->conns; c; c = c->next)
		if (c->started)
			pthread_join(c->thread, NULL);
	/* libnats' own threads call nats_on_ack and nats_on_closed with our connections:
	 * they must be gone before the connections are freed, and before this object's code
	 * is unloaded. */
	nats_CloseAndWait(5000);
	while (p->conns) {
		struct nats_conn *c = p->conns;
		p->conns = c->next;
		while (c->head) {
			struct nats_job *j = c->head;
			c->head = j->next;
			nats_job_free(j);
		}
		for (size_t i = 0; i < NATS_PENDING_BUCKETS; i++) {
			while (c->pending[i]) {
				struct nats_pending *e = c->pending[i];
				c->pending[i] = e->next;
				free(e);
			}
		}
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
	}
	free(p);
}

static int nats_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		     char *err, size_t errlen)
{
	struct nats_plugin *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->host = host;
	p->ctx = ctx;
	if (nats_option_bool(host->option(ctx, "jetstream"), 0, &p->jetstream_default) != 0) {
		snprintf(err, errlen, "plugins.options.nats.jetstream must be true or false");
		free(p);
		return -1;
	}
	p->connect_timeout_ms = NATS_CONNECT_TIMEOUT_MS;
	p->user = host->option(ctx, "user");
	p->password = host->option(ctx, "password");
	p->token = host->option(ctx, "token");
	if ((p->password && !p->user) || (p->token && p->user)) {
		snprintf(err, errlen,
			 "plugins.options.nats: password needs user, and token goes "
			 "without user");
		free(p);
		return -1;
	}
	const char *ct = host->option(ctx, "connect_timeout_ms");
	if (ct) {
		char *end = NULL;
		long v = strtol(ct, &end, 10);
		if (!*ct || *end || v < 1 || v > 600000) {
			snprintf(err, errlen,
				 "plugins.options.nats.connect_timeout_ms must be a "
				 "number of milliseconds from 1 to 600000");
			free(p);
			return -1;
		}
		p->connect_timeout_ms = (int)v;
	}
	natsStatus s = nats_Open(-1);
	if (s != NATS_OK) {
		snprintf(err, errlen, "libnats did not start: %s", natsStatus_GetText(s));
		free(p);
		return -1;
	}
	p->published = host->counter(ctx, "published", "messages handed to a NATS server");
	p->acked =
	    host->counter(ctx, "sent", "attempts that succeeded (flushed, or acked by JetStream)");
	p->failed = host->counter(ctx, "failed", "attempts that failed (retryable)");
	p->transport = (struct hookd_transport){
	    .size = sizeof p->transport,
	    .scheme = "nats",
	    .needs_address = 1,
	    .check_url = nats_check_url,
	    .send = nats_send,
	    .cancel = nats_cancel,
	};
	if (host->register_transport(ctx, &p->transport) != 0) {
		snprintf(err, errlen, "cannot register the nats:// transport");
		nats_Close();
		free(p);
		return -1;
	}
	*state = p;
	return 0;
}

HOOKD_PLUGIN_DEFINE(.name = "nats", .version = "1.0", .init = nats_init, .cleanup = nats_cleanup,
		    .description = "nats://HOST:PORT/SUBJECT: core NATS publish, or JetStream "
				   "with ack (?jetstream=1)");
