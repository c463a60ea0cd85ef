/* strmap.h - a string-keyed hash map of pointers (chained, power-of-two buckets).
 * Keys are copied and owned by the map; values are the caller's. Not thread-safe. */
#ifndef HOOKD_STRMAP_H
#define HOOKD_STRMAP_H

#include <stddef.h>

struct strmap_entry {
	struct strmap_entry *next;
	void *value;
	size_t hash;
	char key[]; /* owned copy */
};

struct strmap {
	struct strmap_entry **buckets;
	size_t n_buckets; /* power of two, or 0 before first insert */
	size_t count;
};

/* Returns the value for key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* Inserts or replaces; returns HOOKD_OK or HOOKD_ENOMEM. */
int strmap_put(struct strmap *m, const char *key, void *value);
/* Removes key and returns its value (NULL if absent). */
void *strmap_del(struct strmap *m, const char *key);
/* Calls fn for every entry (order unspecified). fn must not change the map. */
void strmap_each(const struct strmap *m, void (*fn)(const char *key, void *value, void *arg),
		 void *arg);
/* Frees the map's own memory (not the values). */
void strmap_free(struct strmap *m);

#endif
