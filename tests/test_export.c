/*
 * Unit tests of core/export: the names of export folders.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export.h"

static void safe(const char *in, const char *want)
{
	char out[EXPORT_NAME_MAX + 2];

	export_safe_name(in, out);
	assert_string_equal(out, want);
}

static void test_safe_names(void **state)
{
	char long_name[400], want[EXPORT_NAME_MAX + 1];

	(void)state;
	safe("blog", "blog");
	safe("web/db", "web_db");
	safe("tab\there\x7f", "tab_here_");
	safe("", "_");
	safe(".", "_.");
	safe("..", "_..");
	safe("...", "...");
	safe("caf\xC3\xA9 \xE2\x82\xAC", "caf\xC3\xA9 \xE2\x82\xAC");
	safe("bad\xFF\xC3", "bad__");  /* not UTF-8, and a cut sequence */
	safe("\xED\xA0\x80x", "___x"); /* a surrogate, as UTF-8 */
	safe("\xC0\xAF", "__");	       /* an overlong '/' */
	/* Cut at EXPORT_NAME_MAX bytes, never inside a character. */
	memset(long_name, 'a', 199);
	strcpy(long_name + 199, "\xC3\xA9tail");
	memset(want, 'a', 199);
	want[199] = '\0';
	safe(long_name, want);
}

static void test_clashes(void **state)
{
	struct export_name n[] = {
		{"blog", "BBBBBBBB-0000-4000-8000-000000000002", 200, NULL},
		{"Blog", "AAAAAAAA-0000-4000-8000-000000000001", 100, NULL}, /* the oldest */
		{"blog", "CCCCCCCC-0000-4000-8000-000000000003", 200, NULL},
		{"db", "DDDDDDDD-0000-4000-8000-000000000004", 300, NULL},
		{"x/y", "EEEEEEEE-0000-4000-8000-000000000005", 1, NULL},
		{"x_y", "EEEEEEEE-1111-4000-8000-000000000006", 2, NULL},
		{"x_Y", "FFFFFFFF-0000-4000-8000-000000000007", 3, NULL},
	};
	size_t count = sizeof(n) / sizeof(n[0]);

	(void)state;
	assert_int_equal(export_assign_names(n, count), 0);
	assert_string_equal(n[1].out, "Blog");
	assert_string_equal(n[0].out, "blog (BBBBBBBB)");
	assert_string_equal(n[2].out, "blog (CCCCCCCC)");
	assert_string_equal(n[3].out, "db");
	assert_string_equal(n[4].out, "x_y");
	/* Alike in 8 characters with another namesake: the whole GUID. */
	assert_string_equal(n[5].out, "x_y (EEEEEEEE-1111-4000-8000-000000000006)");
	assert_string_equal(n[6].out, "x_Y (FFFFFFFF)");
	for (size_t i = 0; i < count; i++)
		free(n[i].out);

	/* A newer namesake never renames an older one. */
	assert_int_equal(export_assign_names(n + 3, 1), 0);
	assert_string_equal(n[3].out, "db");
	free(n[3].out);
	assert_int_equal(export_assign_names(NULL, 0), 0);
}

/* A suffixed name that another thing has as its own name: the whole GUID instead. */
static void test_suffix_taken(void **state)
{
	struct export_name n[] = {
		{"x", "AAAAAAAA-0000-4000-8000-000000000001", 1, NULL},
		{"x", "12345678-0000-4000-8000-000000000002", 2, NULL},
		{"x (12345678)", "BBBBBBBB-0000-4000-8000-000000000003", 3, NULL},
	};

	(void)state;
	assert_int_equal(export_assign_names(n, 3), 0);
	assert_string_equal(n[0].out, "x");
	assert_string_equal(n[1].out, "x (12345678-0000-4000-8000-000000000002)");
	assert_string_equal(n[2].out, "x (12345678)");
	for (size_t i = 0; i < 3; i++)
		free(n[i].out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safe_names),
		cmocka_unit_test(test_clashes),
		cmocka_unit_test(test_suffix_taken),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
