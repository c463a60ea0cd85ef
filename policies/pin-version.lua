-- pin-version.lua - keep an endpoint on an older event version by reshaping newer ones.
--
-- params:
--   version  the version the endpoint expects (required)
--   from     only reshape events of this version (default: any other version)
--   map      {"old.path": "new.path"}: each old field gets the value at the new path
--   drop     list of new paths that the old version did not have
-- Example (v2 moved amount_cents/currency into an amount object):
--   {"version": "1", "from": "2",
--    "map": {"amount_cents": "amount.value", "currency": "amount.currency"},
--    "drop": ["amount"]}
local function split(path)
	local parts = {}
	for part in string.gmatch(path, "[^.]+") do
		parts[#parts + 1] = part
	end
	return parts
end

local function set(tbl, path, value)
	local parts = split(path)
	local node = tbl
	for i = 1, #parts - 1 do
		if type(node[parts[i]]) ~= "table" then
			node[parts[i]] = hookd.object()
		end
		node = node[parts[i]]
	end
	node[parts[#parts]] = value
end

local function remove(tbl, path)
	local parts = split(path)
	local node = tbl
	for i = 1, #parts - 1 do
		node = node[parts[i]]
		if type(node) ~= "table" then
			return
		end
	end
	node[parts[#parts]] = nil
end

return {
	transform = function(msg, ctx)
		local p = ctx.params
		if p.version == nil then
			error("pin-version needs params.version")
		end
		if msg.version == p.version or (p.from ~= nil and msg.version ~= p.from) then
			return msg
		end
		local values = {}
		for old, new in pairs(p.map or {}) do
			values[old] = hookd.get(msg.data, new)
		end
		for _, path in ipairs(p.drop or {}) do
			remove(msg.data, path)
		end
		for old, value in pairs(values) do
			set(msg.data, old, value)
		end
		msg.version = p.version
		return msg
	end,
}
