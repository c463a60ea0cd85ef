/* policy_cli.c - `hookd policy test FILE [--params JSON] < message.json`: runs a policy
 * file offline, in the same sandbox and limits as the daemon, and prints what it would
 * do. Lets an operator try a policy before attaching it to an endpoint.
 *
 * The message on stdin is an envelope ({"id", "type", "timestamp", "version", "data"}) or
 * anything with type and data; missing id, timestamp and version get placeholders. It may
 * also be the body of the dry-run API, {"message": {...}, "params": {...}}. */
#include "policy.h"

#include "cli.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Placeholders for fields a hand-written test message usually lacks. */
#define POLICY_CLI_ID "msg_test"
#define POLICY_CLI_VERSION "1"

static const struct cli_cmd policy_cli_test_usage = {
	"policy test",
	"usage: hookd policy test FILE [--params JSON] < message.json\n"
	"\n"
	"Runs the routing policy in FILE (Lua) on the message read from stdin, in the daemon's\n"
	"sandbox and limits, and prints what the daemon would do, as JSON:\n"
	"  {\"action\": \"deliver\", \"body\", \"headers\"}, {\"action\": \"filtered\", \"reason\"}\n"
	"  or {\"action\": \"error\", \"reason\"}.\n"
	"Exit status 0 for deliver or filtered, 1 for an error, 2 for bad usage or input.\n"
	"\n"
	"The message is an envelope ({\"id\", \"type\", \"timestamp\", \"version\", \"data\"}),\n"
	"anything with type and data (the rest get placeholders), or the dry-run API's body\n"
	"{\"message\": ..., \"params\": ...}.\n"
	"\n"
	"options:\n"
	"  --params JSON   the endpoint's policy params, a JSON object (ctx.params)\n"
	"  -h, --help      print this help\n"
	"\n"
	"docs/policies.md describes policies; policies/ has ready-made ones.\n"};

static char *slurp(FILE *f, size_t *len)
{
	char *buf = NULL, *nb;
	size_t n = 0, cap = 0, got;

	for (;;) {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* The policy's name as the daemon would derive it: the file name without .lua, reduced
 * to the characters policy names allow. */
static void name_from_path(const char *path, char *name, size_t len)
{
	const char *base = strrchr(path, '/');
	size_t i, o = 0, n;

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n > 4 && strcmp(base + n - 4, ".lua") == 0)
		n -= 4;
	for (i = 0; i < n && o + 1 < len; i++) {
		char c = base[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			c = '-';
		name[o++] = c;
	}
	name[o] = '\0';
	if (o == 0)
		snprintf(name, len, "policy");
}

static json_t *envelope_from(const json_t *msg)
{
	json_t *env = json_object();
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	const char *keys[] = {"id", "type", "timestamp", "version", "source", "data"};
	size_t i;

	if (env == NULL)
		return NULL;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(msg, keys[i]);
		if (v == NULL && strcmp(keys[i], "id") == 0)
			v = json_string(POLICY_CLI_ID);
		else if (v == NULL && strcmp(keys[i], "timestamp") == 0)
			v = json_string(ts);
		else if (v == NULL && strcmp(keys[i], "version") == 0)
			v = json_string(POLICY_CLI_VERSION);
		else if (v != NULL)
			json_incref(v);
		if (v != NULL)
			json_object_set_new(env, keys[i], v);
	}
	return env;
}

static void print_outcome(const char *action, json_t *body, json_t *headers, const char *reason)
{
	json_t *o = json_object();
	char *text;

	json_object_set_new(o, "action", json_string(action));
	if (body != NULL) {
		json_object_set(o, "body", body);
		json_object_set_new(o, "headers", headers ? json_incref(headers) : json_object());
	}
	if (reason != NULL)
		json_object_set_new(o, "reason", json_string(reason));
	text = json_dumps(o, JSON_INDENT(2));
	if (text != NULL) {
		printf("%s\n", text);
		free(text);
	}
	json_decref(o);
}

int policy_cli_test(int argc, char **argv)
{
	struct policy_engine *e = NULL;
	struct policy_result r = {0};
	struct policy_input in = {0};
	const char *file = NULL, *params_text = NULL;
	json_t *input = NULL, *params = NULL, *msg, *env = NULL;
	char *source = NULL, *stdin_text = NULL, name[65], err[512];
	json_error_t jerr;
	size_t len, stdin_len;
	const struct cli_opt opts[] = {{"--params", &params_text}, {NULL, NULL}};
	FILE *f;
	int npos, rc, code = 2;

	if (!cli_parse(&policy_cli_test_usage, opts, argc, argv, &file, 1, &npos, &code))
		return code;
	code = 2;
	if (file == NULL)
		return cli_error(&policy_cli_test_usage, "missing FILE (the policy's .lua file)");
	f = fopen(file, "rb");
	if (f == NULL) {
		fprintf(stderr, "hookd: policy test: cannot open %s: %s\n", file, strerror(errno));
		return 2;
	}
	source = slurp(f, &len);
	fclose(f);
	if (source == NULL) {
		fprintf(stderr, "hookd: policy test: cannot read %s\n", file);
		goto cleanup;
	}
	if (params_text != NULL) {
		params = json_loads(params_text, 0, &jerr);
		if (!json_is_object(params)) {
			fprintf(stderr, "hookd: policy test: --params must be a JSON object%s%s\n",
				params ? "" : ": ", params ? "" : jerr.text);
			goto cleanup;
		}
	}
	stdin_text = slurp(stdin, &stdin_len);
	if (stdin_text == NULL)
		goto cleanup;
	input = json_loadb(stdin_text, stdin_len, 0, &jerr);
	if (!json_is_object(input)) {
		fprintf(stderr, "hookd: policy test: stdin: line %d: %s\n", jerr.line,
			input ? "the message must be a JSON object" : jerr.text);
		goto cleanup;
	}
	msg = input;
	if (json_is_object(json_object_get(input, "message"))) {
		msg = json_object_get(input, "message");
		if (params == NULL && json_is_object(json_object_get(input, "params")))
			params = json_incref(json_object_get(input, "params"));
	}
	if (!json_is_string(json_object_get(msg, "type")) || json_object_get(msg, "data") == NULL) {
		fprintf(stderr, "hookd: policy test: the message needs a type (string) and data\n");
		goto cleanup;
	}
	env = envelope_from(msg);
	code = 1;
	if (env == NULL || policy_engine_new(NULL, &e) != HOOKD_OK)
		goto cleanup;
	name_from_path(file, name, sizeof(name));
	rc = policy_engine_put(e, name, source, len, err, sizeof(err));
	if (rc != HOOKD_OK) {
		print_outcome("error", NULL, NULL, err);
		goto cleanup;
	}
	in.envelope = env;
	in.endpoint_id = "ep_test";
	in.app_id = "app_test";
	in.params = params;
	if (policy_run(e, name, &in, &r) != HOOKD_OK)
		goto cleanup;
	switch (r.action) {
	case POLICY_DELIVER:
		print_outcome("deliver", r.envelope, r.headers, NULL);
		code = 0;
		break;
	case POLICY_FILTERED:
		print_outcome("filtered", NULL, NULL, r.reason);
		code = 0;
		break;
	case POLICY_ERROR:
		print_outcome("error", NULL, NULL, r.reason);
		code = 1;
		break;
	}
	policy_result_free(&r);
cleanup:
	policy_engine_free(e);
	json_decref(env);
	json_decref(input);
	json_decref(params);
	free(stdin_text);
	free(source);
	return code;
}
