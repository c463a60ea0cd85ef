-- hookd.lua - the `hookd` helper table that every policy sees.
--
-- Runs once per policy state inside the sandboxed globals (see sandbox.lua); receives the
-- C primitives and returns the helper table and the hookd.json table, which sandbox.lua
-- freezes. Keep helpers small and total: a helper that errors on odd input makes every
-- policy using it fragile, so missing paths and nil values are simply left alone.
local prims = ...

local type, pairs, tostring, select, error, getmetatable, setmetatable =
	type, pairs, tostring, select, error, getmetatable, setmetatable
local concat = table.concat
local find, sub, gsub = string.find, string.sub, string.gsub

local hookd = {}
local json = {
	encode = prims.json_encode,
	decode = prims.json_decode,
}

-- JSON null inside msg.data and ctx.params (a light userdata, so it compares equal to
-- itself everywhere and cannot carry a metatable).
local null = prims.null
hookd.null = null

local array_mt, object_mt = prims.array_mt, prims.object_mt

-- Marks t (or a new table) as a JSON array, so that it encodes as [] even when empty.
function hookd.array(t)
	t = t or {}
	if getmetatable(t) == "hookd.array" then
		return t
	end
	return setmetatable(t, array_mt)
end

-- Marks t (or a new table) as a JSON object, so that it encodes as {} when empty and
-- never as an array.
function hookd.object(t)
	t = t or {}
	if getmetatable(t) == "hookd.object" then
		return t
	end
	return setmetatable(t, object_mt)
end

function hookd.is_array(t)
	return getmetatable(t) == "hookd.array"
end

local REDACTED = "[REDACTED]"

-- nil and null stay what they are (there is nothing to hide); anything else, tables
-- included, becomes the marker text.
function hookd.redact(value, replacement)
	if value == nil or value == null then
		return value
	end
	return replacement or REDACTED
end

local function split_path(path)
	local parts, n = {}, 0
	for part in string.gmatch(path, "[^.]+") do
		n = n + 1
		parts[n] = part
	end
	return parts, n
end

local function redact_at(node, parts, i, n, replacement)
	if type(node) ~= "table" then
		return
	end
	local key = parts[i]
	if key == "*" then
		for k, v in pairs(node) do
			if i == n then
				if v ~= null then
					node[k] = replacement
				end
			else
				redact_at(v, parts, i + 1, n, replacement)
			end
		end
		return
	end
	-- Arrays are indexed by position: "items.1.sku" is the first item's sku.
	if getmetatable(node) == "hookd.array" then
		key = tonumber(key)
		if key == nil then
			return
		end
	end
	local v = node[key]
	if v == nil then
		return
	end
	if i == n then
		if v ~= null then
			node[key] = replacement
		end
	else
		redact_at(v, parts, i + 1, n, replacement)
	end
end

-- Redacts every value at the dotted paths in tbl ("card.number", "items.*.sku"); "*"
-- matches every key of an object or element of an array. Missing paths are ignored.
-- Returns tbl.
function hookd.redact_paths(tbl, paths, replacement)
	if type(paths) == "string" then
		paths = { paths }
	end
	replacement = replacement or REDACTED
	for _, path in pairs(paths or {}) do
		local parts, n = split_path(path)
		if n > 0 then
			redact_at(tbl, parts, 1, n, replacement)
		end
	end
	return tbl
end

-- Value at a dotted path ("customer.address.country"), or nil. Array elements are
-- addressed by position.
function hookd.get(tbl, path)
	local node = tbl
	for part in string.gmatch(path, "[^.]+") do
		if type(node) ~= "table" then
			return nil
		end
		if getmetatable(node) == "hookd.array" then
			part = tonumber(part)
		end
		if part == nil then
			return nil
		end
		node = node[part]
	end
	return node
end

-- True if list (an array, or nil) holds value.
function hookd.contains(list, value)
	for _, v in ipairs(list or {}) do
		if v == value then
			return true
		end
	end
	return false
end

-- True if name matches glob, where "*" stands for any run of characters ("invoice.*",
-- "*.deleted", "*"). Everything else is literal.
function hookd.glob(glob, name)
	if type(glob) ~= "string" or type(name) ~= "string" then
		return false
	end
	local pattern = "^" .. gsub(glob, "[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0")
	pattern = gsub(pattern, "%*", ".*") .. "$"
	return find(name, pattern) ~= nil
end

hookd.sha256_hex = prims.sha256_hex
hookd.hmac_sha256_hex = prims.hmac_sha256_hex
hookd.time = prims.time

-- Logs its arguments (tostring'd, space-separated) at info level, tagged with the policy
-- and message; rate-limited in C.
function hookd.log(...)
	local n = select("#", ...)
	local parts = {}
	for i = 1, n do
		parts[i] = tostring((select(i, ...)))
	end
	prims.log_line(concat(parts, " "))
end

return hookd, json
