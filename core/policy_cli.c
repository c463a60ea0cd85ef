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
#include <stdbool.h>
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

/* One `policy test` run: what the command line, the policy file and stdin gave. file points
 * into argv and msg into input (the message itself, or its "message" member); the rest is
 * owned by the run and freed at the end of policy_cli_test. */
struct policy_cli_run {
	const char *file;
	char *source; /* the policy file's text, len bytes */
	size_t len;
	json_t *params; /* --params, or the dry-run body's "params"; NULL when neither */
	char *stdin_text;
	json_t *input, *msg;
	json_t *env; /* msg as an envelope, placeholders filled in */
	struct policy_engine *e;
};

/* Reads the command line: the options, the policy FILE (its text into run->source) and
 * --params. Returns true when the test should go on; false when it should exit with *code,
 * the mistake named on stderr (or the help printed). */
static bool policy_cli_read_args(int argc, char **argv, struct policy_cli_run *run, int *code)
{
	const char *params_text = NULL;
	const struct cli_opt opts[] = {{"--params", &params_text}, {NULL, NULL}};
	json_error_t jerr;
	FILE *f;
	int npos;

	if (!cli_parse(&policy_cli_test_usage, opts, argc, argv, &run->file, 1, &npos, code))
		return false;
	*code = 2;
	if (run->file == NULL) {
		*code = cli_error(&policy_cli_test_usage, "missing FILE (the policy's .lua file)");
		return false;
	}
	f = fopen(run->file, "rb");
	if (f == NULL) {
		fprintf(stderr, "hookd: policy test: cannot open %s: %s\n", run->file, strerror(errno));
		return false;
	}
	run->source = slurp(f, &run->len);
	fclose(f);
	if (run->source == NULL) {
		fprintf(stderr, "hookd: policy test: cannot read %s\n", run->file);
		return false;
	}
	if (params_text != NULL) {
		run->params = json_loads(params_text, 0, &jerr);
		if (!json_is_object(run->params)) {
			fprintf(stderr, "hookd: policy test: --params must be a JSON object%s%s\n",
				run->params ? "" : ": ", run->params ? "" : jerr.text);
			return false;
		}
	}
	return true;
}

/* Reads the message from stdin into run->input and run->msg, unwrapping the dry-run API's
 * body (whose "params" count when --params was not given). HOOKD_OK, or an error named on
 * stderr (HOOKD_EIO: stdin unreadable, HOOKD_EINVAL: not a message). */
static int policy_cli_read_message(struct policy_cli_run *run)
{
	json_error_t jerr;
	size_t len;

	run->stdin_text = slurp(stdin, &len);
	if (run->stdin_text == NULL)
		return HOOKD_EIO;
	run->input = json_loadb(run->stdin_text, len, 0, &jerr);
	if (!json_is_object(run->input)) {
		fprintf(stderr, "hookd: policy test: stdin: line %d: %s\n", jerr.line,
			run->input ? "the message must be a JSON object" : jerr.text);
		return HOOKD_EINVAL;
	}
	run->msg = run->input;
	if (json_is_object(json_object_get(run->input, "message"))) {
		run->msg = json_object_get(run->input, "message");
		if (run->params == NULL && json_is_object(json_object_get(run->input, "params")))
			run->params = json_incref(json_object_get(run->input, "params"));
	}
	if (!json_is_string(json_object_get(run->msg, "type")) ||
	    json_object_get(run->msg, "data") == NULL) {
		fprintf(stderr, "hookd: policy test: the message needs a type (string) and data\n");
		return HOOKD_EINVAL;
	}
	return HOOKD_OK;
}

/* Loads run->source in a new engine under the name the daemon would give it and runs it on
 * run->msg with run->params. HOOKD_OK with the outcome in *r (free with policy_result_free);
 * else an error, printed as an "error" outcome when the policy does not load. */
static int policy_cli_run_policy(struct policy_cli_run *run, struct policy_result *r)
{
	struct policy_input in = {0};
	char name[65], err[512];
	int rc;

	run->env = envelope_from(run->msg);
	if (run->env == NULL)
		return HOOKD_ENOMEM;
	if ((rc = policy_engine_new(NULL, &run->e)) != HOOKD_OK)
		return rc;
	name_from_path(run->file, name, sizeof(name));
	rc = policy_engine_put(run->e, name, run->source, run->len, err, sizeof(err));
	if (rc != HOOKD_OK) {
		print_outcome("error", NULL, NULL, err);
		return rc;
	}
	in.envelope = run->env;
	in.endpoint_id = "ep_test";
	in.app_id = "app_test";
	in.params = run->params;
	return policy_run(run->e, name, &in, r);
}

/* Prints what the daemon would do with r; returns the exit status: 0 for deliver or
 * filtered, 1 for an error. */
static int policy_cli_print_result(struct policy_result *r)
{
	switch (r->action) {
	case POLICY_DELIVER:
		print_outcome("deliver", r->envelope, r->headers, NULL);
		return 0;
	case POLICY_FILTERED:
		print_outcome("filtered", NULL, NULL, r->reason);
		return 0;
	case POLICY_ERROR:
		print_outcome("error", NULL, NULL, r->reason);
		return 1;
	}
	return 1;
}

int policy_cli_test(int argc, char **argv)
{
	struct policy_cli_run run = {0};
	struct policy_result r = {0};
	int code = 2;

	if (!policy_cli_read_args(argc, argv, &run, &code))
		goto cleanup;
	if (policy_cli_read_message(&run) != HOOKD_OK)
		goto cleanup;
	code = 1;
	if (policy_cli_run_policy(&run, &r) != HOOKD_OK)
		goto cleanup;
	code = policy_cli_print_result(&r);
	policy_result_free(&r);
cleanup:
	policy_engine_free(run.e);
	json_decref(run.env);
	json_decref(run.input);
	json_decref(run.params);
	free(run.stdin_text);
	free(run.source);
	return code;
}
