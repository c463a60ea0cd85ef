/* auth_options.h - what the shipped auth plugins (bearer, basic, hub-signature, oauth2)
 * share: reading and checking their options, and base64. Header-only, static inline: each
 * plugin is built on its own against include/hookd/plugin.h and this file, and links none
 * of the others. */
#ifndef HOOKD_PLUGINS_AUTH_OPTIONS_H
#define HOOKD_PLUGINS_AUTH_OPTIONS_H

#include <hookd/plugin.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 if the host's table (built against some minor) has field: its size says how far it
 * goes (include/hookd/plugin.h: the table only grows by appending). */
#define AUTH_HOST_HAS(host, field)                                                          \
	((host)->size >= offsetof(struct hookd_host, field) + sizeof((host)->field))

/* The value of option name, or NULL. */
static inline const char *auth_opt(const struct hookd_option *o, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(o[i].name, name) == 0)
			return o[i].value;
	return NULL;
}

/* 1 if v may go into a header line: no control character but tab (CR/LF would inject). */
static inline int auth_value_ok(const char *v)
{
	for (; *v; v++)
		if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f)
			return 0;
	return 1;
}

/* Every option is one of known (NULL-terminated), every one of required is there and not
 * empty, and none has a control character. Returns 0, or 1 with field and err filled, as
 * struct hookd_auth's check wants. */
static inline int auth_opts_check(const struct hookd_option *o, size_t n,
				  const char *const *known, const char *const *required,
				  char *field, size_t fieldlen, char *err, size_t errlen)
{
	char names[160] = "";
	size_t w = 0;
	for (const char *const *k = known; *k && w < sizeof(names); k++) {
		int r = snprintf(names + w, sizeof(names) - w, "%s%s", w ? ", " : "", *k);
		if (r < 0)
			break;
		w += (size_t)r;
	}
	for (size_t i = 0; i < n; i++) {
		const char *const *k;
		for (k = known; *k && strcmp(*k, o[i].name) != 0; k++)
			;
		if (!*k) {
			snprintf(field, fieldlen, "%s", o[i].name);
			snprintf(err, errlen, "unknown option (expected %s)", names);
			return 1;
		}
		if (!auth_value_ok(o[i].value)) {
			snprintf(field, fieldlen, "%s", o[i].name);
			snprintf(err, errlen, "must not contain control characters");
			return 1;
		}
	}
	for (const char *const *r = required; r && *r; r++) {
		const char *v = auth_opt(o, n, *r);
		if (!v || !*v) {
			snprintf(field, fieldlen, "%s", *r);
			snprintf(err, errlen, "required%s", v ? " (and not empty)" : "");
			return 1;
		}
	}
	return 0;
}

/* Standard base64 (RFC 4648 section 4, with padding) of in into out (at least
 * 4 * ((n + 2) / 3) + 1 bytes); returns the length written, or 0 if out is too small. */
static inline size_t auth_base64(const unsigned char *in, size_t n, char *out, size_t outlen)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t need = 4 * ((n + 2) / 3), w = 0;
	if (outlen < need + 1)
		return 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[w++] = tab[(v >> 18) & 63];
		out[w++] = tab[(v >> 12) & 63];
		out[w++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[w++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[w] = '\0';
	return w;
}

/* What a scheme without state of its own (bearer, basic, hub-signature) keeps: the host's
 * table, for auth_add_header in decorate. */
struct auth_plugin {
	const struct hookd_host *host;
	struct hookd_plugin_ctx *ctx;
};

/* Their init: the host must have auth schemes (ABI 1.1), then a registers. 0, or 1 with err
 * set, as hookd_plugin's init wants. */
static inline int auth_plugin_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx,
				   const struct hookd_auth *a, void **state, char *err,
				   size_t errlen)
{
	struct auth_plugin *b;
	if (!AUTH_HOST_HAS(host, auth_add_header)) {
		snprintf(err, errlen, "the host's ABI has no auth schemes (1.1 needed)");
		return 1;
	}
	if (!(b = calloc(1, sizeof(*b)))) {
		snprintf(err, errlen, "out of memory");
		return 1;
	}
	b->host = host;
	b->ctx = ctx;
	if (host->register_auth(ctx, a) != 0) {
		free(b);
		snprintf(err, errlen, "cannot register the auth scheme %s", a->name);
		return 1;
	}
	*state = b;
	return 0;
}

static inline void auth_plugin_cleanup(void *state)
{
	free(state);
}

#endif
