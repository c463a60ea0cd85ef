/* id.h - sortable unique ids: a prefix ("msg_", "ep_", "app_") and 26 Crockford base32
 * characters of a 48-bit millisecond time and 80 random bits (ULID layout). Ids made by
 * one process are strictly increasing, so LMDB key order is creation order. */
#ifndef HOOKD_ID_H
#define HOOKD_ID_H

#include <stddef.h>
#include <stdint.h>

#define ID_BODY_LEN 26
#define ID_MAX 48 /* prefix + body + NUL, with room */

/* Writes prefix + 26 chars into out (ID_MAX bytes). Thread-safe. */
void id_make(const char *prefix, int64_t now_ms, char out[ID_MAX]);

/* true if text is a valid user-chosen id: [A-Za-z0-9_-]{1,64}. */
int id_valid(const char *text);

/* The creation time (ms) in an id made by id_make (prefix of prefix_len bytes), or -1. */
int64_t id_time_ms(const char *id, size_t prefix_len);

#endif
