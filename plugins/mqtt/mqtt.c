/* mqtt.c - hookd transport plugin: each delivery is published to an MQTT topic at QoS 1;
 * the attempt succeeds on the broker's PUBACK.
 *
 *   URL      mqtt://HOST[:PORT]/TOPIC   (PORT defaults to 1883; the topic is the decoded
 *                                        path without its leading '/', so mqtt://h/a/b
 *                                        publishes to "a/b")
 *   options  plugins.options.mqtt.connect_timeout_ms   default 2000
 *            plugins.options.mqtt.keepalive_s          default 60
 *            plugins.options.mqtt.username, .password  CONNECT credentials
 *   wire     MQTT 5 PUBLISH, QoS 1, not retained; payload: the envelope; every request
 *            header (content-type, webhook-id, webhook-timestamp, webhook-signature, the
 *            endpoint's own) as a user property, and content-type also as the Content
 *            Type property.
 *
 * A PUBACK whose reason code is below 0x80 is a success (0x10 "no matching subscribers"
 * included: the broker took the message, and QoS 1 promises no more); 0x80 and above
 * (not authorized, quota exceeded, ...) fail the attempt retryably with the reason.
 *
 * libmosquitto is driven on hookd's loop, without its thread: the client's socket is
 * watched with watch_fd (read always, write while mosquitto_want_write), and a one-second
 * timer runs mosquitto_loop_misc for keepalive pings. Everything runs on the loop thread,
 * so no locking and no race between a publish and its PUBACK. One client per broker
 * (address and port); attempts that arrive before the CONNACK wait for it. Reconnection is
 * ours: a connection that fails or drops is destroyed with its client (its attempts fail
 * retryably; libmosquitto does not resend them later behind our back) and the next send
 * connects a new one. */
#define _POSIX_C_SOURCE 200809L /* strdup, also when built with one `cc -std=c17` line */
#include <hookd/plugin.h>

#include "../common/plugin_early.h"
#include "../common/plugin_url.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MQTT_DEFAULT_PORT 1883
/* As the nats and redis plugins: slower than this to connect is as good as down for an
 * attempt that will be retried. */
#define MQTT_CONNECT_TIMEOUT_MS 2000
/* MQTT's own default in most clients; the broker drops us after 1.5 times this without
 * traffic, and mosquitto_loop_misc (once a second) sends the PINGREQs. */
#define MQTT_KEEPALIVE_S 60
#define MQTT_MISC_MS 1000
/* Buckets of the per-connection table of attempts waiting for a PUBACK, by message id
 * (1..65535). */
#define MQTT_INFLIGHT_BUCKETS 256

struct mqtt_plugin;
struct mqtt_broker;

/* An attempt: waiting for the CONNACK (with what to publish), or for its PUBACK. */
struct mqtt_job {
	struct mqtt_job *next;
	uint64_t token;
	int mid;
	char *topic;
	void *payload;
	int payload_len;
	mosquitto_property *props;
};

struct mqtt_conn {
	struct mqtt_plugin *p;
	struct mqtt_broker *b; /* NULL once detached (dead) */
	struct mosquitto *mosq;
	struct hookd_watch *watch;
	int events;
	struct hookd_timer *misc_timer;
	struct hookd_timer *connect_timer;
	int connected; /* CONNACK success came */
	int dead;      /* failed: torn down when the current call returns */
	int depth;     /* inside a libmosquitto call of ours */
	char why[320];
	char label[80]; /* its broker's, kept for messages after detaching */
	struct mqtt_job *waiting, **waiting_tail; /* before the CONNACK */
	struct mqtt_job *inflight[MQTT_INFLIGHT_BUCKETS];
};

struct mqtt_broker {
	struct mqtt_broker *next;
	char address[64];
	int port;
	char label[80]; /* address:port, bracketed for IPv6 */
	struct mqtt_conn *conn;
};

struct mqtt_plugin {
	const struct hookd_host *host;
	struct hookd_plugin_ctx *ctx;
	struct hookd_transport transport;
	uint32_t connect_timeout_ms;
	int keepalive_s;
	/* CONNECT credentials (plugins.options.mqtt.username, .password; the host's, valid
	 * until cleanup), NULL when not set. */
	const char *username, *password;
	unsigned long next_client;
	struct mqtt_broker *brokers;
	struct plugin_early *early;
	struct hookd_counter *sent, *failed;
	int closing;
};

static void mqtt_complete(struct mqtt_plugin *p, uint64_t token, enum hookd_result r,
			  const char *fmt, ...) HOOKD_PLUGIN_PRINTF(4, 5);

static void mqtt_complete(struct mqtt_plugin *p, uint64_t token, enum hookd_result r,
			  const char *fmt, ...)
{
	if (p->closing)
		return;
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

static void mqtt_job_free(struct mqtt_job *j)
{
	free(j->topic);
	free(j->payload);
	mosquitto_property_free_all(&j->props);
	free(j);
}

/* ---- URLs ------------------------------------------------------------------------------ */

static int mqtt_topic_check(const char *t, char *err, size_t errlen)
{
	size_t n = strlen(t);
	if (n == 0) {
		snprintf(err, errlen, "the topic must not be empty (mqtt://HOST:PORT/TOPIC)");
		return -1;
	}
	if (n > 65535 || mosquitto_validate_utf8(t, (int)n) != MOSQ_ERR_SUCCESS) {
		snprintf(err, errlen, "the topic must be valid UTF-8 of at most 65535 bytes");
		return -1;
	}
	if (mosquitto_pub_topic_check(t) != MOSQ_ERR_SUCCESS) {
		snprintf(err, errlen, "the topic must not contain the wildcards '+' or '#'");
		return -1;
	}
	return 0;
}

static int mqtt_check_url(void *state, const char *url, char *err, size_t errlen)
{
	/* The decoded topic is never longer than the URL. */
	size_t cap = strlen(url) + 1;
	char *topic = malloc(cap);
	const char *query;
	int rc = -1;
	if (!topic) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	switch (plugin_url_dest(url, topic, cap, &query)) {
	case PLUGIN_URL_OK:
		if (*query || strchr(url, '?'))
			snprintf(err, errlen,
				 "an MQTT URL has no parameters (a '?' in the topic is "
				 "written %%3F)");
		else
			rc = mqtt_topic_check(topic, err, errlen);
		break;
	case PLUGIN_URL_FRAGMENT:
		/* '#' cannot be in a URL's path unescaped, and is a wildcard in a topic */
		snprintf(err, errlen, "the topic must not contain the wildcards '+' or '#'");
		break;
	case PLUGIN_URL_NUL:
		snprintf(err, errlen, "the topic must not contain NUL");
		break;
	default:
		snprintf(err, errlen, "expected mqtt://HOST:PORT/TOPIC");
		break;
	}
	free(topic);
	return rc;
}

/* ---- the connection on the loop -------------------------------------------------------- */

static size_t mqtt_bucket(int mid)
{
	return (size_t)mid % MQTT_INFLIGHT_BUCKETS;
}

static void mqtt_conn_rearm(struct mqtt_conn *c);
static void mqtt_conn_teardown(struct mqtt_conn *c);

/* Marks the connection failed with why; it is torn down once the libmosquitto call in
 * progress returns (or now, outside one). */
static void mqtt_conn_fail(struct mqtt_conn *c, const char *why)
{
	if (!c->dead) {
		c->dead = 1;
		snprintf(c->why, sizeof c->why, "%s", why);
	}
	if (c->b && c->b->conn == c)
		c->b->conn = NULL; /* the next send connects anew */
	if (c->depth == 0)
		mqtt_conn_teardown(c);
}

/* After a libmosquitto call: tear down a failed connection, else watch what it needs. */
static void mqtt_conn_after(struct mqtt_conn *c)
{
	if (c->dead && c->depth == 0)
		mqtt_conn_teardown(c);
	else if (!c->dead)
		mqtt_conn_rearm(c);
}

static const char *mqtt_rc_text(int rc)
{
	if (rc == MOSQ_ERR_ERRNO)
		return strerror(errno);
	return mosquitto_strerror(rc);
}

static void mqtt_on_fd(int fd, int events, void *arg)
{
	struct mqtt_conn *c = arg;
	int rc = MOSQ_ERR_SUCCESS;
	c->depth++;
	if (events & HOOKD_FD_READ)
		rc = mosquitto_loop_read(c->mosq, 1);
	if (rc == MOSQ_ERR_SUCCESS && !c->dead && (events & HOOKD_FD_WRITE))
		rc = mosquitto_loop_write(c->mosq, 1);
	c->depth--;
	if (rc != MOSQ_ERR_SUCCESS && !c->dead) {
		char why[200];
		snprintf(why, sizeof why, "%s",
			 rc == MOSQ_ERR_CONN_LOST && !c->connected ? "connection refused or closed"
								   : mqtt_rc_text(rc));
		mqtt_conn_fail(c, why);
		return;
	}
	mqtt_conn_after(c);
}

static void mqtt_conn_rearm(struct mqtt_conn *c)
{
	struct mqtt_plugin *p = c->p;
	int fd = mosquitto_socket(c->mosq);
	if (fd < 0)
		return;
	int ev = HOOKD_FD_READ | (mosquitto_want_write(c->mosq) ? HOOKD_FD_WRITE : 0);
	if (!c->watch) {
		c->watch = p->host->watch_fd(p->ctx, fd, ev, mqtt_on_fd, c);
		c->events = ev;
	} else if (ev != c->events) {
		p->host->watch_update(p->ctx, c->watch, ev);
		c->events = ev;
	}
}

static void mqtt_on_misc(void *arg)
{
	struct mqtt_conn *c = arg;
	c->misc_timer = NULL;
	c->depth++;
	mosquitto_loop_misc(c->mosq);
	c->depth--;
	if (!c->dead)
		c->misc_timer = c->p->host->timer_start(c->p->ctx, MQTT_MISC_MS, mqtt_on_misc, c);
	mqtt_conn_after(c);
}

static void mqtt_on_connect_timeout(void *arg)
{
	struct mqtt_conn *c = arg;
	c->connect_timer = NULL;
	char why[80];
	snprintf(why, sizeof why, "no CONNACK within %u ms", (unsigned)c->p->connect_timeout_ms);
	mqtt_conn_fail(c, why);
}

/* Publishes j on a connected client; it then waits in inflight for its PUBACK. Completes
 * it (failed) if the publish is refused. */
static void mqtt_conn_publish(struct mqtt_conn *c, struct mqtt_job *j)
{
	int mid = 0;
	c->depth++;
	int rc = mosquitto_publish_v5(c->mosq, &mid, j->topic, j->payload_len, j->payload, 1, false,
				      j->props);
	c->depth--;
	if (rc != MOSQ_ERR_SUCCESS) {
		mqtt_complete(c->p, j->token, HOOKD_RETRY, "publish to %s on mqtt://%s failed: %s",
			      j->topic, c->label, mqtt_rc_text(rc));
		mqtt_job_free(j);
		if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO)
			mqtt_conn_fail(c, mqtt_rc_text(rc));
		return;
	}
	/* what to publish is no longer needed: libmosquitto copied it */
	free(j->payload);
	j->payload = NULL;
	mosquitto_property_free_all(&j->props);
	j->mid = mid;
	size_t b = mqtt_bucket(mid);
	j->next = c->inflight[b];
	c->inflight[b] = j;
}

static void mqtt_on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
			    const mosquitto_property *props)
{
	struct mqtt_conn *c = obj;
	if (c->connect_timer) {
		c->p->host->timer_stop(c->p->ctx, c->connect_timer);
		c->connect_timer = NULL;
	}
	if (rc != 0) {
		char why[200];
		snprintf(why, sizeof why, "the broker refused the connection: %s",
			 mosquitto_reason_string(rc));
		mqtt_conn_fail(c, why);
		return;
	}
	c->connected = 1;
	c->p->host->log(c->p->ctx, HOOKD_LOG_INFO, "connected to mqtt://%s", c->label);
	while (c->waiting && !c->dead) {
		struct mqtt_job *j = c->waiting;
		c->waiting = j->next;
		if (!c->waiting)
			c->waiting_tail = &c->waiting;
		mqtt_conn_publish(c, j);
	}
}

static void mqtt_on_disconnect(struct mosquitto *mosq, void *obj, int rc,
			       const mosquitto_property *props)
{
	struct mqtt_conn *c = obj;
	char why[200];
	snprintf(why, sizeof why, "the connection to the broker closed: %s",
		 rc == 0 ? "by us" : mosquitto_reason_string(rc));
	mqtt_conn_fail(c, why);
}

static void mqtt_on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
			    const mosquitto_property *props)
{
	struct mqtt_conn *c = obj;
	for (struct mqtt_job **jp = &c->inflight[mqtt_bucket(mid)]; *jp; jp = &(*jp)->next) {
		if ((*jp)->mid != mid)
			continue;
		struct mqtt_job *j = *jp;
		*jp = j->next;
		if (reason < 0x80)
			mqtt_complete(c->p, j->token, HOOKD_SENT, "%s", "");
		else
			mqtt_complete(c->p, j->token, HOOKD_RETRY,
				      "the broker refused the publish to %s: %s (0x%02x)", j->topic,
				      mosquitto_reason_string(reason), (unsigned)reason);
		mqtt_job_free(j);
		return;
	}
}

/* Fails every attempt of a failed connection and frees it with its client. */
static void mqtt_conn_teardown(struct mqtt_conn *c)
{
	struct mqtt_plugin *p = c->p;
	if (c->b && c->b->conn == c)
		c->b->conn = NULL;
	if (c->watch) {
		p->host->unwatch_fd(p->ctx, c->watch);
		c->watch = NULL;
	}
	if (c->misc_timer) {
		p->host->timer_stop(p->ctx, c->misc_timer);
		c->misc_timer = NULL;
	}
	if (c->connect_timer) {
		p->host->timer_stop(p->ctx, c->connect_timer);
		c->connect_timer = NULL;
	}
	/* Callbacks off: destroying the client must not call back into a freed c. */
	mosquitto_connect_v5_callback_set(c->mosq, NULL);
	mosquitto_disconnect_v5_callback_set(c->mosq, NULL);
	mosquitto_publish_v5_callback_set(c->mosq, NULL);
	mosquitto_destroy(c->mosq);
	c->mosq = NULL;
	while (c->waiting) {
		struct mqtt_job *j = c->waiting;
		c->waiting = j->next;
		mqtt_complete(p, j->token, HOOKD_RETRY, "mqtt://%s: %s", c->label, c->why);
		mqtt_job_free(j);
	}
	for (size_t i = 0; i < MQTT_INFLIGHT_BUCKETS; i++) {
		while (c->inflight[i]) {
			struct mqtt_job *j = c->inflight[i];
			c->inflight[i] = j->next;
			mqtt_complete(p, j->token, HOOKD_RETRY,
				      "mqtt://%s: no PUBACK for the publish to %s: %s", c->label,
				      j->topic, c->why);
			mqtt_job_free(j);
		}
	}
	free(c);
}

static struct mqtt_conn *mqtt_conn_open(struct mqtt_plugin *p, struct mqtt_broker *b, char *err,
					size_t errlen)
{
	struct mqtt_conn *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	char id[64];
	snprintf(id, sizeof id, "hookd-%ld-%lu", (long)getpid(), ++p->next_client);
	c->p = p;
	c->b = b;
	snprintf(c->label, sizeof c->label, "%s", b->label);
	c->waiting_tail = &c->waiting;
	c->mosq = mosquitto_new(id, true, c);
	if (!c->mosq) {
		free(c);
		snprintf(err, errlen, "cannot create an MQTT client: %s", strerror(errno));
		return NULL;
	}
	mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	if (p->username)
		mosquitto_username_pw_set(c->mosq, p->username, p->password);
	mosquitto_connect_v5_callback_set(c->mosq, mqtt_on_connect);
	mosquitto_disconnect_v5_callback_set(c->mosq, mqtt_on_disconnect);
	mosquitto_publish_v5_callback_set(c->mosq, mqtt_on_publish);
	int rc = mosquitto_connect_async(c->mosq, b->address, b->port, p->keepalive_s);
	if (rc != MOSQ_ERR_SUCCESS) {
		snprintf(err, errlen, "cannot connect to mqtt://%s: %s", b->label,
			 mqtt_rc_text(rc));
		mosquitto_destroy(c->mosq);
		free(c);
		return NULL;
	}
	c->connect_timer =
	    p->host->timer_start(p->ctx, p->connect_timeout_ms, mqtt_on_connect_timeout, c);
	c->misc_timer = p->host->timer_start(p->ctx, MQTT_MISC_MS, mqtt_on_misc, c);
	b->conn = c;
	mqtt_conn_rearm(c);
	return c;
}

/* ---- attempts -------------------------------------------------------------------------- */

/* A failure found in send(), completed from the loop (plugin_early.h). */
static void mqtt_early_complete(void *owner, uint64_t token, const char *msg)
{
	mqtt_complete(owner, token, HOOKD_RETRY, "%s", msg);
}

static int mqtt_fail_soon(struct mqtt_plugin *p, uint64_t token, const char *msg)
{
	return plugin_fail_soon(p->host, p->ctx, &p->early, mqtt_early_complete, p, token, msg);
}

static struct mqtt_broker *mqtt_broker_get(struct mqtt_plugin *p, const char *address, int port)
{
	for (struct mqtt_broker *b = p->brokers; b; b = b->next)
		if (b->port == port && strcmp(b->address, address) == 0)
			return b;
	if (strlen(address) >= sizeof(((struct mqtt_broker *)0)->address))
		return NULL;
	struct mqtt_broker *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	snprintf(b->address, sizeof b->address, "%s", address);
	b->port = port;
	plugin_url_label(b->label, sizeof b->label, address, port);
	b->next = p->brokers;
	p->brokers = b;
	return b;
}

static int mqtt_send(void *state, const struct hookd_send *s)
{
	struct mqtt_plugin *p = state;
	char err[300];
	if (!s->address)
		return -1;
	const char *topic = s->path[0] == '/' ? s->path + 1 : s->path;
	if (mqtt_topic_check(topic, err, sizeof err) != 0)
		return mqtt_fail_soon(p, s->token, err);
	if (s->body_len > 268435455 - 65536) {
		snprintf(err, sizeof err, "the envelope is larger than an MQTT packet can be");
		return mqtt_fail_soon(p, s->token, err);
	}
	struct mqtt_job *j = calloc(1, sizeof *j);
	if (!j)
		return -1;
	j->token = s->token;
	j->topic = strdup(topic);
	j->payload = malloc(s->body_len ? s->body_len : 1);
	int ok = j->topic && j->payload;
	if (ok) {
		memcpy(j->payload, s->body, s->body_len);
		j->payload_len = (int)s->body_len;
	}
	for (size_t i = 0; ok && i < s->n_headers; i++) {
		const struct hookd_header *h = &s->headers[i];
		ok = mosquitto_property_add_string_pair(&j->props, MQTT_PROP_USER_PROPERTY, h->name,
							h->value) == MOSQ_ERR_SUCCESS;
		if (ok && strcasecmp(h->name, "content-type") == 0)
			ok = mosquitto_property_add_string(&j->props, MQTT_PROP_CONTENT_TYPE,
							   h->value) == MOSQ_ERR_SUCCESS;
	}
	if (!ok) {
		mqtt_job_free(j);
		return -1;
	}
	struct mqtt_broker *b =
	    mqtt_broker_get(p, s->address, s->port ? s->port : MQTT_DEFAULT_PORT);
	if (!b) {
		mqtt_job_free(j);
		return -1;
	}
	struct mqtt_conn *c = b->conn;
	if (!c && !(c = mqtt_conn_open(p, b, err, sizeof err))) {
		mqtt_job_free(j);
		return mqtt_fail_soon(p, s->token, err);
	}
	if (!c->connected) {
		*c->waiting_tail = j;
		c->waiting_tail = &j->next;
		return 0;
	}
	/* a failed publish completes j: defer that past send() */
	c->depth++;
	int mid = 0;
	int rc = mosquitto_publish_v5(c->mosq, &mid, j->topic, j->payload_len, j->payload, 1, false,
				      j->props);
	c->depth--;
	if (rc != MOSQ_ERR_SUCCESS) {
		snprintf(err, sizeof err, "publish to %s on mqtt://%s failed: %s", j->topic,
			 b->label, mqtt_rc_text(rc));
		mqtt_job_free(j);
		if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO) {
			c->dead = 1;
			snprintf(c->why, sizeof c->why, "%s", err);
			if (b->conn == c)
				b->conn = NULL;
		}
		int r = mqtt_fail_soon(p, s->token, err);
		mqtt_conn_after(c);
		return r;
	}
	free(j->payload);
	j->payload = NULL;
	mosquitto_property_free_all(&j->props);
	j->mid = mid;
	size_t bk = mqtt_bucket(mid);
	j->next = c->inflight[bk];
	c->inflight[bk] = j;
	mqtt_conn_after(c);
	return 0;
}

/* The host gave up on token: forget it (a PUBACK for it is then ignored). */
static void mqtt_cancel(void *state, uint64_t token)
{
	struct mqtt_plugin *p = state;
	for (struct mqtt_broker *b = p->brokers; b; b = b->next) {
		struct mqtt_conn *c = b->conn;
		if (!c)
			continue;
		for (struct mqtt_job **jp = &c->waiting; *jp; jp = &(*jp)->next) {
			if ((*jp)->token == token) {
				struct mqtt_job *j = *jp;
				*jp = j->next;
				if (c->waiting_tail == &j->next)
					c->waiting_tail = jp;
				mqtt_job_free(j);
				return;
			}
		}
		for (size_t i = 0; i < MQTT_INFLIGHT_BUCKETS; i++) {
			for (struct mqtt_job **jp = &c->inflight[i]; *jp; jp = &(*jp)->next) {
				if ((*jp)->token == token) {
					struct mqtt_job *j = *jp;
					*jp = j->next;
					mqtt_job_free(j);
					return;
				}
			}
		}
	}
}

/* ---- init and cleanup ------------------------------------------------------------------ */

static void mqtt_cleanup(void *state)
{
	struct mqtt_plugin *p = state;
	if (!p)
		return;
	p->closing = 1;
	plugin_early_drop_all(p->host, p->ctx, &p->early);
	while (p->brokers) {
		struct mqtt_broker *b = p->brokers;
		p->brokers = b->next;
		if (b->conn) {
			struct mqtt_conn *c = b->conn;
			c->b = NULL;
			b->conn = NULL;
			snprintf(c->why, sizeof c->why, "shutting down");
			mqtt_conn_teardown(c);
		}
		free(b);
	}
	mosquitto_lib_cleanup();
	free(p);
}

static int mqtt_option_int(const struct hookd_host *host, struct hookd_plugin_ctx *ctx,
			   const char *key, long lo, long hi, long dflt, long *out, char *err,
			   size_t errlen)
{
	const char *v = host->option(ctx, key);
	*out = dflt;
	if (!v)
		return 0;
	char *e = NULL;
	long n = strtol(v, &e, 10);
	if (!*v || *e || n < lo || n > hi) {
		snprintf(err, errlen, "plugins.options.mqtt.%s must be a number from %ld to %ld",
			 key, lo, hi);
		return -1;
	}
	*out = n;
	return 0;
}

static int mqtt_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		     char *err, size_t errlen)
{
	struct mqtt_plugin *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->host = host;
	p->ctx = ctx;
	long ct, ka;
	if (mqtt_option_int(host, ctx, "connect_timeout_ms", 1, 600000, MQTT_CONNECT_TIMEOUT_MS,
			    &ct, err, errlen) != 0 ||
	    mqtt_option_int(host, ctx, "keepalive_s", 5, 65535, MQTT_KEEPALIVE_S, &ka, err,
			    errlen) != 0) {
		free(p);
		return -1;
	}
	p->connect_timeout_ms = (uint32_t)ct;
	p->keepalive_s = (int)ka;
	p->username = host->option(ctx, "username");
	p->password = host->option(ctx, "password");
	if (p->password && !p->username) {
		snprintf(err, errlen, "plugins.options.mqtt.password needs a username");
		free(p);
		return -1;
	}
	if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
		snprintf(err, errlen, "libmosquitto did not start");
		free(p);
		return -1;
	}
	p->sent = host->counter(ctx, "sent", "publishes the broker acknowledged (PUBACK)");
	p->failed = host->counter(ctx, "failed", "attempts that failed (retryable)");
	p->transport = (struct hookd_transport){
	    .size = sizeof p->transport,
	    .scheme = "mqtt",
	    .needs_address = 1,
	    .check_url = mqtt_check_url,
	    .send = mqtt_send,
	    .cancel = mqtt_cancel,
	};
	if (host->register_transport(ctx, &p->transport) != 0) {
		snprintf(err, errlen, "cannot register the mqtt:// transport");
		mosquitto_lib_cleanup();
		free(p);
		return -1;
	}
	*state = p;
	return 0;
}

HOOKD_PLUGIN_DEFINE(.name = "mqtt", .version = "1.0", .init = mqtt_init, .cleanup = mqtt_cleanup,
		    .description =
			"mqtt://HOST:PORT/TOPIC: MQTT 5 publish at QoS 1, sent on PUBACK");
