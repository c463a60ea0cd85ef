-- tenant-headers.lua - add per-tenant headers to every delivery of an endpoint.
--
-- params:
--   headers  {"name": "value"}; in values, {app_id}, {endpoint_id}, {type} and {id} are
--            replaced by the message's
-- Header names and values are checked by hookd (no CR/LF; hookd's own headers such as
-- webhook-signature cannot be set). Example:
--   {"headers": {"x-tenant": "acme", "x-hookd-app": "{app_id}"}}
return {
	transform = function(msg, ctx)
		local vars = { app_id = ctx.app_id, endpoint_id = ctx.endpoint_id, type = msg.type,
			id = msg.id }
		for name, value in pairs(ctx.params.headers or {}) do
			msg.headers[name] = (string.gsub(tostring(value), "{([%w_]+)}", function(k)
				return vars[k]
			end))
		end
		return msg
	end,
}
