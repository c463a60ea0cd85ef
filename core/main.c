/* main.c - the hookd command line: serve, verify, keygen, policy test, version, help.
 * Every command follows cli.h: --help on stdout with exit 0, mistakes named with exit 2. */
#include "api.h"
#include "api-t.h"
#include "cli.h"
#include "clock.h"
#include "config.h"
#include "config_apply.h"
#include "datadir.h"
#include "dispatch.h"
#include "err.h"
#include "fanout.h"
#include "janitor.h"
#include "log.h"
#include "ops.h"
#include "plugin.h"
#include "policy.h"
#include "registry.h"
#include "sign.h"
#include "ssrf.h"
#include "store.h"
#include "transport.h"
#include "worker.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <hookd/verify.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage_top[] =
	"usage: hookd COMMAND [OPTIONS]\n"
	"\n"
	"commands:\n"
	"  hookd serve [--config FILE]       run the daemon (embedded defaults without a file)\n"
	"  hookd verify --secret KEY --id ID --timestamp TS --signature SIG [--tolerance S] < body\n"
	"                                    check a received webhook's signature\n"
	"  hookd keygen [--type hmac|ed25519]\n"
	"                                    print a new endpoint signing secret\n"
	"  hookd policy test FILE [--params JSON] < message.json\n"
	"                                    run a routing policy offline\n"
	"  hookd version                     print the version\n"
	"  hookd help [COMMAND]              this list, or a command's usage\n"
	"\n"
	"'hookd COMMAND --help' (or -h) prints a command's options. docs/api.md,\n"
	"docs/configuration.md and docs/policies.md describe the API, the keys and the policies.\n";

static const struct cli_cmd cmd_serve_usage = {
	"serve",
	"usage: hookd serve [--config FILE]\n"
	"\n"
	"Runs the daemon (the HTTP API, the store and the deliveries) until SIGTERM or SIGINT;\n"
	"SIGHUP reloads policies.dir.\n"
	"\n"
	"options:\n"
	"  --config FILE   the YAML configuration: docs/configuration.md lists every key,\n"
	"                  examples/quickstart.yaml is a commented example\n"
	"  -h, --help      print this help\n"
	"\n"
	"Without --config hookd runs on its embedded defaults: the API on 127.0.0.1:8080, the\n"
	"data in ./data (created), and an admin key generated for this run, printed once in the\n"
	"start-up log (stderr) on the line 'admin key generated for this run ...: KEY'. The first\n"
	"log lines say what was chosen.\n"
	"\n"
	"environment:\n"
	"  HOOKD_ADMIN_KEY   the API's bearer key; wins over api.admin_key\n"
	"  HOOKD_LOG=debug   log debug messages too\n"};

static const struct cli_cmd cmd_verify_usage = {
	"verify",
	"usage: hookd verify --secret KEY --id ID --timestamp TS --signature SIG [--tolerance S] < body\n"
	"\n"
	"Checks a received webhook as a receiver should (Standard Webhooks): the signature over\n"
	"ID.TS.BODY, and TS within the tolerance of now. Prints 'valid' and exits 0, or says why\n"
	"not on stderr and exits 1. The body is read from stdin, byte for byte as received.\n"
	"\n"
	"options:\n"
	"  --secret KEY      the endpoint's secret: whsec_ (HMAC), whsk_ or whpk_ (Ed25519)\n"
	"  --id ID           the webhook-id header\n"
	"  --timestamp TS    the webhook-timestamp header (Unix seconds)\n"
	"  --signature SIG   the webhook-signature header (space-separated v1,... / v1a,...)\n"
	"  --tolerance S     seconds TS may differ from now (default 300)\n"
	"  -h, --help        print this help\n"};

static const struct cli_cmd cmd_keygen_usage = {
	"keygen",
	"usage: hookd keygen [--type hmac|ed25519]\n"
	"\n"
	"Prints a new endpoint signing secret on stdout, alone on its line, so that\n"
	"S=$(hookd keygen) works. Give it to the endpoint (\"secret\" in the API or the config\n"
	"file) and to the receiver. For ed25519 the public key (whpk_...), which receivers verify\n"
	"with, is printed on stderr.\n"
	"\n"
	"options:\n"
	"  --type hmac      a whsec_ secret for HMAC-SHA256 signatures (v1), 32 random bytes;\n"
	"                   the default\n"
	"  --type ed25519   a whsk_ Ed25519 secret key (v1a signatures)\n"
	"  -h, --help       print this help\n"};

static const struct cli_cmd cmd_policy_usage = {
	"policy",
	"usage: hookd policy COMMAND\n"
	"\n"
	"commands:\n"
	"  hookd policy test FILE [--params JSON] < message.json\n"
	"                    run a routing policy offline, in the daemon's sandbox\n"
	"\n"
	"options:\n"
	"  -h, --help   print this help\n"
	"\n"
	"'hookd policy test --help' prints its options; docs/policies.md describes policies.\n"};

static const struct cli_cmd cmd_version_usage = {
	"version",
	"usage: hookd version\n"
	"\n"
	"Prints hookd's version (also: hookd --version).\n"
	"\n"
	"options:\n"
	"  -h, --help   print this help\n"};

static const struct cli_cmd cmd_help_usage = {
	"help",
	"usage: hookd help [COMMAND]\n"
	"\n"
	"Prints the list of commands, or COMMAND's usage: 'hookd help policy test' is\n"
	"'hookd policy test --help'.\n"
	"\n"
	"options:\n"
	"  -h, --help   print this help\n"};

static bool cli_is_help_flag(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* ---------- serve ---------- */

struct daemon {
	struct config cfg;
	struct event_base *base;
	struct store *store;
	struct registry reg;
	struct ssrf_policy ssrf;
	struct plugins *plugins;
	struct transport *transport;
	struct dispatch *disp;
	struct policy_engine *policies;
	struct worker *worker;
	struct janitor *janitor;
	struct api *api;
	struct ops *ops;
	struct event *sigterm, *sigint, *sighup;
	int listen_fd;  /* bound before the store opens; the API's once it listens */
	int datadir_fd; /* the data directory's lock */
};

static void daemon_stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopexit(d->base, NULL);
}

static void daemon_reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	char err[512];
	if (!d->cfg.policy_dir) {
		log_info("SIGHUP: no policies.dir configured, nothing to reload");
		return;
	}
	if (config_apply_policies(&d->cfg, d->policies, err, sizeof(err)) != HOOKD_OK)
		log_warn("SIGHUP: policy reload: %s (the running versions stay)", err);
	else
		log_info("SIGHUP: policies reloaded from %s", d->cfg.policy_dir);
	api_policies_load_stored(d->store, d->policies);
}

/* Raises the soft file-descriptor limit to the hard one. API connections, delivery sockets
 * and the store share the descriptors, and the usual soft default (1024) is less than
 * delivery.max_inflight alone; the API's connection cap is derived from the raised limit. */
static void daemon_nofile_raise(void)
{
	struct rlimit rl;
	rlim_t was;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("cannot raise the file descriptor limit from %llu to %llu: %s",
			 (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
		return;
	}
	log_info("file descriptor limit raised from %llu to %llu", (unsigned long long)was,
		 (unsigned long long)rl.rlim_max);
}

/* Policy fan-outs interrupted by a crash (message stored and acknowledged, its policy
 * deliveries not yet): finished before serving, synchronously, policies run inline. */
static int daemon_recover_fanouts(struct daemon *d)
{
	struct fanout_ctx ctx = {d->store, d->disp, &d->reg, d->policies, NULL, NULL};
	fanout_recover(&ctx);
	return HOOKD_OK;
}

/* The admin key when neither api.admin_key nor HOOKD_ADMIN_KEY set one: 24 random bytes
 * (192 bits, beyond guessing), as 48 hex digits that paste into a shell unquoted. */
#define SERVE_ADMIN_KEY_BYTES 24

/* Says, in the first log lines, what this start chose: where the API listens, where the
 * data is (absolute: a relative data_dir depends on the working directory), and where the
 * admin key comes from. A generated key is printed here and nowhere else. */
static void serve_announce(const struct daemon *d, const char *config_path, uint16_t port,
			   bool data_dir_existed, const char *generated_key)
{
	const char *host = d->cfg.listen_host, *v6 = strchr(host, ':');
	char *data = realpath(d->cfg.data_dir, NULL), *cfg = NULL;

	if (config_path) {
		cfg = realpath(config_path, NULL);
		log_info("hookd %s starting with %s", HOOKD_VERSION, cfg ? cfg : config_path);
	} else {
		log_info("hookd %s starting on the embedded defaults (no --config; "
			 "docs/configuration.md lists every key)", HOOKD_VERSION);
	}
	log_info("API listening on http://%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
	log_info("data directory %s%s", data ? data : d->cfg.data_dir,
		 data_dir_existed ? "" : " (created)");
	if (generated_key)
		log_warn("admin key generated for this run (no api.admin_key or HOOKD_ADMIN_KEY); "
			 "printed only here, new at every start: %s",
			 generated_key);
	else
		log_info("admin key: from %s", getenv("HOOKD_ADMIN_KEY") && *getenv("HOOKD_ADMIN_KEY")
							? "HOOKD_ADMIN_KEY"
							: "api.admin_key");
	free(data);
	free(cfg);
}

/* The event loop, first: the plugins are given it when they load. */
static int serve_loop_new(struct daemon *d, char *err, size_t errlen)
{
	struct event_config *ecfg;
	evthread_use_pthreads();
	/* epoll's change list: an event deleted and added again within one loop pass (evhttp
	 * does that on every request it reads and answers) costs one epoll_ctl, or none. */
	if ((ecfg = event_config_new())) {
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		d->base = event_base_new_with_config(ecfg);
		event_config_free(ecfg);
	}
	if (!d->base) {
		snprintf(err, errlen, "cannot create the event loop");
		return HOOKD_ENOMEM;
	}
	return HOOKD_OK;
}

/* The plugins (plugins.dir, or the built-in directory), before the rest of the file is
 * read: declared endpoints may name a plugin's URL scheme, which the endpoint schema
 * checks against the loaded plugins. A refusal stops the start (plugin.h). */
static int serve_plugins(struct daemon *d, const char *config_path, char *err, size_t errlen)
{
	struct config pre;
	int rc = HOOKD_OK;
	config_defaults(&pre);
	if (config_path)
		rc = config_load_file_plugins(&pre, config_path, err, errlen);
	if (rc == HOOKD_OK)
		rc = plugins_load(&d->plugins, d->base, &pre, err, errlen);
	config_free(&pre);
	return rc;
}

/* The configuration: embedded defaults, then the file (if any), then the environment. */
static int serve_configure(struct daemon *d, const char *config_path, char *err, size_t errlen)
{
	if (serve_loop_new(d, err, errlen) != HOOKD_OK ||
	    serve_plugins(d, config_path, err, errlen) != HOOKD_OK)
		return HOOKD_EINVAL;
	config_defaults(&d->cfg);
	if (config_path && config_load_file(&d->cfg, config_path, err, errlen) != HOOKD_OK)
		return HOOKD_EINVAL;
	config_apply_env(&d->cfg);
	for (size_t i = 0; i < d->cfg.n_allow_destinations; i++) {
		char why[512];
		if (ssrf_policy_allow(&d->ssrf, d->cfg.allow_destinations[i], why, sizeof(why)) !=
		    HOOKD_OK) {
			snprintf(err, errlen, "security.allow_destinations: %s", why);
			return HOOKD_EINVAL;
		}
	}
	return HOOKD_OK;
}

/* Generates the admin key into generated (hex) when none is configured; "" otherwise. */
static int serve_admin_key(struct daemon *d, char generated[2 * SERVE_ADMIN_KEY_BYTES + 1])
{
	unsigned char raw[SERVE_ADMIN_KEY_BYTES];
	generated[0] = '\0';
	if (d->cfg.admin_key)
		return HOOKD_OK;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(generated, 2 * SERVE_ADMIN_KEY_BYTES + 1, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	d->cfg.admin_key = strdup(generated);
	return d->cfg.admin_key ? HOOKD_OK : HOOKD_ENOMEM;
}

/* The store and what is loaded from it before anything is delivered:
 * apps and endpoints (stored, then declared in the config), and the policies. */
static int serve_open_store(struct daemon *d, char *err, size_t errlen)
{
	if (store_open(d->cfg.data_dir, d->cfg.map_size, &d->store, err, errlen) != HOOKD_OK ||
	    registry_load(&d->reg, d->store, err, errlen) != HOOKD_OK ||
	    config_apply_declared(&d->cfg, &d->reg, d->store, err, errlen) != HOOKD_OK)
		return HOOKD_ESTORE;
	/* 64 ops: one publish per default in-flight slot of an endpoint is a full batch. */
	store_set_commit_delay(d->store, d->cfg.commit_delay_us, 64);
	struct policy_limits limits = {d->cfg.policy_cpu_ms, d->cfg.policy_memory_limit};
	if (policy_engine_new(&limits, &d->policies) != HOOKD_OK) {
		snprintf(err, errlen, "cannot start the policy engine");
		return HOOKD_ENOMEM;
	}
	if (config_apply_policies(&d->cfg, d->policies, err, errlen) != HOOKD_OK)
		log_warn("policies: %s", err);
	api_policies_load_stored(d->store, d->policies);
	return HOOKD_OK;
}

/* The delivery side (transport, scheduler with the pending deliveries, interrupted
 * fan-outs), the writer, the janitor, the policy threads and the API, which starts
 * accepting on the socket bound at the start. */
static int serve_start(struct daemon *d, char *err, size_t errlen)
{
	int rc;
	err[0] = '\0';
	struct transport *http =
		transport_http_new(d->base, &d->ssrf, d->cfg.max_inflight, err, errlen);
	if (http)
		d->transport = transport_plugin_new(d->base, http, d->plugins, &d->ssrf, err, errlen);
	if (!d->transport ||
	    dispatch_new(d->base, d->store, &d->reg, &d->cfg, d->transport, &d->disp) != HOOKD_OK ||
	    ops_new(d->cfg.ops_app, &d->reg, d->store, d->disp, &d->ops) != HOOKD_OK ||
	    dispatch_load(d->disp, err, errlen) != HOOKD_OK ||
	    daemon_recover_fanouts(d) != HOOKD_OK || store_start(d->store, d->base) != HOOKD_OK ||
	    janitor_new(d->base, d->store, &d->reg, d->cfg.retention_days,
			d->cfg.payload_retention_days, &d->janitor) != HOOKD_OK ||
	    worker_new(d->base, d->cfg.policy_threads, &d->worker) != HOOKD_OK ||
	    api_new(d->base, d->store, &d->reg, d->disp, d->policies, d->worker, &d->cfg,
		    &d->api) != HOOKD_OK) {
		if (!err[0])
			snprintf(err, errlen, "startup failed");
		return HOOKD_EIO;
	}
	dispatch_set_events(d->disp, ops_dispatch_event, d->ops);
	api_set_ops(d->api, d->ops);
	if (d->cfg.ops_app && !registry_app(&d->reg, d->cfg.ops_app))
		log_warn("operational_webhooks.app '%s' is not an app (declare it under apps, or "
			 "create it through the API): operational events are dropped until it is",
			 d->cfg.ops_app);
	rc = api_listen(d->api, d->listen_fd, err, errlen);
	d->listen_fd = -1; /* the API's now, also when api_listen failed */
	if (rc != HOOKD_OK)
		return rc;
	d->sigterm = evsignal_new(d->base, SIGTERM, daemon_stop_cb, d);
	d->sigint = evsignal_new(d->base, SIGINT, daemon_stop_cb, d);
	d->sighup = evsignal_new(d->base, SIGHUP, daemon_reload_cb, d);
	event_add(d->sigterm, NULL);
	event_add(d->sigint, NULL);
	event_add(d->sighup, NULL);
	return HOOKD_OK;
}

/* Stops and frees whatever serve started, in dependency order (any prefix of it). */
static void serve_teardown(struct daemon *d)
{
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	api_close(d->api);
	/* Jobs on the policy threads finish and hand their commits to the writer first. */
	worker_free(d->worker);
	if (d->store)
		store_stop(d->store);
	janitor_free(d->janitor);
	api_free(d->api);
	dispatch_free(d->disp);
	ops_free(d->ops); /* after store_stop: its last commits' callbacks use it */
	/* Cancels the plugins' sends in flight, before their cleanup (plugins_free). */
	if (d->transport)
		d->transport->destroy(d->transport);
	plugins_free(d->plugins);
	if (d->policies)
		policy_engine_free(d->policies);
	registry_free(&d->reg);
	store_close(d->store);
	if (d->sigterm)
		event_free(d->sigterm);
	if (d->sigint)
		event_free(d->sigint);
	if (d->sighup)
		event_free(d->sighup);
	if (d->base)
		event_base_free(d->base);
	ssrf_policy_free(&d->ssrf);
	datadir_lock_release(d->datadir_fd);
	config_free(&d->cfg);
	curl_global_cleanup();
	libevent_global_shutdown();
}

static int cmd_serve(int argc, char **argv)
{
	struct daemon d;
	const char *config_path = NULL;
	const struct cli_opt opts[] = {{"--config", &config_path}, {NULL, NULL}};
	char err[1024], generated_key[2 * SERVE_ADMIN_KEY_BYTES + 1];
	uint16_t port = 0;
	int rc = 1;
	bool data_dir_existed;
	struct stat st;

	memset(&d, 0, sizeof(d));
	d.listen_fd = d.datadir_fd = -1;
	if (!cli_parse(&cmd_serve_usage, opts, argc, argv, NULL, 0, NULL, &rc))
		return rc;
	rc = 1;
	if (getenv("HOOKD_LOG") && strcmp(getenv("HOOKD_LOG"), "debug") == 0)
		log_set_level(LOG_DEBUG);
	if (serve_configure(&d, config_path, err, sizeof(err)) != HOOKD_OK)
		goto fail;
	/* Listen first: a daemon that cannot have its address (taken, not local, privileged)
	 * stops here, before it creates, locks or opens the data directory, and without
	 * loading the pending deliveries it could not be asked about. */
	if (api_socket_open(d.cfg.listen_host, d.cfg.listen_port, &d.listen_fd, &port, err,
			    sizeof(err)) != HOOKD_OK)
		goto fail;
	if (sign_init() != HOOKD_OK || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, sizeof(err), "cannot initialize libsodium/libcurl");
		goto fail;
	}
	if (serve_admin_key(&d, generated_key) != HOOKD_OK) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	/* Before the store: a second daemon on this directory would deliver everything twice. */
	data_dir_existed = stat(d.cfg.data_dir, &st) == 0;
	if (datadir_lock_acquire(d.cfg.data_dir, &d.datadir_fd, err, sizeof(err)) != HOOKD_OK)
		goto fail;
	serve_announce(&d, config_path, port, data_dir_existed,
		       generated_key[0] ? generated_key : NULL);
	daemon_nofile_raise();
	signal(SIGPIPE, SIG_IGN);
	if (serve_open_store(&d, err, sizeof(err)) != HOOKD_OK ||
	    serve_start(&d, err, sizeof(err)) != HOOKD_OK)
		goto fail;
	log_info("hookd %s ready on http://%s%s%s:%u", HOOKD_VERSION,
		 strchr(d.cfg.listen_host, ':') ? "[" : "", d.cfg.listen_host,
		 strchr(d.cfg.listen_host, ':') ? "]" : "", port);
	event_base_dispatch(d.base);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "hookd: %s\n", err);
out:
	serve_teardown(&d);
	return rc;
}

/* ---------- verify / keygen ---------- */

static int cmd_verify(int argc, char **argv)
{
	const char *secret = NULL, *id = NULL, *ts = NULL, *sig = NULL, *tol = NULL;
	const struct cli_opt opts[] = {{"--secret", &secret},	  {"--id", &id},
				       {"--timestamp", &ts},	  {"--signature", &sig},
				       {"--tolerance", &tol},	  {NULL, NULL}};
	long long tolerance = 300;
	char err[256], *body = NULL, *end;
	size_t len = 0, cap = 0;
	int rc;

	if (!cli_parse(&cmd_verify_usage, opts, argc, argv, NULL, 0, NULL, &rc))
		return rc;
	/* The four that name what is checked are required; --tolerance (the last) is not. */
	for (const struct cli_opt *o = opts; o < opts + 4; o++)
		if (!*o->value)
			return cli_error(&cmd_verify_usage, "missing option '%s'", o->name);
	if (tol) {
		errno = 0;
		tolerance = strtoll(tol, &end, 10);
		if (errno || end == tol || *end || tolerance < 0)
			return cli_error(&cmd_verify_usage,
					 "option '--tolerance' needs a number of seconds, got '%s'", tol);
	}
	for (;;) {
		if (len == cap) {
			char *n = realloc(body, cap ? cap * 2 : 65536);
			if (!n) {
				free(body);
				fprintf(stderr, "hookd: verify: out of memory reading the body\n");
				return 1;
			}
			body = n;
			cap = cap ? cap * 2 : 65536;
		}
		size_t got = fread(body + len, 1, cap - len, stdin);
		if (got == 0)
			break;
		len += got;
	}
	if (sign_init() != HOOKD_OK) {
		free(body);
		fprintf(stderr, "hookd: verify: cannot initialize libsodium\n");
		return 1;
	}
	rc = hookd_verify(secret, id, ts, body ? body : "", len, sig, (long long)time(NULL), tolerance,
			  err, sizeof(err));
	free(body);
	if (rc == 0) {
		printf("valid\n");
		return 0;
	}
	fprintf(stderr, "invalid: %s\n", err);
	return 1;
}

/* Prints the key alone on stdout (S=$(hookd keygen)); anything else goes to stderr. */
static int cmd_keygen(int argc, char **argv)
{
	const char *type = NULL;
	const struct cli_opt opts[] = {{"--type", &type}, {NULL, NULL}};
	enum sign_kind kind = SIGN_HMAC;
	char text[SIGN_TEXT_MAX], pub[SIGN_TEXT_MAX];
	struct sign_key k;
	int rc;

	if (!cli_parse(&cmd_keygen_usage, opts, argc, argv, NULL, 0, NULL, &rc))
		return rc;
	if (type && strcmp(type, "ed25519") == 0)
		kind = SIGN_ED25519;
	else if (type && strcmp(type, "hmac") != 0)
		return cli_error(&cmd_keygen_usage, "--type must be hmac or ed25519, got '%s'", type);
	if (sign_init() != HOOKD_OK || sign_key_generate(kind, text, sizeof(text)) != HOOKD_OK) {
		fprintf(stderr, "hookd: keygen: cannot generate a key\n");
		return 1;
	}
	if (kind == SIGN_ED25519 && (sign_key_parse(text, &k, NULL, 0) != HOOKD_OK ||
				     sign_key_public_text(&k, pub, sizeof(pub)) != HOOKD_OK)) {
		fprintf(stderr, "hookd: keygen: cannot derive the public key\n");
		sodium_memzero(text, sizeof(text));
		return 1;
	}
	printf("%s\n", text);
	if (kind == SIGN_ED25519)
		fprintf(stderr, "public key (receivers verify with it): %s\n", pub);
	sodium_memzero(text, sizeof(text));
	sodium_memzero(&k, sizeof(k));
	return 0;
}

/* ---------- policy, version, help ---------- */

static int cmd_policy(int argc, char **argv)
{
	if (argc == 0)
		return cli_error(&cmd_policy_usage, "missing command (hookd policy test ...)");
	if (cli_is_help_flag(argv[0])) {
		cli_help(&cmd_policy_usage);
		return 0;
	}
	if (strcmp(argv[0], "test") == 0)
		return policy_cli_test(argc - 1, argv + 1);
	if (argv[0][0] == '-')
		return cli_error(&cmd_policy_usage, "unknown option '%s'", argv[0]);
	return cli_error(&cmd_policy_usage, "unknown command '%s'", argv[0]);
}

static int cmd_version(int argc, char **argv)
{
	int rc;
	if (!cli_parse(&cmd_version_usage, NULL, argc, argv, NULL, 0, NULL, &rc))
		return rc;
	printf("hookd %s\n", HOOKD_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv);

struct command {
	const struct cli_cmd *cli;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	{&cmd_serve_usage, cmd_serve},	   {&cmd_verify_usage, cmd_verify},
	{&cmd_keygen_usage, cmd_keygen},   {&cmd_policy_usage, cmd_policy},
	{&cmd_version_usage, cmd_version}, {&cmd_help_usage, cmd_help},
};

static const struct command *command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].cli->name, name) == 0)
			return &commands[i];
	return NULL;
}

/* `hookd help VERB [SUBVERB]` runs `hookd VERB [SUBVERB] --help`: one usage text each. */
static int cmd_help(int argc, char **argv)
{
	const struct command *c;
	char *args[8];

	if (argc == 0) {
		fputs(usage_top, stdout);
		return 0;
	}
	if (cli_is_help_flag(argv[0])) {
		cli_help(&cmd_help_usage);
		return 0;
	}
	if (!(c = command_find(argv[0])))
		return cli_error(NULL, "unknown command '%s'", argv[0]);
	if (argc > (int)(sizeof(args) / sizeof(args[0])) - 1)
		return cli_error(&cmd_help_usage, "too many arguments");
	for (int i = 1; i < argc; i++)
		args[i - 1] = argv[i];
	args[argc - 1] = "--help";
	return c->run(argc, args);
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		fputs(usage_top, stderr);
		return CLI_EXIT_USAGE;
	}
	if (cli_is_help_flag(argv[1])) {
		fputs(usage_top, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(0, NULL);
	if (argv[1][0] == '-')
		return cli_error(NULL, "unknown option '%s'", argv[1]);
	if (!(c = command_find(argv[1])))
		return cli_error(NULL, "unknown command '%s'", argv[1]);
	return c->run(argc - 2, argv + 2);
}
