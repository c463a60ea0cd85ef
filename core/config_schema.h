/* config_schema.h - inside the config module: the tables of the daemon's settings
 * (config_schema.c) that config_read.c walks. An endpoint's keys are not here: they are
 * the endpoint schema's rows (endpoint_schema.h), shared with the API. Not for use
 * outside core/config_*.c. */
#ifndef HOOKD_CONFIG_SCHEMA_H
#define HOOKD_CONFIG_SCHEMA_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

enum cfg_kind {
	CFG_SECTION,   /* a nested mapping whose keys (sub) fill the same struct */
	CFG_STRING,    /* char * */
	CFG_U32,       /* uint32_t in [min, max] */
	CFG_NUMBER,    /* double in [min, max] */
	CFG_SIZE,      /* uint64_t from bytes or a size string, in [min, max] */
	CFG_SIZE_T,    /* the same into a size_t */
	CFG_BOOL,      /* bool: true or false */
	CFG_LISTEN,    /* "host:port" into listen_host, listen_port */
	CFG_SCHEDULE,  /* uint32_t * (off) + size_t (off_n): seconds in [min, max] */
	CFG_STRLIST,   /* char ** (off) + size_t (off_n), each item checked */
	CFG_APPS,      /* struct config_app * + size_t; sub: an app's keys */
	CFG_ENDPOINTS, /* struct config_endpoint * + size_t: rows of endpoint_fields */
	CFG_PLUGIN_OPTIONS, /* struct config_plugin_options * + size_t: NAME -> {key: scalar} */
};

#define CFG_REQUIRED 0x1u /* the mapping must name this key */
#define CFG_NULLABLE 0x2u /* null is accepted: the string becomes NULL, the list empty */

struct cfg_field {
	const char *key;
	enum cfg_kind kind;
	size_t off;
	size_t off_n;
	uint64_t min, max;     /* numbers: the range; lists: the range of each entry */
	size_t max_n;          /* lists: most entries */
	unsigned flags;
	/* Validates a string value (or a list entry): HOOKD_OK, HOOKD_EINVAL with why (no
	 * file, line or key: the reader adds them), or HOOKD_ENOMEM. */
	int (*check)(const char *text, char *why, size_t whylen);
	const struct cfg_field *sub;
};

/* The top-level keys, ending in {0}. */
extern const struct cfg_field config_top_fields[];

/* Re-creates the defaults that need memory (config_defaults cannot report a failure);
 * HOOKD_ENOMEM if it cannot. */
int config_fill_allocated_defaults(struct config *c);

void config_strlist_free(char **list, size_t n);
void config_endpoint_clear(struct config_endpoint *e);
void config_apps_free(struct config_app *apps, size_t n);
void config_plugin_options_free(struct config_plugin_options *o, size_t n);
/* A plugin name: [a-z0-9_-]{1,32} (include/hookd/plugin.h). */
int config_check_plugin_name(const char *text, char *why, size_t whylen);

#endif
