/* api_scan.c - HTTP/1.1 request framing as evhttp reads it (see api_scan.h). */
#include "api_scan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void api_scan_init(struct api_scan *s, const struct api_scan_limits *lim)
{
	memset(s, 0, sizeof(*s));
	s->lim = *lim;
	s->phase = API_SCAN_START;
}

bool api_scan_in_header(const struct api_scan *s)
{
	return s->phase == API_SCAN_REQLINE || s->phase == API_SCAN_FIELDS;
}

static void scan_refuse(struct api_scan *s, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void scan_refuse(struct api_scan *s, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	s->status = status;
	s->phase = API_SCAN_REFUSED;
}

static void scan_request_end(struct api_scan *s, struct api_scan_step *step)
{
	step->ends++;
	s->phase = API_SCAN_START;
}

/* The value of a field line, as evhttp stores it: after the colon, leading spaces skipped,
 * trailing spaces and tabs removed (evutil_rtrim_lws_). Modifies s->line. */
static char *scan_field_value(char *colon)
{
	char *v = colon + 1, *end;
	v += strspn(v, " ");
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return v;
}

/* A header or trailer field line (not the empty one). */
static void scan_field(struct api_scan *s, bool truncated, bool trailer)
{
	char *colon;
	size_t klen;

	if (++s->lines > s->lim.max_header_lines) {
		scan_refuse(s, 431, "more than limits.max_header_lines (%u) header fields",
			    (unsigned)s->lim.max_header_lines);
		return;
	}
	if (s->line[0] == ' ' || s->line[0] == '\t') {
		scan_refuse(s, 400, "a header line starts with a space or tab (obsolete line "
				    "folding is not accepted)");
		return;
	}
	if (trailer || !(colon = strchr(s->line, ':')))
		return; /* evhttp refuses a field without a colon itself */
	klen = (size_t)(colon - s->line);
	if (klen == 14 && strncasecmp(s->line, "Content-Length", 14) == 0 && !s->seen_cl) {
		char *v, *end;
		long long n;
		s->seen_cl = true;
		if (truncated) {
			scan_refuse(s, 400, "the Content-Length field is longer than %d bytes",
				    API_SCAN_LINE_KEEP);
			return;
		}
		v = scan_field_value(colon);
		errno = 0;
		n = strtoll(v, &end, 10);
		s->cl_bad = *v == '\0' || *end != '\0' || n < 0;
		s->cl = s->cl_bad ? 0 : (uint64_t)n;
	} else if (klen == 17 && strncasecmp(s->line, "Transfer-Encoding", 17) == 0 &&
		   !s->seen_te) {
		s->seen_te = true;
		if (truncated) {
			scan_refuse(s, 400, "the Transfer-Encoding field is longer than %d bytes",
				    API_SCAN_LINE_KEEP);
			return;
		}
		s->chunked = strcasecmp(scan_field_value(colon), "chunked") == 0;
	}
}

/* The end of the header block: where the body is, if there is one. */
static void scan_headers_done(struct api_scan *s, struct api_scan_step *step)
{
	if (!s->body_allowed) {
		scan_request_end(s, step);
	} else if (s->chunked) {
		s->phase = API_SCAN_CHUNK_SIZE;
		s->body_total = 0;
	} else if (s->seen_cl && s->cl_bad) {
		scan_refuse(s, 400, "invalid Content-Length (a decimal number of bytes is expected)");
	} else if (s->seen_cl && s->cl > s->lim.max_body_bytes) {
		scan_refuse(s, 413,
			    "request body is %llu bytes (Content-Length); limits.max_payload_bytes "
			    "is %llu",
			    (unsigned long long)s->cl, (unsigned long long)s->lim.max_body_bytes);
	} else if (s->seen_cl && s->cl > 0) {
		s->phase = API_SCAN_BODY;
		s->body_left = s->cl;
	} else {
		scan_request_end(s, step);
	}
}

static void scan_chunk_size(struct api_scan *s)
{
	char *end;
	long long n;
	if (s->line[0] == '\0')
		return; /* the CRLF after a chunk's data, or a stray empty line: evhttp skips it */
	errno = 0;
	n = strtoll(s->line, &end, 16);
	if ((*end != '\0' && *end != ' ') || n < 0) {
		scan_refuse(s, 400, "invalid chunk size line (hexadecimal digits expected)");
		return;
	}
	if ((uint64_t)n > s->lim.max_body_bytes - s->body_total) {
		scan_refuse(s, 413,
			    "chunked request body is over limits.max_payload_bytes (%llu bytes)",
			    (unsigned long long)s->lim.max_body_bytes);
		return;
	}
	s->body_total += (uint64_t)n;
	if (n == 0) {
		s->phase = API_SCAN_TRAILER;
	} else {
		s->phase = API_SCAN_CHUNK_DATA;
		s->body_left = (uint64_t)n;
	}
}

/* A complete line (its LF just seen) in a line phase. */
static void scan_line_done(struct api_scan *s, struct api_scan_step *step)
{
	size_t content = s->line_len;
	bool truncated;
	if (content > 0 && s->last == '\r')
		content--;
	truncated = content > API_SCAN_LINE_KEEP;
	s->line[content < API_SCAN_LINE_KEEP ? content : API_SCAN_LINE_KEEP] = '\0';
	s->line_len = 0;

	switch (s->phase) {
	case API_SCAN_REQLINE: {
		/* The method is what precedes the first space (evhttp: strsep). */
		size_t mlen = strcspn(s->line, " ");
		s->body_allowed = (mlen == 4 && memcmp(s->line, "POST", 4) == 0) ||
				  (mlen == 3 && memcmp(s->line, "PUT", 3) == 0) ||
				  (mlen == 5 && memcmp(s->line, "PATCH", 5) == 0);
		s->phase = API_SCAN_FIELDS;
		s->chunked = s->seen_te = s->seen_cl = s->cl_bad = false;
		s->cl = 0;
		return;
	}
	case API_SCAN_FIELDS:
		if (s->line[0] == '\0')
			scan_headers_done(s, step);
		else
			scan_field(s, truncated, false);
		return;
	case API_SCAN_TRAILER:
		if (s->line[0] == '\0')
			scan_request_end(s, step);
		else
			scan_field(s, truncated, true);
		return;
	case API_SCAN_CHUNK_SIZE:
		scan_chunk_size(s);
		return;
	default:
		return;
	}
}

void api_scan_feed(struct api_scan *s, const unsigned char *p, size_t len,
		   struct api_scan_step *step)
{
	size_t i = 0;
	memset(step, 0, sizeof(*step));
	while (i < len && s->phase != API_SCAN_REFUSED) {
		switch (s->phase) {
		case API_SCAN_START:
			step->begun = true;
			step->last_start = i;
			s->phase = API_SCAN_REQLINE;
			s->head_bytes = 0;
			s->lines = 0;
			s->line_len = 0;
			continue;
		case API_SCAN_BODY:
		case API_SCAN_CHUNK_DATA: {
			size_t n = len - i;
			if (n > s->body_left)
				n = (size_t)s->body_left;
			s->body_left -= n;
			i += n;
			if (s->body_left == 0) {
				if (s->phase == API_SCAN_BODY)
					scan_request_end(s, step);
				else
					s->phase = API_SCAN_CHUNK_SIZE;
			}
			continue;
		}
		default:
			break;
		}
		/* A line phase: one byte. */
		unsigned char ch = p[i++];
		if (s->phase != API_SCAN_CHUNK_SIZE && ++s->head_bytes > s->lim.max_header_bytes) {
			scan_refuse(s, 431,
				    "request line and header fields exceed limits.max_header_bytes "
				    "(%zu bytes)",
				    s->lim.max_header_bytes);
			break;
		}
		if (ch == '\n') {
			scan_line_done(s, step);
			continue;
		}
		if (s->line_len <= API_SCAN_LINE_KEEP)
			s->line[s->line_len] = (char)ch;
		s->line_len++;
		s->last = ch;
		if (s->phase == API_SCAN_CHUNK_SIZE && s->line_len > API_SCAN_LINE_KEEP + 1)
			scan_refuse(s, 400, "a chunk-size line is longer than %d bytes",
				    API_SCAN_LINE_KEEP);
	}
	step->used = i;
}
