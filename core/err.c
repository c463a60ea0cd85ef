/* err.c - texts for the hookd error enum. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

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
