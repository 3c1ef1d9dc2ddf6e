/*
 * Unit tests of core/json: the exact text of a small document, and string
 * escaping (control characters, invalid UTF-8).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static void test_document(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct json j;

	(void)state;
	json_init(&j, out);
	json_begin_object(&j, NULL);
	json_string(&j, "file", "a.vhd");
	json_uint(&j, "size", UINT64_MAX);
	json_int(&j, "delta", -5);
	json_bool(&j, "ok", true);
	json_string(&j, "parent", NULL);
	json_begin_array(&j, "chain");
	json_begin_object(&j, NULL);
	json_end_object(&j);
	json_uint(&j, NULL, 7);
	json_end_array(&j);
	json_begin_array(&j, "warnings");
	json_end_array(&j);
	json_end_object(&j);
	json_finish(&j);
	fclose(out);
	assert_string_equal(text, "{\n"
				  "  \"file\": \"a.vhd\",\n"
				  "  \"size\": 18446744073709551615,\n"
				  "  \"delta\": -5,\n"
				  "  \"ok\": true,\n"
				  "  \"parent\": null,\n"
				  "  \"chain\": [\n"
				  "    {},\n"
				  "    7\n"
				  "  ],\n"
				  "  \"warnings\": []\n"
				  "}\n");
	free(text);
}

static void test_escaping(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	(void)state;
	/* quote, backslash, newline, tab, 0x01, é, a lone continuation byte, a cut sequence */
	json_write_escaped(out, "\"C:\\x\"\n\t\x01\xC3\xA9\x80\xE2\x82");
	fclose(out);
	assert_string_equal(text, "\"\\\"C:\\\\x\\\"\\n\\t\\u0001\xC3\xA9\\ufffd\\ufffd\\ufffd\"");
	free(text);
}

/* What the writer wrote, read back: the status file's round trip. */
static void test_read_back(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct json_value *v;
	struct json j;

	(void)state;
	json_init(&j, out);
	json_begin_object(&j, NULL);
	json_string(&j, "folder", "a \"b\"\n\x01 \xc3\xa9");
	json_uint(&j, "bytes", 5009260);
	json_int(&j, "delta", -5);
	json_bool(&j, "ok", false);
	json_string(&j, "vm", NULL);
	json_begin_array(&j, "errors");
	json_begin_object(&j, NULL);
	json_string(&j, "id", "disk-missing");
	json_end_object(&j);
	json_end_array(&j);
	json_end_object(&j);
	json_finish(&j);
	fclose(out);
	v = json_parse(text, len);
	assert_non_null(v);
	assert_int_equal(v->type, JSON_OBJECT);
	assert_string_equal(json_get_string(v, "folder"), "a \"b\"\n\x01 \xc3\xa9");
	assert_true(json_get_number(v, "bytes") == 5009260);
	assert_true(json_get_number(v, "delta") == -5);
	assert_int_equal(json_get(v, "ok")->type, JSON_BOOL);
	assert_false(json_get(v, "ok")->boolean);
	assert_int_equal(json_get(v, "vm")->type, JSON_NULL);
	assert_int_equal(json_get(v, "errors")->count, 1);
	assert_string_equal(json_get_string(json_get(v, "errors")->items[0], "id"), "disk-missing");
	assert_null(json_get(v, "absent"));
	assert_null(json_get_string(v, "bytes"));
	json_value_free(v);
	free(text);
}

static void test_read_escapes_and_refusals(void **state)
{
	static const char *const bad[] = {
		"",	  "{",	       "[1,]",	  "{\"a\" 1}",	 "{\"a\":1} x",
		"\"open", "\"\\u00\"", "\"\\q\"", "\"\\u0000\"", "\"a\tb\"",
		"tru",	  "-",	       "1.2.3e",  "{1:2}",
	};
	static const char good[] = "[\"\\u00e9\\ud83d\\ude00\\ud800x\", 1e3, -0.5, true]";
	char deep[80];
	struct json_value *v = json_parse(good, strlen(good));

	(void)state;
	assert_non_null(v);
	assert_int_equal(v->count, 4);
	assert_string_equal(v->items[0]->string, "\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx");
	assert_true(v->items[1]->number == 1000 && v->items[2]->number == -0.5);
	assert_true(v->items[3]->boolean);
	json_value_free(v);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = json_parse(bad[i], strlen(bad[i]));
		if (v)
			fail_msg("'%s' was taken", bad[i]);
	}
	/* Deeper than JSON_MAX_DEPTH: refused, not a stack to exhaust. */
	memset(deep, '[', sizeof(deep));
	assert_null(json_parse(deep, sizeof(deep)));
	memset(deep, '[', JSON_MAX_DEPTH);
	memset(deep + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
	v = json_parse(deep, 2 * JSON_MAX_DEPTH);
	assert_non_null(v);
	json_value_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_read_back),
		cmocka_unit_test(test_read_escapes_and_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
