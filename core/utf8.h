/*
 * utf8.h - the one UTF-8 decoder of the project: strict (no overlong forms,
 * no surrogates, nothing past U+10FFFF), as names shown or written must be.
 */
#ifndef IMPEX_UTF8_H
#define IMPEX_UTF8_H

#include <stddef.h>
#include <stdint.h>

/**
 * The length of the valid UTF-8 sequence at @p, reading at most @left bytes,
 * and its code point into @cp (when not NULL). Returns 1 to 4, or 0 if the
 * bytes at @p start no valid sequence (or @left is 0).
 */
size_t utf8_decode(const unsigned char *p, size_t left, uint32_t *cp);

#endif
