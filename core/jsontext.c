/* jsontext.c - an escaping JSON writer. */
#include "jsontext.h"

#include "err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct jsontext_buf *b, size_t more)
{
	if (b->failed)
		return 0;
	if (b->len + more + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + more + 1)
			cap *= 2;
		char *n = realloc(b->data, cap);
		if (!n) {
			b->failed = 1;
			return 0;
		}
		b->data = n;
		b->cap = cap;
	}
	return 1;
}

void jsontext_raw(struct jsontext_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = 0;
}

void jsontext_cstr(struct jsontext_buf *b, const char *s)
{
	jsontext_raw(b, s, strlen(s));
}

void jsontext_long(struct jsontext_buf *b, long long v)
{
	char num[32];
	int n = snprintf(num, sizeof(num), "%lld", v);
	jsontext_raw(b, num, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t need;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4, min = 0x10000;
	else
		return 0;
	if (n < need)
		return 0;
	unsigned cp = c & (0x7f >> need);
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

void jsontext_string(struct jsontext_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	/* Worst case: every byte becomes \ufffd-sized (6 bytes) or \u00XX. */
	if (!reserve(b, n * 6 + 2))
		return;
	b->data[b->len++] = '"';
	while (i < n) {
		unsigned c = p[i];
		size_t u;
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		memcpy(b->data + b->len, s + i - run, run);
		b->len += run;
		run = 0;
		if (c == '"' || c == '\\') {
			b->data[b->len++] = '\\';
			b->data[b->len++] = (char)c;
			i++;
		} else if (c == 0) {
			/* NUL is valid JSON (\u0000) but jansson refuses it when reading back, which
			 * would hide the whole record: stored as U+FFFD like other unreadable bytes. */
			memcpy(b->data + b->len, "\\ufffd", 6);
			b->len += 6;
			i++;
		} else if (c < 0x20) {
			static const char hex[] = "0123456789abcdef";
			const char *esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
			if (esc) {
				memcpy(b->data + b->len, esc, 2);
				b->len += 2;
			} else {
				memcpy(b->data + b->len, "\\u00", 4);
				b->data[b->len + 4] = hex[c >> 4];
				b->data[b->len + 5] = hex[c & 15];
				b->len += 6;
			}
			i++;
		} else if ((u = utf8_len(p + i, n - i)) > 0) {
			memcpy(b->data + b->len, s + i, u);
			b->len += u;
			i += u;
		} else {
			memcpy(b->data + b->len, "\\ufffd", 6);
			b->len += 6;
			i++;
		}
	}
	memcpy(b->data + b->len, s + i - run, run);
	b->len += run;
	b->data[b->len++] = '"';
	b->data[b->len] = 0;
}

void jsontext_free(struct jsontext_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
}

int jsontext_json(struct jsontext_buf *b, const json_t *v)
{
	const char *key, *s;
	json_t *x;
	size_t i, n;
	char num[40];
	int rc;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		jsontext_raw(b, "{", 1);
		i = 0;
		json_object_foreach((json_t *)v, key, x) {
			if (i++)
				jsontext_raw(b, ",", 1);
			jsontext_string(b, key, strlen(key));
			jsontext_raw(b, ":", 1);
			if ((rc = jsontext_json(b, x)) != HOOKD_OK)
				return rc;
		}
		jsontext_raw(b, "}", 1);
		break;
	case JSON_ARRAY:
		jsontext_raw(b, "[", 1);
		json_array_foreach((json_t *)v, i, x) {
			if (i)
				jsontext_raw(b, ",", 1);
			if ((rc = jsontext_json(b, x)) != HOOKD_OK)
				return rc;
		}
		jsontext_raw(b, "]", 1);
		break;
	case JSON_STRING:
		s = json_string_value(v);
		n = json_string_length(v);
		if (memchr(s, 0, n))
			return HOOKD_EINVAL;
		jsontext_string(b, s, n);
		break;
	case JSON_INTEGER:
		jsontext_long(b, (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		n = (size_t)snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		if (n >= sizeof(num) - 2)
			return HOOKD_EINVAL;
		if (!strpbrk(num, ".eE")) {
			memcpy(num + n, ".0", 3);
			n += 2;
		}
		/* As jansson spells exponents: no '+', no leading zeros ("1e300", "1e-7"). */
		char *e = strchr(num, 'e');
		if (e) {
			char *d = e + 1, *z;
			if (*d == '+')
				memmove(d, d + 1, strlen(d + 1) + 1);
			else if (*d == '-')
				d++;
			for (z = d; *z == '0' && z[1]; z++)
				;
			memmove(d, z, strlen(z) + 1);
			n = strlen(num);
		}
		jsontext_raw(b, num, n);
		break;
	case JSON_TRUE:
		jsontext_raw(b, "true", 4);
		break;
	case JSON_FALSE:
		jsontext_raw(b, "false", 5);
		break;
	default:
		jsontext_raw(b, "null", 4);
		break;
	}
	return b->failed ? HOOKD_ENOMEM : HOOKD_OK;
}
