/*
 * Unit tests of core/utf16: the UTF-16 of parent names (big-endian) and
 * locators (little-endian), byte sequences written out by hand; then random
 * texts, valid and not, against glibc's iconv as the referee.
 */
#include <errno.h>
#include <iconv.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* iconv's conversion of @len bytes at @in: its length, or -1 where it refuses the input
 * (*@at: where). */
static long referee(const char *to, const char *from, const void *in, size_t len, char *out,
		    size_t cap, size_t *at)
{
	iconv_t cd = iconv_open(to, from);
	char *inp = (char *)in, *outp = out;
	size_t left = len, room = cap;
	size_t rc;

	assert_true(cd != (iconv_t)-1);
	rc = iconv(cd, &inp, &left, &outp, &room);
	iconv_close(cd);
	*at = len - left;
	return rc == (size_t)-1 ? -1 : (long)(cap - room);
}

/* A random code unit: mostly ASCII, some of every range, surrogates among them. */
static uint16_t random_unit(unsigned *seed)
{
	static const uint16_t base[] = {0x0020, 0x00A0, 0x0800, 0xD800, 0xDC00, 0xE000, 0xFFF0};
	int pick = rand_r(seed) % 10;

	if (pick < 3)
		return (uint16_t)(0x20 + rand_r(seed) % 0x5F);
	return (uint16_t)(base[pick - 3] + rand_r(seed) % 0x400);
}

/* Random UTF-16 in byte order @order into @in: 1 to 24 units of random_unit(), lone
 * surrogates among them. Returns its length in bytes. */
static size_t make_utf16(uint8_t *in, enum utf16_order order, unsigned *seed)
{
	size_t units = 1 + (size_t)rand_r(seed) % 24;

	for (size_t i = 0; i < units; i++) {
		uint16_t u = random_unit(seed);

		in[2 * i + (order == UTF16_BE ? 0 : 1)] = (uint8_t)(u >> 8);
		in[2 * i + (order == UTF16_BE ? 1 : 0)] = (uint8_t)u;
	}
	return units * 2;
}

/* 1 to 32 bytes of a random valid UTF-8 text into @in (its last character maybe cut), with
 * one byte changed at random now and then. Returns its length. */
static size_t make_utf8(uint8_t *in, enum utf16_order order, unsigned *seed)
{
	size_t n = 1 + (size_t)rand_r(seed) % 32;

	(void)order;
	for (size_t i = 0; i < n;) {
		char one[8];
		size_t unit_len;
		uint32_t u = random_unit(seed);

		if (u >= 0xD800 && u <= 0xDFFF)
			u += 0x10000; /* a code point past U+FFFF instead: 4 bytes */
		if (u < 0x80) {
			one[0] = (char)u, unit_len = 1;
		} else if (u < 0x800) {
			one[0] = (char)(0xC0 | u >> 6), unit_len = 2;
		} else if (u < 0x10000) {
			one[0] = (char)(0xE0 | u >> 12), unit_len = 3;
		} else {
			one[0] = (char)(0xF0 | u >> 18), unit_len = 4;
		}
		for (size_t k = unit_len - 1; k > 0; k--)
			one[k] = (char)(0x80 | (u >> (6 * (unit_len - 1 - k)) & 0x3F));
		for (size_t k = 0; k < unit_len && i < n; k++)
			in[i++] = (uint8_t)one[k];
	}
	if (rand_r(seed) % 3 == 0)
		in[rand_r(seed) % n] = (uint8_t)rand_r(seed);
	return n;
}

/* 20,000 texts that @make writes, in both byte orders, decoded from UTF-16 (@decoding) or
 * encoded into it, by ours and by iconv: the same bytes, or both refused at the same byte.
 * Encoding, the count alone (utf16_encode_into() without a buffer) gives the same answer. */
static void against_iconv(unsigned seed, bool decoding,
			  size_t (*make)(uint8_t *in, enum utf16_order order, unsigned *seed))
{
	uint8_t in[64];
	char theirs[256], where[64];
	size_t len, at, refused = 0;
	struct error err;

	for (int round = 0; round < 20000; round++) {
		enum utf16_order order = round % 2 ? UTF16_BE : UTF16_LE;
		const char *wide = order == UTF16_BE ? "UTF-16BE" : "UTF-16LE";
		size_t n = make(in, order, &seed), counted = 0;
		char *got = NULL;
		long want = referee(decoding ? "UTF-8" : wide, decoding ? wide : "UTF-8", in, n,
				    theirs, sizeof(theirs), &at);
		int rc = decoding ? utf16_decode_alloc(in, n, order, &got, &len, &err)
				  : utf16_encode_alloc((const char *)in, n, order, &got, &len, &err);

		if (!decoding) {
			assert_int_equal(utf16_encode_into((const char *)in, n, order, NULL, 0,
							   &counted, NULL),
					 rc);
			assert_true(rc < 0 || counted == len);
		}
		if (want < 0) {
			assert_int_equal(rc, -EILSEQ);
			snprintf(where, sizeof(where), "at byte %zu", at);
			assert_non_null(strstr(error_message(&err), where));
			refused++;
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(len, (size_t)want);
		assert_memory_equal(got, theirs, len);
		free(got);
	}
	/* Both kinds were met. */
	assert_true(refused > 1000 && refused < 19000);
}

static void test_decode_against_iconv(void **state)
{
	(void)state;
	against_iconv(42, true, make_utf16);
}

static void test_encode_against_iconv(void **state)
{
	(void)state;
	against_iconv(7, false, make_utf8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_decode_against_iconv),
		cmocka_unit_test(test_encode_against_iconv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
