/* fuzz_json_scan.c - libFuzzer target: json_scan accepts exactly what jansson accepts with
 * the API's flags (JSON_REJECT_DUPLICATES), but for a NUL byte (json_scan.h), and for an accepted object every recorded member
 * decodes to jansson's key and its value text parses to jansson's value. */
#include "err.h"
#include "json_scan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data;
	json_t *j = json_loadb(t, size, JSON_REJECT_DUPLICATES, NULL), *v;
	struct json_scan sc;
	int rc = json_scan(t, size, &sc);
	const char *key;
	size_t rank = 0;

	if (rc == HOOKD_ENOMEM) {
		json_decref(j);
		return 0;
	}
	/* jansson skips a NUL byte right after a number or literal; the scanner refuses every
	 * NUL (json_scan.h): the one disagreement allowed. */
	if ((rc == HOOKD_OK) != (j != NULL) && !(j && memchr(t, 0, size)))
		abort();
	if (rc != HOOKD_OK) {
		json_decref(j);
		return 0;
	}
	if (j && json_is_object(j)) {
		if (sc.top != '{' || sc.n_members != json_object_size(j))
			abort();
		json_object_foreach(j, key, v) {
			if (rank >= JSON_SCAN_MEMBERS)
				break;
			const struct json_member *m = &sc.member[rank++];
			char *k = malloc(m->key.len + 1);
			size_t kn = json_scan_string(t + m->key.off, m->key.len, k, m->key.len);
			json_t *mv = json_loadb(t + m->value.off, m->value.len, JSON_DECODE_ANY, NULL);
			if (kn != strlen(key) || memcmp(k, key, kn) != 0 || !json_equal(mv, v))
				abort();
			free(k);
			json_decref(mv);
		}
	} else if (j && sc.top != '[') {
		abort();
	}
	json_decref(j);
	return 0;
}
