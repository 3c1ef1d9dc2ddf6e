/*
 * chain_parent.c - finding the parent of a differencing disk (chain.h says
 * in which order): the places the child names, its folder scanned last;
 * each candidate checked for format, sector size and identity, the most
 * telling failure kept for the message.
 */
#include "chain.h"
#include "chain_internal.h"

#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "pathbuf.h"
#include "pathmap.h"
#include "vhd.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The search for one parent: what was tried and the best failure so far.
 * One thread's, for one chain_parent_find. */
struct search {
	struct chain *chain;
	const struct chain_options *options;
	struct disk *child;
	char child_dir[PATH_MAX];
	uint8_t want[2][16]; /* the identities the child accepts (VHDX: parent_linkage, ...2) */
	unsigned want_count;
	char tried[8][PATH_MAX]; /* candidates already looked at (the first few) */
	unsigned tried_count;
	char summary[ERROR_MESSAGE_MAX]; /* "'a' (not found), 'b' (UUID ...)" */
	int worst_rank;			 /* 0 none, 1 not found, 2 mismatch, 3 damaged */
	struct error failure;		 /* message of the most telling failure */
	struct disk *found;
	bool found_shared;
	char *found_how; /* how it was found (allocated), or NULL */
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

/* Keep the most telling failure: a damaged parent says most, then a
 * mismatch, then absence. */
static void record_failure(struct search *s, int rank, const struct error *e)
{
	if (rank > s->worst_rank) {
		s->worst_rank = rank;
		s->failure = *e;
	}
}

/* Whether the file at @path is already a level of the chain. */
static bool in_chain(const struct search *s, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return false;
	for (unsigned i = 0; i < s->chain->depth; i++) {
		dev_t dev;
		ino_t ino;

		disk_file_id(s->chain->levels[i].disk, &dev, &ino);
		if (dev == st.st_dev && ino == st.st_ino)
			return true;
	}
	return false;
}

/* A parent named that is already a level of the chain: a loop. */
static int check_cycle(struct search *s, const char *path, struct error *err)
{
	if (in_chain(s, path))
		return error_set(err, ELOOP,
				 "the chain of '%s' loops: its parent '%s' is already in the chain",
				 disk_path(s->chain->levels[0].disk), path);
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

/* Whether @parent is what the child names: its format, its sectors and its
 * identity. Returns 0, or a negative errno with the mismatch in @e and the
 * summary noted. */
static int check_match(struct search *s, struct disk *parent, const char *actual, struct error *e)
{
	char want[40], have[40];

	if (disk_format(parent) != disk_format(s->child)) {
		note(s, "'%s' (a %s)", actual, disk_format_name(disk_format(parent)));
		return error_set(e, EINVAL,
				 "parent '%s' of '%s' is a %s file, the child a %s one: a chain "
				 "is of one format",
				 actual, disk_path(s->child), disk_format_name(disk_format(parent)),
				 disk_format_name(disk_format(s->child)));
	}
	if (disk_sector_size(parent) != disk_sector_size(s->child)) {
		note(s, "'%s' (%u-byte sectors)", actual, disk_sector_size(parent));
		return error_set(e, EINVAL,
				 "parent '%s' of '%s' has %u-byte logical sectors, the child "
				 "%u-byte ones",
				 actual, disk_path(s->child), disk_sector_size(parent),
				 disk_sector_size(s->child));
	}
	for (unsigned i = 0; i < s->want_count; i++)
		if (memcmp(disk_link_id(parent), s->want[i], 16) == 0)
			return 0;
	disk_id_format(parent, s->want[0], want);
	disk_id_format(parent, disk_link_id(parent), have);
	if (disk_format(parent) == DISK_FORMAT_VHDX) {
		note(s, "'%s' (DataWriteGuid %s)", actual, have);
		return error_set(e, EINVAL,
				 "parent '%s' of '%s' does not match: its DataWriteGuid is %s, "
				 "the child's parent_linkage %s (the parent was written to since)",
				 actual, disk_path(s->child), have, want);
	}
	note(s, "'%s' (UUID %s)", actual, have);
	return error_set(e, EINVAL,
			 "parent '%s' of '%s' does not match: its UUID is %s, the child "
			 "expects %s",
			 actual, disk_path(s->child), have, want);
}

/*
 * Try the file at @path as the parent. Returns 1 if it is the parent (kept in
 * s->found), 0 to go on searching, or a negative errno that ends the search
 * (a cycle, a refused path).
 */
static int try_candidate(struct search *s, const char *path, const char *how)
{
	char actual[PATH_MAX], real[PATH_MAX];
	struct disk *disk = NULL;
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
				     disk_path(s->child));
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
	rc = chain_level_open(s->options->cache, real, &disk, &shared, &e);
	if (rc < 0) {
		int code = e.code;

		error_prefix(&e, "cannot open parent '%s' of '%s'", actual, disk_path(s->child));
		note(s, "'%s' (%s)", actual, code == EINVAL ? "damaged" : strerror(code));
		record_failure(s, 3, &e);
		return 0;
	}
	if (check_match(s, disk, actual, &e) < 0) {
		record_failure(s, 2, &e);
		if (!shared)
			disk_close(disk);
		return 0;
	}
	s->found_how = strdup(how);
	if (!s->found_how) {
		if (!shared)
			disk_close(disk);
		error_set(&s->failure, ENOMEM, "out of memory");
		return -ENOMEM;
	}
	s->found = disk;
	s->found_shared = shared;
	return 1;
}

/* Try @path as the parent, found as @how says (built into @how, which is then reset). */
static int try_described(struct search *s, const char *path, struct pathbuf *how)
{
	int rc;

	if (how->err) {
		pathbuf_release(how);
		error_set(&s->failure, ENOMEM, "out of memory");
		return -ENOMEM;
	}
	rc = try_candidate(s, path, how->buf);
	pathbuf_reset(how);
	return rc;
}

/* A path as a locator or the parent name gives it: try where it can lead. */
static int try_named(struct search *s, const char *name, const char *what)
{
	struct pathbuf how = PATHBUF_INIT;
	char path[PATH_MAX];
	int rc = 0;

	if (pathmap_is_windows_absolute(name) || name[0] == '/') {
		if (name[0] == '/') {
			pathbuf_setf(&how, "%s '%s'", what, name);
			rc = try_described(s, name, &how);
		} else if (pathmap_to_linux(s->options->pathmap, name, path, sizeof(path)) == 0) {
			pathbuf_setf(&how, "%s '%s' through the path map", what, name);
			rc = try_described(s, path, &how);
		} else if (!already_tried(s, name)) {
			note(s, "'%s' (no path map entry)", name);
		}
		/* The same file name next to the child. */
		if (rc == 0 && *pathmap_basename(name) &&
		    snprintf(path, sizeof(path), "%s/%s", s->child_dir, pathmap_basename(name)) <
			    (int)sizeof(path)) {
			pathbuf_setf(&how, "file name of %s '%s'", what, name);
			rc = try_described(s, path, &how);
		}
	} else if (pathmap_join_relative(s->child_dir, name, path, sizeof(path)) == 0) {
		pathbuf_setf(&how, "%s '%s'", what, name);
		rc = try_described(s, path, &how);
	}
	pathbuf_release(&how);
	return rc;
}

/* Every place the child names, in its format's order. */
static int try_hints(struct search *s)
{
	for (unsigned i = 0;; i++) {
		char path[PATH_MAX];
		struct disk_hint hint;
		struct error e;
		int rc;

		error_clear(&e);
		rc = disk_parent_hint(s->child, i, &hint, path, sizeof(path), &e);
		if (rc == -ENOENT)
			return 0;
		if (rc == -ENODATA)
			continue;
		if (rc < 0) {
			note(s, "%s unreadable (%s)", hint.what, error_message(&e));
			continue;
		}
		rc = try_named(s, path, hint.what);
		if (rc != 0)
			return rc;
	}
}

/* Does the file @path look like a disk of @format naming @id: a VHD footer
 * carrying the UUID, or any VHDX file (whose identity only opening it
 * tells)? */
static bool may_be_parent(const char *path, enum disk_format format, const uint8_t *id)
{
	uint8_t raw[VHD_FOOTER_SIZE];
	struct vhd_footer f;
	struct stat st;
	int fd = fsutil_open_source(path, false);
	bool match = false;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return false;
	}
	if (format == DISK_FORMAT_VHDX) {
		match = fsutil_pread_full(fd, raw, 8, 0) == 0 && memcmp(raw, "vhdxfile", 8) == 0;
	} else if (st.st_size >= VHD_FOOTER_SIZE &&
		   fsutil_pread_full(fd, raw, sizeof(raw),
				     (uint64_t)st.st_size - VHD_FOOTER_SIZE) == 0) {
		vhd_footer_decode(raw, &f);
		match = memcmp(f.cookie, "conectix", 8) == 0 && memcmp(f.uuid, id, 16) == 0;
	}
	close(fd);
	return match;
}

/* Last resort: a file in the child's folder with the identity the child
 * names. Names are visited in sorted order so the result does not depend on
 * readdir. */
static int scan_folder(struct search *s)
{
	struct pathbuf how = PATHBUF_INIT;
	char **names = NULL;
	size_t count = 0;
	int rc = fsutil_list_names(s->child_dir, NULL, &names, &count);
	bool vhdx = disk_format(s->child) == DISK_FORMAT_VHDX;

	if (rc < 0) {
		note(s, "folder '%s' unreadable", s->child_dir);
		return 0;
	}
	pathbuf_setf(&how, "%s scan of '%s'", vhdx ? "DataWriteGuid" : "UUID", s->child_dir);
	if (how.err) {
		fsutil_names_free(names, count);
		error_set(&s->failure, ENOMEM, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < count && rc == 0; i++) {
		char path[PATH_MAX];

		if (snprintf(path, sizeof(path), "%s/%s", s->child_dir, names[i]) >=
		    (int)sizeof(path))
			continue;
		/* The chain's own files are no candidates of a scan (a VHDX's
		 * identity is known only once opened). */
		if (!in_chain(s, path) && may_be_parent(path, disk_format(s->child), s->want[0]))
			rc = try_candidate(s, path, how.buf);
	}
	pathbuf_release(&how);
	if (rc == 0)
		note(s, "no %s in '%s' has that %s", disk_format_name(disk_format(s->child)),
		     s->child_dir, vhdx ? "DataWriteGuid" : "UUID");
	fsutil_names_free(names, count);
	return rc;
}

/* What the child requires of its parent. */
static int wanted_links(struct search *s, struct error *err)
{
	for (int which = 0; which < 2; which++) {
		int rc = disk_parent_link(s->child, which, s->want[s->want_count], err);

		if (rc == 0)
			s->want_count++;
		else if (rc != -ENOENT)
			return rc;
	}
	if (s->want_count == 0)
		return error_set(err, EINVAL, "differencing disk '%s' names no parent",
				 disk_path(s->child));
	return 0;
}

/* Warnings on a parent found: VHD's timestamp, any format's size. */
static void check_found(struct chain *c, struct disk *child, struct disk *found)
{
	struct vhd *vhd = disk_vhd(child);

	if (vhd) {
		struct timespec mtime = disk_file_mtime(found);
		uint32_t expected = vhd_header(vhd)->parent_timestamp;

		if (vhd_time_from_unix(mtime.tv_sec) != expected) {
			char was[40], want[40];

			chain_add_warning(
				c,
				"parent '%s' of '%s' was modified at %s, not at %s as the "
				"child records (restored from a backup, or written to)",
				disk_path(found), disk_path(child),
				vhd_format_utc(mtime.tv_sec, was, sizeof(was)),
				vhd_format_utc(vhd_time_to_unix(expected), want, sizeof(want)));
		}
	}
	if (disk_size(found) != disk_size(child))
		chain_add_warning(c, "parent '%s' is %llu bytes, its child '%s' %llu bytes",
				  disk_path(found), (unsigned long long)disk_size(found),
				  disk_path(child), (unsigned long long)disk_size(child));
}

/* Add @found (the cache's if @shared), found as @how says (taken), as the next level of @c. */
static void add_level(struct chain *c, struct disk *child, struct disk *found, bool shared,
		      char *how)
{
	struct chain_level *level = &c->levels[c->depth++];

	level->disk = found;
	level->shared = shared;
	level->how = how;
	check_found(c, child, found);
}

/* The parent of @child that @cache found before (1), with the checks of a search done then;
 * 0 if it found none; a negative errno if that parent is in @c already, or out of memory. */
static int parent_found_before(struct chain *c, struct chain_cache *cache, struct disk *child,
			       struct error *err)
{
	struct disk *parent;
	const char *how;
	char *copy;
	dev_t dev, level_dev;
	ino_t ino, level_ino;

	if (!chain_cache_parent(cache, child, &parent, &how))
		return 0;
	disk_file_id(parent, &dev, &ino);
	for (unsigned i = 0; i < c->depth; i++) {
		disk_file_id(c->levels[i].disk, &level_dev, &level_ino);
		if (level_dev == dev && level_ino == ino)
			return error_set(err, ELOOP,
					 "the chain of '%s' loops: its parent '%s' is already in "
					 "the chain",
					 disk_path(c->levels[0].disk), disk_path(parent));
	}
	copy = strdup(how);
	if (!copy)
		return error_set(err, ENOMEM, "out of memory");
	add_level(c, child, parent, true, copy);
	return 1;
}

int chain_parent_find(struct chain *c, const struct chain_options *options, struct disk *child,
		      struct error *err)
{
	struct search *s;
	char id[40];
	int rc = parent_found_before(c, options->cache, child, err);

	if (rc != 0)
		return rc < 0 ? rc : 0;
	s = calloc(1, sizeof(*s));
	if (!s)
		return error_set(err, ENOMEM, "out of memory");
	s->chain = c;
	s->options = options;
	s->child = child;
	error_clear(&s->failure);
	rc = wanted_links(s, err);
	if (rc < 0)
		goto out;
	/* Parents are opened by their real paths: their folders are real already. */
	if (child != c->levels[0].disk || options->real)
		rc = fsutil_dirname(disk_path(child), s->child_dir, sizeof(s->child_dir));
	else
		rc = fsutil_real_dirname(disk_path(child), s->child_dir);
	if (rc < 0) {
		rc = error_errno(err, -rc, "cannot resolve the folder of", disk_path(child));
		goto out;
	}
	rc = try_hints(s);
	if (rc == 0)
		rc = scan_folder(s);
	if (rc < 0) {
		if (err)
			*err = s->failure;
		goto out;
	}
	if (rc == 0) {
		disk_id_format(child, s->want[0], id);
		if (s->worst_rank > 1) {
			if (err)
				*err = s->failure;
			rc = -s->failure.code;
		} else {
			rc = error_set(
				err, ENOENT, "cannot find the parent of '%s' (%s %s): tried %s",
				disk_path(child),
				disk_format(child) == DISK_FORMAT_VHDX ? "parent_linkage" : "UUID",
				id, s->summary[0] ? s->summary : "nothing");
		}
		goto out;
	}
	if (s->found_shared)
		chain_cache_note_parent(options->cache, child, s->found, s->found_how);
	add_level(c, child, s->found, s->found_shared, s->found_how);
	s->found_how = NULL;
	rc = 0;
out:
	free(s->found_how);
	free(s);
	return rc;
}
