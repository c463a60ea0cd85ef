-- drop-by-type-or-field.lua - drop events by type (globs) or by the value of a data field.
--
-- params:
--   types   list of event type globs to drop ("test.*", "invoice.draft"; "*" = any run)
--   field   dotted path into data ("status", "customer.tier")
--   values  list of values of `field` that drop the event
-- Everything else is delivered unchanged. Example:
--   {"types": ["test.*"], "field": "status", "values": ["void", "draft"]}
return {
	filter = function(msg, ctx)
		local p = ctx.params
		for _, glob in ipairs(p.types or {}) do
			if hookd.glob(glob, msg.type) then
				return false, "type " .. msg.type .. " matches " .. glob
			end
		end
		if p.field ~= nil and p.values ~= nil then
			local value = hookd.get(msg.data, p.field)
			if value ~= nil and hookd.contains(p.values, value) then
				return false, "data." .. p.field .. " is " .. tostring(value)
			end
		end
		return true
	end,
}
