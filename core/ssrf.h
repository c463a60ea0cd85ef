/* ssrf.h - destination policy: which resolved addresses hookd may connect to.
 *
 * Checked on the address curl is about to connect to (after DNS), so a hostname that
 * resolves, or rebinds, to a private address is refused. Anything not public is refused
 * unless an allow-list CIDR (security.allow_destinations) covers it. Through an egress proxy
 * the proxy's address is checked there, and transport_http.c resolves and checks the
 * receiver's host itself before handing the proxy its address. */
#ifndef HOOKD_SSRF_H
#define HOOKD_SSRF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

enum ssrf_class {
	SSRF_PUBLIC = 0,
	SSRF_LOOPBACK,      /* 127/8, ::1 */
	SSRF_PRIVATE,       /* 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7 */
	SSRF_LINK_LOCAL,    /* 169.254/16, fe80::/10 */
	SSRF_MULTICAST,     /* 224/4, ff00::/8 */
	SSRF_UNSPECIFIED,   /* 0.0.0.0/8, :: */
	SSRF_RESERVED       /* 240/4, 255.255.255.255, 192.0.0/24, 198.18/15, docs ranges, 100::/64,
			     * 64:ff9b:1::/48, IPv6 outside 2000::/3 etc. */
};

/* Classifies an AF_INET or AF_INET6 address. v4-mapped (::ffff:a.b.c.d), v4-compatible
 * (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d, RFC 6052) and 6to4 (2002:AABB:CCDD::/48) IPv6
 * addresses are classified by their IPv4 part: NAT64 of a public address is public, so an
 * IPv6-only host behind DNS64 can still deliver. IPv6 outside 2000::/3 with no listed
 * class is SSRF_RESERVED (fail closed). Unknown families and NULL are SSRF_RESERVED.
 * sa must point to a full sockaddr_in or sockaddr_in6. */
enum ssrf_class ssrf_classify(const struct sockaddr *sa);

/* Classifies a literal ("10.1.2.3", "::ffff:127.0.0.1"); -1 (as int) if not an address. */
int ssrf_classify_text(const char *literal);

/* "public", "loopback", "private", "link-local", "multicast", "unspecified", "reserved". */
const char *ssrf_class_name(enum ssrf_class c);

/* sa's address as text ("127.0.0.1", "::1"; "?" for another family), for messages. */
void ssrf_addr_text(const struct sockaddr *sa, char *out, size_t len);

struct ssrf_cidr {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

struct ssrf_policy {
	struct ssrf_cidr *allow;  /* owned */
	size_t n_allow;
};

/* Why ssrf_cidr_parse refused a text. */
enum ssrf_cidr_problem {
	SSRF_CIDR_NOT_ADDRESS = 1, /* the part before '/' is not an IPv4 or IPv6 address */
	SSRF_CIDR_BAD_PREFIX,      /* the prefix is not plain digits 0..32 (IPv4), 0..128 (IPv6) */
	SSRF_CIDR_HOST_BITS        /* bits set after the prefix ("10.0.0.5/8") */
};

/* Parses one CIDR ("127.0.0.0/8", "::1/128") or one address ("10.0.0.5" = /32) into out
 * (either may be NULL), as ssrf_policy_allow does: the one parser for allow-list entries,
 * also used by the config file's check. HOOKD_OK, or HOOKD_EINVAL with *problem set; for
 * SSRF_CIDR_HOST_BITS out holds the network with the host bits cleared (what the text
 * probably meant), for SSRF_CIDR_BAD_PREFIX out->family says which range applied. */
int ssrf_cidr_parse(const char *text, struct ssrf_cidr *out, enum ssrf_cidr_problem *problem);

/* Adds one CIDR ("127.0.0.0/8", "::1/128", "10.0.0.5" = /32). HOOKD_EINVAL with a message
 * naming the text on error ("invalid CIDR '10.0.0.0/33': prefix must be 0..32"), also when
 * host bits are set ("10.0.0.5/8"). An IPv4 CIDR also covers the v4-mapped IPv6 form (and
 * "::ffff:10.0.0.0/104" is the same as "10.0.0.0/8"); v4-compatible and NAT64 forms are not
 * covered by IPv4 CIDRs. p starts zeroed ({0}); HOOKD_ENOMEM leaves it unchanged. */
int ssrf_policy_allow(struct ssrf_policy *p, const char *cidr, char *err, size_t errlen);

/* true if sa may be connected to: public, or covered by an allow CIDR (p may be NULL: no
 * allow-list). *cls receives the classification (cls may be NULL). */
bool ssrf_policy_check(const struct ssrf_policy *p, const struct sockaddr *sa,
		       enum ssrf_class *cls);

/* Frees the allow-list and leaves p empty and reusable. */
void ssrf_policy_free(struct ssrf_policy *p);

#endif
