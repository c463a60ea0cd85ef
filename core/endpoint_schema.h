/* endpoint_schema.h - the one definition of an endpoint's fields: JSON type, limits,
 * default, rules, and how each becomes part of struct endpoint. Owned by the registry.
 *
 * Both ways of declaring an endpoint validate through this table, so they cannot disagree:
 *   - the API: POST and PATCH .../endpoints go through endpoint_json_merge (registry.h),
 *     which calls endpoint_schema_merge;
 *   - the config file: config_read.c turns each apps[].endpoints[] mapping into the JSON a
 *     create request would carry (the row's type says how to read each YAML value), checks
 *     it member by member with endpoint_schema_check_member and then
 *     endpoint_schema_check_whole, and adds file:line to the messages; config_apply.c
 *     hands the result to endpoint_json_merge at start.
 * The rules are documented in docs/api.md ("Endpoints") and docs/configuration.md
 * (apps[].endpoints[]); tests/integration/test_schema_agreement.py runs one table of
 * cases through both.
 *
 * The table is constant (read it from any thread); merge and apply run on the loop thread
 * like the rest of the registry, and at start before it runs. */
#ifndef HOOKD_ENDPOINT_SCHEMA_H
#define HOOKD_ENDPOINT_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct endpoint;

/* A JSON path from the endpoint is at most a row name, a '.' and a header name
 * (HEADER_NAME_MAX), or a row, a sub-row and an index. */
#define ENDPOINT_FIELD_PATH_MAX 320

/* Where a request failed and why. field is the JSON path of the value at fault ("url",
 * "event_types[2]", "headers.X-Tenant", "policy.name"; "" for the request as a whole). msg
 * does not repeat the field: the API sends "field: msg", the config file
 * "file:line: apps[0].endpoints[1].field: msg". Secrets are never shown in msg. */
struct endpoint_error {
	char field[ENDPOINT_FIELD_PATH_MAX];
	char msg[384];
};

/* The JSON type of a field; the config reader reads the YAML value into this type. */
enum endpoint_field_type {
	EPF_STRING = 1, /* a string, at most max bytes when max > 0 */
	EPF_BOOL,       /* true or false */
	EPF_STRINGS,    /* an array of at most max_items strings */
	EPF_SECONDS,    /* an array of 1..max_items integers, each min..max */
	EPF_STRING_MAP, /* an object of at most max_items members whose values are strings */
	EPF_OBJECT,     /* an object whose members are the rows in sub */
	EPF_ANY_OBJECT, /* any JSON object, stored as given (policy params) */
	EPF_INT,        /* an integer, min..max */
	EPF_NUMBER,     /* a number (integer or not), min..max */
};

#define EPF_REQUIRED 0x1u    /* a create must give it */
#define EPF_NULLABLE 0x2u    /* null is accepted and means the default */
#define EPF_CREATE_ONLY 0x4u /* set at creation only: a PATCH is refused with .fixed */
#define EPF_NOT_STORED 0x8u  /* read by another row's store (secret_type), not kept itself */

/* One field of an endpoint.
 *
 * To add a field (a breaker, a rate limit, auth, TLS options, ordering, a version pin):
 * add one row to endpoint_fields in endpoint_schema.c, in the order it should appear in
 * the stored JSON:
 *   1. name, type, flags and limits (min, max, max_items), each limit with the reason for
 *      its value in a comment;
 *   2. dflt: the JSON text a create stores when the field is left out (or null with
 *      EPF_NULLABLE);
 *   3. check: a function for what type and limits do not say (a charset, a cross-check
 *      with a constant elsewhere); it fills e->field and e->msg;
 *   4. apply/release if the delivery path reads the field: a member of struct endpoint
 *      (registry.h), set by apply from the stored JSON and freed by release;
 *   5. store only when the stored form differs from what the request gives.
 * The API (POST, PATCH, the view), the config file (apps[].endpoints[].NAME, with "did you
 * mean" for misspellings) and endpoint_apply then know the field. Document it in
 * docs/api.md and docs/configuration.md and add its cases to
 * tests/integration/test_schema_agreement.py. */
struct endpoint_field {
	const char *name;              /* JSON member and YAML key */
	enum endpoint_field_type type;
	unsigned flags;                /* EPF_* */
	int64_t min, max;              /* EPF_SECONDS: each entry; EPF_INT, EPF_NUMBER: the
					* value; EPF_STRING: max bytes */
	size_t max_items;              /* EPF_STRINGS, EPF_SECONDS, EPF_STRING_MAP */
	const char *dflt;              /* JSON text stored when a create leaves it out, or NULL */
	const char *fixed;             /* EPF_CREATE_ONLY: why a PATCH may not name it */
	/* Rules beyond type and limits; v is of the row's type (never null) and sits at path
	 * ("policy.name"). Returns HOOKD_EINVAL with e filled. */
	int (*check)(const struct endpoint_field *f, const char *path, const json_t *v,
		     struct endpoint_error *e);
	/* Puts a checked value into the stored JSON out when "the value as given, or dflt"
	 * is not the stored form. v is NULL when a create leaves the field out, json null
	 * when given as null; req is the whole request. HOOKD_OK, HOOKD_ENOMEM or another
	 * code with e filled. */
	int (*store)(const struct endpoint_field *f, const json_t *v, const json_t *req,
		     int64_t now_ms, json_t *out, struct endpoint_error *e);
	/* Sets the members of struct endpoint this field feeds, from the stored JSON (which it
	 * may trim: expired secrets are dropped). It sets every member it owns, whatever they
	 * held before (they may still belong to the previous version of the endpoint); on
	 * failure it frees what it allocated, leaves its members NULL/0 and writes err. */
	int (*apply)(struct endpoint *ep, json_t *stored, char *err, size_t errlen);
	/* Frees what apply allocated and zeroes those members. */
	void (*release)(struct endpoint *ep);
	const struct endpoint_field *sub; /* EPF_OBJECT: its members, ending in {0} */
};

/* The endpoint's fields, ending in a row with name NULL. */
extern const struct endpoint_field endpoint_fields[];

/* The row called name in rows (endpoint_fields or a row's sub), or NULL. */
const struct endpoint_field *endpoint_field_find(const struct endpoint_field *rows,
						 const char *name);

/* Checks one member of a create (creating) or patch request: known, changeable, of its
 * type, in its limits, and its own rules. HOOKD_OK or HOOKD_EINVAL with e filled. */
int endpoint_schema_check_member(const char *name, const json_t *v, bool creating,
				 struct endpoint_error *e);

/* Checks what needs the whole request once every member passed: required fields (on a
 * create), a secret that matches secret_type. HOOKD_OK or HOOKD_EINVAL with e filled. */
int endpoint_schema_check_whole(const json_t *req, bool creating, struct endpoint_error *e);
/* A secret and a secret_type given together must agree (whsec_ for hmac, whsk_ for
 * ed25519): at creation (part of the whole check) and on a rotation. */
int endpoint_schema_check_secret_pair(const json_t *req, struct endpoint_error *e);

/* Checks req as a create (base NULL) or a patch of the stored JSON base and returns the
 * new stored JSON (new reference): defaults and generated values (id, secret) filled on a
 * create, created_at, updated_at and app_id set. NULL with e filled when a field is bad
 * (HOOKD_EINVAL) or memory ran out (e->field "", e->msg "out of memory"). */
json_t *endpoint_schema_merge(const json_t *base, const json_t *req, const char *app_id,
			      int64_t now_ms, struct endpoint_error *e);

/* Sets ep's derived members from the stored JSON through every row's apply. On failure
 * the members already set are released again, the others are left as they were, and
 * err says why (HOOKD_EINVAL or HOOKD_ENOMEM). */
int endpoint_schema_apply(struct endpoint *ep, json_t *stored, char *err, size_t errlen);

/* Frees ep's derived members through every row's release. */
void endpoint_schema_release(struct endpoint *ep);

#endif
