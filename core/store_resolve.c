/*
 * store_resolve.c - where the files a store's configurations name are: the
 * resolution of a written path (as written, through the path map, next to
 * the configuration, in each root's "Virtual Hard Disks"), confined to the
 * store (store_inside()), and the chains of the disks so found.
 */
#include "store.h"

#include "chain.h"
#include "config.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "pathmap.h"
#include "store_internal.h"
#include "vhd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int allow_parent(void *ctx, const char *real_path, struct error *err)
{
	const struct store *s = ctx;

	if (s->allow_outside || store_inside(s, real_path))
		return 0;
	return error_set(err, EACCES, "'%s' lies outside the store and its path map", real_path);
}

char *store_written_path(const struct store *s, const char *path)
{
	char windows[PATH_MAX];

	if (pathmap_to_windows(s->pathmap, path, windows, sizeof(windows)) == 0)
		return strdup(windows);
	return strdup(path);
}

struct resolution {
	char tried[1024];
	bool outside;
};

/* Note a place tried: "'@where'", with " (@why)" when given. */
static void tried(struct resolution *r, const char *where, const char *why)
{
	size_t n = strlen(r->tried);

	snprintf(r->tried + n, sizeof(r->tried) - n, "%s'%s'%s%s%s", n ? "; " : "", where,
		 why ? " (" : "", why ? why : "", why ? ")" : "");
}

/* Try @candidate: 1 found (*@path set), 0 not there. */
static int try_disk(struct store *s, struct resolution *r, const char *candidate, char **path)
{
	char found[PATH_MAX], real[PATH_MAX];

	if (pathmap_find_case_insensitive(candidate, found, sizeof(found)) < 0 ||
	    !realpath(found, real)) {
		tried(r, candidate, NULL);
		return 0;
	}
	if (!s->allow_outside && !store_inside(s, real)) {
		tried(r, real, "outside the store");
		r->outside = true;
		return 0;
	}
	*path = strdup(real);
	return *path ? 1 : -ENOMEM;
}

/* store_resolve(); *@by_name: an absolute @written was found by its name alone. */
static int resolve(struct store *s, const char *config_path, const char *written, char **path,
		   char **how, bool *by_name, struct error *err)
{
	struct resolution r = {{0}, false};
	const char *name = pathmap_basename(written);
	char candidate[PATH_MAX], dir[PATH_MAX];
	int rc = 0;

	*path = NULL;
	*how = NULL;
	if (!*written)
		return error_set(err, ENOENT, "no path");
	if (written[0] == '/') {
		rc = try_disk(s, &r, written, path);
		if (rc)
			*how = strdup("as written");
	} else if (pathmap_is_windows_absolute(written)) {
		if (pathmap_to_linux(s->pathmap, written, candidate, sizeof(candidate)) == 0) {
			rc = try_disk(s, &r, candidate, path);
			if (rc)
				*how = strdup("through the path map");
		} else {
			tried(&r, written, "no path map entry");
		}
	}
	if (rc == 0 && *name && fsutil_dirname(config_path, dir, sizeof(dir)) == 0 &&
	    snprintf(candidate, sizeof(candidate), "%s/%s", dir, name) < (int)sizeof(candidate)) {
		rc = try_disk(s, &r, candidate, path);
		if (rc)
			*how = strdup("next to the configuration");
	}
	for (size_t i = 0; rc == 0 && *name && i < s->root_count; i++) {
		if (snprintf(candidate, sizeof(candidate), "%s/%s/%s", s->roots[i],
			     HYPERV_DISKS_DIR, name) >= (int)sizeof(candidate))
			continue;
		rc = try_disk(s, &r, candidate, path);
		if (rc)
			*how = strdup("in " HYPERV_DISKS_DIR);
	}
	if (rc < 0 || (rc == 1 && !*how)) {
		free(*path);
		*path = NULL;
		return error_set(err, ENOMEM, "out of memory");
	}
	/* Not where an absolute path says, but by its name: a relative path (an export
	 * folder's) is the folder's own. */
	*by_name = rc == 1 && (written[0] == '/' || pathmap_is_windows_absolute(written)) &&
		   strcmp(*how, "as written") != 0 && strcmp(*how, "through the path map") != 0;
	if (rc == 1)
		return 0;
	if (r.outside)
		return error_set(
			err, EACCES,
			"disk '%s' of '%s' lies outside the store and its path map: tried %s",
			written, config_path, r.tried);
	return error_set(err, ENOENT, "cannot find disk '%s' of '%s': tried %s", written,
			 config_path, r.tried);
}

int store_resolve(struct store *s, const char *config_path, const char *written, char **path,
		  char **how, struct error *err)
{
	bool by_name = false;

	return resolve(s, config_path, written, path, how, &by_name, err);
}

/* The chain of @disk under the store's path map and confinement; @real: its path is real. */
static int open_chain(struct store *s, const struct store_disk *disk, struct chain_cache *cache,
		      bool partial, bool real, struct chain **chain, struct error *err)
{
	struct chain_options o = {
		.pathmap = s->pathmap,
		.allow = allow_parent,
		.allow_ctx = s,
		.cache = cache,
		.partial = partial,
		.real = real,
	};

	*chain = NULL;
	if (!disk->path)
		return error_set(err, ENOENT, "%s", disk->problem ? disk->problem : "no disk");
	return chain_open(chain, disk->path, &o, err);
}

int store_open_chain(struct store *s, const struct store_disk *disk, struct chain **chain,
		     struct error *err)
{
	return open_chain(s, disk, NULL, false, false, chain, err);
}

int store_open_chain_cached(struct store *s, const struct store_disk *disk,
			    struct chain_cache *cache, struct chain **chain, struct error *err)
{
	return open_chain(s, disk, cache, false, true, chain, err);
}

int store_open_chain_partial(struct store *s, const struct store_disk *disk,
			     struct chain_cache *cache, struct chain **chain, struct error *err)
{
	return open_chain(s, disk, cache, true, true, chain, err);
}

/* ---- the disks of a configuration ---- */

void store_disks_free(struct store_disk *disks, size_t count)
{
	if (!disks)
		return;
	for (size_t i = 0; i < count; i++) {
		free(disks[i].key);
		free(disks[i].written);
		free(disks[i].path);
		free(disks[i].how);
		free(disks[i].problem);
	}
	free(disks);
}

/* Whether @path is a differencing disk, by a VHD's footer or a VHDX's metadata: 1, 0 (not,
 * or cannot tell), or a transient -errno. */
static int differencing(const char *path)
{
	uint8_t raw[VHD_FOOTER_SIZE];
	struct vhd_footer footer;
	enum disk_format format;
	struct stat st;
	int fd, rc = disk_probe(path, &format, NULL);

	if (rc == 0 && format == DISK_FORMAT_VHDX) {
		struct disk *disk = NULL;
		struct error e;

		error_clear(&e);
		rc = disk_open(&disk, path, DISK_OPEN_READ, &e);
		if (rc == 0)
			rc = disk_type(disk) == VHD_TYPE_DIFFERENCING;
		disk_close(disk);
		return rc < 0 && !error_is_transient(rc) ? 0 : rc;
	}
	fd = fsutil_open_source(path, false);
	rc = 0;
	if (fd < 0)
		return error_is_transient(fd) ? fd : 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size >= VHD_FOOTER_SIZE) {
		rc = fsutil_pread_full(fd, raw, sizeof(raw),
				       (uint64_t)st.st_size - VHD_FOOTER_SIZE);
		if (rc == 0) {
			vhd_footer_decode(raw, &footer);
			rc = memcmp(footer.cookie, "conectix", 8) == 0 &&
			     footer.disk_type == VHD_TYPE_DIFFERENCING;
		} else if (!error_is_transient(rc)) {
			rc = 0;
		}
	}
	close(fd);
	return rc;
}

/*
 * A differencing disk @d found by its name alone is used only if its chain
 * opens (each parent found by its locators, with the UUID it names): else
 * it becomes a problem. Returns 0, or a transient negative errno with a
 * message (whether it matches cannot be told now).
 */
static int check_found_chain(struct store *s, const char *config_path, struct store_disk *d,
			     struct error *err)
{
	struct chain *chain = NULL;
	struct error e;
	int rc = differencing(d->path);

	if (rc < 0)
		return error_errno(err, -rc, "cannot read", d->path);
	if (rc == 0)
		return 0;
	error_clear(&e);
	rc = store_open_chain(s, d, &chain, &e);
	chain_close(chain);
	if (rc == 0)
		return 0;
	if (error_is_transient(e.code))
		return error_set(err, e.code, "%s", error_message(&e));
	d->problem =
		store_format_text("disk '%s' of '%s' is not used: found by its name alone as '%s', "
				  "a differencing disk whose chain does not match: %s",
				  d->written, config_path, d->path, error_message(&e));
	free(d->path);
	free(d->how);
	d->path = d->how = NULL;
	return d->problem ? 0 : error_set(err, ENOMEM, "out of memory");
}

int store_resolve_disks(struct store *s, const struct config *config, struct store_disk **out,
			size_t *count, struct error *err)
{
	struct config_drive *drives = NULL;
	struct store_disk *disks;
	size_t n = 0, k = 0;
	int rc = config_drives(config, &drives, &n, err);

	*out = NULL;
	*count = 0;
	if (rc < 0)
		return rc;
	disks = calloc(n ? n : 1, sizeof(*disks));
	if (!disks) {
		config_drives_free(drives, n);
		return error_set(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		struct store_disk *d;
		struct error e;

		if (strcasecmp(drives[i].type, "VHD") != 0 || !drives[i].pathname[0])
			continue;
		d = &disks[k++];
		d->key = strdup(drives[i].key);
		d->written = strdup(drives[i].pathname);
		d->bus = drives[i].bus;
		d->controller = drives[i].controller;
		d->drive = drives[i].drive;
		error_clear(&e);
		if (resolve(s, config_name(config), drives[i].pathname, &d->path, &d->how,
			    &d->by_name, &e) < 0) {
			d->problem = strdup(error_message(&e));
			d->problem_code = e.code == ENOENT || e.code == EACCES ? e.code : 0;
		} else if (d->by_name) {
			rc = check_found_chain(s, config_name(config), d, err);
		}
		if (rc < 0)
			break;
	}
	config_drives_free(drives, n);
	if (rc < 0) {
		store_disks_free(disks, k);
		return rc;
	}
	*out = disks;
	*count = k;
	return 0;
}
