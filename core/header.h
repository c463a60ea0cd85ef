/* header.h - the rules for header fields hookd adds to a delivery: an endpoint's extra
 * headers (one rule for the API and the config file) and the headers a routing policy
 * returns. One place says which names hookd sets itself, so neither can override them.
 *
 * Reserved (case-insensitive): the Standard Webhooks headers hookd signs with
 * (webhook-id, webhook-timestamp, webhook-signature), the body's content-type and
 * content-length (the signature covers the body as sent), what the transport sets or must
 * control for framing and routing (host, transfer-encoding, connection, keep-alive,
 * upgrade, te, trailer, expect, user-agent) and proxy headers (proxy-authorization,
 * proxy-connection: hookd never uses a proxy, so they would only leak). */
#ifndef HOOKD_HEADER_H
#define HOOKD_HEADER_H

#include <stdbool.h>
#include <stddef.h>

/* A header name longer than this is no real header: the longest registered names are
 * under 50 bytes. */
#define HEADER_NAME_MAX 256
/* 8 KiB is the common server limit for one header line (nginx, Apache, Node.js); a longer
 * value would be refused by the receiver, so it is refused here, where it can be fixed. */
#define HEADER_VALUE_MAX 8192

/* HOOKD_OK if name (len bytes) is an RFC 9110 token (A-Z a-z 0-9 !#$%&'*+-.^_`|~) of
 * 1..HEADER_NAME_MAX bytes; HOOKD_ETOOBIG if longer; HOOKD_EINVAL otherwise. Reserved
 * names pass: header_name_reserved tells those apart. */
int header_name_check(const char *name, size_t len);

/* true if hookd sets the header itself (the list above), whatever the case of name. */
bool header_name_reserved(const char *name);

/* HOOKD_OK if value (len bytes) is field content: no control character but horizontal tab
 * (CR or LF would inject headers, NUL would cut them) and at most HEADER_VALUE_MAX bytes;
 * HOOKD_ETOOBIG if longer; HOOKD_EINVAL for a control character. Bytes >= 0x80 pass
 * (obs-text: UTF-8 values reach the receiver as sent). */
int header_value_check(const char *value, size_t len);

#endif
