/* header.c - header field rules shared by endpoint headers and policy output headers. */
#include "header.h"

#include "err.h"

#include <string.h>
#include <strings.h>

static const char *const header_reserved[] = {
	"webhook-id", "webhook-timestamp", "webhook-signature",
	"content-type", "content-length",
	"host", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
	"expect", "user-agent",
	"proxy-authorization", "proxy-connection",
};

static bool header_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int header_name_check(const char *name, size_t len)
{
	if (len == 0)
		return HOOKD_EINVAL;
	if (len > HEADER_NAME_MAX)
		return HOOKD_ETOOBIG;
	for (size_t i = 0; i < len; i++)
		if (!header_tchar((unsigned char)name[i]))
			return HOOKD_EINVAL;
	return HOOKD_OK;
}

bool header_name_reserved(const char *name)
{
	for (size_t i = 0; i < sizeof(header_reserved) / sizeof(header_reserved[0]); i++)
		if (strcasecmp(name, header_reserved[i]) == 0)
			return true;
	return false;
}

int header_value_check(const char *value, size_t len)
{
	if (len > HEADER_VALUE_MAX)
		return HOOKD_ETOOBIG;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return HOOKD_EINVAL;
	}
	return HOOKD_OK;
}
