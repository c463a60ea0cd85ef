/* fuzz_jsontext.c - libFuzzer target: the escaping writer must always produce a JSON string
 * that reads back. */
#include "jsontext.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsontext_buf b = {0};
	json_t *j;

	jsontext_string(&b, (const char *)data, size);
	j = json_loads(b.data, JSON_DECODE_ANY, NULL);
	if (!json_is_string(j))
		abort();
	json_decref(j);
	jsontext_free(&b);
	return 0;
}
