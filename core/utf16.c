#include "utf16.h"

#include "error.h"
#include "utf8.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *utf16_charset(enum utf16_order order)
{
	return order == UTF16_BE ? "UTF-16BE" : "UTF-16LE";
}

static void put_unit(uint8_t *at, uint16_t unit, enum utf16_order order)
{
	at[order == UTF16_BE ? 0 : 1] = (uint8_t)(unit >> 8);
	at[order == UTF16_BE ? 1 : 0] = (uint8_t)unit;
}

static uint16_t get_unit(const uint8_t *at, enum utf16_order order)
{
	return order == UTF16_BE ? (uint16_t)(at[0] << 8 | at[1]) : (uint16_t)(at[1] << 8 | at[0]);
}

int utf16_encode_into(const char *in, size_t in_len, enum utf16_order order, void *to, size_t cap,
		      size_t *out_len, struct error *err)
{
	const unsigned char *p = (const unsigned char *)in;
	uint8_t *out = to;
	size_t at = 0, n = 0;

	while (at < in_len) {
		uint32_t cp = p[at];
		size_t len = cp < 0x80 ? 1 : utf8_decode(p + at, in_len - at, &cp);

		if (len == 0)
			return error_set(err, EILSEQ, "invalid UTF-8 text at byte %zu", at);
		if (!out) {
			n += cp >= 0x10000 ? 4 : 2;
			at += len;
			continue;
		}
		if (n + (cp >= 0x10000 ? 4 : 2) > cap)
			return error_set(err, ENAMETOOLONG, "%s string too long",
					 utf16_charset(order));
		if (cp >= 0x10000) {
			put_unit(out + n, (uint16_t)(0xD800 | (cp - 0x10000) >> 10), order);
			put_unit(out + n + 2, (uint16_t)(0xDC00 | (cp & 0x3FF)), order);
			n += 4;
		} else {
			put_unit(out + n, (uint16_t)cp, order);
			n += 2;
		}
		at += len;
	}
	*out_len = n;
	return 0;
}

/* @in_len bytes (even) of UTF-16 as UTF-8 into @out (@cap bytes, no terminator added). */
static int decode(const uint8_t *in, size_t in_len, enum utf16_order order, char *out,
		  size_t cap, size_t *out_len, struct error *err)
{
	size_t at = 0, n = 0;

	while (at + 1 < in_len) {
		uint32_t cp = get_unit(in + at, order);
		size_t units = 1, len;

		if (cp >= 0xD800 && cp <= 0xDFFF) {
			uint16_t low = at + 3 < in_len ? get_unit(in + at + 2, order) : 0;

			/* A lone surrogate, low first, or high at the end. */
			if (cp >= 0xDC00 || low < 0xDC00 || low > 0xDFFF)
				return error_set(err, EILSEQ, "invalid %s text at byte %zu",
						 utf16_charset(order), at);
			cp = 0x10000 + ((cp - 0xD800) << 10 | (low - 0xDC00));
			units = 2;
		}
		len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		if (n + len > cap)
			return error_set(err, ENAMETOOLONG, "UTF-8 string too long");
		if (len == 1) {
			out[n] = (char)cp;
		} else {
			static const uint8_t lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};

			for (size_t i = len - 1; i > 0; i--, cp >>= 6)
				out[n + i] = (char)(0x80 | (cp & 0x3F));
			out[n] = (char)(lead[len] | cp);
		}
		n += len;
		at += units * 2;
	}
	*out_len = n;
	return 0;
}

int utf16_encode(const char *in, enum utf16_order order, void *out, size_t cap, size_t *out_len,
		 struct error *err)
{
	return utf16_encode_into(in, strlen(in), order, out, cap, out_len, err);
}

int utf16_decode(const void *in, size_t len, enum utf16_order order, char *out, size_t cap,
		 struct error *err)
{
	const uint8_t *bytes = in;
	size_t units, n = 0;
	int rc;

	if (cap == 0)
		return error_set(err, ENAMETOOLONG, "no room for a UTF-16 string");
	/* Stop at the first NUL code unit: fixed-size fields are zero-padded. */
	for (units = 0; units < len / 2; units++)
		if (bytes[units * 2] == 0 && bytes[units * 2 + 1] == 0)
			break;
	if (units == len / 2 && len % 2)
		return error_set(err, EILSEQ, "UTF-16 text has an odd length of %zu bytes", len);
	rc = decode(in, units * 2, order, out, cap - 1, &n, err);
	if (rc < 0)
		return rc;
	out[n] = '\0';
	if (memchr(out, '\0', n))
		return error_set(err, EILSEQ, "UTF-16 text holds a NUL character");
	return 0;
}

/* The allocating conversions' end: @buf (its text *@len bytes) NUL-terminated into *@out if
 * the conversion returned @rc 0, else freed. */
static int hand_over(int rc, char *buf, const size_t *len, char **out)
{
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[*len] = '\0';
	*out = buf;
	return 0;
}

int utf16_decode_alloc(const void *in, size_t len, enum utf16_order order, char **out,
		       size_t *out_len, struct error *err)
{
	/* A code unit gives at most 3 bytes of UTF-8 (a surrogate pair, 4 for 2 units). */
	size_t cap = len / 2 * 3;
	char *buf;

	*out = NULL;
	if (len % 2)
		return error_set(err, EILSEQ, "UTF-16 text has an odd length of %zu bytes", len);
	buf = malloc(cap + 1);
	if (!buf)
		return error_set(err, ENOMEM, "out of memory for %zu bytes of text", cap);
	return hand_over(decode(in, len, order, buf, cap, out_len, err), buf, out_len, out);
}

int utf16_encode_alloc(const char *in, size_t len, enum utf16_order order, char **out,
		       size_t *out_len, struct error *err)
{
	/* A byte of UTF-8 gives at most one code unit. */
	size_t cap = len * 2;
	char *buf = malloc(cap + 1);

	*out = NULL;
	if (!buf)
		return error_set(err, ENOMEM, "out of memory for %zu bytes of text", cap);
	return hand_over(utf16_encode_into(in, len, order, buf, cap, out_len, err), buf, out_len,
			 out);
}
