/*
 * stream.h - a synthesized read-only file over a chain.
 *
 * Two kinds:
 *  - a new dynamic VHD holding the chain's merged content: the block size of
 *    the chain's top disk (2 MiB over a fixed disk), one block for each block
 *    that some level allocates (a fixed level allocates everything), full
 *    sector bitmaps, the top disk's size and geometry, creator "win ", and a
 *    UUID derived from a caller-given seed, so the same chain and seed always
 *    give the same bytes. Its size and layout come from the allocation tables
 *    alone; any range can be read at any time and is computed on demand.
 *  - the raw merged disk.
 * Memory is bounded by the allocation tables (8 bytes a block), never by data.
 *
 * A stream borrows its chain: the chain must stay open until stream_free.
 * Reads may come from several threads at once.
 */
#ifndef IMPEX_STREAM_H
#define IMPEX_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chain;
struct error;
struct stream;
struct disk;
struct vhd_patch;

struct stream_vhd_options {
	/* Seed of the new disk's UUID (a SHA-1 name-based UUID); NULL or ""
	 * derives it from the top disk's UUID alone. */
	const char *seed;
	/* The footer's timestamp (VHD time); 0 takes the top disk's. */
	uint32_t timestamp;
};

/**
 * A dynamic VHD over @chain. @options may be NULL.
 * *@out is freed with stream_free(). Returns 0 or -ENOMEM / -EINVAL with a message.
 */
int stream_new_vhd(struct stream **out, struct chain *chain,
		   const struct stream_vhd_options *options, struct error *err);

/** The raw merged content of @chain. Freed with stream_free(). */
int stream_new_raw(struct stream **out, struct chain *chain, struct error *err);

/**
 * A stream of the file of @disk (borrowed: it must outlive the stream), as
 * disk_pread reads it, with the @count @patches laid over it (a differencing
 * disk relocated by vhd_relocation(), say). The stream takes the patches'
 * bytes, also on failure. Returns 0, -EINVAL for a patch outside the file,
 * -ENOMEM.
 */
int stream_new_patched(struct stream **out, struct disk *disk, struct vhd_patch *patches,
		       size_t count, struct error *err);

/** Release @stream (not its chain). NULL-safe. */
void stream_free(struct stream *stream);

/** Size of the synthesized file in bytes. */
uint64_t stream_size(const struct stream *stream);

/** Bytes of the file that hold data (for st_blocks): the whole VHD, or the raw view's allocated
 * blocks. */
uint64_t stream_allocated_bytes(const struct stream *stream);

/** UUID of the synthesized VHD (16 bytes); zeros for a raw stream. Borrowed. */
const uint8_t *stream_uuid(const struct stream *stream);

/**
 * Read @len bytes at @offset; the range must lie within stream_size().
 * Returns 0, -EINVAL for a range outside, or the chain's error.
 */
int stream_read(struct stream *stream, void *buf, size_t len, uint64_t offset, struct error *err);

/**
 * The data or hole run at @offset, for SEEK_DATA/SEEK_HOLE: *@data tells
 * which, *@end where it stops (at most stream_size()).
 */
void stream_extent(const struct stream *stream, uint64_t offset, bool *data, uint64_t *end);

/**
 * Write the VHD stream into @fd (an empty file: runs of zeros inside blocks
 * are left as holes) sequentially, leaving out the blocks whose merged
 * content is all zeros, as qemu-img convert does. The stream's layout is
 * updated to match what was written. The caller fsyncs.
 * Returns 0, -EINVAL for a raw stream, or a negative errno with a message.
 */
int stream_write_compact(struct stream *stream, int fd, struct error *err);

#endif
