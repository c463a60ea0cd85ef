/* fuzz_policy_json.c - libFuzzer target: any JSON payload through a policy that reads and
 * rewrites it (JSON -> Lua tables -> JSON), and through hookd.json.decode inside the
 * sandbox. Must never crash; when it delivers, untouched values round-trip. */
#include "err.h"
#include "policy.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct policy_engine *engine;

static const char policy_src[] =
	"return { transform = function(m)\n"
	"  hookd.redact_paths(m.data, {'card.number', 'items.*.sku'})\n"
	"  local ok, v = pcall(hookd.json.decode, hookd.json.encode(m.data))\n"
	"  m.data.copy = ok and v or nil\n"
	"  return m end }";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	json_t *payload, *env;
	struct policy_input in = {0};
	struct policy_result r;

	if (!engine) {
		struct policy_limits lim = {200, 16u << 20};
		if (policy_engine_new(&lim, &engine) != HOOKD_OK ||
		    policy_engine_put(engine, "p", policy_src, strlen(policy_src), err, sizeof(err)) !=
			    HOOKD_OK)
			abort();
	}
	payload = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (!json_is_object(payload)) {
		json_decref(payload);
		return 0;
	}
	env = json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", "msg_1", "type", "a.b", "timestamp", "t",
			"version", "1", "data", payload);
	in.envelope = env;
	in.endpoint_id = "ep";
	in.app_id = "app";
	memset(&r, 0, sizeof(r));
	if (policy_run(engine, "p", &in, &r) == HOOKD_OK && r.action == POLICY_DELIVER) {
		char *text = json_dumps(r.envelope, JSON_COMPACT);
		if (!text)
			abort(); /* a delivered body must always serialize */
		free(text);
	}
	policy_result_free(&r);
	json_decref(env);
	return 0;
}
