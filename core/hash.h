/*
 * hash.h - the one FNV-1a hash of the project (64-bit), for hash tables and
 * inode numbers. Not for anything an attacker must not collide: a table that
 * hashes names a user chooses compares the names too.
 */
#ifndef IMPEX_HASH_H
#define IMPEX_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/** The FNV-1a offset basis: the value to start a hash from. */
#define HASH_START 0xcbf29ce484222325ULL

/** FNV-1a of @len bytes at @data, continued from @h. */
static inline uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/**
 * FNV-1a of @text with its NUL, continued from @h, so that "ab","c" and
 * "a","bc" differ. NULL hashes as "".
 */
static inline uint64_t hash_text(uint64_t h, const char *text)
{
	return text ? hash_bytes(h, text, strlen(text) + 1) : hash_bytes(h, "", 1);
}

#endif
