/* plugin.h - the host side of the plugin ABI (include/hookd/plugin.h): loading plugins
 * from a directory, the host function table, and the lookups the rest of the core uses to
 * find what they registered. Loop thread only, unless a function says otherwise.
 *
 * The shared-object side of the ABI is include/hookd/plugin.h; this header is private to
 * the core. */
#ifndef HOOKD_CORE_PLUGIN_H
#define HOOKD_CORE_PLUGIN_H

#include <hookd/plugin.h>

#include <stddef.h>

struct event_base;
struct config;
struct plugins;

/* What a plugin registered, with the plugin that registered it. */
struct plugin_transport {
	const struct hookd_transport *t; /* the plugin's own table */
	void *state;                     /* its init() state */
	struct hookd_plugin_ctx *ctx;
};

struct plugin_auth {
	const struct hookd_auth *a;
	void *state;
	struct hookd_plugin_ctx *ctx;
};

/* Loads every plugin of cfg's plugins.dir (or the built-in directory), in name order.
 * A refusal (not a shared object, missing symbol, wrong ABI, init failed, a scheme or
 * auth name taken twice) fails with err naming the file and the reason, unless the plugin
 * is in plugins.optional: then it is a warning and the rest load. */
int plugins_load(struct plugins **out, struct event_base *base, const struct config *cfg,
		 char *err, size_t errlen);
/* Calls cleanup of each plugin (reverse load order) and unloads them. NULL is a no-op. */
void plugins_free(struct plugins *p);

/* The process's loaded plugins, for the lookups below (set by plugins_load, cleared by
 * plugins_free): the endpoint schema checks URLs and auth objects against them. */
struct plugins *plugins_current(void);

/* The transport serving scheme (lower case, without "://"), or NULL. */
const struct plugin_transport *plugins_transport(const struct plugins *p, const char *scheme);
/* The auth scheme called name, or NULL. */
const struct plugin_auth *plugins_auth(const struct plugins *p, const char *name);

/* ---- appended by the host module (core/plugin.c) ---------------------------------- */

/* What the host table's auth_add_header, auth_client_cert and auth_resume do: the auth
 * path (core/auth.c) provides them once, at start, before any plugin runs a callback (the
 * table is copied; NULL clears it). Until then those calls are ignored with a log line.
 * The host passes the plugin's arguments through unchanged: out is whatever core/auth.c
 * put in struct hookd_auth_request.out (struct hookd_auth_out is its type to define), and
 * token whatever it put in hookd_auth_request.token; resume may come from any thread, so
 * core/auth.c hands it to the loop itself (as plugin.c does for complete()). */
struct plugin_auth_hooks {
	/* During decorate only (loop thread). */
	void (*add_header)(struct hookd_auth_out *out, const char *name, const char *value);
	void (*client_cert)(struct hookd_auth_out *out, const char *cert_path,
			    const char *key_path);
	/* Any thread: ctx is the plugin's, token the one decorate() was given. */
	void (*resume)(struct hookd_plugin_ctx *ctx, uint64_t token, const char *error);
};
void plugins_set_auth_hooks(const struct plugin_auth_hooks *hooks);

/* The plugin's name, for messages ("plugin NAME: ..."). Valid until plugins_free. */
const char *plugins_ctx_name(const struct hookd_plugin_ctx *ctx);

/* Where complete() calls end up: the plugin transport (transport_plugin.c) sets fn, and
 * clears it (NULL) when it is destroyed. complete() may be called on any thread: it queues
 * a copy of the outcome and fn runs on the loop thread, never inside the plugin's own call
 * (so a plugin may complete from within send()). o and its message are valid during fn
 * only. With no fn set, completions are dropped with a log line. */
typedef void (*plugins_complete_fn)(void *arg, struct hookd_plugin_ctx *ctx, uint64_t token,
				    const struct hookd_outcome *o);
void plugins_set_complete(struct plugins *p, plugins_complete_fn fn, void *arg);

/* The schemes of the loaded transports, ", "-separated and sorted by load order, into buf
 * ("" when none; p may be NULL). */
void plugins_schemes(const struct plugins *p, char *buf, size_t len);
/* The same for the registered auth schemes. */
void plugins_auth_schemes(const struct plugins *p, char *buf, size_t len);

/* Calls fn for every counter the plugins made (host->counter), with its full metric name
 * (hookd_plugin_<plugin>_<name>_total, '-' in a plugin's name written '_'), its help text
 * and its value. p may be NULL. */
void plugins_each_counter(const struct plugins *p,
			  void (*fn)(void *arg, const char *metric, const char *help,
				     uint64_t value),
			  void *arg);

/* Calls fn for every loaded plugin, in load order, with its name, version and the bytes
 * it holds through host->alloc/realloc (for /metrics). p may be NULL. */
void plugins_each_plugin(const struct plugins *p,
			 void (*fn)(void *arg, const char *name, const char *version,
				    int64_t alloc_bytes),
			 void *arg);

/* The directory plugins are loaded from when plugins.dir is not set: the build tree's
 * plugins directory when this hookd runs from its build tree (the running executable is
 * in the CMake binary directory it was built in), else the one it was installed with
 * (LIBDIR/hookd/plugins). */
const char *plugins_default_dir(void);

#endif
