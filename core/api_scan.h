/* api_scan.h - follows the framing of the HTTP/1.1 requests on one API connection as evhttp
 * (libevent 2.1.12, http.c) will read them, so that the connection layer (api_conn.c) can
 * enforce, on the bytes as they arrive and before evhttp buffers them, what evhttp has no
 * limit for: the size and number of header fields, a body announced (Content-Length) or
 * growing (chunked) past limits.max_payload_bytes, and where each request's header block
 * begins and ends (the header deadline). Pure: no I/O, no clock, no allocation.
 *
 * Mirrored from evhttp, because a disagreement would misplace the start of the next request
 * on a keep-alive connection: a line ends at LF, a CR before it is dropped, a NUL ends its
 * text; a request has a body only for POST, PUT and PATCH; the first Transfer-Encoding field
 * whose whole value is "chunked" (any case) wins over the first Content-Length field (its
 * whole value, strtoll base 10); a chunk size is strtoll base 16 followed by the end of the
 * line or a space; empty lines before a chunk size are skipped; the zero chunk is followed by
 * trailer fields up to an empty line.
 *
 * Refused rather than guessed (evhttp would read them some way): obsolete line folding,
 * Content-Length or Transfer-Encoding fields and chunk-size lines longer than
 * API_SCAN_LINE_KEEP bytes. */
#ifndef HOOKD_API_SCAN_H
#define HOOKD_API_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The bytes of a line the scanner keeps: a Content-Length, Transfer-Encoding or chunk-size
 * line is short (a 64-bit length is 20 digits); a longer one is refused, not truncated. */
#define API_SCAN_LINE_KEEP 256

struct api_scan_limits {
	size_t max_header_bytes;   /* request line, header fields and trailer, CRLFs included */
	uint32_t max_header_lines; /* header fields plus trailer fields */
	uint64_t max_body_bytes;   /* limits.max_payload_bytes */
};

enum api_scan_phase {
	API_SCAN_START,      /* between requests: the next byte begins a request line */
	API_SCAN_REQLINE,    /* in the request line */
	API_SCAN_FIELDS,     /* in the header fields */
	API_SCAN_BODY,       /* in a Content-Length body */
	API_SCAN_CHUNK_SIZE, /* in a chunk-size line (or an empty line before one) */
	API_SCAN_CHUNK_DATA, /* in a chunk's data */
	API_SCAN_TRAILER,    /* in the trailer fields after the zero chunk */
	API_SCAN_REFUSED     /* a request was refused: nothing more is examined */
};

struct api_scan {
	struct api_scan_limits lim;
	enum api_scan_phase phase;
	size_t head_bytes;    /* of the current request's line, fields and trailer */
	uint32_t lines;       /* fields and trailer fields of the current request */
	size_t line_len;      /* bytes of the current line so far, LF excluded */
	unsigned char last;   /* the last byte of the current line (a CR before LF is dropped) */
	char line[API_SCAN_LINE_KEEP + 2]; /* its first bytes (room for a CR), NUL-terminated */
	bool body_allowed;    /* POST, PUT, PATCH */
	bool chunked, seen_te, seen_cl, cl_bad;
	uint64_t cl;
	uint64_t body_left;   /* of the Content-Length body or of the current chunk */
	uint64_t body_total;  /* chunk sizes so far */
	int status;           /* 0, or the refusal: 400, 413 or 431 */
	char why[200];        /* the refusal for the client, naming the limit */
};

/* What one api_scan_feed call saw. */
struct api_scan_step {
	size_t used;       /* bytes examined: all of them, or up to and including the refused one */
	unsigned ends;     /* requests that ended within them */
	bool begun;        /* a request began within them ... */
	size_t last_start; /* ... and the last one began at this offset */
};

/* Starts s at the beginning of a connection. */
void api_scan_init(struct api_scan *s, const struct api_scan_limits *lim);

/* Examines the next len bytes received. After a refusal s->status and s->why say what was
 * wrong and the scanner examines nothing more (s->phase is API_SCAN_REFUSED). */
void api_scan_feed(struct api_scan *s, const unsigned char *p, size_t len,
		   struct api_scan_step *step);

/* True while in a request line or its header fields: what the header deadline covers. */
bool api_scan_in_header(const struct api_scan *s);

#endif
