/*
 * stream.h - a synthesized read-only file over a chain.
 *
 * Three kinds:
 *  - a new dynamic VHD holding the chain's merged content: the block size of
 *    the chain's top disk (2 MiB over a fixed disk), one block for each block
 *    that some level allocates (a fixed level allocates everything), full
 *    sector bitmaps, the top disk's size and geometry, creator "win ", and a
 *    UUID derived from a caller-given seed, so the same chain and seed always
 *    give the same bytes.
 *  - a new dynamic VHDX ([MS-VHDX]) holding the chain's merged content: the
 *    file identifier, two headers, two region tables, an empty 1 MiB log, the
 *    metadata (no parent locator), the BAT and the blocks, each block that
 *    some level allocates FULLY_PRESENT, the others NOT_PRESENT; block and
 *    sector sizes given by the caller, IDs derived from a seed (docs/VHDX.md,
 *    "What impexfs synthesizes").
 *  - the raw merged disk.
 * The size and layout of a VHD or VHDX come from the allocation tables
 * alone; any range can be read at any time and is computed on demand.
 * Memory is bounded by the number of blocks (a bit a block, and a count for
 * every 512 blocks), never by data: 64 TiB in 1 MiB blocks take 8.5 MiB.
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

/* The VHDX's defaults: Hyper-V's for a dynamic disk. */
#define STREAM_VHDX_DEFAULT_BLOCK    (32u * 1024 * 1024)
#define STREAM_VHDX_DEFAULT_LOGICAL  512u
#define STREAM_VHDX_DEFAULT_PHYSICAL 4096u

struct stream_vhdx_options {
	/*
	 * Seed of the new disk's IDs: the virtual disk ID is the SHA-1
	 * name-based UUID of the seed (the one a VHD stream with this seed
	 * gets, stored as a GUID that reads the same), DataWriteGuid and
	 * FileWriteGuid are derived from the disk ID. NULL or "" takes the 16
	 * bytes of @top_id as the name instead.
	 */
	const char *seed;
	/* 16 bytes naming the chain's top disk (its UUID or disk ID): the
	 * name when there is no seed. NULL with no seed is an error. */
	const uint8_t *top_id;
	/* Payload block size: a power of two from 1 MiB to 256 MiB; 0 takes
	 * STREAM_VHDX_DEFAULT_BLOCK. */
	uint32_t block_size;
	/* Logical and physical sector sizes, 512 or 4096 each; 0 takes the
	 * defaults. The disk size must be a whole number of logical sectors. */
	uint32_t logical_sector_size;
	uint32_t physical_sector_size;
};

/**
 * A dynamic VHDX over @chain. *@out is freed with stream_free().
 * Returns 0, -EINVAL with a message for an option out of range, no seed, or
 * a disk size that is not whole logical sectors; -EFBIG for a disk over the
 * format's 64 TiB; -ENOMEM.
 */
int stream_new_vhdx(struct stream **out, struct chain *chain,
		    const struct stream_vhdx_options *options, struct error *err);

/**
 * The merged disk of @chain in the chain's own format: a dynamic VHD
 * (stream_new_vhd) over a VHD chain, a dynamic VHDX (stream_new_vhdx, the top
 * disk's block size, logical and physical sector sizes) over a VHDX chain;
 * @seed as in their options (NULL: from the top disk). Freed with
 * stream_free(). Returns 0 or a negative errno with a message.
 */
int stream_new_merged(struct stream **out, struct chain *chain, const char *seed,
		      struct error *err);

/** The raw merged content of @chain. Freed with stream_free(). */
int stream_new_raw(struct stream **out, struct chain *chain, struct error *err);

/* The file under a patched stream. Borrowed: it must outlive the stream. */
struct stream_file {
	struct disk *disk; /* read with disk_pread (a VHDX's log replayed); NULL: with @fd */
	int fd;		   /* read with pread when there is no @disk */
	uint64_t size;	   /* the bytes served: the file's size, or disk_view_size() */
	const char *path;  /* the file, in messages */
};

/**
 * A stream of @file's bytes with the @count @patches laid over them (a
 * differencing disk relocated by vhd_relocation(), a VHDX's log emptied:
 * disk_patches()), the one reader of "a file with patches laid over it".
 * Borrows @file's disk or descriptor and path, and @patches with their bytes:
 * they must outlive the stream. Data throughout (stream_extent()). Returns 0,
 * -EINVAL with a message for a patch outside the file, -ENOMEM.
 */
int stream_new_patched(struct stream **out, const struct stream_file *file,
		       const struct vhd_patch *patches, size_t count, struct error *err);

/** Release @stream (not its chain). NULL-safe. */
void stream_free(struct stream *stream);

/** Size of the synthesized file in bytes. */
uint64_t stream_size(const struct stream *stream);

/**
 * Bytes of the file that hold data (for st_blocks): the whole VHD; the
 * VHDX's data extents (stream_extent); the raw view's allocated blocks.
 */
uint64_t stream_allocated_bytes(const struct stream *stream);

/**
 * UUID of the synthesized VHD, or virtual disk ID of the VHDX as stored in
 * it (16 bytes); zeros for a raw stream. Borrowed.
 */
const uint8_t *stream_uuid(const struct stream *stream);

/**
 * Read @len bytes at @offset; the range must lie within stream_size().
 * Returns 0, -EINVAL for a range outside, or the chain's error.
 */
int stream_read(struct stream *stream, void *buf, size_t len, uint64_t offset, struct error *err);

struct segments;

/**
 * stream_read() described into @segs (segments.h): headers, tables and
 * bitmaps from memory, the chain's or the file's runs as they lie in their
 * files. Returns as stream_read().
 */
int stream_map(struct stream *stream, struct segments *segs, uint64_t offset, size_t len,
	       struct error *err);

/**
 * The data or hole run at @offset, for SEEK_DATA/SEEK_HOLE: *@data tells
 * which, *@end where it stops (at most stream_size()). A VHD is data
 * throughout. A VHDX has holes where it reads as zeros for want of anything
 * to hold: its reserved space and empty log, past its metadata, the 4 KiB
 * pages of its BAT that store no block, and inside stored blocks what no
 * level of the chain allocates. A raw stream follows chain_extent().
 */
void stream_extent(const struct stream *stream, uint64_t offset, bool *data, uint64_t *end);

/**
 * Write the VHD or VHDX stream into @fd (an empty regular file: runs of
 * zeros are left as holes) sequentially, leaving out the blocks whose merged
 * content is all zeros, as qemu-img convert does, and size the file. The
 * stream's layout is updated to match what was written (also on failure).
 * The caller fsyncs. @progress (may be NULL) is told, before each stored
 * block and at the end, the bytes of disk @done of the stored blocks'
 * @total; a negative errno it returns stops the write with that error.
 * Returns 0, -EINVAL for a raw or patched stream, or a negative errno with a
 * message.
 */
int stream_write_compact(struct stream *stream, int fd,
			 int (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
			 struct error *err);

#endif
