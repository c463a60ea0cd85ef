-- redact-pii.lua - replace personal data in the payload before it leaves.
--
-- params:
--   paths        dotted paths into data to redact; "*" matches every key or array element
--                (default: common PII fields, see DEFAULT_PATHS)
--   replacement  text that replaces each value (default "[REDACTED]")
-- Missing paths are ignored; null stays null. Example:
--   {"paths": ["customer.email", "card.number", "items.*.sku"]}
local DEFAULT_PATHS = {
	"customer.email", "customer.phone", "customer.name", "customer.address",
	"card.number", "card.cvc", "billing_address", "shipping_address", "email", "phone",
}

return {
	transform = function(msg, ctx)
		local paths = ctx.params.paths or DEFAULT_PATHS
		hookd.redact_paths(msg.data, paths, ctx.params.replacement)
		return msg
	end,
}
