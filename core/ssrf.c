/* ssrf.c - destination policy: classify resolved addresses, match the allow-list.
 *
 * The classification is two tables, first match wins, so a reader can check each range
 * against the IANA special-purpose registries (iana-ipv4-special-registry,
 * iana-ipv6-special-registry) line by line. Ranges that embed an IPv4 address are
 * classified by that address, so 10.0.0.1 cannot be reached as ::ffff:10.0.0.1,
 * ::10.0.0.1, 64:ff9b::10.0.0.1 or 2002:a00:1::. */
#include "ssrf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct ssrf_range4 {
	uint32_t net;     /* host order */
	unsigned prefix;
	enum ssrf_class cls;
};

/* IPv4 ranges that are not public (RFC 6890 and its updates). */
static const struct ssrf_range4 ssrf_ranges4[] = {
	{ 0x00000000, 8, SSRF_UNSPECIFIED },   /* 0/8 "this network"; 0.0.0.0 reaches localhost on Linux */
	{ 0x0a000000, 8, SSRF_PRIVATE },       /* 10/8 RFC 1918 */
	{ 0x64400000, 10, SSRF_PRIVATE },      /* 100.64/10 CGNAT, RFC 6598: the operator's network */
	{ 0x7f000000, 8, SSRF_LOOPBACK },      /* 127/8 */
	{ 0xa9fe0000, 16, SSRF_LINK_LOCAL },   /* 169.254/16, where cloud metadata services live */
	{ 0xac100000, 12, SSRF_PRIVATE },      /* 172.16/12 RFC 1918 */
	{ 0xc0000000, 24, SSRF_RESERVED },     /* 192.0.0/24 IETF protocol assignments */
	{ 0xc0000200, 24, SSRF_RESERVED },     /* 192.0.2/24 TEST-NET-1 */
	{ 0xc0586300, 24, SSRF_RESERVED },     /* 192.88.99/24 deprecated 6to4 relay anycast */
	{ 0xc0a80000, 16, SSRF_PRIVATE },      /* 192.168/16 RFC 1918 */
	{ 0xc6120000, 15, SSRF_RESERVED },     /* 198.18/15 benchmarking, RFC 2544 */
	{ 0xc6336400, 24, SSRF_RESERVED },     /* 198.51.100/24 TEST-NET-2 */
	{ 0xcb007100, 24, SSRF_RESERVED },     /* 203.0.113/24 TEST-NET-3 */
	{ 0xe0000000, 4, SSRF_MULTICAST },     /* 224/4 */
	{ 0xffffffff, 32, SSRF_RESERVED },     /* limited broadcast (inside 240/4; named for clarity) */
	{ 0xf0000000, 4, SSRF_RESERVED },      /* 240/4 future use */
};

/* What to do with an IPv6 range: give it a class, or classify the IPv4 address it embeds. */
enum ssrf_v6_action { SSRF_V6_CLASS, SSRF_V6_EMBEDS_V4 };

struct ssrf_range6 {
	unsigned char net[16];
	unsigned prefix;
	enum ssrf_v6_action action;
	enum ssrf_class cls;      /* SSRF_V6_CLASS */
	unsigned v4_offset;       /* SSRF_V6_EMBEDS_V4: byte offset of the IPv4 address */
};

#define V6(...) { __VA_ARGS__ }

/* IPv6 ranges, most specific first. Anything outside 2000::/3, the only block IANA
 * allocates for global unicast, falls through to SSRF_RESERVED: fail closed. */
static const struct ssrf_range6 ssrf_ranges6[] = {
	/* :: */
	{ V6(0), 128, SSRF_V6_CLASS, SSRF_UNSPECIFIED, 0 },
	/* ::1 */
	{ V6(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), 128, SSRF_V6_CLASS, SSRF_LOOPBACK, 0 },
	/* ::ffff:0:0/96 v4-mapped: what an AF_INET6 socket uses to reach IPv4 */
	{ V6(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff), 96, SSRF_V6_EMBEDS_V4, 0, 12 },
	/* ::/96 v4-compatible (deprecated, RFC 4291) */
	{ V6(0), 96, SSRF_V6_EMBEDS_V4, 0, 12 },
	/* 64:ff9b::/96 NAT64 well-known prefix (RFC 6052): the translator forwards to the
	 * embedded IPv4 address, so it is exactly as reachable as that address. On an
	 * IPv6-only box behind DNS64 this is how public IPv4 endpoints are reached. */
	{ V6(0x00, 0x64, 0xff, 0x9b), 96, SSRF_V6_EMBEDS_V4, 0, 12 },
	/* 64:ff9b:1::/48 local-use NAT64 (RFC 8215): the embedding is site-defined */
	{ V6(0x00, 0x64, 0xff, 0x9b, 0x00, 0x01), 48, SSRF_V6_CLASS, SSRF_RESERVED, 0 },
	/* 100::/64 discard-only (RFC 6666) */
	{ V6(0x01, 0x00), 64, SSRF_V6_CLASS, SSRF_RESERVED, 0 },
	/* 2001:2::/48 benchmarking (RFC 5180) */
	{ V6(0x20, 0x01, 0x00, 0x02, 0x00, 0x00), 48, SSRF_V6_CLASS, SSRF_RESERVED, 0 },
	/* 2001:10::/28 ORCHID and 2001:20::/28 ORCHIDv2: identifiers, not locators */
	{ V6(0x20, 0x01, 0x00, 0x10), 28, SSRF_V6_CLASS, SSRF_RESERVED, 0 },
	{ V6(0x20, 0x01, 0x00, 0x20), 28, SSRF_V6_CLASS, SSRF_RESERVED, 0 },
	/* 2001:db8::/32 documentation (RFC 3849) */
	{ V6(0x20, 0x01, 0x0d, 0xb8), 32, SSRF_V6_CLASS, SSRF_RESERVED, 0 },
	/* 2002::/16 6to4 (RFC 3056): bytes 2..5 are the IPv4 address tunnelled to */
	{ V6(0x20, 0x02), 16, SSRF_V6_EMBEDS_V4, 0, 2 },
	/* 3fff::/20 documentation (RFC 9637) */
	{ V6(0x3f, 0xff), 20, SSRF_V6_CLASS, SSRF_RESERVED, 0 },
	/* 2000::/3 global unicast */
	{ V6(0x20), 3, SSRF_V6_CLASS, SSRF_PUBLIC, 0 },
	/* fc00::/7 unique local (RFC 4193) */
	{ V6(0xfc), 7, SSRF_V6_CLASS, SSRF_PRIVATE, 0 },
	/* fe80::/10 link-local */
	{ V6(0xfe, 0x80), 10, SSRF_V6_CLASS, SSRF_LINK_LOCAL, 0 },
	/* fec0::/10 site-local (deprecated by RFC 3879, still routed inside some sites) */
	{ V6(0xfe, 0xc0), 10, SSRF_V6_CLASS, SSRF_PRIVATE, 0 },
	/* ff00::/8 multicast */
	{ V6(0xff), 8, SSRF_V6_CLASS, SSRF_MULTICAST, 0 },
};

#undef V6

/* true if the first prefix bits of a and b are equal. */
static bool ssrf_prefix_match(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
	unsigned bytes = prefix / 8, bits = prefix % 8;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	return ((a[bytes] ^ b[bytes]) & (unsigned char)(0xff00u >> bits)) == 0;
}

static enum ssrf_class ssrf_classify_v4(const unsigned char addr[4])
{
	uint32_t a = (uint32_t)addr[0] << 24 | (uint32_t)addr[1] << 16 | (uint32_t)addr[2] << 8 |
		     addr[3];

	for (size_t i = 0; i < sizeof(ssrf_ranges4) / sizeof(ssrf_ranges4[0]); i++) {
		const struct ssrf_range4 *r = &ssrf_ranges4[i];
		uint32_t mask = r->prefix == 0 ? 0 : UINT32_MAX << (32 - r->prefix);

		if ((a & mask) == r->net)
			return r->cls;
	}
	return SSRF_PUBLIC;
}

static enum ssrf_class ssrf_classify_v6(const unsigned char addr[16])
{
	for (size_t i = 0; i < sizeof(ssrf_ranges6) / sizeof(ssrf_ranges6[0]); i++) {
		const struct ssrf_range6 *r = &ssrf_ranges6[i];

		if (!ssrf_prefix_match(addr, r->net, r->prefix))
			continue;
		if (r->action == SSRF_V6_EMBEDS_V4)
			return ssrf_classify_v4(addr + r->v4_offset);
		return r->cls;
	}
	return SSRF_RESERVED;
}

static const unsigned char ssrf_v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

enum ssrf_class ssrf_classify(const struct sockaddr *sa)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	if (!sa)
		return SSRF_RESERVED;
	/* memcpy: the caller's storage may be a plain struct sockaddr of the right size. */
	if (sa->sa_family == AF_INET) {
		memcpy(&sin, sa, sizeof(sin));
		return ssrf_classify_v4((const unsigned char *)&sin.sin_addr);
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(&sin6, sa, sizeof(sin6));
		return ssrf_classify_v6(sin6.sin6_addr.s6_addr);
	}
	return SSRF_RESERVED;
}

int ssrf_classify_text(const char *literal)
{
	unsigned char addr[16];

	if (!literal)
		return -1;
	if (inet_pton(AF_INET, literal, addr) == 1)
		return (int)ssrf_classify_v4(addr);
	if (inet_pton(AF_INET6, literal, addr) == 1)
		return (int)ssrf_classify_v6(addr);
	return -1;
}

const char *ssrf_class_name(enum ssrf_class c)
{
	switch (c) {
	case SSRF_PUBLIC: return "public";
	case SSRF_LOOPBACK: return "loopback";
	case SSRF_PRIVATE: return "private";
	case SSRF_LINK_LOCAL: return "link-local";
	case SSRF_MULTICAST: return "multicast";
	case SSRF_UNSPECIFIED: return "unspecified";
	case SSRF_RESERVED: return "reserved";
	}
	return "reserved";
}

/* Longest address text we accept before "/": an IPv6 literal with an embedded IPv4
 * ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") is 45 characters. */
#define SSRF_ADDR_TEXT_MAX INET6_ADDRSTRLEN

int ssrf_cidr_parse(const char *text, struct ssrf_cidr *out, enum ssrf_cidr_problem *problem)
{
	char addr_text[SSRF_ADDR_TEXT_MAX];
	struct ssrf_cidr c;
	const char *slash;
	size_t addr_len;
	unsigned max_prefix;
	enum ssrf_cidr_problem why = SSRF_CIDR_NOT_ADDRESS;

	memset(&c, 0, sizeof(c));
	if (!text)
		goto bad;
	slash = strchr(text, '/');
	addr_len = slash ? (size_t)(slash - text) : strlen(text);
	if (addr_len == 0 || addr_len >= sizeof(addr_text))
		goto bad;
	memcpy(addr_text, text, addr_len);
	addr_text[addr_len] = '\0';
	if (inet_pton(AF_INET, addr_text, c.addr) == 1) {
		c.family = AF_INET;
		max_prefix = 32;
	} else if (inet_pton(AF_INET6, addr_text, c.addr) == 1) {
		c.family = AF_INET6;
		max_prefix = 128;
	} else {
		goto bad;
	}

	c.prefix = max_prefix;
	if (slash) {
		const char *digits = slash + 1;
		char *end = NULL;
		long v = -1;
		bool ok;

		/* strtol alone would take " 8", "+8" or "-0"; a prefix is plain digits. */
		ok = *digits != '\0' && strspn(digits, "0123456789") == strlen(digits) &&
			  strlen(digits) <= 3;
		if (ok) {
			errno = 0;
			v = strtol(digits, &end, 10);
			ok = errno == 0 && *end == '\0' && v >= 0 && v <= (long)max_prefix;
		}
		if (!ok) {
			why = SSRF_CIDR_BAD_PREFIX;
			goto bad;
		}
		c.prefix = (unsigned)v;
	}

	/* Host bits set ("10.0.0.5/8") usually means a typo in the address or the prefix;
	 * refuse it, and hand back the network the text probably meant. */
	for (unsigned bit = c.prefix; bit < max_prefix; bit++) {
		unsigned char mask = (unsigned char)(0x80u >> (bit % 8));
		if (c.addr[bit / 8] & mask) {
			why = SSRF_CIDR_HOST_BITS;
			c.addr[bit / 8] &= (unsigned char)~mask;
		}
	}
	if (why == SSRF_CIDR_HOST_BITS)
		goto bad;
	if (out)
		*out = c;
	return HOOKD_OK;

bad:
	if (out)
		*out = c;
	if (problem)
		*problem = why;
	return HOOKD_EINVAL;
}

int ssrf_policy_allow(struct ssrf_policy *p, const char *cidr, char *err, size_t errlen)
{
	char suggestion[SSRF_ADDR_TEXT_MAX];
	struct ssrf_cidr c;
	struct ssrf_cidr *grown;
	enum ssrf_cidr_problem problem;

	if (!p || !cidr) {
		err_set(err, errlen, "invalid CIDR: none given");
		return HOOKD_EINVAL;
	}
	if (ssrf_cidr_parse(cidr, &c, &problem) != HOOKD_OK) {
		switch (problem) {
		case SSRF_CIDR_NOT_ADDRESS:
			err_set(err, errlen, "invalid CIDR '%s': not an IPv4 or IPv6 address", cidr);
			break;
		case SSRF_CIDR_BAD_PREFIX:
			err_set(err, errlen, "invalid CIDR '%s': prefix must be 0..%u", cidr,
				c.family == AF_INET ? 32u : 128u);
			break;
		case SSRF_CIDR_HOST_BITS:
			if (!inet_ntop(c.family, c.addr, suggestion, sizeof(suggestion)))
				suggestion[0] = '\0';
			err_set(err, errlen, "invalid CIDR '%s': host bits are set (network is %s/%u)",
				cidr, suggestion, c.prefix);
			break;
		}
		return HOOKD_EINVAL;
	}

	/* Store an IPv6 CIDR inside ::ffff:0:0/96 as the IPv4 CIDR it denotes, so matching
	 * only has one form to deal with. */
	if (c.family == AF_INET6 && c.prefix >= 96 &&
	    memcmp(c.addr, ssrf_v4mapped_prefix, sizeof(ssrf_v4mapped_prefix)) == 0) {
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
		c.family = AF_INET;
		c.prefix -= 96;
	}

	/* Grown one entry at a time: the list is built once from the configuration and holds a
	 * handful of entries, and struct ssrf_policy has no capacity field. */
	if (p->n_allow >= SIZE_MAX / sizeof(*p->allow) - 1)
		return HOOKD_ENOMEM;
	grown = realloc(p->allow, (p->n_allow + 1) * sizeof(*p->allow));
	if (!grown) {
		err_set(err, errlen, "out of memory adding CIDR '%s'", cidr);
		return HOOKD_ENOMEM;
	}
	p->allow = grown;
	p->allow[p->n_allow++] = c;
	return HOOKD_OK;
}

bool ssrf_policy_check(const struct ssrf_policy *p, const struct sockaddr *sa,
		       enum ssrf_class *cls)
{
	enum ssrf_class c = ssrf_classify(sa);
	unsigned char addr[16];
	int family;

	if (cls)
		*cls = c;
	if (c == SSRF_PUBLIC)
		return true;
	if (!sa || !p || p->n_allow == 0)
		return false;

	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, sa, sizeof(sin));
		memcpy(addr, &sin.sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof(sin6));
		memcpy(addr, sin6.sin6_addr.s6_addr, 16);
		family = AF_INET6;
		/* A v4-mapped address is that IPv4 address on the wire: IPv4 CIDRs cover it.
		 * (v4-compatible and NAT64 forms are not unwrapped: allow them explicitly.) */
		if (memcmp(addr, ssrf_v4mapped_prefix, sizeof(ssrf_v4mapped_prefix)) == 0) {
			memmove(addr, addr + 12, 4);
			family = AF_INET;
		}
	} else {
		return false;
	}

	for (size_t i = 0; i < p->n_allow; i++) {
		const struct ssrf_cidr *r = &p->allow[i];

		if (r->family == family && ssrf_prefix_match(addr, r->addr, r->prefix))
			return true;
	}
	return false;
}

void ssrf_policy_free(struct ssrf_policy *p)
{
	if (!p)
		return;
	free(p->allow);
	p->allow = NULL;
	p->n_allow = 0;
}

void ssrf_addr_text(const struct sockaddr *sa, char *out, size_t len)
{
	const void *a = sa->sa_family == AF_INET6
				? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
				: (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    !inet_ntop(sa->sa_family, a, out, (socklen_t)len))
		snprintf(out, len, "?");
}
