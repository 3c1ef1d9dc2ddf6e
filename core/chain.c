/*
 * chain.c - a differencing chain (chain.h): the cache of open files, opening
 * a chain level by level (each parent found by core/chain_parent.c),
 * merged reads, and where the levels hold blocks.
 */
#include "chain.h"
#include "chain_internal.h"

#include "disk.h"
#include "error.h"
#include "segments.h"
#include "vhd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Files kept open for many chains; at most CACHE_MAX (then files are opened as usual). */
#define CACHE_MAX 256

/* Used by one thread at a time (chain.h): no lock. */
struct chain_cache {
	struct disk *files[CACHE_MAX];
	char *paths[CACHE_MAX];
	/* The parent found of each file (an index into files), and how; -1 and NULL until found. */
	int parents[CACHE_MAX];
	char *parent_how[CACHE_MAX];
	size_t count;
};

int chain_cache_new(struct chain_cache **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void chain_cache_free(struct chain_cache *cache)
{
	if (!cache)
		return;
	for (size_t i = 0; i < cache->count; i++) {
		disk_close(cache->files[i]);
		free(cache->paths[i]);
		free(cache->parent_how[i]);
	}
	free(cache);
}

/* The index of @disk among @cache's files, or -1. */
static int cache_index(const struct chain_cache *cache, const struct disk *disk)
{
	for (size_t i = 0; cache && i < cache->count; i++)
		if (cache->files[i] == disk)
			return (int)i;
	return -1;
}

bool chain_cache_parent(const struct chain_cache *cache, const struct disk *child,
			struct disk **parent, const char **how)
{
	int at = cache_index(cache, child);

	if (at < 0 || cache->parents[at] < 0)
		return false;
	*parent = cache->files[cache->parents[at]];
	*how = cache->parent_how[at];
	return true;
}

void chain_cache_note_parent(struct chain_cache *cache, const struct disk *child,
			     const struct disk *parent, const char *how)
{
	int at = cache_index(cache, child), up = cache_index(cache, parent);

	if (at < 0 || up < 0 || cache->parents[at] >= 0 || !(cache->parent_how[at] = strdup(how)))
		return;
	cache->parents[at] = up;
}

int chain_level_open(struct chain_cache *cache, const char *path, struct disk **disk, bool *shared,
		     struct error *err)
{
	int rc;

	*shared = false;
	for (size_t i = 0; cache && i < cache->count; i++)
		if (strcmp(cache->paths[i], path) == 0) {
			*disk = cache->files[i];
			*shared = true;
			return 0;
		}
	rc = disk_open(disk, path, DISK_OPEN_READ, err);
	if (rc == 0 && cache && cache->count < CACHE_MAX &&
	    (cache->paths[cache->count] = strdup(path))) {
		cache->parents[cache->count] = -1;
		cache->files[cache->count++] = *disk;
		*shared = true;
	}
	return rc;
}

unsigned chain_depth(const struct chain *c)
{
	return c->depth;
}

struct disk *chain_level(const struct chain *c, unsigned i)
{
	return i < c->depth ? c->levels[i].disk : NULL;
}

const char *chain_level_how(const struct chain *c, unsigned i)
{
	return i < c->depth && c->levels[i].how ? c->levels[i].how : "";
}

uint64_t chain_size(const struct chain *c)
{
	return disk_size(c->levels[0].disk);
}

uint32_t chain_sector_size(const struct chain *c)
{
	return disk_sector_size(c->levels[0].disk);
}

enum disk_format chain_format(const struct chain *c)
{
	return disk_format(c->levels[0].disk);
}

unsigned chain_warning_count(const struct chain *c)
{
	return c->warning_count;
}

const char *chain_warning(const struct chain *c, unsigned i)
{
	return i < c->warning_count ? c->warnings[i] : "";
}

void chain_close(struct chain *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->depth; i++) {
		if (!c->levels[i].shared)
			disk_close(c->levels[i].disk);
		free(c->levels[i].how);
	}
	for (unsigned i = 0; i < c->warning_count; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c->levels);
	free(c);
}

void chain_add_warning(struct chain *c, const char *fmt, ...)
{
	char **grown = realloc(c->warnings, (c->warning_count + 1) * sizeof(*grown));
	va_list ap;
	char *text = NULL;

	if (!grown)
		return;
	c->warnings = grown;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (text)
		c->warnings[c->warning_count++] = text;
}

int chain_open(struct chain **out, const char *path, const struct chain_options *options,
	       struct error *err)
{
	struct chain_options defaults = {0};
	struct chain *c;
	unsigned max_depth;
	int rc;

	*out = NULL;
	if (!options)
		options = &defaults;
	max_depth = options->max_depth ? options->max_depth : CHAIN_DEFAULT_MAX_DEPTH;
	c = calloc(1, sizeof(*c));
	if (!c)
		return error_set(err, ENOMEM, "out of memory");
	c->levels = calloc(max_depth, sizeof(*c->levels));
	if (!c->levels) {
		free(c);
		return error_set(err, ENOMEM, "out of memory");
	}
	rc = chain_level_open(options->cache, path, &c->levels[0].disk, &c->levels[0].shared, err);
	if (rc < 0)
		goto fail;
	c->depth = 1;
	while (disk_type(c->levels[c->depth - 1].disk) == VHD_TYPE_DIFFERENCING) {
		if (c->depth >= max_depth) {
			rc = error_set(err, ELOOP,
				       "the chain of '%s' is deeper than %u levels (a loop or a "
				       "damaged chain)",
				       path, max_depth);
			goto fail;
		}
		rc = chain_parent_find(c, options, c->levels[c->depth - 1].disk, err);
		if (rc < 0) {
			if (c->depth > 1)
				error_prefix(err, "in the chain of '%s'", path);
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	if (options->partial && c->depth > 0)
		*out = c;
	else
		chain_close(c);
	return rc;
}

/* ---- merged reads ---- */

/* The @len bytes of level @disk's file at @pos: from its descriptor as they lie, or
 * through the disk module (a VHDX's replayed log). */
static int map_data(struct disk *disk, struct segments *segs, uint64_t pos, size_t len,
		    struct error *err)
{
	int fd = disk_direct_fd(disk, pos, len);

	if (fd >= 0)
		return segments_file(segs, fd, pos, len, disk_path(disk), err);
	return disk_pread(disk, segments_make(segs, len), len, pos, err);
}

/* Describe the @len bytes at @offset of level @level and, where it defers, below. */
static int map_level(struct chain *c, unsigned level, struct segments *segs, uint64_t offset,
		     size_t len, struct error *err)
{
	struct disk *disk = c->levels[level].disk;
	uint32_t ss = disk_sector_size(disk);
	uint64_t size = disk_size(disk);

	while (len) {
		struct vhd_extent ext;
		uint64_t skip = offset % ss, count;
		size_t n;
		int rc;

		if (offset >= size) {
			/* Past the end of a smaller parent: zeros. */
			segments_zero(segs, len);
			return 0;
		}
		count = (skip + len + ss - 1) / ss;
		if (count > (size - offset + skip) / ss)
			count = (size - offset + skip) / ss;
		rc = disk_map(disk, offset / ss, count, &ext, err);
		if (rc < 0)
			return rc;
		n = ext.sectors * ss - skip < len ? (size_t)(ext.sectors * ss - skip) : len;
		switch (ext.kind) {
		case VHD_EXTENT_DATA:
			rc = map_data(disk, segs, ext.file_offset + skip, n, err);
			break;
		case VHD_EXTENT_PARENT:
			if (level + 1 < c->depth) {
				rc = map_level(c, level + 1, segs, offset, n, err);
				break;
			}
			/* No parent: cannot happen in an open chain. */
			segments_zero(segs, n);
			break;
		case VHD_EXTENT_ZERO:
			segments_zero(segs, n);
			break;
		}
		if (rc < 0)
			return rc;
		offset += n;
		len -= n;
	}
	return 0;
}

int chain_map(struct chain *c, struct segments *segs, uint64_t offset, size_t len,
	      struct error *err)
{
	uint64_t size = chain_size(c);

	if (offset > size || len > size - offset)
		return error_set(err, EINVAL, "read of %zu bytes at %llu is outside '%s'", len,
				 (unsigned long long)offset, disk_path(c->levels[0].disk));
	return map_level(c, 0, segs, offset, len, err);
}

int chain_read(struct chain *c, void *buf, size_t len, uint64_t offset, struct error *err)
{
	struct segments segs;

	segments_init_flat(&segs, buf, len);
	return chain_map(c, &segs, offset, len, err);
}

/* ---- allocation ---- */

/* Whether a level holds every sector without blocks: a fixed VHD. */
static bool level_is_flat(const struct disk *disk)
{
	return disk_block_size(disk) == 0;
}

/* Whether the block of level @disk holding byte @offset is present. */
static bool level_allocated_at(struct disk *disk, uint64_t offset)
{
	uint32_t bs;

	if (level_is_flat(disk))
		return offset < disk_size(disk);
	bs = disk_block_size(disk);
	if (offset / bs >= disk_block_count(disk))
		return false;
	return disk_block_present(disk, offset / bs);
}

bool chain_range_allocated(const struct chain *c, uint64_t offset, uint64_t len)
{
	if (len == 0)
		return false;
	for (unsigned i = 0; i < c->depth; i++) {
		struct disk *disk = c->levels[i].disk;
		uint64_t first, last, count;
		uint32_t bs;

		if (level_is_flat(disk)) {
			if (offset < disk_size(disk))
				return true;
			continue;
		}
		bs = disk_block_size(disk);
		count = disk_block_count(disk);
		first = offset / bs;
		last = (offset + len - 1) / bs;
		for (uint64_t b = first; b <= last && b < count; b++)
			if (disk_block_present(disk, b))
				return true;
	}
	return false;
}

/* Levels whose next changes chain_extent keeps on the stack; deeper chains
 * take an allocation. */
#define CHAIN_MAX_LEVELS_ON_STACK 32

/* Where the allocation state of level @disk next changes after @offset (at a
 * block boundary), skipping runs of blocks in the same state; @size when it
 * never changes again. */
static uint64_t level_next_change(struct disk *disk, uint64_t offset, uint64_t size)
{
	uint64_t b, count, bs;
	bool state;

	if (level_is_flat(disk))
		return offset < disk_size(disk) ? disk_size(disk) : size;
	bs = disk_block_size(disk);
	count = disk_block_count(disk);
	b = offset / bs;
	if (b >= count)
		return size; /* past this level's end: unallocated from here on */
	state = disk_block_present(disk, b);
	while (++b < count && disk_block_present(disk, b) == state)
		;
	if (b >= count && !state)
		return size;
	return b * bs;
}

void chain_extent(const struct chain *c, uint64_t offset, bool *allocated, uint64_t *end)
{
	uint64_t size = chain_size(c), pos = offset, changes[CHAIN_MAX_LEVELS_ON_STACK];
	uint64_t *change =
		c->depth <= CHAIN_MAX_LEVELS_ON_STACK ? changes : calloc(c->depth, sizeof(*change));
	bool state = false;

	*allocated = false;
	*end = size;
	if (offset >= size || !change) {
		if (change != changes)
			free(change);
		return;
	}
	/*
	 * Each level's next change is kept and found again only when the walk
	 * reaches it: every level's allocation table is read once over the run,
	 * whatever the other levels do.
	 */
	for (unsigned i = 0; i < c->depth; i++) {
		state |= level_allocated_at(c->levels[i].disk, pos);
		change[i] = level_next_change(c->levels[i].disk, pos, size);
	}
	for (;;) {
		uint64_t next = size;
		bool here = false;

		for (unsigned i = 0; i < c->depth; i++)
			if (change[i] < next)
				next = change[i];
		pos = next;
		if (pos >= size)
			break;
		for (unsigned i = 0; i < c->depth; i++) {
			if (change[i] <= pos)
				change[i] = level_next_change(c->levels[i].disk, pos, size);
			here |= level_allocated_at(c->levels[i].disk, pos);
		}
		if (here != state)
			break;
	}
	*allocated = state;
	*end = pos < size ? pos : size;
	if (change != changes)
		free(change);
}
