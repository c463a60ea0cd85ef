/* policy.c - the policy engine: named policies, compiling them into sandboxed states,
 * running filter/transform on a message, and turning every outcome (including a killed
 * or out-of-memory call) into a policy_result.
 *
 * The sandbox itself (allocator, CPU hook, environment, hookd.* helpers) is in
 * policy_sandbox.c; JSON <-> Lua in policy_json.c; bounded patterns in policy_pattern.c.
 *
 * States. A Lua state runs on one thread at a time, so a policy has as many states as
 * calls of it have run at once: a run takes an idle state of the policy (or compiles a
 * new one from the source), calls it without any lock, and gives it back. With N policy
 * threads plus the loop's dry runs a policy has at most N + 1 states, each within the
 * CPU and memory limits; a single-threaded caller always gets the same state back.
 *
 * After a call that hit the CPU or memory limit, its state is thrown away and a new one
 * is built from the source (by the thread that ran the call, before it gives the state
 * back), so whatever the aborted call left behind (a half-built table bomb held in an
 * upvalue, a state at its memory cap) cannot break a later call. Other errors leave the
 * state as it is: Lua unwinds cleanly and policy code has no globals to leave
 * half-updated.
 *
 * Versions. A put installs a new struct policy (source and states) under the name; runs
 * in progress keep the version they started with (a reference each) and their states
 * are freed when given back, and the old version is freed with its last run. The
 * engine's lock guards the table of names, the idle states and the reference counts,
 * and is never held across a Lua call or a compile. */
#include "policy.h"

#include "err.h"
#include "header.h"
#include "log.h"
#include "policy_lua.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Defaults for a zero field of struct policy_limits: the same as config.h's defaults
 * (policies.cpu_limit_ms 50, policies.memory_limit 32 MiB). */
#define POLICY_DEFAULT_CPU_MS 50
#define POLICY_DEFAULT_MEMORY (32u << 20)
/* A sandboxed state with the helpers loaded takes ~60 KiB; below 1 MiB a policy could
 * not even convert a modest payload, so smaller caps are refused as misconfiguration. */
#define POLICY_MIN_MEMORY (1u << 20)
/* Policy sources are small programs (the shipped ones are < 4 KiB); 1 MiB leaves room
 * for generated lookup tables while keeping a PUT from parking megabytes per name. */
#define POLICY_SOURCE_MAX (1u << 20)
#define POLICY_NAME_MAX 64

/* One version of a named policy: its source and the idle states compiled from it. */
struct policy {
	char name[POLICY_NAME_MAX + 1];
	char *source;             /* NUL-terminated copy; immutable while the version lives */
	size_t len;
	struct policy_vm **idle;  /* owned states no call is using (the last given back on
				   * top); a current version with none builds one per run */
	size_t n_idle, cap_idle;
	/* The engine's reference while this is the name's current version, plus one per run
	 * in progress; the version is freed when it drops to 0. */
	unsigned refs;
	bool current;
};

struct policy_engine {
	/* Guards items, every version's idle states, refs and current; held only for those
	 * few instructions, never across a Lua call or a compile. Runs come from the policy
	 * threads (a publish's fan-out) and the loop thread (dry runs, redrives), puts,
	 * reloads and listings from the loop thread. It is recursive for a
	 * policy_engine_each callback that calls the engine. */
	pthread_mutex_t lock;
	struct policy_limits limits; /* read-only after policy_engine_new */
	struct policy **items;    /* current versions, sorted by name */
	size_t n, cap;
};

bool policy_name_valid(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > POLICY_NAME_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int policy_engine_new(const struct policy_limits *limits, struct policy_engine **out)
{
	struct policy_engine *e;

	if (sodium_init() < 0)
		return HOOKD_ECRYPTO;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return HOOKD_ENOMEM;
	if (limits != NULL)
		e->limits = *limits;
	if (e->limits.cpu_ms == 0)
		e->limits.cpu_ms = POLICY_DEFAULT_CPU_MS;
	if (e->limits.memory_bytes == 0)
		e->limits.memory_bytes = POLICY_DEFAULT_MEMORY;
	if (e->limits.memory_bytes < POLICY_MIN_MEMORY) {
		free(e);
		return HOOKD_EINVAL;
	}
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&e->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	*out = e;
	return HOOKD_OK;
}

/* Frees a version and its idle states (no reference left, or the engine being freed). */
static void policy_free(struct policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n_idle; i++)
		policy_vm_free(p->idle[i]);
	free(p->idle);
	free(p->source);
	free(p);
}

/* Drops one reference to p (lock held); returns p if that was the last one, for the
 * caller to free once the lock is released (closing Lua states takes a while). */
static struct policy *policy_unref(struct policy *p)
{
	return --p->refs == 0 ? p : NULL;
}

void policy_engine_free(struct policy_engine *e)
{
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; i < e->n; i++)
		policy_free(e->items[i]);
	free(e->items);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

/* Index of name, or where it would go (*found false). */
static size_t engine_find(const struct policy_engine *e, const char *name, bool *found)
{
	size_t lo = 0, hi = e->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(e->items[mid]->name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* "name.lua:12: msg" -> "line 12: msg"; other messages are copied as they are. */
static void error_to_line(const char *name, const char *msg, char *err, size_t errlen)
{
	size_t n = strlen(name);
	const char *p;
	char *end;
	long line;

	if (strncmp(msg, name, n) == 0 && strncmp(msg + n, ".lua:", 5) == 0) {
		p = msg + n + 5;
		errno = 0;
		line = strtol(p, &end, 10);
		if (errno == 0 && end != p && end[0] == ':' && end[1] == ' ') {
			snprintf(err, errlen, "line %ld: %s", line, end + 2);
			return;
		}
	}
	snprintf(err, errlen, "%s", msg);
}

struct compile_args {
	struct policy_vm *vm;
	const char *source;
	size_t len;
	char chunkname[POLICY_NAME_MAX + 8];
	bool syntax;              /* the error is from the parser */
};

static int compile_fn_ref(lua_State *L, int module, const char *field)
{
	lua_getfield(L, module, field);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return LUA_NOREF;
	}
	if (!lua_isfunction(L, -1))
		luaL_error(L, "the policy's %s must be a function, not a %s", field,
			   luaL_typename(L, -1));
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int compile_protected(lua_State *L)
{
	struct compile_args *a = lua_touserdata(L, 1);
	struct policy_vm *vm = a->vm;
	int module;

	lua_settop(L, 0);
	if (luaL_loadbuffer(L, a->source, a->len, a->chunkname) != 0) {
		a->syntax = true;
		return lua_error(L);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_env);
	lua_setfenv(L, -2);
	lua_call(L, 0, 1);
	if (!lua_istable(L, -1))
		return luaL_error(L, "the policy must return a table of functions "
				     "(filter, transform), not a %s", luaL_typename(L, -1));
	module = lua_gettop(L);
	vm->ref_filter = compile_fn_ref(L, module, "filter");
	vm->ref_transform = compile_fn_ref(L, module, "transform");
	lua_pushvalue(L, module);
	vm->ref_module = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* Builds a fresh state for name and runs source's top level in it. */
static int policy_vm_compile(const struct policy_limits *limits, const char *name,
			     const char *source, size_t len, struct policy_vm **out, char *err,
			     size_t errlen)
{
	struct compile_args a;
	struct policy_vm *vm = NULL;
	const char *msg;
	int rc;

	if (len > 0 && source[0] == '\033') {
		snprintf(err, errlen, "line 1: precompiled bytecode is not accepted");
		return HOOKD_EPOLICY;
	}
	if (len > POLICY_SOURCE_MAX) {
		snprintf(err, errlen, "source of %zu bytes is over the limit of %u", len,
			 (unsigned)POLICY_SOURCE_MAX);
		return HOOKD_ETOOBIG;
	}
	rc = policy_vm_new(name, limits->cpu_ms, limits->memory_bytes, &vm);
	if (rc != HOOKD_OK) {
		snprintf(err, errlen, "cannot create a Lua state: %s", hookd_strerror(rc));
		return rc;
	}
	memset(&a, 0, sizeof(a));
	a.vm = vm;
	a.source = source;
	a.len = len;
	snprintf(a.chunkname, sizeof(a.chunkname), "@%s.lua", name);
	policy_vm_arm(vm);
	if (lua_cpcall(vm->L, compile_protected, &a) != 0) {
		msg = lua_isstring(vm->L, -1) ? lua_tostring(vm->L, -1) : "error object is not a string";
		if (vm->killing)
			snprintf(err, errlen, "cpu limit exceeded (%u ms) running the top level",
				 (unsigned)vm->cpu_ms);
		else if (vm->mem_refused)
			snprintf(err, errlen, "memory limit exceeded (%zu bytes) running the top level",
				 vm->mem_cap);
		else
			error_to_line(name, msg, err, errlen);
		policy_vm_free(vm);
		return HOOKD_EPOLICY;
	}
	lua_settop(vm->L, 0);
	*out = vm;
	return HOOKD_OK;
}

/* Installs p as the current version of its name (lock held): the previous version, if
 * any, loses the engine's reference. Returns the version to free after unlocking (or
 * NULL); HOOKD_ENOMEM in *rc when the table cannot grow (nothing changed then). */
static struct policy *engine_install(struct policy_engine *e, struct policy *p, int *rc)
{
	struct policy *old;
	bool found;
	size_t at = engine_find(e, p->name, &found);

	*rc = HOOKD_OK;
	if (found) {
		old = e->items[at];
		old->current = false;
		e->items[at] = p;
		return policy_unref(old);
	}
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 16;
		struct policy **items = realloc(e->items, cap * sizeof(*items));
		if (items == NULL) {
			*rc = HOOKD_ENOMEM;
			return NULL;
		}
		e->items = items;
		e->cap = cap;
	}
	memmove(e->items + at + 1, e->items + at, (e->n - at) * sizeof(*e->items));
	e->items[at] = p;
	e->n++;
	return NULL;
}

/* Compiles the first state of the new version without the lock (a run of another policy,
 * or of this one's running version, goes on meanwhile), then installs it. */
int policy_engine_put(struct policy_engine *e, const char *name, const char *source, size_t len,
		      char *err, size_t errlen)
{
	struct policy_vm *vm = NULL;
	struct policy *p = NULL, *old;
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	if (name == NULL || !policy_name_valid(name)) {
		snprintf(err, errlen, "invalid policy name (use 1-64 of a-z 0-9 _ -)");
		return HOOKD_EINVAL;
	}
	if (source == NULL) {
		snprintf(err, errlen, "no source");
		return HOOKD_EINVAL;
	}
	rc = policy_vm_compile(&e->limits, name, source, len, &vm, err, errlen);
	if (rc != HOOKD_OK)
		return rc;
	p = calloc(1, sizeof(*p));
	if (p == NULL || (p->source = malloc(len + 1)) == NULL ||
	    (p->idle = malloc(sizeof(*p->idle))) == NULL)
		goto nomem;
	snprintf(p->name, sizeof(p->name), "%s", name);
	memcpy(p->source, source, len);
	p->source[len] = '\0';
	p->len = len;
	p->idle[0] = vm;
	p->n_idle = p->cap_idle = 1;
	vm = NULL;
	p->refs = 1;
	p->current = true;
	pthread_mutex_lock(&e->lock);
	old = engine_install(e, p, &rc);
	pthread_mutex_unlock(&e->lock);
	if (rc != HOOKD_OK)
		goto nomem;
	policy_free(old);
	return HOOKD_OK;
nomem:
	policy_vm_free(vm);
	policy_free(p);
	snprintf(err, errlen, "out of memory");
	return HOOKD_ENOMEM;
}

static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, got;
	int rc = HOOKD_EIO;

	if (f == NULL)
		return HOOKD_EIO;
	for (;;) {
		if (cap - n < 4096) {
			char *nb;
			if (cap > POLICY_SOURCE_MAX) {
				rc = HOOKD_ETOOBIG;
				goto cleanup;
			}
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				rc = HOOKD_ENOMEM;
				goto cleanup;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		goto cleanup;
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
	rc = HOOKD_OK;
cleanup:
	free(buf);
	fclose(f);
	return rc;
}

int policy_engine_load_dir(struct policy_engine *e, const char *dir, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;
	int rc = HOOKD_OK;

	if (errlen > 0)
		err[0] = '\0';
	d = opendir(dir);
	if (d == NULL) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return HOOKD_EIO;
	}
	while ((de = readdir(d)) != NULL) {
		char path[4096], name[POLICY_NAME_MAX + 1], msg[512];
		size_t n = strlen(de->d_name), len = 0;
		char *src = NULL;
		struct stat st;
		int r;

		if (n <= 4 || strcmp(de->d_name + n - 4, ".lua") != 0 || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (n - 4 > POLICY_NAME_MAX) {
			snprintf(msg, sizeof(msg), "invalid policy name (use 1-64 of a-z 0-9 _ -)");
			r = HOOKD_EINVAL;
		} else {
			memcpy(name, de->d_name, n - 4);
			name[n - 4] = '\0';
			r = read_file(path, &src, &len);
			if (r != HOOKD_OK)
				snprintf(msg, sizeof(msg), "%s", hookd_strerror(r));
			else
				r = policy_engine_put(e, name, src, len, msg, sizeof(msg));
			free(src);
		}
		if (r != HOOKD_OK) {
			log_error("policy %s: not loaded (the previous version, if any, stays): %s",
				  path, msg);
			if (rc == HOOKD_OK)
				snprintf(err, errlen, "%s: %s", de->d_name, msg);
			rc = HOOKD_EPOLICY;
		}
	}
	closedir(d);
	return rc;
}

static const char *engine_source(struct policy_engine *e, const char *name, size_t *len)
{
	bool found;
	size_t at = engine_find(e, name, &found);

	if (!found)
		return NULL;
	if (len != NULL)
		*len = e->items[at]->len;
	return e->items[at]->source;
}

static void engine_each(struct policy_engine *e,
			void (*fn)(const char *name, size_t source_len, void *arg), void *arg)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		fn(e->items[i]->name, e->items[i]->len, arg);
}

/* ---- running a policy ---- */

struct call {
	struct policy_vm *vm;
	const struct policy_input *in;
	struct policy_result *out;
	json_t *envelope;         /* being built; freed on error */
	json_t *headers;
	json_t *tmp;
};

static void push_field(lua_State *L, struct policy_vm *vm, int table, const json_t *env,
		       const char *key)
{
	const json_t *v = json_object_get(env, key);

	if (v == NULL)
		return;
	policy_json_push(L, vm, v, 0);
	lua_setfield(L, table, key);
}

static void set_reason(struct policy_result *out, lua_State *L, int idx, const char *dflt)
{
	if (lua_type(L, idx) == LUA_TSTRING)
		snprintf(out->reason, sizeof(out->reason), "%s", lua_tostring(L, idx));
	else
		snprintf(out->reason, sizeof(out->reason), "%s", dflt);
}

static int header_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Rebuilds c->headers in name order, so the stored request does not depend on Lua's
 * hash order. */
static void headers_sort(lua_State *L, struct call *c)
{
	const char *names[POLICY_HEADERS_MAX], *k;
	json_t *sorted, *v;
	size_t n = 0, i;

	json_object_foreach(c->headers, k, v)
		names[n++] = k;
	qsort(names, n, sizeof(names[0]), header_cmp);
	sorted = json_object();
	if (sorted == NULL)
		luaL_error(L, "out of memory");
	for (i = 0; i < n; i++) {
		if (json_object_set(sorted, names[i], json_object_get(c->headers, names[i])) != 0) {
			json_decref(sorted);
			luaL_error(L, "out of memory");
		}
	}
	json_decref(c->headers);
	c->headers = sorted;
}

static void build_headers(lua_State *L, struct call *c, int t)
{
	char name[HEADER_NAME_MAX + 1];
	size_t nlen, vlen, count = 0, i;
	const char *k, *v;

	lua_getfield(L, t, "headers");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "msg.headers must be a table, not a %s", luaL_typename(L, -1));
	c->headers = json_object();
	if (c->headers == NULL)
		luaL_error(L, "out of memory");
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "msg.headers: header names must be strings, not a %s",
				   luaL_typename(L, -2));
		k = lua_tolstring(L, -2, &nlen);
		if (header_name_check(k, nlen) != HOOKD_OK)
			luaL_error(L, "msg.headers: invalid header name '%s'", k);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "msg.headers['%s']: value must be a string, not a %s", k,
				   luaL_typename(L, -1));
		v = lua_tolstring(L, -1, &vlen);
		if (header_value_check(v, vlen) != HOOKD_OK)
			luaL_error(L, "msg.headers['%s']: value has a control character (CR, LF, "
				      "NUL...) or is longer than %d bytes", k,
				   HEADER_VALUE_MAX);
		if (header_name_reserved(k))
			luaL_error(L, "msg.headers['%s']: this header is set by hookd", k);
		if (++count > POLICY_HEADERS_MAX)
			luaL_error(L, "msg.headers: more than %d headers", POLICY_HEADERS_MAX);
		/* Names are case-insensitive: send them lower-case, refuse two spellings. */
		for (i = 0; i < nlen; i++)
			name[i] = (char)tolower((unsigned char)k[i]);
		name[nlen] = '\0';
		if (json_object_get(c->headers, name) != NULL)
			luaL_error(L, "msg.headers: '%s' is set twice (names are case-insensitive)",
				   name);
		if (json_object_set_new(c->headers, name, json_stringn(v, vlen)) != 0)
			luaL_error(L, "msg.headers['%s']: value is not valid UTF-8", k);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	if (json_object_size(c->headers) == 0) {
		json_decref(c->headers);
		c->headers = NULL;
		return;
	}
	headers_sort(L, c);
}

/* Converts field key of the returned table t into the envelope; a required field that
 * the policy dropped is an error; id and timestamp fall back to the input's. */
static void envelope_field(lua_State *L, struct call *c, int t, const char *key, int ltype,
			   bool required, bool inherit)
{
	const json_t *orig;

	lua_getfield(L, t, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		orig = json_object_get(c->in->envelope, key);
		if (inherit && orig != NULL) {
			json_object_set(c->envelope, key, (json_t *)orig);
			return;
		}
		if (required)
			luaL_error(L, "the returned message has no %s", key);
		return;
	}
	if (lua_type(L, -1) != ltype && !(ltype == LUA_TSTRING && lua_type(L, -1) == LUA_TNUMBER &&
					    strcmp(key, "version") == 0))
		luaL_error(L, "the returned message's %s must be a %s, not a %s", key,
			   lua_typename(L, ltype), luaL_typename(L, -1));
	policy_json_from_lua(L, c->vm, -1, &c->tmp);
	if (json_object_set_new(c->envelope, key, c->tmp) != 0) {
		c->tmp = NULL;
		luaL_error(L, "out of memory");
	}
	c->tmp = NULL;
	lua_pop(L, 1);
}

static void build_envelope(lua_State *L, struct call *c, int t)
{
	struct policy_vm *vm = c->vm;
	const json_t *data;
	bool is_msg;

	/* msg.body replaces the whole body (e.g. a Slack message instead of the event). */
	lua_getfield(L, t, "body");
	if (!lua_isnil(L, -1)) {
		if (!lua_istable(L, -1))
			luaL_error(L, "msg.body must be a table, not a %s", luaL_typename(L, -1));
		policy_json_from_lua(L, vm, -1, &c->envelope);
		if (!json_is_object(c->envelope))
			luaL_error(L, "msg.body must be a JSON object, not an array");
		lua_pop(L, 1);
		return;
	}
	lua_pop(L, 1);
	c->envelope = json_object();
	if (c->envelope == NULL)
		luaL_error(L, "out of memory");
	/* Stable key order: the order receivers see in the Standard Webhooks body. */
	envelope_field(L, c, t, "id", LUA_TSTRING, false, true);
	envelope_field(L, c, t, "type", LUA_TSTRING, true, false);
	envelope_field(L, c, t, "timestamp", LUA_TSTRING, false, true);
	envelope_field(L, c, t, "version", LUA_TSTRING, false, false);
	envelope_field(L, c, t, "source", LUA_TSTRING, false, false);
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_cur_msg);
	is_msg = lua_rawequal(L, -1, t);
	lua_pop(L, 1);
	data = json_object_get(c->in->envelope, "data");
	if (is_msg && vm->data_state == POLICY_LAZY_PENDING && data != NULL) {
		/* Never read nor assigned: the input's data is the output's, unconverted. */
		json_object_set(c->envelope, "data", (json_t *)data);
		return;
	}
	lua_getfield(L, t, "data");
	if (lua_isnil(L, -1))
		luaL_error(L, "the returned message has no data");
	policy_json_from_lua(L, vm, -1, &c->tmp);
	if (json_object_set_new(c->envelope, "data", c->tmp) != 0) {
		c->tmp = NULL;
		luaL_error(L, "out of memory");
	}
	c->tmp = NULL;
	lua_pop(L, 1);
}

/* Pushes the call's msg: the envelope's fields but data, which the msg metatable converts
 * only when read (policy_vm_lazy_get), and empty headers. It becomes the current msg, so
 * the lazy field is this call's. Returns its stack index. */
static int call_push_msg(lua_State *L, struct call *c)
{
	struct policy_vm *vm = c->vm;
	const json_t *env = c->in->envelope;
	int msg;

	lua_createtable(L, 0, 8);
	msg = lua_gettop(L);
	push_field(L, vm, msg, env, "id");
	push_field(L, vm, msg, env, "type");
	push_field(L, vm, msg, env, "version");
	push_field(L, vm, msg, env, "timestamp");
	push_field(L, vm, msg, env, "source");
	lua_newtable(L);
	lua_setfield(L, msg, "headers");
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_msg_mt);
	lua_setmetatable(L, msg);
	lua_pushvalue(L, msg);
	lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_cur_msg);
	return msg;
}

/* Pushes the call's ctx: endpoint_id, app_id and params (converted when read, like
 * msg.data). It becomes the current ctx. Returns its stack index. */
static int call_push_ctx(lua_State *L, struct call *c)
{
	struct policy_vm *vm = c->vm;
	int ctx;

	lua_createtable(L, 0, 3);
	ctx = lua_gettop(L);
	lua_pushstring(L, c->in->endpoint_id ? c->in->endpoint_id : "");
	lua_setfield(L, ctx, "endpoint_id");
	lua_pushstring(L, c->in->app_id ? c->in->app_id : "");
	lua_setfield(L, ctx, "app_id");
	if (vm->params_state != POLICY_LAZY_PENDING) {
		/* No params: an empty object, so ctx.params.x is nil rather than an error. */
		lua_createtable(L, 0, 0);
		lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_object_mt);
		lua_setmetatable(L, -2);
		lua_setfield(L, ctx, "params");
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_ctx_mt);
	lua_setmetatable(L, ctx);
	lua_pushvalue(L, ctx);
	lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_cur_ctx);
	return ctx;
}

/* Runs filter(msg, ctx). Returns false when it dropped the message (c->out then says so,
 * with its reason), true when the message goes on to transform. */
static bool call_filter(lua_State *L, struct call *c, int msg, int ctx)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->vm->ref_filter);
	lua_pushvalue(L, msg);
	lua_pushvalue(L, ctx);
	lua_call(L, 2, 2);
	if (!lua_toboolean(L, -2)) {
		c->out->action = POLICY_FILTERED;
		set_reason(c->out, L, -1, "filtered by policy");
		return false;
	}
	lua_pop(L, 2);
	return true;
}

/* Runs transform(msg, ctx) and turns what it returned into the outcome: a table is the
 * message to deliver (envelope and headers built from it), nil or false with a reason
 * drops it, anything else is an error. */
static int call_transform(lua_State *L, struct call *c, int msg, int ctx)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->vm->ref_transform);
	lua_pushvalue(L, msg);
	lua_pushvalue(L, ctx);
	lua_call(L, 2, 2);
	if (lua_istable(L, -2)) {
		int t = lua_gettop(L) - 1;
		build_envelope(L, c, t);
		build_headers(L, c, t);
		c->out->action = POLICY_DELIVER;
		return 0;
	}
	if (lua_isnil(L, -2) || (lua_isboolean(L, -2) && !lua_toboolean(L, -2))) {
		if (lua_type(L, -1) == LUA_TSTRING) {
			c->out->action = POLICY_FILTERED;
			set_reason(c->out, L, -1, "filtered by policy");
			return 0;
		}
		return luaL_error(L, "transform returned nil without a reason (return msg to "
				     "deliver it, or nil, \"reason\" to drop it)");
	}
	return luaL_error(L, "transform must return the message (a table) or nil, \"reason\"; "
			     "it returned a %s", luaL_typename(L, -2));
}

/* The whole call, under lua_cpcall: any Lua error (the script's, a kill, a refused
 * allocation) unwinds to policy_run, which reads the outcome from c. */
static int run_protected(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);
	struct policy_vm *vm = c->vm;
	int msg, ctx;

	lua_settop(L, 0);
	/* LuaJIT has no emergency collection: garbage left by earlier calls counts against
	 * the cap, so collect before a call once the state holds over half of it. */
	if (vm->mem_used > vm->mem_cap / 2)
		lua_gc(L, LUA_GCCOLLECT, 0);
	msg = call_push_msg(L, c);
	ctx = call_push_ctx(L, c);
	if (vm->ref_filter != LUA_NOREF && !call_filter(L, c, msg, ctx))
		return 0;
	if (vm->ref_transform == LUA_NOREF) {
		c->out->action = POLICY_DELIVER;
		c->envelope = json_incref((json_t *)c->in->envelope);
		return 0;
	}
	return call_transform(L, c, msg, ctx);
}

/* Builds a state of p from its source (no lock: the source is immutable while the caller
 * holds a reference). why says what for, in the log line of a failure. */
static struct policy_vm *policy_state_build(struct policy_engine *e, struct policy *p,
					    const char *why)
{
	struct policy_vm *vm = NULL;
	char err[256];

	if (policy_vm_compile(&e->limits, p->name, p->source, p->len, &vm, err, sizeof(err)) !=
	    HOOKD_OK)
		log_warn("policy %s: %s failed: %s", p->name, why, err);
	return vm;
}

/* Takes the current version of name and one of its idle states (*vm, NULL if none is
 * idle: the caller builds one), with a reference to the version. NULL if not loaded. */
static struct policy *engine_checkout(struct policy_engine *e, const char *name,
				      struct policy_vm **vm)
{
	struct policy *p = NULL;
	bool found;
	size_t at;

	*vm = NULL;
	pthread_mutex_lock(&e->lock);
	at = engine_find(e, name, &found);
	if (found) {
		p = e->items[at];
		p->refs++;
		if (p->n_idle > 0)
			*vm = p->idle[--p->n_idle];
	}
	pthread_mutex_unlock(&e->lock);
	return p;
}

/* Gives vm (may be NULL) back to p and drops the run's reference. A state of a version
 * that a put replaced meanwhile is freed, as is the version with its last run. */
static void engine_checkin(struct policy_engine *e, struct policy *p, struct policy_vm *vm)
{
	struct policy *dead;

	pthread_mutex_lock(&e->lock);
	if (vm != NULL && p->current) {
		if (p->n_idle == p->cap_idle) {
			size_t cap = p->cap_idle ? p->cap_idle * 2 : 2;
			struct policy_vm **idle = realloc(p->idle, cap * sizeof(*idle));
			if (idle != NULL) {
				p->idle = idle;
				p->cap_idle = cap;
			}
		}
		if (p->n_idle < p->cap_idle) {
			p->idle[p->n_idle++] = vm;
			vm = NULL;
		}
	}
	dead = policy_unref(p);
	pthread_mutex_unlock(&e->lock);
	policy_vm_free(vm);
	policy_free(dead);
}

/* Prepares c for a call of vm on in, with the outcome going to out: the lazy fields point
 * at the input, and the CPU deadline starts now. */
static void call_begin(struct call *c, struct policy_vm *vm, const struct policy_input *in,
		       struct policy_result *out)
{
	memset(c, 0, sizeof(*c));
	c->vm = vm;
	c->in = in;
	c->out = out;
	vm->cur_data = json_object_get(in->envelope, "data");
	vm->cur_params = in->params;
	vm->data_state = vm->cur_data ? POLICY_LAZY_PENDING : POLICY_LAZY_NONE;
	vm->params_state = json_is_object(in->params) || json_is_array(in->params)
				   ? POLICY_LAZY_PENDING
				   : POLICY_LAZY_NONE;
	vm->cur_msg_id = json_string_value(json_object_get(in->envelope, "id"));
	policy_vm_arm(vm);
}

/* Fills c->out from how lua_cpcall returned (rc): on an error, POLICY_ERROR with the
 * reason (the limit that was hit, else the Lua message) and whatever was built is freed;
 * on a delivery, out takes the envelope and headers. */
static void call_outcome(struct call *c, int rc)
{
	struct policy_vm *vm = c->vm;
	struct policy_result *out = c->out;

	if (rc != 0) {
		const char *msg = lua_type(vm->L, -1) == LUA_TSTRING ? lua_tostring(vm->L, -1)
								       : NULL;
		out->action = POLICY_ERROR;
		if (vm->killing)
			snprintf(out->reason, sizeof(out->reason), "cpu limit exceeded (%u ms)",
				 (unsigned)vm->cpu_ms);
		else if (vm->mem_refused)
			snprintf(out->reason, sizeof(out->reason),
				 "memory limit exceeded (%zu bytes)", vm->mem_cap);
		else
			snprintf(out->reason, sizeof(out->reason), "%s",
				 msg ? msg : "error object is not a string");
		json_decref(c->envelope);
		json_decref(c->headers);
		c->envelope = c->headers = NULL;
	} else if (out->action == POLICY_DELIVER) {
		out->envelope = c->envelope;
		out->headers = c->headers;
		c->envelope = c->headers = NULL;
	}
	json_decref(c->tmp);
}

/* Forgets the call: a msg or ctx kept by the script no longer reaches its input. */
static void call_forget(struct policy_vm *vm)
{
	lua_pushboolean(vm->L, 0);
	lua_rawseti(vm->L, LUA_REGISTRYINDEX, vm->ref_cur_msg);
	lua_pushboolean(vm->L, 0);
	lua_rawseti(vm->L, LUA_REGISTRYINDEX, vm->ref_cur_ctx);
	lua_settop(vm->L, 0);
	vm->cur_data = vm->cur_params = NULL;
	vm->data_state = vm->params_state = POLICY_LAZY_NONE;
	vm->cur_msg_id = NULL;
	json_decref(vm->json_pending);
	vm->json_pending = NULL;
}

/* Runs the call on a state of its own: any number of threads may run the same policy at
 * once, each on a different state. */
int policy_run(struct policy_engine *e, const char *name, const struct policy_input *in,
	       struct policy_result *out)
{
	struct policy_vm *vm;
	struct policy *p;
	struct call c;
	bool rebuild;
	int rc;

	p = engine_checkout(e, name, &vm);
	if (p == NULL)
		return HOOKD_ENOTFOUND;
	memset(out, 0, sizeof(*out));
	if (in == NULL || !json_is_object(in->envelope)) {
		out->action = POLICY_ERROR;
		snprintf(out->reason, sizeof(out->reason), "no message envelope");
		goto done;
	}
	/* No idle state: every other one is running, or the last call hit a limit and its
	 * rebuild failed. */
	if (vm == NULL && (vm = policy_state_build(e, p, "building a state")) == NULL) {
		out->action = POLICY_ERROR;
		snprintf(out->reason, sizeof(out->reason),
			 "the policy's state could not be rebuilt (see the log)");
		goto done;
	}
	if (vm->ref_filter == LUA_NOREF && vm->ref_transform == LUA_NOREF) {
		out->action = POLICY_DELIVER;
		out->envelope = json_incref((json_t *)in->envelope);
		goto done;
	}

	call_begin(&c, vm, in, out);
	rc = lua_cpcall(vm->L, run_protected, &c);
	call_outcome(&c, rc);
	rebuild = vm->killing || vm->mem_refused;
	call_forget(vm);
	if (rebuild) {
		policy_vm_free(vm);
		vm = policy_state_build(e, p, "rebuilding its state");
	}
done:
	engine_checkin(e, p, vm);
	return HOOKD_OK;
}

void policy_result_free(struct policy_result *r)
{
	if (r == NULL)
		return;
	json_decref(r->envelope);
	json_decref(r->headers);
	r->envelope = r->headers = NULL;
}

/* ---- entry points that hold the lock throughout ---- */

/* (policy_engine_put and policy_engine_load_dir take the lock only to install each
 * compiled version, policy_run only to take and give back a state.) */

const char *policy_engine_source(struct policy_engine *e, const char *name, size_t *len)
{
	pthread_mutex_lock(&e->lock);
	const char *src = engine_source(e, name, len);
	pthread_mutex_unlock(&e->lock);
	return src;
}

void policy_engine_each(struct policy_engine *e,
			void (*fn)(const char *name, size_t source_len, void *arg), void *arg)
{
	pthread_mutex_lock(&e->lock);
	engine_each(e, fn, arg);
	pthread_mutex_unlock(&e->lock);
}
