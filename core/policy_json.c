/* policy_json.c - JSON (jansson) <-> Lua values for policies.
 *
 * JSON -> Lua: objects and arrays become tables carrying the shared object/array marker
 * metatables (tagged "hookd.object" / "hookd.array"), so an empty {} or [] comes back as
 * it went in; null becomes hookd.null (a light userdata NULL); every number becomes a Lua
 * number (a double), except integers beyond 2^53, which arrive boxed (exact; they print and
 * compare, and arithmetic on them is an error rather than a silent rounding).
 *
 * Lua -> JSON: a marked table converts as marked. An unmarked table converts as an array
 * when all its keys are positive integers (holes become null), as an object when it is
 * empty or all its keys are strings (or numbers, written in decimal), and is refused when
 * it mixes both. Object keys are emitted in byte order, so a policy's output does not
 * depend on Lua's hash order. Integral numbers within +-2^53 become JSON integers.
 *
 * The output lives outside the state's allocator, so it gets its own budget (the state's
 * memory cap, counting string bytes plus POLICY_JSON_NODE_COST per value): one Lua string
 * or table referenced a million times must not turn into gigabytes of JSON. Conversion
 * runs in C where no count hook fires, so it checks the CPU deadline every
 * POLICY_JSON_CPU_EVERY values. */
#include "policy_lua.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rough heap cost of one jansson value (struct + allocator overhead, measured at 40-72
 * bytes for json_integer/json_string/json_object on glibc x86_64). */
#define POLICY_JSON_NODE_COST 64
/* Values converted between two deadline checks: ~50 ns per value, so ~50 us apart. */
#define POLICY_JSON_CPU_EVERY 1024
/* jansson's tree for a JSON text can take ~16x the text (a 3-byte "[]," becomes a 48-byte
 * array plus allocator overhead), outside the Lua cap; hookd.json.decode accepts texts up
 * to cap / POLICY_JSON_DECODE_RATIO so the tree stays within about one cap. */
#define POLICY_JSON_DECODE_RATIO 16
/* 2^53: the largest range in which every integer is exactly a double. */
#define POLICY_JSON_EXACT_INT 9007199254740992.0

void policy_json_push(lua_State *L, struct policy_vm *vm, const json_t *j, int depth)
{
	const char *key;
	json_t *v;
	size_t i, n;

	if (depth > POLICY_JSON_MAX_DEPTH)
		luaL_error(L, "JSON nested deeper than %d levels", POLICY_JSON_MAX_DEPTH);
	luaL_checkstack(L, 4, "JSON nested too deeply");
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		n = json_object_size(j);
		lua_createtable(L, 0, n > INT32_MAX ? INT32_MAX : (int)n);
		json_object_foreach((json_t *)j, key, v) {
			lua_pushstring(L, key);
			policy_json_push(L, vm, v, depth + 1);
			lua_rawset(L, -3);
		}
		lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_object_mt);
		lua_setmetatable(L, -2);
		break;
	case JSON_ARRAY:
		n = json_array_size(j);
		lua_createtable(L, n > INT32_MAX ? INT32_MAX : (int)n, 0);
		for (i = 0; i < n; i++) {
			policy_json_push(L, vm, json_array_get(j, i), depth + 1);
			lua_rawseti(L, -2, (int)(i + 1));
		}
		lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_array_mt);
		lua_setmetatable(L, -2);
		break;
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		if (json_integer_value(j) > (json_int_t)POLICY_JSON_EXACT_INT ||
		    json_integer_value(j) < -(json_int_t)POLICY_JSON_EXACT_INT) {
			/* Exact, boxed (policy_sandbox.c: bigint): a double would round it. */
			int64_t big = json_integer_value(j);
			memcpy(lua_newuserdata(L, sizeof(big)), &big, sizeof(big));
			lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_bigint_mt);
			lua_setmetatable(L, -2);
		} else {
			lua_pushnumber(L, (lua_Number)json_integer_value(j));
		}
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(j));
		break;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		break;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		break;
	case JSON_NULL:
		lua_pushlightuserdata(L, NULL);
		break;
	}
}

static void budget_take(lua_State *L, struct policy_vm *vm, size_t bytes)
{
	if (bytes > vm->json_budget)
		luaL_error(L, "JSON result larger than the memory limit (%d bytes)",
			   (int)(vm->mem_cap > INT32_MAX ? INT32_MAX : vm->mem_cap));
	vm->json_budget -= bytes;
	if (++vm->json_nodes % POLICY_JSON_CPU_EVERY == 0)
		policy_vm_check_cpu(L);
}

enum table_kind { KIND_OBJECT, KIND_ARRAY };

static bool is_index(lua_Number d)
{
	return d >= 1 && d <= (lua_Number)INT32_MAX && d == floor(d);
}

/* Decides how the table at idx converts; for arrays *n is the highest index. */
static enum table_kind table_classify(lua_State *L, struct policy_vm *vm, int idx, size_t *n)
{
	int marked = -1;	/* -1 unmarked, else the kind */
	bool ints = false, strs = false;
	size_t max = 0;

	if (lua_getmetatable(L, idx)) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_array_mt);
		if (lua_rawequal(L, -1, -2))
			marked = KIND_ARRAY;
		lua_pop(L, 1);
		lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_object_mt);
		if (lua_rawequal(L, -1, -2))
			marked = KIND_OBJECT;
		lua_pop(L, 2);
	}
	if (marked == KIND_OBJECT)
		return KIND_OBJECT;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TNUMBER && is_index(lua_tonumber(L, -1))) {
			ints = true;
			if ((size_t)lua_tonumber(L, -1) > max)
				max = (size_t)lua_tonumber(L, -1);
		} else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
			strs = true;
		} else {
			luaL_error(L, "cannot convert a table with a %s key to JSON",
				   luaL_typename(L, -1));
		}
	}
	*n = max;
	if (marked == KIND_ARRAY) {
		if (strs)
			luaL_error(L, "cannot convert an array (hookd.array) with non-index keys "
				      "to JSON");
		return KIND_ARRAY;
	}
	if (ints && strs)
		luaL_error(L, "cannot convert a table mixing array and object keys to JSON");
	return ints ? KIND_ARRAY : KIND_OBJECT;
}

static void keys_push(lua_State *L, struct policy_vm *vm, int keyidx)
{
	struct policy_key *k;

	if (vm->keys_len == vm->keys_cap) {
		size_t cap = vm->keys_cap ? vm->keys_cap * 2 : 64;
		struct policy_key *nk = realloc(vm->keys, cap * sizeof(*nk));
		if (nk == NULL)
			luaL_error(L, "out of memory converting to JSON");
		vm->keys = nk;
		vm->keys_cap = cap;
	}
	k = &vm->keys[vm->keys_len++];
	if (lua_type(L, keyidx) == LUA_TSTRING) {
		k->s = lua_tolstring(L, keyidx, &k->len);
	} else {
		lua_Number d = lua_tonumber(L, keyidx);
		int w;

		if (d == floor(d) && fabs(d) < POLICY_JSON_EXACT_INT)
			w = snprintf(k->num, sizeof(k->num), "%lld", (long long)d);
		else
			w = snprintf(k->num, sizeof(k->num), "%.17g", (double)d);
		k->s = NULL;
		k->len = (size_t)w;
	}
}

static const char *key_text(const struct policy_key *k)
{
	return k->s ? k->s : k->num;
}

static int key_cmp(const void *a, const void *b)
{
	const struct policy_key *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(key_text(x), key_text(y), n);

	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static void convert(lua_State *L, struct policy_vm *vm, int idx, int depth, json_t *parent,
		    const char *key, size_t keylen, json_t **anchor);

/* Attaches v (a new reference) to parent, or makes it the root. */
static void attach(lua_State *L, json_t *parent, const char *key, size_t keylen, json_t *v,
		   json_t **anchor)
{
	int rc;

	if (v == NULL)
		luaL_error(L, "out of memory converting to JSON");
	if (parent == NULL) {
		*anchor = v;
		return;
	}
	if (json_is_array(parent))
		rc = json_array_append_new(parent, v);
	else
		rc = json_object_setn_new_nocheck(parent, key, keylen, v);
	if (rc != 0)
		luaL_error(L, "out of memory converting to JSON");
}

static void convert_table(lua_State *L, struct policy_vm *vm, int idx, int depth, json_t *parent,
			  const char *key, size_t keylen, json_t **anchor)
{
	size_t n = 0, i, base, count;
	json_t *node;
	lua_Number d;

	if (depth > POLICY_JSON_MAX_DEPTH)
		luaL_error(L, "cannot convert to JSON: nested deeper than %d levels (a table "
			      "that contains itself?)", POLICY_JSON_MAX_DEPTH);
	luaL_checkstack(L, 6, "JSON nested too deeply");
	/* A msg or ctx whose lazy field was never read: read it now so it is written. */
	if (lua_getmetatable(L, idx)) {
		lua_pop(L, 1);
		if (policy_vm_lazy_get(L, idx, "data") || policy_vm_lazy_get(L, idx, "params"))
			lua_pop(L, 1);
	}
	if (table_classify(L, vm, idx, &n) == KIND_ARRAY) {
		node = json_array();
		attach(L, parent, key, keylen, node, anchor);
		for (i = 1; i <= n; i++) {
			lua_rawgeti(L, idx, (int)i);
			if (lua_isnil(L, -1)) {	/* a hole: JSON has null for it */
				budget_take(L, vm, POLICY_JSON_NODE_COST);
				attach(L, node, NULL, 0, json_null(), anchor);
			} else {
				convert(L, vm, lua_gettop(L), depth + 1, node, NULL, 0, anchor);
			}
			lua_pop(L, 1);
		}
		return;
	}
	node = json_object();
	attach(L, parent, key, keylen, node, anchor);
	base = vm->keys_len;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		keys_push(L, vm, lua_gettop(L));
	}
	count = vm->keys_len - base;
	/* An empty object may come before any key was ever stored (vm->keys still NULL). */
	if (count > 1)
		qsort(vm->keys + base, count, sizeof(*vm->keys), key_cmp);
	for (i = 0; i < count; i++) {
		struct policy_key *k = &vm->keys[base + i];

		if (k->s != NULL) {
			lua_pushlstring(L, k->s, k->len);
		} else {
			d = strtod(k->num, NULL);
			lua_pushnumber(L, d);
		}
		lua_rawget(L, idx);
		budget_take(L, vm, k->len);
		/* The child may grow vm->keys: copy the key text it needs first. */
		if (k->s != NULL) {
			convert(L, vm, lua_gettop(L), depth + 1, node, k->s, k->len, anchor);
		} else {
			char num[sizeof(k->num)];
			size_t len = k->len;

			memcpy(num, k->num, sizeof(num));
			convert(L, vm, lua_gettop(L), depth + 1, node, num, len, anchor);
		}
		lua_pop(L, 1);
	}
	vm->keys_len = base;
}

static void convert(lua_State *L, struct policy_vm *vm, int idx, int depth, json_t *parent,
		    const char *key, size_t keylen, json_t **anchor)
{
	const char *s;
	size_t len;
	lua_Number d;
	json_t *v = NULL;

	budget_take(L, vm, POLICY_JSON_NODE_COST);
	switch (lua_type(L, idx)) {
	case LUA_TTABLE:
		convert_table(L, vm, idx, depth, parent, key, keylen, anchor);
		return;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		budget_take(L, vm, len);
		v = json_stringn(s, len);
		if (v == NULL)
			luaL_error(L, "cannot convert a string that is not valid UTF-8 to JSON");
		break;
	case LUA_TNUMBER:
		d = lua_tonumber(L, idx);
		if (isnan(d) || isinf(d))
			luaL_error(L, "cannot convert NaN or infinity to JSON");
		if (d == floor(d) && fabs(d) <= POLICY_JSON_EXACT_INT)
			v = json_integer((json_int_t)d);
		else
			v = json_real(d);
		break;
	case LUA_TBOOLEAN:
		v = json_boolean(lua_toboolean(L, idx));
		break;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULL) {
			v = json_null();
			break;
		}
		luaL_error(L, "cannot convert a %s to JSON", luaL_typename(L, idx));
		return;
	case LUA_TUSERDATA: {
		int is_big;
		lua_getmetatable(L, idx);
		lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_bigint_mt);
		is_big = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
		if (is_big && lua_objlen(L, idx) == sizeof(int64_t)) {
			int64_t big;
			memcpy(&big, lua_touserdata(L, idx), sizeof(big));
			v = json_integer((json_int_t)big);
			break;
		}
	}
		/* fallthrough */
	default:
		luaL_error(L, "cannot convert a %s to JSON", luaL_typename(L, idx));
		return;
	}
	attach(L, parent, key, keylen, v, anchor);
}

void policy_json_from_lua(lua_State *L, struct policy_vm *vm, int idx, json_t **anchor)
{
	if (idx < 0 && idx > LUA_REGISTRYINDEX)
		idx = lua_gettop(L) + idx + 1;
	*anchor = NULL;
	vm->json_budget = vm->mem_cap;
	vm->json_nodes = 0;
	vm->keys_len = 0;
	convert(L, vm, idx, 0, NULL, NULL, 0, anchor);
}

/* hookd.json.encode(value) -> compact JSON text. Raises on values JSON cannot hold. */
int policy_json_lua_encode(lua_State *L)
{
	struct policy_vm *vm = policy_vm_of(L);
	char *text;

	luaL_checkany(L, 1);
	lua_settop(L, 1);
	json_decref(vm->json_pending);
	vm->json_pending = NULL;
	policy_json_from_lua(L, vm, 1, &vm->json_pending);
	text = json_dumps(vm->json_pending, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(vm->json_pending);
	vm->json_pending = NULL;
	if (text == NULL)
		return luaL_error(L, "out of memory encoding JSON");
	lua_pushstring(L, text);
	free(text);
	return 1;
}

/* hookd.json.decode(text) -> value, or nil and a message (line and column) when text is
 * not JSON: a policy decoding a field it did not produce should not have to pcall. */
int policy_json_lua_decode(lua_State *L)
{
	struct policy_vm *vm = policy_vm_of(L);
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	json_error_t jerr;

	if (len > vm->mem_cap / POLICY_JSON_DECODE_RATIO)
		return luaL_error(L, "hookd.json.decode: text of %d bytes is over the limit of %d",
				  (int)(len > INT32_MAX ? INT32_MAX : len),
				  (int)(vm->mem_cap / POLICY_JSON_DECODE_RATIO));
	json_decref(vm->json_pending);
	vm->json_pending = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (vm->json_pending == NULL) {
		lua_pushnil(L);
		lua_pushfstring(L, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return 2;
	}
	policy_json_push(L, vm, vm->json_pending, 0);
	json_decref(vm->json_pending);
	vm->json_pending = NULL;
	return 1;
}
