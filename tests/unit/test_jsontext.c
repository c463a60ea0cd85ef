/* test_jsontext.c - the escaping writer, checked against jansson. */
#include "check.h"

#include "err.h"
#include "jsontext.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void test_string(void)
{
	static const char *cases[] = {"plain", "quote \" backslash \\ end", "ctl \n\r\t\x01\x1f",
				      "utf8 é ✓ 😀", ""};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jsontext_buf b = {0};
		json_error_t e;
		jsontext_string(&b, cases[i], strlen(cases[i]));
		json_t *j = json_loads(b.data, JSON_DECODE_ANY, &e);
		CHECK(j && json_is_string(j));
		if (j)
			CHECK_STR(json_string_value(j), cases[i]);
		json_decref(j);
		jsontext_free(&b);
	}
	/* Invalid UTF-8 (lone continuation, overlong, truncated, surrogate) -> U+FFFD, still JSON. */
	const char bad[] = "a\x80" "b\xc0\xaf" "c\xe2\x82" "d\xed\xa0\x80" "e";
	struct jsontext_buf b = {0};
	jsontext_string(&b, bad, sizeof(bad) - 1);
	json_t *j = json_loads(b.data, JSON_DECODE_ANY, NULL);
	CHECK(j && json_is_string(j));
	CHECK(j && strncmp(json_string_value(j), "a\xef\xbf\xbd" "b", 5) == 0);
	json_decref(j);
	jsontext_free(&b);

	/* A NUL byte (a binary response) must not make the record unreadable. */
	jsontext_string(&b, "a\0b", 3);
	j = json_loads(b.data, JSON_DECODE_ANY, NULL);
	CHECK(j && json_is_string(j));
	CHECK(j && strcmp(json_string_value(j), "a\xef\xbf\xbd" "b") == 0);
	json_decref(j);
	jsontext_free(&b);

	jsontext_cstr(&b, "{\"n\":");
	jsontext_long(&b, -42);
	jsontext_cstr(&b, "}");
	CHECK_STR(b.data, "{\"n\":-42}");
	jsontext_free(&b);
}

/* jsontext_json writes what json_dumps(JSON_COMPACT) writes, byte for byte. */
static void test_json_matches_jansson(void)
{
	static const char *docs[] = {
		"{}", "[]", "{\"a\":[]}", "[{}]", "null", "true", "false", "0", "-9223372036854775807",
		"9007199254740993", "1.5", "-0.0", "1e300", "2.0", "0.1", "123456789.25", "1e-7",
		"{\"id\":\"msg_1\",\"data\":{\"b\":1,\"a\":[1,2.5,\"x\",null,true,false,{}]}}",
		"{\"s\":\"quote \\\" back \\\\ nl \\n tab \\t ctl \\u0001 del \\u007f\"}",
		"{\"u\":\"caf\\u00e9 \\u20ac \\ud83d\\ude00 \\u2028 \xe2\x82\xac\"}",
		"{\"z\":1,\"y\":{\"x\":[[[]]]},\"w\":\"\"}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		json_t *j = json_loads(docs[i], JSON_DECODE_ANY, NULL);
		char *want = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		struct jsontext_buf b = {0};
		CHECK(j != NULL);
		if (!j)
			continue;
		CHECK(jsontext_json(&b, j) == HOOKD_OK);
		CHECK_STR(b.data, want);
		free(want);
		jsontext_free(&b);
		json_decref(j);
	}
	/* Insertion order is kept, as json_dumps keeps it. */
	json_t *o = json_object();
	struct jsontext_buf b = {0};
	json_object_set_new(o, "zeta", json_integer(1));
	json_object_set_new(o, "alpha", json_real(0.5));
	json_object_set_new(o, "mid", json_stringn("a\nb", 3));
	CHECK(jsontext_json(&b, o) == HOOKD_OK);
	CHECK_STR(b.data, "{\"zeta\":1,\"alpha\":0.5,\"mid\":\"a\\nb\"}");
	jsontext_free(&b);
	/* A string holding NUL is refused (the caller falls back to json_dumps). */
	json_object_set_new(o, "nul", json_stringn("a\0b", 3));
	CHECK(jsontext_json(&b, o) == HOOKD_EINVAL);
	jsontext_free(&b);
	json_decref(o);
}

int main(void)
{
	test_string();
	test_json_matches_jansson();
	return check_done();
}
