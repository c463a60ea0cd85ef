/* test_ssrf.c - address classification and the allow-list (core/ssrf.c).
 *
 * Addresses are literals turned into sockaddrs with inet_pton; nothing here opens a socket
 * or resolves a name. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "ssrf.h"

/* Fills ss from a literal; false if it is not one. */
static bool addr_make(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(443);
		return true;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(443);
		return true;
	}
	return false;
}

struct classify_case {
	const char *addr;
	enum ssrf_class cls;
};

static const struct classify_case classify_cases[] = {
	/* IPv4 public */
	{ "8.8.8.8", SSRF_PUBLIC },
	{ "1.1.1.1", SSRF_PUBLIC },
	{ "93.184.216.34", SSRF_PUBLIC },
	{ "223.255.255.255", SSRF_PUBLIC },
	{ "192.0.1.1", SSRF_PUBLIC },
	{ "192.0.3.0", SSRF_PUBLIC },
	{ "198.17.255.255", SSRF_PUBLIC },
	{ "198.20.0.0", SSRF_PUBLIC },
	{ "198.51.99.255", SSRF_PUBLIC },
	{ "203.0.112.255", SSRF_PUBLIC },
	{ "203.0.114.0", SSRF_PUBLIC },
	{ "1.0.0.0", SSRF_PUBLIC },
	{ "126.255.255.255", SSRF_PUBLIC },
	{ "128.0.0.0", SSRF_PUBLIC },
	/* IPv4 boundaries of private ranges */
	{ "9.255.255.255", SSRF_PUBLIC },
	{ "10.0.0.0", SSRF_PRIVATE },
	{ "10.255.255.255", SSRF_PRIVATE },
	{ "11.0.0.0", SSRF_PUBLIC },
	{ "172.15.255.255", SSRF_PUBLIC },
	{ "172.16.0.0", SSRF_PRIVATE },
	{ "172.31.255.255", SSRF_PRIVATE },
	{ "172.32.0.0", SSRF_PUBLIC },
	{ "192.167.255.255", SSRF_PUBLIC },
	{ "192.168.0.0", SSRF_PRIVATE },
	{ "192.168.255.255", SSRF_PRIVATE },
	{ "192.169.0.0", SSRF_PUBLIC },
	{ "100.63.255.255", SSRF_PUBLIC },
	{ "100.64.0.0", SSRF_PRIVATE },
	{ "100.127.255.255", SSRF_PRIVATE },
	{ "100.128.0.0", SSRF_PUBLIC },
	/* IPv4 special */
	{ "0.0.0.0", SSRF_UNSPECIFIED },
	{ "0.255.255.255", SSRF_UNSPECIFIED },
	{ "127.0.0.1", SSRF_LOOPBACK },
	{ "127.255.255.254", SSRF_LOOPBACK },
	{ "169.254.169.254", SSRF_LINK_LOCAL },
	{ "169.253.255.255", SSRF_PUBLIC },
	{ "169.255.0.0", SSRF_PUBLIC },
	{ "192.0.0.0", SSRF_RESERVED },
	{ "192.0.0.255", SSRF_RESERVED },
	{ "192.0.2.1", SSRF_RESERVED },
	{ "192.88.99.1", SSRF_RESERVED },
	{ "198.18.0.0", SSRF_RESERVED },
	{ "198.19.255.255", SSRF_RESERVED },
	{ "198.51.100.7", SSRF_RESERVED },
	{ "203.0.113.9", SSRF_RESERVED },
	{ "224.0.0.1", SSRF_MULTICAST },
	{ "239.255.255.255", SSRF_MULTICAST },
	{ "240.0.0.0", SSRF_RESERVED },
	{ "255.255.255.254", SSRF_RESERVED },
	{ "255.255.255.255", SSRF_RESERVED },
	/* IPv6 */
	{ "::", SSRF_UNSPECIFIED },
	{ "::1", SSRF_LOOPBACK },
	{ "::2", SSRF_UNSPECIFIED }, /* v4-compatible 0.0.0.2 */
	{ "2606:4700:4700::1111", SSRF_PUBLIC },
	{ "2001:4860:4860::8888", SSRF_PUBLIC },
	{ "2a00:1450:4001:80b::200e", SSRF_PUBLIC },
	{ "3ffe::1", SSRF_PUBLIC },
	{ "fc00::1", SSRF_PRIVATE },
	{ "fd12:3456:789a::1", SSRF_PRIVATE },
	{ "fbff:ffff::1", SSRF_RESERVED }, /* just below fc00::/7, outside 2000::/3 */
	{ "fe80::1", SSRF_LINK_LOCAL },
	{ "febf:ffff::1", SSRF_LINK_LOCAL },
	{ "fec0::1", SSRF_PRIVATE },
	{ "feff::1", SSRF_PRIVATE },
	{ "ff02::1", SSRF_MULTICAST },
	{ "ff05::1:3", SSRF_MULTICAST },
	{ "2001:db8::1", SSRF_RESERVED },
	{ "2001:db8:ffff:ffff::1", SSRF_RESERVED },
	{ "2001:db9::1", SSRF_PUBLIC },
	{ "3fff::1", SSRF_RESERVED },
	{ "100::1", SSRF_RESERVED },
	{ "100::ffff:ffff:ffff:ffff", SSRF_RESERVED },
	{ "2001:2::1", SSRF_RESERVED },
	{ "2001:10::1", SSRF_RESERVED },
	{ "2001:20::1", SSRF_RESERVED },
	{ "64:ff9b:1::1", SSRF_RESERVED },
	{ "4000::1", SSRF_RESERVED },
	{ "1::1", SSRF_RESERVED },
	/* IPv4 embedded in IPv6: classified as the IPv4 address */
	{ "::ffff:127.0.0.1", SSRF_LOOPBACK },
	{ "::ffff:10.1.2.3", SSRF_PRIVATE },
	{ "::ffff:169.254.169.254", SSRF_LINK_LOCAL },
	{ "::ffff:8.8.8.8", SSRF_PUBLIC },
	{ "::ffff:0.0.0.0", SSRF_UNSPECIFIED },
	{ "::ffff:224.0.0.1", SSRF_MULTICAST },
	{ "::ffff:7f00:1", SSRF_LOOPBACK },
	{ "::127.0.0.1", SSRF_LOOPBACK },
	{ "::192.168.1.1", SSRF_PRIVATE },
	{ "::8.8.8.8", SSRF_PUBLIC },
	{ "64:ff9b::8.8.8.8", SSRF_PUBLIC },
	{ "64:ff9b::127.0.0.1", SSRF_LOOPBACK },
	{ "64:ff9b::a9fe:a9fe", SSRF_LINK_LOCAL },
	{ "64:ff9b::192.0.2.1", SSRF_RESERVED },
	{ "2002:a00:1::1", SSRF_PRIVATE },      /* 6to4 of 10.0.0.1 */
	{ "2002:7f00:1::", SSRF_LOOPBACK },     /* 6to4 of 127.0.0.1 */
	{ "2002:808:808::1", SSRF_PUBLIC },     /* 6to4 of 8.8.8.8 */
	/* Not v4-mapped: one bit off the prefix. */
	{ "::fffe:127.0.0.1", SSRF_RESERVED },
	{ "::1:ffff:127.0.0.1", SSRF_RESERVED },
};

static void test_classify_table(void)
{
	size_t n = sizeof(classify_cases) / sizeof(classify_cases[0]);

	CHECK(n >= 40);
	for (size_t i = 0; i < n; i++) {
		const struct classify_case *c = &classify_cases[i];
		struct sockaddr_storage ss;
		enum ssrf_class got;

		if (!addr_make(c->addr, &ss)) {
			CHECK_STR(c->addr, "(a valid literal)");
			continue;
		}
		got = ssrf_classify((const struct sockaddr *)&ss);
		if (got != c->cls)
			fprintf(stderr, "  %s: got %s, want %s\n", c->addr, ssrf_class_name(got),
				ssrf_class_name(c->cls));
		CHECK(got == c->cls);
		CHECK(ssrf_classify_text(c->addr) == (int)c->cls);
	}
}

static void test_classify_misc(void)
{
	struct sockaddr_storage ss;

	/* Not literals (hostnames, zone ids, odd IPv4 spellings inet_aton would take). */
	CHECK(ssrf_classify_text("localhost") == -1);
	CHECK(ssrf_classify_text("") == -1);
	CHECK(ssrf_classify_text(NULL) == -1);
	CHECK(ssrf_classify_text("fe80::1%eth0") == -1);
	CHECK(ssrf_classify_text("0x7f.0.0.1") == -1);
	CHECK(ssrf_classify_text("127.1") == -1);
	CHECK(ssrf_classify_text("2130706433") == -1);
	CHECK(ssrf_classify_text("10.0.0.1/8") == -1);

	/* Unknown family and NULL fail closed. */
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	CHECK(ssrf_classify((const struct sockaddr *)&ss) == SSRF_RESERVED);
	CHECK(ssrf_classify(NULL) == SSRF_RESERVED);
	CHECK(!ssrf_policy_check(NULL, (const struct sockaddr *)&ss, NULL));

	CHECK_STR(ssrf_class_name(SSRF_PUBLIC), "public");
	CHECK_STR(ssrf_class_name(SSRF_LOOPBACK), "loopback");
	CHECK_STR(ssrf_class_name(SSRF_PRIVATE), "private");
	CHECK_STR(ssrf_class_name(SSRF_LINK_LOCAL), "link-local");
	CHECK_STR(ssrf_class_name(SSRF_MULTICAST), "multicast");
	CHECK_STR(ssrf_class_name(SSRF_UNSPECIFIED), "unspecified");
	CHECK_STR(ssrf_class_name(SSRF_RESERVED), "reserved");
}

/* ssrf_policy_check on a literal; *cls receives the class. */
static bool allowed(const struct ssrf_policy *p, const char *text, enum ssrf_class *cls)
{
	struct sockaddr_storage ss;

	if (!addr_make(text, &ss)) {
		CHECK_STR(text, "(a valid literal)");
		return false;
	}
	return ssrf_policy_check(p, (const struct sockaddr *)&ss, cls);
}

static void test_allow_list(void)
{
	struct ssrf_policy p = { 0 };
	enum ssrf_class cls = SSRF_PUBLIC;
	char err[128];

	/* No allow-list: public only. */
	CHECK(allowed(&p, "8.8.8.8", &cls) && cls == SSRF_PUBLIC);
	CHECK(!allowed(&p, "127.0.0.1", &cls) && cls == SSRF_LOOPBACK);
	CHECK(!allowed(NULL, "10.0.0.1", &cls) && cls == SSRF_PRIVATE);
	CHECK(allowed(NULL, "2606:4700:4700::1111", NULL));

	CHECK(ssrf_policy_allow(&p, "127.0.0.0/8", err, sizeof(err)) == HOOKD_OK);
	CHECK(ssrf_policy_allow(&p, "10.1.0.0/16", err, sizeof(err)) == HOOKD_OK);
	CHECK(ssrf_policy_allow(&p, "192.168.7.7", err, sizeof(err)) == HOOKD_OK);
	CHECK(ssrf_policy_allow(&p, "::1/128", err, sizeof(err)) == HOOKD_OK);
	CHECK(ssrf_policy_allow(&p, "fd00:1234::/32", err, sizeof(err)) == HOOKD_OK);
	CHECK(ssrf_policy_allow(&p, "::ffff:172.16.0.0/108", err, sizeof(err)) == HOOKD_OK);
	CHECK(p.n_allow == 6);

	CHECK(allowed(&p, "127.0.0.1", &cls) && cls == SSRF_LOOPBACK);
	CHECK(allowed(&p, "127.255.255.255", NULL));
	CHECK(allowed(&p, "10.1.0.0", NULL));
	CHECK(allowed(&p, "10.1.255.255", &cls) && cls == SSRF_PRIVATE);
	CHECK(!allowed(&p, "10.2.0.0", &cls) && cls == SSRF_PRIVATE);
	CHECK(!allowed(&p, "10.0.255.255", NULL));
	CHECK(allowed(&p, "192.168.7.7", NULL));
	CHECK(!allowed(&p, "192.168.7.8", NULL));
	CHECK(!allowed(&p, "192.168.7.6", NULL));
	CHECK(allowed(&p, "::1", NULL));
	CHECK(allowed(&p, "fd00:1234:ffff::1", NULL));
	CHECK(!allowed(&p, "fd00:1235::1", NULL));
	CHECK(!allowed(&p, "169.254.169.254", &cls) && cls == SSRF_LINK_LOCAL);
	CHECK(!allowed(&p, "0.0.0.0", &cls) && cls == SSRF_UNSPECIFIED);
	CHECK(allowed(&p, "8.8.8.8", NULL));

	/* IPv4 CIDRs cover the v4-mapped form; a v4-mapped CIDR covers plain IPv4. */
	CHECK(allowed(&p, "::ffff:127.0.0.1", &cls) && cls == SSRF_LOOPBACK);
	CHECK(allowed(&p, "::ffff:10.1.2.3", NULL));
	CHECK(!allowed(&p, "::ffff:10.2.0.1", NULL));
	CHECK(allowed(&p, "::ffff:192.168.7.7", NULL));
	CHECK(allowed(&p, "172.16.0.1", NULL));
	CHECK(allowed(&p, "172.31.255.255", NULL));
	CHECK(allowed(&p, "::ffff:172.20.0.1", NULL));
	CHECK(!allowed(&p, "::ffff:192.168.0.1", &cls) && cls == SSRF_PRIVATE);
	/* Other embeddings are not unwrapped for the allow-list (allow them explicitly). */
	CHECK(!allowed(&p, "::127.0.0.1", &cls) && cls == SSRF_LOOPBACK);
	CHECK(!allowed(&p, "64:ff9b::10.1.0.1", &cls) && cls == SSRF_PRIVATE);
	ssrf_policy_free(&p);
	CHECK(p.allow == NULL && p.n_allow == 0);
	CHECK(!allowed(&p, "127.0.0.1", NULL));

	/* /0 allows everything; reuse after free works. */
	CHECK(ssrf_policy_allow(&p, "0.0.0.0/0", err, sizeof(err)) == HOOKD_OK);
	CHECK(allowed(&p, "10.0.0.1", NULL));
	CHECK(allowed(&p, "255.255.255.255", NULL));
	CHECK(allowed(&p, "::ffff:127.0.0.1", NULL));
	CHECK(!allowed(&p, "::1", NULL));
	CHECK(!allowed(&p, "fe80::1", NULL));
	CHECK(ssrf_policy_allow(&p, "::/0", err, sizeof(err)) == HOOKD_OK);
	CHECK(allowed(&p, "fe80::1", NULL));
	/* Even allow-everything refuses a missing or non-IP address. */
	CHECK(!ssrf_policy_check(&p, NULL, &cls) && cls == SSRF_RESERVED);
	ssrf_policy_free(&p);
	ssrf_policy_free(&p); /* twice is harmless */
	ssrf_policy_free(NULL);

	/* Odd prefixes at byte and bit boundaries. */
	CHECK(ssrf_policy_allow(&p, "100.64.0.0/10", err, sizeof(err)) == HOOKD_OK);
	CHECK(ssrf_policy_allow(&p, "fe80::/10", err, sizeof(err)) == HOOKD_OK);
	CHECK(allowed(&p, "100.127.255.255", NULL));
	CHECK(allowed(&p, "100.63.255.255", &cls) && cls == SSRF_PUBLIC);
	CHECK(!allowed(&p, "10.0.0.1", NULL));
	CHECK(allowed(&p, "febf::1", NULL));
	CHECK(!allowed(&p, "fec0::1", NULL));
	ssrf_policy_free(&p);
}

struct bad_cidr {
	const char *cidr, *message;
};

static const struct bad_cidr bad_cidrs[] = {
	{ "10.0.0.0/33", "invalid CIDR '10.0.0.0/33': prefix must be 0..32" },
	{ "::1/129", "invalid CIDR '::1/129': prefix must be 0..128" },
	{ "10.0.0.0/", "invalid CIDR '10.0.0.0/': prefix must be 0..32" },
	{ "10.0.0.0/-1", "invalid CIDR '10.0.0.0/-1': prefix must be 0..32" },
	{ "10.0.0.0/+8", "invalid CIDR '10.0.0.0/+8': prefix must be 0..32" },
	{ "10.0.0.0/ 8", "invalid CIDR '10.0.0.0/ 8': prefix must be 0..32" },
	{ "10.0.0.0/8x", "invalid CIDR '10.0.0.0/8x': prefix must be 0..32" },
	{ "10.0.0.0/8/8", "invalid CIDR '10.0.0.0/8/8': prefix must be 0..32" },
	{ "10.0.0.0/0008", "invalid CIDR '10.0.0.0/0008': prefix must be 0..32" },
	{ "10.0.0.0/99999999999999999999", "invalid CIDR '10.0.0.0/99999999999999999999': prefix must be 0..32" },
	{ "10.0.0.256/8", "invalid CIDR '10.0.0.256/8': not an IPv4 or IPv6 address" },
	{ "10.0.0/8", "invalid CIDR '10.0.0/8': not an IPv4 or IPv6 address" },
	{ "/8", "invalid CIDR '/8': not an IPv4 or IPv6 address" },
	{ "", "invalid CIDR '': not an IPv4 or IPv6 address" },
	{ "localhost", "invalid CIDR 'localhost': not an IPv4 or IPv6 address" },
	{ " 10.0.0.0/8", "invalid CIDR ' 10.0.0.0/8': not an IPv4 or IPv6 address" },
	{ "fe80::1%eth0/64", "invalid CIDR 'fe80::1%eth0/64': not an IPv4 or IPv6 address" },
	{ "1111:2222:3333:4444:5555:6666:7777:8888:9999/64",
	  "invalid CIDR '1111:2222:3333:4444:5555:6666:7777:8888:9999/64': not an IPv4 or IPv6 address" },
	{ "10.0.0.5/8", "invalid CIDR '10.0.0.5/8': host bits are set (network is 10.0.0.0/8)" },
	{ "fd00::1/8", "invalid CIDR 'fd00::1/8': host bits are set (network is fd00::/8)" },
	{ "192.168.1.1/0", "invalid CIDR '192.168.1.1/0': host bits are set (network is 0.0.0.0/0)" },
};

static void test_bad_cidrs(void)
{
	struct ssrf_policy p = { 0 };

	for (size_t i = 0; i < sizeof(bad_cidrs) / sizeof(bad_cidrs[0]); i++) {
		char err[160] = "";

		CHECK(ssrf_policy_allow(&p, bad_cidrs[i].cidr, err, sizeof(err)) == HOOKD_EINVAL);
		CHECK_STR(err, bad_cidrs[i].message);
	}
	CHECK(p.n_allow == 0 && p.allow == NULL);
	CHECK(ssrf_policy_allow(&p, NULL, NULL, 0) == HOOKD_EINVAL);
	CHECK(ssrf_policy_allow(NULL, "10.0.0.0/8", NULL, 0) == HOOKD_EINVAL);
	CHECK(ssrf_policy_allow(&p, "10.0.0.0/33", NULL, 0) == HOOKD_EINVAL);
	/* A short err buffer truncates the message but is still terminated. */
	{
		char small[8];

		CHECK(ssrf_policy_allow(&p, "10.0.0.0/33", small, sizeof(small)) == HOOKD_EINVAL);
		CHECK_STR(small, "invalid");
	}
	ssrf_policy_free(&p);
}

int main(void)
{
	test_classify_table();
	test_classify_misc();
	test_allow_list();
	test_bad_cidrs();
	return check_done();
}
