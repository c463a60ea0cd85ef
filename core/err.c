/* err.c - texts for the hookd error enum. */
#include "err.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *hookd_strerror(int err)
{
	switch (err) {
	case HOOKD_OK: return "ok";
	case HOOKD_ENOMEM: return "out of memory";
	case HOOKD_EINVAL: return "invalid input";
	case HOOKD_ENOTFOUND: return "not found";
	case HOOKD_EEXIST: return "already exists";
	case HOOKD_ESTORE: return "storage error";
	case HOOKD_EFULL: return "storage full";
	case HOOKD_ETOOBIG: return "too large";
	case HOOKD_EIO: return "i/o error";
	case HOOKD_EBLOCKED: return "destination blocked";
	case HOOKD_ECRYPTO: return "signature error";
	case HOOKD_EPOLICY: return "policy error";
	case HOOKD_ECONFIG: return "configuration error";
	case HOOKD_ESHUTDOWN: return "shutting down";
	case HOOKD_EDUPLICATE: return "duplicate";
	}
	return "unknown error";
}

void err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Enough to recognise a value, short enough that a pasted blob does not flood the log. */
#define ERR_QUOTE_TEXT 40

const char *err_quote(const char *text, char *buf, size_t len)
{
	size_t n = strlen(text), w = 0;
	bool cut = n > ERR_QUOTE_TEXT;

	if (len < ERR_QUOTE_MAX)
		return "a value";
	if (cut) {
		n = ERR_QUOTE_TEXT;
		while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
			n--; /* do not split a UTF-8 sequence: messages go into JSON */
	}
	buf[w++] = '\'';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)text[i];
		buf[w++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (cut) {
		memcpy(buf + w, "...", 3);
		w += 3;
	}
	buf[w++] = '\'';
	buf[w] = '\0';
	return buf;
}

void err_copy(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);
	if (!dst || len == 0)
		return;
	if (n >= len) {
		n = len - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}
