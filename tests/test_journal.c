/*
 * Unit tests of core/journal's reader: what an import writes reads back,
 * every 64-bit device and inode number included; a last line cut short is
 * the write a kill interrupted; anything else that is not a journal is
 * refused whole, with a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "error.h"
#include "journal.h"

static int parse(const char *text, struct journal_entry **entries, size_t *count)
{
	struct error err;
	int rc;

	error_clear(&err);
	rc = journal_parse(text, strlen(text), "test", entries, count, &err);
	if (rc < 0)
		assert_true(err.message[0] != '\0');
	return rc;
}

static void test_reads_back(void **state)
{
	struct journal_entry *e = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(parse("impex-journal 1\n"
			       "18446744073709551615 18446744073709551610 /srv/a b.vhd\n"
			       "0 7 /srv/Virtual Machines/X\n"
			       "3 4 /srv/cut",
			       &e, &n),
			 0);
	assert_int_equal(n, 2);
	assert_true(e[0].dev == 18446744073709551615ull && e[0].ino == 18446744073709551610ull);
	assert_string_equal(e[0].path, "/srv/a b.vhd");
	assert_true(e[1].dev == 0 && e[1].ino == 7);
	assert_string_equal(e[1].path, "/srv/Virtual Machines/X");
	journal_entries_free(e, n);
}

static void test_refusals(void **state)
{
	static const char *const bad[] = {
		"",
		"impex-journal 2\n1 2 /a\n",
		"1 2 /a\n",
		"impex-journal 1\n18446744073709551616 2 /a\n", /* 2^64 */
		"impex-journal 1\n1 2 relative\n",
		"impex-journal 1\n1 /a\n",
		"impex-journal 1\n-1 2 /a\n",
		"impex-journal 1\n1 2 \n",
	};
	struct journal_entry *e = NULL;
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &e, &n), -EINVAL);
		assert_null(e);
		assert_int_equal(n, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_back),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
