/* policy.h - per-endpoint routing policies in a LuaJIT sandbox.
 *
 * A policy is a Lua file returning a table with optional filter(msg, ctx) and
 * transform(msg, ctx), shared by the endpoints that use it (their params come in ctx).
 * Every call is bounded in CPU and every Lua state in memory; a failing call yields
 * POLICY_ERROR with a message, never a crash.
 *
 * Threads. Every entry point may be called from any thread, at the same time. A Lua state
 * runs one call at a time, so a policy has one state per call of it in progress (made
 * when needed, kept for the next call: see policy.c), and runs of one policy on several
 * threads proceed in parallel without waiting for each other. In the daemon, policy_run
 * is called on the policy threads (worker.h) for the deliveries of a publish
 * (fanout_defer), and on the loop thread for a dry run (POST /v1/policies/{name}/test)
 * and a dead-letter redrive; puts, directory loads, listings and source reads happen on
 * the loop thread. At startup the same thread, before the loop and the workers start,
 * loads the policies and re-runs interrupted fan-outs inline (fanout_recover); `hookd
 * policy test` has an engine of its own on its one thread. A put (or a SIGHUP reload)
 * compiles without blocking runs: runs that started before it finish on the previous
 * version, later ones use the new one. */
#ifndef HOOKD_POLICY_H
#define HOOKD_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Outgoing headers a policy may add: more than any receiver needs, few enough that a
 * policy cannot bloat every request (dispatch sizes a request's header list from it).
 * Names and values follow header.h. */
#define POLICY_HEADERS_MAX 64

struct policy_engine;

struct policy_limits {
	uint32_t cpu_ms;          /* budget per call (filter + transform) and per run of a
				   * source's top level, on the monotonic clock (wall time) */
	uint64_t memory_bytes;    /* cap per policy state */
};

enum policy_action {
	POLICY_DELIVER = 0,       /* send result.envelope (+ result.headers) */
	POLICY_FILTERED = 1,      /* do not send; reason in result.reason */
	POLICY_ERROR = 2          /* the policy failed; message in result.reason (with line) */
};

/* What a policy sees. envelope is the Standard Webhooks body as a JSON object with keys
 * id, type, timestamp (ISO 8601 text), version, data and optionally source; it is only
 * read (borrowed). params is the endpoint's policy params object (borrowed, may be NULL). */
struct policy_input {
	const json_t *envelope;
	const char *endpoint_id;
	const char *app_id;
	const json_t *params;
};

struct policy_result {
	enum policy_action action;
	json_t *envelope;         /* POLICY_DELIVER: the body object to serialize (owned, new ref;
				   * it may be in->envelope itself or share parts of it) */
	json_t *headers;          /* POLICY_DELIVER: object of extra header name -> string (owned) or NULL */
	char reason[512];         /* POLICY_FILTERED / POLICY_ERROR: why ("policy_error: ..." not prefixed) */
};

/* true if name can name a policy: [a-z0-9_-]{1,64}, the file policies.dir/NAME.lua (the
 * narrow charset also keeps "../" out of the path). Endpoints, uploads and files agree. */
bool policy_name_valid(const char *name);

int policy_engine_new(const struct policy_limits *limits, struct policy_engine **out);
/* Frees the engine, its policies and their Lua states. No call may be in progress or
 * follow: the daemon frees it after stopping the policy threads (worker_free). */
void policy_engine_free(struct policy_engine *e);

/* Compiles source as policy `name` (names: [a-z0-9_-]{1,64}) in a new Lua state, running
 * its top level on the calling thread. On a compile error (or a top level that does not
 * return a table) returns HOOKD_EPOLICY with "line N: message" in err and the running
 * version, if any, stays. Bytecode is refused. Runs in progress finish on the version
 * they started with; every run that starts after the put returns uses the new one. */
int policy_engine_put(struct policy_engine *e, const char *name, const char *source, size_t len,
		      char *err, size_t errlen);

/* Loads every *.lua in dir (name = file name without .lua). Files that fail keep their
 * previous version and are reported through err (first failure) and the log; returns
 * HOOKD_OK if all loaded. Used at start and on SIGHUP. */
int policy_engine_load_dir(struct policy_engine *e, const char *dir, char *err, size_t errlen);

/* Source of a loaded policy, or NULL. Owned by the engine and valid until the next put of
 * that name (directly or by load_dir), so call it on the thread that puts and loads (the
 * loop thread). */
const char *policy_engine_source(struct policy_engine *e, const char *name, size_t *len);

/* Calls fn(name, source_len, arg) for each loaded policy, in name order, with the engine's
 * lock held (it is recursive: fn may call the engine). */
void policy_engine_each(struct policy_engine *e,
			void (*fn)(const char *name, size_t source_len, void *arg), void *arg);

/* Runs filter then transform of policy `name` on in, on the calling thread, in a state no
 * other call is using (see Threads above). HOOKD_ENOTFOUND if no such policy (out
 * untouched); otherwise HOOKD_OK with the outcome in out (free with policy_result_free). */
int policy_run(struct policy_engine *e, const char *name, const struct policy_input *in,
	       struct policy_result *out);

void policy_result_free(struct policy_result *r);

/* `hookd policy test FILE [--params JSON] < message.json`: runs a policy file offline and
 * prints the outcome as JSON. Returns the process exit code. */
int policy_cli_test(int argc, char **argv);

#endif
