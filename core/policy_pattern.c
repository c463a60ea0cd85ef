/* policy_pattern.c - string.find, string.match, string.gmatch and string.gsub for policy
 * states, with Lua 5.1 pattern semantics and a CPU bound.
 *
 * Why our own: LuaJIT's pattern functions are C code, and no count hook fires inside C,
 * so `string.find(string.rep("a", 1e5), ".-.-.-.-b")` (O(n^5) backtracking) would run
 * for hours past any deadline. This matcher counts its steps and checks the call's
 * deadline every POLICY_PATTERN_CPU_EVERY steps, raising the same "cpu limit exceeded"
 * error as the hook. It also bounds its recursion (POLICY_PATTERN_MAX_DEPTH) so a pattern
 * of thousands of quantified items cannot overflow the C stack.
 *
 * Differences from Lua 5.1, all in the direction of refusing: a pattern may contain NUL
 * bytes (matched literally, like 5.2; 5.1 stops at the first one), and more than
 * POLICY_PATTERN_MAX_DEPTH nested items raise "pattern too complex" (as 5.2 does). */
#include "policy_lua.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

/* Steps (match calls and backtracking iterations, a few ns each) between two deadline
 * checks; a check is one clock_gettime (~20 ns), so ~1% overhead, ~10-20 us of lateness. */
#define POLICY_PATTERN_CPU_EVERY 4096
/* Recursion depth of the matcher; Lua 5.2+ uses the same 200 (MAXCCALLS). One level is
 * well under 200 bytes of C stack. */
#define POLICY_PATTERN_MAX_DEPTH 200
/* Captures per pattern, as Lua's LUA_MAXCAPTURES. */
#define POLICY_PATTERN_MAX_CAPTURES 32

#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define ESC '%'

struct match_state {
	const char *src_init;
	const char *src_end;
	const char *p_end;
	lua_State *L;
	int level;
	int depth;
	unsigned steps;
	struct {
		const char *init;
		ptrdiff_t len;
	} capture[POLICY_PATTERN_MAX_CAPTURES];
};

static void ms_step(struct match_state *ms)
{
	if (++ms->steps % POLICY_PATTERN_CPU_EVERY == 0)
		policy_vm_check_cpu(ms->L);
}

static int capture_to_close(struct match_state *ms)
{
	int level = ms->level;

	for (level--; level >= 0; level--)
		if (ms->capture[level].len == CAP_UNFINISHED)
			return level;
	return luaL_error(ms->L, "invalid pattern capture");
}

static int check_capture(struct match_state *ms, int l)
{
	l -= '1';
	if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
		return luaL_error(ms->L, "invalid capture index");
	return l;
}

static const char *class_end(struct match_state *ms, const char *p)
{
	if (p >= ms->p_end)
		luaL_error(ms->L, "malformed pattern (ends with '%%')");
	if (*p++ == ESC) {
		if (p >= ms->p_end)
			luaL_error(ms->L, "malformed pattern (ends with '%%')");
		return p + 1;
	}
	if (p[-1] == '[') {
		if (p < ms->p_end && *p == '^')
			p++;
		do {	/* look for a ']' */
			if (p >= ms->p_end)
				luaL_error(ms->L, "malformed pattern (missing ']')");
			if (*(p++) == ESC && p < ms->p_end)
				p++;	/* skip escapes (e.g. '%]') */
		} while (*p != ']');
		return p + 1;
	}
	return p;
}

static bool class_match(int c, int cl)
{
	bool res;

	switch (tolower(cl)) {
	case 'a': res = isalpha(c); break;
	case 'c': res = iscntrl(c); break;
	case 'd': res = isdigit(c); break;
	case 'l': res = islower(c); break;
	case 'p': res = ispunct(c); break;
	case 's': res = isspace(c); break;
	case 'u': res = isupper(c); break;
	case 'w': res = isalnum(c); break;
	case 'x': res = isxdigit(c); break;
	case 'z': res = (c == 0); break;
	default: return cl == c;
	}
	return isupper(cl) ? !res : res;
}

/* p points at '[', ec at the closing ']'. */
static bool bracket_match(int c, const char *p, const char *ec)
{
	bool sig = true;

	if (*(p + 1) == '^') {
		sig = false;
		p++;
	}
	while (++p < ec) {
		if (*p == ESC) {
			p++;
			if (class_match(c, (unsigned char)*p))
				return sig;
		} else if (*(p + 1) == '-' && p + 2 < ec) {
			p += 2;
			if ((unsigned char)*(p - 2) <= c && c <= (unsigned char)*p)
				return sig;
		} else if ((unsigned char)*p == c) {
			return sig;
		}
	}
	return !sig;
}

static bool single_match(int c, const char *p, const char *ep)
{
	switch (*p) {
	case '.': return true;
	case ESC: return class_match(c, (unsigned char)*(p + 1));
	case '[': return bracket_match(c, p, ep - 1);
	default: return (unsigned char)*p == c;
	}
}

static const char *do_match(struct match_state *ms, const char *s, const char *p);

static const char *balance_match(struct match_state *ms, const char *s, const char *p)
{
	int b, e, cont = 1;

	if (p + 1 >= ms->p_end)
		luaL_error(ms->L, "missing arguments to '%%b'");
	if (s >= ms->src_end || *s != *p)
		return NULL;
	b = *p;
	e = *(p + 1);
	while (++s < ms->src_end) {
		ms_step(ms);
		if (*s == e) {
			if (--cont == 0)
				return s + 1;
		} else if (*s == b) {
			cont++;
		}
	}
	return NULL;
}

static const char *max_expand(struct match_state *ms, const char *s, const char *p,
			      const char *ep)
{
	ptrdiff_t i = 0;

	while (s + i < ms->src_end && single_match((unsigned char)s[i], p, ep)) {
		ms_step(ms);
		i++;
	}
	while (i >= 0) {	/* try with the longest run, then shorter */
		const char *res = do_match(ms, s + i, ep + 1);
		if (res)
			return res;
		i--;
	}
	return NULL;
}

static const char *min_expand(struct match_state *ms, const char *s, const char *p,
			      const char *ep)
{
	for (;;) {
		const char *res = do_match(ms, s, ep + 1);
		if (res != NULL)
			return res;
		if (s < ms->src_end && single_match((unsigned char)*s, p, ep))
			s++;
		else
			return NULL;
	}
}

static const char *start_capture(struct match_state *ms, const char *s, const char *p, int what)
{
	const char *res;

	if (ms->level >= POLICY_PATTERN_MAX_CAPTURES)
		luaL_error(ms->L, "too many captures");
	ms->capture[ms->level].init = s;
	ms->capture[ms->level].len = what;
	ms->level++;
	res = do_match(ms, s, p);
	if (res == NULL)
		ms->level--;
	return res;
}

static const char *end_capture(struct match_state *ms, const char *s, const char *p)
{
	int l = capture_to_close(ms);
	const char *res;

	ms->capture[l].len = s - ms->capture[l].init;
	res = do_match(ms, s, p);
	if (res == NULL)
		ms->capture[l].len = CAP_UNFINISHED;
	return res;
}

static const char *backref_match(struct match_state *ms, const char *s, int l)
{
	size_t len;

	l = check_capture(ms, l);
	len = (size_t)ms->capture[l].len;
	if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0)
		return s + len;
	return NULL;
}

static const char *do_match_body(struct match_state *ms, const char *s, const char *p)
{
	const char *ep;
	bool m;

init:
	ms_step(ms);
	if (p == ms->p_end)
		return s;
	switch (*p) {
	case '(':
		if (p + 1 < ms->p_end && *(p + 1) == ')')
			return start_capture(ms, s, p + 2, CAP_POSITION);
		return start_capture(ms, s, p + 1, CAP_UNFINISHED);
	case ')':
		return end_capture(ms, s, p + 1);
	case '$':
		if (p + 1 == ms->p_end)
			return (s == ms->src_end) ? s : NULL;
		break;
	case ESC:
		if (p + 1 < ms->p_end && *(p + 1) == 'b') {
			s = balance_match(ms, s, p + 2);
			if (s == NULL)
				return NULL;
			p += 4;
			goto init;
		}
		if (p + 1 < ms->p_end && *(p + 1) == 'f') {
			const char *pp = p + 2;
			int prev, cur;

			if (pp >= ms->p_end || *pp != '[')
				luaL_error(ms->L, "missing '[' after '%%f' in pattern");
			ep = class_end(ms, pp);
			prev = (s == ms->src_init) ? 0 : (unsigned char)*(s - 1);
			cur = (s < ms->src_end) ? (unsigned char)*s : 0;
			if (!bracket_match(prev, pp, ep - 1) && bracket_match(cur, pp, ep - 1)) {
				p = ep;
				goto init;
			}
			return NULL;
		}
		if (p + 1 < ms->p_end && isdigit((unsigned char)*(p + 1))) {
			s = backref_match(ms, s, (unsigned char)*(p + 1));
			if (s == NULL)
				return NULL;
			p += 2;
			goto init;
		}
		break;
	default:
		break;
	}
	ep = class_end(ms, p);
	m = s < ms->src_end && single_match((unsigned char)*s, p, ep);
	if (ep < ms->p_end) {
		switch (*ep) {
		case '?': {
			const char *res;
			if (m && (res = do_match(ms, s + 1, ep + 1)) != NULL)
				return res;
			p = ep + 1;
			goto init;
		}
		case '*':
			return max_expand(ms, s, p, ep);
		case '+':
			return m ? max_expand(ms, s + 1, p, ep) : NULL;
		case '-':
			return min_expand(ms, s, p, ep);
		default:
			break;
		}
	}
	if (!m)
		return NULL;
	s++;
	p = ep;
	goto init;
}

static const char *do_match(struct match_state *ms, const char *s, const char *p)
{
	const char *res;

	if (++ms->depth > POLICY_PATTERN_MAX_DEPTH)
		luaL_error(ms->L, "pattern too complex");
	res = do_match_body(ms, s, p);
	ms->depth--;
	return res;
}

static void push_onecapture(struct match_state *ms, int i, const char *s, const char *e)
{
	if (i >= ms->level) {
		if (i == 0)	/* no captures: the whole match */
			lua_pushlstring(ms->L, s, (size_t)(e - s));
		else
			luaL_error(ms->L, "invalid capture index");
		return;
	}
	if (ms->capture[i].len == CAP_UNFINISHED)
		luaL_error(ms->L, "unfinished capture");
	if (ms->capture[i].len == CAP_POSITION)
		lua_pushinteger(ms->L, ms->capture[i].init - ms->src_init + 1);
	else
		lua_pushlstring(ms->L, ms->capture[i].init, (size_t)ms->capture[i].len);
}

static int push_captures(struct match_state *ms, const char *s, const char *e)
{
	int i, n = (ms->level == 0 && s) ? 1 : ms->level;

	luaL_checkstack(ms->L, n, "too many captures");
	for (i = 0; i < n; i++)
		push_onecapture(ms, i, s, e);
	return n;
}

static void ms_init(struct match_state *ms, lua_State *L, const char *s, size_t ls,
		    const char *p, size_t lp)
{
	ms->L = L;
	ms->src_init = s;
	ms->src_end = s + ls;
	ms->p_end = p + lp;
	ms->level = 0;
	ms->depth = 0;
	ms->steps = 0;
}

static ptrdiff_t pos_relative(ptrdiff_t pos, size_t len)
{
	if (pos < 0)
		pos += (ptrdiff_t)len + 1;
	return pos >= 0 ? pos : 0;
}

static bool has_specials(const char *p, size_t lp)
{
	size_t i;

	for (i = 0; i < lp; i++)
		if (strchr("^$*+?.([%-", p[i]) != NULL && p[i] != '\0')
			return true;
	return false;
}

static int find_aux(lua_State *L, bool find)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	ptrdiff_t init = pos_relative(luaL_optinteger(L, 3, 1), ls) - 1;
	struct match_state ms;
	const char *s1;
	bool anchor;

	if (init < 0)
		init = 0;
	else if ((size_t)init > ls)
		init = (ptrdiff_t)ls;
	if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
		/* Plain search: memmem is linear (two-way algorithm in glibc). */
		const char *hit = lp == 0 ? s + init : memmem(s + init, ls - (size_t)init, p, lp);
		if (hit != NULL) {
			lua_pushinteger(L, hit - s + 1);
			lua_pushinteger(L, (lua_Integer)(hit - s + (ptrdiff_t)lp));
			return 2;
		}
		lua_pushnil(L);
		return 1;
	}
	anchor = lp > 0 && *p == '^';
	if (anchor) {
		p++;
		lp--;
	}
	ms_init(&ms, L, s, ls, p, lp);
	s1 = s + init;
	do {
		const char *res;

		ms.level = 0;
		ms.depth = 0;
		res = do_match(&ms, s1, p);
		if (res != NULL) {
			if (find) {
				lua_pushinteger(L, s1 - s + 1);
				lua_pushinteger(L, res - s);
				return push_captures(&ms, NULL, NULL) + 2;
			}
			return push_captures(&ms, s1, res);
		}
	} while (s1++ < ms.src_end && !anchor);
	lua_pushnil(L);
	return 1;
}

int policy_pattern_find(lua_State *L)
{
	return find_aux(L, true);
}

int policy_pattern_match(lua_State *L)
{
	return find_aux(L, false);
}

static int gmatch_aux(lua_State *L)
{
	size_t ls, lp;
	const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
	const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
	ptrdiff_t pos = (ptrdiff_t)lua_tointeger(L, lua_upvalueindex(3));
	struct match_state ms;
	const char *src;

	ms_init(&ms, L, s, ls, p, lp);
	for (src = s + pos; src <= ms.src_end; src++) {
		const char *e;

		ms.level = 0;
		ms.depth = 0;
		e = do_match(&ms, src, p);
		if (e != NULL) {
			ptrdiff_t next = e - s;
			if (e == src)
				next++;	/* empty match: go at least one position */
			lua_pushinteger(L, next);
			lua_replace(L, lua_upvalueindex(3));
			return push_captures(&ms, src, e);
		}
	}
	return 0;
}

int policy_pattern_gmatch(lua_State *L)
{
	luaL_checkstring(L, 1);
	luaL_checkstring(L, 2);
	lua_settop(L, 2);
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, gmatch_aux, 3);
	return 1;
}

static void add_s(struct match_state *ms, luaL_Buffer *b, const char *s, const char *e)
{
	size_t l, i;
	const char *news = lua_tolstring(ms->L, 3, &l);

	for (i = 0; i < l; i++) {
		if (news[i] != ESC) {
			luaL_addchar(b, news[i]);
			continue;
		}
		i++;
		if (i >= l || !isdigit((unsigned char)news[i])) {
			if (i < l)
				luaL_addchar(b, news[i]);
		} else if (news[i] == '0') {
			luaL_addlstring(b, s, (size_t)(e - s));
		} else {
			push_onecapture(ms, news[i] - '1', s, e);
			luaL_addvalue(b);
		}
	}
}

static void add_value(struct match_state *ms, luaL_Buffer *b, const char *s, const char *e)
{
	lua_State *L = ms->L;

	switch (lua_type(L, 3)) {
	case LUA_TNUMBER:
	case LUA_TSTRING:
		add_s(ms, b, s, e);
		return;
	case LUA_TFUNCTION: {
		int n;
		lua_pushvalue(L, 3);
		n = push_captures(ms, s, e);
		lua_call(L, n, 1);
		break;
	}
	case LUA_TTABLE:
		push_onecapture(ms, 0, s, e);
		lua_gettable(L, 3);
		break;
	}
	if (!lua_toboolean(L, -1)) {	/* nil or false: keep the original text */
		lua_pop(L, 1);
		lua_pushlstring(L, s, (size_t)(e - s));
	} else if (!lua_isstring(L, -1)) {
		luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
	}
	luaL_addvalue(b);
}

int policy_pattern_gsub(lua_State *L)
{
	size_t srcl, lp;
	const char *src = luaL_checklstring(L, 1, &srcl);
	const char *p = luaL_checklstring(L, 2, &lp);
	int tr = lua_type(L, 3);
	lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
	bool anchor = lp > 0 && *p == '^';
	lua_Integer n = 0;
	struct match_state ms;
	luaL_Buffer b;

	luaL_argcheck(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
				 tr == LUA_TTABLE,
		      3, "string/function/table expected");
	if (anchor) {
		p++;
		lp--;
	}
	luaL_buffinit(L, &b);
	ms_init(&ms, L, src, srcl, p, lp);
	while (n < max_s) {
		const char *e;

		ms.level = 0;
		ms.depth = 0;
		e = do_match(&ms, src, p);
		if (e != NULL) {
			n++;
			add_value(&ms, &b, src, e);
		}
		if (e != NULL && e > src) {
			src = e;
		} else if (src < ms.src_end) {
			luaL_addchar(&b, *src++);
		} else {
			break;
		}
		if (anchor)
			break;
		ms_step(&ms);
	}
	luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
	luaL_pushresult(&b);
	lua_pushinteger(L, (lua_Integer)n);
	return 2;
}
