/* json_scan.c - JSON validation without a tree (json_scan.h says what is accepted). */
#include "json_scan.h"

#include "err.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One key seen, for the duplicate check: which object it is in (1, 2, ... in text order;
 * 0 marks a free slot; an object takes 2 bytes at least, so 32 bits number those of any
 * text under 8 GiB), a hash of its decoded bytes, and where its text is. */
struct scan_key {
	uint32_t obj, hash;
	size_t off, len;
	int escaped;
};

/* 64 slots, half of them usable (linear probing stays short below half full), on the stack:
 * a text of up to 32 keys in all (bench/publish.c's body has 6) needs no allocation. */
#define SCAN_INLINE_KEYS 64

struct scan {
	const unsigned char *b;
	size_t len, i;
	struct json_scan *out;
	struct scan_key *keys; /* inline or heap; cap slots, a power of two */
	size_t n_keys, cap;
	uint32_t n_objects;
	/* Per open container: its object number, or 0 for an array. */
	uint32_t open[JSON_SCAN_MAX_DEPTH];
	size_t depth; /* open containers */
	struct scan_key inline_keys[SCAN_INLINE_KEYS];
};

static int scan_fail(struct scan *s, const char *why)
{
	s->out->err = why;
	s->out->err_pos = s->i;
	return HOOKD_EINVAL;
}

static void scan_ws(struct scan *s)
{
	while (s->i < s->len) {
		unsigned char c = s->b[s->i];
		if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
			return;
		s->i++;
	}
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits at p (n bytes available), or -1. */
static long hex4(const unsigned char *p, size_t n)
{
	long v = 0;
	if (n < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		int h = hexval(p[k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at p (n available), or 0: jansson's
 * utf8_check_first/utf8_check_full (no overlong form, no surrogate, at most U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0], cp, min;
	size_t need;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	if (n < need)
		return 0;
	for (size_t k = 1; k < need; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

/* Whether any of the 8 bytes in x is below 0x20, '"', '\\' or 0x80 and above: the bytes a
 * string's fast path stops at. Exact for "any", as the classic "has zero byte" test. */
static int swar_special(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
	uint64_t t = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | x;
	return (t & high) != 0;
}

/* s->i at the opening quote; on success s->i is past the closing quote and *escaped tells
 * whether the contents hold a backslash. */
static int scan_string(struct scan *s, int *escaped)
{
	const unsigned char *b = s->b;
	size_t len = s->len, i = s->i + 1;

	*escaped = 0;
	for (;;) {
		while (i + 8 <= len) {
			uint64_t x;
			memcpy(&x, b + i, 8);
			if (swar_special(x))
				break;
			i += 8;
		}
		if (i >= len) {
			s->i = i;
			return scan_fail(s, "unterminated string");
		}
		unsigned char c = b[i];
		if (c == '"') {
			s->i = i + 1;
			return HOOKD_OK;
		}
		if (c < 0x20) {
			s->i = i;
			return scan_fail(s, "control character in a string");
		}
		if (c < 0x80 && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t n = utf8_seq(b + i, len - i);
			if (!n) {
				s->i = i;
				return scan_fail(s, "invalid UTF-8");
			}
			i += n;
			continue;
		}
		*escaped = 1;
		if (i + 1 >= len) {
			s->i = i;
			return scan_fail(s, "unterminated string");
		}
		c = b[i + 1];
		if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
		    c == 'r' || c == 't') {
			i += 2;
			continue;
		}
		s->i = i;
		if (c != 'u')
			return scan_fail(s, "invalid escape");
		long v = hex4(b + i + 2, len - i - 2);
		if (v < 0)
			return scan_fail(s, "invalid \\u escape");
		if (v == 0)
			return scan_fail(s, "\\u0000 in a string");
		if (v >= 0xdc00 && v <= 0xdfff)
			return scan_fail(s, "lone low surrogate");
		i += 6;
		if (v >= 0xd800 && v <= 0xdbff) {
			long lo = i + 1 < len && b[i] == '\\' && b[i + 1] == 'u'
					  ? hex4(b + i + 2, len - i - 2) : -1;
			if (lo < 0xdc00 || lo > 0xdfff)
				return scan_fail(s, "high surrogate without a low one");
			i += 6;
		}
	}
}

/* Decodes the escape at s[*i] (a backslash) into out (up to 4 bytes), returns how many. */
static size_t decode_escape(const unsigned char *s, size_t *i, unsigned char out[4])
{
	unsigned char c = s[*i + 1];
	unsigned long cp;

	*i += 2;
	switch (c) {
	case 'b': out[0] = '\b'; return 1;
	case 'f': out[0] = '\f'; return 1;
	case 'n': out[0] = '\n'; return 1;
	case 'r': out[0] = '\r'; return 1;
	case 't': out[0] = '\t'; return 1;
	case 'u': break;
	default: out[0] = c; return 1; /* " \ / */
	}
	cp = (unsigned long)hex4(s + *i, 4);
	*i += 4;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		unsigned long lo = (unsigned long)hex4(s + *i + 2, 4);
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		*i += 6;
	}
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xc0 | (cp >> 6));
		out[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xe0 | (cp >> 12));
		out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (unsigned char)(0xf0 | (cp >> 18));
	out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t json_scan_string(const char *str, size_t n, char *out, size_t cap)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, w = 0;

	while (i < n) {
		const unsigned char *bs = memchr(s + i, '\\', n - i);
		size_t run = bs ? (size_t)(bs - (s + i)) : n - i;
		if (w < cap)
			memcpy(out + w, s + i, run < cap - w ? run : cap - w);
		w += run;
		i += run;
		if (i < n) {
			unsigned char u[4];
			size_t k = decode_escape(s, &i, u);
			for (size_t j = 0; j < k; j++, w++)
				if (w < cap)
					out[w] = (char)u[j];
		}
	}
	return w;
}

/* A hash of a key's decoded bytes, so that "a" and "\u0061" collide as they must. Fed 8 bytes
 * at a time (a multiply per word, not per byte as FNV would), in pieces of any size: the
 * result depends only on the bytes. */
struct key_hasher {
	uint64_t h, w; /* the hash so far; the word being filled */
	unsigned n;    /* bytes in w */
	size_t len;
};

static void hasher_word(struct key_hasher *k, uint64_t w)
{
	k->h = (k->h ^ w) * 0x9e3779b97f4a7c15ull;
	k->h ^= k->h >> 29;
}

static void hasher_add(struct key_hasher *k, const unsigned char *p, size_t n)
{
	k->len += n;
	while (n && k->n) { /* finish a partial word first */
		k->w |= (uint64_t)*p++ << (8 * k->n);
		n--;
		if (++k->n == 8) {
			hasher_word(k, k->w);
			k->w = 0;
			k->n = 0;
		}
	}
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		hasher_word(k, w); /* little- or big-endian alike: only equality matters */
	}
	for (; n; n--)
		k->w |= (uint64_t)*p++ << (8 * k->n++);
}

static uint32_t key_hash(const unsigned char *s, size_t n, int escaped)
{
	struct key_hasher k = {0, 0, 0, 0};
	size_t i = 0;
	while (i < n) {
		const unsigned char *bs = escaped ? memchr(s + i, '\\', n - i) : NULL;
		size_t run = bs ? (size_t)(bs - (s + i)) : n - i;
		hasher_add(&k, s + i, run);
		i += run;
		if (i < n) {
			unsigned char u[4];
			size_t len = decode_escape(s, &i, u);
			hasher_add(&k, u, len);
		}
	}
	hasher_word(&k, k.w ^ ((uint64_t)k.len << 56));
	return (uint32_t)(k.h ^ (k.h >> 32));
}

/* Whether two keys of the text decode to the same bytes. HOOKD_ENOMEM is reported as
 * different keys with *rc set. */
static int key_equal(const struct scan *s, const struct scan_key *a, const struct scan_key *b,
		     int *rc)
{
	const char *t = (const char *)s->b;
	char *da, *db;
	size_t na, nb;
	int eq;

	if (!a->escaped && !b->escaped)
		return a->len == b->len && memcmp(t + a->off, t + b->off, a->len) == 0;
	/* Rare: an escaped key whose hash matches another key of the same object. */
	da = malloc(a->len + 1);
	db = malloc(b->len + 1);
	if (!da || !db) {
		free(da);
		free(db);
		*rc = HOOKD_ENOMEM;
		return 0;
	}
	na = json_scan_string(t + a->off, a->len, da, a->len);
	nb = json_scan_string(t + b->off, b->len, db, b->len);
	eq = na == nb && memcmp(da, db, na) == 0;
	free(da);
	free(db);
	return eq;
}

static size_t key_slot(const struct scan_key *k, size_t cap)
{
	return ((size_t)k->hash ^ ((size_t)k->obj * 0x9e3779b1u)) & (cap - 1);
}

static int keys_grow(struct scan *s)
{
	size_t cap = s->cap * 2;
	struct scan_key *t = calloc(cap, sizeof(*t));
	if (!t)
		return HOOKD_ENOMEM;
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->keys[i].obj)
			continue;
		size_t j = key_slot(&s->keys[i], cap);
		while (t[j].obj)
			j = (j + 1) & (cap - 1);
		t[j] = s->keys[i];
	}
	if (s->keys != s->inline_keys)
		free(s->keys);
	s->keys = t;
	s->cap = cap;
	return HOOKD_OK;
}

/* Records key k (of object k->obj); HOOKD_EINVAL if that object has it already. */
static int keys_add(struct scan *s, struct scan_key *k)
{
	int rc = HOOKD_OK;
	size_t j;

	if ((s->n_keys + 1) * 2 > s->cap && (rc = keys_grow(s)) != HOOKD_OK)
		return rc;
	k->hash = key_hash(s->b + k->off, k->len, k->escaped);
	for (j = key_slot(k, s->cap); s->keys[j].obj; j = (j + 1) & (s->cap - 1)) {
		const struct scan_key *o = &s->keys[j];
		if (o->obj == k->obj && o->hash == k->hash && key_equal(s, o, k, &rc)) {
			s->i = k->off - 1;
			return scan_fail(s, "duplicate object key");
		}
		if (rc != HOOKD_OK)
			return rc;
	}
	s->keys[j] = *k;
	s->n_keys++;
	return HOOKD_OK;
}

/* Whether the real number text p (n bytes) overflows a double, as strtod tells (1, 0, or -1
 * when out of memory). Called only for numbers that may be that large (scan_number). */
static int real_overflows(const unsigned char *p, size_t n)
{
	char small[64], *t = n < sizeof(small) ? small : malloc(n + 1);
	double v;
	int over;

	if (!t)
		return -1;
	memcpy(t, p, n);
	t[n] = 0;
	errno = 0;
	v = strtod(t, NULL);
	over = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
	if (t != small)
		free(t);
	return over;
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* s->i at '-' or a digit; on success s->i is past the number. */
static int scan_number(struct scan *s)
{
	const unsigned char *b = s->b;
	size_t len = s->len, start = s->i, i = s->i, int_start, int_digits;
	int neg = 0, real = 0;

	if (b[i] == '-') {
		neg = 1;
		i++;
	}
	int_start = i;
	if (i < len && b[i] == '0') {
		i++;
		if (i < len && is_digit(b[i])) {
			s->i = i;
			return scan_fail(s, "leading zero");
		}
	} else if (i < len && is_digit(b[i])) {
		while (i < len && is_digit(b[i]))
			i++;
	} else {
		s->i = i;
		return scan_fail(s, "invalid number");
	}
	int_digits = i - int_start;
	/* Decimal exponent bound of the value: it is below 10^(int_digits + exp). */
	long long mag = b[int_start] == '0' ? 0 : (long long)int_digits;
	if (i < len && b[i] == '.') {
		real = 1;
		i++;
		if (i >= len || !is_digit(b[i])) {
			s->i = i;
			return scan_fail(s, "a digit must follow '.'");
		}
		while (i < len && is_digit(b[i]))
			i++;
	}
	if (i < len && (b[i] == 'e' || b[i] == 'E')) {
		long long e = 0;
		int eneg = 0;
		real = 1;
		i++;
		if (i < len && (b[i] == '+' || b[i] == '-'))
			eneg = b[i++] == '-';
		if (i >= len || !is_digit(b[i])) {
			s->i = i;
			return scan_fail(s, "a digit must follow the exponent");
		}
		for (; i < len && is_digit(b[i]); i++)
			if (e < 1000000)
				e = e * 10 + (b[i] - '0');
		mag += eneg ? -e : e;
	}
	if (!real) {
		/* jansson reads integers with strtoll and refuses what does not fit. */
		static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
		if (int_digits > 19 ||
		    (int_digits == 19 && memcmp(b + int_start, neg ? min : max, 19) > 0)) {
			s->i = start;
			return scan_fail(s, "integer out of range");
		}
	} else if (mag > 300) {
		/* |value| < 10^mag, so below 1e300 no double overflows; past that, strtod says.
		 * A number ending the text leaves it invalid whatever its value. */
		int over = i < len ? real_overflows(b + start, i - start) : 0;
		if (over < 0)
			return HOOKD_ENOMEM;
		if (over) {
			s->i = start;
			return scan_fail(s, "real number overflow");
		}
	}
	s->i = i;
	return HOOKD_OK;
}

static int scan_literal(struct scan *s)
{
	static const char *const words[] = {"true", "false", "null"};
	for (size_t k = 0; k < 3; k++) {
		size_t n = strlen(words[k]);
		if (s->len - s->i >= n && memcmp(s->b + s->i, words[k], n) == 0) {
			s->i += n;
			return HOOKD_OK;
		}
	}
	return scan_fail(s, "invalid token");
}

/* The whole text, as an explicit state machine (no recursion: 2048 levels). */
static int scan_text(struct scan *s)
{
	struct json_scan *out = s->out;
	struct json_member *m = NULL; /* the top-level member being read */
	int rc, esc;

	scan_ws(s);
	if (s->i >= s->len || (s->b[s->i] != '{' && s->b[s->i] != '['))
		return scan_fail(s, "'{' or '[' expected");
	out->top = (char)s->b[s->i];

value:
	/* s->i at a value (whitespace skipped), inside s->depth containers. */
	if (s->i >= s->len)
		return scan_fail(s, "value expected");
	if (s->depth + 1 > JSON_SCAN_MAX_DEPTH)
		return scan_fail(s, "maximum nesting depth reached");
	switch (s->b[s->i]) {
	case '{':
		s->open[s->depth++] = ++s->n_objects;
		s->i++;
		scan_ws(s);
		if (s->i < s->len && s->b[s->i] == '}') {
			s->i++;
			s->depth--;
			goto after;
		}
		goto key;
	case '[':
		s->open[s->depth++] = 0;
		s->i++;
		scan_ws(s);
		if (s->i < s->len && s->b[s->i] == ']') {
			s->i++;
			s->depth--;
			goto after;
		}
		goto value;
	case '"':
		if ((rc = scan_string(s, &esc)) != HOOKD_OK)
			return rc;
		if (m && s->depth == 1)
			m->value_escaped = esc;
		goto after;
	case 't': case 'f': case 'n':
		if ((rc = scan_literal(s)) != HOOKD_OK)
			return rc;
		goto after;
	default:
		if (s->b[s->i] != '-' && !is_digit(s->b[s->i]))
			return scan_fail(s, "invalid token");
		if ((rc = scan_number(s)) != HOOKD_OK)
			return rc;
		goto after;
	}

key:
	/* s->i at a key (whitespace skipped) of the object open[depth - 1]. */
	if (s->i >= s->len || s->b[s->i] != '"')
		return scan_fail(s, "string or '}' expected");
	{
		struct scan_key k = {.obj = s->open[s->depth - 1], .off = s->i + 1};
		if ((rc = scan_string(s, &k.escaped)) != HOOKD_OK)
			return rc;
		k.len = s->i - 1 - k.off;
		if ((rc = keys_add(s, &k)) != HOOKD_OK)
			return rc;
		if (s->depth == 1) {
			m = out->n_members < JSON_SCAN_MEMBERS ? &out->member[out->n_members] : NULL;
			out->n_members++;
			if (m) {
				m->key.off = k.off;
				m->key.len = k.len;
				m->key_escaped = k.escaped;
				m->value_escaped = 0;
			}
		}
	}
	scan_ws(s);
	if (s->i >= s->len || s->b[s->i] != ':')
		return scan_fail(s, "':' expected");
	s->i++;
	scan_ws(s);
	if (m && s->depth == 1)
		m->value.off = s->i;
	goto value;

after:
	/* s->i just past a value. */
	if (s->depth == 0) {
		scan_ws(s);
		return s->i == s->len ? HOOKD_OK : scan_fail(s, "end of text expected");
	}
	if (m && s->depth == 1)
		m->value.len = s->i - m->value.off;
	scan_ws(s);
	if (s->i >= s->len)
		return scan_fail(s, s->open[s->depth - 1] ? "'}' expected" : "']' expected");
	if (s->b[s->i] == ',') {
		s->i++;
		scan_ws(s);
		if (s->open[s->depth - 1])
			goto key;
		goto value;
	}
	if (s->b[s->i] == (s->open[s->depth - 1] ? '}' : ']')) {
		s->i++;
		s->depth--;
		goto after;
	}
	return scan_fail(s, s->open[s->depth - 1] ? "'}' expected" : "']' expected");
}

int json_scan(const char *buf, size_t len, struct json_scan *out)
{
	/* ~10 KiB, mostly the stack of open containers: on the caller's stack, like the
	 * recursion it replaces would be. */
	struct scan s;
	int rc;

	memset(out, 0, sizeof(*out));
	s.b = (const unsigned char *)buf;
	s.len = len;
	s.i = 0;
	s.out = out;
	s.keys = s.inline_keys;
	s.cap = SCAN_INLINE_KEYS;
	s.n_keys = 0;
	s.n_objects = 0;
	s.depth = 0;
	memset(s.inline_keys, 0, sizeof(s.inline_keys));
	rc = scan_text(&s);
	if (s.keys != s.inline_keys)
		free(s.keys);
	if (rc != HOOKD_OK)
		out->n_members = 0;
	return rc;
}
