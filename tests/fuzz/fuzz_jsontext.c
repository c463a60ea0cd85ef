/* fuzz_jsontext.c - libFuzzer target: the publish path's JSON splice. For any text jansson
 * accepts as an object, the "data" span found must be valid JSON equal to jansson's value;
 * and the escaping writer must always produce a JSON string. */
#include "err.h"
#include "jsontext.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	size_t off, len;
	struct jsontext_buf b = {0};

	if (json_is_object(j) &&
	    jsontext_member((const char *)data, size, "data", &off, &len) == HOOKD_OK) {
		json_t *v = json_loadb((const char *)data + off, len, JSON_DECODE_ANY, NULL);
		if (!v || !json_equal(v, json_object_get(j, "data")))
			abort();
		json_decref(v);
	}
	json_decref(j);
	jsontext_string(&b, (const char *)data, size);
	j = json_loads(b.data, JSON_DECODE_ANY, NULL);
	if (!json_is_string(j))
		abort();
	json_decref(j);
	jsontext_free(&b);
	return 0;
}
