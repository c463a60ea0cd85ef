/* config_yaml.h - inside the config module: YAML text -> a small node tree with line
 * numbers (config_yaml.c), the first error of a load as "file:line: path: message", and the
 * YAML 1.2 spelling of scalars. config_read.c walks the tree; nothing here knows hookd's
 * keys. Not for use outside core/config_*.c. */
#ifndef HOOKD_CONFIG_YAML_H
#define HOOKD_CONFIG_YAML_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

/* Key paths ("apps[12].endpoints[3].policy.params.paths[0]") are far below this; a header
 * name of HEADER_NAME_MAX bytes under its endpoint still fits. */
#define CFG_PATH_MAX 384

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

/* One load: where messages go and the first failure. */
struct cfg_ctx {
	const char *name;     /* file name for messages */
	const char *text;     /* the input, to turn a reader error's byte offset into a line */
	size_t len;
	char *err;
	size_t errlen;
	int rc;               /* first failure; later ones are not reported */
	struct config *root;  /* for checks across apps (endpoint ids are unique everywhere) */
	const char *const *only; /* non-NULL: read only these top-level keys (NULL-ended) */
};

/* Parses ctx->text into *root (owned by the caller, ynode_free): NULL for an empty stream
 * or document. Exactly one document; anchors, aliases and tags other than !!str are
 * refused. Returns ctx->rc. */
int cfg_tree_parse(struct cfg_ctx *ctx, struct ynode **root);
void ynode_free(struct ynode *n);
/* A plain scalar spelled as YAML 1.2 core-schema null (an empty value too). */
bool ynode_is_null(const struct ynode *n);
/* The value of key in a mapping node, or NULL. */
const struct ynode *ynode_map_get(const struct ynode *map, const char *key);

/* Records the first failure as "name:line: path: message" (no "path: " when empty);
 * control characters in path are shown as '?'. */
void cfg_fail(struct cfg_ctx *ctx, int line, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void cfg_nomem(struct cfg_ctx *ctx);
/* "expected <expected>, got <the value>". */
void cfg_fail_type(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
		   const char *expected);
/* "unknown key 'k' under 'path' (did you mean 'x'?)", x the closest of names. */
void cfg_fail_unknown(struct cfg_ctx *ctx, const struct ynode *k, const char *const *names,
		      size_t n_names, const char *path);
/* Refuses a key given twice in one mapping (nocase: HTTP header names). Returns ctx->rc. */
int cfg_check_dup_keys(struct cfg_ctx *ctx, const struct ynode *map, const char *path,
		       bool nocase);
/* Describes a node for "got ...": a quoted, shortened scalar (err_quote) or its kind. */
const char *cfg_show(const struct ynode *n, char *buf, size_t len);
/* path + "." + key and path + "[i]"; a path longer than the buffer ends in "...". */
void cfg_path_key(char *out, size_t len, const char *path, const char *key);
void cfg_path_index(char *out, size_t len, const char *path, size_t i);

/* Scalars. An unsigned decimal with an optional sign (*neg for "-N", *overflow past 64
 * bits); a size ("262144", "256KiB", "1 GiB", "500MB"; false if not one, *overflow past
 * 64 bits); a size as text for messages ("1MiB"); a YAML 1.2 core-schema boolean. */
bool cfg_parse_decimal(const char *s, uint64_t *out, bool *neg, bool *overflow);
bool cfg_parse_size(const char *s, uint64_t *out, bool *overflow);
const char *cfg_size_text(uint64_t v, char *buf, size_t len);
bool cfg_yaml_bool(const char *s, bool *out);

/* Converts any node to JSON: quoted scalars stay strings, plain ones follow the YAML 1.2
 * core schema. NULL on failure with the reason recorded in ctx. */
json_t *cfg_json_from_node(struct cfg_ctx *ctx, const struct ynode *v, const char *path);

#endif
