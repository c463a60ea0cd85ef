/* config.c - the YAML configuration: libyaml events -> a small node tree with line
 * numbers -> struct config, checked key by key against tables of known keys.
 *
 * Two passes keep each one simple. The tree pass knows only YAML (syntax, anchors,
 * tags, nesting depth) and records the line of every node. The config pass knows only
 * hookd's keys, so every refusal can name the file, the line and the full key path
 * ("cfg.yaml:12: delivery.timeout_ms: expected an integer, got 'fast'"). */
#include "config.h"
#include "err.h"
#include "header.h"
#include "log.h"
#include "ssrf.h"
#include "url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* The parts of the file shown in messages are cut here: enough to recognise a value,
 * short enough that a pasted blob does not flood the log. */
#define CFG_SHOW_MAX 40
/* Key paths ("apps[12].endpoints[3].policy.params.paths[0]") are far below this. */
#define CFG_PATH_MAX 256
/* A real config nests at most 6 levels (apps/endpoints/policy/params/...); 64 leaves room
 * for policy params while bounding the recursion of every pass over the tree. */
#define TREE_MAX_DEPTH 64
/* ~10k declared endpoints at ~400 bytes each; beyond that the API is the right tool. The
 * cap also keeps `--config /dev/zero` from eating memory. */
#define CFG_FILE_MAX (4u * 1024 * 1024)

/* ---- the node tree ----------------------------------------------------------------- */

enum ynode_kind { YNODE_SCALAR, YNODE_SEQ, YNODE_MAP };

struct ynode {
	enum ynode_kind kind;
	int line;             /* 1-based line where the node starts */
	bool quoted;          /* scalar written quoted, as a block or tagged !!str: a string */
	char *text;           /* scalar: the value, NUL-terminated, no NUL inside */
	struct ynode **kids;  /* seq: the items; map: key, value, key, value, ... */
	size_t n_kids;
	size_t cap_kids;
};

struct cfg_ctx {
	const char *name;     /* file name for messages */
	const char *text;     /* the input, to turn a reader error's byte offset into a line */
	size_t len;
	char *err;
	size_t errlen;
	int rc;               /* first failure; later ones are not reported */
	struct config *root;  /* for checks across apps (endpoint ids are unique everywhere) */
};

static void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n_kids; i++)
		ynode_free(n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n);
}

static int ynode_push(struct ynode *parent, struct ynode *kid)
{
	if (parent->n_kids == parent->cap_kids) {
		size_t cap = parent->cap_kids ? parent->cap_kids * 2 : 8;
		struct ynode **kids = realloc(parent->kids, cap * sizeof(*kids));
		if (!kids)
			return HOOKD_ENOMEM;
		parent->kids = kids;
		parent->cap_kids = cap;
	}
	parent->kids[parent->n_kids++] = kid;
	return HOOKD_OK;
}

/* A plain scalar spelled as YAML 1.2 core-schema null (an empty value too). */
static bool ynode_is_null(const struct ynode *n)
{
	if (n->kind != YNODE_SCALAR || n->quoted)
		return false;
	return n->text[0] == '\0' || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
	       strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

static const struct ynode *ynode_map_get(const struct ynode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n_kids; i += 2)
		if (strcmp(map->kids[i]->text, key) == 0)
			return map->kids[i + 1];
	return NULL;
}

/* ---- messages ----------------------------------------------------------------------- */

static void cfg_fail(struct cfg_ctx *ctx, int line, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Records the first failure as "name:line: path: message" (no "path: " when empty). */
static void cfg_fail(struct cfg_ctx *ctx, int line, const char *path, const char *fmt, ...)
{
	if (ctx->rc != HOOKD_OK)
		return;
	ctx->rc = HOOKD_ECONFIG;
	if (!ctx->err || ctx->errlen == 0)
		return;
	int n;
	if (path && *path)
		n = snprintf(ctx->err, ctx->errlen, "%s:%d: %s: ", ctx->name, line, path);
	else
		n = snprintf(ctx->err, ctx->errlen, "%s:%d: ", ctx->name, line);
	if (n < 0 || (size_t)n >= ctx->errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static void cfg_nomem(struct cfg_ctx *ctx)
{
	if (ctx->rc != HOOKD_OK)
		return;
	ctx->rc = HOOKD_ENOMEM;
	if (ctx->err && ctx->errlen)
		snprintf(ctx->err, ctx->errlen, "%s: out of memory while reading the configuration",
			 ctx->name);
}

/* Describes a node for "got ...": a quoted, shortened scalar with control characters
 * replaced (the text goes to a log line), or what kind of node it is. */
static const char *cfg_show(const struct ynode *n, char *buf, size_t len)
{
	if (n->kind == YNODE_MAP)
		return "a mapping";
	if (n->kind == YNODE_SEQ)
		return "a list";
	if (!n->quoted && n->text[0] == '\0')
		return "an empty value";
	size_t tlen = strlen(n->text), w = 0;
	bool cut = tlen > CFG_SHOW_MAX;
	if (len < CFG_SHOW_MAX + 8)
		return "a value";
	buf[w++] = '\'';
	for (size_t i = 0; i < tlen && i < CFG_SHOW_MAX; i++) {
		unsigned char ch = (unsigned char)n->text[i];
		buf[w++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (cut) {
		memcpy(buf + w, "...", 3);
		w += 3;
	}
	buf[w++] = '\'';
	buf[w] = '\0';
	return buf;
}

/* A path longer than the buffer ends in "..."; the line number still locates the key. */
static void cfg_path_mark_cut(char *out, size_t len, int n)
{
	if ((n < 0 || (size_t)n >= len) && len > 4)
		memcpy(out + len - 4, "...", 4);
}

static void cfg_path_key(char *out, size_t len, const char *path, const char *key)
{
	int n;
	if (path && *path)
		n = snprintf(out, len, "%s.%s", path, key);
	else
		n = snprintf(out, len, "%s", key);
	cfg_path_mark_cut(out, len, n);
}

static void cfg_path_index(char *out, size_t len, const char *path, size_t i)
{
	cfg_path_mark_cut(out, len, snprintf(out, len, "%s[%zu]", path, i));
}

/* ---- YAML -> tree ------------------------------------------------------------------- */

static int mark_line(yaml_mark_t m)
{
	return m.line >= (size_t)INT32_MAX ? INT32_MAX : (int)m.line + 1;
}

static void tree_fail_syntax(struct cfg_ctx *ctx, const yaml_parser_t *p)
{
	if (p->error == YAML_MEMORY_ERROR) {
		cfg_nomem(ctx);
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		/* Reader errors (bad encoding) carry a byte offset, not a mark. */
		int line = 1;
		for (size_t i = 0; i < p->problem_offset && i < ctx->len; i++)
			if (ctx->text[i] == '\n')
				line++;
		cfg_fail(ctx, line, NULL, "YAML error: %s (byte %zu)",
			 p->problem ? p->problem : "unreadable input", p->problem_offset);
		return;
	}
	const char *problem = p->problem ? p->problem : "malformed YAML";
	int line = mark_line(p->problem_mark);
	char where[32];
	snprintf(where, sizeof(where), "%zu", p->problem_mark.column + 1);
	/* The name:line: prefix stays first so every message has the same shape; the column
	 * follows it. */
	if (p->context)
		cfg_fail(ctx, line, NULL,
			 "column %s: YAML syntax error: %s (%s at line %d, column %zu)", where,
			 problem, p->context, mark_line(p->context_mark), p->context_mark.column + 1);
	else
		cfg_fail(ctx, line, NULL, "column %s: YAML syntax error: %s", where, problem);
}

static int tree_next(struct cfg_ctx *ctx, yaml_parser_t *p, yaml_event_t *ev)
{
	if (yaml_parser_parse(p, ev))
		return HOOKD_OK;
	tree_fail_syntax(ctx, p);
	return ctx->rc;
}

/* Anchors and aliases are refused: they would let one line expand into many values
 * (and a line number would no longer say where a value came from). */
static int tree_check_props(struct cfg_ctx *ctx, int line, const yaml_char_t *anchor,
			    const yaml_char_t *tag, const char *allowed_tag)
{
	if (anchor) {
		cfg_fail(ctx, line, NULL,
			 "anchors and aliases (&%s) are not supported; write the value out", anchor);
		return ctx->rc;
	}
	if (tag && strcmp((const char *)tag, allowed_tag) != 0) {
		cfg_fail(ctx, line, NULL, "YAML tag '%s' is not supported (only !!str)", tag);
		return ctx->rc;
	}
	return HOOKD_OK;
}

/* Builds the node that starts with ev (a scalar, alias or collection start). */
static int tree_parse_node(struct cfg_ctx *ctx, yaml_parser_t *p, yaml_event_t *ev, int depth,
			   struct ynode **out)
{
	struct ynode *n = NULL;
	int line = mark_line(ev->start_mark);

	*out = NULL;
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		cfg_fail(ctx, line, NULL,
			 "anchors and aliases (*%s) are not supported; write the value out",
			 ev->data.alias.anchor);
		return ctx->rc;
	case YAML_SCALAR_EVENT: {
		const char *v = (const char *)ev->data.scalar.value;
		size_t vlen = ev->data.scalar.length;
		if (tree_check_props(ctx, line, ev->data.scalar.anchor, ev->data.scalar.tag,
				     YAML_STR_TAG))
			return ctx->rc;
		if (memchr(v, '\0', vlen)) {
			cfg_fail(ctx, line, NULL, "a value contains a NUL character");
			return ctx->rc;
		}
		n = calloc(1, sizeof(*n));
		if (!n || !(n->text = malloc(vlen + 1)))
			goto nomem;
		memcpy(n->text, v, vlen);
		n->text[vlen] = '\0';
		n->kind = YNODE_SCALAR;
		n->line = line;
		n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
			    ev->data.scalar.tag != NULL;
		*out = n;
		return HOOKD_OK;
	}
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		bool is_map = ev->type == YAML_MAPPING_START_EVENT;
		yaml_event_type_t end = is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
		const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor
						   : ev->data.sequence_start.anchor;
		const yaml_char_t *tag = is_map ? ev->data.mapping_start.tag
						: ev->data.sequence_start.tag;
		if (tree_check_props(ctx, line, anchor, tag, is_map ? YAML_MAP_TAG : YAML_SEQ_TAG))
			return ctx->rc;
		if (depth >= TREE_MAX_DEPTH) {
			cfg_fail(ctx, line, NULL, "nested deeper than %d levels", TREE_MAX_DEPTH);
			return ctx->rc;
		}
		n = calloc(1, sizeof(*n));
		if (!n)
			goto nomem;
		n->kind = is_map ? YNODE_MAP : YNODE_SEQ;
		n->line = line;
		for (;;) {
			yaml_event_t kev;
			struct ynode *kid = NULL;
			if (tree_next(ctx, p, &kev))
				goto fail;
			if (kev.type == end) {
				yaml_event_delete(&kev);
				break;
			}
			int rc = tree_parse_node(ctx, p, &kev, depth + 1, &kid);
			yaml_event_delete(&kev);
			if (rc)
				goto fail;
			if (is_map && n->n_kids % 2 == 0 && kid->kind != YNODE_SCALAR) {
				cfg_fail(ctx, kid->line, NULL,
					 "a mapping key must be a plain value, not %s",
					 kid->kind == YNODE_MAP ? "a mapping" : "a list");
				ynode_free(kid);
				goto fail;
			}
			if (ynode_push(n, kid)) {
				ynode_free(kid);
				goto nomem;
			}
		}
		*out = n;
		return HOOKD_OK;
	}
	default:
		cfg_fail(ctx, line, NULL, "unexpected YAML event %d", (int)ev->type);
		return ctx->rc;
	}

nomem:
	cfg_nomem(ctx);
fail:
	ynode_free(n);
	return ctx->rc;
}

/* Parses text into *root: NULL for an empty stream (or an empty document). Exactly one
 * document is accepted. */
static int tree_parse(struct cfg_ctx *ctx, struct ynode **root)
{
	yaml_parser_t p;
	yaml_event_t ev;
	bool have_ev = false;
	struct ynode *n = NULL;

	*root = NULL;
	if (!yaml_parser_initialize(&p)) {
		cfg_nomem(ctx);
		return ctx->rc;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)ctx->text, ctx->len);

	if (tree_next(ctx, &p, &ev))
		goto cleanup;
	yaml_event_delete(&ev); /* STREAM_START */
	if (tree_next(ctx, &p, &ev))
		goto cleanup;
	have_ev = true;
	if (ev.type == YAML_STREAM_END_EVENT)
		goto cleanup;
	yaml_event_delete(&ev); /* DOCUMENT_START */
	have_ev = false;

	if (tree_next(ctx, &p, &ev))
		goto cleanup;
	have_ev = true;
	if (tree_parse_node(ctx, &p, &ev, 0, &n))
		goto cleanup;
	yaml_event_delete(&ev);
	have_ev = false;

	if (tree_next(ctx, &p, &ev)) /* DOCUMENT_END */
		goto cleanup;
	yaml_event_delete(&ev);
	if (tree_next(ctx, &p, &ev))
		goto cleanup;
	have_ev = true;
	if (ev.type == YAML_DOCUMENT_START_EVENT) {
		cfg_fail(ctx, mark_line(ev.start_mark), NULL,
			 "a second YAML document ('---') is not supported; use one document");
		goto cleanup;
	}

cleanup:
	if (have_ev)
		yaml_event_delete(&ev);
	yaml_parser_delete(&p);
	if (ctx->rc == HOOKD_OK && n && ynode_is_null(n)) {
		ynode_free(n); /* "---" alone, or a document of comments */
		n = NULL;
	}
	if (ctx->rc != HOOKD_OK) {
		ynode_free(n);
		return ctx->rc;
	}
	*root = n;
	return HOOKD_OK;
}

/* ---- scalar conversions ------------------------------------------------------------- */

/* Parses an unsigned decimal with an optional sign. *neg is set for "-N" (N > 0), so the
 * caller can report "-5 is out of range" rather than "not an integer". */
static bool cfg_parse_decimal(const char *s, uint64_t *out, bool *neg, bool *overflow)
{
	*neg = false;
	*overflow = false;
	if (*s == '+' || *s == '-')
		*neg = *s++ == '-';
	if (*s < '0' || *s > '9')
		return false;
	for (const char *q = s; *q; q++)
		if (*q < '0' || *q > '9')
			return false;
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		*overflow = true;
	if (end == s || *end != '\0')
		return false;
	*out = v;
	if (v == 0)
		*neg = false;
	return true;
}

struct size_unit {
	const char *name;
	uint64_t mult;
};

/* IEC units are powers of 1024 and SI units powers of 1000, as their standards say; the
 * match is case-sensitive so "mb" (millibits?) is refused rather than guessed. */
static const struct size_unit size_units[] = {
	{"B", 1},
	{"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
	{"KB", 1000ull}, {"MB", 1000000ull}, {"GB", 1000000000ull}, {"TB", 1000000000000ull},
	{NULL, 0},
};

/* "262144", "256KiB", "1 GiB", "500MB". Returns false when the text is not a size;
 * *overflow when it is one but exceeds 64 bits. */
static bool cfg_parse_size(const char *s, uint64_t *out, bool *overflow)
{
	const char *p = s;
	*overflow = false;
	while (*p >= '0' && *p <= '9')
		p++;
	if (p == s)
		return false;
	size_t ndig = (size_t)(p - s);
	char digits[32];
	if (ndig >= sizeof(digits)) {
		*overflow = true;
		return true;
	}
	memcpy(digits, s, ndig);
	digits[ndig] = '\0';
	errno = 0;
	unsigned long long v = strtoull(digits, NULL, 10);
	if (errno == ERANGE) {
		*overflow = true;
		return true;
	}
	while (*p == ' ')
		p++;
	uint64_t mult = 1;
	if (*p) {
		const struct size_unit *u;
		for (u = size_units; u->name; u++)
			if (strcmp(p, u->name) == 0)
				break;
		if (!u->name)
			return false;
		mult = u->mult;
	}
	if (v > UINT64_MAX / mult) {
		*overflow = true;
		return true;
	}
	*out = (uint64_t)v * mult;
	return true;
}

/* 1048576 -> "1MiB": the limits in messages read like the values one writes. */
static const char *cfg_size_text(uint64_t v, char *buf, size_t len)
{
	static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
	static const unsigned shifts[] = {40, 30, 20, 10};
	for (size_t i = 0; i < 4; i++) {
		uint64_t m = 1ull << shifts[i];
		if (v >= m && v % m == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(v / m), names[i]);
			return buf;
		}
	}
	snprintf(buf, len, "%lluB", (unsigned long long)v);
	return buf;
}

/* ---- field tables ------------------------------------------------------------------- */

enum cfg_kind {
	CFG_SECTION,   /* a nested mapping whose keys (sub) fill the same struct */
	CFG_STRING,    /* char * */
	CFG_U32,       /* uint32_t in [min, max] */
	CFG_SIZE,      /* uint64_t from bytes or a size string, in [min, max] */
	CFG_SIZE_T,    /* the same into a size_t */
	CFG_BOOL,      /* bool: true or false */
	CFG_LISTEN,    /* "host:port" into listen_host, listen_port */
	CFG_SCHEDULE,  /* uint32_t * (off) + size_t (off_n): seconds in [min, max] */
	CFG_STRLIST,   /* char ** (off) + size_t (off_n), each item checked */
	CFG_HEADERS,   /* struct config_header * (off) + size_t (off_n) */
	CFG_JSON,      /* any mapping -> compact JSON object text (char *) */
	CFG_APPS,      /* struct config_app * + size_t */
	CFG_ENDPOINTS, /* struct config_endpoint * + size_t */
};

#define CFG_REQUIRED 0x1u /* the mapping must name this key */
#define CFG_NULLABLE 0x2u /* null is accepted: the string becomes NULL, the list empty */

struct cfg_field {
	const char *key;
	enum cfg_kind kind;
	size_t off;
	size_t off_n;
	uint64_t min, max;     /* numbers: the range; lists: the range of each entry */
	size_t max_n;          /* lists: most entries */
	unsigned flags;
	/* Validates a string value (or a list entry); reports through cfg_fail. */
	int (*check)(struct cfg_ctx *ctx, const struct ynode *v, const char *path);
	const struct cfg_field *sub;
};

static void cfg_apply_map(struct cfg_ctx *ctx, const struct ynode *map,
			  const struct cfg_field *fields, void *base, const char *path);

/* Ids are used in URLs (/v1/apps/{app}/endpoints/{id}) and store keys; the API accepts
 * the same charset, so a declared id can always be addressed. */
static int cfg_check_id(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	size_t len = strlen(v->text);
	bool ok = len >= 1 && len <= 64;
	for (size_t i = 0; ok && i < len; i++) {
		char ch = v->text[i];
		ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		     (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
	}
	if (!ok) {
		char show[64];
		cfg_fail(ctx, v->line, path, "expected 1 to 64 of A-Z a-z 0-9 _ -, got %s",
			 cfg_show(v, show, sizeof(show)));
	}
	return ctx->rc;
}

/* Policy names are file names in policies.dir (policy.h: [a-z0-9_-]{1,64}); the narrow
 * charset also keeps "../" out of the path. */
static int cfg_check_policy_name(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	size_t len = strlen(v->text);
	bool ok = len >= 1 && len <= 64;
	for (size_t i = 0; ok && i < len; i++) {
		char ch = v->text[i];
		ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
	}
	if (!ok) {
		char show[64];
		cfg_fail(ctx, v->line, path, "expected 1 to 64 of a-z 0-9 _ -, got %s",
			 cfg_show(v, show, sizeof(show)));
	}
	return ctx->rc;
}

static int cfg_check_nonempty(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	if (v->text[0] == '\0')
		cfg_fail(ctx, v->line, path, "must not be empty");
	return ctx->rc;
}

/* A display name: any text a log line can carry. */
static int cfg_check_name(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	size_t len = strlen(v->text);
	if (len == 0 || len > 256) {
		cfg_fail(ctx, v->line, path, "must be 1 to 256 bytes long");
		return ctx->rc;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v->text[i] < 0x20 || v->text[i] == 0x7f) {
			cfg_fail(ctx, v->line, path, "must not contain control characters");
			return ctx->rc;
		}
	return HOOKD_OK;
}

/* The admin key travels as "Authorization: Bearer <key>", so it must be one token. The
 * value is never echoed: messages end up in logs. */
static int cfg_check_admin_key(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	size_t len = strlen(v->text);
	if (len == 0 || len > 512) {
		cfg_fail(ctx, v->line, path, "must be 1 to 512 characters long (value not shown)");
		return ctx->rc;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)v->text[i];
		if (ch <= 0x20 || ch >= 0x7f) {
			cfg_fail(ctx, v->line, path,
				 "must be printable ASCII without spaces (value not shown)");
			return ctx->rc;
		}
	}
	return HOOKD_OK;
}

static int cfg_check_secret_type(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	if (strcmp(v->text, "hmac") != 0 && strcmp(v->text, "ed25519") != 0) {
		char show[64];
		cfg_fail(ctx, v->line, path, "expected 'hmac' or 'ed25519', got %s",
			 cfg_show(v, show, sizeof(show)));
	}
	return ctx->rc;
}

/* The secret's prefix is checked against secret_type once the endpoint is complete (the
 * keys may come in any order); here only its shape, never echoing it. */
static int cfg_check_secret(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	if (strncmp(v->text, "whsec_", 6) != 0 && strncmp(v->text, "whsk_", 5) != 0)
		cfg_fail(ctx, v->line, path,
			 "expected a whsec_... (hmac) or whsk_... (ed25519) secret (value not shown)");
	else if (strlen(v->text) >= 128) /* sign.h SIGN_TEXT_MAX */
		cfg_fail(ctx, v->line, path, "longer than 127 characters (value not shown)");
	return ctx->rc;
}

/* Exact names ("invoice.paid") or "prefix.*"; a bare "*" is refused because leaving
 * event_types out already means every type, and two spellings of it would be one too many. */
static int cfg_check_event_type(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	const char *s = v->text;
	size_t len = strlen(s);
	char show[64];
	if (len == 0 || len > 256) {
		cfg_fail(ctx, v->line, path, "must be 1 to 256 characters long");
		return ctx->rc;
	}
	if (strcmp(s, "*") == 0) {
		cfg_fail(ctx, v->line, path,
			 "'*' is not a pattern; leave event_types out to receive every type");
		return ctx->rc;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch >= 0x7f) {
			cfg_fail(ctx, v->line, path,
				 "expected printable ASCII without spaces, got %s",
				 cfg_show(v, show, sizeof(show)));
			return ctx->rc;
		}
		if (ch == '*' && !(i == len - 1 && i >= 2 && s[i - 1] == '.')) {
			cfg_fail(ctx, v->line, path,
				 "'*' is only allowed as a final '.*' (prefix.*), got %s",
				 cfg_show(v, show, sizeof(show)));
			return ctx->rc;
		}
	}
	return HOOKD_OK;
}

static bool cfg_port_parse(const char *s, size_t len, uint32_t min, uint16_t *out)
{
	if (len == 0 || len > 5)
		return false;
	uint32_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v < min || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

static bool cfg_ipv6_literal(const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char addr[16];
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, addr) == 1;
}

/* Endpoint URLs: the rules the API applies too (url.h), or "plugin:NAME" for a plugin
 * transport (DESIGN.md). */
static int cfg_check_url(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	const char *s = v->text;
	char show[64], why[160];

	if (strncmp(s, "plugin:", 7) == 0) {
		struct ynode name = *v;
		name.text = (char *)s + 7;
		if (cfg_check_id(ctx, &name, path))
			return ctx->rc;
		return HOOKD_OK;
	}
	switch (url_endpoint_check(s, why, sizeof(why))) {
	case HOOKD_OK:
		return HOOKD_OK;
	case HOOKD_ETOOBIG:
		cfg_fail(ctx, v->line, path, "%s", why);
		return ctx->rc;
	default:
		cfg_fail(ctx, v->line, path, "%s, got %s", why, cfg_show(v, show, sizeof(show)));
		return ctx->rc;
	}
}

/* allow_destinations entries, read by the destination guard's own parser (ssrf.h), so
 * whatever loads here is what it will accept at start. Bits set beyond the prefix are
 * refused with the corrected network: "192.168.1.0/16" is far more often a typo than a
 * wish. */
static int cfg_check_cidr(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	char show[64], net[INET6_ADDRSTRLEN];
	struct ssrf_cidr c;
	enum ssrf_cidr_problem problem;

	if (ssrf_cidr_parse(v->text, &c, &problem) == HOOKD_OK)
		return HOOKD_OK;
	if (problem == SSRF_CIDR_HOST_BITS && inet_ntop(c.family, c.addr, net, sizeof(net))) {
		cfg_fail(ctx, v->line, path, "%s has bits set after the /%u prefix; write %s/%u",
			 cfg_show(v, show, sizeof(show)), c.prefix, net, c.prefix);
		return ctx->rc;
	}
	cfg_fail(ctx, v->line, path,
		 "expected a CIDR like 10.0.0.0/8 or fd00::/8 (or one address), got %s%s",
		 cfg_show(v, show, sizeof(show)),
		 problem == SSRF_CIDR_BAD_PREFIX
			 ? (c.family == AF_INET ? ": the prefix must be 0..32"
						: ": the prefix must be 0..128")
			 : "");
	return ctx->rc;
}

/* limits: an endpoint's extra headers. 64 is beyond any real use and keeps a request
 * within every server's header limits. */
#define CFG_HEADERS_MAX 64

/* ---- tables ------------------------------------------------------------------------- */

/* The limits below are each the documented range of a key (docs/configuration.md). */

static const struct cfg_field api_fields[] = {
	{.key = "admin_key", .kind = CFG_STRING, .off = offsetof(struct config, admin_key),
	 .flags = CFG_NULLABLE, .check = cfg_check_admin_key},
	/* Each connection holds a descriptor; a million is above any limit a process gets, and
	 * the descriptor limit bounds the cap anyway (api_conn.c). */
	{.key = "max_connections", .kind = CFG_U32,
	 .off = offsetof(struct config, api_max_connections), .min = 1, .max = 1000000},
	/* 100 ms is a loopback round trip with room to spare; ten minutes is already a client
	 * holding a connection hostage. */
	{.key = "header_timeout_ms", .kind = CFG_U32,
	 .off = offsetof(struct config, api_header_timeout_ms), .min = 100, .max = 600000},
	/* The same floor; an hour is the longest a keep-alive connection is worth keeping. */
	{.key = "idle_timeout_ms", .kind = CFG_U32,
	 .off = offsetof(struct config, api_idle_timeout_ms), .min = 100, .max = 3600000},
	{0},
};

static const struct cfg_field limits_fields[] = {
	/* A payload is held in memory while it is validated, stored and signed; 64 MiB is
	 * far above any webhook and still bounds a publisher's damage. */
	{.key = "max_payload_bytes", .kind = CFG_SIZE_T,
	 .off = offsetof(struct config, max_payload_bytes), .min = 1, .max = 64ull << 20},
	/* 1 KiB still holds a request line, a 512-character bearer key and a few fields; past
	 * 1 MiB a header block is an attack, not a request (servers allow 8..64 KiB). */
	{.key = "max_header_bytes", .kind = CFG_SIZE_T,
	 .off = offsetof(struct config, max_header_bytes), .min = 1024, .max = 1ull << 20},
	/* 8 fields are what a minimal client sends with Authorization and Idempotency-Key;
	 * 10000 is far beyond any client and still bounds the per-request work. */
	{.key = "max_header_lines", .kind = CFG_U32,
	 .off = offsetof(struct config, max_header_lines), .min = 8, .max = 10000},
	{0},
};

static const struct cfg_field storage_fields[] = {
	/* LMDB maps the whole size into the address space: x86-64 gives a process 128 TiB, so
	 * 64 TiB leaves room for everything else; below 1 MiB LMDB cannot hold its own pages
	 * and a few messages. */
	{.key = "map_size", .kind = CFG_SIZE, .off = offsetof(struct config, map_size),
	 .min = 1ull << 20, .max = 64ull << 40},
	/* A publish waits at most this long for company before its fsync; past 10 ms the
	 * added latency outweighs any batching gain on a disk with ~1 ms fsyncs. */
	{.key = "commit_delay_us", .kind = CFG_U32,
	 .off = offsetof(struct config, commit_delay_us), .min = 0, .max = 10000},
	/* Ten years is "keep"; 0 says so explicitly. */
	{.key = "retention_days", .kind = CFG_U32,
	 .off = offsetof(struct config, retention_days), .min = 0, .max = 3650},
	{0},
};

static const struct cfg_field delivery_fields[] = {
	/* 0 would mean "curl's default" (300 s); ten minutes is already a dead receiver. */
	{.key = "connect_timeout_ms", .kind = CFG_U32,
	 .off = offsetof(struct config, connect_timeout_ms), .min = 1, .max = 600000},
	/* An attempt holds an in-flight slot; an hour is the longest anyone should wait. */
	{.key = "timeout_ms", .kind = CFG_U32, .off = offsetof(struct config, timeout_ms),
	 .min = 1, .max = 3600000},
	/* 50 entries, each at most 7 days: a month-long schedule fits, a runaway one does not. */
	{.key = "retry_schedule", .kind = CFG_SCHEDULE,
	 .off = offsetof(struct config, retry_schedule),
	 .off_n = offsetof(struct config, n_retry_schedule), .min = 0, .max = 604800, .max_n = 50},
	/* 0 = never wait longer than the schedule says; 7 days = the longest schedule step. */
	{.key = "retry_after_cap_s", .kind = CFG_U32,
	 .off = offsetof(struct config, retry_after_cap_s), .min = 0, .max = 604800},
	/* Each in-flight request may hold a socket; 65536 is above any file descriptor limit
	 * a single process is usually given. */
	{.key = "max_inflight", .kind = CFG_U32, .off = offsetof(struct config, max_inflight),
	 .min = 1, .max = 65536},
	{.key = "max_inflight_per_endpoint", .kind = CFG_U32,
	 .off = offsetof(struct config, max_inflight_per_endpoint), .min = 1, .max = 65536},
	{0},
};

static const struct cfg_field security_fields[] = {
	/* Each delivery's address is matched against every entry; 256 is plenty of networks. */
	{.key = "allow_destinations", .kind = CFG_STRLIST,
	 .off = offsetof(struct config, allow_destinations),
	 .off_n = offsetof(struct config, n_allow_destinations), .max_n = 256,
	 .flags = CFG_NULLABLE, .check = cfg_check_cidr},
	{0},
};

static const struct cfg_field policies_fields[] = {
	{.key = "dir", .kind = CFG_STRING, .off = offsetof(struct config, policy_dir),
	 .flags = CFG_NULLABLE, .check = cfg_check_nonempty},
	/* One minute per call is already a broken policy; 1 ms is the timer's resolution. */
	{.key = "cpu_limit_ms", .kind = CFG_U32, .off = offsetof(struct config, policy_cpu_ms),
	 .min = 1, .max = 60000},
	/* A LuaJIT state with the sandbox needs a few hundred KiB; 4 GiB per state is more
	 * than an edge box has. */
	{.key = "memory_limit", .kind = CFG_SIZE,
	 .off = offsetof(struct config, policy_memory_limit), .min = 1ull << 20,
	 .max = 4ull << 30},
	{0},
};

static const struct cfg_field policy_fields[] = {
	{.key = "name", .kind = CFG_STRING, .off = offsetof(struct config_endpoint, policy_name),
	 .flags = CFG_REQUIRED, .check = cfg_check_policy_name},
	{.key = "params", .kind = CFG_JSON,
	 .off = offsetof(struct config_endpoint, policy_params_json), .flags = CFG_NULLABLE},
	{0},
};

static const struct cfg_field endpoint_fields[] = {
	{.key = "id", .kind = CFG_STRING, .off = offsetof(struct config_endpoint, id),
	 .flags = CFG_REQUIRED, .check = cfg_check_id},
	{.key = "url", .kind = CFG_STRING, .off = offsetof(struct config_endpoint, url),
	 .flags = CFG_REQUIRED, .check = cfg_check_url},
	/* Matched per message against every entry; 256 patterns is plenty for one endpoint. */
	{.key = "event_types", .kind = CFG_STRLIST,
	 .off = offsetof(struct config_endpoint, event_types),
	 .off_n = offsetof(struct config_endpoint, n_event_types), .max_n = 256,
	 .flags = CFG_NULLABLE, .check = cfg_check_event_type},
	{.key = "secret", .kind = CFG_STRING, .off = offsetof(struct config_endpoint, secret),
	 .flags = CFG_NULLABLE, .check = cfg_check_secret},
	{.key = "secret_type", .kind = CFG_STRING,
	 .off = offsetof(struct config_endpoint, secret_type), .flags = CFG_NULLABLE,
	 .check = cfg_check_secret_type},
	{.key = "retry_schedule", .kind = CFG_SCHEDULE,
	 .off = offsetof(struct config_endpoint, retry_schedule),
	 .off_n = offsetof(struct config_endpoint, n_retry_schedule), .min = 0, .max = 604800,
	 .max_n = 50, .flags = CFG_NULLABLE},
	{.key = "headers", .kind = CFG_HEADERS, .off = offsetof(struct config_endpoint, headers),
	 .off_n = offsetof(struct config_endpoint, n_headers), .max_n = CFG_HEADERS_MAX,
	 .flags = CFG_NULLABLE},
	{.key = "disabled", .kind = CFG_BOOL, .off = offsetof(struct config_endpoint, disabled)},
	{.key = "policy", .kind = CFG_SECTION, .sub = policy_fields},
	{0},
};

static const struct cfg_field app_fields[] = {
	{.key = "id", .kind = CFG_STRING, .off = offsetof(struct config_app, id),
	 .flags = CFG_REQUIRED, .check = cfg_check_id},
	{.key = "name", .kind = CFG_STRING, .off = offsetof(struct config_app, name),
	 .flags = CFG_NULLABLE, .check = cfg_check_name},
	{.key = "endpoints", .kind = CFG_ENDPOINTS, .off = offsetof(struct config_app, endpoints),
	 .off_n = offsetof(struct config_app, n_endpoints), .flags = CFG_NULLABLE},
	{0},
};

static const struct cfg_field top_fields[] = {
	{.key = "listen", .kind = CFG_LISTEN},
	{.key = "data_dir", .kind = CFG_STRING, .off = offsetof(struct config, data_dir),
	 .check = cfg_check_nonempty},
	{.key = "api", .kind = CFG_SECTION, .sub = api_fields},
	{.key = "limits", .kind = CFG_SECTION, .sub = limits_fields},
	{.key = "storage", .kind = CFG_SECTION, .sub = storage_fields},
	{.key = "delivery", .kind = CFG_SECTION, .sub = delivery_fields},
	{.key = "security", .kind = CFG_SECTION, .sub = security_fields},
	{.key = "policies", .kind = CFG_SECTION, .sub = policies_fields},
	{.key = "apps", .kind = CFG_APPS, .off = offsetof(struct config, apps),
	 .off_n = offsetof(struct config, n_apps), .flags = CFG_NULLABLE},
	{0},
};

/* ---- applying values ---------------------------------------------------------------- */

#define FIELD_PTR(base, off, type) ((type *)(void *)((char *)(base) + (off)))

static void cfg_fail_type(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
			  const char *expected)
{
	char show[64];
	cfg_fail(ctx, v->line, path, "expected %s, got %s", expected,
		 cfg_show(v, show, sizeof(show)));
}

/* Edit distance, for "did you mean": keys are short, so one row of 64 is enough. */
static size_t cfg_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65];
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void cfg_fail_unknown(struct cfg_ctx *ctx, const struct ynode *k,
			     const struct cfg_field *fields, const char *path)
{
	char where[CFG_PATH_MAX + 16], hint[96] = "", show[64];
	const char *best = NULL;
	size_t best_d = 3; /* suggest only close misspellings */
	for (const struct cfg_field *f = fields; f->key; f++) {
		size_t d = cfg_distance(k->text, f->key);
		size_t kl = strlen(k->text), fl = strlen(f->key);
		/* "timeout" for "timeout_ms": a unit suffix left out is a common slip. */
		if (kl >= 4 && kl < fl && strncmp(k->text, f->key, kl) == 0)
			d = 1;
		if (d < best_d) {
			best_d = d;
			best = f->key;
		}
	}
	if (best)
		snprintf(hint, sizeof(hint), " (did you mean '%s'?)", best);
	if (path && *path)
		snprintf(where, sizeof(where), "under '%s'", path);
	else
		snprintf(where, sizeof(where), "at top level");
	cfg_show(k, show, sizeof(show));
	cfg_fail(ctx, k->line, NULL, "unknown key %s %s%s", show, where, hint);
}

/* YAML allows a key twice and keeps the last; a config where one of two values is
 * silently ignored is a bug waiting to be found, so it is refused. */
static int cfg_check_dup_keys(struct cfg_ctx *ctx, const struct ynode *map, const char *path,
			      bool nocase)
{
	for (size_t i = 2; i + 1 < map->n_kids; i += 2)
		for (size_t j = 0; j < i; j += 2) {
			const char *a = map->kids[i]->text, *b = map->kids[j]->text;
			if (nocase ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0) {
				char sub[CFG_PATH_MAX];
				cfg_path_key(sub, sizeof(sub), path, a);
				cfg_fail(ctx, map->kids[i]->line, sub,
					 "duplicate key (first at line %d)", map->kids[j]->line);
				return ctx->rc;
			}
		}
	return HOOKD_OK;
}

static int cfg_get_uint(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
			uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	bool neg, overflow;
	char show[64];
	if (v->kind != YNODE_SCALAR || !cfg_parse_decimal(v->text, &n, &neg, &overflow)) {
		cfg_fail_type(ctx, v, path, "an integer");
		return ctx->rc;
	}
	if (v->quoted) {
		/* YAML says a quoted 100 is text; say so rather than "got '100'" alone. */
		cfg_fail(ctx, v->line, path,
			 "expected an integer, got the string %s (remove the quotes)",
			 cfg_show(v, show, sizeof(show)));
		return ctx->rc;
	}
	if (neg || overflow || n < min || n > max) {
		cfg_fail(ctx, v->line, path, "%s is out of range (%llu..%llu)",
			 cfg_show(v, show, sizeof(show)), (unsigned long long)min,
			 (unsigned long long)max);
		return ctx->rc;
	}
	*out = n;
	return HOOKD_OK;
}

static int cfg_get_size(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
			uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	bool overflow;
	char show[64], lo[32], hi[32];
	if (v->kind != YNODE_SCALAR || !cfg_parse_size(v->text, &n, &overflow)) {
		cfg_fail_type(ctx, v, path,
			      "a size (bytes, or a whole number with B, KiB, MiB, GiB, TiB, KB, MB, "
			      "GB or TB)");
		return ctx->rc;
	}
	if (overflow || n < min || n > max) {
		cfg_fail(ctx, v->line, path, "%s is out of range (%s..%s)",
			 cfg_show(v, show, sizeof(show)), cfg_size_text(min, lo, sizeof(lo)),
			 cfg_size_text(max, hi, sizeof(hi)));
		return ctx->rc;
	}
	*out = n;
	return HOOKD_OK;
}

/* listen: "host:port" or "[v6]:port"; the host is stored without brackets. Port 0 asks
 * the kernel for a free port (tests). */
static void cfg_apply_listen(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	char show[64];
	if (v->kind != YNODE_SCALAR || ynode_is_null(v)) {
		cfg_fail_type(ctx, v, path, "host:port");
		return;
	}
	const char *s = v->text, *host, *port;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			cfg_fail_type(ctx, v, path, "host:port ([v6-address]:port for IPv6)");
			return;
		}
		host = s + 1;
		hlen = (size_t)(close - host);
		port = close + 2;
		if (!cfg_ipv6_literal(host, hlen)) {
			cfg_fail(ctx, v->line, path, "bad IPv6 address in %s",
				 cfg_show(v, show, sizeof(show)));
			return;
		}
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon) {
			cfg_fail_type(ctx, v, path, "host:port");
			return;
		}
		host = s;
		hlen = (size_t)(colon - s);
		port = colon + 1;
		if (memchr(host, ':', hlen)) {
			cfg_fail(ctx, v->line, path,
				 "an IPv6 address needs brackets ([::1]:8080), got %s",
				 cfg_show(v, show, sizeof(show)));
			return;
		}
		bool ok = hlen > 0 && hlen <= 253;
		for (size_t i = 0; ok && i < hlen; i++) {
			char ch = host[i];
			ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
		}
		if (!ok) {
			cfg_fail_type(ctx, v, path, "host:port with a host name or address");
			return;
		}
	}
	uint16_t pnum;
	if (!cfg_port_parse(port, strlen(port), 0, &pnum)) {
		cfg_fail(ctx, v->line, path, "the port in %s must be a number 0..65535",
			 cfg_show(v, show, sizeof(show)));
		return;
	}
	char *h = strndup(host, hlen);
	if (!h) {
		cfg_nomem(ctx);
		return;
	}
	free(ctx->root->listen_host);
	ctx->root->listen_host = h;
	ctx->root->listen_port = pnum;
}

static void cfg_apply_string(struct cfg_ctx *ctx, const struct cfg_field *f, const struct ynode *v,
			     void *base, const char *path)
{
	char **dst = FIELD_PTR(base, f->off, char *);
	if (v->kind == YNODE_SCALAR && ynode_is_null(v) && (f->flags & CFG_NULLABLE)) {
		free(*dst);
		*dst = NULL;
		return;
	}
	if (v->kind != YNODE_SCALAR || ynode_is_null(v)) {
		cfg_fail_type(ctx, v, path, "a string");
		return;
	}
	if (f->check && f->check(ctx, v, path))
		return;
	char *s = strdup(v->text);
	if (!s) {
		cfg_nomem(ctx);
		return;
	}
	free(*dst);
	*dst = s;
}

static void cfg_apply_schedule(struct cfg_ctx *ctx, const struct cfg_field *f,
			       const struct ynode *v, void *base, const char *path)
{
	uint32_t **dst = FIELD_PTR(base, f->off, uint32_t *);
	size_t *dst_n = FIELD_PTR(base, f->off_n, size_t);
	if (ynode_is_null(v) && (f->flags & CFG_NULLABLE)) {
		free(*dst);
		*dst = NULL;
		*dst_n = 0;
		return;
	}
	if (v->kind != YNODE_SEQ) {
		cfg_fail_type(ctx, v, path, "a list of seconds");
		return;
	}
	if (v->n_kids == 0 || v->n_kids > f->max_n) {
		cfg_fail(ctx, v->line, path, "must have 1 to %zu entries, got %zu", f->max_n,
			 v->n_kids);
		return;
	}
	uint32_t *s = calloc(v->n_kids, sizeof(*s));
	if (!s) {
		cfg_nomem(ctx);
		return;
	}
	for (size_t i = 0; i < v->n_kids; i++) {
		char sub[CFG_PATH_MAX];
		uint64_t n;
		cfg_path_index(sub, sizeof(sub), path, i);
		if (cfg_get_uint(ctx, v->kids[i], sub, f->min, f->max, &n)) {
			free(s);
			return;
		}
		s[i] = (uint32_t)n;
	}
	free(*dst);
	*dst = s;
	*dst_n = v->n_kids;
}

static void cfg_strlist_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void cfg_apply_strlist(struct cfg_ctx *ctx, const struct cfg_field *f,
			      const struct ynode *v, void *base, const char *path)
{
	char ***dst = FIELD_PTR(base, f->off, char **);
	size_t *dst_n = FIELD_PTR(base, f->off_n, size_t);
	char **list = NULL;
	size_t n = 0;

	if (ynode_is_null(v) && (f->flags & CFG_NULLABLE))
		goto done;
	if (v->kind != YNODE_SEQ) {
		cfg_fail_type(ctx, v, path, "a list of strings");
		return;
	}
	if (v->n_kids > f->max_n) {
		cfg_fail(ctx, v->line, path, "has %zu entries, at most %zu are allowed", v->n_kids,
			 f->max_n);
		return;
	}
	if (v->n_kids && !(list = calloc(v->n_kids, sizeof(*list)))) {
		cfg_nomem(ctx);
		return;
	}
	for (; n < v->n_kids; n++) {
		const struct ynode *item = v->kids[n];
		char sub[CFG_PATH_MAX];
		cfg_path_index(sub, sizeof(sub), path, n);
		if (item->kind != YNODE_SCALAR || ynode_is_null(item)) {
			cfg_fail_type(ctx, item, sub, "a string");
			goto fail;
		}
		if (f->check && f->check(ctx, item, sub))
			goto fail;
		if (!(list[n] = strdup(item->text))) {
			cfg_nomem(ctx);
			goto fail;
		}
	}
done:
	cfg_strlist_free(*dst, *dst_n);
	*dst = list;
	*dst_n = n;
	return;
fail:
	cfg_strlist_free(list, n);
}

static void cfg_headers_free(struct config_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

static void cfg_apply_headers(struct cfg_ctx *ctx, const struct cfg_field *f, const struct ynode *v,
			      void *base, const char *path)
{
	struct config_header **dst = FIELD_PTR(base, f->off, struct config_header *);
	size_t *dst_n = FIELD_PTR(base, f->off_n, size_t);
	struct config_header *list = NULL;
	size_t n = 0, pairs;

	if (ynode_is_null(v))
		goto done;
	if (v->kind != YNODE_MAP) {
		cfg_fail_type(ctx, v, path, "a mapping of header names to values");
		return;
	}
	/* HTTP header names are case-insensitive: X-Tenant and x-tenant are one header. */
	if (cfg_check_dup_keys(ctx, v, path, true))
		return;
	pairs = v->n_kids / 2;
	if (pairs > f->max_n) {
		cfg_fail(ctx, v->line, path, "has %zu headers, at most %zu are allowed", pairs,
			 f->max_n);
		return;
	}
	if (pairs && !(list = calloc(pairs, sizeof(*list)))) {
		cfg_nomem(ctx);
		return;
	}
	for (; n < pairs; n++) {
		const struct ynode *k = v->kids[2 * n], *val = v->kids[2 * n + 1];
		char sub[CFG_PATH_MAX], show[64];
		cfg_path_key(sub, sizeof(sub), path, k->text);
		if (header_name_check(k->text, strlen(k->text)) != HOOKD_OK) {
			cfg_fail(ctx, k->line, path, "%s is not a valid header name",
				 cfg_show(k, show, sizeof(show)));
			goto fail;
		}
		if (header_name_reserved(k->text)) {
			cfg_fail(ctx, k->line, sub, "this header is set by hookd itself");
			goto fail;
		}
		if (val->kind != YNODE_SCALAR) {
			cfg_fail_type(ctx, val, sub, "a header value");
			goto fail;
		}
		if (header_value_check(val->text, strlen(val->text)) != HOOKD_OK) {
			cfg_fail(ctx, val->line, sub,
				 "header values must not contain control characters "
				 "(CR or LF would inject headers), at most %d bytes",
				 HEADER_VALUE_MAX);
			goto fail;
		}
		/* Zeroed by calloc: a half-set entry is freed whole. */
		list[n].name = strdup(k->text);
		list[n].value = strdup(ynode_is_null(val) ? "" : val->text);
		if (!list[n].name || !list[n].value) {
			n++;
			cfg_nomem(ctx);
			goto fail;
		}
	}
done:
	cfg_headers_free(*dst, *dst_n);
	*dst = list;
	*dst_n = n;
	return;
fail:
	cfg_headers_free(list, n);
}

/* ---- policy params: YAML -> JSON ---------------------------------------------------- */

static bool cfg_yaml_bool(const char *s, bool *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
		*out = true;
		return true;
	}
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
		*out = false;
		return true;
	}
	return false;
}

/* YAML 1.2 core schema integers: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+. Returns 1 for an
 * integer, 0 for not one, -1 for one beyond 64 bits. */
static int cfg_yaml_int(const char *s, json_int_t *out)
{
	int base = 10;
	const char *digits = s;
	if (s[0] == '0' && s[1] == 'x') {
		base = 16;
		digits = s + 2;
	} else if (s[0] == '0' && s[1] == 'o') {
		base = 8;
		digits = s + 2;
	} else if (*s == '-' || *s == '+') {
		digits = s + 1;
	}
	if (!*digits)
		return 0;
	for (const char *q = digits; *q; q++) {
		bool ok = base == 16 ? strchr("0123456789abcdefABCDEF", *q) != NULL
			: base == 8 ? (*q >= '0' && *q <= '7')
				    : (*q >= '0' && *q <= '9');
		if (!ok)
			return 0;
	}
	errno = 0;
	long long v = strtoll(base == 10 ? s : digits, NULL, base);
	if (errno == ERANGE)
		return -1;
	*out = (json_int_t)v;
	return 1;
}

/* YAML 1.2 core schema floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, plus
 * .inf and .nan, which JSON cannot carry. Returns 1 float, 0 not one, -1 inf/nan. */
static int cfg_yaml_float(const char *s, double *out)
{
	const char *p = s;
	if (*p == '-' || *p == '+')
		p++;
	if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF") ||
	    !strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))
		return -1;
	size_t int_digits = 0, frac_digits = 0;
	while (*p >= '0' && *p <= '9') {
		p++;
		int_digits++;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			frac_digits++;
		}
	}
	if (int_digits == 0 && frac_digits == 0)
		return 0;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (*p < '0' || *p > '9')
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		return 0;
	errno = 0;
	double d = strtod(s, NULL);
	if (errno == ERANGE && (d > 1.0 || d < -1.0))
		return -1;
	*out = d;
	return 1;
}

/* Converts a params node. Quoted scalars stay strings; plain ones follow the YAML 1.2
 * core schema (null, true/false, integers, floats, else a string). NULL on failure with
 * the reason recorded in ctx. */
static json_t *cfg_json_from_node(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	json_t *j = NULL;
	char show[64];

	if (v->kind == YNODE_SCALAR) {
		bool b;
		json_int_t i;
		double d;
		int r;
		if (v->quoted)
			j = json_string(v->text);
		else if (ynode_is_null(v))
			j = json_null();
		else if (cfg_yaml_bool(v->text, &b))
			j = json_boolean(b);
		else if ((r = cfg_yaml_int(v->text, &i)) != 0) {
			if (r < 0) {
				cfg_fail(ctx, v->line, path, "integer %s does not fit in 64 bits",
					 cfg_show(v, show, sizeof(show)));
				return NULL;
			}
			j = json_integer(i);
		} else if ((r = cfg_yaml_float(v->text, &d)) != 0) {
			if (r < 0) {
				cfg_fail(ctx, v->line, path,
					 "%s has no JSON form (infinite or not a number)",
					 cfg_show(v, show, sizeof(show)));
				return NULL;
			}
			j = json_real(d);
		} else {
			j = json_string(v->text);
		}
		if (!j)
			cfg_nomem(ctx);
		return j;
	}
	if (v->kind == YNODE_SEQ) {
		if (!(j = json_array()))
			goto nomem;
		for (size_t n = 0; n < v->n_kids; n++) {
			char sub[CFG_PATH_MAX];
			cfg_path_index(sub, sizeof(sub), path, n);
			json_t *item = cfg_json_from_node(ctx, v->kids[n], sub);
			if (!item)
				goto fail;
			if (json_array_append_new(j, item))
				goto nomem;
		}
		return j;
	}
	if (cfg_check_dup_keys(ctx, v, path, false))
		return NULL;
	if (!(j = json_object()))
		goto nomem;
	for (size_t n = 0; n + 1 < v->n_kids; n += 2) {
		char sub[CFG_PATH_MAX];
		cfg_path_key(sub, sizeof(sub), path, v->kids[n]->text);
		json_t *item = cfg_json_from_node(ctx, v->kids[n + 1], sub);
		if (!item)
			goto fail;
		if (json_object_set_new(j, v->kids[n]->text, item))
			goto nomem;
	}
	return j;

nomem:
	cfg_nomem(ctx);
fail:
	json_decref(j);
	return NULL;
}

static void cfg_apply_json(struct cfg_ctx *ctx, const struct cfg_field *f, const struct ynode *v,
			   void *base, const char *path)
{
	char **dst = FIELD_PTR(base, f->off, char *);
	if (ynode_is_null(v)) {
		free(*dst);
		*dst = NULL;
		return;
	}
	if (v->kind != YNODE_MAP) {
		cfg_fail_type(ctx, v, path, "a mapping");
		return;
	}
	json_t *j = cfg_json_from_node(ctx, v, path);
	if (!j)
		return;
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text) {
		cfg_nomem(ctx);
		return;
	}
	/* json_dumps allocates with jansson's allocator, which is malloc unless someone set
	 * another; copy so config_free can always use free(). */
	char *copy = strdup(text);
	json_free_t free_fn;
	json_get_alloc_funcs(NULL, &free_fn);
	free_fn(text);
	if (!copy) {
		cfg_nomem(ctx);
		return;
	}
	free(*dst);
	*dst = copy;
}

/* ---- apps and endpoints ------------------------------------------------------------- */

static void cfg_endpoint_clear(struct config_endpoint *e)
{
	free(e->id);
	free(e->url);
	cfg_strlist_free(e->event_types, e->n_event_types);
	free(e->secret);
	free(e->secret_type);
	free(e->retry_schedule);
	cfg_headers_free(e->headers, e->n_headers);
	free(e->policy_name);
	free(e->policy_params_json);
}

static void cfg_apps_free(struct config_app *apps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(apps[i].id);
		free(apps[i].name);
		for (size_t j = 0; j < apps[i].n_endpoints; j++)
			cfg_endpoint_clear(&apps[i].endpoints[j]);
		free(apps[i].endpoints);
	}
	free(apps);
}

/* Endpoint ids are unique across all apps, not only within one: the store and the log
 * can then name an endpoint by its id alone. */
static void cfg_endpoint_check_unique(struct cfg_ctx *ctx, const struct config_app *app,
				      const struct config_endpoint *e, const struct ynode *node,
				      const char *path)
{
	const struct config *c = ctx->root;
	for (size_t a = 0; a < c->n_apps; a++) {
		const struct config_app *other = &c->apps[a];
		for (size_t k = 0; k < other->n_endpoints; k++) {
			const struct config_endpoint *o = &other->endpoints[k];
			if (o == e)
				return;
			if (o->id && strcmp(o->id, e->id) == 0) {
				const struct ynode *idn = ynode_map_get(node, "id");
				char sub[CFG_PATH_MAX];
				cfg_path_key(sub, sizeof(sub), path, "id");
				cfg_fail(ctx, idn ? idn->line : e->line, sub,
					 "duplicate endpoint id '%s' (first at line %d%s%s)", e->id,
					 o->line, other == app ? "" : ", app ",
					 other == app ? "" : (other->id ? other->id : "?"));
				return;
			}
		}
	}
}

static void cfg_endpoint_finish(struct cfg_ctx *ctx, const struct config_app *app,
				struct config_endpoint *e, const struct ynode *node,
				const char *path)
{
	cfg_endpoint_check_unique(ctx, app, e, node, path);
	if (ctx->rc || !e->secret)
		return;
	bool ed = e->secret_type && strcmp(e->secret_type, "ed25519") == 0;
	const char *want = ed ? "whsk_" : "whsec_";
	if (strncmp(e->secret, want, strlen(want)) != 0) {
		const struct ynode *sn = ynode_map_get(node, "secret");
		char sub[CFG_PATH_MAX];
		cfg_path_key(sub, sizeof(sub), path, "secret");
		cfg_fail(ctx, sn ? sn->line : e->line, sub,
			 "secret_type %s needs a %s... secret (value not shown)",
			 ed ? "ed25519" : "hmac", want);
	}
}

static void cfg_apply_endpoints(struct cfg_ctx *ctx, const struct cfg_field *f,
				const struct ynode *v, void *base, const char *path)
{
	struct config_app *app = base;
	if (ynode_is_null(v)) {
		for (size_t j = 0; j < app->n_endpoints; j++)
			cfg_endpoint_clear(&app->endpoints[j]);
		free(app->endpoints);
		app->endpoints = NULL;
		app->n_endpoints = 0;
		return;
	}
	if (v->kind != YNODE_SEQ) {
		cfg_fail_type(ctx, v, path, "a list of endpoints");
		return;
	}
	for (size_t j = 0; j < app->n_endpoints; j++)
		cfg_endpoint_clear(&app->endpoints[j]);
	free(app->endpoints);
	app->endpoints = NULL;
	app->n_endpoints = 0;
	if (v->n_kids == 0)
		return;
	/* Owned by the app from here on, zeroed: config_free copes with any failure below. */
	if (!(app->endpoints = calloc(v->n_kids, sizeof(*app->endpoints)))) {
		cfg_nomem(ctx);
		return;
	}
	app->n_endpoints = v->n_kids;
	for (size_t i = 0; i < v->n_kids; i++) {
		const struct ynode *item = v->kids[i];
		struct config_endpoint *e = &app->endpoints[i];
		char sub[CFG_PATH_MAX];
		cfg_path_index(sub, sizeof(sub), path, i);
		e->line = item->line;
		if (item->kind != YNODE_MAP) {
			cfg_fail_type(ctx, item, sub, "an endpoint (a mapping with id and url)");
			return;
		}
		cfg_apply_map(ctx, item, endpoint_fields, e, sub);
		if (ctx->rc)
			return;
		cfg_endpoint_finish(ctx, app, e, item, sub);
		if (ctx->rc)
			return;
	}
}

static void cfg_apply_apps(struct cfg_ctx *ctx, const struct cfg_field *f, const struct ynode *v,
			   void *base, const char *path)
{
	struct config *c = base;
	if (!ynode_is_null(v) && v->kind != YNODE_SEQ) {
		cfg_fail_type(ctx, v, path, "a list of apps");
		return;
	}
	cfg_apps_free(c->apps, c->n_apps);
	c->apps = NULL;
	c->n_apps = 0;
	if (ynode_is_null(v) || v->n_kids == 0)
		return;
	if (!(c->apps = calloc(v->n_kids, sizeof(*c->apps)))) {
		cfg_nomem(ctx);
		return;
	}
	c->n_apps = v->n_kids;
	for (size_t i = 0; i < v->n_kids; i++) {
		const struct ynode *item = v->kids[i];
		struct config_app *app = &c->apps[i];
		char sub[CFG_PATH_MAX];
		cfg_path_index(sub, sizeof(sub), path, i);
		app->line = item->line;
		if (item->kind != YNODE_MAP) {
			cfg_fail_type(ctx, item, sub, "an app (a mapping with id)");
			return;
		}
		cfg_apply_map(ctx, item, app_fields, app, sub);
		if (ctx->rc)
			return;
		for (size_t k = 0; k < i; k++)
			if (strcmp(c->apps[k].id, app->id) == 0) {
				const struct ynode *idn = ynode_map_get(item, "id");
				char idpath[CFG_PATH_MAX];
				cfg_path_key(idpath, sizeof(idpath), sub, "id");
				cfg_fail(ctx, idn ? idn->line : app->line, idpath,
					 "duplicate app id '%s' (first at line %d)", app->id,
					 c->apps[k].line);
				return;
			}
		if (!app->name && !(app->name = strdup(app->id))) {
			cfg_nomem(ctx);
			return;
		}
	}
}

static void cfg_apply_field(struct cfg_ctx *ctx, const struct cfg_field *f, const struct ynode *v,
			    void *base, const char *path)
{
	uint64_t n;
	switch (f->kind) {
	case CFG_SECTION:
		/* "delivery:" with every key commented out is null: nothing to change. */
		if (ynode_is_null(v))
			return;
		if (v->kind != YNODE_MAP) {
			cfg_fail_type(ctx, v, path, "a mapping");
			return;
		}
		cfg_apply_map(ctx, v, f->sub, base, path);
		return;
	case CFG_STRING:
		cfg_apply_string(ctx, f, v, base, path);
		return;
	case CFG_U32:
		if (!cfg_get_uint(ctx, v, path, f->min, f->max, &n))
			*FIELD_PTR(base, f->off, uint32_t) = (uint32_t)n;
		return;
	case CFG_SIZE:
		if (!cfg_get_size(ctx, v, path, f->min, f->max, &n))
			*FIELD_PTR(base, f->off, uint64_t) = n;
		return;
	case CFG_SIZE_T:
		if (!cfg_get_size(ctx, v, path, f->min, f->max, &n))
			*FIELD_PTR(base, f->off, size_t) = (size_t)n;
		return;
	case CFG_BOOL: {
		bool b;
		/* YAML 1.2 booleans only: yes/no/on/off are strings in YAML 1.2, and guessing
		 * would make `disabled: no` mean different things to different tools. */
		if (v->kind != YNODE_SCALAR || v->quoted || !cfg_yaml_bool(v->text, &b))
			cfg_fail_type(ctx, v, path, "true or false");
		else
			*FIELD_PTR(base, f->off, bool) = b;
		return;
	}
	case CFG_LISTEN:
		cfg_apply_listen(ctx, v, path);
		return;
	case CFG_SCHEDULE:
		cfg_apply_schedule(ctx, f, v, base, path);
		return;
	case CFG_STRLIST:
		cfg_apply_strlist(ctx, f, v, base, path);
		return;
	case CFG_HEADERS:
		cfg_apply_headers(ctx, f, v, base, path);
		return;
	case CFG_JSON:
		cfg_apply_json(ctx, f, v, base, path);
		return;
	case CFG_APPS:
		cfg_apply_apps(ctx, f, v, base, path);
		return;
	case CFG_ENDPOINTS:
		cfg_apply_endpoints(ctx, f, v, base, path);
		return;
	}
}

/* Applies a mapping's keys through its table, then reports the first required key it
 * lacked (at the mapping's line). */
static void cfg_apply_map(struct cfg_ctx *ctx, const struct ynode *map,
			  const struct cfg_field *fields, void *base, const char *path)
{
	uint64_t seen = 0;
	if (cfg_check_dup_keys(ctx, map, path, false))
		return;
	for (size_t i = 0; i + 1 < map->n_kids; i += 2) {
		const struct ynode *k = map->kids[i], *v = map->kids[i + 1];
		const struct cfg_field *f;
		for (f = fields; f->key; f++)
			if (strcmp(f->key, k->text) == 0)
				break;
		if (!f->key) {
			cfg_fail_unknown(ctx, k, fields, path);
			return;
		}
		char sub[CFG_PATH_MAX];
		cfg_path_key(sub, sizeof(sub), path, f->key);
		seen |= 1ull << (f - fields);
		cfg_apply_field(ctx, f, v, base, sub);
		if (ctx->rc)
			return;
	}
	for (const struct cfg_field *f = fields; f->key; f++)
		if ((f->flags & CFG_REQUIRED) && !(seen & (1ull << (f - fields)))) {
			char sub[CFG_PATH_MAX];
			cfg_path_key(sub, sizeof(sub), path, f->key);
			cfg_fail(ctx, map->line, sub, "required");
			return;
		}
}

/* ---- public ------------------------------------------------------------------------- */

/* Mirrors retry_default_schedule (retry.h): 5s, 5m, 30m, 2h, 5h, 10h, 10h. Kept here so
 * the config module stands alone. */
static const uint32_t config_default_schedule[] = {5, 300, 1800, 7200, 18000, 36000, 36000};

/* Re-creates the defaults that need memory; config_defaults cannot report a failure, so
 * loading does it again and reports HOOKD_ENOMEM then. */
static int config_fill_allocated_defaults(struct config *c)
{
	if (!c->listen_host && !(c->listen_host = strdup("127.0.0.1")))
		return HOOKD_ENOMEM;
	if (!c->data_dir && !(c->data_dir = strdup("./data")))
		return HOOKD_ENOMEM;
	if (!c->retry_schedule) {
		size_t n = sizeof(config_default_schedule) / sizeof(config_default_schedule[0]);
		if (!(c->retry_schedule = malloc(sizeof(config_default_schedule))))
			return HOOKD_ENOMEM;
		memcpy(c->retry_schedule, config_default_schedule, sizeof(config_default_schedule));
		c->n_retry_schedule = n;
	}
	return HOOKD_OK;
}

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen_port = 8080;
	c->max_payload_bytes = 256 * 1024;
	/* 16 KiB and 100 fields: Node.js's header size default and Apache's LimitRequestFields;
	 * hookd's own clients send a few hundred bytes (Authorization, Idempotency-Key). */
	c->max_header_bytes = 16 * 1024;
	c->max_header_lines = 100;
	/* A publisher keeps a small pool of keep-alive connections: 1024 serves hundreds. */
	c->api_max_connections = 1024;
	/* 10 s for a request's headers: any client on any network sends them in one or two
	 * round trips; a slowloris client trickling bytes is cut off at this deadline. */
	c->api_header_timeout_ms = 10000;
	/* 60 s of silence: long enough for a publisher's pool to reuse connections between
	 * bursts, short enough that abandoned ones return their descriptors. */
	c->api_idle_timeout_ms = 60000;
	c->map_size = 1ull << 30;
	c->retention_days = 30;
	c->connect_timeout_ms = 5000;
	c->timeout_ms = 15000;
	c->retry_after_cap_s = 86400;
	c->max_inflight = 1024;
	c->max_inflight_per_endpoint = 64;
	c->policy_cpu_ms = 50;
	c->policy_memory_limit = 32ull << 20;
	if (config_fill_allocated_defaults(c))
		log_error("config: out of memory while setting defaults");
}

int config_load_string(struct config *c, const char *text, size_t len, const char *name,
		       char *err, size_t errlen)
{
	struct cfg_ctx ctx = {
		.name = name ? name : "<config>",
		.text = text ? text : "",
		.len = text ? len : 0,
		.err = err,
		.errlen = errlen,
		.root = c,
	};
	struct ynode *root = NULL;

	if (err && errlen)
		err[0] = '\0';
	if (tree_parse(&ctx, &root))
		goto cleanup;
	if (root) {
		if (root->kind != YNODE_MAP) {
			char show[64];
			cfg_fail(&ctx, root->line, NULL,
				 "expected a mapping of keys at top level, got %s",
				 cfg_show(root, show, sizeof(show)));
			goto cleanup;
		}
		cfg_apply_map(&ctx, root, top_fields, c, "");
		if (ctx.rc)
			goto cleanup;
	}
	if (config_fill_allocated_defaults(c))
		cfg_nomem(&ctx);

cleanup:
	ynode_free(root);
	return ctx.rc;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = HOOKD_ECONFIG;

	if (err && errlen)
		err[0] = '\0';
	if (!(f = fopen(path, "rb"))) {
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto cleanup;
	}
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16384;
			/* At the cap, one more byte (the buffer has room for it) tells a file of
			 * exactly CFG_FILE_MAX bytes from a larger one. */
			if (cap >= CFG_FILE_MAX && fread(buf + len, 1, 1, f) == 1) {
				if (err && errlen)
					snprintf(err, errlen, "%s: larger than %u bytes", path,
						 CFG_FILE_MAX);
				goto cleanup;
			}
			if (cap >= CFG_FILE_MAX) {
				if (ferror(f))
					goto read_error;
				break;
			}
			char *nbuf = realloc(buf, ncap + 1);
			if (!nbuf) {
				rc = HOOKD_ENOMEM;
				if (err && errlen)
					snprintf(err, errlen, "%s: out of memory", path);
				goto cleanup;
			}
			buf = nbuf;
			cap = ncap;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f))
				goto read_error;
			break;
		}
	}
	rc = config_load_string(c, buf ? buf : "", len, path, err, errlen);
	goto cleanup;

read_error:
	if (err && errlen)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));

cleanup:
	if (f)
		fclose(f);
	free(buf);
	return rc;
}

void config_apply_env(struct config *c)
{
	const char *key = getenv("HOOKD_ADMIN_KEY");
	/* An empty variable is "unset": an empty bearer key would match an empty header. */
	if (!key || !*key)
		return;
	char *copy = strdup(key);
	if (!copy)
		log_error("config: out of memory copying HOOKD_ADMIN_KEY; no admin key is set");
	/* Never keep the file's key when the environment named another one. */
	free(c->admin_key);
	c->admin_key = copy;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->listen_host);
	free(c->data_dir);
	free(c->admin_key);
	free(c->retry_schedule);
	cfg_strlist_free(c->allow_destinations, c->n_allow_destinations);
	free(c->policy_dir);
	cfg_apps_free(c->apps, c->n_apps);
	memset(c, 0, sizeof(*c));
}
