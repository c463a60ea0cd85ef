/* oauth2 - the "oauth2" auth scheme: an access token from the client-credentials grant
 * (RFC 6749 section 4.4), sent as "Authorization: Bearer TOKEN" (RFC 6750).
 *
 * Options: token_url (http or https), client_id, client_secret (a secret), scope and
 * audience (optional, sent as given), client_auth ("basic", the default, or "body").
 * RFC 6749 section 2.3.1: the token endpoint MUST support HTTP Basic with the
 * form-urlencoded client_id and client_secret, and sending them in the body is NOT
 * RECOMMENDED, so Basic is the default; "body" is for servers that only take that.
 *
 * Tokens are cached per (token_url, client_id, scope, audience, a hash of client_secret:
 * an endpoint with another secret never gets a token it could not have fetched), until
 * expires_in minus a margin (OAUTH2_MARGIN_S, at most half the lifetime); without
 * expires_in, for OAUTH2_DEFAULT_TTL_S. One fetch per cache key is in flight at a time:
 * attempts that need the token meanwhile wait for it (HOOKD_AUTH_PENDING), and the fetch
 * resumes them all. A decorate with refresh = 1 (the receiver answered 401) drops the
 * cached token and fetches another, unless a fetch is already under way or the token the
 * receiver refused is not the cached one any more (another attempt's refresh replaced
 * it).
 *
 * Fetches run on threads the plugin owns (OAUTH2_THREADS), with libcurl's blocking
 * interface, in the order asked; the loop never waits for them. Every address curl is about to
 * connect to is put to the host's destination guard first (CURLOPT_OPENSOCKETFUNCTION), so
 * a token_url cannot reach what a webhook URL could not; no proxy, no redirects. */
#include <hookd/plugin.h>

#include "../auth_options.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A token is used until this long before it expires, so it is not refused in flight (a
 * request may take the whole delivery timeout, 30 s by default). */
#define OAUTH2_MARGIN_S 30
/* RFC 6749 5.1 only recommends expires_in; without it a token is kept five minutes, short
 * enough that a server with one-hour tokens is never sent an expired one for long. */
#define OAUTH2_DEFAULT_TTL_S 300
/* The token endpoint's answer is a small JSON object; 64 KiB is far above any real one. */
#define OAUTH2_RESPONSE_MAX 65536
/* The longest access_token taken: "Bearer " and it must fit a header value, which receivers
 * cap at 8 KiB (a JWT with many claims is 1-2 KiB). */
#define OAUTH2_TOKEN_MAX 8000
/* A fetch is given this long (connect included); the attempts waiting for it end at their
 * own timeout anyway. */
#define OAUTH2_FETCH_TIMEOUT_MS 10000
/* Fetches run at once: one slow token endpoint then holds up the others' only when four
 * are slow together. Idle threads cost a stack and a condition wait, nothing else. */
#define OAUTH2_THREADS 4

struct o2_waiter {
	uint64_t token;
	struct o2_waiter *next;
};

/* One cache key's token. All members under o2->lock. */
struct o2_entry {
	char *key;
	char *token_url, *client_id, *client_secret, *scope, *audience;
	int client_auth_body;
	char *access_token;       /* NULL: none yet, or dropped */
	int64_t valid_until_ms;   /* monotonic */
	int fetching;             /* queued or running on the thread */
	struct o2_waiter *waiters;
	struct o2_entry *next;        /* o2->entries */
	struct o2_entry *queue_next;  /* o2->queue */
};

struct o2 {
	const struct hookd_host *host;
	struct hookd_plugin_ctx *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t threads[OAUTH2_THREADS];
	int n_threads;
	int stopping;
	struct o2_entry *entries;
	struct o2_entry *queue_head, *queue_tail; /* waiting for the thread */
};

static const char *const o2_options[] = {"token_url", "client_id",   "client_secret", "scope",
					 "audience",  "client_auth", NULL};
static const char *const o2_required[] = {"token_url", "client_id", "client_secret", NULL};
static const char *const o2_secrets[] = {"client_secret", NULL};

static int64_t o2_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int o2_check(void *state, const struct hookd_option *opts, size_t n, char *field,
		    size_t fieldlen, char *err, size_t errlen)
{
	const char *url = auth_opt(opts, n, "token_url");
	const char *how = auth_opt(opts, n, "client_auth");

	if (auth_opts_check(opts, n, o2_options, o2_required, field, fieldlen, err, errlen))
		return 1;
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		snprintf(field, fieldlen, "token_url");
		snprintf(err, errlen, "must be an http:// or https:// URL");
		return 1;
	}
	if (how && strcmp(how, "basic") != 0 && strcmp(how, "body") != 0) {
		snprintf(field, fieldlen, "client_auth");
		snprintf(err, errlen, "must be \"basic\" (HTTP Basic, the default) or \"body\"");
		return 1;
	}
	return 0;
}

/* ---- the fetch, on the plugin's thread ------------------------------------------------ */

struct o2_fetch {
	struct o2 *o2;
	char *resp;
	size_t resp_len;
	int blocked;
	char blocked_addr[INET6_ADDRSTRLEN];
};

static size_t o2_write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct o2_fetch *f = arg;
	size_t len = size * n;
	char *grown;
	if (f->resp_len + len > OAUTH2_RESPONSE_MAX)
		return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
	if (!(grown = realloc(f->resp, f->resp_len + len + 1)))
		return 0;
	f->resp = grown;
	memcpy(f->resp + f->resp_len, data, len);
	f->resp_len += len;
	f->resp[f->resp_len] = '\0';
	return len;
}

/* The destination guard, on the address curl resolved and is about to connect to. */
static curl_socket_t o2_opensocket_cb(void *arg, curlsocktype purpose,
				      struct curl_sockaddr *addr)
{
	struct o2_fetch *f = arg;
	if (!f->o2->host->destination_allowed(f->o2->ctx, &addr->addr, addr->addrlen)) {
		const void *ip = addr->family == AF_INET6
					 ? (const void *)&((struct sockaddr_in6 *)&addr->addr)->sin6_addr
					 : (const void *)&((struct sockaddr_in *)&addr->addr)->sin_addr;
		f->blocked = 1;
		inet_ntop(addr->family, ip, f->blocked_addr, sizeof(f->blocked_addr));
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype, addr->protocol);
}

static int o2_progress_cb(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct o2_fetch *f = arg;
	int stop;
	pthread_mutex_lock(&f->o2->lock);
	stop = f->o2->stopping;
	pthread_mutex_unlock(&f->o2->lock);
	return stop; /* nonzero aborts the transfer: shutdown does not wait for it */
}

/* "a%20b" of s, appended to buf as name=value (with a leading '&' unless first). */
static int o2_form_add(CURL *e, char *buf, size_t len, const char *name, const char *value)
{
	char *esc = curl_easy_escape(e, value, 0);
	size_t w = strlen(buf);
	int n;
	if (!esc)
		return -1;
	n = snprintf(buf + w, len - w, "%s%s=%s", w ? "&" : "", name, esc);
	curl_free(esc);
	return n < 0 || (size_t)n >= len - w ? -1 : 0;
}

/* The token from the answer, or an error message; expires_in in *ttl_s (-1: none). */
static char *o2_parse(const char *resp, size_t len, int64_t *ttl_s, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(resp ? resp : "", len, 0, &je), *tok, *exp, *type;
	char *out = NULL;

	*ttl_s = -1;
	if (!json_is_object(j)) {
		snprintf(err, errlen, "token endpoint answer is not a JSON object");
		goto done;
	}
	tok = json_object_get(j, "access_token");
	type = json_object_get(j, "token_type");
	exp = json_object_get(j, "expires_in");
	if (!json_is_string(tok) || !json_string_length(tok) ||
	    json_string_length(tok) > OAUTH2_TOKEN_MAX || !auth_value_ok(json_string_value(tok))) {
		snprintf(err, errlen, "token endpoint answer has no usable access_token");
		goto done;
	}
	if (json_is_string(type) && strcasecmp(json_string_value(type), "bearer") != 0) {
		snprintf(err, errlen, "token endpoint gave a token of type '%.40s', not Bearer",
			 json_string_value(type));
		goto done;
	}
	if (json_is_integer(exp))
		*ttl_s = json_integer_value(exp);
	else if (json_is_string(exp)) /* some servers quote it */
		*ttl_s = strtoll(json_string_value(exp), NULL, 10);
	out = strdup(json_string_value(tok));
	if (!out)
		snprintf(err, errlen, "out of memory");
done:
	json_decref(j);
	return out;
}

/* Runs one fetch for e (its parameters are read under the lock before, and never change:
 * a key names them). Returns the token or NULL with err. */
static char *o2_fetch_token(struct o2 *o2, const struct o2_entry *e, int64_t *ttl_s, char *err,
			    size_t errlen)
{
	struct o2_fetch f = {.o2 = o2};
	char form[4096] = "", show[200];
	struct curl_slist *hdrs = NULL;
	CURL *c = curl_easy_init();
	CURLcode rc;
	long status = 0;
	char *token = NULL;

	*ttl_s = -1;
	if (!c) {
		snprintf(err, errlen, "cannot start a token request (curl)");
		return NULL;
	}
	if (o2_form_add(c, form, sizeof(form), "grant_type", "client_credentials") ||
	    (e->scope && o2_form_add(c, form, sizeof(form), "scope", e->scope)) ||
	    (e->audience && o2_form_add(c, form, sizeof(form), "audience", e->audience)) ||
	    (e->client_auth_body &&
	     (o2_form_add(c, form, sizeof(form), "client_id", e->client_id) ||
	      o2_form_add(c, form, sizeof(form), "client_secret", e->client_secret)))) {
		snprintf(err, errlen, "token request too large");
		goto out;
	}
	if (!e->client_auth_body) {
		/* RFC 6749 2.3.1: each of them form-urlencoded, then user:password as in RFC
		 * 7617. curl's own USERNAME/PASSWORD would send them unencoded. */
		char *id = curl_easy_escape(c, e->client_id, 0);
		char *sec = curl_easy_escape(c, e->client_secret, 0);
		char plain[2048], line[2 * 2048 + 64];
		int n = id && sec ? snprintf(plain, sizeof(plain), "%s:%s", id, sec) : -1;
		curl_free(id);
		curl_free(sec);
		if (n < 0 || (size_t)n >= sizeof(plain)) {
			snprintf(err, errlen, "client credentials too long");
			goto out;
		}
		memcpy(line, "Authorization: Basic ", 21);
		auth_base64((unsigned char *)plain, (size_t)n, line + 21, sizeof(line) - 21);
		sodium_memzero(plain, sizeof(plain));
		hdrs = curl_slist_append(hdrs, line);
		sodium_memzero(line, sizeof(line));
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, e->token_url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "hookd-oauth2/1.0");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, o2_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, o2_opensocket_cb);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &f);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, o2_progress_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &f);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* the guard must see the real destination */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)OAUTH2_FETCH_TIMEOUT_MS);
	rc = curl_easy_perform(c);
	if (f.blocked) {
		snprintf(err, errlen,
			 "token_url: connecting to %s is refused by the destination guard "
			 "(security.allow_destinations)", f.blocked_addr);
		goto out;
	}
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "token endpoint: %s", curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		size_t n = 0;
		for (; f.resp && n < f.resp_len && n + 1 < sizeof(show); n++)
			show[n] = (f.resp[n] < 0x20 || f.resp[n] == 0x7f) ? ' ' : f.resp[n];
		show[n] = '\0';
		snprintf(err, errlen, "token endpoint answered %ld: %s", status, show);
		goto out;
	}
	token = o2_parse(f.resp, f.resp_len, ttl_s, err, errlen);
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(f.resp);
	return token;
}

static void *o2_thread(void *arg)
{
	struct o2 *o2 = arg;
	pthread_mutex_lock(&o2->lock);
	for (;;) {
		struct o2_entry *e;
		struct o2_waiter *w;
		char err[512] = "", *token;
		int64_t ttl;

		while (!o2->stopping && !o2->queue_head)
			pthread_cond_wait(&o2->cond, &o2->lock);
		if (o2->stopping)
			break;
		e = o2->queue_head;
		o2->queue_head = e->queue_next;
		if (!o2->queue_head)
			o2->queue_tail = NULL;
		pthread_mutex_unlock(&o2->lock);

		token = o2_fetch_token(o2, e, &ttl, err, sizeof(err));

		pthread_mutex_lock(&o2->lock);
		if (o2->stopping) {
			free(token);
			break;
		}
		if (token) {
			int64_t life_ms = (ttl >= 0 ? ttl : OAUTH2_DEFAULT_TTL_S) * 1000;
			int64_t margin_ms = life_ms / 2 < OAUTH2_MARGIN_S * 1000 ? life_ms / 2
										 : OAUTH2_MARGIN_S * 1000;
			free(e->access_token);
			e->access_token = token;
			e->valid_until_ms = o2_now_ms() + life_ms - margin_ms;
		} else {
			o2->host->log(o2->ctx, HOOKD_LOG_WARN, "token request to %s failed: %s",
				      e->token_url, err);
		}
		e->fetching = 0;
		w = e->waiters;
		e->waiters = NULL;
		pthread_mutex_unlock(&o2->lock);
		/* Outside the lock: auth_resume may be slow, and the waiters are ours now. */
		while (w) {
			struct o2_waiter *next = w->next;
			o2->host->auth_resume(o2->ctx, w->token, token ? NULL : err);
			free(w);
			w = next;
		}
		pthread_mutex_lock(&o2->lock);
	}
	pthread_mutex_unlock(&o2->lock);
	return NULL;
}

/* ---- decorate, on the loop ------------------------------------------------------------ */

/* The cache key of r's options; malloc'd. */
static char *o2_key(const struct hookd_auth_request *r)
{
	const char *secret = auth_opt(r->options, r->n_options, "client_secret");
	unsigned char h[crypto_generichash_BYTES];
	char hex[2 * sizeof(h) + 1], *key;
	const char *parts[] = {auth_opt(r->options, r->n_options, "token_url"),
			       auth_opt(r->options, r->n_options, "client_id"),
			       auth_opt(r->options, r->n_options, "scope"),
			       auth_opt(r->options, r->n_options, "audience"),
			       auth_opt(r->options, r->n_options, "client_auth")};
	size_t len = sizeof(hex) + 1;

	crypto_generichash(h, sizeof(h), (const unsigned char *)(secret ? secret : ""),
			   secret ? strlen(secret) : 0, NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	for (size_t i = 0; i < 5; i++)
		len += (parts[i] ? strlen(parts[i]) : 0) + 2;
	if (!(key = malloc(len)))
		return NULL;
	snprintf(key, len, "%s\n%s\n%s\n%s\n%s\n%s", parts[0] ?: "", parts[1] ?: "",
		 parts[2] ? parts[2] : "\001", parts[3] ? parts[3] : "\001", parts[4] ?: "", hex);
	return key;
}

static void o2_entry_free(struct o2_entry *e)
{
	while (e->waiters) {
		struct o2_waiter *w = e->waiters;
		e->waiters = w->next;
		free(w);
	}
	free(e->key);
	free(e->token_url);
	free(e->client_id);
	if (e->client_secret) {
		sodium_memzero(e->client_secret, strlen(e->client_secret));
		free(e->client_secret);
	}
	free(e->scope);
	free(e->audience);
	free(e->access_token);
	free(e);
}

static char *o2_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The entry for key, made from r's options when there is none; NULL when out of memory.
 * Under o2->lock. */
static struct o2_entry *o2_entry_get(struct o2 *o2, char *key,
				     const struct hookd_auth_request *r)
{
	struct o2_entry *e;
	const char *how = auth_opt(r->options, r->n_options, "client_auth");
	for (e = o2->entries; e; e = e->next)
		if (strcmp(e->key, key) == 0) {
			free(key);
			return e;
		}
	if (!(e = calloc(1, sizeof(*e)))) {
		free(key);
		return NULL;
	}
	e->key = key;
	e->token_url = o2_dup(auth_opt(r->options, r->n_options, "token_url"));
	e->client_id = o2_dup(auth_opt(r->options, r->n_options, "client_id"));
	e->client_secret = o2_dup(auth_opt(r->options, r->n_options, "client_secret"));
	e->scope = o2_dup(auth_opt(r->options, r->n_options, "scope"));
	e->audience = o2_dup(auth_opt(r->options, r->n_options, "audience"));
	e->client_auth_body = how && strcmp(how, "body") == 0;
	if (!e->token_url || !e->client_id || !e->client_secret) {
		o2_entry_free(e);
		return NULL;
	}
	e->next = o2->entries;
	o2->entries = e;
	return e;
}

/* On a refresh, true if the token the receiver refused (the Authorization the request
 * carried) is the cached one. A request that went out with an older token, answered 401
 * after another attempt's refresh already fetched a new one, keeps the new one: a burst of
 * 401s costs one token request, not one each. Under o2->lock. */
static int o2_refused_is_cached(const struct hookd_auth_request *r, const struct o2_entry *e)
{
	if (!e->access_token)
		return 0;
	for (size_t i = 0; i < r->n_headers; i++) {
		const char *v = r->headers[i].value;
		if (strcasecmp(r->headers[i].name, "Authorization") != 0)
			continue;
		return strncmp(v, "Bearer ", 7) != 0 || strcmp(v + 7, e->access_token) == 0;
	}
	return 1; /* nothing says which: drop it */
}

static enum hookd_auth_status o2_decorate(void *state, const struct hookd_auth_request *r,
					  char *err, size_t errlen)
{
	struct o2 *o2 = state;
	char *key = o2_key(r), line[OAUTH2_TOKEN_MAX + sizeof("Bearer ")];
	struct o2_entry *e;
	struct o2_waiter *w;

	if (!key) {
		snprintf(err, errlen, "out of memory");
		return HOOKD_AUTH_ERROR;
	}
	pthread_mutex_lock(&o2->lock);
	if (!(e = o2_entry_get(o2, key, r))) {
		pthread_mutex_unlock(&o2->lock);
		snprintf(err, errlen, "out of memory (or no token_url, client_id, client_secret)");
		return HOOKD_AUTH_ERROR;
	}
	if (r->refresh && !e->fetching && o2_refused_is_cached(r, e)) {
		free(e->access_token); /* the receiver refused it: revoked, or expired early */
		e->access_token = NULL;
	}
	if (e->access_token && o2_now_ms() < e->valid_until_ms) {
		snprintf(line, sizeof(line), "Bearer %s", e->access_token);
		pthread_mutex_unlock(&o2->lock);
		o2->host->auth_add_header(r->out, "Authorization", line);
		return HOOKD_AUTH_DONE;
	}
	if (!(w = calloc(1, sizeof(*w)))) {
		pthread_mutex_unlock(&o2->lock);
		snprintf(err, errlen, "out of memory");
		return HOOKD_AUTH_ERROR;
	}
	w->token = r->token;
	w->next = e->waiters;
	e->waiters = w;
	if (!e->fetching) {
		e->fetching = 1;
		e->queue_next = NULL;
		if (o2->queue_tail)
			o2->queue_tail->queue_next = e;
		else
			o2->queue_head = e;
		o2->queue_tail = e;
		pthread_cond_signal(&o2->cond);
	}
	pthread_mutex_unlock(&o2->lock);
	return HOOKD_AUTH_PENDING;
}

static const struct hookd_auth o2_auth = {
	.size = sizeof(struct hookd_auth),
	.name = "oauth2",
	.secret_options = o2_secrets,
	.refresh_on_401 = 1,
	.check = o2_check,
	.decorate = o2_decorate,
};

/* ---- lifetime ------------------------------------------------------------------------- */

static void o2_cleanup(void *state)
{
	struct o2 *o2 = state;
	if (!o2)
		return;
	pthread_mutex_lock(&o2->lock);
	o2->stopping = 1;
	pthread_cond_broadcast(&o2->cond);
	pthread_mutex_unlock(&o2->lock);
	for (int i = 0; i < o2->n_threads; i++)
		pthread_join(o2->threads[i], NULL);
	while (o2->entries) {
		struct o2_entry *e = o2->entries;
		o2->entries = e->next;
		o2_entry_free(e);
	}
	pthread_cond_destroy(&o2->cond);
	pthread_mutex_destroy(&o2->lock);
	free(o2);
}

static int o2_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		   char *err, size_t errlen)
{
	struct o2 *o2;
	if (!AUTH_HOST_HAS(host, destination_allowed)) {
		snprintf(err, errlen, "the host's ABI has no auth schemes (1.1 needed)");
		return 1;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium did not start");
		return 1;
	}
	if (!(o2 = calloc(1, sizeof(*o2)))) {
		snprintf(err, errlen, "out of memory");
		return 1;
	}
	o2->host = host;
	o2->ctx = ctx;
	pthread_mutex_init(&o2->lock, NULL);
	pthread_cond_init(&o2->cond, NULL);
	for (int i = 0; i < OAUTH2_THREADS; i++) {
		if (pthread_create(&o2->threads[i], NULL, o2_thread, o2) != 0) {
			o2_cleanup(o2);
			snprintf(err, errlen, "cannot start the token threads");
			return 1;
		}
		o2->n_threads++;
	}
	if (host->register_auth(ctx, &o2_auth) != 0) {
		o2_cleanup(o2);
		snprintf(err, errlen, "cannot register the auth scheme oauth2");
		return 1;
	}
	*state = o2;
	return 0;
}

HOOKD_PLUGIN_DEFINE(.name = "oauth2", .version = "1.0", .init = o2_init,
		    .cleanup = o2_cleanup,
		    .description = "auth scheme oauth2: client-credentials grant, Bearer token");
