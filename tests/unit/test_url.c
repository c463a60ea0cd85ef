/* test_url.c - the endpoint URL validator (url.c). The end-to-end table (API and config
 * agree) is tests/faults/test_endpoint_urls.py; here: every accepted URL is one libcurl
 * parses to the very host and port we checked, so what is accepted can be sent, and the
 * boundaries of each rule. */
#include "check.h"
#include "err.h"
#include "url.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct good {
	const char *url, *host, *port; /* port NULL: none in the URL */
};

static const struct good good[] = {
	{"http://127.0.0.1:9000/hook", "127.0.0.1", "9000"},
	{"HTTPS://Example.COM:8443/a?b=c", "Example.COM", "8443"},
	{"https://example.com", "example.com", NULL},
	{"http://h/", "h", NULL},
	{"http://my_service:1/", "my_service", "1"},
	{"http://x:65535/", "x", "65535"},
	{"https://xn--bcher-kva.example/in", "xn--bcher-kva.example", NULL},
	{"https://[2001:db8::1]:8443/in?x=1", "[2001:db8::1]", "8443"},
	{"http://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1]", NULL},
	{"http://0.0.0.0/", "0.0.0.0", NULL},
	{"http://255.255.255.255/", "255.255.255.255", NULL},
	{"http://1password/", "1password", NULL}, /* a label may start with a digit */
	{"http://a.0x1g/", "a.0x1g", NULL},       /* not hex: a name, not a number */
	{"http://example.com/%zz{|}^`", "example.com", NULL},
};

static const char *const bad[] = {
	"", "http://", "https://", "http:", "//example.com/", "mailto:a@b", "HTTP:/x/",
	"http://x:0/", "http://x:00000/", "http://x:65536/", "http://x:123456/", "http://x:/",
	"http://x:+1/", "http://x: 1/", "http://[::1]:/", "http://[::1]:0/",
	"http://127.0.0.1%2e/", "http://%31/", "http://a%2eb/",
	"http://\xef\xbc\x91\xef\xbc\x92\xef\xbc\x97.0.0.1/", "http://x/\xc3\xa9", "http://x/\x01",
	"http://x/\t", "http://x/ ",
	"http://u@x/", "http://@x/", "http://u:p@x/", "http://x@/",
	"http://-a/", "http://a-/", "http://a.-b/", "http://a..b/", "http://.a/", "http://a./",
	"http://a$b/", "http://a\\b/", "http://[/", "http://[]/", "http://[::1/", "http://[::1]x/",
	"http://[::1]]/", "http://[fe80::1%25eth0]/", "http://[v1.x]/", "http://[1.2.3.4]/",
	"http://a[b]/", "http://:80/", "http://?", "http://#",
	"http://127.1/", "http://1.2.3/", "http://1.2.3.4.5/", "http://0x7f.0.0.1/",
	"http://0x7f000001/", "http://0X7F.1/", "http://2130706433/", "http://017700000001/",
	"http://127.000.0.1/", "http://01.2.3.4/", "http://256.0.0.1/", "http://1.2.3.1000/",
	"http://a.1/", "http://1.2.3.4./",
};

static void test_good_urls_parse_in_curl(void)
{
	char why[200];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good *g = &good[i];
		CURLU *u = curl_url();
		char *host = NULL, *port = NULL;
		int rc = url_endpoint_check(g->url, why, sizeof(why));
		if (rc != HOOKD_OK)
			fprintf(stderr, "refused %s: %s\n", g->url, why);
		CHECK(rc == HOOKD_OK);
		CHECK(u && curl_url_set(u, CURLUPART_URL, g->url, 0) == CURLUE_OK);
		CHECK(curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK);
		if (host)
			CHECK_STR(host, g->host);
		CURLUcode pc = curl_url_get(u, CURLUPART_PORT, &port, 0);
		if (g->port) {
			CHECK(pc == CURLUE_OK && port);
			if (port)
				CHECK_STR(port, g->port);
		} else {
			CHECK(pc == CURLUE_NO_PORT);
		}
		curl_free(host);
		curl_free(port);
		curl_url_cleanup(u);
	}
}

static void test_bad_urls_refused(void)
{
	char why[200];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = 0;
		int rc = url_endpoint_check(bad[i], why, sizeof(why));
		if (rc == HOOKD_OK)
			fprintf(stderr, "accepted %s\n", bad[i]);
		CHECK(rc == HOOKD_EINVAL);
		CHECK(why[0] != 0);
	}
}

static void test_lengths(void)
{
	char url[URL_MAX + 2], why[200];
	size_t head = strlen("http://example.com/");

	/* Exactly URL_MAX bytes is fine; one more is ETOOBIG with the limit named. */
	memcpy(url, "http://example.com/", head);
	memset(url + head, 'p', URL_MAX - head);
	url[URL_MAX] = 0;
	CHECK(url_endpoint_check(url, why, sizeof(why)) == HOOKD_OK);
	url[URL_MAX] = 'p';
	url[URL_MAX + 1] = 0;
	CHECK(url_endpoint_check(url, why, sizeof(why)) == HOOKD_ETOOBIG);
	CHECK(strstr(why, "2048") != NULL);

	/* Labels: 63 bytes ok, 64 not; names: 253 ok, 254 not. */
	char host[300];
	memset(host, 'a', 63);
	host[63] = 0;
	snprintf(url, sizeof(url), "http://%s/", host);
	CHECK(url_endpoint_check(url, why, sizeof(why)) == HOOKD_OK);
	snprintf(url, sizeof(url), "http://%sa/", host);
	CHECK(url_endpoint_check(url, why, sizeof(why)) == HOOKD_EINVAL);
	/* 4 labels of 63 + 3 dots = 255; trim to 253 and 254. */
	snprintf(host, sizeof(host), "%.63s.%.63s.%.63s.%.61s", url + 7, url + 7, url + 7, url + 7);
	CHECK(strlen(host) == 253);
	snprintf(url, sizeof(url), "http://%s/", host);
	CHECK(url_endpoint_check(url, why, sizeof(why)) == HOOKD_OK);
	snprintf(url, sizeof(url), "http://%sb/", host);
	CHECK(url_endpoint_check(url, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "253") != NULL);
}

static void test_reasons(void)
{
	char why[200];
	CHECK(url_endpoint_check("http://x:0/", why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "the port must be 1..65535");
	CHECK(url_endpoint_check("ftp://x/", why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "expected an http:// or https:// URL");
	CHECK(url_endpoint_check("http://x/a b", why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "spaces and control characters must be percent-encoded");
	CHECK(url_endpoint_check("http:///", why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "the URL has no host");
	CHECK(url_endpoint_check("http://127.0.0.1%2e/", why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "the host may not be percent-encoded");
	CHECK(url_endpoint_check("http://[fe80::1%25lo]/", why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "IPv6 zone ids ('%25') are not allowed");
	/* A short buffer truncates the reason; none at all is allowed. */
	CHECK(url_endpoint_check("http://x:0/", why, 9) == HOOKD_EINVAL);
	CHECK_STR(why, "the port");
	CHECK(url_endpoint_check("http://x:0/", NULL, 0) == HOOKD_EINVAL);
}

/* url_endpoint_host: the host the proxied path resolves and the port it connects to, for
 * every accepted URL of the table (brackets of IPv6 hosts dropped, the scheme's port when
 * the URL has none). */
static void test_endpoint_host(void)
{
	char host[256], want[256];
	unsigned port = 0;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const char *h = good[i].host;
		size_t n = strlen(h);
		snprintf(want, sizeof(want), "%.*s", h[0] == '[' ? (int)n - 2 : (int)n,
			 h[0] == '[' ? h + 1 : h);
		CHECK(url_endpoint_host(good[i].url, host, sizeof(host), &port) == HOOKD_OK);
		CHECK_STR(host, want);
		if (good[i].port)
			CHECK(port == (unsigned)strtoul(good[i].port, NULL, 10));
		else
			CHECK(port == (strncasecmp(good[i].url, "https", 5) == 0 ? 443u : 80u));
	}
	CHECK(url_endpoint_host("ftp://x/", host, sizeof(host), &port) == HOOKD_EINVAL);
	CHECK(url_endpoint_host("http://example.com/", host, 5, &port) == HOOKD_EINVAL);
}

static void test_proxy_urls(void)
{
	static const char *const ok[] = {"http://127.0.0.1:3128", "HTTP://proxy.internal:8080/",
					 "http://[::1]:3128", "http://[2001:db8::1]:1/"};
	static const struct {
		const char *url, *why;
	} no[] = {
		{"", "expected http://HOST:PORT"},
		{"socks5://127.0.0.1:1080", "expected http://HOST:PORT"},
		{"http://proxy", "the proxy URL needs a port (http://HOST:PORT)"},
		{"http://proxy:0", "the port must be 1..65535"},
		{"http://proxy:3128/x", "expected http://HOST:PORT without a path"},
		{"http://proxy:3128?x", "expected http://HOST:PORT without a path"},
		{"http://u:p@proxy:3128", "user names and passwords (user:pass@) are not supported in "
					  "the proxy URL"},
		{"http://127.1:3128", NULL},
		{"http://[::1:3128", "bad IPv6 address in brackets"},
		{"http://a b:1", "spaces and control characters must be percent-encoded"},
	};
	char why[300];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		CHECK(url_proxy_check(ok[i], why, sizeof(why)) == HOOKD_OK);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		CHECK(url_proxy_check(no[i].url, why, sizeof(why)) == HOOKD_EINVAL);
		if (no[i].why)
			CHECK_STR(why, no[i].why);
	}
	CHECK(url_proxy_check("https://p:1", why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "an https:// proxy is not supported") == why);
}

/* Plugin URLs (url_scheme, url_plugin_check, url_split): the scheme selects a plugin
 * transport; its authority follows the http rules, or is empty for a local one. */
static void test_plugin_urls(void)
{
	char scheme[URL_SCHEME_MAX + 1], why[200];
	struct url_parts p;

	CHECK(url_scheme("NATS://h:4222/x", scheme) && strcmp(scheme, "nats") == 0);
	CHECK(url_scheme("a+b.c-d://", scheme) && strcmp(scheme, "a+b.c-d") == 0);
	CHECK(!url_scheme("plugin:nats", scheme) && scheme[0] == '\0');
	/* Which URLs a plugin transport gets: any scheme but http and https, in any case. */
	CHECK(url_plugin_scheme("nats://h:4222/x", scheme) && strcmp(scheme, "nats") == 0);
	CHECK(!url_plugin_scheme("HTTPS://h/x", scheme) && strcmp(scheme, "https") == 0);
	CHECK(!url_plugin_scheme("http://h/x", scheme));
	CHECK(!url_plugin_scheme("h/x", scheme));
	CHECK(!url_scheme("1x://h/", scheme));
	CHECK(!url_scheme("://h/", scheme));
	CHECK(!url_scheme("abcdefghijklmnopqrstuvwxyzabcdefg://h/", scheme)); /* 33 bytes */

	CHECK(url_plugin_check("nats://10.1.2.3:4222/orders", true, why, sizeof(why)) == HOOKD_OK);
	CHECK(url_plugin_check("nats://broker.internal/orders", true, why, sizeof(why)) == HOOKD_OK);
	CHECK(url_plugin_check("nats://[::1]:4222/o", true, why, sizeof(why)) == HOOKD_OK);
	CHECK(url_plugin_check("nats:///orders", true, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "the URL has no host");
	CHECK(url_plugin_check("nats://h:0/o", true, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK_STR(why, "the port must be 1..65535");
	CHECK(url_plugin_check("nats://u:p@h/o", true, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "user:pass@") != NULL);
	CHECK(url_plugin_check("nats://127.1/o", true, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(url_plugin_check("file:///var/x.jsonl", false, why, sizeof(why)) == HOOKD_OK);
	CHECK(url_plugin_check("file://host/x", false, why, sizeof(why)) == HOOKD_EINVAL);
	CHECK(strstr(why, "no host") != NULL);
	CHECK(url_plugin_check("file:///a b", false, why, sizeof(why)) == HOOKD_EINVAL);

	CHECK(url_split("nats://[::1]:4222/or%2Fders?js=1#frag", &p) == HOOKD_OK);
	CHECK_STR(p.host, "::1");
	CHECK(p.port == 4222);
	CHECK(p.path_len == 10 && strncmp(p.path, "/or%2Fders", 10) == 0);
	CHECK(p.query_len == 4 && strncmp(p.query, "js=1", 4) == 0);
	CHECK(url_split("redis://h/stream", &p) == HOOKD_OK);
	CHECK_STR(p.host, "h");
	CHECK(p.port == 0 && p.query_len == 0 && strcmp(p.query, "") == 0);
	CHECK(url_split("file:///tmp/x", &p) == HOOKD_OK);
	CHECK_STR(p.host, "");
	CHECK(p.path_len == 6 && strncmp(p.path, "/tmp/x", 6) == 0);
	CHECK(url_split("x://h?q", &p) == HOOKD_OK);
	CHECK(p.path_len == 0 && p.query_len == 1);
}

int main(void)
{
	test_good_urls_parse_in_curl();
	test_bad_urls_refused();
	test_lengths();
	test_reasons();
	test_endpoint_host();
	test_proxy_urls();
	test_plugin_urls();
	return check_done();
}
