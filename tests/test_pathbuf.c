/*
 * Unit tests of the small shared pieces every module builds on: the path
 * buffer (whole or failed, never cut), the strict UTF-8 decoder, the FNV-1a
 * hash (against the published FNV-1a test vectors) and the path-within test.
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

#include "fsutil.h"
#include "hash.h"
#include "pathbuf.h"
#include "utf8.h"

static void test_join_and_format(void **state)
{
	struct pathbuf p = PATHBUF_INIT;
	size_t mark;

	(void)state;
	assert_string_equal(p.buf, "");
	assert_int_equal(pathbuf_join(&p, "store"), 0);
	assert_string_equal(p.buf, "store");
	assert_int_equal(pathbuf_join(&p, "Virtual Machines"), 0);
	mark = p.len;
	assert_int_equal(pathbuf_addf(&p, "/%s.xml", "4f1c"), 0);
	assert_string_equal(p.buf, "store/Virtual Machines/4f1c.xml");
	assert_int_equal(p.len, strlen(p.buf));
	pathbuf_truncate(&p, mark);
	assert_string_equal(p.buf, "store/Virtual Machines");
	pathbuf_reset(&p);
	assert_int_equal(pathbuf_join(&p, "/"), 0);
	assert_int_equal(pathbuf_join(&p, "etc"), 0);
	assert_string_equal(p.buf, "/etc");
	assert_int_equal(pathbuf_setf(&p, "%d-%s", 7, "x"), 0);
	assert_string_equal(p.buf, "7-x");
	pathbuf_release(&p);
	assert_string_equal(p.buf, "");
	pathbuf_release(&p);
}

/* A path far longer than PATH_MAX is built whole, through many regrowths. */
static void test_long_path_is_whole(void **state)
{
	struct pathbuf p = PATHBUF_INIT;
	char name[200], *out;

	(void)state;
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	for (int i = 0; i < 100; i++)
		assert_int_equal(pathbuf_join(&p, name), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(pathbuf_addf(&p, "%s", "/x"), 0);
	assert_int_equal(p.len, 100 * 200 + 100 * 2 - 1);
	assert_int_equal(strlen(p.buf), p.len);
	assert_int_equal(p.buf[199], '/');
	assert_memory_equal(p.buf + p.len - 4, "/x/x", 4);
	out = pathbuf_detach(&p);
	assert_non_null(out);
	assert_int_equal(strlen(out), 100 * 200 + 100 * 2 - 1);
	assert_string_equal(p.buf, "");
	free(out);
}

/* A fixed buffer gets the whole path or none of it. */
static void test_copy_out_never_cuts(void **state)
{
	struct pathbuf p = PATHBUF_INIT;
	char small[8] = "junk", big[64];

	(void)state;
	assert_int_equal(pathbuf_adds(&p, "a/b/c/d/e"), 0);
	assert_int_equal(pathbuf_copy_out(&p, small, sizeof(small)), -ENAMETOOLONG);
	assert_string_equal(small, "");
	assert_int_equal(pathbuf_copy_out(&p, big, sizeof(big)), 0);
	assert_string_equal(big, "a/b/c/d/e");
	pathbuf_release(&p);
}

/* A failed append is sticky and leaves the empty string, which names nothing. */
static void test_failure_is_sticky(void **state)
{
	struct pathbuf p = PATHBUF_INIT;
	char out[16] = "junk";

	(void)state;
	assert_int_equal(pathbuf_adds(&p, "/srv/store"), 0);
	/* A length no allocation can hold. */
	assert_int_equal(pathbuf_add(&p, "x", SIZE_MAX - 4), -ENOMEM);
	assert_string_equal(p.buf, "");
	assert_int_equal(p.len, 0);
	assert_int_equal(pathbuf_join(&p, "victim"), -ENOMEM);
	assert_int_equal(pathbuf_addf(&p, "%s", "more"), -ENOMEM);
	assert_string_equal(p.buf, "");
	assert_int_equal(pathbuf_copy_out(&p, out, sizeof(out)), -ENOMEM);
	assert_string_equal(out, "");
	assert_null(pathbuf_detach(&p));
	assert_int_equal(p.err, 0);
	assert_int_equal(pathbuf_adds(&p, "again"), 0);
	assert_string_equal(p.buf, "again");
	pathbuf_release(&p);
}

static void test_utf8_strict(void **state)
{
	uint32_t cp = 0;

	(void)state;
	assert_int_equal(utf8_decode((const unsigned char *)"A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
	assert_int_equal(cp, 0xE9);
	assert_int_equal(utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
	assert_int_equal(cp, 0x20AC);
	assert_int_equal(utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1F600);
	/* Cut short, overlong, a surrogate, past U+10FFFF, a lone continuation byte. */
	assert_int_equal(utf8_decode((const unsigned char *)"\xe2\x82", 2, NULL), 0);
	assert_int_equal(utf8_decode((const unsigned char *)"\xc0\xaf", 2, NULL), 0);
	assert_int_equal(utf8_decode((const unsigned char *)"\xe0\x80\xaf", 3, NULL), 0);
	assert_int_equal(utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, NULL), 0);
	assert_int_equal(utf8_decode((const unsigned char *)"\xf4\x90\x80\x80", 4, NULL), 0);
	assert_int_equal(utf8_decode((const unsigned char *)"\x80", 1, NULL), 0);
	assert_int_equal(utf8_decode((const unsigned char *)"A", 0, NULL), 0);
}

/* The published FNV-1a 64-bit vectors: "" and "a" and "foobar". */
static void test_fnv1a_vectors(void **state)
{
	(void)state;
	assert_true(hash_bytes(HASH_START, "", 0) == 0xcbf29ce484222325ULL);
	assert_true(hash_bytes(HASH_START, "a", 1) == 0xaf63dc4c8601ec8cULL);
	assert_true(hash_bytes(HASH_START, "foobar", 6) == 0x85944171f73967e8ULL);
	assert_true(hash_text(hash_text(HASH_START, "ab"), "c") !=
		    hash_text(hash_text(HASH_START, "a"), "bc"));
}

static void test_path_within(void **state)
{
	(void)state;
	assert_true(fsutil_path_within("/srv/store", "/srv/store"));
	assert_true(fsutil_path_within("/srv/store/x", "/srv/store"));
	assert_true(fsutil_path_within("/srv/store/x", "/srv/store/"));
	assert_false(fsutil_path_within("/srv/storex", "/srv/store"));
	assert_false(fsutil_path_within("/srv", "/srv/store"));
	assert_true(fsutil_path_within("/anything", "/"));
	assert_false(fsutil_path_within("relative", "/"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_join_and_format),
		cmocka_unit_test(test_long_path_is_whole),
		cmocka_unit_test(test_copy_out_never_cuts),
		cmocka_unit_test(test_failure_is_sticky),
		cmocka_unit_test(test_utf8_strict),
		cmocka_unit_test(test_fnv1a_vectors),
		cmocka_unit_test(test_path_within),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
