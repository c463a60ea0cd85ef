/* policy_lua.h - internals of the policy runtime shared by policy.c (engine, limits),
 * policy_sandbox.c (the environment and the hookd.* C helpers), policy_json.c (JSON <->
 * Lua) and policy_pattern.c (CPU-bounded string patterns). Not for use outside policy*.c.
 *
 * One struct policy_vm per Lua state: one lua_State, its counting allocator, its CPU
 * deadline and the state of the call in progress. A policy has one or more (one per call
 * of it in progress, policy.c). The engine owns every vm and hands each to one call at a
 * time (taken from and given back to the policy's idle states under the engine's lock),
 * so a vm is used by one thread at a time, though not always the same one: calls come
 * from the policy threads and the loop thread (policy.h says which calls each makes).
 * That is why nothing in a vm is locked or atomic. */
#ifndef HOOKD_POLICY_LUA_H
#define HOOKD_POLICY_LUA_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Lazy fields of the current call (msg.data, ctx.params): converted from JSON only when a
 * script reads them, because converting a payload costs more than a trivial filter. */
enum policy_lazy_state {
	POLICY_LAZY_NONE = 0,     /* no current call, or the field has no JSON source */
	POLICY_LAZY_PENDING,      /* not yet read or assigned: the JSON source is still the value */
	POLICY_LAZY_MATERIALIZED, /* converted into the table; the table is the value */
	POLICY_LAZY_ASSIGNED      /* the script assigned the field before reading it */
};

/* Nesting limit for JSON <-> Lua in both directions. jansson parses up to 2048 levels; 512
 * is far above any real event (Stripe's deepest is < 10) while keeping our recursion
 * (about 200 bytes of C stack per level, more under ASan) well inside a thread stack, and
 * it stops Lua tables that contain themselves. */
#define POLICY_JSON_MAX_DEPTH 512

struct policy_vm {
	lua_State *L;
	char name[65];

	/* Memory: every allocation of the state goes through policy_vm_alloc, which refuses
	 * growth past mem_cap. mem_refused is sticky for the current call so a refused
	 * allocation swallowed by pcall is still reported. */
	size_t mem_used;
	size_t mem_cap;
	bool mem_refused;
	bool mem_unbounded;       /* while the host builds or closes the state */

	/* CPU: the count hook and the pattern matcher compare the monotonic clock with
	 * deadline (cheap, through the vDSO); once it passes, the thread's CPU clock says
	 * whether the call really used cpu_ms (a thread waiting for a core on a busy machine
	 * has not: the deadline moves on by what is left). Past both, killing stays set and
	 * the hook fires on every instruction so no pcall can swallow the kill. */
	struct timespec deadline;
	int64_t cpu_start_ns;     /* the thread's CPU clock when the call was armed */
	uint32_t cpu_ms;
	bool killing;

	/* Registry references created once per state. */
	int ref_env;              /* the frozen global table of policy code */
	int ref_array_mt;         /* marks tables that came from / go to JSON arrays */
	int ref_object_mt;        /* marks JSON objects (so {} stays an object) */
	int ref_bigint_mt;        /* boxes JSON integers beyond 2^53 (kept exact, see policy_json.c) */
	int ref_msg_mt;           /* msg: lazy data */
	int ref_ctx_mt;           /* ctx: lazy params */
	int ref_module;           /* the table the policy returned */
	int ref_filter;           /* LUA_NOREF when absent */
	int ref_transform;

	/* The call in progress. */
	int ref_cur_msg;
	int ref_cur_ctx;
	const json_t *cur_data;   /* borrowed from the policy_input for the call */
	const json_t *cur_params;
	enum policy_lazy_state data_state;
	enum policy_lazy_state params_state;
	const char *cur_msg_id;   /* for hookd.log lines; may be NULL */

	/* hookd.log token bucket (see policy_sandbox.c for the numbers). */
	double log_tokens;
	struct timespec log_refill;
	uint64_t log_dropped;

	/* Scratch space for sorting object keys while converting to JSON; grows, freed with
	 * the vm. Indexes (not pointers) are kept across growth. */
	struct policy_key *keys;
	size_t keys_len, keys_cap;
	/* Lua -> JSON: what is left of the output budget (bytes, estimated) and a node
	 * counter for CPU checks; see policy_json.c. */
	size_t json_budget;
	size_t json_nodes;
	/* A JSON tree being built or consumed by hookd.json.*; if a Lua error interrupts
	 * it, it is freed at the next use, at the end of the call or with the vm. */
	json_t *json_pending;
};

struct policy_key {
	const char *s;            /* a Lua string kept alive by the table, or NULL: use num */
	size_t len;
	char num[32];             /* a number key in decimal */
};

/* policy_sandbox.c: creates the state (allocator, JIT off, hook, sandbox, helpers). The
 * caller owns *out and frees it with policy_vm_free. */
int policy_vm_new(const char *name, uint32_t cpu_ms, uint64_t mem_cap, struct policy_vm **out);
void policy_vm_free(struct policy_vm *vm);
/* The vm owning L (the allocator's user data; borrowed, lives as long as L). */
struct policy_vm *policy_vm_of(lua_State *L);
/* Arms the per-call CPU deadline and clears the sticky kill/memory flags. */
void policy_vm_arm(struct policy_vm *vm);
/* Raises a Lua error if the call is past its deadline (used where no hook runs). */
void policy_vm_check_cpu(lua_State *L);
/* Pushes the value of a lazy field of the current call (materializing it) if t at idx is
 * the current msg or ctx; returns 1 if something was pushed. */
int policy_vm_lazy_get(lua_State *L, int idx, const char *key);

/* policy_json.c */
/* Pushes j as a Lua value: objects and arrays become tables marked with the object/array
 * metatables, null becomes hookd.null (a light userdata NULL). Raises Lua errors. */
void policy_json_push(lua_State *L, struct policy_vm *vm, const json_t *j, int depth);
/* Converts the Lua value at idx to JSON. The result is stored in *anchor as soon as it
 * exists so that, if a Lua error interrupts the conversion, the caller frees what was
 * built with json_decref(*anchor). Raises Lua errors ("cannot convert ... to JSON"). */
void policy_json_from_lua(lua_State *L, struct policy_vm *vm, int idx, json_t **anchor);
/* hookd.json.encode / hookd.json.decode. */
int policy_json_lua_encode(lua_State *L);
int policy_json_lua_decode(lua_State *L);

/* policy_pattern.c: string.find/match/gmatch/gsub with Lua 5.1 pattern semantics, checking
 * the CPU deadline while they backtrack (LuaJIT's own run in C without hooks). */
int policy_pattern_find(lua_State *L);
int policy_pattern_match(lua_State *L);
int policy_pattern_gmatch(lua_State *L);
int policy_pattern_gsub(lua_State *L);

#endif
