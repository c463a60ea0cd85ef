/* plugin_load.c - plugins_load: the config's plugins section (plugins.dir, .optional,
 * .options) turned into the loader's setup (plugin-t.h). Apart from plugin.c so that the
 * loader sits below the endpoint schema that looks transports up, while this file, which
 * reads struct config, sits beside config_apply.c (docs/architecture.md). */
#include "plugin.h"
#include "plugin-t.h"

#include "config.h"
#include "err.h"

#include <stdlib.h>

int plugins_load(struct plugins **out, struct event_base *base, const struct config *cfg,
		 char *err, size_t errlen)
{
	struct plugins_setup s = {0};
	struct plugins_option *opts = NULL;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < cfg->n_plugin_options; i++)
		n += cfg->plugin_options[i].n;
	if (n && !(opts = calloc(n, sizeof(*opts)))) {
		err_set(err, errlen, "plugins: out of memory");
		return HOOKD_ENOMEM;
	}
	n = 0;
	for (size_t i = 0; i < cfg->n_plugin_options; i++) {
		const struct config_plugin_options *o = &cfg->plugin_options[i];
		for (size_t k = 0; k < o->n; k++)
			opts[n++] = (struct plugins_option){o->name, o->keys[k], o->values[k]};
	}
	s.dir = cfg->plugins_dir ? cfg->plugins_dir : plugins_default_dir();
	s.dir_explicit = cfg->plugins_dir != NULL;
	s.optional = (const char *const *)cfg->plugins_optional;
	s.n_optional = cfg->n_plugins_optional;
	s.options = opts;
	s.n_options = n;
	s.allow = (const char *const *)cfg->allow_destinations;
	s.n_allow = cfg->n_allow_destinations;
	rc = plugins_open(out, base, &s, err, errlen);
	free(opts);
	return rc;
}
