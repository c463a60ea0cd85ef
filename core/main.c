/* main.c - the hookd command line: serve, verify, keygen, policy test. */
#include "api.h"
#include "api-t.h"
#include "clock.h"
#include "config.h"
#include "config_apply.h"
#include "datadir.h"
#include "dispatch.h"
#include "err.h"
#include "fanout.h"
#include "janitor.h"
#include "log.h"
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
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage:\n"
		   "  hookd serve [--config FILE]        run the daemon (embedded defaults without a file)\n"
		   "  hookd verify --secret KEY --id ID --timestamp TS --signature SIG [--tolerance S] < body\n"
		   "                                     check a received webhook (whsec_/whsk_/whpk_ key)\n"
		   "  hookd keygen [--type hmac|ed25519]  print a new signing secret\n"
		   "  hookd policy test FILE [--params JSON] < message.json\n"
		   "                                     run a routing policy offline\n"
		   "  hookd version\n");
}

/* ---------- serve ---------- */

struct daemon {
	struct config cfg;
	struct event_base *base;
	struct store *store;
	struct registry reg;
	struct ssrf_policy ssrf;
	struct transport *http;
	struct dispatch *disp;
	struct policy_engine *policies;
	struct worker *worker;
	struct janitor *janitor;
	struct api *api;
	struct event *sigterm, *sigint, *sighup;
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

static int cmd_serve(int argc, char **argv)
{
	struct daemon d;
	const char *config_path = NULL;
	char err[1024], generated_key[64];
	uint16_t port = 0;
	int rc = 1, datadir_fd = -1;

	memset(&d, 0, sizeof(d));
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config_path = argv[++i];
		else {
			usage(stderr);
			return 2;
		}
	}
	if (getenv("HOOKD_LOG") && strcmp(getenv("HOOKD_LOG"), "debug") == 0)
		log_set_level(LOG_DEBUG);
	config_defaults(&d.cfg);
	if (config_path && config_load_file(&d.cfg, config_path, err, sizeof(err)) != HOOKD_OK) {
		fprintf(stderr, "hookd: %s\n", err);
		config_free(&d.cfg);
		return 1;
	}
	config_apply_env(&d.cfg);
	daemon_nofile_raise();
	if (sign_init() != HOOKD_OK || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "hookd: cannot initialize libsodium/libcurl\n");
		goto out;
	}
	if (!d.cfg.admin_key) {
		unsigned char raw[24];
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(generated_key, sizeof(generated_key), raw, sizeof(raw));
		d.cfg.admin_key = strdup(generated_key);
		log_warn("no api.admin_key or HOOKD_ADMIN_KEY set; generated one for this run: %s",
			 generated_key);
	}
	for (size_t i = 0; i < d.cfg.n_allow_destinations; i++)
		if (ssrf_policy_allow(&d.ssrf, d.cfg.allow_destinations[i], err, sizeof(err)) != HOOKD_OK) {
			fprintf(stderr, "hookd: security.allow_destinations: %s\n", err);
			goto out;
		}
	/* Before the store: a second daemon on this directory would deliver everything twice. */
	if (datadir_lock_acquire(d.cfg.data_dir, &datadir_fd, err, sizeof(err)) != HOOKD_OK) {
		fprintf(stderr, "hookd: %s\n", err);
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	d.base = event_base_new();
	if (!d.base) {
		fprintf(stderr, "hookd: cannot create the event loop\n");
		goto out;
	}
	if (store_open(d.cfg.data_dir, d.cfg.map_size, &d.store, err, sizeof(err)) != HOOKD_OK ||
	    registry_load(&d.reg, d.store, err, sizeof(err)) != HOOKD_OK ||
	    config_apply_declared(&d.cfg, &d.reg, d.store, err, sizeof(err)) != HOOKD_OK) {
		fprintf(stderr, "hookd: %s\n", err);
		goto out;
	}
	/* 64 ops: one publish per default in-flight slot of an endpoint is a full batch. */
	store_set_commit_delay(d.store, d.cfg.commit_delay_us, 64);
	struct policy_limits limits = {d.cfg.policy_cpu_ms, d.cfg.policy_memory_limit};
	if (policy_engine_new(&limits, &d.policies) != HOOKD_OK) {
		fprintf(stderr, "hookd: cannot start the policy engine\n");
		goto out;
	}
	if (config_apply_policies(&d.cfg, d.policies, err, sizeof(err)) != HOOKD_OK)
		log_warn("policies: %s", err);
	api_policies_load_stored(d.store, d.policies);
	d.http = transport_http_new(d.base, &d.ssrf, err, sizeof(err));
	if (!d.http || dispatch_new(d.base, d.store, &d.reg, &d.cfg, d.http, &d.disp) != HOOKD_OK ||
	    dispatch_load(d.disp, err, sizeof(err)) != HOOKD_OK ||
	    daemon_recover_fanouts(&d) != HOOKD_OK ||
	    store_start(d.store, d.base) != HOOKD_OK ||
	    janitor_new(d.base, d.store, d.cfg.retention_days, &d.janitor) != HOOKD_OK ||
	    worker_new(d.base, &d.worker) != HOOKD_OK ||
	    api_new(d.base, d.store, &d.reg, d.disp, d.policies, d.worker, &d.cfg, &d.api) != HOOKD_OK ||
	    api_listen(d.api, d.cfg.listen_host, d.cfg.listen_port, &port, err, sizeof(err)) != HOOKD_OK) {
		fprintf(stderr, "hookd: %s\n", err[0] ? err : "startup failed");
		goto out;
	}
	d.sigterm = evsignal_new(d.base, SIGTERM, daemon_stop_cb, &d);
	d.sigint = evsignal_new(d.base, SIGINT, daemon_stop_cb, &d);
	d.sighup = evsignal_new(d.base, SIGHUP, daemon_reload_cb, &d);
	event_add(d.sigterm, NULL);
	event_add(d.sigint, NULL);
	event_add(d.sighup, NULL);
	log_info("hookd %s listening on http://%s%s%s:%u (data in %s)", HOOKD_VERSION,
		 strchr(d.cfg.listen_host, ':') ? "[" : "", d.cfg.listen_host,
		 strchr(d.cfg.listen_host, ':') ? "]" : "", port, d.cfg.data_dir);
	event_base_dispatch(d.base);
	rc = 0;
out:
	api_close(d.api);
	/* Jobs on the policy thread finish and hand their commits to the writer first. */
	worker_free(d.worker);
	if (d.store)
		store_stop(d.store);
	janitor_free(d.janitor);
	api_free(d.api);
	dispatch_free(d.disp);
	if (d.http)
		d.http->destroy(d.http);
	if (d.policies)
		policy_engine_free(d.policies);
	registry_free(&d.reg);
	store_close(d.store);
	if (d.sigterm)
		event_free(d.sigterm);
	if (d.sigint)
		event_free(d.sigint);
	if (d.sighup)
		event_free(d.sighup);
	if (d.base)
		event_base_free(d.base);
	ssrf_policy_free(&d.ssrf);
	datadir_lock_release(datadir_fd);
	config_free(&d.cfg);
	curl_global_cleanup();
	libevent_global_shutdown();
	return rc;
}

/* ---------- verify / keygen ---------- */

static int cmd_verify(int argc, char **argv)
{
	const char *secret = NULL, *id = NULL, *ts = NULL, *sig = NULL;
	long long tolerance = 300;
	char err[256], *body = NULL;
	size_t len = 0, cap = 0;
	int rc;

	for (int i = 0; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--secret") == 0)
			secret = argv[i + 1];
		else if (strcmp(argv[i], "--id") == 0)
			id = argv[i + 1];
		else if (strcmp(argv[i], "--timestamp") == 0)
			ts = argv[i + 1];
		else if (strcmp(argv[i], "--signature") == 0)
			sig = argv[i + 1];
		else if (strcmp(argv[i], "--tolerance") == 0)
			tolerance = strtoll(argv[i + 1], NULL, 10);
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!secret || !id || !ts || !sig || (argc % 2) != 0) {
		usage(stderr);
		return 2;
	}
	for (;;) {
		if (len == cap) {
			char *n = realloc(body, cap ? cap * 2 : 65536);
			if (!n) {
				free(body);
				return 2;
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
		return 2;
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

static int cmd_keygen(int argc, char **argv)
{
	enum sign_kind kind = SIGN_HMAC;
	char text[SIGN_TEXT_MAX], pub[SIGN_TEXT_MAX];
	struct sign_key k;
	if (argc == 2 && strcmp(argv[0], "--type") == 0 && strcmp(argv[1], "ed25519") == 0)
		kind = SIGN_ED25519;
	else if (!(argc == 0 || (argc == 2 && strcmp(argv[0], "--type") == 0 &&
				 strcmp(argv[1], "hmac") == 0))) {
		usage(stderr);
		return 2;
	}
	if (sign_init() != HOOKD_OK || sign_key_generate(kind, text, sizeof(text)) != HOOKD_OK)
		return 1;
	printf("secret: %s\n", text);
	if (kind == SIGN_ED25519 && sign_key_parse(text, &k, NULL, 0) == HOOKD_OK &&
	    sign_key_public_text(&k, pub, sizeof(pub)) == HOOKD_OK)
		printf("public_key: %s\n", pub);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 2, argv + 2);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 2, argv + 2);
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 2, argv + 2);
	if (strcmp(argv[1], "policy") == 0 && argc >= 3 && strcmp(argv[2], "test") == 0)
		return policy_cli_test(argc - 3, argv + 3);
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("hookd %s\n", HOOKD_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
