/* plugin.c - the plugin host: loading shared objects from a directory (ABI checked before
 * anything of the plugin runs), the host function table of include/hookd/plugin.h (one
 * context per plugin), what plugins registered, and the completion queue that brings a
 * plugin's complete() calls, from any thread, to the loop.
 *
 * Loop thread only, except the host functions the public header marks "any thread":
 * log, complete, counter_add, alloc/realloc/free, auth_resume and destination_allowed. */
#include "plugin.h"
#include "plugin-t.h"

#include "err.h"
#include "log.h"
#include "ssrf.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reasons and plugin error texts are at most this long in messages: a plugin's err buffer
 * is this size too (the header lets it write errlen bytes). */
#define PLUGIN_ERR_MAX 512
/* A counter's name part ([a-z0-9_]+): the metric name stays readable and bounded. */
#define PLUGIN_COUNTER_NAME_MAX 64
/* A transport scheme: URL schemes in use are short ("nats", "redis", "mqtt", "file"). */
#define PLUGIN_SCHEME_MAX 32

/* The layout of ABI 1.0's descriptor: a plugin built against 1.0 has no description. */
#define PLUGIN_DESC_SIZE_1_0 offsetof(struct hookd_plugin, description)

struct plugin_option_kv {
	char *key;
	char *value;
};

struct hookd_timer {
	struct event ev;
	struct hookd_plugin_ctx *ctx;
	void (*cb)(void *arg);
	void *arg;
	int firing;  /* cb runs: timer_stop from inside it is a no-op, the host frees it */
	struct hookd_timer *prev, *next;
};

struct hookd_watch {
	struct event ev;
	struct hookd_plugin_ctx *ctx;
	int fd;
	int events;
	void (*cb)(int fd, int events, void *arg);
	void *arg;
	struct hookd_watch *prev, *next;
};

struct hookd_counter {
	struct hookd_plugin_ctx *ctx;
	char name[PLUGIN_COUNTER_NAME_MAX + 1];
	char *metric;
	char *help;
	_Atomic uint64_t value;
	struct hookd_counter *next;
};

/* A registered transport or auth scheme: the host's own copy of the plugin's table (only
 * the bytes its size covers, the rest zero), so a newer host never reads past an older
 * plugin's struct. */
struct plugin_reg {
	struct plugin_transport pt;
	struct plugin_auth pa;
	struct hookd_transport t;
	struct hookd_auth a;
	int is_auth;
	struct plugin_reg *next;
};

struct hookd_plugin_ctx {
	struct plugins *p;
	char name[33];
	char version[64];
	char path[PATH_MAX];
	void *dl;
	struct hookd_plugin desc;   /* the host's copy, fields past the plugin's size zero */
	void *state;
	int in_init;
	int loaded;                 /* init succeeded and the plugin was kept */
	char reg_err[PLUGIN_ERR_MAX]; /* a registration the host refused during init */
	struct plugin_option_kv *opts;
	size_t n_opts;
	struct hookd_timer *timers;
	struct hookd_watch *watches;
	struct hookd_counter *counters;
	_Atomic int64_t mem_bytes;  /* what alloc/realloc hold for the plugin */
	struct hookd_plugin_ctx *next;
};

/* One complete() waiting for the loop. */
struct plugin_completion {
	struct hookd_plugin_ctx *ctx;
	uint64_t token;
	struct hookd_outcome o;
	char *message;
	struct plugin_completion *next;
};

struct plugins {
	struct event_base *base;
	struct hookd_plugin_ctx *ctxs; /* load order */
	struct plugin_reg *regs;       /* registration order (plugin_reg_append) */
	struct ssrf_policy ssrf;
	pthread_mutex_t mu;            /* the completion queue */
	struct plugin_completion *q_head, *q_tail;
	struct event *wake;
	plugins_complete_fn complete_fn;
	void *complete_arg;
};

static struct plugins *plugins_now;
static struct plugin_auth_hooks auth_hooks;

/* ---- small helpers ------------------------------------------------------------------ */

static bool plugin_name_valid(const char *s)
{
	size_t i = 0;
	for (; s[i] && i <= 32; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return i >= 1 && i <= 32;
}

/* [a-z][a-z0-9+.-]*, as RFC 3986 with lower case only (the host lowers a URL's scheme). */
static bool plugin_scheme_valid(const char *s)
{
	size_t i;
	if (!(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (i = 1; s[i] && i <= PLUGIN_SCHEME_MAX; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '+' ||
		      s[i] == '.' || s[i] == '-'))
			return false;
	return i <= PLUGIN_SCHEME_MAX;
}

static bool plugin_counter_name_valid(const char *s)
{
	size_t i = 0;
	for (; s[i] && i <= PLUGIN_COUNTER_NAME_MAX; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return i >= 1 && i <= PLUGIN_COUNTER_NAME_MAX;
}

static enum log_level plugin_level(enum hookd_log_level l)
{
	switch (l) {
	case HOOKD_LOG_DEBUG:
		return LOG_DEBUG;
	case HOOKD_LOG_INFO:
		return LOG_INFO;
	case HOOKD_LOG_WARN:
		return LOG_WARN;
	default:
		return LOG_ERROR;
	}
}

/* ---- the host table ----------------------------------------------------------------- */

static void host_log(struct hookd_plugin_ctx *ctx, enum hookd_log_level level, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));
static void host_log(struct hookd_plugin_ctx *ctx, enum hookd_log_level level, const char *fmt,
		     ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt ? fmt : "", ap);
	va_end(ap);
	/* Control characters would let a plugin forge log lines. */
	for (char *c = line; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	log_msg(plugin_level(level), "plugin %s: %s", ctx ? ctx->name : "?", line);
}

static const char *host_option(struct hookd_plugin_ctx *ctx, const char *key)
{
	for (size_t i = 0; ctx && key && i < ctx->n_opts; i++)
		if (strcmp(ctx->opts[i].key, key) == 0)
			return ctx->opts[i].value;
	return NULL;
}

static void timer_unlink(struct hookd_timer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		t->ctx->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
}

static void timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct hookd_timer *t = arg;
	t->firing = 1;
	t->cb(t->arg);
	timer_unlink(t);
	free(t);
}

static struct hookd_timer *host_timer_start(struct hookd_plugin_ctx *ctx, uint32_t ms,
					    void (*cb)(void *arg), void *arg)
{
	struct hookd_timer *t;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	if (!ctx || !cb || !(t = calloc(1, sizeof(*t))))
		return NULL;
	t->ctx = ctx;
	t->cb = cb;
	t->arg = arg;
	evtimer_assign(&t->ev, ctx->p->base, timer_fire, t);
	if (evtimer_add(&t->ev, &tv) != 0) {
		free(t);
		return NULL;
	}
	t->next = ctx->timers;
	if (ctx->timers)
		ctx->timers->prev = t;
	ctx->timers = t;
	return t;
}

static void host_timer_stop(struct hookd_plugin_ctx *ctx, struct hookd_timer *t)
{
	if (!t || t->firing)
		return;
	evtimer_del(&t->ev);
	timer_unlink(t);
	free(t);
}

static void watch_fire(evutil_socket_t fd, short what, void *arg)
{
	struct hookd_watch *w = arg;
	int ev = ((what & EV_READ) ? HOOKD_FD_READ : 0) | ((what & EV_WRITE) ? HOOKD_FD_WRITE : 0);
	w->cb(w->fd, ev, w->arg); /* may unwatch (free) w: nothing after this */
}

static int watch_arm(struct hookd_watch *w, int events)
{
	short kind = EV_PERSIST | ((events & HOOKD_FD_READ) ? EV_READ : 0) |
		     ((events & HOOKD_FD_WRITE) ? EV_WRITE : 0);
	w->events = events;
	event_assign(&w->ev, w->ctx->p->base, w->fd, kind, watch_fire, w);
	return (events & (HOOKD_FD_READ | HOOKD_FD_WRITE)) ? event_add(&w->ev, NULL) : 0;
}

static struct hookd_watch *host_watch_fd(struct hookd_plugin_ctx *ctx, int fd, int events,
					 void (*cb)(int fd, int events, void *arg), void *arg)
{
	struct hookd_watch *w;
	if (!ctx || fd < 0 || !cb || !(w = calloc(1, sizeof(*w))))
		return NULL;
	w->ctx = ctx;
	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	if (watch_arm(w, events) != 0) {
		free(w);
		return NULL;
	}
	w->next = ctx->watches;
	if (ctx->watches)
		ctx->watches->prev = w;
	ctx->watches = w;
	return w;
}

static void host_watch_update(struct hookd_plugin_ctx *ctx, struct hookd_watch *w, int events)
{
	if (!w || w->events == events)
		return;
	event_del(&w->ev);
	if (watch_arm(w, events) != 0)
		log_error("plugin %s: cannot watch fd %d", w->ctx->name, w->fd);
}

static void host_unwatch_fd(struct hookd_plugin_ctx *ctx, struct hookd_watch *w)
{
	if (!w)
		return;
	event_del(&w->ev);
	if (w->prev)
		w->prev->next = w->next;
	else
		w->ctx->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

static void plugins_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct plugins *p = arg;
	struct plugin_completion *c, *next;

	pthread_mutex_lock(&p->mu);
	c = p->q_head;
	p->q_head = p->q_tail = NULL;
	pthread_mutex_unlock(&p->mu);
	for (; c; c = next) {
		next = c->next;
		c->o.message = c->message;
		if (p->complete_fn)
			p->complete_fn(p->complete_arg, c->ctx, c->token, &c->o);
		else
			log_warn("plugin %s: complete() for token %llu ignored: no transport is "
				 "waiting (shutting down)",
				 c->ctx->name, (unsigned long long)c->token);
		free(c->message);
		free(c);
	}
}

/* Any thread: the outcome is copied (within the size the plugin was built with) and the
 * loop handles it (plugins_wake_cb). */
static void host_complete(struct hookd_plugin_ctx *ctx, uint64_t token,
			  const struct hookd_outcome *o)
{
	struct plugin_completion *c;
	struct plugins *p;
	if (!ctx)
		return;
	p = ctx->p;
	if (!(c = calloc(1, sizeof(*c)))) {
		log_error("plugin %s: out of memory queueing complete() of token %llu: the "
			  "attempt will time out",
			  ctx->name, (unsigned long long)token);
		return;
	}
	c->ctx = ctx;
	c->token = token;
	c->o.size = sizeof(c->o);
	c->o.retry_after_ms = -1;
	if (!o || o->size < offsetof(struct hookd_outcome, status)) {
		c->o.result = HOOKD_RETRY;
		c->message = strdup("the plugin completed without an outcome");
	} else {
		c->o.result = o->result;
		if (o->size >= offsetof(struct hookd_outcome, message))
			c->o.status = o->status;
		if (o->size >= offsetof(struct hookd_outcome, retry_after_ms) && o->message)
			c->message = strndup(o->message, PLUGIN_ERR_MAX);
		if (o->size >= sizeof(struct hookd_outcome))
			c->o.retry_after_ms = o->retry_after_ms;
	}
	pthread_mutex_lock(&p->mu);
	if (p->q_tail)
		p->q_tail->next = c;
	else
		p->q_head = c;
	p->q_tail = c;
	pthread_mutex_unlock(&p->mu);
	event_active(p->wake, EV_READ, 0);
}

static struct hookd_counter *host_counter(struct hookd_plugin_ctx *ctx, const char *name,
					  const char *help)
{
	struct hookd_counter *c;
	char metric[256];
	if (!ctx || !name || !plugin_counter_name_valid(name)) {
		log_error("plugin %s: counter name %s refused: expected 1 to %d of a-z 0-9 _",
			  ctx ? ctx->name : "?", name ? name : "(null)", PLUGIN_COUNTER_NAME_MAX);
		return NULL;
	}
	for (c = ctx->counters; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	if (!(c = calloc(1, sizeof(*c))))
		return NULL;
	snprintf(metric, sizeof(metric), "hookd_plugin_%s_%s_total", ctx->name, name);
	for (char *m = metric; *m; m++)
		if (*m == '-')
			*m = '_';
	c->ctx = ctx;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->metric = strdup(metric);
	c->help = strndup(help && *help ? help : name, 200);
	if (!c->metric || !c->help) {
		free(c->metric);
		free(c->help);
		free(c);
		return NULL;
	}
	for (char *h = c->help; *h; h++)
		if ((unsigned char)*h < 0x20 || *h == '\\')
			*h = ' ';
	c->next = ctx->counters;
	ctx->counters = c;
	return c;
}

static void host_counter_add(struct hookd_counter *c, uint64_t n)
{
	if (c)
		atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

/* Each block carries its size in front, so the plugin's share can be accounted. 16 bytes
 * keep the caller's pointer aligned as malloc's is (max_align_t on x86-64). */
#define PLUGIN_ALLOC_HEAD 16

static void *host_alloc(struct hookd_plugin_ctx *ctx, size_t n)
{
	unsigned char *b;
	if (n > SIZE_MAX - PLUGIN_ALLOC_HEAD || !(b = malloc(PLUGIN_ALLOC_HEAD + (n ? n : 1))))
		return NULL;
	memcpy(b, &n, sizeof(n));
	if (ctx)
		atomic_fetch_add_explicit(&ctx->mem_bytes, (int64_t)n, memory_order_relaxed);
	return b + PLUGIN_ALLOC_HEAD;
}

static void host_free(struct hookd_plugin_ctx *ctx, void *ptr)
{
	unsigned char *b;
	size_t n;
	if (!ptr)
		return;
	b = (unsigned char *)ptr - PLUGIN_ALLOC_HEAD;
	memcpy(&n, b, sizeof(n));
	if (ctx)
		atomic_fetch_sub_explicit(&ctx->mem_bytes, (int64_t)n, memory_order_relaxed);
	free(b);
}

static void *host_realloc(struct hookd_plugin_ctx *ctx, void *ptr, size_t n)
{
	unsigned char *b, *nb;
	size_t was;
	if (!ptr)
		return host_alloc(ctx, n);
	if (n == 0) {
		host_free(ctx, ptr);
		return NULL;
	}
	b = (unsigned char *)ptr - PLUGIN_ALLOC_HEAD;
	memcpy(&was, b, sizeof(was));
	if (n > SIZE_MAX - PLUGIN_ALLOC_HEAD || !(nb = realloc(b, PLUGIN_ALLOC_HEAD + n)))
		return NULL;
	memcpy(nb, &n, sizeof(n));
	if (ctx)
		atomic_fetch_add_explicit(&ctx->mem_bytes, (int64_t)n - (int64_t)was,
					  memory_order_relaxed);
	return nb + PLUGIN_ALLOC_HEAD;
}

static struct plugin_reg *plugins_find_reg(const struct plugins *p, const char *key, int is_auth)
{
	for (struct plugin_reg *r = p ? p->regs : NULL; r; r = r->next)
		if (r->is_auth == is_auth && strcmp(is_auth ? r->a.name : r->t.scheme, key) == 0)
			return r;
	return NULL;
}

/* Registration order is the order of listings (plugins_schemes, the start-up line). */
static void plugin_reg_append(struct plugins *p, struct plugin_reg *r)
{
	struct plugin_reg **rp = &p->regs;
	while (*rp)
		rp = &(*rp)->next;
	r->next = NULL;
	*rp = r;
}

/* Refuses a registration: the reason is kept and the plugin refused after init. */
static int plugin_reg_refuse(struct hookd_plugin_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int plugin_reg_refuse(struct hookd_plugin_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	if (!ctx->reg_err[0]) {
		va_start(ap, fmt);
		vsnprintf(ctx->reg_err, sizeof(ctx->reg_err), fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int host_register_transport(struct hookd_plugin_ctx *ctx, const struct hookd_transport *t)
{
	struct plugin_reg *r, *other;
	if (!ctx)
		return -1;
	if (!ctx->in_init) {
		log_error("plugin %s: register_transport outside init() ignored", ctx->name);
		return -1;
	}
	if (!t || t->size < offsetof(struct hookd_transport, cancel) || !t->scheme || !t->send)
		return plugin_reg_refuse(ctx, "malformed transport (needs size, scheme and send)");
	if (!plugin_scheme_valid(t->scheme))
		return plugin_reg_refuse(ctx,
					 "transport scheme '%.40s' is not [a-z][a-z0-9+.-]* (at most "
					 "%d characters)",
					 t->scheme, PLUGIN_SCHEME_MAX);
	if (strcmp(t->scheme, "http") == 0 || strcmp(t->scheme, "https") == 0)
		return plugin_reg_refuse(ctx, "transport scheme '%s' is built into hookd",
					 t->scheme);
	if ((other = plugins_find_reg(ctx->p, t->scheme, 0)))
		return plugin_reg_refuse(ctx,
					 "transport scheme '%s' is already registered by plugin %s "
					 "(%s)",
					 t->scheme, other->pt.ctx->name, other->pt.ctx->path);
	if (!(r = calloc(1, sizeof(*r))))
		return plugin_reg_refuse(ctx, "out of memory");
	memcpy(&r->t, t, t->size < sizeof(r->t) ? t->size : sizeof(r->t));
	r->t.size = sizeof(r->t);
	r->pt.t = &r->t;
	r->pt.ctx = ctx;
	plugin_reg_append(ctx->p, r);
	return 0;
}

static int host_register_auth(struct hookd_plugin_ctx *ctx, const struct hookd_auth *a)
{
	struct plugin_reg *r, *other;
	if (!ctx)
		return -1;
	if (!ctx->in_init) {
		log_error("plugin %s: register_auth outside init() ignored", ctx->name);
		return -1;
	}
	if (!a || a->size < offsetof(struct hookd_auth, decorate) + sizeof(a->decorate) ||
	    !a->name || !a->decorate)
		return plugin_reg_refuse(ctx, "malformed auth scheme (needs size, name and decorate)");
	if (!plugin_name_valid(a->name))
		return plugin_reg_refuse(ctx, "auth scheme name '%.40s' is not [a-z0-9_-]{1,32}",
					 a->name);
	if ((other = plugins_find_reg(ctx->p, a->name, 1)))
		return plugin_reg_refuse(ctx,
					 "auth scheme '%s' is already registered by plugin %s (%s)",
					 a->name, other->pa.ctx->name, other->pa.ctx->path);
	if (!(r = calloc(1, sizeof(*r))))
		return plugin_reg_refuse(ctx, "out of memory");
	memcpy(&r->a, a, a->size < sizeof(r->a) ? a->size : sizeof(r->a));
	r->a.size = sizeof(r->a);
	r->pa.a = &r->a;
	r->pa.ctx = ctx;
	r->is_auth = 1;
	plugin_reg_append(ctx->p, r);
	return 0;
}

static void host_auth_add_header(struct hookd_auth_out *out, const char *name, const char *value)
{
	if (auth_hooks.add_header)
		auth_hooks.add_header(out, name, value);
	else
		log_error("plugin: auth_add_header called, but this hookd has no auth path");
}

static void host_auth_client_cert(struct hookd_auth_out *out, const char *cert_path,
				  const char *key_path)
{
	if (auth_hooks.client_cert)
		auth_hooks.client_cert(out, cert_path, key_path);
	else
		log_error("plugin: auth_client_cert called, but this hookd has no auth path");
}

static void host_auth_resume(struct hookd_plugin_ctx *ctx, uint64_t token, const char *error)
{
	if (auth_hooks.resume)
		auth_hooks.resume(ctx, token, error);
	else
		log_error("plugin %s: auth_resume called, but this hookd has no auth path",
			  ctx ? ctx->name : "?");
}

static int host_destination_allowed(struct hookd_plugin_ctx *ctx, const struct sockaddr *sa,
				    socklen_t salen)
{
	if (!ctx || !sa)
		return 0;
	if ((sa->sa_family == AF_INET && salen < (socklen_t)sizeof(struct sockaddr_in)) ||
	    (sa->sa_family == AF_INET6 && salen < (socklen_t)sizeof(struct sockaddr_in6)) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return 0;
	return ssrf_policy_check(&ctx->p->ssrf, sa, NULL) ? 1 : 0;
}

static const struct hookd_host host_table = {
	.size = sizeof(struct hookd_host),
	.abi_major = HOOKD_PLUGIN_ABI_MAJOR,
	.abi_minor = HOOKD_PLUGIN_ABI_MINOR,
	.log = host_log,
	.option = host_option,
	.timer_start = host_timer_start,
	.timer_stop = host_timer_stop,
	.watch_fd = host_watch_fd,
	.watch_update = host_watch_update,
	.unwatch_fd = host_unwatch_fd,
	.complete = host_complete,
	.counter = host_counter,
	.counter_add = host_counter_add,
	.alloc = host_alloc,
	.realloc = host_realloc,
	.free = host_free,
	.register_transport = host_register_transport,
	.register_auth = host_register_auth,
	.auth_add_header = host_auth_add_header,
	.auth_client_cert = host_auth_client_cert,
	.auth_resume = host_auth_resume,
	.destination_allowed = host_destination_allowed,
};

/* ---- loading ------------------------------------------------------------------------ */

/* Drops what ctx registered (a refused plugin's, or at unload). */
static void plugin_unregister(struct plugins *p, struct hookd_plugin_ctx *ctx)
{
	struct plugin_reg **rp = &p->regs;
	while (*rp) {
		struct plugin_reg *r = *rp;
		if ((r->is_auth ? r->pa.ctx : r->pt.ctx) == ctx) {
			*rp = r->next;
			free(r);
		} else {
			rp = &r->next;
		}
	}
}

/* Frees the host's side of ctx: timers and watches the plugin left, counters, options. */
static void plugin_ctx_free(struct plugins *p, struct hookd_plugin_ctx *ctx)
{
	plugin_unregister(p, ctx);
	while (ctx->timers) {
		struct hookd_timer *t = ctx->timers;
		evtimer_del(&t->ev);
		ctx->timers = t->next;
		free(t);
	}
	while (ctx->watches) {
		struct hookd_watch *w = ctx->watches;
		event_del(&w->ev);
		ctx->watches = w->next;
		free(w);
	}
	while (ctx->counters) {
		struct hookd_counter *c = ctx->counters;
		ctx->counters = c->next;
		free(c->metric);
		free(c->help);
		free(c);
	}
	for (size_t i = 0; i < ctx->n_opts; i++) {
		free(ctx->opts[i].key);
		free(ctx->opts[i].value);
	}
	free(ctx->opts);
	if (ctx->dl)
		dlclose(ctx->dl);
	free(ctx);
}

/* The file's name without ".so": what plugins.optional matches when the descriptor cannot
 * be read. */
static void plugin_stem(const char *file, char *out, size_t len)
{
	size_t n = strlen(file);
	if (n > 3 && strcmp(file + n - 3, ".so") == 0)
		n -= 3;
	snprintf(out, len, "%.*s", (int)n, file);
}

static bool plugin_is_elf(const char *path)
{
	unsigned char magic[SELFMAG];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool elf = false;
	if (fd >= 0) {
		elf = read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
		      memcmp(magic, ELFMAG, SELFMAG) == 0;
		close(fd);
	}
	return elf;
}

/* Copies the plugin's options out of the setup. */
static int plugin_ctx_options(struct hookd_plugin_ctx *ctx, const struct plugins_setup *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n_options; i++)
		n += strcmp(s->options[i].plugin, ctx->name) == 0;
	if (!n)
		return HOOKD_OK;
	if (!(ctx->opts = calloc(n, sizeof(*ctx->opts))))
		return HOOKD_ENOMEM;
	for (size_t i = 0; i < s->n_options; i++) {
		const struct plugins_option *o = &s->options[i];
		struct plugin_option_kv *kv = &ctx->opts[ctx->n_opts];
		if (strcmp(o->plugin, ctx->name) != 0)
			continue;
		kv->key = strdup(o->key);
		kv->value = strdup(o->value);
		ctx->n_opts++;
		if (!kv->key || !kv->value)
			return HOOKD_ENOMEM;
	}
	return HOOKD_OK;
}

/* Opens, checks and initializes one plugin. HOOKD_OK with ctx kept in p; otherwise the
 * reason in why ("missing symbol hookd_plugin"), *name_out the plugin's name or its file's
 * stem (for plugins.optional), and nothing of it left loaded. */
static int plugin_load_one(struct plugins *p, const struct plugins_setup *s, const char *dir,
			   const char *file, char *name_out, size_t name_len, char *why,
			   size_t whylen)
{
	struct hookd_plugin_ctx *ctx = calloc(1, sizeof(*ctx));
	const struct hookd_plugin *desc;
	const ElfW(Sym) *sym = NULL;
	Dl_info info;
	uint32_t major, minor, size;
	char err[PLUGIN_ERR_MAX] = "";
	size_t n = 0;
	int rc;

	plugin_stem(file, name_out, name_len);
	if (!ctx) {
		err_set(why, whylen, "out of memory");
		return HOOKD_ENOMEM;
	}
	ctx->p = p;
	snprintf(ctx->path, sizeof(ctx->path), "%s/%s", dir, file);
	snprintf(ctx->name, sizeof(ctx->name), "%.32s", name_out);
	dlerror();
	if (!(ctx->dl = dlopen(ctx->path, RTLD_NOW | RTLD_LOCAL))) {
		const char *e = dlerror();
		if (!plugin_is_elf(ctx->path))
			err_set(why, whylen, "not a shared object (%s)", e ? e : "dlopen failed");
		else
			err_set(why, whylen, "cannot be loaded: %s", e ? e : "dlopen failed");
		goto refuse;
	}
	dlerror();
	desc = dlsym(ctx->dl, HOOKD_PLUGIN_SYMBOL);
	if (!desc) {
		err_set(why, whylen, "missing symbol %s (HOOKD_PLUGIN_DEFINE writes it)",
			HOOKD_PLUGIN_SYMBOL);
		goto refuse;
	}
	/* The symbol's size from the ELF symbol table, when the loader gives it: the host reads
	 * no byte of the descriptor past it. */
	if (dladdr1(desc, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && sym->st_size)
		n = sym->st_size;
	if (n && n < 2 * sizeof(uint32_t)) {
		err_set(why, whylen, "symbol %s is %zu bytes, too small for an ABI version",
			HOOKD_PLUGIN_SYMBOL, n);
		goto refuse;
	}
	/* Version first: nothing else of the descriptor is read before it is accepted. */
	memcpy(&major, &desc->abi_major, sizeof(major));
	memcpy(&minor, &desc->abi_minor, sizeof(minor));
	if (major != HOOKD_PLUGIN_ABI_MAJOR) {
		err_set(why, whylen,
			"wrong ABI major: built for plugin ABI %u.%u, this hookd has ABI %d.%d "
			"(rebuild it against this hookd's hookd/plugin.h)",
			major, minor, HOOKD_PLUGIN_ABI_MAJOR, HOOKD_PLUGIN_ABI_MINOR);
		goto refuse;
	}
	if (minor > HOOKD_PLUGIN_ABI_MINOR) {
		err_set(why, whylen,
			"wrong ABI minor: built for plugin ABI %u.%u, newer than this hookd's ABI "
			"%d.%d (upgrade hookd or rebuild the plugin against its hookd/plugin.h)",
			major, minor, HOOKD_PLUGIN_ABI_MAJOR, HOOKD_PLUGIN_ABI_MINOR);
		goto refuse;
	}
	memcpy(&size, &desc->size, sizeof(size));
	if (size < PLUGIN_DESC_SIZE_1_0 || (n && size > n)) {
		err_set(why, whylen, "malformed descriptor: size %u (ABI %u.%u's is at least %zu)",
			size, major, minor, (size_t)PLUGIN_DESC_SIZE_1_0);
		goto refuse;
	}
	memcpy(&ctx->desc, desc, size < sizeof(ctx->desc) ? size : sizeof(ctx->desc));
	if (!ctx->desc.name || !plugin_name_valid(ctx->desc.name)) {
		err_set(why, whylen, "the plugin's name is not [a-z0-9_-]{1,32}");
		goto refuse;
	}
	snprintf(ctx->name, sizeof(ctx->name), "%s", ctx->desc.name);
	snprintf(name_out, name_len, "%s", ctx->desc.name);
	snprintf(ctx->version, sizeof(ctx->version), "%s",
		 ctx->desc.version ? ctx->desc.version : "?");
	for (struct hookd_plugin_ctx *o = p->ctxs; o; o = o->next)
		if (strcmp(o->name, ctx->name) == 0) {
			err_set(why, whylen, "plugin name '%s' is already taken by %s", ctx->name,
				o->path);
			goto refuse;
		}
	if (!ctx->desc.init) {
		err_set(why, whylen, "the descriptor has no init function");
		goto refuse;
	}
	if (plugin_ctx_options(ctx, s) != HOOKD_OK) {
		err_set(why, whylen, "out of memory");
		goto refuse;
	}
	ctx->in_init = 1;
	rc = ctx->desc.init(&host_table, ctx, &ctx->state, err, sizeof(err));
	ctx->in_init = 0;
	err[sizeof(err) - 1] = '\0';
	/* A registration the host refused is the reason, whatever init made of it. */
	if (ctx->reg_err[0]) {
		err_set(why, whylen, "%s", ctx->reg_err);
		if (rc == 0 && ctx->desc.cleanup)
			ctx->desc.cleanup(ctx->state);
		goto refuse;
	}
	if (rc != 0) {
		err_set(why, whylen, "init failed: %s", err[0] ? err : "(no reason given)");
		goto refuse;
	}
	for (struct plugin_reg *r = p->regs; r; r = r->next) {
		if (!r->is_auth && r->pt.ctx == ctx)
			r->pt.state = ctx->state;
		if (r->is_auth && r->pa.ctx == ctx)
			r->pa.state = ctx->state;
	}
	ctx->loaded = 1;
	ctx->next = NULL;
	if (!p->ctxs) {
		p->ctxs = ctx;
	} else {
		struct hookd_plugin_ctx *last = p->ctxs;
		while (last->next)
			last = last->next;
		last->next = ctx;
	}
	return HOOKD_OK;
refuse:
	plugin_ctx_free(p, ctx);
	return HOOKD_EINVAL;
}

/* "transports nats, auth bearer" for the start-up line. */
static void plugin_describe(const struct plugins *p, const struct hookd_plugin_ctx *ctx,
			    char *buf, size_t len)
{
	size_t off = 0;
	int nt = 0, na = 0;
	buf[0] = '\0';
	for (int pass = 0; pass < 2; pass++) {
		for (const struct plugin_reg *r = p->regs; r; r = r->next) {
			if (r->is_auth != pass || (pass ? r->pa.ctx : r->pt.ctx) != ctx)
				continue;
			int *cnt = pass ? &na : &nt;
			int w = snprintf(buf + off, len - off, "%s%s%s", off ? (*cnt ? ", " : "; ") : "",
					 *cnt ? "" : (pass ? "auth scheme " : "transport "),
					 pass ? r->a.name : r->t.scheme);
			(*cnt)++;
			if (w < 0 || (size_t)w >= len - off)
				return;
			off += (size_t)w;
		}
	}
	if (!off)
		snprintf(buf, len, "nothing registered");
}

static int plugins_so_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return d->d_name[0] != '.' && n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

static bool plugins_is_optional(const struct plugins_setup *s, const char *name)
{
	for (size_t i = 0; i < s->n_optional; i++)
		if (strcmp(s->optional[i], name) == 0)
			return true;
	return false;
}

int plugins_open(struct plugins **out, struct event_base *base, const struct plugins_setup *s,
		 char *err, size_t errlen)
{
	struct plugins *p = calloc(1, sizeof(*p));
	struct dirent **names = NULL;
	struct stat st;
	int n = 0, rc = HOOKD_OK;

	*out = NULL;
	if (!p || !(p->wake = event_new(base, -1, 0, plugins_wake_cb, p))) {
		free(p);
		err_set(err, errlen, "plugins: out of memory");
		return HOOKD_ENOMEM;
	}
	p->base = base;
	pthread_mutex_init(&p->mu, NULL);
	for (size_t i = 0; i < s->n_allow; i++) {
		char why[256];
		if (ssrf_policy_allow(&p->ssrf, s->allow[i], why, sizeof(why)) != HOOKD_OK) {
			err_set(err, errlen, "security.allow_destinations: %s", why);
			rc = HOOKD_EINVAL;
			goto done;
		}
	}
	if (stat(s->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		if (!s->dir_explicit) {
			log_info("plugins: no plugin directory at %s; none loaded", s->dir);
			goto done;
		}
		err_set(err, errlen, "plugins.dir: cannot open %s: %s", s->dir,
			stat(s->dir, &st) != 0 ? strerror(errno) : "not a directory");
		rc = HOOKD_ECONFIG;
		goto done;
	}
	n = scandir(s->dir, &names, plugins_so_filter, alphasort);
	if (n < 0) {
		err_set(err, errlen, "plugins: cannot read %s: %s", s->dir, strerror(errno));
		rc = HOOKD_ECONFIG;
		n = 0;
		goto done;
	}
	for (int i = 0; i < n; i++) {
		char name[64], why[2 * PLUGIN_ERR_MAX];
		if (plugin_load_one(p, s, s->dir, names[i]->d_name, name, sizeof(name), why,
				    sizeof(why)) == HOOKD_OK) {
			struct hookd_plugin_ctx *ctx = p->ctxs;
			char what[256];
			while (ctx->next)
				ctx = ctx->next;
			plugin_describe(p, ctx, what, sizeof(what));
			log_info("plugin %s %s loaded from %s: %s", ctx->name, ctx->version,
				 ctx->path, what);
			continue;
		}
		if (plugins_is_optional(s, name)) {
			log_warn("plugin %s/%s refused: %s (plugin '%s' is in plugins.optional: "
				 "not loaded, the others are)",
				 s->dir, names[i]->d_name, why, name);
			continue;
		}
		err_set(err, errlen, "plugin %s/%s refused: %s", s->dir, names[i]->d_name, why);
		rc = HOOKD_ECONFIG;
		break;
	}
	/* Options for a plugin that is not loaded are most likely a misspelt name. */
	for (size_t i = 0; rc == HOOKD_OK && i < s->n_options; i++) {
		const struct hookd_plugin_ctx *ctx = p->ctxs;
		bool seen = false;
		while (ctx && strcmp(ctx->name, s->options[i].plugin) != 0)
			ctx = ctx->next;
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(s->options[k].plugin, s->options[i].plugin) == 0;
		if (!ctx && !seen)
			log_warn("plugins.options.%s: no plugin called '%s' is loaded; its options "
				 "are unused",
				 s->options[i].plugin, s->options[i].plugin);
	}
done:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc != HOOKD_OK) {
		plugins_free(p);
		return rc;
	}
	plugins_now = p;
	*out = p;
	return HOOKD_OK;
}

void plugins_free(struct plugins *p)
{
	struct hookd_plugin_ctx *rev = NULL, *ctx, *next;
	if (!p)
		return;
	if (plugins_now == p)
		plugins_now = NULL;
	/* Reverse load order: a plugin loaded later may have relied on one loaded before. */
	for (ctx = p->ctxs; ctx; ctx = next) {
		next = ctx->next;
		ctx->next = rev;
		rev = ctx;
	}
	for (ctx = rev; ctx; ctx = ctx->next)
		if (ctx->desc.cleanup)
			ctx->desc.cleanup(ctx->state);
	/* Completions queued by the plugins' threads before they stopped. */
	p->complete_fn = NULL;
	plugins_wake_cb(-1, 0, p);
	for (ctx = rev; ctx; ctx = next) {
		next = ctx->next;
		plugin_ctx_free(p, ctx);
	}
	event_free(p->wake);
	ssrf_policy_free(&p->ssrf);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* ---- lookups ------------------------------------------------------------------------ */

struct plugins *plugins_current(void)
{
	return plugins_now;
}

const struct plugin_transport *plugins_transport(const struct plugins *p, const char *scheme)
{
	struct plugin_reg *r = scheme ? plugins_find_reg(p, scheme, 0) : NULL;
	return r ? &r->pt : NULL;
}

const struct plugin_auth *plugins_auth(const struct plugins *p, const char *name)
{
	struct plugin_reg *r = name ? plugins_find_reg(p, name, 1) : NULL;
	return r ? &r->pa : NULL;
}

void plugins_set_auth_hooks(const struct plugin_auth_hooks *hooks)
{
	if (hooks)
		auth_hooks = *hooks;
	else
		memset(&auth_hooks, 0, sizeof(auth_hooks));
}

const char *plugins_ctx_name(const struct hookd_plugin_ctx *ctx)
{
	return ctx ? ctx->name : "?";
}

void plugins_set_complete(struct plugins *p, plugins_complete_fn fn, void *arg)
{
	if (!p)
		return;
	p->complete_fn = fn;
	p->complete_arg = arg;
}

/* The names of the registrations of one kind, ", "-separated, in registration order. */
static void plugins_names(const struct plugins *p, int is_auth, char *buf, size_t len)
{
	size_t off = 0;
	if (!len)
		return;
	buf[0] = '\0';
	for (const struct plugin_reg *r = p ? p->regs : NULL; r; r = r->next) {
		int w;
		if (r->is_auth != is_auth)
			continue;
		w = snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
			     is_auth ? r->a.name : r->t.scheme);
		if (w < 0 || (size_t)w >= len - off)
			return;
		off += (size_t)w;
	}
}

void plugins_schemes(const struct plugins *p, char *buf, size_t len)
{
	plugins_names(p, 0, buf, len);
}

void plugins_auth_schemes(const struct plugins *p, char *buf, size_t len)
{
	plugins_names(p, 1, buf, len);
}

void plugins_each_counter(const struct plugins *p,
			  void (*fn)(void *arg, const char *metric, const char *help,
				     uint64_t value),
			  void *arg)
{
	for (const struct hookd_plugin_ctx *ctx = p ? p->ctxs : NULL; ctx; ctx = ctx->next)
		for (const struct hookd_counter *c = ctx->counters; c; c = c->next)
			fn(arg, c->metric, c->help,
			   atomic_load_explicit(&c->value, memory_order_relaxed));
}

void plugins_each_plugin(const struct plugins *p,
			 void (*fn)(void *arg, const char *name, const char *version,
				    int64_t alloc_bytes),
			 void *arg)
{
	for (const struct hookd_plugin_ctx *ctx = p ? p->ctxs : NULL; ctx; ctx = ctx->next)
		fn(arg, ctx->name, ctx->version,
		   atomic_load_explicit(&ctx->mem_bytes, memory_order_relaxed));
}

const char *plugins_default_dir(void)
{
#if defined(HOOKD_PLUGIN_BUILD_DIR) && defined(HOOKD_BUILD_BIN_DIR)
	static char built[PATH_MAX];
	char exe[PATH_MAX], bin[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		if (realpath(HOOKD_BUILD_BIN_DIR, bin) && strcmp(bin, exe) == 0) {
			snprintf(built, sizeof(built), "%s", HOOKD_PLUGIN_BUILD_DIR);
			return built;
		}
	}
#endif
#ifdef HOOKD_PLUGIN_INSTALL_DIR
	return HOOKD_PLUGIN_INSTALL_DIR;
#else
	return "/usr/local/lib/hookd/plugins";
#endif
}
