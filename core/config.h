/* config.h - the daemon's configuration, parsed from YAML (libyaml).
 *
 * Every field has an embedded default (config_defaults), so `hookd serve` runs with
 * no file at all. A file overrides what it names. Unknown keys, wrong types and
 * out-of-range values are errors that name the key and line; the daemon does not
 * start on a bad config. All strings and arrays are owned by the struct config and
 * freed by config_free().
 *
 * The module: config_yaml.c (YAML -> node tree with lines, messages), config_read.c
 * (tree -> struct config through the tables), config_schema.c (the daemon's keys,
 * defaults), config_apply.c (declared apps and endpoints, policies -> the running daemon).
 * Declared endpoints are checked by the endpoint schema the API uses (endpoint_schema.h). */
#ifndef HOOKD_CONFIG_H
#define HOOKD_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An endpoint declared in the file (created or updated at start: configuration as code).
 * Its keys are the endpoint schema's fields (endpoint_schema.h), so fields holds exactly
 * what an API create request would carry, already checked by the same rules. */
struct config_endpoint {
	const char *id;              /* required; points into fields (valid while it lives) */
	json_t *fields;              /* the declared keys as a JSON object (owned): "id", "url",
	                              * and whichever others the file names */
	int line;                    /* line of the endpoint in the file, for messages */
};

/* An app's retention_days or payload_retention_days the file does not name. */
#define CONFIG_DAYS_UNSET UINT32_MAX

struct config_app {
	char *id;                    /* required */
	char *name;                  /* defaults to id */
	uint32_t retention_days;     /* CONFIG_DAYS_UNSET: the stored value stays (null for a
	                              * new app: storage.retention_days) */
	uint32_t payload_retention_days; /* the same, for storage.payload_retention_days */
	struct config_endpoint *endpoints;
	size_t n_endpoints;
	int line;
};

/* plugins.options.NAME: the options handed to plugin NAME (host->option), values as
 * written (numbers and booleans as text). */
struct config_plugin_options {
	char *name;                  /* [a-z0-9_-]{1,32}, as a plugin's name */
	char **keys;
	char **values;
	size_t n;
	int line;
};

struct config {
	char *listen_host;           /* listen: "host:port"; default 127.0.0.1:8080 ([::1]:8080 for v6) */
	uint16_t listen_port;
	char *data_dir;              /* default "./data" */
	char *admin_key;             /* api.admin_key; env HOOKD_ADMIN_KEY wins; NULL if neither */
	uint32_t api_max_connections;   /* api.max_connections; default 1024 (the effective cap is
	                                 * also bounded by the descriptor limit: api_conn.h) */
	uint32_t api_header_timeout_ms; /* api.header_timeout_ms: a request's line and header
	                                 * fields must all arrive within it; default 10000 */
	uint32_t api_idle_timeout_ms;   /* api.idle_timeout_ms: nothing received for this long
	                                 * closes a connection; default 60000 */

	size_t max_payload_bytes;    /* limits.max_payload_bytes; default 262144 (256 KiB) */
	size_t max_header_bytes;     /* limits.max_header_bytes: request line + fields; default 16 KiB */
	uint32_t max_header_lines;   /* limits.max_header_lines: header fields; default 100 */
	uint64_t map_size;           /* storage.map_size; default 1 GiB; accepts 512MiB, 2GiB, bytes */

	uint32_t connect_timeout_ms; /* delivery.connect_timeout_ms; default 5000 */
	uint32_t timeout_ms;         /* delivery.timeout_ms (total per attempt); default 15000 */
	uint32_t *retry_schedule;    /* delivery.retry_schedule (seconds); default
	                              * 5,300,1800,7200,18000,36000,36000 */
	size_t n_retry_schedule;
	uint32_t retry_after_cap_s;  /* delivery.retry_after_cap_s; default 86400 */
	uint32_t max_inflight;       /* delivery.max_inflight (all endpoints); default 1024 */
	uint32_t max_inflight_per_endpoint; /* delivery.max_inflight_per_endpoint; default 64 */
	/* delivery.breaker.*: an endpoint's circuit breaker (flow.h), unless it sets its own */
	uint32_t breaker_consecutive_failures; /* default 20; 0 = this rule off */
	double breaker_failure_ratio;          /* default 0.9; 0 = this rule off */
	uint32_t breaker_window_s;             /* window_seconds; default 60 */
	uint32_t breaker_cooldown_s;           /* cooldown_seconds; default 30 */
	uint32_t breaker_cooldown_max_s;       /* max_cooldown_seconds; default 600 */
	char *ops_app;                         /* operational_webhooks.app: where hookd publishes
	                                        * endpoint.* and message.dead events; NULL off */
	/* Backpressure: past these, publishes get 429 with Retry-After (0 = no cap) */
	uint32_t max_pending;                  /* delivery.max_pending: pending in all; default 0 */
	uint32_t max_pending_per_endpoint;     /* delivery.max_pending_per_endpoint; default 0 */
	uint32_t auto_disable_s;               /* delivery.auto_disable_seconds: failing without
	                                        * a success this long disables an endpoint;
	                                        * default 432000 (5 days); 0 = never */
	/* delivery.rate_limit.*: attempts per second per endpoint, unless it sets its own */
	double rate_per_second;                /* per_second; default 0 = no limit */
	uint32_t rate_burst;                   /* burst; default 0 = per_second rounded up */
	uint32_t window_per_endpoint; /* delivery.window_per_endpoint: deliveries of one endpoint
				       * the scheduler holds in memory; default 256 (at least
				       * 2 x max_inflight_per_endpoint is used) */
	char *proxy;                 /* delivery.proxy: "http://HOST:PORT" every delivery goes
	                              * through (an endpoint's "proxy" overrides it); NULL or ""
	                              * = direct; default NULL */

	char **allow_destinations;   /* security.allow_destinations: CIDRs; default empty */
	size_t n_allow_destinations;

	char *policy_dir;            /* policies.dir; default NULL (no directory) */
	uint32_t policy_cpu_ms;      /* policies.cpu_limit_ms per call; default 50 */
	uint64_t policy_memory_limit;/* policies.memory_limit per state; default 32 MiB */
	uint32_t policy_threads;     /* policies.threads: threads running publishes' policies,
	                              * 1..16; default the CPUs this process may use, at most 16 */

	char *plugins_dir;           /* plugins.dir; default NULL: the directory hookd was built
	                              * or installed with (plugin.h) */
	char **plugins_optional;     /* plugins.optional: plugin names whose refusal is a warning */
	size_t n_plugins_optional;
	struct config_plugin_options *plugin_options; /* plugins.options, one per plugin named */
	size_t n_plugin_options;

	struct config_app *apps;     /* apps: declared tenants and their endpoints */
	size_t n_apps;
	uint32_t commit_delay_us;    /* storage.commit_delay_us: group-commit delay; default 0 */
	uint32_t retention_days;     /* storage.retention_days: prune settled messages; default 30, 0 = keep */
	uint32_t payload_retention_days; /* storage.payload_retention_days: drop settled messages'
	                              * payloads sooner; default 0 = as long as the message;
	                              * at most retention_days when both are set */
};

/* Fills c with the embedded defaults. c is overwritten, not freed. If memory runs out,
 * listen_host, data_dir or retry_schedule stay NULL; config_load_* fills them in again or
 * returns HOOKD_ENOMEM. */
void config_defaults(struct config *c);

/* Parses YAML text over the defaults already in c. name is used in messages
 * ("quickstart.yaml:12: ..."). On error returns HOOKD_ECONFIG (HOOKD_ENOMEM if memory
 * ran out) with a message in err naming the line and the key, e.g.
 * "cfg.yaml:7: unknown key 'listn' at top level", "cfg.yaml:9: unknown key 'x' under
 * 'delivery'", "cfg.yaml:12: delivery.timeout_ms: expected an integer, got 'fast'".
 * After an error c may hold part of the file's values; it stays valid for config_free.
 * The syntax and limits of every key: docs/configuration.md. */
int config_load_string(struct config *c, const char *text, size_t len, const char *name,
		       char *err, size_t errlen);

/* Reads path and parses it as above (messages start with path); a missing or unreadable
 * file, or one over 4 MiB, is HOOKD_ECONFIG with a message naming the path. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Reads only the plugins and security sections of path (the other keys are neither read
 * nor checked):
 * the plugins are loaded before the whole file is read, so that declared endpoints with a
 * plugin's URL scheme are checked against the loaded plugins. Errors as config_load_file. */
int config_load_file_plugins(struct config *c, const char *path, char *err, size_t errlen);

/* Applies environment overrides (HOOKD_ADMIN_KEY; empty counts as unset). */
void config_apply_env(struct config *c);

/* Frees everything c owns (c itself is the caller's). Safe on a zeroed or partly built c. */
void config_free(struct config *c);

#endif
