/*
 * support.h - helpers for the cmocka unit tests: temporary folders, file
 * bytes read and patched directly (so tests check the on-disk format without
 * going through the code under test), deterministic data.
 */
#ifndef IMPEX_TEST_SUPPORT_H
#define IMPEX_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/** A fresh temporary folder; free with support_remove_tree. */
char *support_tempdir(void);

/** Remove @dir and everything under it, and free the string. NULL-safe. */
void support_remove_tree(char *dir);

/** "@dir/@name" in a static rotating buffer (8 slots): valid for a few calls. */
const char *support_path(const char *dir, const char *name);

/** Fill @buf with bytes from a simple generator seeded by @seed (never all zero). */
void support_fill(uint8_t *buf, size_t len, uint32_t seed);

/** Read @len bytes of @path at @offset (fails the test on error). */
void support_read(const char *path, uint64_t offset, void *buf, size_t len);

/** Overwrite @len bytes of @path at @offset (fails the test on error). */
void support_patch(const char *path, uint64_t offset, const void *buf, size_t len);

/** Big-endian integers read straight from the file. */
uint32_t support_be32(const char *path, uint64_t offset);
uint64_t support_be64(const char *path, uint64_t offset);

/** Make the new file @path holding @text (fails the test if it exists). */
void support_write_text(const char *path, const char *text);

/** The whole of the small file @path as a new string (caller frees). */
char *support_read_text(const char *path);

/** Size of @path in bytes. */
uint64_t support_file_size(const char *path);

/**
 * Recompute the checksum of the 1024-byte dynamic header of @path (at byte
 * 512) after a test patched it: one's complement of the byte sum, the
 * checksum field (bytes 36-39) taken as zero. Written independently of core.
 */
void support_fix_header_checksum(const char *path);

/** cmocka setup and teardown: *state is a new temporary folder, removed after. */
int support_setup_dir(void **state);
int support_teardown_dir(void **state);

struct segments;

/**
 * The bytes @segs describes, put together into @out (@len bytes) by the test
 * itself: file runs read with pread, bytes copied, zeros. Fails the test
 * unless the pieces make exactly @len bytes.
 */
void support_put_together(const struct segments *segs, uint8_t *out, size_t len);

/** The specification's checksum: one's complement of the byte sum, the 4 bytes at @at skipped. */
uint32_t support_checksum(const uint8_t *raw, size_t len, size_t at);

#endif
