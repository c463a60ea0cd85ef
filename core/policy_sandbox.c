/* policy_sandbox.c - a policy's sandboxed LuaJIT states: the counting allocator, the
 * CPU deadline hook, the environment (built by the embedded lua/sandbox.lua from an
 * allow-list) and the hookd.* helpers written in C.
 *
 * Why these mechanisms (Debian 12's LuaJIT 2.1.0-beta3, x86_64, built with GC64, so
 * lua_newstate accepts our allocator; measured on the development machine):
 * - Memory: every byte of the state goes through vm_alloc, which refuses growth past the
 *   cap; LuaJIT turns the refusal into a "not enough memory" error at the allocation. Frees
 *   and shrinks always succeed (Lua requires it). LuaJIT has no emergency collection, so
 *   garbage counts against the cap until the collector gets to it; the engine collects
 *   before a call when the state is over half its cap and rebuilds it after a refusal.
 * - CPU: Debian's LuaJIT never runs hooks inside JIT-compiled traces, so the JIT is off for
 *   policy states (and `jit` is never reachable). A count hook every
 *   POLICY_HOOK_INSTRUCTIONS bytecodes compares the monotonic clock with the deadline;
 *   when that passes, the thread's CPU clock decides (a call that waited for a core gets
 *   the rest of its CPU budget: vm_past_deadline). Once past both, the hook re-arms itself to fire on every instruction and keeps raising, so a
 *   pcall (or coroutine.resume, or an xpcall handler) that catches the error runs into it
 *   again at its next instruction. C functions run no hooks: the string pattern functions
 *   are replaced by policy_pattern.c, which checks the deadline as it backtracks; the rest
 *   do work linear (sort: n log n) in data that the memory cap bounds.
 * - Threads: a state runs one call at a time (the engine hands it to one call, policy.c),
 *   so the allocator's counters, the deadline and the log bucket need no lock of their own.
 *   Nothing here is global: states on different threads run in parallel. */
#include "policy_lua.h"

#include "err.h"
#include "log.h"

#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Lua side, embedded by lua/CMakeLists.txt. */
extern const unsigned char hookd_lua_sandbox[];
extern const size_t hookd_lua_sandbox_len;
extern const unsigned char hookd_lua_hookd[];
extern const size_t hookd_lua_hookd_len;

/* Instructions between two deadline checks. Measured with the JIT off: 1000 instructions
 * of `while true do end` take ~2.3 us (21,800 hook calls in a 50 ms budget), and one
 * check (clock_gettime through the vDSO, ~20 ns) is then ~1% of the run time; the kill
 * lands within a few microseconds of the deadline. */
#define POLICY_HOOK_INSTRUCTIONS 1000

/* hookd.log: a token bucket of POLICY_LOG_RATE lines per second with a burst of as many,
 * per state (so per policy and call of it in parallel: at most policies.threads + 1 of
 * them). Ten lines a second is plenty for debugging a policy and keeps a policy that logs
 * on every message at 10k msg/s from flooding the daemon's log. */
#define POLICY_LOG_RATE 10.0
#define POLICY_LOG_LINE_MAX 512

struct policy_vm *policy_vm_of(lua_State *L)
{
	void *ud = NULL;

	lua_getallocf(L, &ud);
	return ud;
}

/* The allocator of a policy state: the cap applies to growth only, because Lua assumes
 * that freeing or shrinking never fails. */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct policy_vm *vm = ud;
	void *p;

	if (nsize == 0) {
		free(ptr);
		vm->mem_used -= osize;
		return NULL;
	}
	if (nsize > osize && !vm->mem_unbounded &&
	    (nsize - osize > vm->mem_cap || vm->mem_used + (nsize - osize) > vm->mem_cap)) {
		vm->mem_refused = true;
		return NULL;
	}
	p = realloc(ptr, nsize);
	if (p == NULL) {
		if (nsize <= osize)
			return ptr;	/* keep the larger block rather than fail a shrink */
		vm->mem_refused = true;
		return NULL;
	}
	vm->mem_used = vm->mem_used - osize + nsize;
	return p;
}

static int64_t vm_thread_cpu_ns(void)
{
	struct timespec t;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0)
		return -1;
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void vm_set_deadline(struct policy_vm *vm, int64_t in_ns)
{
	clock_gettime(CLOCK_MONOTONIC, &vm->deadline);
	vm->deadline.tv_sec += (time_t)(in_ns / 1000000000LL);
	vm->deadline.tv_nsec += (long)(in_ns % 1000000000LL);
	if (vm->deadline.tv_nsec >= 1000000000L) {
		vm->deadline.tv_sec++;
		vm->deadline.tv_nsec -= 1000000000L;
	}
}

/* The wall-clock deadline is checked often and costs ~20 ns; only once it has passed is the
 * thread's CPU clock read (a system call, ~0.5 us): if the call used less than its limit
 * (the thread was waiting for a core), the deadline moves on by what is left. */
static bool vm_past_deadline(struct policy_vm *vm)
{
	struct timespec now;
	int64_t cpu, limit = (int64_t)vm->cpu_ms * 1000000LL;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec != vm->deadline.tv_sec ? now.tv_sec < vm->deadline.tv_sec
					      : now.tv_nsec < vm->deadline.tv_nsec)
		return false;
	cpu = vm_thread_cpu_ns();
	if (cpu < 0 || vm->cpu_start_ns < 0 || cpu - vm->cpu_start_ns >= limit)
		return true;
	vm_set_deadline(vm, limit - (cpu - vm->cpu_start_ns));
	return false;
}

static void vm_hook(lua_State *L, lua_Debug *ar)
{
	struct policy_vm *vm = policy_vm_of(L);

	(void)ar;
	if (!vm->killing) {
		if (!vm_past_deadline(vm))
			return;
		vm->killing = true;
		/* From now on every instruction raises, whoever catches the error. */
		lua_sethook(L, vm_hook, LUA_MASKCOUNT, 1);
	}
	luaL_error(L, "cpu limit exceeded (%d ms)", (int)vm->cpu_ms);
}

void policy_vm_check_cpu(lua_State *L)
{
	struct policy_vm *vm = policy_vm_of(L);

	if (vm->killing || vm_past_deadline(vm)) {
		if (!vm->killing) {
			vm->killing = true;
			lua_sethook(L, vm_hook, LUA_MASKCOUNT, 1);
		}
		luaL_error(L, "cpu limit exceeded (%d ms)", (int)vm->cpu_ms);
	}
}

void policy_vm_arm(struct policy_vm *vm)
{
	vm->cpu_start_ns = vm_thread_cpu_ns();
	vm_set_deadline(vm, (int64_t)vm->cpu_ms * 1000000LL);
	if (vm->killing)
		lua_sethook(vm->L, vm_hook, LUA_MASKCOUNT, POLICY_HOOK_INSTRUCTIONS);
	vm->killing = false;
	vm->mem_refused = false;
}

/* ---- hookd.* primitives written in C ---- */

/* Bytes hashed between two deadline checks: SHA-256 runs at ~400 MB/s here, so 1 MiB is
 * ~2.5 ms, and a string as large as the memory cap cannot overrun the budget by more. */
#define POLICY_HASH_CHUNK (1u << 20)

static int prim_sha256_hex(lua_State *L)
{
	size_t len, off, n;
	const char *s = luaL_checklstring(L, 1, &len);
	crypto_hash_sha256_state st;
	unsigned char digest[crypto_hash_sha256_BYTES];
	char hex[crypto_hash_sha256_BYTES * 2 + 1];

	crypto_hash_sha256_init(&st);
	for (off = 0; off < len; off += n) {
		n = len - off < POLICY_HASH_CHUNK ? len - off : POLICY_HASH_CHUNK;
		crypto_hash_sha256_update(&st, (const unsigned char *)s + off, n);
		policy_vm_check_cpu(L);
	}
	crypto_hash_sha256_final(&st, digest);
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	lua_pushlstring(L, hex, sizeof(hex) - 1);
	return 1;
}

static int prim_hmac_sha256_hex(lua_State *L)
{
	size_t klen, dlen, off, n;
	const char *key = luaL_checklstring(L, 1, &klen);
	const char *data = luaL_checklstring(L, 2, &dlen);
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char hex[crypto_auth_hmacsha256_BYTES * 2 + 1];

	crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, klen);
	for (off = 0; off < dlen; off += n) {
		n = dlen - off < POLICY_HASH_CHUNK ? dlen - off : POLICY_HASH_CHUNK;
		crypto_auth_hmacsha256_update(&st, (const unsigned char *)data + off, n);
		policy_vm_check_cpu(L);
	}
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	lua_pushlstring(L, hex, sizeof(hex) - 1);
	return 1;
}

/* Unix time in seconds with sub-second precision (os.time() has whole seconds only). */
static int prim_time(lua_State *L)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	lua_pushnumber(L, (lua_Number)now.tv_sec + (lua_Number)now.tv_nsec / 1e9);
	return 1;
}

/* For sandbox.lua's xpcall wrapper: is the current call being killed? */
static int prim_killing(lua_State *L)
{
	lua_pushboolean(L, policy_vm_of(L)->killing);
	return 1;
}

static int prim_gc_count(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT, 0) +
				  (lua_Number)lua_gc(L, LUA_GCCOUNTB, 0) / 1024.0);
	return 1;
}

/* Copies s into out replacing control characters, so a policy cannot forge log lines. */
static void log_sanitize(char *out, size_t outlen, const char *s, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[o] = '\0';
}

static int prim_log_line(lua_State *L)
{
	struct policy_vm *vm = policy_vm_of(L);
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	char line[POLICY_LOG_LINE_MAX];
	struct timespec now;
	double elapsed;

	clock_gettime(CLOCK_MONOTONIC, &now);
	elapsed = (double)(now.tv_sec - vm->log_refill.tv_sec) +
		  (double)(now.tv_nsec - vm->log_refill.tv_nsec) / 1e9;
	vm->log_refill = now;
	vm->log_tokens += elapsed * POLICY_LOG_RATE;
	if (vm->log_tokens > POLICY_LOG_RATE)
		vm->log_tokens = POLICY_LOG_RATE;
	if (vm->log_tokens < 1.0) {
		vm->log_dropped++;
		return 0;
	}
	vm->log_tokens -= 1.0;
	log_sanitize(line, sizeof(line), s, len);
	if (vm->log_dropped) {
		log_info("policy %s: msg %s: %s (%llu earlier lines dropped by the rate limit)",
			 vm->name, vm->cur_msg_id ? vm->cur_msg_id : "-", line,
			 (unsigned long long)vm->log_dropped);
		vm->log_dropped = 0;
	} else {
		log_info("policy %s: msg %s: %s", vm->name, vm->cur_msg_id ? vm->cur_msg_id : "-",
			 line);
	}
	return 0;
}

/* ---- lazy msg.data / ctx.params ---- */

static int abs_index(lua_State *L, int idx)
{
	return (idx > 0 || idx <= LUA_REGISTRYINDEX) ? idx : lua_gettop(L) + idx + 1;
}

/* Which lazy field (if any) key on the table at idx is, for the current call. */
static enum policy_lazy_state *lazy_field(lua_State *L, struct policy_vm *vm, int idx,
					  const char *key, const json_t **src)
{
	enum policy_lazy_state *st = NULL;
	int ref = LUA_NOREF;

	if (key == NULL)
		return NULL;
	if (strcmp(key, "data") == 0) {
		ref = vm->ref_cur_msg;
		st = &vm->data_state;
		*src = vm->cur_data;
	} else if (strcmp(key, "params") == 0) {
		ref = vm->ref_cur_ctx;
		st = &vm->params_state;
		*src = vm->cur_params;
	}
	if (st == NULL || *st != POLICY_LAZY_PENDING)
		return NULL;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	if (!lua_rawequal(L, idx, -1)) {
		lua_pop(L, 1);
		return NULL;	/* a msg kept from an earlier call: its lazy field is gone */
	}
	lua_pop(L, 1);
	return st;
}

int policy_vm_lazy_get(lua_State *L, int idx, const char *key)
{
	struct policy_vm *vm = policy_vm_of(L);
	const json_t *src = NULL;
	enum policy_lazy_state *st;

	idx = abs_index(L, idx);
	st = lazy_field(L, vm, idx, key, &src);
	if (st == NULL)
		return 0;
	policy_json_push(L, vm, src, 0);
	lua_pushstring(L, key);
	lua_pushvalue(L, -2);
	lua_rawset(L, idx);
	*st = POLICY_LAZY_MATERIALIZED;
	return 1;
}

static int lazy_index(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TSTRING && policy_vm_lazy_get(L, 1, lua_tostring(L, 2)))
		return 1;
	return 0;
}

static int lazy_newindex(lua_State *L)
{
	struct policy_vm *vm = policy_vm_of(L);
	const json_t *src = NULL;
	enum policy_lazy_state *st;

	if (lua_type(L, 2) == LUA_TSTRING) {
		st = lazy_field(L, vm, 1, lua_tostring(L, 2), &src);
		if (st != NULL)
			*st = POLICY_LAZY_ASSIGNED;
	}
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 0;
}

/* A metatable with just a __metatable tag: getmetatable(t) returns the tag, and
 * setmetatable(t, ...) is refused, so scripts can test but not forge or strip the mark. */
static int new_tag_mt(lua_State *L, const char *tag, bool lazy)
{
	lua_createtable(L, 0, 3);
	lua_pushstring(L, tag);
	lua_setfield(L, -2, "__metatable");
	if (lazy) {
		lua_pushcfunction(L, lazy_index);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, lazy_newindex);
		lua_setfield(L, -2, "__newindex");
	}
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* JSON integers past 2^53 (ids from some systems) cannot be Lua numbers without rounding:
 * they are boxed int64 userdata that print, compare and go back to JSON exactly, and raise
 * an error if used in arithmetic rather than silently changing value. */
static int bigint_check(lua_State *L, int idx, int64_t *out)
{
	if (lua_type(L, idx) == LUA_TNUMBER) {
		*out = (int64_t)lua_tonumber(L, idx);
		return 1;
	}
	if (lua_type(L, idx) == LUA_TUSERDATA && lua_objlen(L, idx) == sizeof(int64_t)) {
		memcpy(out, lua_touserdata(L, idx), sizeof(int64_t));
		return 1;
	}
	return 0;
}

static int bigint_tostring(lua_State *L)
{
	int64_t v;
	char text[32];
	if (!bigint_check(L, 1, &v))
		return luaL_error(L, "not an integer");
	snprintf(text, sizeof(text), "%lld", (long long)v);
	lua_pushstring(L, text);
	return 1;
}

static int bigint_eq(lua_State *L)
{
	int64_t a, b;
	lua_pushboolean(L, bigint_check(L, 1, &a) && bigint_check(L, 2, &b) && a == b);
	return 1;
}

static int bigint_lt(lua_State *L)
{
	int64_t a, b;
	if (!bigint_check(L, 1, &a) || !bigint_check(L, 2, &b))
		return luaL_error(L, "attempt to compare a big integer with a non-number");
	lua_pushboolean(L, a < b);
	return 1;
}

static int bigint_le(lua_State *L)
{
	int64_t a, b;
	if (!bigint_check(L, 1, &a) || !bigint_check(L, 2, &b))
		return luaL_error(L, "attempt to compare a big integer with a non-number");
	lua_pushboolean(L, a <= b);
	return 1;
}

static int new_bigint_mt(lua_State *L)
{
	lua_createtable(L, 0, 5);
	lua_pushstring(L, "hookd.bigint");
	lua_setfield(L, -2, "__metatable");
	lua_pushcfunction(L, bigint_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushcfunction(L, bigint_eq);
	lua_setfield(L, -2, "__eq");
	lua_pushcfunction(L, bigint_lt);
	lua_setfield(L, -2, "__lt");
	lua_pushcfunction(L, bigint_le);
	lua_setfield(L, -2, "__le");
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void open_lib(lua_State *L, lua_CFunction fn, const char *name)
{
	lua_pushcfunction(L, fn);
	lua_pushstring(L, name);
	lua_call(L, 1, 0);
}

static void load_embedded(lua_State *L, const unsigned char *src, size_t len, const char *chunk)
{
	if (luaL_loadbuffer(L, (const char *)src, len, chunk) != 0)
		lua_error(L);
}

/* Builds the state's environment; runs under lua_cpcall so any allocation failure is an
 * error, not a panic. */
static int vm_build(lua_State *L)
{
	struct policy_vm *vm = lua_touserdata(L, 1);
	static const struct {
		const char *name;
		lua_CFunction fn;
	} prims[] = {
		{"find", policy_pattern_find},
		{"match", policy_pattern_match},
		{"gmatch", policy_pattern_gmatch},
		{"gsub", policy_pattern_gsub},
		{"json_encode", policy_json_lua_encode},
		{"json_decode", policy_json_lua_decode},
		{"sha256_hex", prim_sha256_hex},
		{"hmac_sha256_hex", prim_hmac_sha256_hex},
		{"time", prim_time},
		{"gc_count", prim_gc_count},
		{"killing", prim_killing},
		{"log_line", prim_log_line},
	};
	size_t i;

	/* Only what sandbox.lua picks from; io, package, debug, jit and ffi never open. */
	open_lib(L, luaopen_base, "");
	open_lib(L, luaopen_string, LUA_STRLIBNAME);
	open_lib(L, luaopen_table, LUA_TABLIBNAME);
	open_lib(L, luaopen_math, LUA_MATHLIBNAME);
	open_lib(L, luaopen_os, LUA_OSLIBNAME);
	open_lib(L, luaopen_bit, LUA_BITLIBNAME);

	vm->ref_array_mt = new_tag_mt(L, "hookd.array", false);
	vm->ref_object_mt = new_tag_mt(L, "hookd.object", false);
	vm->ref_bigint_mt = new_bigint_mt(L);
	vm->ref_msg_mt = new_tag_mt(L, "hookd.msg", true);
	vm->ref_ctx_mt = new_tag_mt(L, "hookd.ctx", true);
	/* Slots for the current call's msg and ctx, reused by every call (false between
	 * calls) so that setting them never allocates. */
	lua_pushboolean(L, 0);
	vm->ref_cur_msg = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushboolean(L, 0);
	vm->ref_cur_ctx = luaL_ref(L, LUA_REGISTRYINDEX);

	load_embedded(L, hookd_lua_sandbox, hookd_lua_sandbox_len, "=sandbox.lua");
	lua_createtable(L, 0, 16);
	for (i = 0; i < sizeof(prims) / sizeof(prims[0]); i++) {
		lua_pushcfunction(L, prims[i].fn);
		lua_setfield(L, -2, prims[i].name);
	}
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_array_mt);
	lua_setfield(L, -2, "array_mt");
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_object_mt);
	lua_setfield(L, -2, "object_mt");
	load_embedded(L, hookd_lua_hookd, hookd_lua_hookd_len, "=hookd.lua");
	lua_setfield(L, -2, "hookd_chunk");
	lua_call(L, 1, 1);
	if (!lua_istable(L, -1))
		return luaL_error(L, "sandbox.lua did not return the environment");
	lua_pushvalue(L, -1);
	vm->ref_env = luaL_ref(L, LUA_REGISTRYINDEX);
	/* Defence in depth: the main Lua thread's own globals become the sandbox too, so
	 * nothing that falls back to them (a new coroutine's globals) sees the privileged
	 * table. */
	lua_replace(L, LUA_GLOBALSINDEX);
	return 0;
}

int policy_vm_new(const char *name, uint32_t cpu_ms, uint64_t mem_cap, struct policy_vm **out)
{
	struct policy_vm *vm;
	int rc = HOOKD_ENOMEM;

	vm = calloc(1, sizeof(*vm));
	if (vm == NULL)
		return HOOKD_ENOMEM;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	vm->cpu_ms = cpu_ms;
	vm->mem_cap = mem_cap > SIZE_MAX ? SIZE_MAX : (size_t)mem_cap;
	vm->mem_unbounded = true;
	vm->ref_env = vm->ref_module = vm->ref_filter = vm->ref_transform = LUA_NOREF;
	vm->ref_cur_msg = vm->ref_cur_ctx = LUA_NOREF;
	vm->log_tokens = POLICY_LOG_RATE;
	clock_gettime(CLOCK_MONOTONIC, &vm->log_refill);
	vm->L = lua_newstate(vm_alloc, vm);
	if (vm->L == NULL) {
		/* LuaJIT on x86_64 accepts a custom allocator only when built with GC64
		 * (Debian 12's is); without it there is no per-state memory cap. */
		log_error("policy %s: LuaJIT refused the counting allocator (not a GC64 build?)",
			  vm->name);
		goto fail;
	}
	luaJIT_setmode(vm->L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
	if (lua_cpcall(vm->L, vm_build, vm) != 0) {
		log_error("policy %s: building the sandbox failed: %s", vm->name,
			  lua_isstring(vm->L, -1) ? lua_tostring(vm->L, -1) : "?");
		rc = HOOKD_EPOLICY;
		goto fail;
	}
	lua_settop(vm->L, 0);
	lua_sethook(vm->L, vm_hook, LUA_MASKCOUNT, POLICY_HOOK_INSTRUCTIONS);
	vm->mem_unbounded = false;
	*out = vm;
	return HOOKD_OK;
fail:
	policy_vm_free(vm);
	return rc;
}

void policy_vm_free(struct policy_vm *vm)
{
	if (vm == NULL)
		return;
	if (vm->L != NULL) {
		vm->mem_unbounded = true;
		lua_close(vm->L);
	}
	json_decref(vm->json_pending);
	free(vm->keys);
	free(vm);
}
