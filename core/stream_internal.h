/*
 * stream_internal.h - what the synthesized disks share inside the stream
 * module (stream.c, stream_vhdx.c); nothing outside it includes this.
 *
 * A synthesized disk file is a list of parts laid end to end: fixed bytes
 * (headers and the like, zeros after them), the allocation table (encoded on
 * demand by the format), and the stored blocks. The blocks are those of the
 * merged disk that some level of the chain allocates, stored in disk order,
 * each one the format's prefix (a VHD's sector bitmap, nothing for a VHDX)
 * then its data. Which blocks are stored is one bit a block, with a count of
 * the stored blocks before every group of STREAM_GROUP_BLOCKS blocks, so
 * that a block's place in the file (its rank) and the block at a place are
 * found in a few steps: 64 TiB of 1 MiB blocks take 8.5 MiB.
 *
 * Everything here is set up by the stream_new_* functions and then only
 * read (stream_write_compact excepted), so reads need no lock.
 */
#ifndef IMPEX_STREAM_INTERNAL_H
#define IMPEX_STREAM_INTERNAL_H

#include "stream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stream_kind {
	STREAM_VHD,
	STREAM_VHDX,
	STREAM_RAW,
	STREAM_PATCHED,
};

enum stream_part_kind {
	STREAM_PART_BYTES,  /* bytes, then zeros to the part's end */
	STREAM_PART_TABLE,  /* the allocation table, encoded by table_read */
	STREAM_PART_BLOCKS, /* the stored blocks */
};

struct stream_part {
	enum stream_part_kind kind;
	uint64_t offset; /* in the file; set by stream_layout() */
	uint64_t length; /* a blocks part's is set by stream_layout() */
	uint8_t *bytes;	 /* a bytes part's, owned */
	size_t bytes_len;
};

#define STREAM_MAX_PARTS 12
/* Blocks per group of the rank directory: 8 words of the bitmap. */
#define STREAM_GROUP_BLOCKS 512u

struct stream {
	enum stream_kind kind;
	struct chain *chain;
	uint64_t disk_size;
	uint64_t size;
	uint64_t allocated_bytes;
	uint8_t uuid[16];
	/* Report the file's all-zero parts as holes (stream_extent); else the
	 * whole file is data. */
	bool sparse;

	struct stream_part parts[STREAM_MAX_PARTS];
	unsigned part_count;
	const struct stream_part *blocks_part;

	/* The stored blocks. */
	uint32_t block_size;
	uint64_t block_count;
	uint64_t *stored;   /* one bit a block, least significant first */
	uint32_t *rank_dir; /* stored blocks before each group */
	uint64_t stored_count;
	uint8_t *prefix; /* the bytes before each stored block's data, owned */
	uint32_t prefix_len;
	uint64_t block_bytes; /* prefix + block */

	/* The format's allocation table: @len bytes at @at (from the table's
	 * start) into @buf; and whether the table is data at @at, until *@end
	 * (from the table's start). table_data may be NULL: all data. */
	void (*table_read)(const struct stream *s, uint8_t *buf, uint64_t at, size_t len);
	bool (*table_data)(const struct stream *s, uint64_t at, uint64_t *end);
	uint32_t chunk_ratio; /* VHDX: payload blocks per sector bitmap entry */

	/* STREAM_PATCHED: a file with ranges replaced, all borrowed */
	struct stream_file file;
	const struct vhd_patch *patches;
	size_t patch_count;
};

/** The name-based (SHA-1, version 5) UUID of @name in impexfs's namespace. */
void stream_name_uuid(uint8_t out[16], const void *name, size_t len);

/** A new stream of @kind over @chain (may be NULL). Returns 0 or -ENOMEM. */
int stream_alloc(struct stream **out, enum stream_kind kind, struct chain *chain,
		 struct error *err);

/**
 * Find the stored blocks: @block_size bytes each, those that some level of
 * the chain allocates, each with the @prefix_len bytes of @prefix before its
 * data (copied). Returns 0 or -ENOMEM with a message.
 */
int stream_blocks_init(struct stream *s, uint32_t block_size, const uint8_t *prefix,
		       uint32_t prefix_len, struct error *err);

/** Whether block @block is stored. */
bool stream_block_stored(const struct stream *s, uint64_t block);

/** Stored blocks before block @block (@block may be block_count). */
uint64_t stream_block_rank(const struct stream *s, uint64_t block);

/** The block stored in place @index (below stored_count). */
uint64_t stream_block_select(const struct stream *s, uint64_t index);

/** Add a part of @length bytes: @bytes (@bytes_len of them, copied) then zeros. */
int stream_add_bytes(struct stream *s, const void *bytes, size_t bytes_len, uint64_t length,
		     struct error *err);

/** Add the allocation table, @length bytes. */
void stream_add_table(struct stream *s, uint64_t length);

/** Add the stored blocks. */
void stream_add_blocks(struct stream *s);

/** Place the parts end to end; set the file's size and allocated bytes. */
void stream_layout(struct stream *s);

/** File offset of the stored blocks. */
uint64_t stream_blocks_at(const struct stream *s);

#endif
