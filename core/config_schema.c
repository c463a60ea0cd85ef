/* config_schema.c - the daemon's settings: one table row per key with its type, range and
 * the reason for that range, the checks of string values, the embedded defaults, and
 * freeing a struct config. config_read.c walks the tables; an endpoint's keys are the
 * endpoint schema's rows (endpoint_schema.c), shared with the API. The syntax and limits
 * of every key: docs/configuration.md. */
#include "config_schema.h"

#include "err.h"
#include "id.h"
#include "log.h"
#include "ssrf.h"
#include "url.h"
#include "worker.h"

#include <arpa/inet.h>
#include <sched.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- checks of string values -------------------------------------------------------- */

/* Ids are used in URLs (/v1/apps/{app}) and store keys; the API takes the same charset
 * (id_valid), so a declared id can always be addressed. */
static int cfg_check_id(const char *text, char *why, size_t whylen)
{
	char show[ERR_QUOTE_MAX];
	if (id_valid(text))
		return HOOKD_OK;
	err_set(why, whylen, "expected 1 to 64 of A-Z a-z 0-9 _ -, got %s",
		err_quote(text, show, sizeof(show)));
	return HOOKD_EINVAL;
}

static int cfg_check_nonempty(const char *text, char *why, size_t whylen)
{
	if (text[0] != '\0')
		return HOOKD_OK;
	err_set(why, whylen, "must not be empty");
	return HOOKD_EINVAL;
}

/* delivery.proxy: url.h's proxy rules, shared with an endpoint's "proxy"; "" is no proxy,
 * as null is. */
static int cfg_check_proxy(const char *text, char *why, size_t whylen)
{
	char show[ERR_QUOTE_MAX], reason[200];
	if (text[0] == '\0' || url_proxy_check(text, reason, sizeof(reason)) == HOOKD_OK)
		return HOOKD_OK;
	err_set(why, whylen, "%s, got %s", reason, err_quote(text, show, sizeof(show)));
	return HOOKD_EINVAL;
}

/* A display name: any text a log line can carry. */
static int cfg_check_name(const char *text, char *why, size_t whylen)
{
	size_t len = strlen(text);
	if (len == 0 || len > 256) {
		err_set(why, whylen, "must be 1 to 256 bytes long");
		return HOOKD_EINVAL;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
			err_set(why, whylen, "must not contain control characters");
			return HOOKD_EINVAL;
		}
	return HOOKD_OK;
}

/* The admin key travels as "Authorization: Bearer <key>", so it must be one token. The
 * value is never echoed: messages end up in logs. */
static int cfg_check_admin_key(const char *text, char *why, size_t whylen)
{
	size_t len = strlen(text);
	if (len == 0 || len > 512) {
		err_set(why, whylen, "must be 1 to 512 characters long (value not shown)");
		return HOOKD_EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (ch <= 0x20 || ch >= 0x7f) {
			err_set(why, whylen, "must be printable ASCII without spaces (value not shown)");
			return HOOKD_EINVAL;
		}
	}
	return HOOKD_OK;
}

/* allow_destinations entries, read by the destination guard's own parser (ssrf.h), so
 * whatever loads here is what it will accept at start. Bits set beyond the prefix are
 * refused with the corrected network: "192.168.1.0/16" is far more often a typo than a
 * wish. */
static int cfg_check_cidr(const char *text, char *why, size_t whylen)
{
	char show[ERR_QUOTE_MAX], net[INET6_ADDRSTRLEN];
	struct ssrf_cidr c;
	enum ssrf_cidr_problem problem;

	if (ssrf_cidr_parse(text, &c, &problem) == HOOKD_OK)
		return HOOKD_OK;
	err_quote(text, show, sizeof(show));
	if (problem == SSRF_CIDR_HOST_BITS && inet_ntop(c.family, c.addr, net, sizeof(net)))
		err_set(why, whylen, "%s has bits set after the /%u prefix; write %s/%u", show,
			c.prefix, net, c.prefix);
	else
		err_set(why, whylen,
			"expected a CIDR like 10.0.0.0/8 or fd00::/8 (or one address), got %s%s", show,
			problem == SSRF_CIDR_BAD_PREFIX
				? (c.family == AF_INET ? ": the prefix must be 0..32"
						       : ": the prefix must be 0..128")
				: "");
	return HOOKD_EINVAL;
}

/* A plugin's name as include/hookd/plugin.h defines it: it is also part of metric names
 * and log lines. */
int config_check_plugin_name(const char *text, char *why, size_t whylen)
{
	char show[ERR_QUOTE_MAX];
	size_t len = strlen(text), i;
	for (i = 0; i < len; i++)
		if (!((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= '0' && text[i] <= '9') ||
		      text[i] == '_' || text[i] == '-'))
			break;
	if (len >= 1 && len <= 32 && i == len)
		return HOOKD_OK;
	err_set(why, whylen, "expected a plugin name (1 to 32 of a-z 0-9 _ -), got %s",
		err_quote(text, show, sizeof(show)));
	return HOOKD_EINVAL;
}

/* ---- tables ------------------------------------------------------------------------- */

/* The limits below are each the documented range of a key (docs/configuration.md). */

static const struct cfg_field api_fields[] = {
	{.key = "admin_key", .kind = CFG_STRING, .off = offsetof(struct config, admin_key),
	 .flags = CFG_NULLABLE, .check = cfg_check_admin_key},
	/* Each connection holds a descriptor; a million is above any limit a process gets, and
	 * the descriptor limit bounds the cap anyway (api_conn.c). */
	{.key = "max_connections", .kind = CFG_U32,
	 .off = offsetof(struct config, api_max_connections), .min = 1, .max = 1000000},
	/* 100 ms is a loopback round trip with room to spare; ten minutes is already a client
	 * holding a connection hostage. */
	{.key = "header_timeout_ms", .kind = CFG_U32,
	 .off = offsetof(struct config, api_header_timeout_ms), .min = 100, .max = 600000},
	/* The same floor; an hour is the longest a keep-alive connection is worth keeping. */
	{.key = "idle_timeout_ms", .kind = CFG_U32,
	 .off = offsetof(struct config, api_idle_timeout_ms), .min = 100, .max = 3600000},
	{0},
};

static const struct cfg_field limits_fields[] = {
	/* A payload is held in memory while it is validated, stored and signed; 64 MiB is
	 * far above any webhook and still bounds a publisher's damage. */
	{.key = "max_payload_bytes", .kind = CFG_SIZE_T,
	 .off = offsetof(struct config, max_payload_bytes), .min = 1, .max = 64ull << 20},
	/* 1 KiB still holds a request line, a 512-character bearer key and a few fields; past
	 * 1 MiB a header block is an attack, not a request (servers allow 8..64 KiB). */
	{.key = "max_header_bytes", .kind = CFG_SIZE_T,
	 .off = offsetof(struct config, max_header_bytes), .min = 1024, .max = 1ull << 20},
	/* 8 fields are what a minimal client sends with Authorization and Idempotency-Key;
	 * 10000 is far beyond any client and still bounds the per-request work. */
	{.key = "max_header_lines", .kind = CFG_U32,
	 .off = offsetof(struct config, max_header_lines), .min = 8, .max = 10000},
	{0},
};

static const struct cfg_field storage_fields[] = {
	/* LMDB maps the whole size into the address space: x86-64 gives a process 128 TiB, so
	 * 64 TiB leaves room for everything else; below 1 MiB LMDB cannot hold its own pages
	 * and a few messages. */
	{.key = "map_size", .kind = CFG_SIZE, .off = offsetof(struct config, map_size),
	 .min = 1ull << 20, .max = 64ull << 40},
	/* A publish waits at most this long for company before its fsync; past 10 ms the
	 * added latency outweighs any batching gain on a disk with ~1 ms fsyncs. */
	{.key = "commit_delay_us", .kind = CFG_U32,
	 .off = offsetof(struct config, commit_delay_us), .min = 0, .max = 10000},
	/* Ten years is "keep"; 0 says so explicitly. */
	{.key = "retention_days", .kind = CFG_U32,
	 .off = offsetof(struct config, retention_days), .min = 0, .max = 3650},
	/* The same range; at most retention_days when both are set (config_read.c checks). */
	{.key = "payload_retention_days", .kind = CFG_U32,
	 .off = offsetof(struct config, payload_retention_days), .min = 0, .max = 3650},
	{0},
};

/* The limits match the endpoint rows of the same names (endpoint_schema.c), which say why. */
static const struct cfg_field breaker_fields[] = {
	{.key = "consecutive_failures", .kind = CFG_U32,
	 .off = offsetof(struct config, breaker_consecutive_failures), .min = 0, .max = 1000000},
	{.key = "failure_ratio", .kind = CFG_NUMBER,
	 .off = offsetof(struct config, breaker_failure_ratio), .min = 0, .max = 1},
	{.key = "window_seconds", .kind = CFG_U32, .off = offsetof(struct config, breaker_window_s),
	 .min = 1, .max = 86400},
	{.key = "cooldown_seconds", .kind = CFG_U32,
	 .off = offsetof(struct config, breaker_cooldown_s), .min = 1, .max = 86400},
	/* The cooldown doubles after each failed probe, up to this. */
	{.key = "max_cooldown_seconds", .kind = CFG_U32,
	 .off = offsetof(struct config, breaker_cooldown_max_s), .min = 1, .max = 86400},
	{0},
};

static const struct cfg_field rate_limit_fields[] = {
	{.key = "per_second", .kind = CFG_NUMBER, .off = offsetof(struct config, rate_per_second),
	 .min = 0, .max = 100000},
	{.key = "burst", .kind = CFG_U32, .off = offsetof(struct config, rate_burst), .min = 0,
	 .max = 100000},
	{0},
};

static const struct cfg_field delivery_fields[] = {
	/* 0 would mean "curl's default" (300 s); ten minutes is already a dead receiver. */
	{.key = "connect_timeout_ms", .kind = CFG_U32,
	 .off = offsetof(struct config, connect_timeout_ms), .min = 1, .max = 600000},
	/* An attempt holds an in-flight slot; an hour is the longest anyone should wait. */
	{.key = "timeout_ms", .kind = CFG_U32, .off = offsetof(struct config, timeout_ms),
	 .min = 1, .max = 3600000},
	/* 50 entries, each at most 7 days: a month-long schedule fits, a runaway one does not. */
	{.key = "retry_schedule", .kind = CFG_SCHEDULE,
	 .off = offsetof(struct config, retry_schedule),
	 .off_n = offsetof(struct config, n_retry_schedule), .min = 0, .max = 604800, .max_n = 50},
	/* 0 = never wait longer than the schedule says; 7 days = the longest schedule step. */
	{.key = "retry_after_cap_s", .kind = CFG_U32,
	 .off = offsetof(struct config, retry_after_cap_s), .min = 0, .max = 604800},
	/* Each in-flight request may hold a socket; 65536 is above any file descriptor limit
	 * a single process is usually given. */
	{.key = "max_inflight", .kind = CFG_U32, .off = offsetof(struct config, max_inflight),
	 .min = 1, .max = 65536},
	{.key = "max_inflight_per_endpoint", .kind = CFG_U32,
	 .off = offsetof(struct config, max_inflight_per_endpoint), .min = 1, .max = 65536},
	{.key = "breaker", .kind = CFG_SECTION, .sub = breaker_fields},
	{.key = "rate_limit", .kind = CFG_SECTION, .sub = rate_limit_fields},
	/* Counts, not bytes (storage.map_size bounds bytes, with 507): a billion pending is
	 * past what any one store holds. */
	{.key = "max_pending", .kind = CFG_U32, .off = offsetof(struct config, max_pending),
	 .min = 0, .max = 1000000000},
	{.key = "max_pending_per_endpoint", .kind = CFG_U32,
	 .off = offsetof(struct config, max_pending_per_endpoint), .min = 0, .max = 1000000000},
	/* The endpoint row of the same name says why a year. */
	{.key = "auto_disable_seconds", .kind = CFG_U32,
	 .off = offsetof(struct config, auto_disable_s), .min = 0, .max = 31536000},
	/* Deliveries of one endpoint held in memory; the rest wait in the store's due index.
	 * 1,048,576 of ~2 KiB each is already 2 GiB for one endpoint: a cap, not a target. */
	{.key = "window_per_endpoint", .kind = CFG_U32,
	 .off = offsetof(struct config, window_per_endpoint), .min = 1, .max = 1048576},
	{.key = "proxy", .kind = CFG_STRING, .off = offsetof(struct config, proxy),
	 .flags = CFG_NULLABLE, .check = cfg_check_proxy},
	{0},
};

static const struct cfg_field security_fields[] = {
	/* Each delivery's address is matched against every entry; 256 is plenty of networks. */
	{.key = "allow_destinations", .kind = CFG_STRLIST,
	 .off = offsetof(struct config, allow_destinations),
	 .off_n = offsetof(struct config, n_allow_destinations), .max_n = 256,
	 .flags = CFG_NULLABLE, .check = cfg_check_cidr},
	{0},
};

static const struct cfg_field policies_fields[] = {
	{.key = "dir", .kind = CFG_STRING, .off = offsetof(struct config, policy_dir),
	 .flags = CFG_NULLABLE, .check = cfg_check_nonempty},
	/* One minute per call is already a broken policy; 1 ms is the timer's resolution. */
	{.key = "cpu_limit_ms", .kind = CFG_U32, .off = offsetof(struct config, policy_cpu_ms),
	 .min = 1, .max = 60000},
	/* A LuaJIT state with the sandbox needs a few hundred KiB; 4 GiB per state is more
	 * than an edge box has. */
	{.key = "memory_limit", .kind = CFG_SIZE,
	 .off = offsetof(struct config, policy_memory_limit), .min = 1ull << 20,
	 .max = 4ull << 30},
	/* The pool's own limit (worker.h says why 16). */
	{.key = "threads", .kind = CFG_U32, .off = offsetof(struct config, policy_threads),
	 .min = 1, .max = WORKER_THREADS_MAX},
	{0},
};

static const struct cfg_field plugins_fields[] = {
	{.key = "dir", .kind = CFG_STRING, .off = offsetof(struct config, plugins_dir),
	 .flags = CFG_NULLABLE, .check = cfg_check_nonempty},
	/* Names of plugins, each at most once; 256 is far more than any directory holds. */
	{.key = "optional", .kind = CFG_STRLIST, .off = offsetof(struct config, plugins_optional),
	 .off_n = offsetof(struct config, n_plugins_optional), .max_n = 256,
	 .flags = CFG_NULLABLE, .check = config_check_plugin_name},
	/* 256 plugins, 256 options each: bounds what a config can make the host copy. */
	{.key = "options", .kind = CFG_PLUGIN_OPTIONS,
	 .off = offsetof(struct config, plugin_options),
	 .off_n = offsetof(struct config, n_plugin_options), .max_n = 256,
	 .flags = CFG_NULLABLE},
	{0},
};

static const struct cfg_field ops_fields[] = {
	{.key = "app", .kind = CFG_STRING, .off = offsetof(struct config, ops_app),
	 .flags = CFG_NULLABLE, .check = cfg_check_id},
	{0},
};

/* An app; its endpoints' keys are the rows of endpoint_fields (endpoint_schema.h). */
static const struct cfg_field app_fields[] = {
	{.key = "id", .kind = CFG_STRING, .off = offsetof(struct config_app, id),
	 .flags = CFG_REQUIRED, .check = cfg_check_id},
	{.key = "name", .kind = CFG_STRING, .off = offsetof(struct config_app, name),
	 .flags = CFG_NULLABLE, .check = cfg_check_name},
	{.key = "endpoints", .kind = CFG_ENDPOINTS, .off = offsetof(struct config_app, endpoints),
	 .off_n = offsetof(struct config_app, n_endpoints), .flags = CFG_NULLABLE},
	/* As storage.retention_days and storage.payload_retention_days, per app (the API takes
	 * the same range: api_apps.c). */
	{.key = "retention_days", .kind = CFG_U32,
	 .off = offsetof(struct config_app, retention_days), .min = 0, .max = 3650},
	{.key = "payload_retention_days", .kind = CFG_U32,
	 .off = offsetof(struct config_app, payload_retention_days), .min = 0, .max = 3650},
	{0},
};

const struct cfg_field config_top_fields[] = {
	{.key = "listen", .kind = CFG_LISTEN},
	{.key = "data_dir", .kind = CFG_STRING, .off = offsetof(struct config, data_dir),
	 .check = cfg_check_nonempty},
	{.key = "api", .kind = CFG_SECTION, .sub = api_fields},
	{.key = "limits", .kind = CFG_SECTION, .sub = limits_fields},
	{.key = "storage", .kind = CFG_SECTION, .sub = storage_fields},
	{.key = "delivery", .kind = CFG_SECTION, .sub = delivery_fields},
	{.key = "security", .kind = CFG_SECTION, .sub = security_fields},
	{.key = "policies", .kind = CFG_SECTION, .sub = policies_fields},
	{.key = "plugins", .kind = CFG_SECTION, .sub = plugins_fields},
	{.key = "operational_webhooks", .kind = CFG_SECTION, .sub = ops_fields},
	{.key = "apps", .kind = CFG_APPS, .off = offsetof(struct config, apps),
	 .off_n = offsetof(struct config, n_apps), .flags = CFG_NULLABLE, .sub = app_fields},
	{0},
};

/* ---- defaults ----------------------------------------------------------------------- */

/* Mirrors retry_default_schedule (retry.h): 5s, 5m, 30m, 2h, 5h, 10h, 10h. Kept here so
 * the config module stands alone. */
static const uint32_t config_default_schedule[] = {5, 300, 1800, 7200, 18000, 36000, 36000};

/* config_defaults cannot report a failure, so loading does this again and reports
 * HOOKD_ENOMEM then. */
int config_fill_allocated_defaults(struct config *c)
{
	if (!c->listen_host && !(c->listen_host = strdup("127.0.0.1")))
		return HOOKD_ENOMEM;
	if (!c->data_dir && !(c->data_dir = strdup("./data")))
		return HOOKD_ENOMEM;
	if (!c->retry_schedule) {
		size_t n = sizeof(config_default_schedule) / sizeof(config_default_schedule[0]);
		if (!(c->retry_schedule = malloc(sizeof(config_default_schedule))))
			return HOOKD_ENOMEM;
		memcpy(c->retry_schedule, config_default_schedule, sizeof(config_default_schedule));
		c->n_retry_schedule = n;
	}
	return HOOKD_OK;
}

/* One policy thread per CPU this process may run on (its affinity mask: a container or
 * taskset limit counts), within 1..WORKER_THREADS_MAX: on a machine with spare
 * cores a policy on every endpoint then costs the publish path little throughput. */
static uint32_t config_default_policy_threads(void)
{
	cpu_set_t set;
	long n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > WORKER_THREADS_MAX ? WORKER_THREADS_MAX : (uint32_t)n;
}

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen_port = 8080;
	c->max_payload_bytes = 256 * 1024;
	/* 16 KiB and 100 fields: Node.js's header size default and Apache's LimitRequestFields;
	 * hookd's own clients send a few hundred bytes (Authorization, Idempotency-Key). */
	c->max_header_bytes = 16 * 1024;
	c->max_header_lines = 100;
	/* A publisher keeps a small pool of keep-alive connections: 1024 serves hundreds. */
	c->api_max_connections = 1024;
	/* 10 s for a request's headers: any client on any network sends them in one or two
	 * round trips; a slowloris client trickling bytes is cut off at this deadline. */
	c->api_header_timeout_ms = 10000;
	/* 60 s of silence: long enough for a publisher's pool to reuse connections between
	 * bursts, short enough that abandoned ones return their descriptors. */
	c->api_idle_timeout_ms = 60000;
	c->map_size = 1ull << 30;
	c->retention_days = 30;
	c->connect_timeout_ms = 5000;
	c->timeout_ms = 15000;
	c->retry_after_cap_s = 86400;
	c->max_inflight = 1024;
	c->max_inflight_per_endpoint = 64;
	c->window_per_endpoint = 256;
	/* Twenty failures in a row, or nine in ten over a minute, is an endpoint that is down,
	 * not one having a bad moment; 30 s later one probe asks again, then after up to 10 min. */
	c->breaker_consecutive_failures = 20;
	c->breaker_failure_ratio = 0.9;
	c->breaker_window_s = 60;
	c->breaker_cooldown_s = 30;
	c->breaker_cooldown_max_s = 600;
	/* Five days of nothing but failures (Svix disables after five days too): the receiver
	 * is gone, not down; its deliveries are held until someone enables it again. */
	c->auto_disable_s = 5 * 86400;
	c->policy_cpu_ms = 50;
	c->policy_memory_limit = 32ull << 20;
	c->policy_threads = config_default_policy_threads();
	if (config_fill_allocated_defaults(c))
		log_error("config: out of memory while setting defaults");
}

/* ---- freeing ------------------------------------------------------------------------ */

void config_strlist_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

void config_endpoint_clear(struct config_endpoint *e)
{
	json_decref(e->fields);
	e->fields = NULL;
	e->id = NULL;
}

void config_apps_free(struct config_app *apps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(apps[i].id);
		free(apps[i].name);
		for (size_t j = 0; j < apps[i].n_endpoints; j++)
			config_endpoint_clear(&apps[i].endpoints[j]);
		free(apps[i].endpoints);
	}
	free(apps);
}

void config_plugin_options_free(struct config_plugin_options *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(o[i].name);
		config_strlist_free(o[i].keys, o[i].n);
		config_strlist_free(o[i].values, o[i].n);
	}
	free(o);
}

void config_apply_env(struct config *c)
{
	const char *key = getenv("HOOKD_ADMIN_KEY");
	/* An empty variable is "unset": an empty bearer key would match an empty header. */
	if (!key || !*key)
		return;
	char *copy = strdup(key);
	if (!copy)
		log_error("config: out of memory copying HOOKD_ADMIN_KEY; no admin key is set");
	/* Never keep the file's key when the environment named another one. */
	free(c->admin_key);
	c->admin_key = copy;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->listen_host);
	free(c->data_dir);
	free(c->admin_key);
	free(c->retry_schedule);
	free(c->proxy);
	config_strlist_free(c->allow_destinations, c->n_allow_destinations);
	free(c->policy_dir);
	free(c->ops_app);
	free(c->plugins_dir);
	config_strlist_free(c->plugins_optional, c->n_plugins_optional);
	config_plugin_options_free(c->plugin_options, c->n_plugin_options);
	config_apps_free(c->apps, c->n_apps);
	memset(c, 0, sizeof(*c));
}
