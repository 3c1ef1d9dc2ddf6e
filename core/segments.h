/*
 * segments.h - a read described as the pieces it is made of, so that a
 * reply can take its bytes from where they lie: runs of a source file (which
 * the FUSE driver splices from the file to the kernel, with no copy through
 * the daemon), bytes in memory (headers, tables, bitmaps, a configuration)
 * and zeros.
 *
 * One list serves one request after another: its arrays are sized once (by
 * segments_init) and reused, so a request allocates nothing.
 *
 * Two ways of filling a list:
 *  - "flat" (segments_init_flat): every piece is copied or read, in order,
 *    into the caller's buffer, which then holds the whole read; this is the
 *    plain read of the tools, the tests and of a mount that does not splice,
 *    done by the same code that describes a spliced read.
 *  - "splice" (segments_init): runs of a file of at least @min_splice bytes
 *    stay runs (adjacent runs of one file are joined), shorter ones and what
 *    is made in memory go into the list's scratch bytes. When the list is
 *    full, whatever comes after is read into the scratch bytes, so that any
 *    read fits.
 *
 * Invariants: the pieces, end to end, are the bytes of the read in order;
 * bytes made in memory (segments_make) stay valid until the list is reset;
 * bytes given by reference (segments_bytes) must outlive the reply.
 *
 * Not thread-safe: one list per thread.
 */
#ifndef IMPEX_SEGMENTS_H
#define IMPEX_SEGMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct error;

enum segment_kind {
	SEGMENT_FILE,  /* @len bytes of file @fd at @pos */
	SEGMENT_BYTES, /* @len bytes at @bytes */
	SEGMENT_ZERO,  /* @len zeros */
};

struct segment {
	enum segment_kind kind;
	int fd;
	uint64_t pos;
	const uint8_t *bytes;
	size_t len;
};

struct segments {
	struct segment *items;
	size_t count, cap;
	uint8_t *scratch; /* bytes made or read; the caller's buffer when flat */
	size_t used, scratch_cap;
	size_t total;	   /* bytes described so far */
	size_t min_splice; /* shorter file runs are read into scratch */
	bool flat;
	bool owned; /* items and scratch allocated by segments_init */
};

/* The fewest bytes a file run must have to stay a run when splicing. */
#define SEGMENTS_MIN_SPLICE 4096u

/**
 * A list for reads of up to @max_len bytes, splicing file runs of
 * @min_splice bytes or more (0: SEGMENTS_MIN_SPLICE). Returns 0 or -ENOMEM.
 * Freed with segments_free().
 */
int segments_init(struct segments *s, size_t max_len, size_t min_splice);

/** A flat list over @buf of @len bytes (nothing to free). */
void segments_init_flat(struct segments *s, void *buf, size_t len);

/** Free what segments_init() allocated. */
void segments_free(struct segments *s);

/**
 * Empty the list for a read of @len bytes (at most the max_len of
 * segments_init, which grows the list if needed). Returns 0 or -ENOMEM.
 */
int segments_reset(struct segments *s, size_t len);

/**
 * Add @len bytes of file @fd at @pos (@path names it in messages). Read at
 * once when flat or short. Returns 0, or -EIO with a message naming @path
 * when the file ends first, or the read's errno.
 */
int segments_file(struct segments *s, int fd, uint64_t pos, size_t len, const char *path,
		  struct error *err);

/** Add @len bytes at @bytes, which must stay valid until the reply. */
void segments_bytes(struct segments *s, const void *bytes, size_t len);

/** Add @len bytes made by the caller: returns where to write them. */
uint8_t *segments_make(struct segments *s, size_t len);

/** Add @len zeros. */
void segments_zero(struct segments *s, size_t len);

/** Whether some piece of @s is a file run (a splice would help). */
bool segments_have_file(const struct segments *s);

#endif
