/* auth.c - decorating HTTP attempts with an endpoint's auth scheme: the wait for a scheme
 * that fetches credentials, and the one resend after a 401 (auth.h). */
#include "auth.h"

#include "err.h"
#include "header.h"
#include "log.h"
#include "plugin.h"
#include "registry.h"
#include "transport.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Headers one decorate may add: an Authorization line and a few beside it (a date, a key
 * id, a digest); more is a plugin gone wrong, not a scheme. */
#define AUTH_MAX_HEADERS 16

/* What decorate() fills through auth_out_add_header and auth_out_client_cert. */
struct hookd_auth_out {
	int open;             /* a decorate() is running: the functions act only then */
	char *lines[AUTH_MAX_HEADERS]; /* "Name: value" (owned) */
	size_t n;
	char *cert, *key;     /* PEM file paths (owned), or NULL */
	char problem[192];    /* a header refused: the attempt fails with this */
};

enum auth_try_state {
	AUTH_DECORATING,      /* in decorate() */
	AUTH_PENDING,         /* waiting for auth_resume(token) or the timeout */
	AUTH_SENDING,         /* out on the transport */
	AUTH_ENDING,          /* failed; done() is called from the timer, "later" */
};

/* One attempt in progress. */
struct auth_try {
	struct auth *a;
	struct transport *t;
	const struct endpoint *ep; /* the caller's delivery holds it until done */
	struct endpoint_auth *ea;  /* reference held */
	char *url, *app_id, *ep_id;
	char *msg_id, *dlv_id, *event_type; /* handed on to a plugin transport; may be NULL */
	/* The endpoint's TLS options, borrowed from its stored form, of which a reference is
	 * held (json): the send comes after decorate, which may wait for credentials, and an
	 * endpoint changed meanwhile gets a new stored form, the attempt keeps the old one. The
	 * proxy is copied (it may be delivery.proxy's). NULL when unset. */
	json_t *json;
	const char *tls_cert_pem, *tls_key_pem, *tls_ca_pem, *tls_pin;
	char *proxy;
	uint32_t attempt;
	char **lines;              /* the request's own header lines (owned copies) */
	struct hookd_header *hdrs; /* the same split into name and value, for the plugin */
	size_t n_lines;
	const char *body;          /* the caller's, valid until done */
	size_t body_len;
	uint32_t connect_timeout_ms, timeout_ms;
	void (*done)(void *arg, const struct transport_result *res);
	void *arg;
	uint64_t token;            /* of the last decorate() */
	int refreshed;             /* the one decorate with refresh = 1 after a 401 was made */
	enum auth_try_state state;
	struct event *timer;       /* the PENDING timeout, or the deferred end */
	struct hookd_auth_out out;
	char error[256];           /* AUTH_ENDING: the attempt's error */
	struct auth_try *prev, *next;
};

/* A resume from a plugin, on its way to the loop. */
struct auth_resumed {
	uint64_t token;
	char *error; /* NULL: the credentials are there */
	struct auth_resumed *next;
};

struct auth {
	struct event_base *base;
	struct event *resume_ev;
	struct auth_try *tries;     /* in progress; few wait at once, so lookups are a walk */
	uint64_t next_token;
	struct auth_resumed *queue; /* guarded by auth_lock */
};

/* The resumes' way in from any thread: the current struct auth, and its queue. */
static pthread_mutex_t auth_lock = PTHREAD_MUTEX_INITIALIZER;
static struct auth *auth_current;

static void auth_try_decorate(struct auth_try *t, int refresh);

/* ---- the out functions ---------------------------------------------------------------- */

static void auth_out_refuse(struct hookd_auth_out *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void auth_out_refuse(struct hookd_auth_out *out, const char *fmt, ...)
{
	va_list ap;
	if (out->problem[0])
		return; /* the first one says it */
	va_start(ap, fmt);
	vsnprintf(out->problem, sizeof(out->problem), fmt, ap);
	va_end(ap);
}

/* The header rules of an endpoint's own headers (header.h): a scheme may not set what
 * hookd sets itself, the signature above all, nor inject lines. */
void auth_out_add_header(struct hookd_auth_out *out, const char *name, const char *value)
{
	char show[ERR_QUOTE_MAX];
	size_t len;
	char *line;

	if (!out || !out->open || !name || !value)
		return;
	if (header_name_check(name, strlen(name)) != HOOKD_OK)
		return auth_out_refuse(out, "header name %s is not valid",
				       err_quote(name, show, sizeof(show)));
	if (header_name_reserved(name))
		return auth_out_refuse(out, "header %s is set by hookd itself", name);
	if (header_value_check(value, strlen(value)) != HOOKD_OK)
		return auth_out_refuse(out, "the value of header %s has control characters or "
				       "is over %d bytes", name, HEADER_VALUE_MAX);
	if (out->n == AUTH_MAX_HEADERS)
		return auth_out_refuse(out, "more than %d headers", AUTH_MAX_HEADERS);
	len = strlen(name) + strlen(value) + 3;
	if (!(line = malloc(len)))
		return auth_out_refuse(out, "out of memory");
	snprintf(line, len, "%s: %s", name, value);
	out->lines[out->n++] = line;
}

void auth_out_client_cert(struct hookd_auth_out *out, const char *cert_path,
			  const char *key_path)
{
	if (!out || !out->open)
		return;
	free(out->cert);
	free(out->key);
	out->cert = cert_path ? strdup(cert_path) : NULL;
	out->key = key_path ? strdup(key_path) : NULL;
	if ((cert_path && !out->cert) || (key_path && !out->key))
		auth_out_refuse(out, "out of memory");
}

static void auth_out_clear(struct hookd_auth_out *out)
{
	for (size_t i = 0; i < out->n; i++)
		free(out->lines[i]);
	free(out->cert);
	free(out->key);
	memset(out, 0, sizeof(*out));
}

/* ---- an attempt ----------------------------------------------------------------------- */

static void auth_try_free(struct auth_try *t)
{
	struct auth *a = t->a;
	if (t->prev)
		t->prev->next = t->next;
	else if (a->tries == t)
		a->tries = t->next;
	if (t->next)
		t->next->prev = t->prev;
	if (t->timer)
		event_free(t->timer);
	auth_out_clear(&t->out);
	for (size_t i = 0; i < t->n_lines; i++) {
		free(t->lines[i]);
		free((char *)t->hdrs[i].name);
	}
	free(t->lines);
	free(t->hdrs);
	endpoint_auth_unref(t->ea);
	free(t->url);
	free(t->app_id);
	free(t->ep_id);
	free(t->msg_id);
	free(t->dlv_id);
	free(t->event_type);
	json_decref(t->json);
	free(t->proxy);
	free(t);
}

/* Ends the attempt now with its error (no response): retryable, like a connection that
 * failed. */
static void auth_try_end(struct auth_try *t)
{
	struct transport_result res;
	memset(&res, 0, sizeof(res));
	res.verdict = TRANSPORT_RETRY;
	res.retry_after_s = -1;
	res.retry_after_ms = -1;
	snprintf(res.error, sizeof(res.error), "%s", t->error);
	t->done(t->arg, &res);
	auth_try_free(t);
}

static void auth_try_fail(struct auth_try *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Ends the attempt with an error from the timer, never from inside auth_send or a
 * decorate, so done() always comes later, as the transport contract says. */
static void auth_try_fail(struct auth_try *t, const char *fmt, ...)
{
	struct timeval zero = {0, 0};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->error, sizeof(t->error), fmt, ap);
	va_end(ap);
	t->state = AUTH_ENDING;
	evtimer_add(t->timer, &zero);
}

static void auth_try_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_try *t = arg;
	if (t->state == AUTH_PENDING)
		snprintf(t->error, sizeof(t->error),
			 "auth scheme %s: no credentials within %u ms", t->ea->scheme,
			 (unsigned)t->timeout_ms);
	auth_try_end(t);
}

static void auth_try_sent(void *arg, const struct transport_result *res)
{
	struct auth_try *t = arg;
	const struct plugin_auth *pa = t->ea->pa;

	if (res->verdict == TRANSPORT_BY_STATUS && res->status == 401 && !t->refreshed && pa &&
	    pa->a->refresh_on_401) {
		/* Credentials the receiver no longer takes (a revoked token): fresh ones, and the
		 * same request again, before the attempt counts. */
		t->refreshed = 1;
		auth_try_decorate(t, 1);
		return;
	}
	t->done(t->arg, res);
	auth_try_free(t);
}

/* true if line ("Name: value") sets header name (case-insensitive). */
static int auth_line_names(const char *line, const char *name_line)
{
	size_t n = strcspn(name_line, ":");
	return strncasecmp(line, name_line, n) == 0 && line[n] == ':';
}

/* The request's own lines but those the scheme replaces, then the scheme's. */
static void auth_try_send(struct auth_try *t)
{
	const char *lines[t->n_lines + AUTH_MAX_HEADERS + 1];
	struct transport_request req;
	size_t n = 0;

	for (size_t i = 0; i < t->n_lines; i++) {
		size_t j;
		for (j = 0; j < t->out.n && !auth_line_names(t->lines[i], t->out.lines[j]); j++)
			;
		if (j == t->out.n)
			lines[n++] = t->lines[i];
	}
	for (size_t j = 0; j < t->out.n; j++)
		lines[n++] = t->out.lines[j];
	memset(&req, 0, sizeof(req));
	req.url = t->url;
	req.headers = lines;
	req.n_headers = n;
	req.body = t->body;
	req.body_len = t->body_len;
	req.connect_timeout_ms = t->connect_timeout_ms;
	req.timeout_ms = t->timeout_ms;
	req.tls_cert_pem = t->tls_cert_pem;
	req.tls_key_pem = t->tls_key_pem;
	req.tls_ca_pem = t->tls_ca_pem;
	req.tls_pin = t->tls_pin;
	req.proxy = t->proxy;
	req.auth_cert_path = t->out.cert;
	req.auth_key_path = t->out.key;
	req.done = auth_try_sent;
	req.arg = t;
	req.app_id = t->app_id;
	req.endpoint_id = t->ep_id;
	req.message_id = t->msg_id;
	req.delivery_id = t->dlv_id;
	req.event_type = t->event_type;
	req.attempt = t->attempt;
	t->state = AUTH_SENDING;
	if (t->t->send(t->t, &req) != HOOKD_OK)
		auth_try_fail(t, "could not start the request");
}

/* What the try that was answered 401 carried: the request's own headers but those the
 * scheme replaced, then the scheme's (prev's lines, cut in place at their ':'), so a
 * refresh can tell which credentials were refused (a token fetched since is kept).
 * Returns how many it wrote into hdrs. */
static size_t auth_try_sent_headers(const struct auth_try *t, struct hookd_auth_out *prev,
				    struct hookd_header *hdrs)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n_lines; i++) {
		size_t j;
		for (j = 0; j < prev->n && !auth_line_names(t->lines[i], prev->lines[j]); j++)
			;
		if (j == prev->n)
			hdrs[n++] = t->hdrs[i];
	}
	for (size_t j = 0; j < prev->n; j++) {
		char *line = prev->lines[j], *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		hdrs[n].name = line;
		hdrs[n].value = colon + 1 + (colon[1] == ' ');
		n++;
	}
	return n;
}

static void auth_try_decorate(struct auth_try *t, int refresh)
{
	const struct plugin_auth *pa = t->ea->pa;
	struct hookd_auth_request r;
	struct hookd_auth_out prev;
	struct hookd_header sent[t->n_lines + AUTH_MAX_HEADERS + 1];
	char err[256] = "";
	enum hookd_auth_status st;

	if (!pa) {
		auth_try_fail(t, "auth scheme %s is not loaded (no plugin registers it)",
			      t->ea->scheme);
		return;
	}
	if (t->ep->deleted) {
		/* Deleted while this attempt waited (for credentials, or for the resend after a
		 * 401): nothing more goes to it. */
		auth_try_fail(t, "endpoint deleted while its auth scheme %s was getting "
			      "credentials", t->ea->scheme);
		return;
	}
	prev = t->out; /* what the last try carried: the refresh's headers */
	memset(&t->out, 0, sizeof(t->out));
	memset(&r, 0, sizeof(r));
	r.size = sizeof(r);
	r.token = t->token = ++t->a->next_token;
	r.app_id = t->app_id;
	r.endpoint_id = t->ep_id;
	r.options = t->ea->opts;
	r.n_options = t->ea->n_opts;
	r.method = "POST";
	r.url = t->url;
	r.headers = refresh ? sent : t->hdrs;
	r.n_headers = refresh ? auth_try_sent_headers(t, &prev, sent) : t->n_lines;
	r.body = t->body;
	r.body_len = t->body_len;
	r.refresh = refresh;
	r.out = &t->out;
	t->state = AUTH_DECORATING;
	t->out.open = 1;
	st = pa->a->decorate(pa->state, &r, err, sizeof(err));
	t->out.open = 0;
	auth_out_clear(&prev);
	err[sizeof(err) - 1] = '\0';
	switch (st) {
	case HOOKD_AUTH_DONE:
		if (t->out.problem[0])
			auth_try_fail(t, "auth scheme %s: %s", t->ea->scheme, t->out.problem);
		else
			auth_try_send(t);
		return;
	case HOOKD_AUTH_PENDING: {
		struct timeval tv = {(time_t)(t->timeout_ms / 1000),
				     (suseconds_t)(t->timeout_ms % 1000) * 1000};
		t->state = AUTH_PENDING;
		evtimer_add(t->timer, &tv);
		return;
	}
	case HOOKD_AUTH_ERROR:
		break;
	default:
		snprintf(err, sizeof(err), "decorate answered %d, which is no status", (int)st);
		break;
	}
	auth_try_fail(t, "auth scheme %s: %s", t->ea->scheme, err[0] ? err : "failed");
}

/* A copy of s, or of NULL: 0 when out of memory. */
static int auth_dup(char **dst, const char *s)
{
	*dst = s ? strdup(s) : NULL;
	return !s || *dst;
}

/* Copies the request's lines, and each split at its first ':' for the plugin. */
static int auth_try_copy_lines(struct auth_try *t, const struct transport_request *req)
{
	if (!(t->lines = calloc(req->n_headers + 1, sizeof(*t->lines))) ||
	    !(t->hdrs = calloc(req->n_headers + 1, sizeof(*t->hdrs))))
		return HOOKD_ENOMEM;
	for (size_t i = 0; i < req->n_headers; i++) {
		const char *line = req->headers[i], *colon = strchr(line, ':');
		size_t n = colon ? (size_t)(colon - line) : strlen(line);
		char *name;
		if (!(t->lines[i] = strdup(line)))
			return HOOKD_ENOMEM;
		if (!(name = strndup(line, n))) {
			free(t->lines[i]);
			return HOOKD_ENOMEM;
		}
		t->hdrs[i].name = name;
		t->hdrs[i].value = t->lines[i] + n + (colon ? 1 : 0);
		while (*t->hdrs[i].value == ' ')
			t->hdrs[i].value++;
		t->n_lines = i + 1;
	}
	return HOOKD_OK;
}

int auth_send(struct auth *a, struct transport *tr, const struct endpoint *ep,
	      const struct transport_request *req)
{
	struct auth_try *t = calloc(1, sizeof(*t));

	if (!t)
		return HOOKD_ENOMEM;
	t->a = a;
	t->t = tr;
	t->ep = ep;
	t->ea = ep->auth;
	endpoint_auth_ref(t->ea);
	t->body = req->body;
	t->body_len = req->body_len;
	t->connect_timeout_ms = req->connect_timeout_ms;
	t->timeout_ms = req->timeout_ms;
	t->done = req->done;
	t->arg = req->arg;
	t->next = a->tries;
	if (a->tries)
		a->tries->prev = t;
	a->tries = t;
	t->attempt = req->attempt;
	t->json = json_incref(ep->json);
	t->tls_cert_pem = req->tls_cert_pem;
	t->tls_key_pem = req->tls_key_pem;
	t->tls_ca_pem = req->tls_ca_pem;
	t->tls_pin = req->tls_pin;
	if (!(t->url = strdup(req->url)) || !(t->app_id = strdup(ep->app_id)) ||
	    !(t->ep_id = strdup(ep->id)) || !auth_dup(&t->msg_id, req->message_id) ||
	    !auth_dup(&t->dlv_id, req->delivery_id) ||
	    !auth_dup(&t->event_type, req->event_type) || !auth_dup(&t->proxy, req->proxy) ||
	    auth_try_copy_lines(t, req) != HOOKD_OK ||
	    !(t->timer = evtimer_new(a->base, auth_try_timer_cb, t))) {
		auth_try_free(t);
		return HOOKD_ENOMEM;
	}
	auth_try_decorate(t, 0);
	return HOOKD_OK;
}

/* ---- resumes -------------------------------------------------------------------------- */

void auth_resume(uint64_t token, const char *error)
{
	struct auth_resumed *r = calloc(1, sizeof(*r));

	if (r && error && !(r->error = strdup(error))) {
		free(r);
		r = NULL;
	}
	pthread_mutex_lock(&auth_lock);
	if (auth_current && r) {
		r->token = token;
		r->next = auth_current->queue;
		auth_current->queue = r;
		event_active(auth_current->resume_ev, EV_READ, 0);
		r = NULL;
	}
	pthread_mutex_unlock(&auth_lock);
	if (r) {
		/* Shut down, or out of memory: the attempt's timeout ends it. */
		free(r->error);
		free(r);
	}
}

static struct auth_try *auth_find_pending(struct auth *a, uint64_t token)
{
	for (struct auth_try *t = a->tries; t; t = t->next)
		if (t->state == AUTH_PENDING && t->token == token)
			return t;
	return NULL;
}

static void auth_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth *a = arg;
	struct auth_resumed *list, *rev = NULL, *r;

	pthread_mutex_lock(&auth_lock);
	list = a->queue;
	a->queue = NULL;
	pthread_mutex_unlock(&auth_lock);
	while (list) { /* pushed at the head: reversed, in the order they came */
		r = list;
		list = r->next;
		r->next = rev;
		rev = r;
	}
	while ((r = rev)) {
		struct auth_try *t = auth_find_pending(a, r->token);
		rev = r->next;
		if (!t) {
			log_debug("auth: resume of token %llu, which waits no more (timed out, or "
				  "resumed twice)", (unsigned long long)r->token);
		} else if (r->error) {
			evtimer_del(t->timer);
			snprintf(t->error, sizeof(t->error), "auth scheme %s: %s", t->ea->scheme,
				 r->error);
			auth_try_end(t);
		} else {
			/* Not a refresh again: the credentials just fetched are the fresh ones. */
			evtimer_del(t->timer);
			auth_try_decorate(t, 0);
		}
		free(r->error);
		free(r);
	}
}

/* ---- lifetime ------------------------------------------------------------------------- */

/* The host table's functions (core/plugin.c) land here. Tokens are this file's own, one
 * counter for every plugin, so the plugin's ctx is not needed to find the attempt. */
static void auth_hook_resume(struct hookd_plugin_ctx *ctx, uint64_t token, const char *error)
{
	auth_resume(token, error);
}

static const struct plugin_auth_hooks auth_hooks = {
	.add_header = auth_out_add_header,
	.client_cert = auth_out_client_cert,
	.resume = auth_hook_resume,
};

int auth_new(struct event_base *base, struct auth **out)
{
	struct auth *a = calloc(1, sizeof(*a));
	if (!a)
		return HOOKD_ENOMEM;
	a->base = base;
	if (!(a->resume_ev = event_new(base, -1, 0, auth_resume_cb, a))) {
		free(a);
		return HOOKD_ENOMEM;
	}
	pthread_mutex_lock(&auth_lock);
	auth_current = a;
	pthread_mutex_unlock(&auth_lock);
	plugins_set_auth_hooks(&auth_hooks);
	*out = a;
	return HOOKD_OK;
}

void auth_free(struct auth *a)
{
	struct auth_resumed *r;
	if (!a)
		return;
	plugins_set_auth_hooks(NULL);
	pthread_mutex_lock(&auth_lock);
	if (auth_current == a)
		auth_current = NULL;
	r = a->queue;
	a->queue = NULL;
	pthread_mutex_unlock(&auth_lock);
	while (r) {
		struct auth_resumed *next = r->next;
		free(r->error);
		free(r);
		r = next;
	}
	while (a->tries)
		auth_try_free(a->tries);
	event_free(a->resume_ev);
	free(a);
}
