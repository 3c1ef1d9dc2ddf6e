/*
 * chain.h - a differencing chain: a disk and its ancestors, read merged.
 *
 * A chain is of one format, VHD or VHDX (core/disk.h): a parent of the other
 * format, or of another logical sector size, is refused. Parents are found in
 * this order (docs/VHD.md, docs/VHDX.md): the places the child names,
 * relative ones against the child's folder first (VHD: the relative
 * locators, the absolute locators, the Parent Unicode Name; VHDX:
 * relative_path, volume_path, absolute_win32_path), absolute ones through
 * the path map, then by their file name in the child's folder; last, any
 * disk in the child's folder with the identity the child names. A candidate
 * is the parent only if its identity is the one the child names (VHD: its
 * UUID; VHDX: its DataWriteGuid is parent_linkage or parent_linkage2); a
 * VHD parent's differing timestamp is a warning. Depth is bounded and
 * cycles detected.
 *
 * Thread safety: once open, a chain may be read from several threads.
 *
 * core/chain.c opens chains and reads them; core/chain_parent.c finds each
 * parent (chain_internal.h is what they share).
 */
#ifndef IMPEX_CHAIN_H
#define IMPEX_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk.h"

struct error;
struct pathmap;
struct disk;
struct chain;

#define CHAIN_DEFAULT_MAX_DEPTH 128

struct chain_options {
	const struct pathmap *pathmap; /* Windows paths to Linux; may be NULL */
	unsigned max_depth;	       /* levels at most; 0 means CHAIN_DEFAULT_MAX_DEPTH */
	/*
	 * Confinement: called with the real path of each parent before it is
	 * opened; returns 0 to allow it, or a negative errno (with a message in
	 * @err) to refuse. NULL allows every path.
	 */
	int (*allow)(void *ctx, const char *real_path, struct error *err);
	void *allow_ctx;
	/* Files shared with other chains opened through it (NULL: none). */
	struct chain_cache *cache;
	/* On failure, keep in *out what was opened (chain_open). */
	bool partial;
	/* The path given is a real path already (no link in it): not resolved again. */
	bool real;
};

/*
 * A cache of open files for opening many chains that share files (the
 * snapshots of one VM): each file is opened and checked once, and each
 * parent found once (every chain opened through one cache must have the same
 * path map and confinement). Its files stay open until chain_cache_free(),
 * which must come after every chain opened through it is closed. Not for
 * chains read by several threads.
 */
struct chain_cache;

/** A new, empty cache. Returns 0 or -ENOMEM. */
int chain_cache_new(struct chain_cache **out);

/** Close the cache's files and free it. NULL-safe. */
void chain_cache_free(struct chain_cache *cache);

/**
 * Open the disk at @path and every ancestor. *@out receives the chain; caller
 * frees with chain_close(). @options may be NULL.
 * Returns 0, or a negative errno with a message: -ENOENT (a parent cannot be
 * found), -EINVAL (a damaged file, a parent whose
 * identity, format or sector size does not match),
 * -ELOOP (a cycle, or deeper than the limit), -EACCES (a parent outside what
 * the allow callback permits), or a system errno. With @options->partial, a
 * failure past the top leaves in *@out the levels opened: the top and each
 * parent found with the UUID its child names, the last one's parent being
 * what failed (caller frees with chain_close(); NULL when the top failed).
 */
int chain_open(struct chain **out, const char *path, const struct chain_options *options,
	       struct error *err);

/** Close every file of @chain and free it. NULL-safe. */
void chain_close(struct chain *chain);

/** Number of levels: 1 for a fixed or dynamic disk. */
unsigned chain_depth(const struct chain *chain);

/** Level @i, 0 being the top (the file opened, by the path given); a parent was opened by
 * its real path (disk_path()). Borrowed, valid until chain_close. */
struct disk *chain_level(const struct chain *chain, unsigned i);

/**
 * How level @i was found: "" for the top, else e.g. "relative locator W2ru
 * '.\base.vhd'" or "UUID scan of '/srv/vms'". Borrowed.
 */
const char *chain_level_how(const struct chain *chain, unsigned i);

/** Disk size of the merged disk: the top's size. */
uint64_t chain_size(const struct chain *chain);

/** Logical sector size of every level: 512 or 4096. */
uint32_t chain_sector_size(const struct chain *chain);

/** The format of every level. */
enum disk_format chain_format(const struct chain *chain);

/** Warnings found while opening (timestamp mismatches). */
unsigned chain_warning_count(const struct chain *chain);

/** Warning @i. Borrowed. */
const char *chain_warning(const struct chain *chain, unsigned i);

/**
 * Read @len bytes of the merged disk at @offset (any alignment): each sector
 * comes from the nearest level that holds it, at sector granularity; sectors
 * no level holds, and sectors past a smaller parent's end, read as zeros.
 * @offset + @len must not pass chain_size().
 * Returns 0, -EINVAL for a range outside the disk, -EIO with a message.
 */
int chain_read(struct chain *chain, void *buf, size_t len, uint64_t offset, struct error *err);

struct segments;

/**
 * chain_read() described into @segs (segments.h): the levels' runs as they
 * lie in their files, zeros where no level holds the sectors. Returns as
 * chain_read().
 */
int chain_map(struct chain *chain, struct segments *segs, uint64_t offset, size_t len,
	      struct error *err);

/**
 * Whether any level has a block allocated that overlaps [@offset, @offset +
 * @len): a fixed disk counts as allocated everywhere.
 */
bool chain_range_allocated(const struct chain *chain, uint64_t offset, uint64_t len);

/**
 * The allocation run at @offset: *@allocated tells whether @offset lies in a
 * block allocated at some level (block granularity), *@end where that
 * stops being true (or becomes true), at most chain_size(). For
 * SEEK_DATA/SEEK_HOLE and for skipping holes when copying.
 */
void chain_extent(const struct chain *chain, uint64_t offset, bool *allocated, uint64_t *end);

#endif
