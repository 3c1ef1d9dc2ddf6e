/*
 * utf8.c - the strict UTF-8 decoder (see utf8.h).
 */
#include "utf8.h"

size_t utf8_decode(const unsigned char *p, size_t left, uint32_t *cp)
{
	size_t n;
	uint32_t c;

	if (left == 0)
		return 0;
	if (p[0] < 0x80) {
		n = 1;
		c = p[0];
		goto out;
	}
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2, c = p[0] & 0x1F;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		n = 3, c = p[0] & 0x0F;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		n = 4, c = p[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3F);
	}
	/* No overlong forms, surrogates or code points past U+10FFFF. */
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
	    (c >= 0xD800 && c <= 0xDFFF))
		return 0;
out:
	if (cp)
		*cp = c;
	return n;
}
