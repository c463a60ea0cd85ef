/* fuzz_config.c - libFuzzer target: any bytes as a YAML configuration. Must never crash,
 * leak or read out of bounds; either a config or an error message. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char err[512];
	config_defaults(&c);
	config_load_string(&c, (const char *)data, size, "fuzz.yaml", err, sizeof(err));
	config_free(&c);
	return 0;
}
