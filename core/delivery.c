/* delivery.c - delivery objects, shared bodies, and the delivery id scheme. */
#include "delivery.h"

#include "dispatch.h"
#include "err.h"
#include "json_scan.h"
#include "record.h"
#include "registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bodies ---- */

struct body *body_new(const char *data, size_t len)
{
	struct body *b = malloc(sizeof(*b) + len + 1);
	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->len = len;
	b->type = NULL;
	memcpy(b->data, data, len);
	b->data[len] = 0;
	return b;
}

struct body *body_ref(struct body *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

void body_unref(struct body *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
		free(b->type);
		free(b);
	}
}

const char *body_event_type(struct body *b)
{
	struct json_scan js;
	char out[256];

	if (b->type)
		return b->type;
	out[0] = '\0';
	if (json_scan(b->data, b->len, &js) == HOOKD_OK && js.top == '{') {
		for (size_t i = 0; i < js.n_members && i < JSON_SCAN_MEMBERS; i++) {
			const struct json_member *m = &js.member[i];
			size_t n;
			if (m->key.len != 4 || memcmp(b->data + m->key.off, "type", 4) != 0 ||
			    b->data[m->value.off] != '"')
				continue;
			n = json_scan_string(b->data + m->value.off + 1, m->value.len - 2, out,
					     sizeof(out) - 1);
			out[n < sizeof(out) - 1 ? n : sizeof(out) - 1] = '\0';
			break;
		}
	}
	b->type = strdup(out);
	return b->type ? b->type : "";
}

/* ---- ids ---- */

/* The part of a message id that goes into its delivery ids: without the "msg_" prefix. */
static const char *delivery_msg_part(const char *msg_id)
{
	return strlen(msg_id) >= 4 ? msg_id + 4 : "";
}

/* snprintf's result as the length actually in out (it may have truncated). */
static size_t delivery_id_len(int rc)
{
	if (rc < 0)
		return 0;
	return (size_t)rc < DELIVERY_ID_MAX ? (size_t)rc : DELIVERY_ID_MAX - 1;
}

size_t delivery_id_make(const char *msg_id, enum delivery_series series, size_t n,
			char out[DELIVERY_ID_MAX])
{
	return delivery_id_len(snprintf(out, DELIVERY_ID_MAX, "dlv_%s_%s%zu",
					delivery_msg_part(msg_id),
					series == DELIVERY_POLICY ? "p" : "", n));
}

size_t delivery_id_prefix(const char *msg_id, char out[DELIVERY_ID_MAX])
{
	return delivery_id_len(snprintf(out, DELIVERY_ID_MAX, "dlv_%s_",
					delivery_msg_part(msg_id)));
}

size_t delivery_id_policy_prefix(const char *msg_id, char out[DELIVERY_ID_MAX])
{
	return delivery_id_len(snprintf(out, DELIVERY_ID_MAX, "dlv_%s_p",
					delivery_msg_part(msg_id)));
}

int delivery_id_parse(const char *id, size_t len, char *msg_id, enum delivery_series *series,
		      size_t *n)
{
	const char *end = id + len, *sep, *p;
	enum delivery_series s = DELIVERY_PLAIN;
	size_t part_len, num = 0;

	if (len < 4 || memcmp(id, "dlv_", 4) != 0)
		return HOOKD_EINVAL;
	/* The message part has no '_' (Crockford base32), so the number follows the last. */
	sep = memrchr(id + 4, '_', len - 4);
	if (!sep || sep == id + 4)
		return HOOKD_EINVAL;
	part_len = (size_t)(sep - (id + 4));
	if (4 + part_len >= ID_MAX)
		return HOOKD_EINVAL;
	p = sep + 1;
	if (p < end && *p == 'p') {
		s = DELIVERY_POLICY;
		p++;
	}
	/* Digits only, as delivery_id_make writes them: no sign, no leading zero. */
	if (p == end || (*p == '0' && end - p > 1))
		return HOOKD_EINVAL;
	for (; p < end; p++) {
		size_t digit = (size_t)(*p - '0');
		if (*p < '0' || *p > '9' || num > (SIZE_MAX - digit) / 10)
			return HOOKD_EINVAL;
		num = num * 10 + digit;
	}
	if (msg_id) {
		memcpy(msg_id, "msg_", 4);
		memcpy(msg_id + 4, id + 4, part_len);
		msg_id[4 + part_len] = 0;
	}
	if (series)
		*series = s;
	if (n)
		*n = num;
	return HOOKD_OK;
}

/* ---- deliveries ---- */

struct delivery *delivery_new(const char *id, const char *msg_id, const char *app_id,
			      struct endpoint *ep, struct body *body, int64_t now_ms)
{
	struct delivery *dv = calloc(1, sizeof(*dv));
	if (!dv)
		return NULL;
	dv->app_id = strdup(app_id);
	if (!dv->app_id) {
		free(dv);
		return NULL;
	}
	snprintf(dv->id, sizeof(dv->id), "%s", id);
	snprintf(dv->msg_id, sizeof(dv->msg_id), "%s", msg_id);
	dv->ep = ep;
	endpoint_ref(ep);
	dv->body = body_ref(body);
	dv->state = DLV_PENDING;
	dv->next_at_ms = now_ms;
	dv->created_ms = now_ms;
	dv->heap_idx = SIZE_MAX;
	return dv;
}

void delivery_free(struct delivery *dv)
{
	if (!dv)
		return;
	if (dv->ep)
		endpoint_unref(dv->ep);
	body_unref(dv->body);
	header_lines_free(dv->extra_lines, dv->n_extra);
	free(dv->headers_json);
	free(dv->app_id);
	free(dv->policy_name);
	json_decref(dv->policy_params);
	free(dv->last_error);
	/* Freed before it was ever stored (shutdown, out of memory): the set's marker stays
	 * in the store, so the next start redoes this delivery. */
	dispatch_unstored_unref(dv->unstored);
	free(dv);
}

void delivery_set_error(struct delivery *dv, const char *fmt, ...)
{
	char text[DELIVERY_ERROR_MAX];
	char *copy = NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (text[0] && !(copy = strdup(text)))
		return;
	free(dv->last_error);
	dv->last_error = copy;
}

int delivery_set_headers(struct delivery *dv, const char *headers_json)
{
	json_t *h = json_loads(headers_json, 0, NULL);
	int rc = HOOKD_EINVAL;
	if (json_is_object(h)) {
		dv->headers_json = strdup(headers_json);
		rc = dv->headers_json ? header_lines_from_json(h, &dv->extra_lines, &dv->n_extra)
				      : HOOKD_ENOMEM;
	}
	json_decref(h);
	return rc;
}
