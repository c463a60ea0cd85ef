/* config_yaml.c - YAML text -> a small node tree with line numbers, and the messages of
 * the config reader.
 *
 * Two passes keep each one simple. This pass knows only YAML (syntax, anchors, tags,
 * nesting depth) and records the line of every node; config_read.c knows only hookd's keys,
 * so every refusal can name the file, the line and the full key path
 * ("cfg.yaml:12: delivery.timeout_ms: expected an integer, got 'fast"). */
#include "config_yaml.h"

#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* A real config nests at most 6 levels (apps/endpoints/policy/params/...); 64 leaves room
 * for policy params while bounding the recursion of every pass over the tree. */
#define TREE_MAX_DEPTH 64

/* ---- the node tree ----------------------------------------------------------------- */

void ynode_free(struct ynode *n)
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

bool ynode_is_null(const struct ynode *n)
{
	if (n->kind != YNODE_SCALAR || n->quoted)
		return false;
	return n->text[0] == '\0' || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
	       strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

const struct ynode *ynode_map_get(const struct ynode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n_kids; i += 2)
		if (strcmp(map->kids[i]->text, key) == 0)
			return map->kids[i + 1];
	return NULL;
}

/* ---- messages ----------------------------------------------------------------------- */

void cfg_fail(struct cfg_ctx *ctx, int line, const char *path, const char *fmt, ...)
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
	/* A path may hold a quoted key the file spelled with escapes ("a\nb"): the message
	 * goes to a log line. */
	for (char *c = ctx->err; c < ctx->err + n; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

void cfg_nomem(struct cfg_ctx *ctx)
{
	if (ctx->rc != HOOKD_OK)
		return;
	ctx->rc = HOOKD_ENOMEM;
	if (ctx->err && ctx->errlen)
		snprintf(ctx->err, ctx->errlen, "%s: out of memory while reading the configuration",
			 ctx->name);
}

const char *cfg_show(const struct ynode *n, char *buf, size_t len)
{
	if (n->kind == YNODE_MAP)
		return "a mapping";
	if (n->kind == YNODE_SEQ)
		return "a list";
	if (!n->quoted && n->text[0] == '\0')
		return "an empty value";
	return err_quote(n->text, buf, len);
}

/* A path longer than the buffer ends in "..."; the line number still locates the key. */
static void cfg_path_mark_cut(char *out, size_t len, int n)
{
	if ((n < 0 || (size_t)n >= len) && len > 4)
		memcpy(out + len - 4, "...", 4);
}

void cfg_path_key(char *out, size_t len, const char *path, const char *key)
{
	int n;
	if (path && *path)
		n = snprintf(out, len, "%s.%s", path, key);
	else
		n = snprintf(out, len, "%s", key);
	cfg_path_mark_cut(out, len, n);
}

void cfg_path_index(char *out, size_t len, const char *path, size_t i)
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

static int tree_parse_node(struct cfg_ctx *ctx, yaml_parser_t *p, yaml_event_t *ev, int depth,
			   struct ynode **out);

static int tree_parse_scalar(struct cfg_ctx *ctx, yaml_event_t *ev, int line, struct ynode **out)
{
	const char *v = (const char *)ev->data.scalar.value;
	size_t vlen = ev->data.scalar.length;
	struct ynode *n;

	if (tree_check_props(ctx, line, ev->data.scalar.anchor, ev->data.scalar.tag,
			     YAML_STR_TAG))
		return ctx->rc;
	if (memchr(v, '\0', vlen)) {
		cfg_fail(ctx, line, NULL, "a value contains a NUL character");
		return ctx->rc;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->text = malloc(vlen + 1))) {
		free(n);
		cfg_nomem(ctx);
		return ctx->rc;
	}
	memcpy(n->text, v, vlen);
	n->text[vlen] = '\0';
	n->kind = YNODE_SCALAR;
	n->line = line;
	n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || ev->data.scalar.tag != NULL;
	*out = n;
	return HOOKD_OK;
}

/* A sequence or mapping: its items (mapping: key, value, ...) until the matching end. */
static int tree_parse_collection(struct cfg_ctx *ctx, yaml_parser_t *p, yaml_event_t *ev,
				 int line, int depth, struct ynode **out)
{
	bool is_map = ev->type == YAML_MAPPING_START_EVENT;
	yaml_event_type_t end = is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
	const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor
					   : ev->data.sequence_start.anchor;
	const yaml_char_t *tag = is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
	struct ynode *n = NULL;

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
			cfg_fail(ctx, kid->line, NULL, "a mapping key must be a plain value, not %s",
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

nomem:
	cfg_nomem(ctx);
fail:
	ynode_free(n);
	return ctx->rc;
}

/* Builds the node that starts with ev (a scalar, alias or collection start). */
static int tree_parse_node(struct cfg_ctx *ctx, yaml_parser_t *p, yaml_event_t *ev, int depth,
			   struct ynode **out)
{
	int line = mark_line(ev->start_mark);

	*out = NULL;
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		cfg_fail(ctx, line, NULL,
			 "anchors and aliases (*%s) are not supported; write the value out",
			 ev->data.alias.anchor);
		return ctx->rc;
	case YAML_SCALAR_EVENT:
		return tree_parse_scalar(ctx, ev, line, out);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		return tree_parse_collection(ctx, p, ev, line, depth, out);
	default:
		cfg_fail(ctx, line, NULL, "unexpected YAML event %d", (int)ev->type);
		return ctx->rc;
	}
}

int cfg_tree_parse(struct cfg_ctx *ctx, struct ynode **root)
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

/* ---- scalars ------------------------------------------------------------------------ */

/* *neg is set for "-N" (N > 0), so the caller can report "-5 is out of range" rather than
 * "not an integer". */
bool cfg_parse_decimal(const char *s, uint64_t *out, bool *neg, bool *overflow)
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
bool cfg_parse_size(const char *s, uint64_t *out, bool *overflow)
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
const char *cfg_size_text(uint64_t v, char *buf, size_t len)
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

void cfg_fail_type(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
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

void cfg_fail_unknown(struct cfg_ctx *ctx, const struct ynode *k, const char *const *names,
		      size_t n_names, const char *path)
{
	char where[CFG_PATH_MAX + 16], hint[96] = "", show[64];
	const char *best = NULL;
	size_t best_d = 3; /* suggest only close misspellings */
	for (size_t i = 0; i < n_names; i++) {
		size_t d = cfg_distance(k->text, names[i]);
		size_t kl = strlen(k->text), fl = strlen(names[i]);
		/* "timeout" for "timeout_ms": a unit suffix left out is a common slip. */
		if (kl >= 4 && kl < fl && strncmp(k->text, names[i], kl) == 0)
			d = 1;
		if (d < best_d) {
			best_d = d;
			best = names[i];
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
int cfg_check_dup_keys(struct cfg_ctx *ctx, const struct ynode *map, const char *path,
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

/* ---- policy params and other free-form values: YAML -> JSON ------------------------- */

bool cfg_yaml_bool(const char *s, bool *out)
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
json_t *cfg_json_from_node(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
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

