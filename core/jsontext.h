/* jsontext.h - small JSON text helpers for the hot paths, where building and dumping a
 * jansson tree would cost more than the work itself: a growable buffer, and writers of
 * escaped strings (records written per attempt), numbers, and a jansson tree's compact text.
 * (Finding the members of a publish body is json_scan.h's.) */
#ifndef HOOKD_JSONTEXT_H
#define HOOKD_JSONTEXT_H

#include <stddef.h>

/* A growable output buffer (curl's dynbuf idea, minimal). */
struct jsontext_buf {
	char *data; /* NUL-terminated, owned; NULL until the first append */
	size_t len, cap;
	int failed; /* an allocation failed: data is incomplete */
};

void jsontext_raw(struct jsontext_buf *b, const char *s, size_t n);
void jsontext_cstr(struct jsontext_buf *b, const char *s);
/* Appends "..." with JSON escapes; bytes that are not valid UTF-8, and NUL, become U+FFFD,
 * so any response body can be stored and read back (jansson refuses \u0000). */
void jsontext_string(struct jsontext_buf *b, const char *s, size_t n);
void jsontext_long(struct jsontext_buf *b, long long v);
void jsontext_free(struct jsontext_buf *b);

/* Appends the compact text of a jansson value, as json_dumps(v, JSON_COMPACT) writes it
 * (keys in insertion order, reals as %.17g with ".0" added to whole numbers) at a third of
 * its cost: a policy's output is serialized once per delivery. HOOKD_EINVAL for a string
 * holding NUL (the caller falls back to json_dumps, which writes \u0000). */
typedef struct json_t json_t;
int jsontext_json(struct jsontext_buf *b, const json_t *v);

#endif
