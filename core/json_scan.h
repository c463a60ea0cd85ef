/* json_scan.h - a validating single-pass JSON scanner that builds no tree.
 *
 * A publish reads four top-level members of its body and splices the producer's "data"
 * bytes into the envelope; parsing the whole body into a jansson tree for that was the
 * largest share of hookd's CPU per publish (issue 9). json_scan validates the whole text
 * and records where the top-level members are; the caller reads them from the bytes.
 *
 * What it accepts is exactly what jansson 2.14 (Debian 12) accepts with
 * json_loadb(buf, len, JSON_REJECT_DUPLICATES, ...), which is what api_body_json parses
 * with, so a body is refused or accepted exactly as before, and the tree the policy path
 * builds later from the envelope (fanout_defer) cannot fail on it. That is RFC 8259 plus
 * jansson's own refusals, each kept on purpose:
 *   - the top level is an object or an array (no bare scalar);
 *   - a string is valid UTF-8 (no overlong forms, no encoded surrogates, nothing past
 *     U+10FFFF), has no raw byte below 0x20, and its escapes are the RFC's; a \u escape
 *     of a surrogate must be a high one followed by a low one; \u0000 is refused (in keys
 *     and values: jansson without JSON_ALLOW_NUL);
 *   - a number has no leading zero, no '+', no bare '.'; an integer (no fraction, no
 *     exponent) must fit int64_t, a real must not overflow a double (strtod's HUGE_VAL;
 *     underflow to 0 is accepted); "-0" is accepted;
 *   - a value may be nested at most JSON_SCAN_MAX_DEPTH deep, counted as jansson counts:
 *     the top-level value is at depth 1, each value inside a container one deeper;
 *   - a key repeated within one object, compared after unescaping ("a" and "\u0061" are
 *     the same key), is refused at any depth (JSON_REJECT_DUPLICATES). So a publish body
 *     never has two "type" or two "data" members: there is no "first" or "last" one to
 *     pick, the body is refused as invalid JSON, as it always was.
 * Whitespace is space, tab, CR and LF only (a UTF-8 byte order mark is refused).
 *
 * One difference, on purpose: a NUL byte is refused wherever it is. jansson 2.14's lexer
 * skips one NUL byte that directly follows a number or true/false/null (its unget of the
 * byte after the token leaves a NUL that reads as "no byte buffered"), so it took
 * {"n":1<NUL>} as {"n":1}; hookd then spliced the NUL into the envelope, cut the envelope
 * there, delivered that truncated text and could not read the message back.
 *
 * Errors name a byte offset and a short reason; the API does not show them (it lets
 * jansson word the error for the rare refused body, api_messages.c), tests and the fuzz
 * target do. */
#ifndef HOOKD_JSON_SCAN_H
#define HOOKD_JSON_SCAN_H

#include <stddef.h>

/* jansson 2.14's JSON_PARSER_MAX_DEPTH (jansson_config.h); test_json_scan checks they agree. */
#define JSON_SCAN_MAX_DEPTH 2048
/* Top-level members recorded. A publish knows four names and duplicates are refused, so
 * its first mistake is always among the first five members (api_messages.c). */
#define JSON_SCAN_MEMBERS 8

/* Bytes [off, off + len) of the scanned text. */
struct json_span {
	size_t off, len;
};

struct json_member {
	struct json_span key;   /* between the quotes, as written (escapes not decoded) */
	struct json_span value; /* the whole value: "..." with its quotes, {...}, [...], 1.5, true */
	int key_escaped;        /* the key holds a '\': read it with json_scan_string */
	int value_escaped;      /* the value is a string holding a '\' */
};

struct json_scan {
	char top;         /* '{' or '[': what the text is */
	size_t n_members; /* members of the top-level object, all of them */
	struct json_member member[JSON_SCAN_MEMBERS]; /* the first ones, in text order */
	size_t err_pos;   /* on HOOKD_EINVAL: the offset of the byte that made the text invalid */
	const char *err;  /* ... and why (static text) */
};

/* Scans buf (len bytes, need not be NUL-terminated) into *out. HOOKD_OK if it is one JSON
 * object or array as described above, HOOKD_EINVAL if not (out->err, out->err_pos),
 * HOOKD_ENOMEM if the table of keys (for duplicates) could not grow: bodies with more
 * than 32 keys in all use the heap; none is kept once it returns. */
int json_scan(const char *buf, size_t len, struct json_scan *out);

/* Decodes the contents of a string that json_scan accepted (s: n bytes between its quotes)
 * into out, writing at most cap bytes and no NUL. Returns the decoded length, which may be
 * more than cap (like snprintf) and is never more than n. The result holds no NUL byte. */
size_t json_scan_string(const char *s, size_t n, char *out, size_t cap);

#endif
