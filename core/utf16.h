/*
 * utf16.h - UTF-8 <-> UTF-16 conversion for the strings that VHD and VHDX
 * files keep in UTF-16 (the Parent Unicode Name, big-endian; the parent
 * locators, little-endian) and for configurations written in UTF-16LE.
 * Strict both ways: UTF-8 as utf8_decode() takes it, UTF-16 without a lone
 * surrogate.
 */
#ifndef IMPEX_UTF16_H
#define IMPEX_UTF16_H

#include <stddef.h>

struct error;

enum utf16_order {
	UTF16_BE,
	UTF16_LE,
};

/**
 * Encode the NUL-terminated UTF-8 string @in as UTF-16 in byte order @order
 * into @out (@cap bytes), without a terminator or byte-order mark.
 * *@out_len receives the number of bytes written.
 * Returns 0, -EILSEQ for invalid UTF-8, -ENAMETOOLONG if it does not fit.
 */
int utf16_encode(const char *in, enum utf16_order order, void *out, size_t cap, size_t *out_len,
		 struct error *err);

/**
 * Decode @len bytes of UTF-16 in byte order @order, stopping at the first
 * NUL code unit, into a NUL-terminated UTF-8 string in @out (@cap bytes).
 * Returns 0, -EILSEQ for invalid UTF-16 (a lone surrogate, an odd length),
 * -ENAMETOOLONG if the result does not fit.
 */
int utf16_decode(const void *in, size_t len, enum utf16_order order, char *out, size_t cap,
		 struct error *err);

/**
 * Decode @len bytes of UTF-16 (a whole text, NULs included) into a new
 * NUL-terminated UTF-8 string in *@out (caller frees), its length in
 * *@out_len. Returns 0, -EILSEQ for invalid UTF-16, -ENOMEM.
 */
int utf16_decode_alloc(const void *in, size_t len, enum utf16_order order, char **out,
		       size_t *out_len, struct error *err);

/**
 * Encode @len bytes of UTF-8 (NULs included) as UTF-16 in byte order @order into @out
 * (@cap bytes), or only count its bytes if @out is NULL; *@out_len receives the length.
 * Returns 0, -EILSEQ for invalid UTF-8, -ENAMETOOLONG if it does not fit.
 */
int utf16_encode_into(const char *in, size_t len, enum utf16_order order, void *out, size_t cap,
		      size_t *out_len, struct error *err);

/**
 * Encode @len bytes of UTF-8 as UTF-16 into a new buffer *@out (caller
 * frees), its length in *@out_len, no byte-order mark.
 * Returns 0, -EILSEQ for invalid UTF-8, -ENOMEM.
 */
int utf16_encode_alloc(const char *in, size_t len, enum utf16_order order, char **out,
		       size_t *out_len, struct error *err);

#endif
