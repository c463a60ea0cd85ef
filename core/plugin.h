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

#endif
