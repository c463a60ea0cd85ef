-- route-threshold.lua - deliver only events whose amount and region match thresholds.
--
-- params:
--   amount_path  dotted path of the amount in data (default "amount")
--   min, max     bounds on the amount, inclusive (each optional)
--   region_path  dotted path of the region in data (default "region")
--   regions      list of regions to deliver (optional; absent = any region)
-- An event without an amount is dropped when min or max is set. Example:
--   {"min": 10000, "regions": ["eu-west", "eu-central"]}
return {
	filter = function(msg, ctx)
		local p = ctx.params
		if p.min ~= nil or p.max ~= nil then
			local amount = tonumber(hookd.get(msg.data, p.amount_path or "amount"))
			if amount == nil then
				return false, "no amount"
			end
			if p.min ~= nil and amount < p.min then
				return false, "amount " .. amount .. " below " .. p.min
			end
			if p.max ~= nil and amount > p.max then
				return false, "amount " .. amount .. " above " .. p.max
			end
		end
		if p.regions ~= nil then
			local region = hookd.get(msg.data, p.region_path or "region")
			if not hookd.contains(p.regions, region) then
				return false, "region " .. tostring(region) .. " not routed here"
			end
		end
		return true
	end,
}
