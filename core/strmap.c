/* strmap.c - chained hash map; FNV-1a hashing, doubling at load factor 1. */
#include "strmap.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

static size_t strmap_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static int strmap_grow(struct strmap *m)
{
	size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
	struct strmap_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return HOOKD_ENOMEM;
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct strmap_entry *e = m->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->n_buckets = n;
	return HOOKD_OK;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	if (!m->n_buckets)
		return NULL;
	size_t h = strmap_hash(key);
	for (struct strmap_entry *e = m->buckets[h & (m->n_buckets - 1)]; e; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e->value;
	return NULL;
}

int strmap_put(struct strmap *m, const char *key, void *value)
{
	size_t h = strmap_hash(key), len = strlen(key);
	if (m->n_buckets) {
		for (struct strmap_entry *e = m->buckets[h & (m->n_buckets - 1)]; e; e = e->next)
			if (e->hash == h && strcmp(e->key, key) == 0) {
				e->value = value;
				return HOOKD_OK;
			}
	}
	if (m->count >= m->n_buckets && strmap_grow(m) != HOOKD_OK)
		return HOOKD_ENOMEM;
	struct strmap_entry *e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return HOOKD_ENOMEM;
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->value = value;
	e->next = m->buckets[h & (m->n_buckets - 1)];
	m->buckets[h & (m->n_buckets - 1)] = e;
	m->count++;
	return HOOKD_OK;
}

void *strmap_del(struct strmap *m, const char *key)
{
	if (!m->n_buckets)
		return NULL;
	size_t h = strmap_hash(key);
	struct strmap_entry **pp = &m->buckets[h & (m->n_buckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		struct strmap_entry *e = *pp;
		if (e->hash == h && strcmp(e->key, key) == 0) {
			void *v = e->value;
			*pp = e->next;
			free(e);
			m->count--;
			return v;
		}
	}
	return NULL;
}

void strmap_each(const struct strmap *m, void (*fn)(const char *key, void *value, void *arg),
		 void *arg)
{
	for (size_t i = 0; i < m->n_buckets; i++)
		for (struct strmap_entry *e = m->buckets[i]; e; e = e->next)
			fn(e->key, e->value, arg);
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct strmap_entry *e = m->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->n_buckets = m->count = 0;
}
