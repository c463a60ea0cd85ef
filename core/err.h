/* err.h - the one error enum of hookd.
 *
 * 0 is success; every failure is a named negative code. Functions that fail
 * return one of these, never a bare -1. hookd_strerror() gives a stable text. */
#ifndef HOOKD_ERR_H
#define HOOKD_ERR_H

#include <stddef.h>

enum hookd_err {
	HOOKD_OK = 0,
	HOOKD_ENOMEM = -1,     /* allocation failed */
	HOOKD_EINVAL = -2,     /* malformed input; the caller's message names what */
	HOOKD_ENOTFOUND = -3,  /* no such object */
	HOOKD_EEXIST = -4,     /* object already exists */
	HOOKD_ESTORE = -5,     /* LMDB reported an error */
	HOOKD_EFULL = -6,      /* the store's map is (nearly) full */
	HOOKD_ETOOBIG = -7,    /* input exceeds a configured limit */
	HOOKD_EIO = -8,        /* I/O error (file, socket) */
	HOOKD_EBLOCKED = -9,   /* destination refused by the SSRF policy */
	HOOKD_ECRYPTO = -10,   /* signature or key error */
	HOOKD_EPOLICY = -11,   /* a routing policy failed */
	HOOKD_ECONFIG = -12,   /* configuration error */
	HOOKD_ESHUTDOWN = -13, /* the daemon is shutting down */
	HOOKD_EDUPLICATE = -14 /* idempotency key seen before */
};

/* Returns a static, human-readable description of err. */
const char *hookd_strerror(int err);

/* Formats a message into err (errlen bytes) for the caller; does nothing when err is NULL
 * or errlen is 0, so callers may pass no buffer. */
void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Room for err_quote's output: 40 bytes of text, quotes, "..." and NUL. */
#define ERR_QUOTE_MAX 48

/* Writes text into buf (len >= ERR_QUOTE_MAX, else "a value") the way messages show a
 * value: in single quotes, cut after 40 bytes (at a UTF-8 character boundary) with "...",
 * control characters as '?', so a pasted blob neither floods a log line nor injects into
 * it. Returns buf. */
const char *err_quote(const char *text, char *buf, size_t len);

/* Copies src into dst (len bytes, NUL included), cut at a UTF-8 character boundary when
 * it does not fit, so a cut name stays valid text in a JSON answer. */
void err_copy(char *dst, size_t len, const char *src);

#endif
