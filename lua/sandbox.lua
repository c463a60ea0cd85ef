-- sandbox.lua - builds the global environment of one policy state.
--
-- Runs once per state, before any policy code, with the privileged globals of a state in
-- which only base, string, table, math, os and bit were opened (never io, package, debug,
-- jit or ffi). It receives `prims`, the C primitives of policy_sandbox.c, and returns the
-- frozen global table that every policy chunk gets as its environment.
--
-- Allow-list, fail closed: the environment is built from names listed here, never by
-- copying _G and deleting what looks dangerous. Shared tables (string, table, math, os,
-- bit, coroutine, hookd, hookd.json and the globals themselves) are empty proxies whose
-- metatable reads from a hidden backing table, refuses writes and is locked against
-- getmetatable/setmetatable; rawset and the raw-writing table functions refuse proxies.
local prims = ...

local error, pairs, type, setmetatable, getmetatable, rawset, tostring, setfenv =
	error, pairs, type, setmetatable, getmetatable, rawset, tostring, setfenv
local t_insert, t_remove, t_sort = table.insert, table.remove, table.sort

-- Weak keys: a proxy that nobody references any more may go.
local frozen = setmetatable({}, { __mode = "k" })

local function freeze(backing, name)
	local proxy = {}
	setmetatable(proxy, {
		__index = backing,
		__newindex = function(_, k)
			error("attempt to modify read-only table '" .. name .. "' (key '"
				.. tostring(k) .. "')", 2)
		end,
		__metatable = false,
	})
	frozen[proxy] = true
	return proxy
end

local function pick(src, names)
	local t = {}
	for i = 1, #names do
		local v = src[names[i]]
		if v == nil then
			error("sandbox: missing " .. names[i])
		end
		t[names[i]] = v
	end
	return t
end

local function refuse_frozen(fname, t)
	if frozen[t] then
		error("bad argument #1 to '" .. fname .. "' (table is read-only)", 3)
	end
end

-- string: no dump; the pattern functions are hookd's own, which check the CPU deadline
-- while they backtrack (LuaJIT's run in C where no hook fires).
local s = pick(string, { "byte", "char", "format", "len", "lower", "rep", "reverse", "sub",
	"upper" })
s.find, s.match, s.gmatch, s.gsub = prims.find, prims.match, prims.gmatch, prims.gsub

local t = pick(table, { "concat", "maxn" })
t.insert = function(tbl, ...)
	refuse_frozen("insert", tbl)
	return t_insert(tbl, ...)
end
t.remove = function(tbl, ...)
	refuse_frozen("remove", tbl)
	return t_remove(tbl, ...)
end
-- Without a comparator LuaJIT sorts entirely in C, where no hook fires (a million numbers
-- take ~0.2 s); a Lua comparator puts the count hook back in the loop.
local function less(a, b)
	return a < b
end
t.sort = function(tbl, cmp)
	refuse_frozen("sort", tbl)
	return t_sort(tbl, cmp or less)
end

local m = {}
for k, v in pairs(math) do
	m[k] = v
end

local o = pick(os, { "time", "date", "clock" })
local b = {}
for k, v in pairs(bit) do
	b[k] = v
end
local co = pick(coroutine, { "create", "resume", "running", "status", "wrap", "yield" })

local g = pick(_G, { "assert", "error", "ipairs", "next", "pairs", "pcall",
	"select", "tonumber", "tostring", "type", "unpack", "rawequal", "rawget",
	"setmetatable", "getmetatable", "_VERSION" })
-- LuaJIT runs an xpcall message handler at the point of the error, and when the error is
-- the CPU kill raised from the count hook, hooks are off until the unwinding ends: a
-- handler that loops would never be stopped. So once a call is being killed the handler
-- is skipped (this wrapper is the only code that runs there, and it is bounded).
local xpcall, killing = xpcall, prims.killing
g.xpcall = function(f, handler)
	return xpcall(f, function(e)
		if killing() then
			return e
		end
		return handler(e)
	end)
end
g.rawset = function(tbl, k, v)
	refuse_frozen("rawset", tbl)
	return rawset(tbl, k, v)
end
-- Only "count": stopping or tuning the collector would let one call change the next.
g.collectgarbage = function(opt)
	if opt == "count" then
		return prims.gc_count()
	end
	error("collectgarbage: only \"count\" is allowed in a policy", 2)
end
g.string = freeze(s, "string")
g.table = freeze(t, "table")
g.math = freeze(m, "math")
g.os = freeze(o, "os")
g.bit = freeze(b, "bit")
g.coroutine = freeze(co, "coroutine")

-- The helpers run with the sandboxed globals too, so a slip in them cannot reach the
-- privileged ones.
local helpers_env = freeze(g, "_G")
setfenv(prims.hookd_chunk, helpers_env)
local hookd, hookd_json = prims.hookd_chunk(prims)
hookd.json = freeze(hookd_json, "hookd.json")
g.hookd = freeze(hookd, "hookd")

-- Strings index the sandboxed string table, and getmetatable("") hands out nothing.
local smt = getmetatable("")
smt.__index = s
smt.__metatable = false

-- The globals of policy code: reading an unknown name gives nil as usual, creating one is
-- an error (a policy keeps its state in locals, and one call cannot leave globals for
-- the next).
local env = {}
setmetatable(env, {
	__index = g,
	__newindex = function(_, k)
		error("assignment to undeclared global '" .. tostring(k)
			.. "' (policies use locals)", 2)
	end,
	__metatable = false,
})
frozen[env] = true
g._G = env
return env
