/* tests/plugins/abi-1.0/hookd/plugin.h - a copy of include/hookd/plugin.h as it was at ABI
 * 1.0 (everything 1.1 added removed), to build a fixture the way a plugin built against
 * the previous minor is: the host must keep loading it and read nothing past its structs.
 *
 * hookd/plugin.h - the one public ABI for hookd plugins: transports (where a delivery goes).
 *
 * ABI changelog. A minor version only appends fields at the end of the structs below; a
 * plugin built against an older minor keeps loading. A major version breaks the layout.
 *   1.0  2026-12-02  First version: plugin descriptor, host table (log, options, timers,
 *                    fd watches, complete, counters, allocation), transports.
 *
 * A plugin is a shared object that exports one data symbol, `hookd_plugin` (a struct
 * hookd_plugin; HOOKD_PLUGIN_DEFINE writes it). The host reads abi_major and abi_minor
 * before anything else: another major, or a minor newer than the host's, is refused and
 * nothing of the plugin is called. Then init() runs with the host's function table; it
 * registers what the plugin provides and returns a state pointer, which every callback and
 * finally cleanup() get back. Plugins share nothing global with each other.
 *
 * Threads: init, cleanup, and every callback the host makes (send, check_url, cancel,
 * check, decorate, timer and fd callbacks) run on the host's event loop thread and must
 * not block it. A plugin whose client library blocks runs that client on a thread of its
 * own, or drives it through watch_fd and timer_start. Functions marked "any thread" below
 * may be called from the plugin's own threads.
 *
 * Memory: every pointer the host passes is borrowed and valid only during the call it was
 * passed to, unless stated otherwise. Copy what you keep.
 *
 * Build one with nothing but this header:
 *   cc -std=c17 -shared -fPIC -I/usr/local/include -o myplugin.so myplugin.c */
#ifndef HOOKD_PLUGIN_H
#define HOOKD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HOOKD_PLUGIN_ABI_MAJOR 1
#define HOOKD_PLUGIN_ABI_MINOR 0

/* The name of the data symbol the host looks up. */
#define HOOKD_PLUGIN_SYMBOL "hookd_plugin"

#if defined(__GNUC__)
#define HOOKD_PLUGIN_EXPORT __attribute__((visibility("default")))
#define HOOKD_PLUGIN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define HOOKD_PLUGIN_EXPORT
#define HOOKD_PLUGIN_PRINTF(f, a)
#endif

/* Opaque to plugins. One context per loaded plugin: every host function takes it, so the
 * host knows whose log line, option, timer or counter it is. */
struct hookd_plugin_ctx;
struct hookd_timer;
struct hookd_watch;
struct hookd_counter;
struct hookd_host;

/* ---- the descriptor ------------------------------------------------------------------ */

struct hookd_plugin {
	uint32_t abi_major;      /* HOOKD_PLUGIN_ABI_MAJOR the plugin was built with */
	uint32_t abi_minor;      /* HOOKD_PLUGIN_ABI_MINOR the plugin was built with */
	uint32_t size;           /* sizeof(struct hookd_plugin) as the plugin was built */
	const char *name;        /* [a-z0-9_-]{1,32}: logs, plugins.options.NAME, metrics */
	const char *version;     /* the plugin's own version, for the start-up log line */
	/* Registers transports and auth schemes through host, sets *state. Returns 0, or
	 * nonzero with a reason in err (NUL-terminated, at most errlen bytes): the host then
	 * refuses the plugin with that reason and does not call cleanup. */
	int (*init)(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		    char *err, size_t errlen);
	/* At shutdown, after the last callback. May be NULL. */
	void (*cleanup)(void *state);
};

/* Defines the exported descriptor: HOOKD_PLUGIN_DEFINE(.name = "file", .version = "1.0",
 * .init = file_init, .cleanup = file_cleanup); */
#define HOOKD_PLUGIN_DEFINE(...)                                                           \
	HOOKD_PLUGIN_EXPORT const struct hookd_plugin hookd_plugin = {                     \
		.abi_major = HOOKD_PLUGIN_ABI_MAJOR, .abi_minor = HOOKD_PLUGIN_ABI_MINOR,  \
		.size = sizeof(struct hookd_plugin), __VA_ARGS__}

/* ---- shared types -------------------------------------------------------------------- */

enum hookd_log_level { HOOKD_LOG_DEBUG = 0, HOOKD_LOG_INFO = 1, HOOKD_LOG_WARN = 2,
		       HOOKD_LOG_ERROR = 3 };

/* watch_fd events (a bit set). */
#define HOOKD_FD_READ 0x1
#define HOOKD_FD_WRITE 0x2

struct hookd_header {
	const char *name;
	const char *value;
};

/* An option of an endpoint's "auth" object, its value as text: a JSON string as is, a
 * number or boolean as written in JSON ("30", "true"). Objects, arrays and null are refused
 * by the host before the plugin sees them. */
struct hookd_option {
	const char *name;
	const char *value;
};

/* ---- transports ---------------------------------------------------------------------- */

/* One attempt of one delivery, valid only during send(). */
struct hookd_send {
	uint32_t size;              /* sizeof(struct hookd_send) as the host was built */
	uint64_t token;             /* names this attempt in complete() and cancel() */
	const char *url;            /* the endpoint's URL, as configured */
	const char *scheme;         /* lower case: "nats" */
	const char *host;           /* from the URL as written ("" for file:///PATH) */
	const char *address;        /* the numeric address the destination guard allowed
				     * ("127.0.0.1", "::1"): connect to this, not to host.
				     * NULL when the transport has needs_address 0 */
	int port;                   /* from the URL; 0 if the URL has none */
	const char *path;           /* percent-decoded, from the first '/' after the
				     * authority ("/orders" for nats://h:4222/orders) */
	const char *query;          /* after '?', not decoded; "" if none */
	const char *app_id;
	const char *endpoint_id;
	const char *message_id;     /* the webhook-id: the same on every attempt */
	const char *delivery_id;
	const char *event_type;
	uint32_t attempt;           /* 1 for the first attempt */
	/* content-type, webhook-id, webhook-timestamp, webhook-signature, then the endpoint's
	 * own headers, then a policy's */
	const struct hookd_header *headers;
	size_t n_headers;
	const char *body;           /* the exact bytes signed */
	size_t body_len;
	uint32_t timeout_ms;        /* the host records a timeout after this (see cancel) */
};

enum hookd_result {
	HOOKD_SENT = 0,        /* delivered: the attempt succeeded */
	HOOKD_RETRY = 1,       /* failed, try again on the endpoint's retry schedule */
	HOOKD_FAILED = 2,      /* failed for good: the delivery goes to the dead letters */
};

struct hookd_outcome {
	uint32_t size;           /* sizeof(struct hookd_outcome) as the plugin was built */
	enum hookd_result result;
	int status;              /* a status to record beside the attempt (0 if none) */
	const char *message;     /* recorded as the attempt's error ("" or NULL on success);
				  * copied by complete() */
	int64_t retry_after_ms;  /* HOOKD_RETRY: wait at least this long; -1 = the schedule */
};

struct hookd_transport {
	uint32_t size;           /* sizeof(struct hookd_transport) as the plugin was built */
	const char *scheme;      /* URL scheme it serves, lower case ([a-z][a-z0-9+.-]*):
				  * endpoints select the transport with "SCHEME://..." */
	/* 1: the URL names a network server (SCHEME://HOST[:PORT]/...): the host resolves
	 * HOST and applies the destination guard to every address before send(). 0: a local
	 * destination (file:///PATH): no host part, address is NULL. */
	int needs_address;
	/* Optional: checks an endpoint URL when the endpoint is created or changed, after the
	 * host's own checks of the scheme and authority. Returns 0, or nonzero with a reason
	 * in err ("the subject must not be empty"), shown to the API client. */
	int (*check_url)(void *state, const char *url, char *err, size_t errlen);
	/* Starts an attempt; must not block. Returns 0 and later calls host->complete() with
	 * s->token exactly once; or returns nonzero if it could not start (then it must not
	 * complete: the host records a retryable failure). */
	int (*send)(void *state, const struct hookd_send *s);
	/* Optional: the host stopped waiting for token (the endpoint's timeout passed, or
	 * shutdown). A complete() for it after this is ignored with a log line. */
	void (*cancel)(void *state, uint64_t token);
};

/* ---- the host's functions ------------------------------------------------------------ */

struct hookd_host {
	uint32_t size;           /* sizeof(struct hookd_host) as the host was built: a plugin
				  * checks it before using a field newer than its own minor */
	uint32_t abi_major;      /* the host's ABI version */
	uint32_t abi_minor;

	/* Any thread. A line in hookd's log tagged "plugin NAME:". */
	void (*log)(struct hookd_plugin_ctx *ctx, enum hookd_log_level level, const char *fmt,
		    ...) HOOKD_PLUGIN_PRINTF(3, 4);
	/* plugins.options.NAME.KEY from the config, as text (numbers and booleans as
	 * written); NULL if absent. The pointer stays valid until cleanup. */
	const char *(*option)(struct hookd_plugin_ctx *ctx, const char *key);

	/* One-shot timer on the loop: cb(arg) once after ms, unless stopped first. The timer
	 * is freed after cb returns, or by timer_stop. */
	struct hookd_timer *(*timer_start)(struct hookd_plugin_ctx *ctx, uint32_t ms,
					   void (*cb)(void *arg), void *arg);
	void (*timer_stop)(struct hookd_plugin_ctx *ctx, struct hookd_timer *t);
	/* Watches fd on the loop: cb(fd, events, arg) whenever one of events (HOOKD_FD_*) is
	 * ready, until unwatch_fd. watch_update changes the events watched. */
	struct hookd_watch *(*watch_fd)(struct hookd_plugin_ctx *ctx, int fd, int events,
					void (*cb)(int fd, int events, void *arg), void *arg);
	void (*watch_update)(struct hookd_plugin_ctx *ctx, struct hookd_watch *w, int events);
	void (*unwatch_fd)(struct hookd_plugin_ctx *ctx, struct hookd_watch *w);

	/* Any thread. Ends the attempt token with outcome o (copied). A second completion,
	 * or one after the host timed the attempt out, is ignored with a log line. */
	void (*complete)(struct hookd_plugin_ctx *ctx, uint64_t token,
			 const struct hookd_outcome *o);

	/* A counter in /metrics, hookd_plugin_<plugin>_<name>_total (name [a-z0-9_]+), with
	 * help text. counter_add: any thread. */
	struct hookd_counter *(*counter)(struct hookd_plugin_ctx *ctx, const char *name,
					 const char *help);
	void (*counter_add)(struct hookd_counter *c, uint64_t n);

	/* Any thread. The host's allocator (accounted to the plugin). */
	void *(*alloc)(struct hookd_plugin_ctx *ctx, size_t n);
	void *(*realloc)(struct hookd_plugin_ctx *ctx, void *p, size_t n);
	void (*free)(struct hookd_plugin_ctx *ctx, void *p);

	/* During init only. Returns 0, or nonzero if the scheme is taken or t is malformed
	 * (the host then refuses the plugin, naming both). t must stay valid until cleanup. */
	int (*register_transport)(struct hookd_plugin_ctx *ctx, const struct hookd_transport *t);

};

#ifdef __cplusplus
}
#endif

#endif
