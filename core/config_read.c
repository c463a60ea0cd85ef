/* config_read.c - the node tree of a config file -> struct config, key by key through the
 * tables of config_schema.c; declared endpoints through the endpoint schema the API uses
 * (endpoint_schema.h). Every refusal names the file, the line and the full key path. */
#include "config.h"
#include "config_schema.h"
#include "config_yaml.h"

#include "endpoint_schema.h"
#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ~10k declared endpoints at ~400 bytes each; beyond that the API is the right tool. The
 * cap also keeps `--config /dev/zero` from eating memory. */
#define CFG_FILE_MAX (4u * 1024 * 1024)

#define FIELD_PTR(base, off, type) ((type *)(void *)((char *)(base) + (off)))

static void cfg_apply_map(struct cfg_ctx *ctx, const struct ynode *map,
			  const struct cfg_field *fields, void *base, const char *path);

/* Runs a row's check on a scalar; the check words the reason, this adds file:line: path. */
static int cfg_run_check(struct cfg_ctx *ctx, const struct cfg_field *f, const struct ynode *v,
			 const char *path)
{
	char why[256];
	int rc;
	if (!f->check || (rc = f->check(v->text, why, sizeof(why))) == HOOKD_OK)
		return HOOKD_OK;
	if (rc == HOOKD_ENOMEM)
		cfg_nomem(ctx);
	else
		cfg_fail(ctx, v->line, path, "%s", why);
	return ctx->rc;
}

/* ---- values ------------------------------------------------------------------------- */

/* A plain decimal integer (cfg_parse_decimal); anything else is refused with its reason. */
static int cfg_get_decimal(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
			   uint64_t *n, bool *neg, bool *overflow)
{
	char show[64];
	if (v->kind != YNODE_SCALAR || !cfg_parse_decimal(v->text, n, neg, overflow)) {
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
	return HOOKD_OK;
}

static int cfg_get_uint(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
			uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	bool neg, overflow;
	char show[64];
	if (cfg_get_decimal(ctx, v, path, &n, &neg, &overflow))
		return ctx->rc;
	if (neg || overflow || n < min || n > max) {
		cfg_fail(ctx, v->line, path, "%s is out of range (%llu..%llu)",
			 cfg_show(v, show, sizeof(show)), (unsigned long long)min,
			 (unsigned long long)max);
		return ctx->rc;
	}
	*out = n;
	return HOOKD_OK;
}

/* A plain decimal number (YAML 1.2's core float without .inf and .nan: digits, an optional
 * fraction, an optional exponent), unquoted. */
static int cfg_get_number(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
			  double *out)
{
	char show[64], *end = NULL;
	const char *t = v->text;
	double d;
	if (v->kind != YNODE_SCALAR || !t || !*t || strspn(t, "0123456789.eE+-") != strlen(t) ||
	    !((d = strtod(t, &end)), end && *end == '\0') || !isfinite(d)) {
		cfg_fail_type(ctx, v, path, "a number");
		return ctx->rc;
	}
	if (v->quoted) {
		cfg_fail(ctx, v->line, path, "expected a number, got the string %s (remove the quotes)",
			 cfg_show(v, show, sizeof(show)));
		return ctx->rc;
	}
	*out = d;
	return HOOKD_OK;
}

static json_t *cfg_endpoint_number(struct cfg_ctx *ctx, const struct ynode *v, const char *path)
{
	double d;
	json_t *j;
	if (cfg_get_number(ctx, v, path, &d))
		return NULL;
	/* An integer stays an integer: the stored JSON then reads as the request would. */
	if (d == (double)(json_int_t)d && strpbrk(v->text, ".eE") == NULL)
		j = json_integer((json_int_t)d);
	else
		j = json_real(d);
	if (!j)
		cfg_nomem(ctx);
	return j;
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
	if (cfg_run_check(ctx, f, v, path))
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
		if (cfg_run_check(ctx, f, item, sub))
			goto fail;
		if (!(list[n] = strdup(item->text))) {
			cfg_nomem(ctx);
			goto fail;
		}
	}
done:
	config_strlist_free(*dst, *dst_n);
	*dst = list;
	*dst_n = n;
	return;
fail:
	config_strlist_free(list, n);
}

/* ---- endpoints: YAML -> the JSON of a create request, checked by the endpoint schema -- */

static json_t *cfg_endpoint_value(struct cfg_ctx *ctx, const struct endpoint_field *f,
				  const struct ynode *v, const char *path);

/* The JSON a nullable row takes for a YAML null; NULL (with the type error recorded) for a
 * row that must have a value. */
static json_t *cfg_endpoint_null(struct cfg_ctx *ctx, const struct endpoint_field *f,
				 const struct ynode *v, const char *path, const char *expected)
{
	json_t *j;
	if (!(f->flags & EPF_NULLABLE)) {
		cfg_fail_type(ctx, v, path, expected);
		return NULL;
	}
	if (!(j = json_null()))
		cfg_nomem(ctx);
	return j;
}

static json_t *cfg_endpoint_string(struct cfg_ctx *ctx, const struct ynode *v,
				   const char *path)
{
	json_t *j;
	if (v->kind != YNODE_SCALAR || ynode_is_null(v)) {
		cfg_fail_type(ctx, v, path, "a string");
		return NULL;
	}
	if (!(j = json_string(v->text)))
		cfg_nomem(ctx);
	return j;
}

/* Plain decimal integers, as for the daemon's numbers; the schema checks the range. */
static json_t *cfg_endpoint_integer(struct cfg_ctx *ctx, const struct ynode *v,
				    const char *path)
{
	uint64_t n = 0;
	bool neg, overflow;
	json_t *j;

	if (cfg_get_decimal(ctx, v, path, &n, &neg, &overflow))
		return NULL;
	if (overflow || n > (uint64_t)INT64_MAX)
		n = (uint64_t)INT64_MAX; /* out of every range: the schema says which */
	if (!(j = json_integer(neg ? -(json_int_t)n : (json_int_t)n)))
		cfg_nomem(ctx);
	return j;
}

/* A list whose items are read by item(); expected names the list for type errors. */
static json_t *cfg_endpoint_list(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
				 const char *expected,
				 json_t *(*item)(struct cfg_ctx *, const struct ynode *,
						 const char *))
{
	json_t *arr;
	if (v->kind != YNODE_SEQ) {
		cfg_fail_type(ctx, v, path, expected);
		return NULL;
	}
	if (!(arr = json_array())) {
		cfg_nomem(ctx);
		return NULL;
	}
	for (size_t i = 0; i < v->n_kids; i++) {
		char sub[CFG_PATH_MAX];
		json_t *j;
		cfg_path_index(sub, sizeof(sub), path, i);
		if (!(j = item(ctx, v->kids[i], sub)))
			goto fail;
		if (json_array_append_new(arr, j)) {
			cfg_nomem(ctx);
			goto fail;
		}
	}
	return arr;
fail:
	json_decref(arr);
	return NULL;
}

/* name: value pairs whose values are taken as written (X-Count: 5 is "5"); names are unique
 * regardless of case (HTTP header names). */
static json_t *cfg_endpoint_string_map(struct cfg_ctx *ctx, const struct ynode *v,
				       const char *path)
{
	json_t *obj;
	if (v->kind != YNODE_MAP) {
		cfg_fail_type(ctx, v, path, "a mapping of names to values");
		return NULL;
	}
	if (cfg_check_dup_keys(ctx, v, path, true))
		return NULL;
	if (!(obj = json_object())) {
		cfg_nomem(ctx);
		return NULL;
	}
	for (size_t i = 0; i + 1 < v->n_kids; i += 2) {
		const struct ynode *k = v->kids[i], *val = v->kids[i + 1];
		char sub[CFG_PATH_MAX];
		cfg_path_key(sub, sizeof(sub), path, k->text);
		if (val->kind != YNODE_SCALAR) {
			cfg_fail_type(ctx, val, sub, "a string value");
			goto fail;
		}
		if (json_object_set_new(obj, k->text,
					json_string(ynode_is_null(val) ? "" : val->text))) {
			cfg_nomem(ctx);
			goto fail;
		}
	}
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

/* Up to 32 names, for "did you mean". */
static size_t cfg_endpoint_names(const struct endpoint_field *rows, const char **names,
				 size_t max)
{
	size_t n = 0;
	for (const struct endpoint_field *f = rows; f->name && n < max; f++)
		names[n++] = f->name;
	return n;
}

/* A mapping whose keys are rows (an endpoint, or a row's sub-rows: policy), each value read
 * by its row's type. Unknown keys are refused with the closest row name. */
static json_t *cfg_endpoint_object(struct cfg_ctx *ctx, const struct endpoint_field *rows,
				   const struct ynode *v, const char *path)
{
	const char *names[32];
	json_t *obj;

	if (v->kind != YNODE_MAP) {
		cfg_fail_type(ctx, v, path, "a mapping");
		return NULL;
	}
	if (cfg_check_dup_keys(ctx, v, path, false))
		return NULL;
	if (!(obj = json_object())) {
		cfg_nomem(ctx);
		return NULL;
	}
	for (size_t i = 0; i + 1 < v->n_kids; i += 2) {
		const struct ynode *k = v->kids[i];
		const struct endpoint_field *f = endpoint_field_find(rows, k->text);
		char sub[CFG_PATH_MAX];
		json_t *j;
		if (!f) {
			cfg_fail_unknown(ctx, k, names, cfg_endpoint_names(rows, names, 32), path);
			goto fail;
		}
		cfg_path_key(sub, sizeof(sub), path, f->name);
		if (!(j = cfg_endpoint_value(ctx, f, v->kids[i + 1], sub)))
			goto fail;
		if (json_object_set_new(obj, f->name, j)) {
			cfg_nomem(ctx);
			goto fail;
		}
	}
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

/* Reads v as the JSON type of row f. Only YAML's own typing is judged here (a list where a
 * string belongs, a quoted number, yes for a boolean); what the value may be is the
 * schema's to say, after. */
static json_t *cfg_endpoint_value(struct cfg_ctx *ctx, const struct endpoint_field *f,
				  const struct ynode *v, const char *path)
{
	static const char *const expected[] = {
		[EPF_STRING] = "a string",
		[EPF_BOOL] = "true or false",
		[EPF_STRINGS] = "a list of strings",
		[EPF_SECONDS] = "a list of seconds",
		[EPF_STRING_MAP] = "a mapping of names to values",
		[EPF_OBJECT] = "a mapping",
		[EPF_ANY_OBJECT] = "a mapping",
		[EPF_INT] = "an integer",
		[EPF_NUMBER] = "a number",
	};
	json_t *j;
	bool b;

	if (ynode_is_null(v))
		return cfg_endpoint_null(ctx, f, v, path, expected[f->type]);
	switch (f->type) {
	case EPF_STRING:
		return cfg_endpoint_string(ctx, v, path);
	case EPF_BOOL:
		/* YAML 1.2 booleans only: yes/no are strings there, and guessing would make
		 * `disabled: no` mean different things to different tools. */
		if (v->kind != YNODE_SCALAR || v->quoted || !cfg_yaml_bool(v->text, &b)) {
			cfg_fail_type(ctx, v, path, expected[f->type]);
			return NULL;
		}
		if (!(j = json_boolean(b)))
			cfg_nomem(ctx);
		return j;
	case EPF_STRINGS:
		return cfg_endpoint_list(ctx, v, path, expected[f->type], cfg_endpoint_string);
	case EPF_SECONDS:
		return cfg_endpoint_list(ctx, v, path, expected[f->type], cfg_endpoint_integer);
	case EPF_STRING_MAP:
		return cfg_endpoint_string_map(ctx, v, path);
	case EPF_OBJECT:
		return cfg_endpoint_object(ctx, f->sub, v, path);
	case EPF_ANY_OBJECT:
		if (v->kind != YNODE_MAP) {
			cfg_fail_type(ctx, v, path, expected[f->type]);
			return NULL;
		}
		return cfg_json_from_node(ctx, v, path);
	case EPF_INT:
		return cfg_endpoint_integer(ctx, v, path);
	case EPF_NUMBER:
		return cfg_endpoint_number(ctx, v, path);
	}
	cfg_fail_type(ctx, v, path, "a value");
	return NULL;
}

/* The node a schema error points at. field is a JSON path from the endpoint
 * ("headers.X-A", "event_types[2]", "policy.name"), resolved through the rows' types, since
 * a header name may itself contain '.'. A part the file does not have (a required field)
 * resolves to the deepest node that exists. */
static const struct ynode *cfg_endpoint_locate(const struct ynode *map,
					       const struct endpoint_field *rows,
					       const char *field)
{
	size_t n = strcspn(field, ".[");
	char name[64];
	const struct endpoint_field *f;
	const struct ynode *v;
	const char *rest = field + n;

	if (n == 0 || n >= sizeof(name) || map->kind != YNODE_MAP)
		return map;
	memcpy(name, field, n);
	name[n] = '\0';
	if (!(f = endpoint_field_find(rows, name)) || !(v = ynode_map_get(map, name)))
		return map;
	if (*rest == '[' && v->kind == YNODE_SEQ) {
		size_t i = strtoul(rest + 1, NULL, 10);
		return i < v->n_kids ? v->kids[i] : v;
	}
	if (*rest == '.' && v->kind == YNODE_MAP) {
		const struct ynode *member;
		if (f->type == EPF_OBJECT)
			return cfg_endpoint_locate(v, f->sub, rest + 1);
		member = ynode_map_get(v, rest + 1);
		return member ? member : v;
	}
	return v;
}

/* Reports a schema error at the line of the value it names, under the endpoint's path. */
static void cfg_endpoint_fail(struct cfg_ctx *ctx, const struct ynode *item, const char *path,
			      const struct endpoint_error *e)
{
	char sub[CFG_PATH_MAX];
	cfg_path_key(sub, sizeof(sub), path, e->field);
	cfg_fail(ctx, cfg_endpoint_locate(item, endpoint_fields, e->field)->line, sub, "%s",
		 e->msg);
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

/* One apps[].endpoints[] mapping: read into the JSON a create request would carry and
 * checked as the API checks one, member by member (so the first bad key in the file is
 * the one reported), then as a whole. The id, optional in the API, is required here: it is
 * what finds the endpoint again at the next start. */
static void cfg_read_endpoint(struct cfg_ctx *ctx, const struct config_app *app,
			      struct config_endpoint *e, const struct ynode *item,
			      const char *path)
{
	struct endpoint_error err;
	const char *key;
	json_t *fields, *v;
	char sub[CFG_PATH_MAX];

	if (!(fields = cfg_endpoint_object(ctx, endpoint_fields, item, path)))
		return;
	e->fields = fields; /* owned by the config from here on */
	json_object_foreach(fields, key, v) {
		if (endpoint_schema_check_member(key, v, true, &err) != HOOKD_OK) {
			cfg_endpoint_fail(ctx, item, path, &err);
			return;
		}
	}
	if (!json_is_string(json_object_get(fields, "id"))) {
		cfg_path_key(sub, sizeof(sub), path, "id");
		cfg_fail(ctx, item->line, sub, "required");
		return;
	}
	if (endpoint_schema_check_whole(fields, true, &err) != HOOKD_OK) {
		cfg_endpoint_fail(ctx, item, path, &err);
		return;
	}
	e->id = json_string_value(json_object_get(fields, "id"));
	cfg_endpoint_check_unique(ctx, app, e, item, path);
}

static void cfg_endpoints_clear(struct config_app *app)
{
	for (size_t j = 0; j < app->n_endpoints; j++)
		config_endpoint_clear(&app->endpoints[j]);
	free(app->endpoints);
	app->endpoints = NULL;
	app->n_endpoints = 0;
}

/* The start of a list value: refuses what is not a list (what names the expected value)
 * and allocates one zeroed element of size per item into *out (NULL for a null or empty
 * list). Returns the number of items, or -1 after failing. */
static long cfg_list_alloc(struct cfg_ctx *ctx, const struct ynode *v, const char *path,
			   const char *what, size_t size, void **out)
{
	*out = NULL;
	if (!ynode_is_null(v) && v->kind != YNODE_SEQ) {
		cfg_fail_type(ctx, v, path, what);
		return -1;
	}
	if (ynode_is_null(v) || v->n_kids == 0)
		return 0;
	if (!(*out = calloc(v->n_kids, size))) {
		cfg_nomem(ctx);
		return -1;
	}
	return (long)v->n_kids;
}

/* Item i of the list v at path, which must be a mapping (what names it); sub receives
 * the item's path. NULL after failing. */
static const struct ynode *cfg_list_map(struct cfg_ctx *ctx, const struct ynode *v, size_t i,
					const char *path, const char *what, char *sub)
{
	const struct ynode *item = v->kids[i];
	cfg_path_index(sub, CFG_PATH_MAX, path, i);
	if (item->kind != YNODE_MAP) {
		cfg_fail_type(ctx, item, sub, what);
		return NULL;
	}
	return item;
}

static void cfg_apply_endpoints(struct cfg_ctx *ctx, const struct cfg_field *f,
				const struct ynode *v, void *base, const char *path)
{
	struct config_app *app = base;
	void *arr;
	long n = cfg_list_alloc(ctx, v, path, "a list of endpoints", sizeof(*app->endpoints), &arr);
	if (n < 0)
		return;
	/* Owned by the app from here on, zeroed: config_free copes with any failure below. */
	cfg_endpoints_clear(app);
	app->endpoints = arr;
	app->n_endpoints = (size_t)n;
	for (size_t i = 0; i < app->n_endpoints; i++) {
		struct config_endpoint *e = &app->endpoints[i];
		char sub[CFG_PATH_MAX];
		const struct ynode *item =
			cfg_list_map(ctx, v, i, path, "an endpoint (a mapping with id and url)", sub);
		if (!item)
			return;
		e->line = item->line;
		cfg_read_endpoint(ctx, app, e, item, sub);
		if (ctx->rc)
			return;
	}
}

/* ---- plugins.options --------------------------------------------------------------- */

/* An option's key: what a plugin asks host->option for. */
static bool cfg_plugin_option_key(const char *k)
{
	size_t len = strlen(k);
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
		      (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '-' || k[i] == '.'))
			return false;
	return true;
}

/* plugins.options: NAME: {key: scalar, ...}. Values are kept as written (a plugin reads
 * "30" or "true" as text); lists, mappings and null are refused here, not by the plugin. */
static void cfg_apply_plugin_options(struct cfg_ctx *ctx, const struct cfg_field *f,
				     const struct ynode *v, void *base, const char *path)
{
	struct config *c = base;
	struct config_plugin_options *opts = NULL;
	size_t n = 0;
	char why[256], show[64];

	if (!ynode_is_null(v) && v->kind != YNODE_MAP) {
		cfg_fail_type(ctx, v, path, "a mapping of plugin names to their options");
		return;
	}
	if (ynode_is_null(v))
		goto done;
	if (cfg_check_dup_keys(ctx, v, path, false))
		return;
	if (v->n_kids / 2 > f->max_n) {
		cfg_fail(ctx, v->line, path, "names %zu plugins, at most %zu are allowed",
			 v->n_kids / 2, f->max_n);
		return;
	}
	if (v->n_kids && !(opts = calloc(v->n_kids / 2, sizeof(*opts)))) {
		cfg_nomem(ctx);
		return;
	}
	for (; n < v->n_kids / 2; n++) {
		const struct ynode *k = v->kids[2 * n], *m = v->kids[2 * n + 1];
		struct config_plugin_options *o = &opts[n];
		char sub[CFG_PATH_MAX];
		cfg_path_key(sub, sizeof(sub), path, k->text);
		if (config_check_plugin_name(k->text, why, sizeof(why)) != HOOKD_OK) {
			cfg_fail(ctx, k->line, sub, "%s", why);
			goto fail;
		}
		if (!(o->name = strdup(k->text))) {
			cfg_nomem(ctx);
			goto fail;
		}
		o->line = k->line;
		if (ynode_is_null(m))
			continue;
		if (m->kind != YNODE_MAP) {
			cfg_fail_type(ctx, m, sub, "a mapping of option names to values");
			goto fail;
		}
		if (cfg_check_dup_keys(ctx, m, sub, false))
			goto fail;
		if (m->n_kids / 2 > f->max_n) {
			cfg_fail(ctx, m->line, sub, "has %zu options, at most %zu are allowed",
				 m->n_kids / 2, f->max_n);
			goto fail;
		}
		if (m->n_kids && (!(o->keys = calloc(m->n_kids / 2, sizeof(char *))) ||
				  !(o->values = calloc(m->n_kids / 2, sizeof(char *))))) {
			cfg_nomem(ctx);
			goto fail;
		}
		for (size_t i = 0; i + 1 < m->n_kids; i += 2) {
			const struct ynode *ok = m->kids[i], *ov = m->kids[i + 1];
			char osub[CFG_PATH_MAX];
			cfg_path_key(osub, sizeof(osub), sub, ok->text);
			if (!cfg_plugin_option_key(ok->text)) {
				cfg_fail(ctx, ok->line, osub,
					 "expected an option name (1 to 64 of A-Z a-z 0-9 _ - .), got %s",
					 cfg_show(ok, show, sizeof(show)));
				goto fail;
			}
			if (ov->kind != YNODE_SCALAR || ynode_is_null(ov)) {
				cfg_fail_type(ctx, ov, osub, "a string, number or boolean");
				goto fail;
			}
			if (!(o->keys[o->n] = strdup(ok->text)) ||
			    !(o->values[o->n] = strdup(ov->text))) {
				free(o->keys[o->n]);
				o->keys[o->n] = NULL;
				cfg_nomem(ctx);
				goto fail;
			}
			o->n++;
		}
	}
done:
	config_plugin_options_free(c->plugin_options, c->n_plugin_options);
	c->plugin_options = opts;
	c->n_plugin_options = n;
	return;
fail:
	/* calloc'ed: the entries not reached yet are empty. */
	config_plugin_options_free(opts, opts ? v->n_kids / 2 : 0);
}

/* ---- apps and the walk over the tables ---------------------------------------------- */

static void cfg_apply_apps(struct cfg_ctx *ctx, const struct cfg_field *f, const struct ynode *v,
			   void *base, const char *path)
{
	struct config *c = base;
	void *arr;
	long n = cfg_list_alloc(ctx, v, path, "a list of apps", sizeof(*c->apps), &arr);
	if (n < 0)
		return;
	config_apps_free(c->apps, c->n_apps);
	c->apps = arr;
	c->n_apps = (size_t)n;
	for (size_t i = 0; i < c->n_apps; i++) {
		struct config_app *app = &c->apps[i];
		char sub[CFG_PATH_MAX];
		const struct ynode *item = cfg_list_map(ctx, v, i, path, "an app (a mapping with id)", sub);
		if (!item)
			return;
		app->line = item->line;
		app->retention_days = app->payload_retention_days = CONFIG_DAYS_UNSET;
		cfg_apply_map(ctx, item, f->sub, app, sub);
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
	case CFG_NUMBER: {
		double d;
		char show[64];
		if (cfg_get_number(ctx, v, path, &d))
			return;
		if (d < (double)f->min || d > (double)f->max) {
			cfg_fail(ctx, v->line, path, "%s is out of range (%llu..%llu)",
				 cfg_show(v, show, sizeof(show)), (unsigned long long)f->min,
				 (unsigned long long)f->max);
			return;
		}
		*FIELD_PTR(base, f->off, double) = d;
		return;
	}
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
	case CFG_APPS:
		cfg_apply_apps(ctx, f, v, base, path);
		return;
	case CFG_ENDPOINTS:
		cfg_apply_endpoints(ctx, f, v, base, path);
		return;
	case CFG_PLUGIN_OPTIONS:
		cfg_apply_plugin_options(ctx, f, v, base, path);
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
		if (ctx->only && fields == config_top_fields) {
			const char *const *o = ctx->only;
			while (*o && strcmp(*o, k->text) != 0)
				o++;
			if (!*o)
				continue;
		}
		for (f = fields; f->key; f++)
			if (strcmp(f->key, k->text) == 0)
				break;
		if (!f->key) {
			const char *names[64];
			size_t n = 0;
			for (const struct cfg_field *g = fields; g->key && n < 64; g++)
				names[n++] = g->key;
			cfg_fail_unknown(ctx, k, names, n, path);
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

/* payload_retention_days, when set, must not exceed retention_days (0 = keep) where both
 * apply: storage's own, and each app's against its own retention_days or, when it names
 * none, storage.retention_days. Checked once the whole file is read (storage may come
 * after apps), at the payload_retention_days line. */
static void cfg_check_payload_retention(struct cfg_ctx *ctx, const struct ynode *root)
{
	const struct config *c = ctx->root;
	const struct ynode *apps = ynode_map_get(root, "apps");
	const struct ynode *st = ynode_map_get(root, "storage"), *v;

	if (c->payload_retention_days && c->retention_days &&
	    c->payload_retention_days > c->retention_days) {
		v = st && st->kind == YNODE_MAP ? ynode_map_get(st, "payload_retention_days") : NULL;
		cfg_fail(ctx, v ? v->line : root->line, "storage.payload_retention_days",
			 "%u must not exceed storage.retention_days (%u)",
			 c->payload_retention_days, c->retention_days);
		return;
	}
	for (size_t i = 0; i < c->n_apps; i++) {
		const struct config_app *a = &c->apps[i];
		int own = a->retention_days != CONFIG_DAYS_UNSET;
		uint32_t days = own ? a->retention_days : c->retention_days;
		char path[CFG_PATH_MAX], idx[CFG_PATH_MAX];
		if (a->payload_retention_days == CONFIG_DAYS_UNSET || !a->payload_retention_days ||
		    !days || a->payload_retention_days <= days)
			continue;
		v = apps && apps->kind == YNODE_SEQ && i < apps->n_kids
			    ? ynode_map_get(apps->kids[i], "payload_retention_days")
			    : NULL;
		cfg_path_index(idx, sizeof(idx), "apps", i);
		cfg_path_key(path, sizeof(path), idx, "payload_retention_days");
		cfg_fail(ctx, v ? v->line : a->line, path, "%u must not exceed %s%s (%u)",
			 a->payload_retention_days, own ? idx : "storage",
			 ".retention_days", days);
		return;
	}
}

/* ---- public ------------------------------------------------------------------------- */

static int cfg_load_string(struct config *c, const char *text, size_t len, const char *name,
			   const char *const *only, char *err, size_t errlen)
{
	struct cfg_ctx ctx = {
		.only = only,
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
	if (cfg_tree_parse(&ctx, &root))
		goto cleanup;
	if (root) {
		if (root->kind != YNODE_MAP) {
			char show[64];
			cfg_fail(&ctx, root->line, NULL,
				 "expected a mapping of keys at top level, got %s",
				 cfg_show(root, show, sizeof(show)));
			goto cleanup;
		}
		cfg_apply_map(&ctx, root, config_top_fields, c, "");
		if (ctx.rc)
			goto cleanup;
		if (!only)
			cfg_check_payload_retention(&ctx, root);
		if (ctx.rc)
			goto cleanup;
	}
	if (config_fill_allocated_defaults(c))
		cfg_nomem(&ctx);

cleanup:
	ynode_free(root);
	return ctx.rc;
}

int config_load_string(struct config *c, const char *text, size_t len, const char *name,
		       char *err, size_t errlen)
{
	return cfg_load_string(c, text, len, name, NULL, err, errlen);
}

static int cfg_load_file(struct config *c, const char *path, const char *const *only, char *err,
			 size_t errlen)
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
	rc = cfg_load_string(c, buf ? buf : "", len, path, only, err, errlen);
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

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
	return cfg_load_file(c, path, NULL, err, errlen);
}

int config_load_file_plugins(struct config *c, const char *path, char *err, size_t errlen)
{
	/* The destination guard too: plugins may ask it (destination_allowed). */
	static const char *const only[] = {"plugins", "security", NULL};
	return cfg_load_file(c, path, only, err, errlen);
}
