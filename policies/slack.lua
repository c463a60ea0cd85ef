-- slack.lua - reshape an event into a Slack incoming-webhook message.
--
-- The body becomes {"text": ..., "blocks": [...]} (msg.body replaces the whole event),
-- which a hooks.slack.com URL accepts as is.
-- params:
--   template  text of the message; {type}, {id}, {timestamp} and {data.PATH} are
--             replaced (default "*{type}* ({id})")
--   fields    list of data paths shown as a fields section, at most 10 (Slack's limit)
-- Values are escaped for Slack's mrkdwn (&, <, >). Example:
--   {"template": "Invoice {data.number} paid", "fields": ["amount", "customer.name"]}
local MAX_FIELDS = 10

local function escape(s)
	return (string.gsub(s, "[&<>]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;" }))
end

local function text_of(value)
	if value == nil or value == hookd.null then
		return "-"
	end
	if type(value) == "table" then
		return hookd.json.encode(value)
	end
	return tostring(value)
end

local function render(template, msg)
	return (string.gsub(template, "{([%w_.]+)}", function(key)
		local value
		if string.sub(key, 1, 5) == "data." then
			value = hookd.get(msg.data, string.sub(key, 6))
		else
			value = msg[key]
		end
		return escape(text_of(value))
	end))
end

return {
	transform = function(msg, ctx)
		local text = render(ctx.params.template or "*{type}* ({id})", msg)
		local blocks = hookd.array({
			{ type = "section", text = { type = "mrkdwn", text = text } },
		})
		local fields = hookd.array()
		for i, path in ipairs(ctx.params.fields or {}) do
			if i > MAX_FIELDS then
				break
			end
			fields[#fields + 1] = {
				type = "mrkdwn",
				text = "*" .. escape(path) .. "*\n" .. escape(text_of(hookd.get(msg.data, path))),
			}
		end
		if #fields > 0 then
			blocks[#blocks + 1] = { type = "section", fields = fields }
		end
		msg.body = { text = text, blocks = blocks }
		return msg
	end,
}
