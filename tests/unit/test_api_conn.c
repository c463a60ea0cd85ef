/* test_api_conn.c - the pure parts of the API's connection layer: request framing and
 * limits (core/api_scan.c) and the connection cap (api_conns_cap in core/api_conn.c). */
#include "api_conn.h"
#include "api_scan.h"
#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const struct api_scan_limits LIMITS = {1024, 10, 100};

struct run {
	unsigned ends;
	size_t used;
	int status;
	bool in_header;
	enum api_scan_phase phase;
	char why[200];
};

/* Feeds text in pieces of chunk bytes (0: all at once) to a fresh scanner. */
static struct run feed(const char *text, size_t len, size_t chunk, const struct api_scan_limits *lim)
{
	struct api_scan s;
	struct api_scan_step step;
	struct run r = {0};
	api_scan_init(&s, lim ? lim : &LIMITS);
	for (size_t off = 0; off < len && !s.status;) {
		size_t n = chunk && len - off > chunk ? chunk : len - off;
		api_scan_feed(&s, (const unsigned char *)text + off, n, &step);
		r.ends += step.ends;
		r.used = off + step.used;
		off += n;
	}
	r.status = s.status;
	r.in_header = api_scan_in_header(&s);
	r.phase = s.phase;
	snprintf(r.why, sizeof(r.why), "%s", s.why);
	return r;
}

/* The same result whatever the pieces the bytes arrive in. */
static struct run feed_all_ways(const char *text, unsigned ends, int status)
{
	size_t len = strlen(text);
	struct run first = feed(text, len, 0, NULL);
	for (size_t chunk = 1; chunk <= len; chunk++) {
		struct run r = feed(text, len, chunk, NULL);
		if (r.ends != ends || r.status != status || r.phase != first.phase) {
			fprintf(stderr, "  pieces of %zu: ends %u status %d phase %d, expected %u %d %d\n",
				chunk, r.ends, r.status, (int)r.phase, ends, status, (int)first.phase);
			CHECK(0);
			break;
		}
	}
	CHECK(first.ends == ends);
	CHECK(first.status == status);
	return first;
}

static void test_framing(void)
{
	struct run r;
	/* Requests without bodies, with LF or CRLF line ends. */
	r = feed_all_ways("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\nHost: x\n\n", 2, 0);
	CHECK(r.phase == API_SCAN_START && !r.in_header);
	/* Content-Length bodies, then a pipelined GET; a body that looks like headers is body. */
	r = feed_all_ways("POST /m HTTP/1.1\r\nContent-Length: 10\r\n\r\n\r\n\r\nX: y\r\n"
			  "PUT /p HTTP/1.1\r\ncontent-length:3\r\n\r\nabc"
			  "GET /c HTTP/1.1\r\n\r\n",
			  3, 0);
	CHECK(r.phase == API_SCAN_START);
	/* GET, DELETE and unknown methods have no body for evhttp, whatever Content-Length says:
	 * the bytes after the header block are the next request. */
	r = feed_all_ways("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nDELETE /x HTTP/1.1\r\n"
			  "Content-Length: 2\r\n\r\nFOO / HTTP/1.1\r\nContent-Length: 9\r\n\r\n",
			  3, 0);
	/* Chunked, with the CRLF after each chunk, empty lines, a hex prefix, a trailer, and a
	 * Content-Length that chunked overrides. */
	r = feed_all_ways("POST /m HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: Chunked\r\n\r\n"
			  "a\r\n0123456789\r\n\r\n0x5 ext\r\nabcde\r\n0\r\nX-Trailer: 1\r\n\r\n"
			  "GET / HTTP/1.1\r\n\r\n",
			  2, 0);
	/* Only a whole "chunked" value counts (evhttp): otherwise Content-Length frames it. */
	r = feed_all_ways("POST /m HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 2\r\n"
			  "\r\nokGET / HTTP/1.1\r\n\r\n",
			  2, 0);
	/* The first Content-Length is the one evhttp reads. */
	r = feed_all_ways("POST /m HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 50\r\n\r\nok"
			  "GET / HTTP/1.1\r\n\r\n",
			  2, 0);
	/* Mid-request states. */
	r = feed_all_ways("GET / HTTP/1.1\r\nHost: x", 0, 0);
	CHECK(r.in_header && r.phase == API_SCAN_FIELDS);
	r = feed_all_ways("GET / HT", 0, 0);
	CHECK(r.in_header && r.phase == API_SCAN_REQLINE);
	r = feed_all_ways("POST / HTTP/1.1\r\nContent-Length: 50\r\n\r\nabc", 0, 0);
	CHECK(!r.in_header && r.phase == API_SCAN_BODY);
	r = feed_all_ways("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 0, 0);
	CHECK(!r.in_header && r.phase == API_SCAN_CHUNK_DATA);
}

static void test_where_requests_start(void)
{
	const char *t = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nX: y\r\n\r\nGET /c";
	struct api_scan s;
	struct api_scan_step step;
	api_scan_init(&s, &LIMITS);
	api_scan_feed(&s, (const unsigned char *)t, strlen(t), &step);
	CHECK(step.ends == 2 && step.begun && step.used == strlen(t));
	CHECK(step.last_start == strlen(t) - strlen("GET /c"));
	/* A feed within one request begins none. */
	api_scan_feed(&s, (const unsigned char *)" HTTP/1.1\r\n", 11, &step);
	CHECK(step.ends == 0 && !step.begun && api_scan_in_header(&s));
}

static void test_refusals(void)
{
	struct run r;
	char big[2048];

	/* Header bytes: the limit counts the request line and the CRLFs. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	big[sizeof(big) - 1] = '\0';
	r = feed_all_ways(big, 0, 431);
	CHECK(r.used == 1025 && strstr(r.why, "limits.max_header_bytes (1024 bytes)"));
	CHECK(r.phase == API_SCAN_REFUSED && !r.in_header);
	/* Header lines: 10 pass, 11 do not. */
	char lines[512];
	size_t n = (size_t)snprintf(lines, sizeof(lines), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 10; i++)
		n += (size_t)snprintf(lines + n, sizeof(lines) - n, "A: b\r\n");
	char ok[600];
	snprintf(ok, sizeof(ok), "%s\r\n", lines);
	feed_all_ways(ok, 1, 0);
	snprintf(lines + n, sizeof(lines) - n, "A: b\r\n\r\n");
	r = feed_all_ways(lines, 0, 431);
	CHECK(strstr(r.why, "limits.max_header_lines (10)") != NULL);
	/* A body announced over the limit, before any of it arrives. */
	r = feed_all_ways("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 0, 413);
	CHECK(strstr(r.why, "101 bytes") && strstr(r.why, "limits.max_payload_bytes is 100"));
	feed_all_ways("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", 0, 0);
	r = feed_all_ways("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0, 413);
	/* Chunks adding up past the limit; each under it. */
	r = feed_all_ways("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "32\r\n01234567890123456789012345678901234567890123456789\r\n"
			  "33\r\n", 0, 413);
	CHECK(strstr(r.why, "limits.max_payload_bytes (100 bytes)") != NULL);
	feed_all_ways("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n", 0, 0);
	/* Malformed framing evhttp would read some way: refused. */
	feed_all_ways("POST / HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 0, 400);
	feed_all_ways("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0, 400);
	feed_all_ways("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 0, 400);
	feed_all_ways("GET / HTTP/1.1\r\nContent-Length: junk\r\n\r\n", 1, 0); /* no body: unread */
	feed_all_ways("GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n", 0, 400);
	feed_all_ways("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 400);
	feed_all_ways("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", 0, 400);
	/* Framing fields and chunk-size lines longer than the scanner keeps. */
	char longcl[600];
	snprintf(longcl, sizeof(longcl), "POST / HTTP/1.1\r\nContent-Length: %0300d\r\n\r\n", 5);
	feed_all_ways(longcl, 0, 400);
	char longchunk[600];
	snprintf(longchunk, sizeof(longchunk),
		 "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%0300d\r\n", 5);
	feed_all_ways(longchunk, 0, 400);
	/* After a refusal nothing more is examined. */
	struct api_scan s;
	struct api_scan_step step;
	api_scan_init(&s, &LIMITS);
	api_scan_feed(&s, (const unsigned char *)"GET / HTTP/1.1\r\n a\r\n", 20, &step);
	CHECK(s.status == 400 && step.used == 20);
	api_scan_feed(&s, (const unsigned char *)"GET / HTTP/1.1\r\n\r\n", 18, &step);
	CHECK(step.used == 0 && step.ends == 0 && s.status == 400);
}

static void test_cap(void)
{
	/* The configured cap when descriptors are plenty. */
	CHECK(api_conns_cap(1024, 1048576, 1024) == 1024);
	/* Below the limit less what deliveries and the daemon keep (2 x max_inflight + 320). */
	CHECK(api_conns_cap(1024, 512, 16) == 512 - 32 - 320);
	CHECK(api_conns_cap(100, 512, 16) == 100);
	/* Never below the floor, even when the reserve takes everything. */
	CHECK(api_conns_cap(1024, 1024, 1024) == 16);
	CHECK(api_conns_cap(1024, 0, 0) == 16);
	CHECK(api_conns_cap(4, 0, 0) == 4);
}

int main(void)
{
	test_framing();
	test_where_requests_start();
	test_refusals();
	test_cap();
	return check_done();
}
