/*
 * Unit tests of core/json: the exact text of a small document, string
 * escaping (control characters, invalid UTF-8), and what it writes read back
 * by an independent reader (libjansson).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* libjansson reads back what the writer wrote: the writer's names (jsonw_) do not clash with its.
 */
#include <jansson.h>

#include "json.h"

static void test_document(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct jsonw j;

	(void)state;
	jsonw_init(&j, out);
	jsonw_begin_object(&j, NULL);
	jsonw_string(&j, "file", "a.vhd");
	jsonw_uint(&j, "size", UINT64_MAX);
	jsonw_int(&j, "delta", -5);
	jsonw_bool(&j, "ok", true);
	jsonw_string(&j, "parent", NULL);
	jsonw_begin_array(&j, "chain");
	jsonw_begin_object(&j, NULL);
	jsonw_end_object(&j);
	jsonw_uint(&j, NULL, 7);
	jsonw_end_array(&j);
	jsonw_begin_array(&j, "warnings");
	jsonw_end_array(&j);
	jsonw_end_object(&j);
	jsonw_finish(&j);
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
	jsonw_write_escaped(out, "\"C:\\x\"\n\t\x01\xC3\xA9\x80\xE2\x82");
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
	json_error_t why;
	json_t *v;
	struct jsonw j;

	(void)state;
	jsonw_init(&j, out);
	jsonw_begin_object(&j, NULL);
	jsonw_string(&j, "folder", "a \"b\"\n\x01 \xc3\xa9");
	jsonw_string(&j, "name", "x\x80y");
	jsonw_uint(&j, "bytes", 5009260);
	jsonw_uint(&j, "huge", INT64_MAX);
	jsonw_int(&j, "delta", -5);
	jsonw_bool(&j, "ok", false);
	jsonw_string(&j, "vm", NULL);
	jsonw_begin_array(&j, "errors");
	jsonw_begin_object(&j, NULL);
	jsonw_string(&j, "id", "disk-missing");
	jsonw_end_object(&j);
	jsonw_end_array(&j);
	jsonw_end_object(&j);
	jsonw_finish(&j);
	fclose(out);
	/* Read by another reader, libjansson (as impex status reads the status file). */
	v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &why);
	if (!v)
		fail_msg("line %d: %s", why.line, why.text);
	assert_true(json_is_object(v));
	assert_string_equal(json_string_value(json_object_get(v, "folder")),
			    "a \"b\"\n\x01 \xc3\xa9");
	assert_int_equal(json_integer_value(json_object_get(v, "bytes")), 5009260);
	assert_int_equal(json_integer_value(json_object_get(v, "huge")), INT64_MAX);
	assert_int_equal(json_integer_value(json_object_get(v, "delta")), -5);
	assert_true(json_is_false(json_object_get(v, "ok")));
	assert_true(json_is_null(json_object_get(v, "vm")));
	assert_int_equal(json_array_size(json_object_get(v, "errors")), 1);
	assert_string_equal(
		json_string_value(json_object_get(json_array_get(json_object_get(v, "errors"), 0),
						  "id")),
		"disk-missing");
	/* Bytes that are not UTF-8 (a file name may hold any) come back as U+FFFD. */
	assert_string_equal(json_string_value(json_object_get(v, "name")), "x\xef\xbf\xbdy");
	assert_int_equal(json_object_size(v), 8);
	json_decref(v);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_read_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
