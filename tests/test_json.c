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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document),
		cmocka_unit_test(test_escaping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
