/* plugin-t.h - inside the plugin module: what plugins_load (plugin_load.c, which reads the
 * config) hands the loader (plugin.c, which does not). Not for use outside core/plugin*.c. */
#ifndef HOOKD_PLUGIN_T_H
#define HOOKD_PLUGIN_T_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct plugins;

/* One plugins.options.NAME.KEY: VALUE (borrowed; the loader copies what it keeps). */
struct plugins_option {
	const char *plugin;
	const char *key;
	const char *value;
};

/* Everything the loader needs, borrowed for the duration of plugins_open. */
struct plugins_setup {
	const char *dir;                 /* the directory to load */
	bool dir_explicit;               /* plugins.dir named it: a missing one is an error */
	const char *const *optional;     /* plugins.optional */
	size_t n_optional;
	const struct plugins_option *options;
	size_t n_options;
	const char *const *allow;        /* security.allow_destinations (destination_allowed) */
	size_t n_allow;
};

int plugins_open(struct plugins **out, struct event_base *base, const struct plugins_setup *s,
		 char *err, size_t errlen);

#endif
