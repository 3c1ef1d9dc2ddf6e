/*
 * Unit tests of core/utf16: the UTF-16 of parent names (big-endian) and
 * locators (little-endian), byte sequences written out by hand.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "utf16.h"

static void test_encode(void **state)
{
	/* "aé€😀": U+0061 U+00E9 U+20AC U+1F600 (surrogates D83D DE00) */
	const uint8_t be[] = { 0x00, 0x61, 0x00, 0xE9, 0x20, 0xAC, 0xD8, 0x3D, 0xDE, 0x00 };
	const uint8_t le[] = { 0x61, 0x00, 0xE9, 0x00, 0xAC, 0x20, 0x3D, 0xD8, 0x00, 0xDE };
	uint8_t out[32];
	size_t len = 99;
	struct error err;

	(void)state;
	assert_int_equal(utf16_encode("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", UTF16_BE, out,
				      sizeof(out), &len, &err),
			 0);
	assert_int_equal(len, sizeof(be));
	assert_memory_equal(out, be, sizeof(be));
	assert_int_equal(utf16_encode("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", UTF16_LE, out,
				      sizeof(out), &len, &err),
			 0);
	assert_memory_equal(out, le, sizeof(le));
	assert_int_equal(utf16_encode("", UTF16_LE, out, sizeof(out), &len, &err), 0);
	assert_int_equal(len, 0);
	assert_int_equal(utf16_encode("abcdef", UTF16_LE, out, 8, &len, &err), -ENAMETOOLONG);
	assert_int_equal(utf16_encode("bad \xC3", UTF16_LE, out, sizeof(out), &len, &err), -EILSEQ);
	assert_int_equal(utf16_encode("bad \xFF", UTF16_LE, out, sizeof(out), &len, &err), -EILSEQ);
}

static void test_decode(void **state)
{
	const uint8_t be[] = { 0x00, 0x61, 0x00, 0xE9, 0xD8, 0x3D, 0xDE, 0x00, 0x00, 0x00, 0x00, 0x62 };
	const uint8_t lone[] = { 0x00, 0x61, 0xD8, 0x3D, 0x00, 0x62 };
	const uint8_t le[] = { 0x2E, 0x00, 0x5C, 0x00, 0x62, 0x00 };
	char out[64];
	struct error err;

	(void)state;
	/* stops at the first NUL code unit */
	assert_int_equal(utf16_decode(be, sizeof(be), UTF16_BE, out, sizeof(out), &err), 0);
	assert_string_equal(out, "a\xC3\xA9\xF0\x9F\x98\x80");
	assert_int_equal(utf16_decode(le, sizeof(le), UTF16_LE, out, sizeof(out), &err), 0);
	assert_string_equal(out, ".\\b");
	assert_int_equal(utf16_decode(le, 0, UTF16_LE, out, sizeof(out), &err), 0);
	assert_string_equal(out, "");
	assert_int_equal(utf16_decode(lone, sizeof(lone), UTF16_BE, out, sizeof(out), &err),
			 -EILSEQ);
	assert_int_equal(utf16_decode(le, 5, UTF16_LE, out, sizeof(out), &err), -EILSEQ);
	assert_int_equal(utf16_decode(le, sizeof(le), UTF16_LE, out, 3, &err), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
