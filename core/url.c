/* url.c - the endpoint URL rules (see url.h). A hand-written check, not curl's parser:
 * curl is lenient on purpose (it accepts `127.1`, percent-encoded and IDN hosts, empty
 * ports) and the API and the config must agree on one strict, documented set. */
#include "url.h"

#include "err.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* RFC 1035 2.3.4 (as relaxed by RFC 1123 2.1): a label is at most 63 bytes, a name at
 * most 253 in text form (255 on the wire, less the length bytes). */
#define URL_LABEL_MAX 63
#define URL_NAME_MAX 253

static bool url_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool url_is_hex(char c)
{
	return url_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* WHATWG URL's "ends in a number": a host whose last label is all digits or 0x-hex is an
 * IPv4 address to browsers and curl (127.1, 0x7f.1, 2130706433), never a DNS name. */
static bool url_host_numeric(const char *host, size_t len)
{
	const char *dot = NULL;
	for (size_t i = 0; i < len; i++)
		if (host[i] == '.')
			dot = host + i;
	const char *last = dot ? dot + 1 : host;
	size_t n = (size_t)(host + len - last), i = 0;
	if (n == 0)
		return false;
	if (n >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
		for (i = 2; i < n && url_is_hex(last[i]); i++)
			;
		return i == n;
	}
	for (; i < n && url_is_digit(last[i]); i++)
		;
	return i == n;
}

/* Exactly a.b.c.d, each 0..255 in decimal without leading zeros ("010" is octal to some
 * parsers and decimal to others). */
static bool url_ipv4_strict(const char *s, size_t len)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		size_t start = i;
		unsigned v = 0;
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			start = ++i;
		}
		while (i < len && url_is_digit(s[i]) && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
			return false;
	}
	return i == len;
}

static bool url_dns_name(const char *s, size_t len, const char **why)
{
	size_t label = 0;
	if (len > URL_NAME_MAX) {
		*why = "the host name is longer than 253 bytes";
		return false;
	}
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? s[i] : '.';
		if (c == '.') {
			if (label == 0) {
				*why = "the host has an empty label ('..', or a leading or "
				       "trailing '.')";
				return false;
			}
			if (s[i - 1] == '-' || s[i - label] == '-') {
				*why = "a host label may not start or end with '-'";
				return false;
			}
			label = 0;
			continue;
		}
		if (!(url_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '-' || c == '_')) {
			*why =
			    c == '%'
				? "the host may not be percent-encoded"
				: "the host is not a DNS name (letters, digits, '-', '_' and '.')";
			return false;
		}
		if (++label > URL_LABEL_MAX) {
			*why = "a host label is longer than 63 bytes";
			return false;
		}
	}
	return true;
}

static bool url_port_valid(const char *s, size_t len)
{
	unsigned v = 0;
	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!url_is_digit(s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* Why url (len bytes) has a byte that must be percent-encoded, or NULL if it has none:
 * everything outside printable ASCII. */
static const char *url_chars_why(const char *url, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c == 0x7f)
			return "spaces and control characters must be percent-encoded";
		if (c >= 0x80)
			return "non-ASCII characters must be percent-encoded (a host in its ASCII "
			       "xn-- form)";
	}
	return NULL;
}

/* What follows "http://" or "https://" (either in any case), or NULL for another scheme. */
static const char *url_after_scheme(const char *url)
{
	if (strncasecmp(url, "http://", 7) == 0)
		return url + 7;
	if (strncasecmp(url, "https://", 8) == 0)
		return url + 8;
	return NULL;
}

/* Checks an authority (alen bytes at host, no userinfo) that starts with '[': an IPv6
 * literal without a zone id, then nothing or ":port". *port is set to the port's text if
 * there is one; on false, *why says what is wrong. */
static bool url_ipv6_host(const char *host, size_t alen, const char **port, const char **why)
{
	char lit[INET6_ADDRSTRLEN];
	unsigned char addr[16];
	const char *close = memchr(host, ']', alen), *aend = host + alen;
	size_t n = close ? (size_t)(close - host - 1) : 0;

	if (!close || n == 0 || n >= sizeof(lit) || memchr(host, '%', n + 1)) {
		*why = close && memchr(host, '%', (size_t)(close - host))
			       ? "IPv6 zone ids ('%25') are not allowed"
			       : "bad IPv6 address in brackets";
		return false;
	}
	memcpy(lit, host + 1, n);
	lit[n] = '\0';
	if (inet_pton(AF_INET6, lit, addr) != 1) {
		*why = "bad IPv6 address in brackets";
		return false;
	}
	if (close + 1 < aend) {
		if (close[1] != ':') {
			*why = "unexpected text after ']'";
			return false;
		}
		*port = close + 2;
	}
	return true;
}

/* Checks any other authority (alen bytes at host, no userinfo): a DNS name or a strict
 * IPv4 address, then nothing or ":port". *port is set to the port's text if there is one;
 * on false, *why says what is wrong. */
static bool url_name_host(const char *host, size_t alen, const char **port, const char **why)
{
	const char *colon = memchr(host, ':', alen);
	size_t hlen = colon ? (size_t)(colon - host) : alen;

	if (colon)
		*port = colon + 1;
	if (hlen == 0) {
		*why = "the URL has no host";
		return false;
	}
	if (url_host_numeric(host, hlen)) {
		if (!url_ipv4_strict(host, hlen)) {
			*why = "a numeric host must be an IPv4 address written a.b.c.d (four "
			       "decimal numbers 0..255, no leading zeros)";
			return false;
		}
		return true;
	}
	return url_dns_name(host, hlen, why);
}

int url_proxy_check(const char *url, char *why_out, size_t whylen)
{
	const char *why = NULL, *rest, *port = NULL;
	size_t len = strlen(url), alen;
	bool host_ok;

	if (len > URL_MAX) {
		err_set(why_out, whylen, "longer than %d bytes", URL_MAX);
		return HOOKD_EINVAL;
	}
	why = url_chars_why(url, len);
	if (why)
		goto fail;
	if (strncasecmp(url, "http://", 7) != 0) {
		why = strncasecmp(url, "https://", 8) == 0
			      ? "an https:// proxy is not supported; give the proxy as "
				"http://HOST:PORT (https deliveries are tunnelled through it with "
				"CONNECT, end to end encrypted)"
			      : "expected http://HOST:PORT";
		goto fail;
	}
	rest = url + 7;
	alen = strcspn(rest, "/?#");
	if (memchr(rest, '@', alen)) {
		why = "user names and passwords (user:pass@) are not supported in the proxy URL";
		goto fail;
	}
	if (rest[alen] != '\0' && strcmp(rest + alen, "/") != 0) {
		why = "expected http://HOST:PORT without a path";
		goto fail;
	}
	if (alen > 0 && rest[0] == '[')
		host_ok = url_ipv6_host(rest, alen, &port, &why);
	else
		host_ok = url_name_host(rest, alen, &port, &why);
	if (!host_ok)
		goto fail;
	if (!port) {
		why = "the proxy URL needs a port (http://HOST:PORT)";
		goto fail;
	}
	if (!url_port_valid(port, (size_t)(rest + alen - port))) {
		why = "the port must be 1..65535";
		goto fail;
	}
	return HOOKD_OK;
fail:
	err_set(why_out, whylen, "%s", why);
	return HOOKD_EINVAL;
}

int url_endpoint_host(const char *url, char *host, size_t hostlen, unsigned *port)
{
	const char *rest = url_after_scheme(url);
	struct url_parts p;
	size_t hlen;

	if (!rest || url_split(url, &p) != HOOKD_OK || p.port > 65535)
		return HOOKD_EINVAL;
	hlen = strlen(p.host);
	if (hlen == 0 || hlen >= hostlen)
		return HOOKD_EINVAL;
	memcpy(host, p.host, hlen + 1);
	*port = p.port ? (unsigned)p.port : rest - url == 8 ? 443 : 80;
	return *port >= 1 ? HOOKD_OK : HOOKD_EINVAL;
}

/* Checks the authority at rest (up to the first '/', '?' or '#') by the endpoint rules: a
 * DNS name, a strict IPv4 address or a bracketed IPv6 one, no userinfo, an optional port
 * 1..65535. HOOKD_EINVAL with the reason in why_out otherwise; creds says where credentials
 * go instead of the URL. */
static int url_authority_check(const char *rest, const char *creds, char *why_out,
			       size_t whylen)
{
	const char *why = NULL, *port = NULL;
	size_t alen = strcspn(rest, "/?#");
	bool host_ok;

	if (memchr(rest, '@', alen)) {
		err_set(why_out, whylen,
			"user names and passwords (user:pass@) are not allowed in the URL; %s", creds);
		return HOOKD_EINVAL;
	}
	if (alen > 0 && rest[0] == '[')
		host_ok = url_ipv6_host(rest, alen, &port, &why);
	else
		host_ok = url_name_host(rest, alen, &port, &why);
	if (host_ok && port && !url_port_valid(port, (size_t)(rest + alen - port))) {
		host_ok = false;
		why = "the port must be 1..65535";
	}
	if (host_ok)
		return HOOKD_OK;
	err_set(why_out, whylen, "%s", why);
	return HOOKD_EINVAL;
}

int url_endpoint_check(const char *url, char *why_out, size_t whylen)
{
	size_t len = strlen(url);
	const char *why = url_chars_why(url, len), *rest = url_after_scheme(url);

	if (len > URL_MAX) {
		err_set(why_out, whylen, "longer than %d bytes", URL_MAX);
		return HOOKD_ETOOBIG;
	}
	if (!why && !rest)
		why = "expected an http:// or https:// URL";
	if (why) {
		err_set(why_out, whylen, "%s", why);
		return HOOKD_EINVAL;
	}
	return url_authority_check(rest, "send credentials in an endpoint header", why_out,
				   whylen);
}

bool url_scheme(const char *url, char out[URL_SCHEME_MAX + 1])
{
	size_t i = 0;
	out[0] = '\0';
	if (!url || !((url[0] >= 'a' && url[0] <= 'z') || (url[0] >= 'A' && url[0] <= 'Z')))
		return false;
	for (; url[i] && url[i] != ':'; i++) {
		char c = url[i];
		if (i >= URL_SCHEME_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || url_is_digit(c) ||
		      c == '+' || c == '.' || c == '-'))
			return false;
	}
	if (strncmp(url + i, "://", 3) != 0)
		return false;
	for (size_t k = 0; k < i; k++)
		out[k] = (char)(url[k] >= 'A' && url[k] <= 'Z' ? url[k] - 'A' + 'a' : url[k]);
	out[i] = '\0';
	return true;
}

bool url_plugin_scheme(const char *url, char out[URL_SCHEME_MAX + 1])
{
	return url_scheme(url, out) && strcmp(out, "http") != 0 && strcmp(out, "https") != 0;
}

int url_plugin_check(const char *url, bool needs_address, char *why_out, size_t whylen)
{
	const char *why, *rest;
	char scheme[URL_SCHEME_MAX + 1];
	size_t len = strlen(url), alen;

	if (len > URL_MAX) {
		err_set(why_out, whylen, "longer than %d bytes", URL_MAX);
		return HOOKD_ETOOBIG;
	}
	if ((why = url_chars_why(url, len)))
		goto fail;
	if (!url_scheme(url, scheme)) {
		why = "expected SCHEME://...";
		goto fail;
	}
	rest = url + strlen(scheme) + 3;
	alen = strcspn(rest, "/?#");
	if (!needs_address) {
		if (alen) {
			why = "this transport takes no host: write SCHEME:///PATH (three slashes)";
			goto fail;
		}
		return HOOKD_OK;
	}
	return url_authority_check(rest, "give credentials in the plugin's options", why_out,
				   whylen);
fail:
	err_set(why_out, whylen, "%s", why);
	return HOOKD_EINVAL;
}

int url_split(const char *url, struct url_parts *out)
{
	char scheme[URL_SCHEME_MAX + 1];
	const char *rest, *hend, *aend;
	size_t alen, hlen;

	memset(out, 0, sizeof(*out));
	out->query = "";
	if (!url_scheme(url, scheme))
		return HOOKD_EINVAL;
	rest = url + strlen(scheme) + 3;
	alen = strcspn(rest, "/?#");
	aend = rest + alen;
	if (alen && rest[0] == '[') {
		const char *close = memchr(rest, ']', alen);
		if (!close)
			return HOOKD_EINVAL;
		hlen = (size_t)(close - rest - 1);
		if (hlen >= sizeof(out->host))
			return HOOKD_EINVAL;
		memcpy(out->host, rest + 1, hlen);
		hend = close + 1;
	} else {
		const char *colon = memchr(rest, ':', alen);
		hend = colon ? colon : aend;
		hlen = (size_t)(hend - rest);
		if (hlen >= sizeof(out->host))
			return HOOKD_EINVAL;
		memcpy(out->host, rest, hlen);
	}
	out->host[hlen] = '\0';
	if (hend < aend && *hend == ':') {
		for (const char *c = hend + 1; c < aend; c++) {
			if (!url_is_digit(*c) || out->port > 65535)
				return HOOKD_EINVAL;
			out->port = out->port * 10 + (*c - '0');
		}
	}
	out->path = aend;
	out->path_len = *aend == '/' ? strcspn(aend, "?#") : 0;
	if (aend[out->path_len] == '?') {
		out->query = aend + out->path_len + 1;
		out->query_len = strcspn(out->query, "#");
	}
	return HOOKD_OK;
}
