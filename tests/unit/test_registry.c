/* test_registry.c - endpoint validation and subscription matching; ids and clock text. */
#include "check.h"

#include "clock.h"
#include "err.h"
#include "id.h"
#include "registry.h"
#include "sign.h"

#include <stdlib.h>
#include <string.h>

static json_t *merge(const json_t *base, const char *req_text, char *field, char *msg)
{
	json_t *req = json_loads(req_text, 0, NULL);
	json_t *out = endpoint_json_merge(base, req, "app1", 1764460800000LL, field, 128, msg, 512);
	json_decref(req);
	return out;
}

struct bad_case {
	const char *req;
	const char *field;
	const char *msg_part;
};

static void test_validation(void)
{
	static const struct bad_case bad[] = {
		{"{}", "url", "required"},
		{"{\"url\": 5}", "url", "string"},
		{"{\"url\": \"ftp://x/y\"}", "url", "http or https"},
		{"{\"url\": \"not a url\"}", "url", "valid"},
		{"{\"url\": \"http://h/\", \"event_types\": [\"ok.type\", \"bad type\"]}", "event_types[1]", "event type"},
		{"{\"url\": \"http://h/\", \"event_types\": \"a.b\"}", "event_types", "array"},
		{"{\"url\": \"http://h/\", \"retry_schedule\": []}", "retry_schedule", "1 to"},
		{"{\"url\": \"http://h/\", \"retry_schedule\": [1, -1]}", "retry_schedule[1]", "seconds"},
		{"{\"url\": \"http://h/\", \"retry_schedule\": [1, 604801]}", "retry_schedule[1]", "604800"},
		{"{\"url\": \"http://h/\", \"headers\": {\"webhook-id\": \"x\"}}", "headers.webhook-id", "reserved"},
		{"{\"url\": \"http://h/\", \"headers\": {\"X-A\": \"a\\r\\nB: c\"}}", "headers.X-A", "CR/LF"},
		{"{\"url\": \"http://h/\", \"headers\": {\"bad name\": \"v\"}}", "headers.bad name", "header name"},
		{"{\"url\": \"http://h/\", \"secret\": \"whsec_!!\"}", "secret", "invalid secret"},
		{"{\"url\": \"http://h/\", \"secret_type\": \"rsa\"}", "secret_type", "hmac"},
		{"{\"url\": \"http://h/\", \"disabled\": \"no\"}", "disabled", "true or false"},
		{"{\"url\": \"http://h/\", \"id\": \"has space\"}", "id", "[A-Za-z0-9_-]"},
		{"{\"url\": \"http://h/\", \"policy\": {\"params\": {}}}", "policy.name", "policy"},
		{"{\"url\": \"http://h/\", \"colour\": \"red\"}", "colour", "unknown field"},
		/* One schema with the config file (endpoint_schema.c). */
		{"{\"url\": \"plugin:nats\"}", "url", "plugin"},
		{"{\"url\": \"http://h/\", \"event_types\": [\"inv*.paid\"]}", "event_types[0]", "final '.*'"},
		{"{\"url\": \"http://h/\", \"headers\": {\"User-Agent\": \"x\"}}", "headers.User-Agent", "set by hookd"},
		{"{\"url\": \"http://h/\", \"headers\": {\"X-A\": \"1\", \"x-a\": \"2\"}}", "headers.x-a", "case-insensitive"},
		{"{\"url\": \"http://h/\", \"headers\": {\"X-A\": \"a\\u0001\"}}", "headers.X-A", "control characters"},
		{"{\"url\": \"http://h/\", \"policy\": {\"name\": \"Upper\"}}", "policy.name", "a-z 0-9"},
		{"{\"url\": \"http://h/\", \"policy\": {\"name\": \"p\", \"parms\": {}}}", "policy.parms", "unknown field"},
		{"{\"url\": \"http://h/\", \"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"secret_type\": \"ed25519\"}", "secret", "whsk_"},
		{"{\"url\": \"http://h/\", \"description\": null}", "description", "null"},
	};
	char field[128], msg[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *out = merge(NULL, bad[i].req, field, msg);
		CHECK(out == NULL);
		CHECK_STR(field, bad[i].field);
		if (!strstr(msg, bad[i].msg_part)) {
			fprintf(stderr, "case %zu: message '%s' lacks '%s'\n", i, msg, bad[i].msg_part);
			CHECK(0);
		}
		json_decref(out);
	}
}

/* Limits at their boundary: the last accepted value and the first refused one. */
static void test_limits(void)
{
	char field[128], msg[512], text[300000];
	size_t n;
	json_t *out;

	/* 32 headers of 8 KiB values pass; a 33rd header, or one byte more, does not. */
	for (int extra = 0; extra < 3; extra++) {
		n = (size_t)snprintf(text, sizeof(text), "{\"url\": \"http://h/\", \"headers\": {");
		for (int i = 0; i < 32 + (extra == 1); i++) {
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"X-%d\": \"", i ? ", " : "", i);
			size_t len = 8192 + (extra == 2 && i == 0);
			memset(text + n, 'v', len);
			n += len;
			n += (size_t)snprintf(text + n, sizeof(text) - n, "\"");
		}
		snprintf(text + n, sizeof(text) - n, "}}");
		out = merge(NULL, text, field, msg);
		CHECK((out != NULL) == (extra == 0));
		if (extra)
			CHECK_STR(field, extra == 1 ? "headers" : "headers.X-0");
		json_decref(out);
	}
	/* Event types: 128 bytes and "*" pass, 129 bytes do not. */
	char type[140];
	memset(type, 'a', 129);
	type[128] = 0;
	snprintf(text, sizeof(text), "{\"url\": \"http://h/\", \"event_types\": [\"%s\", \"*\"]}", type);
	out = merge(NULL, text, field, msg);
	CHECK(out != NULL);
	json_decref(out);
	type[128] = 'a';
	type[129] = 0;
	snprintf(text, sizeof(text), "{\"url\": \"http://h/\", \"event_types\": [\"%s\"]}", type);
	out = merge(NULL, text, field, msg);
	CHECK(out == NULL);
	CHECK_STR(field, "event_types[0]");
}

/* A stored JSON the appliers refuse leaves the installed endpoint as it was. */
static void test_failed_update_keeps_endpoint(void)
{
	char field[128], msg[512], err[256];
	struct registry reg = {0};
	struct app *a = registry_app_install(&reg, json_pack("{s:s}", "id", "app1"));
	json_t *j = merge(NULL, "{\"url\": \"http://h/\", \"headers\": {\"X-A\": \"1\"}}", field, msg);
	struct endpoint *ep = registry_endpoint_install(&reg, a, j, err, sizeof(err));
	CHECK(ep != NULL);
	if (!ep) {
		registry_free(&reg);
		return;
	}
	json_t *bad = json_deep_copy(ep->json);
	json_object_set_new(bad, "url", json_string("http://other/"));
	json_object_set_new(bad, "secrets", json_pack("[{s:s, s:I}]", "secret", "whsec_!!", "expires_at_ms", (json_int_t)0));
	CHECK(registry_endpoint_install(&reg, a, bad, err, sizeof(err)) == NULL);
	CHECK_STR(ep->url, "http://h/");
	CHECK(ep->n_headers == 1 && ep->n_secrets == 1);
	CHECK_STR(ep->header_lines[0], "X-A: 1");
	registry_free(&reg);
}

static void test_create_and_patch(void)
{
	char field[128], msg[512];
	json_t *ep = merge(NULL, "{\"url\": \"https://example.invalid/hook\", \"event_types\": [\"order.*\"]}",
			   field, msg);
	CHECK(ep != NULL);
	CHECK(strncmp(json_string_value(json_object_get(ep, "id")), "ep_", 3) == 0);
	CHECK_STR(json_string_value(json_object_get(ep, "secret_type")), "hmac");
	const char *secret = json_string_value(
		json_object_get(json_array_get(json_object_get(ep, "secrets"), 0), "secret"));
	CHECK(secret && strncmp(secret, "whsec_", 6) == 0);
	CHECK_STR(json_string_value(json_object_get(ep, "app_id")), "app1");
	CHECK(json_is_false(json_object_get(ep, "disabled")));

	/* Patching cannot change the id or the secret, keeps what it does not name. */
	json_t *p = merge(ep, "{\"id\": \"other\"}", field, msg);
	CHECK(p == NULL);
	CHECK_STR(field, "id");
	p = merge(ep, "{\"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}", field, msg);
	CHECK(p == NULL);
	p = merge(ep, "{\"disabled\": true}", field, msg);
	CHECK(p != NULL);
	CHECK(json_is_true(json_object_get(p, "disabled")));
	CHECK_STR(json_string_value(json_object_get(p, "disabled_reason")), "disabled by operator");
	CHECK(json_equal(json_object_get(p, "event_types"), json_object_get(ep, "event_types")));
	json_decref(p);

	/* Ed25519 endpoints get a whsk_ secret and expose the matching public key. */
	json_t *ed = merge(NULL, "{\"url\": \"http://h/\", \"secret_type\": \"ed25519\"}", field, msg);
	CHECK(ed != NULL);
	CHECK_STR(json_string_value(json_object_get(ed, "secret_type")), "ed25519");

	struct registry reg = {0};
	json_t *app = json_pack("{s:s, s:s}", "id", "app1", "name", "A");
	struct app *a = registry_app_install(&reg, app);
	char err[256];
	struct endpoint *e1 = registry_endpoint_install(&reg, a, ep, err, sizeof(err));
	struct endpoint *e2 = registry_endpoint_install(&reg, a, ed, err, sizeof(err));
	CHECK(e1 && e2);
	json_t *view = endpoint_api_view(e2);
	CHECK(json_object_get(view, "secrets") == NULL);
	const char *pk = json_string_value(json_object_get(view, "public_key"));
	CHECK(pk && strncmp(pk, "whpk_", 5) == 0);
	json_decref(view);

	CHECK(endpoint_matches(e1, "order.created"));
	CHECK(endpoint_matches(e1, "order.item.added"));
	CHECK(!endpoint_matches(e1, "orders.created"));
	CHECK(!endpoint_matches(e1, "order"));
	CHECK(!endpoint_matches(e1, "invoice.paid"));
	CHECK(endpoint_matches(e2, "anything.at.all")); /* no filter: every type */

	/* An update keeps the same struct (live deliveries point at it). */
	json_t *upd = merge(e1->json, "{\"url\": \"http://h2/\"}", field, msg);
	struct endpoint *again = registry_endpoint_install(&reg, a, upd, err, sizeof(err));
	CHECK(again == e1);
	CHECK_STR(e1->url, "http://h2/");
	CHECK(registry_endpoint(&reg, "app1", json_string_value(json_object_get(e1->json, "id"))) == e1);
	registry_free(&reg);
}

static void test_types_ids_clock(void)
{
	char a[ID_MAX], b[ID_MAX], iso[CLOCK_ISO_LEN];
	int64_t ms;
	CHECK(registry_type_valid("invoice.paid"));
	CHECK(registry_type_valid("A_b-c.d9"));
	CHECK(!registry_type_valid("a..b"));
	CHECK(!registry_type_valid(".a"));
	CHECK(!registry_type_valid("a."));
	CHECK(!registry_type_valid("a b"));
	CHECK(!registry_type_valid(""));

	id_make("msg_", 1764460800000LL, a);
	id_make("msg_", 1764460800000LL, b);
	CHECK(strlen(a) == 4 + ID_BODY_LEN);
	CHECK(strcmp(a, b) < 0); /* same millisecond: still increasing */
	id_make("msg_", 1764460800001LL, b);
	CHECK(strcmp(a, b) < 0);
	CHECK(id_valid("app_x-1") && !id_valid("a/b") && !id_valid(""));

	clock_iso8601(1764460800123LL, iso);
	CHECK_STR(iso, "2025-11-30T00:00:00.123Z");
	CHECK(clock_parse(iso, &ms) == HOOKD_OK && ms == 1764460800123LL);
	CHECK(clock_parse("1764460800", &ms) == HOOKD_OK && ms == 1764460800000LL);
	CHECK(clock_parse("2025-11-30T00:00:00Z", &ms) == HOOKD_OK && ms == 1764460800000LL);
	CHECK(clock_parse("yesterday", &ms) == HOOKD_EINVAL);
}

/* The daemon disabling an endpoint itself (410 Gone): struct and stored JSON change together,
 * and the text returned is that JSON, as stored and as reloaded. */
static void test_set_disabled(void)
{
	char field[128], msg[512], err[256];
	struct registry reg = {0};
	json_t *app = json_pack("{s:s, s:s}", "id", "app1", "name", "A");
	struct app *a = registry_app_install(&reg, app);
	json_t *j = merge(NULL, "{\"url\": \"https://example.invalid/hook\"}", field, msg);
	struct endpoint *ep = NULL;
	if (a && j)
		ep = registry_endpoint_install(&reg, a, j, err, sizeof(err));
	CHECK(ep && !ep->disabled);
	if (!ep) {
		registry_free(&reg);
		return;
	}
	char *text = registry_endpoint_set_disabled(&reg, ep, true, "endpoint answered 410 Gone");
	CHECK(text != NULL);
	CHECK(ep->disabled);
	CHECK(json_is_true(json_object_get(ep->json, "disabled")));
	CHECK_STR(json_string_value(json_object_get(ep->json, "disabled_reason")),
		  "endpoint answered 410 Gone");
	json_t *stored = text ? json_loads(text, 0, NULL) : NULL;
	CHECK(stored && json_equal(stored, ep->json));
	CHECK_STR(json_string_value(json_object_get(stored, "url")),
		  "https://example.invalid/hook");
	/* Reloading the stored text gives the same endpoint state. */
	struct endpoint *again = NULL;
	if (stored)
		again = registry_endpoint_install(&reg, a, stored, err, sizeof(err));
	CHECK(again == ep && ep->disabled);
	free(text);

	text = registry_endpoint_set_disabled(&reg, ep, false, NULL);
	CHECK(text != NULL);
	CHECK(!ep->disabled);
	CHECK(json_is_false(json_object_get(ep->json, "disabled")));
	CHECK(json_is_null(json_object_get(ep->json, "disabled_reason")));
	free(text);
	registry_free(&reg);
}

int main(void)
{
	sign_init();
	test_validation();
	test_limits();
	test_failed_update_keeps_endpoint();
	test_create_and_patch();
	test_types_ids_clock();
	test_set_disabled();
	return check_done();
}
