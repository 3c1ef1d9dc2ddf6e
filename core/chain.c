#include "chain.h"

#include "error.h"
#include "fsutil.h"
#include "pathmap.h"
#include "vhd.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOW_MAX 512

struct chain_level {
	struct vhd *vhd;
	bool shared; /* the cache's: not closed with the chain */
	char how[HOW_MAX];
};

/* Files kept open for many chains; at most CACHE_MAX (then files are opened as usual). */
#define CACHE_MAX 256

struct chain_cache {
	struct vhd *files[CACHE_MAX];
	char *paths[CACHE_MAX];
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
		vhd_close(cache->files[i]);
		free(cache->paths[i]);
	}
	free(cache);
}

/*
 * vhd_open() of @path for reading, through @cache if not NULL: *@shared
 * tells whether the file is the cache's (never to be closed by the caller).
 */
static int open_level(struct chain_cache *cache, const char *path, struct vhd **vhd,
		      bool *shared, struct error *err)
{
	int rc;

	*shared = false;
	for (size_t i = 0; cache && i < cache->count; i++)
		if (strcmp(cache->paths[i], path) == 0) {
			*vhd = cache->files[i];
			*shared = true;
			return 0;
		}
	rc = vhd_open(vhd, path, VHD_OPEN_READ, err);
	if (rc == 0 && cache && cache->count < CACHE_MAX &&
	    (cache->paths[cache->count] = strdup(path))) {
		cache->files[cache->count++] = *vhd;
		*shared = true;
	}
	return rc;
}

struct chain {
	struct chain_level *levels;
	unsigned depth;
	char **warnings;
	unsigned warning_count;
};

unsigned chain_depth(const struct chain *c)
{
	return c->depth;
}

struct vhd *chain_level(const struct chain *c, unsigned i)
{
	return i < c->depth ? c->levels[i].vhd : NULL;
}

const char *chain_level_how(const struct chain *c, unsigned i)
{
	return i < c->depth ? c->levels[i].how : "";
}

uint64_t chain_size(const struct chain *c)
{
	return vhd_size(c->levels[0].vhd);
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
	for (unsigned i = 0; i < c->depth; i++)
		if (!c->levels[i].shared)
			vhd_close(c->levels[i].vhd);
	for (unsigned i = 0; i < c->warning_count; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c->levels);
	free(c);
}

static void add_warning(struct chain *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));


static void add_warning(struct chain *c, const char *fmt, ...)
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

/* ---- parent resolution ---- */

/* The search for one parent: what was tried and the best failure so far. */
struct search {
	struct chain *chain;
	const struct chain_options *options;
	struct vhd *child;
	char child_dir[PATH_MAX];
	const uint8_t *want_uuid;
	char tried[8][PATH_MAX]; /* candidates already looked at (the first few) */
	unsigned tried_count;
	char summary[ERROR_MESSAGE_MAX]; /* "'a' (not found), 'b' (UUID ...)" */
	int worst_rank;			 /* 0 none, 1 not found, 2 UUID mismatch, 3 damaged */
	struct error failure;		 /* message of the most telling failure */
	struct vhd *found;
	bool found_shared;
	char found_how[HOW_MAX];
};

static void note(struct search *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct search *s, const char *fmt, ...)
{
	size_t used = strlen(s->summary);
	va_list ap;

	if (used + 8 >= sizeof(s->summary))
		return;
	if (used)
		used += (size_t)snprintf(s->summary + used, sizeof(s->summary) - used, "; ");
	va_start(ap, fmt);
	vsnprintf(s->summary + used, sizeof(s->summary) - used, fmt, ap);
	va_end(ap);
}

static bool already_tried(struct search *s, const char *path)
{
	for (unsigned i = 0; i < s->tried_count && i < 8; i++)
		if (strcmp(s->tried[i], path) == 0)
			return true;
	if (s->tried_count < 8)
		snprintf(s->tried[s->tried_count], PATH_MAX, "%s", path);
	s->tried_count++;
	return false;
}

/* Keep the most telling failure: a damaged parent says most, then a UUID
 * mismatch, then absence. */
static void record_failure(struct search *s, int rank, const struct error *e)
{
	if (rank > s->worst_rank) {
		s->worst_rank = rank;
		s->failure = *e;
	}
}

/* Is the file we are about to open already a level of the chain? */
static int check_cycle(struct search *s, const char *path, struct error *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return 0;
	for (unsigned i = 0; i < s->chain->depth; i++) {
		dev_t dev;
		ino_t ino;

		vhd_file_id(s->chain->levels[i].vhd, &dev, &ino);
		if (dev == st.st_dev && ino == st.st_ino)
			return error_set(err, ELOOP,
					 "the chain of '%s' loops: its parent '%s' is already in the "
					 "chain",
					 vhd_path(s->chain->levels[0].vhd), path);
	}
	return 0;
}

/*
 * realpath() of @path into @real (PATH_MAX), quicker for the common case: a
 * file that is no symbolic link, in the child's folder (a real path already),
 * is its own real path. Returns @real, or NULL with errno set.
 */
static char *real_path(const struct search *s, const char *path, char *real)
{
	size_t n = strlen(s->child_dir);
	struct stat st;

	if (strncmp(path, s->child_dir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/') &&
	    strcmp(path + n + 1, ".") != 0 && strcmp(path + n + 1, "..") != 0 && path[n + 1] &&
	    lstat(path, &st) == 0 && S_ISREG(st.st_mode) && strlen(path) < PATH_MAX) {
		strcpy(real, path);
		return real;
	}
	return realpath(path, real);
}

/*
 * Try the file at @path as the parent. Returns 1 if it is the parent (kept in
 * s->found), 0 to go on searching, or a negative errno that ends the search
 * (a cycle, a refused path).
 */
static int try_candidate(struct search *s, const char *path, const char *how)
{
	char actual[PATH_MAX], real[PATH_MAX], want[37], have[37];
	struct vhd *vhd = NULL;
	bool shared;
	struct error e;
	int rc;

	error_clear(&e);
	if (pathmap_find_case_insensitive(path, actual, sizeof(actual)) < 0) {
		if (!already_tried(s, path))
			note(s, "'%s' (not found)", path);
		return 0;
	}
	if (already_tried(s, actual))
		return 0;
	if (!real_path(s, actual, real)) {
		note(s, "'%s' (%s)", actual, strerror(errno));
		return 0;
	}
	if (s->options->allow) {
		rc = s->options->allow(s->options->allow_ctx, real, &e);
		if (rc < 0) {
			error_prefix(&e, "parent '%s' of '%s' is refused", actual,
				     vhd_path(s->child));
			s->failure = e;
			return rc;
		}
	}
	rc = check_cycle(s, real, &e);
	if (rc < 0) {
		s->failure = e;
		return rc;
	}
	/* Open the resolved path, the one the confinement check saw. */
	rc = open_level(s->options->cache, real, &vhd, &shared, &e);
	if (rc < 0) {
		int code = e.code;

		error_prefix(&e, "cannot open parent '%s' of '%s'", actual, vhd_path(s->child));
		note(s, "'%s' (%s)", actual, code == EINVAL ? "damaged" : strerror(code));
		record_failure(s, 3, &e);
		return 0;
	}
	if (memcmp(vhd_footer(vhd)->uuid, s->want_uuid, 16) != 0) {
		vhd_uuid_format(s->want_uuid, want);
		vhd_uuid_format(vhd_footer(vhd)->uuid, have);
		error_set(&e, EINVAL,
			  "parent '%s' of '%s' does not match: its UUID is %s, the child "
			  "expects %s",
			  actual, vhd_path(s->child), have, want);
		note(s, "'%s' (UUID %s)", actual, have);
		record_failure(s, 2, &e);
		if (!shared)
			vhd_close(vhd);
		return 0;
	}
	s->found = vhd;
	s->found_shared = shared;
	snprintf(s->found_how, sizeof(s->found_how), "%s", how);
	return 1;
}

/* A path as a locator or the parent name gives it: try where it can lead. */
static int try_named(struct search *s, const char *name, const char *what)
{
	char path[PATH_MAX], how[HOW_MAX];
	int rc;

	if (pathmap_is_windows_absolute(name) || name[0] == '/') {
		if (name[0] == '/') {
			snprintf(how, sizeof(how), "%s '%s'", what, name);
			rc = try_candidate(s, name, how);
			if (rc != 0)
				return rc;
		} else if (pathmap_to_linux(s->options->pathmap, name, path, sizeof(path)) == 0) {
			snprintf(how, sizeof(how), "%s '%s' through the path map", what, name);
			rc = try_candidate(s, path, how);
			if (rc != 0)
				return rc;
		} else if (!already_tried(s, name)) {
			note(s, "'%s' (no path map entry)", name);
		}
		/* The same file name next to the child. */
		if (*pathmap_basename(name) &&
		    snprintf(path, sizeof(path), "%s/%s", s->child_dir, pathmap_basename(name)) <
			    (int)sizeof(path)) {
			snprintf(how, sizeof(how), "file name of %s '%s'", what, name);
			return try_candidate(s, path, how);
		}
		return 0;
	}
	if (pathmap_join_relative(s->child_dir, name, path, sizeof(path)) < 0)
		return 0;
	snprintf(how, sizeof(how), "%s '%s'", what, name);
	return try_candidate(s, path, how);
}

static bool is_relative_code(uint32_t code)
{
	return code == VHD_PLATFORM_W2RU || code == VHD_PLATFORM_WI2R;
}

static bool is_absolute_code(uint32_t code)
{
	return code == VHD_PLATFORM_W2KU || code == VHD_PLATFORM_WI2K ||
	       code == VHD_PLATFORM_MACX;
}

static int try_locators(struct search *s, bool relative)
{
	const struct vhd_header *h = vhd_header(s->child);

	for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
		char path[PATH_MAX], what[64], code[5];
		struct error e;
		int rc;

		if (relative ? !is_relative_code(h->locators[i].code)
			     : !is_absolute_code(h->locators[i].code))
			continue;
		error_clear(&e);
		if (vhd_locator_path(s->child, i, path, sizeof(path), &e) < 0) {
			note(s, "locator %d unreadable (%s)", i, error_message(&e));
			continue;
		}
		snprintf(what, sizeof(what), "%s locator %s",
			 relative ? "relative" : "absolute",
			 vhd_platform_name(h->locators[i].code, code));
		rc = try_named(s, path, what);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Does the file @path end with (or start with) a VHD footer naming @uuid? */
static bool footer_names(const char *path, const uint8_t *uuid)
{
	uint8_t raw[VHD_FOOTER_SIZE];
	struct vhd_footer f;
	struct stat st;
	int fd = fsutil_open_source(path, false);
	bool match = false;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= VHD_FOOTER_SIZE &&
	    fsutil_pread_full(fd, raw, sizeof(raw), (uint64_t)st.st_size - VHD_FOOTER_SIZE) == 0) {
		vhd_footer_decode(raw, &f);
		match = memcmp(f.cookie, "conectix", 8) == 0 && memcmp(f.uuid, uuid, 16) == 0;
	}
	close(fd);
	return match;
}

/* Last resort: a file in the child's folder whose footer carries the UUID.
 * Names are visited in sorted order so the result does not depend on readdir. */
static int scan_folder(struct search *s)
{
	char **names = NULL, how[HOW_MAX];
	size_t count = 0;
	int rc = fsutil_list_names(s->child_dir, NULL, &names, &count);

	if (rc < 0) {
		note(s, "folder '%s' unreadable", s->child_dir);
		return 0;
	}
	snprintf(how, sizeof(how), "UUID scan of '%s'", s->child_dir);
	for (size_t i = 0; i < count && rc == 0; i++) {
		char path[PATH_MAX];

		if (snprintf(path, sizeof(path), "%s/%s", s->child_dir, names[i]) >=
		    (int)sizeof(path))
			continue;
		if (footer_names(path, s->want_uuid))
			rc = try_candidate(s, path, how);
	}
	if (rc == 0)
		note(s, "no VHD in '%s' has that UUID", s->child_dir);
	fsutil_names_free(names, count);
	return rc;
}

static int find_parent(struct chain *c, const struct chain_options *options, struct vhd *child,
		       struct error *err)
{
	struct search *s = calloc(1, sizeof(*s));
	const struct vhd_header *h = vhd_header(child);
	char name[PATH_MAX], uuid[37];
	int rc;

	if (!s)
		return error_set(err, ENOMEM, "out of memory");
	s->chain = c;
	s->options = options;
	s->child = child;
	s->want_uuid = h->parent_uuid;
	error_clear(&s->failure);
	/* Parents are opened by their real paths: their folders are real already. */
	if (child != c->levels[0].vhd)
		rc = fsutil_dirname(vhd_path(child), s->child_dir, sizeof(s->child_dir));
	else
		rc = fsutil_real_dirname(vhd_path(child), s->child_dir);
	if (rc < 0) {
		rc = error_errno(err, -rc, "cannot resolve the folder of", vhd_path(child));
		goto out;
	}
	rc = try_locators(s, true);
	if (rc == 0)
		rc = try_locators(s, false);
	if (rc == 0) {
		struct error e;

		error_clear(&e);
		if (vhd_parent_name(child, name, sizeof(name), &e) < 0)
			note(s, "parent name unreadable (%s)", error_message(&e));
		else if (name[0])
			rc = try_named(s, name, "parent name");
	}
	if (rc == 0)
		rc = scan_folder(s);
	if (rc < 0) {
		if (err)
			*err = s->failure;
		goto out;
	}
	if (rc == 0) {
		vhd_uuid_format(h->parent_uuid, uuid);
		if (s->worst_rank > 1) {
			if (err)
				*err = s->failure;
			rc = -s->failure.code;
		} else {
			rc = error_set(err, ENOENT,
				       "cannot find the parent of '%s' (UUID %s): tried %s",
				       vhd_path(child), uuid, s->summary[0] ? s->summary : "nothing");
		}
		goto out;
	}
	{
		struct chain_level *level = &c->levels[c->depth++];
		struct timespec mtime = vhd_file_mtime(s->found);
		uint32_t expected = h->parent_timestamp;

		level->vhd = s->found;
		level->shared = s->found_shared;
		snprintf(level->how, sizeof(level->how), "%s", s->found_how);
		if (vhd_time_from_unix(mtime.tv_sec) != expected) {
			char was[40], want[40];

			add_warning(c,
				    "parent '%s' of '%s' was modified at %s, not at %s as the "
				    "child records (restored from a backup, or written to)",
				    vhd_path(s->found), vhd_path(child),
				    vhd_format_utc(mtime.tv_sec, was, sizeof(was)),
				    vhd_format_utc(vhd_time_to_unix(expected), want, sizeof(want)));
		}
		if (vhd_size(s->found) != vhd_size(child))
			add_warning(c, "parent '%s' is %llu bytes, its child '%s' %llu bytes",
				    vhd_path(s->found), (unsigned long long)vhd_size(s->found),
				    vhd_path(child), (unsigned long long)vhd_size(child));
	}
	rc = 0;
out:
	free(s);
	return rc;
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
	rc = open_level(options->cache, path, &c->levels[0].vhd, &c->levels[0].shared, err);
	if (rc < 0)
		goto fail;
	c->depth = 1;
	while (vhd_disk_type(c->levels[c->depth - 1].vhd) == VHD_TYPE_DIFFERENCING) {
		if (c->depth >= max_depth) {
			rc = error_set(err, ELOOP,
				       "the chain of '%s' is deeper than %u levels (a loop or a "
				       "damaged chain)",
				       path, max_depth);
			goto fail;
		}
		rc = find_parent(c, options, c->levels[c->depth - 1].vhd, err);
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

/* Fill @count sectors at @sector from level @level and, where it defers, below. */
static int read_level(struct chain *c, unsigned level, uint8_t *buf, uint64_t sector,
		      uint64_t count, struct error *err)
{
	struct vhd *vhd = c->levels[level].vhd;
	uint64_t total = vhd_size(vhd) / VHD_SECTOR_SIZE;

	while (count) {
		struct vhd_extent ext;
		size_t bytes;
		int rc;

		if (sector >= total) {
			/* Past the end of a smaller parent: zeros. */
			memset(buf, 0, (size_t)count * VHD_SECTOR_SIZE);
			return 0;
		}
		rc = vhd_map(vhd, sector, count, &ext, err);
		if (rc < 0)
			return rc;
		bytes = (size_t)ext.sectors * VHD_SECTOR_SIZE;
		switch (ext.kind) {
		case VHD_EXTENT_DATA:
			rc = vhd_pread(vhd, buf, bytes, ext.file_offset, err);
			break;
		case VHD_EXTENT_PARENT:
			if (level + 1 < c->depth) {
				rc = read_level(c, level + 1, buf, sector, ext.sectors, err);
				break;
			}
			/* No parent: cannot happen in an open chain. */
			memset(buf, 0, bytes);
			break;
		case VHD_EXTENT_ZERO:
			memset(buf, 0, bytes);
			break;
		}
		if (rc < 0)
			return rc;
		buf += bytes;
		sector += ext.sectors;
		count -= ext.sectors;
	}
	return 0;
}

int chain_read(struct chain *c, void *buf, size_t len, uint64_t offset, struct error *err)
{
	uint64_t size = chain_size(c);
	uint8_t *out = buf;
	uint8_t sector[VHD_SECTOR_SIZE];
	int rc;

	if (offset > size || len > size - offset)
		return error_set(err, EINVAL, "read of %zu bytes at %llu is outside '%s'", len,
				 (unsigned long long)offset, vhd_path(c->levels[0].vhd));
	/* A partial first sector. */
	if (len && offset % VHD_SECTOR_SIZE) {
		size_t skip = offset % VHD_SECTOR_SIZE;
		size_t n = VHD_SECTOR_SIZE - skip < len ? VHD_SECTOR_SIZE - skip : len;

		rc = read_level(c, 0, sector, offset / VHD_SECTOR_SIZE, 1, err);
		if (rc < 0)
			return rc;
		memcpy(out, sector + skip, n);
		out += n;
		offset += n;
		len -= n;
	}
	if (len >= VHD_SECTOR_SIZE) {
		size_t whole = len / VHD_SECTOR_SIZE * VHD_SECTOR_SIZE;

		rc = read_level(c, 0, out, offset / VHD_SECTOR_SIZE, whole / VHD_SECTOR_SIZE, err);
		if (rc < 0)
			return rc;
		out += whole;
		offset += whole;
		len -= whole;
	}
	/* A partial last sector. */
	if (len) {
		rc = read_level(c, 0, sector, offset / VHD_SECTOR_SIZE, 1, err);
		if (rc < 0)
			return rc;
		memcpy(out, sector, len);
	}
	return 0;
}

/* ---- allocation ---- */

/* Whether the block of level @vhd holding byte @offset is allocated. */
static bool level_allocated_at(struct vhd *vhd, uint64_t offset)
{
	uint32_t bs;

	if (vhd_disk_type(vhd) == VHD_TYPE_FIXED)
		return offset < vhd_size(vhd);
	bs = vhd_block_size(vhd);
	if (offset >= (uint64_t)vhd_block_count(vhd) * bs)
		return false;
	return vhd_block_offset(vhd, (uint32_t)(offset / bs)) >= 0;
}

bool chain_range_allocated(const struct chain *c, uint64_t offset, uint64_t len)
{
	if (len == 0)
		return false;
	for (unsigned i = 0; i < c->depth; i++) {
		struct vhd *vhd = c->levels[i].vhd;
		uint64_t first, last;
		uint32_t bs;

		if (vhd_disk_type(vhd) == VHD_TYPE_FIXED) {
			if (offset < vhd_size(vhd))
				return true;
			continue;
		}
		bs = vhd_block_size(vhd);
		first = offset / bs;
		last = (offset + len - 1) / bs;
		if (last >= vhd_block_count(vhd))
			last = (uint64_t)vhd_block_count(vhd) - 1;
		for (uint64_t b = first; b <= last && b < vhd_block_count(vhd); b++)
			if (vhd_block_offset(vhd, (uint32_t)b) >= 0)
				return true;
	}
	return false;
}

/* Levels whose next changes chain_extent keeps on the stack; deeper chains
 * take an allocation. */
#define CHAIN_MAX_LEVELS_ON_STACK 32

/* Where the allocation state of level @vhd next changes after @offset (at a
 * block boundary), skipping runs of blocks in the same state; @size when it
 * never changes again. */
static uint64_t level_next_change(struct vhd *vhd, uint64_t offset, uint64_t size)
{
	uint64_t b, count, bs;
	bool state;

	if (vhd_disk_type(vhd) == VHD_TYPE_FIXED)
		return offset < vhd_size(vhd) ? vhd_size(vhd) : size;
	bs = vhd_block_size(vhd);
	count = vhd_block_count(vhd);
	b = offset / bs;
	if (b >= count)
		return size; /* past this level's end: unallocated from here on */
	state = vhd_block_offset(vhd, (uint32_t)b) >= 0;
	while (++b < count && (vhd_block_offset(vhd, (uint32_t)b) >= 0) == state)
		;
	if (b >= count && !state)
		return size;
	return b * bs;
}

void chain_extent(const struct chain *c, uint64_t offset, bool *allocated, uint64_t *end)
{
	uint64_t size = chain_size(c), pos = offset, changes[CHAIN_MAX_LEVELS_ON_STACK];
	uint64_t *change = c->depth <= CHAIN_MAX_LEVELS_ON_STACK ? changes
								  : calloc(c->depth, sizeof(*change));
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
		state |= level_allocated_at(c->levels[i].vhd, pos);
		change[i] = level_next_change(c->levels[i].vhd, pos, size);
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
				change[i] = level_next_change(c->levels[i].vhd, pos, size);
			here |= level_allocated_at(c->levels[i].vhd, pos);
		}
		if (here != state)
			break;
	}
	*allocated = state;
	*end = pos < size ? pos : size;
	if (change != changes)
		free(change);
}
