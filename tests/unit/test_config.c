/* test_config.c - the config reader (config_read.c, config_schema.c, config_yaml.c):
 * defaults, every key of a full file, the quickstart, size strings, the environment
 * override, policy params as JSON, and one fixture per refusal.
 *
 * The refusals are data: tests/unit/fixtures/config/bad_*.yaml, each starting with
 *   # expect: LINE TEXT
 * The load must fail with a message that starts "PATH:LINE:" and contains TEXT. Adding a
 * case is adding a file. */
#include "check.h"
#include "config.h"
#include "err.h"
#include "log.h"

#include <dirent.h>
#include <jansson.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Allocation failure: malloc, calloc, realloc and free are replaced for this process
 * (glibc allows it) so a test can fail the Nth allocation and count what is still live.
 * Not under ASan, whose own allocator must see every block; the sanitized run checks
 * leaks on the other paths. */
#if !defined(__SANITIZE_ADDRESS__)
#define ALLOC_HOOK 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static long alloc_fail_at = -1; /* fail the allocation with this index; -1 = none */
static long alloc_count;        /* allocations since the index was set */
static long alloc_live;         /* blocks allocated and not yet freed */
static bool alloc_failed;

static bool alloc_should_fail(void)
{
	if (alloc_fail_at < 0 || alloc_count++ != alloc_fail_at)
		return false;
	alloc_failed = true;
	errno = ENOMEM;
	return true;
}

void *malloc(size_t n)
{
	if (alloc_should_fail())
		return NULL;
	void *p = __libc_malloc(n);
	if (p)
		alloc_live++;
	return p;
}

void *calloc(size_t n, size_t size)
{
	if (alloc_should_fail())
		return NULL;
	void *p = __libc_calloc(n, size);
	if (p)
		alloc_live++;
	return p;
}

void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (n == 0) {
		free(p);
		return NULL;
	}
	if (alloc_should_fail())
		return NULL;
	return __libc_realloc(p, n);
}

void free(void *p)
{
	if (p)
		alloc_live--;
	__libc_free(p);
}
#endif

static const char *source_dir(void)
{
	const char *d = getenv("HOOKD_SOURCE_DIR");
	return d && *d ? d : HOOKD_SOURCE_DIR;
}

/* A declared endpoint's field, as the JSON an API create would carry; NULL when the file
 * leaves it out. */
static json_t *ep_field(const struct config_endpoint *e, const char *name)
{
	return json_object_get(e->fields, name);
}

static const char *ep_str(const struct config_endpoint *e, const char *name)
{
	return json_string_value(ep_field(e, name));
}

/* Compact JSON text of v in its key order ("(none)" for NULL), valid until the next call. */
static const char *dump(const json_t *v)
{
	static char buf[1024];
	char *text = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
	snprintf(buf, sizeof(buf), "%s", v ? (text ? text : "(out of memory)") : "(none)");
	free(text);
	return buf;
}

/* Loads text over fresh defaults; the caller frees c. */
static int load(struct config *c, const char *text, char *err, size_t errlen)
{
	config_defaults(c);
	return config_load_string(c, text, strlen(text), "cfg.yaml", err, errlen);
}

static void test_defaults(void)
{
	struct config c;
	char err[512];

	config_defaults(&c);
	CHECK_STR(c.listen_host, "127.0.0.1");
	CHECK(c.listen_port == 8080);
	CHECK_STR(c.data_dir, "./data");
	CHECK(c.admin_key == NULL);
	CHECK(c.max_payload_bytes == 262144);
	CHECK(c.max_header_bytes == 16384);
	CHECK(c.max_header_lines == 100);
	CHECK(c.api_max_connections == 1024);
	CHECK(c.api_header_timeout_ms == 10000);
	CHECK(c.api_idle_timeout_ms == 60000);
	CHECK(c.map_size == 1073741824ull);
	CHECK(c.commit_delay_us == 0);
	CHECK(c.retention_days == 30);
	CHECK(c.connect_timeout_ms == 5000);
	CHECK(c.timeout_ms == 15000);
	static const uint32_t sched[] = {5, 300, 1800, 7200, 18000, 36000, 36000};
	CHECK(c.n_retry_schedule == 7);
	CHECK(c.retry_schedule && memcmp(c.retry_schedule, sched, sizeof(sched)) == 0);
	CHECK(c.retry_after_cap_s == 86400);
	CHECK(c.max_inflight == 1024);
	CHECK(c.max_inflight_per_endpoint == 64);
	CHECK(c.allow_destinations == NULL && c.n_allow_destinations == 0);
	CHECK(c.policy_dir == NULL);
	CHECK(c.policy_cpu_ms == 50);
	CHECK(c.policy_memory_limit == 32ull << 20);
	/* One policy thread per CPU this process may use, within 1..16. */
	cpu_set_t cpus;
	long ncpu = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
	CHECK(c.policy_threads == (uint32_t)(ncpu < 1 ? 1 : ncpu > 16 ? 16 : ncpu));
	CHECK(c.apps == NULL && c.n_apps == 0);
	config_free(&c);

	/* An empty file, a bare document marker and a file of comments change nothing. */
	static const char *const empties[] = {"", "---\n", "# nothing here\n\n", "---\n...\n"};
	for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		CHECK(load(&c, empties[i], err, sizeof(err)) == HOOKD_OK);
		CHECK_STR(c.listen_host, "127.0.0.1");
		CHECK(c.n_retry_schedule == 7);
		config_free(&c);
	}

	/* A section whose keys are all commented out is null: still the defaults. */
	CHECK(load(&c, "delivery:\n  # timeout_ms: 1\napps:\n", err, sizeof(err)) == HOOKD_OK);
	CHECK(c.timeout_ms == 15000);
	CHECK(c.n_apps == 0);
	config_free(&c);
}

static void test_full_file(void)
{
	struct config c;
	char path[1024], err[512];

	snprintf(path, sizeof(path), "%s/tests/unit/fixtures/config/good_full.yaml", source_dir());
	config_defaults(&c);
	int rc = config_load_file(&c, path, err, sizeof(err));
	CHECK(rc == HOOKD_OK);
	if (rc != HOOKD_OK)
		fprintf(stderr, "good_full.yaml: %s\n", err);

	CHECK_STR(c.listen_host, "::1");
	CHECK(c.listen_port == 9090);
	CHECK_STR(c.data_dir, "/var/lib/hookd");
	CHECK_STR(c.admin_key, "file-admin-key");
	CHECK(c.max_payload_bytes == 512 * 1024);
	CHECK(c.max_header_bytes == 8 * 1024);
	CHECK(c.max_header_lines == 40);
	CHECK(c.api_max_connections == 300);
	CHECK(c.api_header_timeout_ms == 2500);
	CHECK(c.api_idle_timeout_ms == 7000);
	CHECK(c.map_size == 2ull << 30);
	CHECK(c.commit_delay_us == 500);
	CHECK(c.connect_timeout_ms == 2500);
	CHECK(c.timeout_ms == 30000);
	CHECK(c.n_retry_schedule == 3);
	CHECK(c.n_retry_schedule == 3 && c.retry_schedule[0] == 1 && c.retry_schedule[1] == 10 &&
	      c.retry_schedule[2] == 100);
	CHECK(c.retry_after_cap_s == 3600);
	CHECK(c.max_inflight == 2048);
	CHECK(c.max_inflight_per_endpoint == 16);
	CHECK(c.n_allow_destinations == 3);
	if (c.n_allow_destinations == 3) {
		CHECK_STR(c.allow_destinations[0], "127.0.0.0/8");
		CHECK_STR(c.allow_destinations[1], "::1/128");
		CHECK_STR(c.allow_destinations[2], "10.1.2.3");
	}
	CHECK_STR(c.policy_dir, "./policies");
	CHECK(c.policy_cpu_ms == 20);
	CHECK(c.policy_memory_limit == 64ull << 20);
	CHECK(c.policy_threads == 3);

	CHECK(c.n_apps == 2);
	if (c.n_apps != 2)
		goto cleanup;
	struct config_app *a = &c.apps[0];
	CHECK_STR(a->id, "app_demo");
	CHECK_STR(a->name, "Demo Inc.");
	CHECK(a->line == 31);
	CHECK(a->n_endpoints == 2);
	if (a->n_endpoints == 2) {
		struct config_endpoint *e = &a->endpoints[0];
		CHECK_STR(e->id, "ep_demo");
		CHECK_STR(ep_str(e, "url"), "http://127.0.0.1:9000/hook");
		CHECK(e->line == 34);
		CHECK_STR(dump(ep_field(e, "event_types")), "[\"invoice.paid\",\"order.*\"]");
		CHECK_STR(ep_str(e, "secret"), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
		CHECK_STR(ep_str(e, "secret_type"), "hmac");
		CHECK_STR(dump(ep_field(e, "retry_schedule")), "[1,2]");
		/* Header values as written: X-Count: 5 is the string "5". */
		CHECK_STR(dump(ep_field(e, "headers")), "{\"X-Tenant\":\"acme\",\"X-Count\":\"5\"}");
		CHECK(json_is_false(ep_field(e, "disabled")));
		CHECK_STR(json_string_value(json_object_get(ep_field(e, "policy"), "name")), "redact-pii");
		CHECK_STR(dump(json_object_get(ep_field(e, "policy"), "params")),
			  "{\"paths\":[\"card.number\"],\"depth\":2,\"strict\":true,\"note\":null,"
			  "\"ratio\":0.5,\"quoted\":\"7\",\"word\":\"yes\"}");

		e = &a->endpoints[1];
		CHECK_STR(e->id, "ep_off");
		CHECK_STR(ep_str(e, "url"), "https://[2001:db8::1]:8443/in?x=1");
		CHECK_STR(ep_str(e, "secret_type"), "ed25519");
		CHECK(json_is_true(ep_field(e, "disabled")));
		CHECK(ep_field(e, "event_types") == NULL);
		CHECK(ep_field(e, "retry_schedule") == NULL);
		CHECK(ep_field(e, "headers") == NULL);
		CHECK(ep_field(e, "policy") == NULL);
	}
	/* name defaults to id */
	CHECK_STR(c.apps[1].id, "app_two");
	CHECK_STR(c.apps[1].name, "app_two");
	CHECK(c.apps[1].n_endpoints == 0);

cleanup:
	config_free(&c);
}

static void test_quickstart(void)
{
	struct config c;
	char path[1024], err[512];

	snprintf(path, sizeof(path), "%s/examples/quickstart.yaml", source_dir());
	config_defaults(&c);
	int rc = config_load_file(&c, path, err, sizeof(err));
	CHECK(rc == HOOKD_OK);
	if (rc != HOOKD_OK)
		fprintf(stderr, "quickstart.yaml: %s\n", err);
	CHECK_STR(c.listen_host, "127.0.0.1");
	CHECK(c.listen_port == 8080);
	CHECK_STR(c.data_dir, "./data");
	CHECK_STR(c.admin_key, "dev-admin-key");
	CHECK(c.n_allow_destinations == 2);
	if (c.n_allow_destinations == 2) {
		CHECK_STR(c.allow_destinations[0], "127.0.0.0/8");
		CHECK_STR(c.allow_destinations[1], "::1/128");
	}
	CHECK(c.n_apps == 0);
	config_free(&c);
}

static void test_listen_forms(void)
{
	static const struct {
		const char *text;
		const char *host;
		unsigned port;
	} cases[] = {
		{"listen: 127.0.0.1:8080\n", "127.0.0.1", 8080},
		{"listen: \"[::1]:8080\"\n", "::1", 8080},
		{"listen: '[::]:1'\n", "::", 1},
		{"listen: 0.0.0.0:65535\n", "0.0.0.0", 65535},
		{"listen: localhost:0\n", "localhost", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;
		char err[512];
		CHECK(load(&c, cases[i].text, err, sizeof(err)) == HOOKD_OK);
		CHECK_STR(c.listen_host, cases[i].host);
		CHECK(c.listen_port == cases[i].port);
		config_free(&c);
	}
}

static void test_sizes(void)
{
	static const struct {
		const char *value;
		uint64_t bytes;
	} good[] = {
		{"1048576", 1048576ull},
		{"1MiB", 1ull << 20},
		{"\"256 MiB\"", 256ull << 20},
		{"1GiB", 1ull << 30},
		{"2TiB", 2ull << 40},
		{"4096KiB", 4ull << 20},
		{"5MB", 5000000ull},
		{"3GB", 3000000000ull},
		{"1TB", 1000000000000ull},
		{"2000000B", 2000000ull},
		{"'2097152'", 2ull << 20},
	};
	static const char *const bad[] = {"1.5GiB", "1gib", "1 G", "GiB", "-1MiB", "1MiB extra",
					  "[1]", "0x100000", "1048575"};
	struct config c;
	char text[128], err[512];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "storage:\n  map_size: %s\n", good[i].value);
		int rc = load(&c, text, err, sizeof(err));
		CHECK(rc == HOOKD_OK);
		if (rc)
			fprintf(stderr, "size %s: %s\n", good[i].value, err);
		CHECK(c.map_size == good[i].bytes);
		config_free(&c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "storage:\n  map_size: %s\n", bad[i]);
		CHECK(load(&c, text, err, sizeof(err)) == HOOKD_ECONFIG);
		CHECK(strncmp(err, "cfg.yaml:2: storage.map_size: ", 30) == 0);
		config_free(&c);
	}
	/* Sizes also go to a size_t (max_payload_bytes) and to the policy memory cap. */
	CHECK(load(&c, "limits: {max_payload_bytes: 1KiB}\npolicies: {memory_limit: 1GiB}\n",
		   err, sizeof(err)) == HOOKD_OK);
	CHECK(c.max_payload_bytes == 1024);
	CHECK(c.policy_memory_limit == 1ull << 30);
	config_free(&c);
}

static void test_env(void)
{
	struct config c;
	char err[512];

	CHECK(load(&c, "api:\n  admin_key: from-file\n", err, sizeof(err)) == HOOKD_OK);
	unsetenv("HOOKD_ADMIN_KEY");
	config_apply_env(&c);
	CHECK_STR(c.admin_key, "from-file");
	setenv("HOOKD_ADMIN_KEY", "", 1);
	config_apply_env(&c);
	CHECK_STR(c.admin_key, "from-file"); /* empty = unset */
	setenv("HOOKD_ADMIN_KEY", "from-env", 1);
	config_apply_env(&c);
	CHECK_STR(c.admin_key, "from-env");
	config_free(&c);

	/* No key in the file: the environment provides it. */
	config_defaults(&c);
	config_apply_env(&c);
	CHECK_STR(c.admin_key, "from-env");
	config_free(&c);
	unsetenv("HOOKD_ADMIN_KEY");
}

static void test_params_json(void)
{
	struct config c;
	char err[512];
	const char *text =
		"apps:\n"
		"  - id: a\n"
		"    endpoints:\n"
		"      - id: e\n"
		"        url: http://127.0.0.1:9/params\n"
		"        policy:\n"
		"          name: shape\n"
		"          params:\n"
		"            z: 1\n"
		"            a: '1'\n"
		"            t: [true, false, TRUE, yes, no, ~, null, '']\n"
		"            n: [-3, +4, 0x1f, 0o17, 1e3, -2.5, 007]\n"
		"            nested: {deep: {list: [{k: v}]}, empty: {}, none: []}\n"
		"            s: \"line\\nbreak\"\n"
		"            block: |\n"
		"              two\n"
		"              lines\n";
	int rc = load(&c, text, err, sizeof(err));
	CHECK(rc == HOOKD_OK);
	if (rc)
		fprintf(stderr, "params: %s\n", err);
	if (c.n_apps == 1 && c.apps[0].n_endpoints == 1) {
		CHECK_STR(ep_str(&c.apps[0].endpoints[0], "url"), "http://127.0.0.1:9/params");
		CHECK_STR(dump(json_object_get(ep_field(&c.apps[0].endpoints[0], "policy"), "params")),
			  "{\"z\":1,\"a\":\"1\",\"t\":[true,false,true,\"yes\",\"no\",null,null,\"\"],"
			  "\"n\":[-3,4,31,15,1000.0,-2.5,7],"
			  "\"nested\":{\"deep\":{\"list\":[{\"k\":\"v\"}]},\"empty\":{},\"none\":[]},"
			  "\"s\":\"line\\nbreak\",\"block\":\"two\\nlines\\n\"}");
	}
	config_free(&c);

	/* A policy with no params has NULL params; an empty mapping is "{}". */
	CHECK(load(&c,
		   "apps: [{id: a, endpoints: [{id: e, url: 'http://h/', policy: {name: p}}]}]\n",
		   err, sizeof(err)) == HOOKD_OK);
	CHECK(c.n_apps == 1 &&
	      json_object_get(ep_field(&c.apps[0].endpoints[0], "policy"), "params") == NULL);
	CHECK_STR(json_string_value(json_object_get(ep_field(&c.apps[0].endpoints[0], "policy"),
						    "name")),
		  "p");
	config_free(&c);
	CHECK(load(&c,
		   "apps: [{id: a, endpoints: [{id: e, url: 'http://h/', policy: {name: p, "
		   "params: {}}}]}]\n",
		   err, sizeof(err)) == HOOKD_OK);
	CHECK_STR(dump(json_object_get(ep_field(&c.apps[0].endpoints[0], "policy"), "params")), "{}");
	config_free(&c);
}

/* Declared endpoints follow the endpoint schema the API uses (endpoint_schema.h): "*" means
 * every type, description is a key, and the schema's limits are the file's. The refusals
 * are fixtures; tests/integration/test_schema_agreement.py runs both sides on one table. */
static void test_endpoint_schema_rules(void)
{
	struct config c;
	char err[512], text[2048];
	size_t n;

	CHECK(load(&c,
		   "apps: [{id: a, endpoints: [{id: e, url: 'http://h/', description: note,\n"
		   "  event_types: [invoice.paid, '*'], retry_schedule: ~, headers: ~}]}]\n",
		   err, sizeof(err)) == HOOKD_OK);
	if (c.n_apps == 1 && c.apps[0].n_endpoints == 1) {
		CHECK_STR(dump(ep_field(&c.apps[0].endpoints[0], "event_types")),
			  "[\"invoice.paid\",\"*\"]");
		CHECK_STR(ep_str(&c.apps[0].endpoints[0], "description"), "note");
		CHECK(json_is_null(ep_field(&c.apps[0].endpoints[0], "retry_schedule")));
	}
	config_free(&c);

	/* 32 headers load (the 33rd is bad_headers_count.yaml). */
	n = (size_t)snprintf(text, sizeof(text), "apps: [{id: a, endpoints: [{id: e, url: 'http://h/', headers: {");
	for (int i = 0; i < 32; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%sX-%d: v", i ? ", " : "", i);
	snprintf(text + n, sizeof(text) - n, "}}]}]\n");
	CHECK(load(&c, text, err, sizeof(err)) == HOOKD_OK);
	config_free(&c);
}

/* Exact texts for the message shapes the brief names; the fixtures check the rest. */
static void test_messages(void)
{
	struct config c;
	char err[512];

	CHECK(load(&c, "data_dir: x\nlistn: 1\n", err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK_STR(err, "cfg.yaml:2: unknown key 'listn' at top level (did you mean 'listen'?)");
	config_free(&c);

	CHECK(load(&c, "delivery:\n  timeout_ms: fast\n", err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK_STR(err, "cfg.yaml:2: delivery.timeout_ms: expected an integer, got 'fast'");
	config_free(&c);

	CHECK(load(&c, "listen: '8080'\n", err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK_STR(err, "cfg.yaml:1: listen: expected host:port, got '8080'");
	config_free(&c);

	CHECK(load(&c, "delivery: {timeout_ms: 1\n", err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK(strncmp(err, "cfg.yaml:2: column 1: YAML syntax error: ", 41) == 0);
	config_free(&c);

	/* A long value is cut and control characters do not reach the log. */
	CHECK(load(&c, "delivery:\n  timeout_ms: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\e\"\n",
		   err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK(strstr(err, "got 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'") != NULL);
	config_free(&c);
	CHECK(load(&c, "data_dir: [\"\\e[31m\"]\nx: 1\n", err, sizeof(err)) == HOOKD_ECONFIG);
	config_free(&c);
	CHECK(load(&c, "apps: [{id: \"a\\e\"}]\n", err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK(strstr(err, "got 'a?'") != NULL);
	config_free(&c);

	/* A small buffer is filled, cut and terminated; no buffer at all is fine too. */
	char tiny[12];
	CHECK(load(&c, "listn: 1\n", tiny, sizeof(tiny)) == HOOKD_ECONFIG);
	CHECK_STR(tiny, "cfg.yaml:1:");
	config_free(&c);
	CHECK(load(&c, "listn: 1\n", NULL, 0) == HOOKD_ECONFIG);
	config_free(&c);

	/* Deep nesting is refused before it can exhaust the stack. */
	char deep[400];
	size_t n = 0;
	n += (size_t)snprintf(deep + n, sizeof(deep) - n, "apps: ");
	for (int i = 0; i < 80; i++)
		deep[n++] = '[';
	deep[n] = '\0';
	CHECK(load(&c, deep, err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK(strstr(err, "nested deeper than") != NULL);
	config_free(&c);
}

/* Loading over a loaded config replaces what the second file names and leaks nothing;
 * a failed load leaves a struct that config_free can still take apart. */
static void test_reload_and_partial(void)
{
	struct config c;
	char err[512];

	CHECK(load(&c,
		   "api: {admin_key: k1}\nsecurity: {allow_destinations: [10.0.0.0/8]}\n"
		   "apps: [{id: a, endpoints: [{id: e, url: 'http://h/', headers: {A: b}, "
		   "event_types: [x], retry_schedule: [1], policy: {name: p, params: {a: 1}}}]}]\n",
		   err, sizeof(err)) == HOOKD_OK);
	const char *second =
		"listen: 127.0.0.1:1\ndata_dir: ./d2\napi: {admin_key: ~}\n"
		"delivery: {retry_schedule: [9]}\n"
		"security: {allow_destinations: ~}\n"
		"apps: [{id: b}]\n";
	CHECK(config_load_string(&c, second, strlen(second), "two.yaml", err, sizeof(err)) ==
	      HOOKD_OK);
	CHECK(c.admin_key == NULL);
	CHECK(c.n_allow_destinations == 0);
	CHECK(c.n_retry_schedule == 1 && c.retry_schedule[0] == 9);
	CHECK(c.n_apps == 1);
	CHECK_STR(c.apps[0].id, "b");
	CHECK_STR(c.data_dir, "./d2");
	config_free(&c);

	/* Fails in the second endpoint's headers after much was allocated. */
	CHECK(load(&c,
		   "apps:\n"
		   "  - id: a\n"
		   "    endpoints:\n"
		   "      - {id: e1, url: 'http://h/', headers: {A: b}, event_types: [x, y], "
		   "policy: {name: p, params: {q: [1]}}}\n"
		   "      - {id: e2, url: 'http://h/', headers: {A: b, host: evil}}\n"
		   "      - {id: e3, url: 'http://h/'}\n",
		   err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK(strstr(err, "cfg.yaml:5: apps[0].endpoints[1].headers.host:") != NULL);
	config_free(&c);
	config_free(&c); /* zeroed by the first call */

	/* Zeroed, never loaded. */
	struct config z;
	memset(&z, 0, sizeof(z));
	config_free(&z);

	/* Loaded without config_defaults: the allocated defaults are filled in. */
	memset(&z, 0, sizeof(z));
	CHECK(config_load_string(&z, "", 0, "z.yaml", err, sizeof(err)) == HOOKD_OK);
	CHECK_STR(z.listen_host, "127.0.0.1");
	CHECK_STR(z.data_dir, "./data");
	CHECK(z.n_retry_schedule == 7);
	config_free(&z);
}

static void test_missing_file(void)
{
	struct config c;
	char err[512];

	config_defaults(&c);
	CHECK(config_load_file(&c, "/nonexistent/hookd.yaml", err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK(strstr(err, "/nonexistent/hookd.yaml") != NULL);
	CHECK(strstr(err, "No such file") != NULL);
	config_free(&c);

	config_defaults(&c);
	CHECK(config_load_file(&c, source_dir(), err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK(strstr(err, "cannot read") != NULL);
	config_free(&c);

	/* 4 MiB of comments load; one byte more is refused. */
	char tmp[] = "/tmp/hookd-test-config-XXXXXX";
	int fd = mkstemp(tmp);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	FILE *f = fdopen(fd, "w");
	static char line[1024];
	memset(line, ' ', sizeof(line));
	line[0] = '#';
	line[sizeof(line) - 1] = '\n';
	for (int i = 0; i < 4096; i++)
		fwrite(line, 1, sizeof(line), f);
	fflush(f);
	config_defaults(&c);
	CHECK(config_load_file(&c, tmp, err, sizeof(err)) == HOOKD_OK);
	config_free(&c);
	fputc('\n', f);
	fclose(f);
	config_defaults(&c);
	CHECK(config_load_file(&c, tmp, err, sizeof(err)) == HOOKD_ECONFIG);
	CHECK(strstr(err, "larger than 4194304 bytes") != NULL);
	config_free(&c);
	unlink(tmp);
}

/* Fails each allocation of a full load in turn: every run must end in HOOKD_OK or
 * HOOKD_ENOMEM (never a crash or a false config error), and free everything it took. */
static void test_alloc_failures(void)
{
#ifdef ALLOC_HOOK
	char path[1024], err[512];
	static char text[8192];
	snprintf(path, sizeof(path), "%s/tests/unit/fixtures/config/good_full.yaml", source_dir());
	FILE *f = fopen(path, "r");
	size_t len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	if (f)
		fclose(f);
	CHECK(len > 0);
	text[len] = '\0';

	log_set_level((enum log_level)(LOG_ERROR + 1)); /* config_defaults logs its OOM */
	long runs = 0, bad_rc = 0, leaked = 0;
	for (long n = 0; n < 100000; n++, runs++) {
		struct config c;
		long live = alloc_live;
		alloc_failed = false;
		alloc_count = 0;
		alloc_fail_at = n;
		config_defaults(&c);
		int rc = config_load_string(&c, text, len, "full.yaml", err, sizeof(err));
		alloc_fail_at = -1;
		bool failed = alloc_failed;
		bool complete = rc == HOOKD_OK && c.n_apps == 2 && c.listen_host &&
				c.apps[0].n_endpoints == 2 &&
				json_object_get(ep_field(&c.apps[0].endpoints[0], "policy"),
						"params") &&
				c.n_allow_destinations == 3;
		if (!(complete || (failed && rc == HOOKD_ENOMEM && strstr(err, "out of memory")))) {
			if (bad_rc++ < 5)
				fprintf(stderr, "allocation %ld failed: rc %d: %s\n", n, rc, err);
		}
		config_free(&c);
		if (alloc_live != live && leaked++ < 5)
			fprintf(stderr, "allocation %ld failed: %ld blocks leaked\n", n,
				alloc_live - live);
		if (!failed)
			break; /* the whole load ran without reaching allocation n */
	}
	log_set_level(LOG_INFO);
	CHECK(runs > 50);
	CHECK(bad_rc == 0);
	CHECK(leaked == 0);
#endif
}

static int bad_filter(const struct dirent *d)
{
	size_t len = strlen(d->d_name);
	return strncmp(d->d_name, "bad_", 4) == 0 && len > 5 &&
	       strcmp(d->d_name + len - 5, ".yaml") == 0;
}

/* Reads "# expect: LINE TEXT" from the first line of path. */
static int read_expectation(const char *path, long *line, char *text, size_t textlen)
{
	char first[512];
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char *got = fgets(first, sizeof(first), f);
	fclose(f);
	if (!got || strncmp(first, "# expect: ", 10) != 0)
		return -1;
	char *end = NULL;
	*line = strtol(first + 10, &end, 10);
	if (end == first + 10 || *end != ' ' || *line <= 0)
		return -1;
	snprintf(text, textlen, "%s", end + 1);
	text[strcspn(text, "\n")] = '\0';
	return text[0] ? 0 : -1;
}

static void test_bad_fixtures(void)
{
	char dir[1024];
	struct dirent **names = NULL;

	snprintf(dir, sizeof(dir), "%s/tests/unit/fixtures/config", source_dir());
	int n = scandir(dir, &names, bad_filter, alphasort);
	CHECK(n >= 15);
	for (int i = 0; i < n; i++) {
		char path[2048], want[512], prefix[2100], err[1024];
		long line;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		free(names[i]);
		if (read_expectation(path, &line, want, sizeof(want))) {
			fprintf(stderr, "%s: first line must be '# expect: LINE TEXT'\n", path);
			CHECK(!"fixture without expectation");
			continue;
		}
		struct config c;
		config_defaults(&c);
		int rc = config_load_file(&c, path, err, sizeof(err));
		config_free(&c);
		snprintf(prefix, sizeof(prefix), "%s:%ld:", path, line);
		bool ok = rc == HOOKD_ECONFIG && strncmp(err, prefix, strlen(prefix)) == 0 &&
			  strstr(err, want) != NULL;
		if (!ok)
			fprintf(stderr, "%s:\n  rc %d, message: %s\n  expected line %ld and: %s\n",
				path, rc, err, line, want);
		CHECK(ok);
	}
	free(names);
}

int main(void)
{
	test_defaults();
	test_full_file();
	test_quickstart();
	test_listen_forms();
	test_sizes();
	test_env();
	test_params_json();
	test_endpoint_schema_rules();
	test_messages();
	test_reload_and_partial();
	test_missing_file();
	test_alloc_failures();
	test_bad_fixtures();
	return check_done();
}
