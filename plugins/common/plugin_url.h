/* plugin_url.h - what the broker plugins (nats, redis, mqtt) read from an endpoint URL,
 * header-only so each plugin stays one shared object built from its own .c file
 * (`cc -shared -fPIC plugins/nats/nats.c` still finds it by its relative path).
 *
 * The host hands send() the percent-decoded path and the raw query (hookd_send.path and
 * .query), but check_url() gets the URL as written: plugin_url_dest() splits and decodes
 * it the same way, so both see the same destination. */
#ifndef HOOKD_PLUGIN_URL_H
#define HOOKD_PLUGIN_URL_H

#include <stdio.h>
#include <string.h>

enum plugin_url_rc {
	PLUGIN_URL_OK = 0,
	PLUGIN_URL_NO_SCHEME = -1, /* no "SCHEME://" */
	PLUGIN_URL_FRAGMENT = -2,  /* a '#' after the authority */
	PLUGIN_URL_TOO_LONG = -3,  /* the destination does not fit in out */
	PLUGIN_URL_NUL = -4,	   /* "%00" in the path */
};

static inline int plugin_url_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The destination of url (its path after the authority, without the leading '/', up to a
 * '?', percent-decoded) into out (outlen bytes, NUL-terminated), and *query pointing into
 * url after the '?' ("" when there is none). */
static inline enum plugin_url_rc plugin_url_dest(const char *url, char *out, size_t outlen,
						 const char **query)
{
	const char *a = strstr(url, "://");
	size_t n = 0;
	*query = "";
	if (!a)
		return PLUGIN_URL_NO_SCHEME;
	a += 3;
	const char *path = a + strcspn(a, "/?#");
	if (strchr(path, '#'))
		return PLUGIN_URL_FRAGMENT;
	const char *q = strchr(path, '?');
	const char *s = *path == '/' ? path + 1 : path;
	const char *end = q ? q : s + strlen(s);
	if (q)
		*query = q + 1;
	for (; s < end; s++) {
		int c = (unsigned char)*s;
		if (c == '%' && s + 2 < end && plugin_url_hex(s[1]) >= 0 &&
		    plugin_url_hex(s[2]) >= 0) {
			c = plugin_url_hex(s[1]) * 16 + plugin_url_hex(s[2]);
			s += 2;
		}
		if (c == 0)
			return PLUGIN_URL_NUL;
		if (n + 1 >= outlen)
			return PLUGIN_URL_TOO_LONG;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return PLUGIN_URL_OK;
}

/* "127.0.0.1:4222", or "[::1]:4222" for an IPv6 address: for messages and URLs. */
static inline void plugin_url_label(char *out, size_t len, const char *address, int port)
{
	if (strchr(address, ':'))
		snprintf(out, len, "[%s]:%d", address, port);
	else
		snprintf(out, len, "%s:%d", address, port);
}

#endif
