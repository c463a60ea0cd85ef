/* url.h - which endpoint URLs hookd accepts. One validator for the API (POST and PATCH of
 * an endpoint) and the config file (apps[].endpoints[].url), so that both refuse exactly
 * the same URLs, with the same reason (docs/api.md, docs/configuration.md).
 *
 * Accepted: http:// or https:// (scheme in any case), a host, an optional port 1..65535,
 * then anything printable ASCII. The host is one of
 *   - a DNS name: dot-separated labels of 1..63 of [A-Za-z0-9_-], none starting or ending
 *     with '-', 253 bytes at most, no trailing dot; an IDN in its ASCII (xn--) form;
 *   - an IPv4 address as four decimal numbers 0..255 without leading zeros;
 *   - an IPv6 address in brackets, without a zone id.
 * Refused, because no receiver can be reached that way or because parsers (curl, the
 * receiver's proxy, a browser) read them differently: port 0, empty hosts, userinfo
 * (user:pass@), percent-encoded or non-ASCII hosts (`127.0.0.1%2e`, fullwidth digits),
 * other IPv4 spellings (`127.1`, `0x7f.0.0.1`, `2130706433`, `127.000.0.1`), spaces,
 * control characters and any non-ASCII byte (percent-encode them). */
#ifndef HOOKD_URL_H
#define HOOKD_URL_H

#include <stdbool.h>
#include <stddef.h>

/* The longest URL accepted, in bytes: what browsers and CDNs conventionally accept, far
 * above any real webhook URL, and small enough that an endpoint's URL cannot make every
 * delivery's request line costly. */
#define URL_MAX 2048

/* HOOKD_OK when url is an acceptable egress proxy (delivery.proxy, an endpoint's "proxy"):
 * exactly http://HOST:PORT, optionally with a final '/', HOST by the endpoint URL's rules
 * and the port required (a proxy has no conventional one). No user:pass@ (the URL is shown
 * by the API and logged), no path, no https:// proxy. HOOKD_EINVAL with the reason in why
 * otherwise. The empty string is not a URL: callers that take "" for "no proxy" test it
 * first. */
int url_proxy_check(const char *url, char *why, size_t whylen);

/* The host of an accepted endpoint URL (checked by url_endpoint_check) without IPv6
 * brackets, into host (hostlen bytes), and its port (the scheme's, 80 or 443, when it has
 * none). HOOKD_EINVAL if url is not one (or the host does not fit). */
int url_endpoint_host(const char *url, char *host, size_t hostlen, unsigned *port);

/* HOOKD_OK when url is an acceptable endpoint URL. Otherwise HOOKD_ETOOBIG (over URL_MAX)
 * or HOOKD_EINVAL, with the reason in why (without the field name or the URL, so each
 * caller frames it its own way: "url: <why>", "file:line: key: <why>, got '...'"). */
int url_endpoint_check(const char *url, char *why, size_t whylen);

/* Longest URL scheme hookd reads (plugin transports' schemes are shorter). */
#define URL_SCHEME_MAX 32

/* The scheme of url, lower-cased into out (URL_SCHEME_MAX + 1 bytes), when url starts
 * with [A-Za-z][A-Za-z0-9+.-]* followed by "://"; false (out "") otherwise. */
bool url_scheme(const char *url, char out[URL_SCHEME_MAX + 1]);

/* true when url goes to a plugin transport: it has a scheme (url_scheme, into out) and the
 * scheme is neither http nor https. The one rule for the transport router, the endpoint
 * schema and dispatch. */
bool url_plugin_scheme(const char *url, char out[URL_SCHEME_MAX + 1]);

/* HOOKD_OK when url is acceptable for a plugin transport: printable ASCII within URL_MAX,
 * "scheme://", then with needs_address a host by the same rules as http URLs (a DNS name,
 * a strict IPv4 address or a bracketed IPv6 one, no userinfo) and an optional port
 * 1..65535; without, an empty authority (file:///PATH). The reason in why otherwise. */
int url_plugin_check(const char *url, bool needs_address, char *why, size_t whylen);

/* A URL already accepted by url_plugin_check, split for struct hookd_send. host is written
 * without brackets; path and query point into url (not NUL-terminated at their ends). */
struct url_parts {
	char host[256];
	int port;                 /* 0 when the URL has none */
	const char *path;         /* from the first '/' after the authority, up to '?' or '#' */
	size_t path_len;
	const char *query;        /* after '?', up to '#' ("" and 0 when none) */
	size_t query_len;
};
int url_split(const char *url, struct url_parts *out);

#endif
