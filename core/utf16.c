#include "utf16.h"

#include "error.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *utf16_charset(enum utf16_order order)
{
	return order == UTF16_BE ? "UTF-16BE" : "UTF-16LE";
}

/* One iconv pass over a whole input; iconv handles are cheap enough for the
 * few strings a VHD header holds, and a fresh one per call keeps this
 * thread-safe without a lock. */
static int utf16_iconv(const char *to, const char *from, const void *in, size_t in_len, void *out,
		       size_t cap, size_t *out_len, struct error *err)
{
	iconv_t cd = iconv_open(to, from);
	char *inp = (char *)in;
	char *outp = out;
	size_t in_left = in_len, out_left = cap;
	int rc = 0;

	if (cd == (iconv_t)-1)
		return error_set(err, errno, "cannot convert from %s to %s: %s", from, to,
				 strerror(errno));
	if (iconv(cd, &inp, &in_left, &outp, &out_left) == (size_t)-1) {
		int saved = errno;

		if (saved == E2BIG)
			rc = error_set(err, ENAMETOOLONG, "%s string too long", to);
		else
			rc = error_set(err, EILSEQ, "invalid %s text at byte %zu", from,
				       in_len - in_left);
	}
	iconv_close(cd);
	if (rc == 0)
		*out_len = cap - out_left;
	return rc;
}

int utf16_encode(const char *in, enum utf16_order order, void *out, size_t cap, size_t *out_len,
		 struct error *err)
{
	return utf16_iconv(utf16_charset(order), "UTF-8", in, strlen(in), out, cap, out_len, err);
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
	rc = utf16_iconv("UTF-8", utf16_charset(order), in, units * 2, out, cap - 1, &n, err);
	if (rc < 0)
		return rc;
	out[n] = '\0';
	if (memchr(out, '\0', n))
		return error_set(err, EILSEQ, "UTF-16 text holds a NUL character");
	return 0;
}

/* Convert a whole buffer into a new allocation of at most @cap bytes. */
static int utf16_iconv_alloc(const char *to, const char *from, const void *in, size_t len,
			     size_t cap, char **out, size_t *out_len, struct error *err)
{
	char *buf = malloc(cap + 1);
	int rc;

	*out = NULL;
	if (!buf)
		return error_set(err, ENOMEM, "out of memory for %zu bytes of text", cap);
	rc = utf16_iconv(to, from, in, len, buf, cap, out_len, err);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[*out_len] = '\0';
	*out = buf;
	return 0;
}

int utf16_decode_alloc(const void *in, size_t len, enum utf16_order order, char **out,
		       size_t *out_len, struct error *err)
{
	if (len % 2)
		return error_set(err, EILSEQ, "UTF-16 text has an odd length of %zu bytes", len);
	/* A code unit gives at most 3 bytes of UTF-8 (a surrogate pair, 4 for 2 units). */
	return utf16_iconv_alloc("UTF-8", utf16_charset(order), in, len, len / 2 * 3, out, out_len,
				 err);
}

int utf16_encode_alloc(const char *in, size_t len, enum utf16_order order, char **out,
		       size_t *out_len, struct error *err)
{
	/* A byte of UTF-8 gives at most one code unit. */
	return utf16_iconv_alloc(utf16_charset(order), "UTF-8", in, len, len * 2, out, out_len,
				 err);
}
