#include "store.h"

#include "chain.h"
#include "config.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "pathmap.h"
#include "record.h"
#include "utf16.h"
#include "vhd.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <wctype.h>

#define VMS_DIR	      "Virtual Machines"
#define SNAPSHOTS_DIR "Snapshots"
#define DISKS_DIR     "Virtual Hard Disks"
#define SWITCHES_FILE "switches.txt"
#define LOCK_FILE     ".impexfs.lock"

struct store {
	char **roots; /* real paths */
	size_t root_count;
	/* Real paths of the roots, the path map's targets, the extra and the recorded folders:
	 * only added to. Protected by allowed_lock (chains open on any thread). */
	char **allowed;
	size_t allowed_count, allowed_cap;
	pthread_mutex_t allowed_lock;
	const struct pathmap *pathmap;
	bool allow_outside;
	bool recorded; /* the roots' records are read */
	char *notice;  /* a record left aside, or NULL */
};

void store_free(struct store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->root_count; i++)
		free(s->roots[i]);
	for (size_t i = 0; i < s->allowed_count; i++)
		free(s->allowed[i]);
	free(s->roots);
	free(s->allowed);
	free(s->notice);
	pthread_mutex_destroy(&s->allowed_lock);
	free(s);
}

const char *store_notice(const struct store *s)
{
	return s->notice;
}

/* Add the real path @real (a new string, taken) to the allowed folders, once. */
static int allow_folder(struct store *s, char *real)
{
	int rc = 0;

	pthread_mutex_lock(&s->allowed_lock);
	for (size_t i = 0; i < s->allowed_count && real; i++)
		if (strcmp(s->allowed[i], real) == 0) {
			free(real);
			real = NULL;
		}
	if (real && s->allowed_count == s->allowed_cap) {
		size_t cap = s->allowed_cap ? s->allowed_cap * 2 : 8;
		char **grown = realloc(s->allowed, cap * sizeof(*grown));

		if (grown) {
			s->allowed = grown;
			s->allowed_cap = cap;
		}
	}
	if (real && s->allowed_count < s->allowed_cap)
		s->allowed[s->allowed_count++] = real;
	else if (real)
		rc = -ENOMEM;
	pthread_mutex_unlock(&s->allowed_lock);
	if (rc < 0)
		free(real);
	return rc;
}

/*
 * Read the record of every root (core/record.h) and allow the folders it
 * lists that exist. What cannot be trusted or read goes into the notice
 * (with @note), and its folders stay outside the store. Returns 0 or
 * -ENOMEM.
 */
static int read_records(struct store *s, bool note)
{
	for (size_t r = 0; r < s->root_count; r++) {
		char **folders = NULL;
		size_t count = 0;
		struct error err;
		int rootfd = open(s->roots[r], O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

		error_clear(&err);
		rc = rootfd < 0 ? error_errno(&err, errno, "cannot open", s->roots[r])
				: record_read(rootfd, s->roots[r], &folders, &count, &err);
		if (rootfd >= 0)
			close(rootfd);
		if (rc == -ENOMEM)
			return rc;
		/* A user who may not read root's record just does without it. */
		if (rc < 0 && rc != -EACCES && note && !s->notice)
			s->notice = strdup(error_message(&err));
		for (size_t i = 0; rc == 0 && i < count; i++) {
			char *real = realpath(folders[i], NULL);

			if (real)
				rc = allow_folder(s, real);
		}
		record_free(folders, count);
		if (rc == -ENOMEM)
			return rc;
	}
	return 0;
}

const struct pathmap *store_pathmap(const struct store *s)
{
	return s->pathmap;
}

const char *store_root(const struct store *s, size_t i)
{
	return i < s->root_count ? s->roots[i] : NULL;
}

int store_open(struct store **out, const struct store_options *o, struct error *err)
{
	size_t maps = pathmap_count(o->pathmap);
	struct store *s;

	*out = NULL;
	if (o->root_count == 0)
		return error_set(err, EINVAL, "a store needs at least one data root");
	s = calloc(1, sizeof(*s));
	if (!s)
		return error_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&s->allowed_lock, NULL);
	s->roots = calloc(o->root_count, sizeof(*s->roots));
	s->allowed_cap = o->root_count + maps + o->extra_count;
	s->allowed = calloc(s->allowed_cap, sizeof(*s->allowed));
	if (!s->roots || !s->allowed) {
		store_free(s);
		return error_set(err, ENOMEM, "out of memory");
	}
	s->pathmap = o->pathmap;
	s->allow_outside = o->allow_outside;
	s->recorded = o->recorded;
	for (size_t i = 0; i < o->root_count; i++) {
		struct stat st;
		char *real = realpath(o->roots[i], NULL);

		if (!real || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
			int rc = real ? ENOTDIR : errno;

			free(real);
			store_free(s);
			return error_set(err, rc, "cannot use '%s' as a store: %s", o->roots[i],
					 strerror(rc));
		}
		s->roots[s->root_count++] = real;
		s->allowed[s->allowed_count++] = strdup(real);
	}
	for (size_t i = 0; i < maps; i++) {
		char *real = realpath(pathmap_target(o->pathmap, i), NULL);

		if (real)
			s->allowed[s->allowed_count++] = real;
	}
	for (size_t i = 0; i < o->extra_count; i++) {
		char *real = realpath(o->extra[i], NULL);

		if (real)
			s->allowed[s->allowed_count++] = real;
	}
	if (s->recorded && read_records(s, true) < 0) {
		store_free(s);
		return error_set(err, ENOMEM, "out of memory");
	}
	*out = s;
	return 0;
}

int store_check_root(const char *root, struct error *err)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s", root, VMS_DIR) >= (int)sizeof(path))
		return error_set(err, ENAMETOOLONG, "the path '%s' is too long", root);
	rc = stat(path, &st) < 0 ? -errno : 0;
	if (rc < 0 && rc != -ENOENT && rc != -ENOTDIR)
		return error_errno(err, -rc, "cannot look into", root);
	if (rc < 0)
		return error_set(err, ENOENT, "'%s' is not a Hyper-V store: no '" VMS_DIR "' folder",
				 root);
	if (!S_ISDIR(st.st_mode))
		return error_set(err, ENOTDIR,
				 "'%s' is not a Hyper-V store: its '" VMS_DIR "' is not a folder",
				 root);
	return 0;
}

int store_check(const struct store *s, struct error *err)
{
	return store_check_root(s->roots[0], err);
}

void store_new_guid(char out[37], bool upper)
{
	uuid_t uuid;

	uuid_generate_random(uuid);
	if (upper)
		uuid_unparse_upper(uuid, out);
	else
		uuid_unparse_lower(uuid, out);
}

int store_check_name(const char *name, const char *what, struct error *err)
{
	size_t n = strlen(name);

	if (n == 0 || n > 200)
		return error_set(err, EINVAL, "a %s name must have 1 to 200 bytes", what);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return error_set(err, EINVAL,
					 "a %s name cannot hold control characters (byte 0x%02x)",
					 what, *p);
	{
		/* Configurations hold text: the name must be valid UTF-8. */
		uint8_t wide[400];
		size_t len;

		if (utf16_encode(name, UTF16_LE, wide, sizeof(wide), &len, NULL) < 0)
			return error_set(err, EINVAL, "a %s name must be valid UTF-8", what);
		/* U+FFFE and U+FFFF are not characters XML allows. */
		if (strstr(name, "\xEF\xBF\xBE") || strstr(name, "\xEF\xBF\xBF"))
			return error_set(err, EINVAL, "a %s name cannot hold U+FFFE or U+FFFF",
					 what);
	}
	return 0;
}

int store_lock(struct store *s, struct error *err)
{
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", s->roots[0], LOCK_FILE) >= (int)sizeof(path))
		return error_set(err, ENAMETOOLONG, "the store's path is too long");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return error_errno(err, errno, "cannot lock the store with", path);
	if (flock(fd, LOCK_EX) < 0) {
		int rc = error_errno(err, errno, "cannot lock the store with", path);

		close(fd);
		return rc;
	}
	return fd;
}

void store_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int store_init(const char *root, struct error *err)
{
	static const char *const dirs[] = {"", VMS_DIR, SNAPSHOTS_DIR, DISKS_DIR};
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", root, dirs[i]) >= (int)sizeof(path))
			return error_set(err, ENAMETOOLONG, "the path '%s' is too long", root);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return error_errno(err, errno, "cannot create", path);
	}
	snprintf(path, sizeof(path), "%s/%s", root, LOCK_FILE);
	{
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0)
			return error_errno(err, errno, "cannot create", path);
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/%s", root, SWITCHES_FILE);
	if (access(path, F_OK) < 0) {
		static const char header[] =
			"# impexfs virtual switches: GUID, a space, the name\n";
		int rc = fsutil_write_atomic(path, header, sizeof(header) - 1);

		if (rc < 0)
			return error_errno(err, -rc, "cannot create", path);
	}
	return 0;
}

/* ---- confinement and resolution ---- */

static bool under(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Is the real path @real inside the roots, the path map's targets or the recorded folders? */
static bool inside(const struct store *s, const char *real)
{
	struct store *locked = (struct store *)s; /* the lock, not the store, changes */
	bool found = false;

	pthread_mutex_lock(&locked->allowed_lock);
	for (size_t i = 0; i < s->allowed_count && !found; i++)
		found = under(s->allowed[i], real);
	pthread_mutex_unlock(&locked->allowed_lock);
	return found;
}

int store_record_folder(struct store *s, const char *folder, struct error *err)
{
	char real[PATH_MAX];
	char *copy;
	int lock, rootfd, rc;

	if (!realpath(folder, real))
		return error_errno(err, errno, "cannot resolve", folder);
	if (inside(s, real))
		return 0;
	lock = store_lock(s, err);
	if (lock < 0)
		return lock;
	rootfd = open(s->roots[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = rootfd < 0 ? error_errno(err, errno, "cannot open", s->roots[0])
			: record_add(rootfd, s->roots[0], real, err);
	if (rootfd >= 0)
		close(rootfd);
	store_unlock(lock);
	if (rc < 0)
		return error_prefix(err, "cannot record '%s' as a folder of the store", real);
	copy = strdup(real);
	if (!copy || allow_folder(s, copy) < 0)
		return error_set(err, ENOMEM, "out of memory");
	return 0;
}

static int allow_parent(void *ctx, const char *real_path, struct error *err)
{
	const struct store *s = ctx;

	if (s->allow_outside || inside(s, real_path))
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
	if (!s->allow_outside && !inside(s, real)) {
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
		if (snprintf(candidate, sizeof(candidate), "%s/%s/%s", s->roots[i], DISKS_DIR,
			     name) >= (int)sizeof(candidate))
			continue;
		rc = try_disk(s, &r, candidate, path);
		if (rc)
			*how = strdup("in " DISKS_DIR);
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

int store_open_chain(struct store *s, const struct store_disk *disk, struct chain **chain,
		     struct error *err)
{
	return store_open_chain_cached(s, disk, NULL, chain, err);
}

/* The chain of @disk under the store's path map and confinement. */
static int open_chain(struct store *s, const struct store_disk *disk, struct chain_cache *cache,
		      bool partial, struct chain **chain, struct error *err)
{
	struct chain_options o = {
		.pathmap = s->pathmap,
		.allow = allow_parent,
		.allow_ctx = s,
		.cache = cache,
		.partial = partial,
	};

	*chain = NULL;
	if (!disk->path)
		return error_set(err, ENOENT, "%s", disk->problem ? disk->problem : "no disk");
	return chain_open(chain, disk->path, &o, err);
}

int store_open_chain_cached(struct store *s, const struct store_disk *disk,
			    struct chain_cache *cache, struct chain **chain, struct error *err)
{
	return open_chain(s, disk, cache, false, chain, err);
}

int store_open_chain_partial(struct store *s, const struct store_disk *disk,
			     struct chain_cache *cache, struct chain **chain, struct error *err)
{
	return open_chain(s, disk, cache, true, chain, err);
}

/* ---- listing ---- */

/* A new string from a format; NULL on ENOMEM. */
static char *format_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format_text(const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	return text;
}

static void disks_free(struct store_disk *disks, size_t count)
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
	d->problem = format_text("disk '%s' of '%s' is not used: found by its name alone as '%s', "
				 "a differencing disk whose chain does not match: %s",
				 d->written, config_path, d->path, error_message(&e));
	free(d->path);
	free(d->how);
	d->path = d->how = NULL;
	return d->problem ? 0 : error_set(err, ENOMEM, "out of memory");
}

/* The VHD drives of @config, resolved. */
static int resolve_disks(struct store *s, const struct config *config, struct store_disk **out,
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
		disks_free(disks, k);
		return rc;
	}
	*out = disks;
	*count = k;
	return 0;
}

/* The folder @dir/<id> when it holds saved state (a .vsv file), else NULL; a folder
 * there that cannot be read now sets *@fault to the errno (a transient one only). */
static char *saved_state_folder(const struct store *s, const char *dir, const char *id, int *fault)
{
	char folder[PATH_MAX], real[PATH_MAX];
	struct dirent *e;
	DIR *d;
	bool found = false;

	/* Only a folder inside the store: its files are copied and deleted. */
	if (snprintf(folder, sizeof(folder), "%s/%s", dir, id) >= (int)sizeof(folder) ||
	    !realpath(folder, real) || !inside(s, real))
		return NULL;
	d = fsutil_opendir(real);
	if (!d) {
		if (error_is_transient(errno))
			*fault = errno;
		return NULL;
	}
	while ((e = readdir(d)) != NULL && !found) {
		size_t n = strlen(e->d_name);

		found = n > 4 && strcasecmp(e->d_name + n - 4, ".vsv") == 0;
	}
	closedir(d);
	return found ? strdup(real) : NULL;
}

/* May @name be a configuration? "<anything>.xml" in any case (Vagrant's
 * boxes ship "vm.XML"), not hidden: writers' temporary names (".x.tmp-...",
 * rsync's ".x.XXXXXX", "x.xml.tmp-...") are not configurations until they are
 * renamed to their final name. */
static bool is_config_name(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 4 && strcasecmp(name + n - 4, ".xml") == 0;
}

/* Is @name "<GUID>.xml"? Then @id is the GUID in upper case, else "". */
static bool guid_of_name(const char *name, char id[37])
{
	id[0] = '\0';
	if (strlen(name) != 40)
		return false;
	memcpy(id, name, 36);
	id[36] = '\0';
	if (!config_guid_valid(id)) {
		id[0] = '\0';
		return false;
	}
	for (int i = 0; i < 36; i++)
		id[i] = (char)toupper((unsigned char)id[i]);
	return true;
}

/* The names in @dir that may be configurations, sorted; none when @dir does not exist. */
static int list_configs(const char *dir, char ***names, size_t *count)
{
	int rc = fsutil_list_names(dir, is_config_name, names, count);

	return rc == -ENOENT ? 0 : rc;
}

static void snapshot_release(struct store_snapshot *snap)
{
	free(snap->name);
	free(snap->config_path);
	free(snap->parent_id);
	free(snap->saved_state);
	free(snap->problem);
	disks_free(snap->disks, snap->disk_count);
	config_adapters_free(snap->adapters, snap->adapter_count);
}

static void vm_release(struct store_vm *vm)
{
	free(vm->name);
	free(vm->config_path);
	free(vm->current_snapshot_id);
	free(vm->saved_state);
	free(vm->problem);
	disks_free(vm->disks, vm->disk_count);
	config_adapters_free(vm->adapters, vm->adapter_count);
	for (size_t j = 0; j < vm->snapshot_count; j++)
		snapshot_release(&vm->snapshots[j]);
	free(vm->snapshots);
	memset(vm, 0, sizeof(*vm));
}

void store_vms_free(struct store_vm *vms, size_t count)
{
	if (!vms)
		return;
	for (size_t i = 0; i < count; i++)
		vm_release(&vms[i]);
	free(vms);
}

/* The leaf at @path, or a new "" when missing. */
static char *value_or_empty(const struct config *c, const char *path)
{
	char *value = NULL;

	if (config_get(c, path, &value, NULL) < 0)
		value = strdup("");
	return value;
}

/* config_load() of @path, refused when it leads outside the store (a link). */
static int load_confined(const struct store *s, const char *path, struct config **config,
			 struct error *err)
{
	char real[PATH_MAX];

	*config = NULL;
	if (!realpath(path, real))
		return error_errno(err, errno, "cannot resolve", path);
	if (!s->allow_outside && !inside(s, real))
		return error_set(err, EACCES, "'%s' leads to '%s', outside the store", path, real);
	return config_load(config, path, err);
}

const char *store_vm_state_name(enum store_vm_state state)
{
	switch (state) {
	case STORE_VM_OFF:
		return "off";
	case STORE_VM_SAVED:
		return "saved";
	case STORE_VM_RUNNING:
		return "running";
	default:
		return NULL;
	}
}

/*
 * What the VM of @config is doing (docs/FORMAT.md, "State"): running when
 * it was powered on after it was last powered off (properties/
 * last_powered_on_time later than last_powered_off_time) and, if it has
 * saved state (@saved: Hyper-V keeps those files beside a running VM too),
 * its state has not changed since (last_state_change_time); else saved
 * when it has saved state; else off. A time that is missing counts as 0.
 */
static enum store_vm_state vm_state(const struct config *config, bool saved)
{
	int64_t on = 0, off = 0, change = 0;

	if (config_get_int(config, "properties/last_powered_on_time", &on) < 0)
		on = 0;
	if (config_get_int(config, "properties/last_powered_off_time", &off) < 0)
		off = 0;
	if (config_get_int(config, "properties/last_state_change_time", &change) < 0)
		change = 0;
	if (on > off && (!saved || change <= on))
		return STORE_VM_RUNNING;
	return saved ? STORE_VM_SAVED : STORE_VM_OFF;
}

/*
 * Read the configuration @file of @root's "Virtual Machines" into @vm; a
 * problem goes into vm->problem. Its VM is the one its content names
 * (properties/global_id), whatever the file's name. A file that cannot be read
 * is a VM with a problem, its id taken from a "<GUID>.xml" name, else empty
 * and its name the file's: except for a transient fault of a file not named
 * by its GUID, which fails the listing (-errno, with a message) rather than
 * showing a VM that cannot be told apart from the next listing's. Returns 0,
 * -ENOMEM or that fault.
 */
static int load_vm(struct store *s, const char *root, const char *file, struct store_vm *vm,
		   struct error *failure)
{
	struct config *config = NULL;
	struct config_identity id;
	bool named = guid_of_name(file, vm->id);
	struct error err;
	int rc;

	vm->config_path = format_text("%s/%s/%s", root, VMS_DIR, file);
	vm->current_snapshot_id = strdup("");
	if (!vm->config_path || !vm->current_snapshot_id)
		return -ENOMEM;
	error_clear(&err);
	rc = load_confined(s, vm->config_path, &config, &err);
	if (rc == 0)
		rc = config_identity(config, &id, &err);
	if (rc == 0 && id.type_id && id.type_id[0] && strcmp(id.type_id, "Virtual Machines") != 0) {
		rc = error_set(&err, EINVAL,
			       "'%s' is the configuration of a '%s' (properties/type_id), not of a "
			       "VM",
			       vm->config_path, id.type_id);
		config_identity_release(&id);
	}
	if (rc < 0 && !named && error_is_transient(err.code)) {
		config_free(config);
		return error_set(failure, err.code, "%s", err.message);
	}
	if (rc < 0) {
		vm->name = strdup(named ? vm->id : file);
		vm->problem = strdup(error_message(&err));
		vm->problem_code = err.code;
		config_free(config);
		return vm->name && vm->problem ? 0 : -ENOMEM;
	}
	if (!named)
		memcpy(vm->id, id.id, sizeof(vm->id));
	else if (strcasecmp(id.id, vm->id) != 0)
		vm->problem = format_text("'%s' says its VM is %s, not the %s of its file name",
					  vm->config_path, id.id, vm->id);
	vm->name = id.name;
	id.name = NULL;
	vm->generation = id.generation;
	vm->version = id.version;
	vm->creation_time = id.creation_time;
	config_identity_release(&id);
	free(vm->current_snapshot_id);
	vm->current_snapshot_id = value_or_empty(config, STORE_KEY_CURRENT);
	if (config_get_int(config, STORE_KEY_COUNT, &vm->expected_snapshots) < 0)
		vm->expected_snapshots = -1;
	{
		char dir[PATH_MAX];
		int fault = 0;

		snprintf(dir, sizeof(dir), "%s/%s", root, VMS_DIR);
		vm->saved_state = saved_state_folder(s, dir, vm->id, &fault);
		if (fault && !vm->problem) {
			/* Not "no saved state": a VM shown without it would be wrong. */
			vm->problem = format_text("cannot read the saved state of '%s': %s",
						  vm->config_path, strerror(fault));
			vm->problem_code = fault;
		}
	}
	vm->state = vm_state(config, vm->saved_state != NULL);
	rc = resolve_disks(s, config, &vm->disks, &vm->disk_count, &err);
	if (rc == 0)
		rc = config_adapters(config, &vm->adapters, &vm->adapter_count, &err);
	if (rc < 0 && !vm->problem) {
		vm->problem = strdup(error_message(&err));
		vm->problem_code = err.code;
	}
	config_free(config);
	return vm->name && vm->current_snapshot_id ? 0 : -ENOMEM;
}

static struct store_vm *vm_by_id(struct store_vm *vms, size_t count, const char *id)
{
	if (!id[0])
		return NULL;
	for (size_t i = 0; i < count; i++)
		if (strcasecmp(vms[i].id, id) == 0)
			return &vms[i];
	return NULL;
}

/* Read one snapshot configuration and attach it to its VM (its logical_id). */
static int load_snapshot(struct store *s, const char *root, const char *file, struct store_vm *vms,
			 size_t count)
{
	struct store_snapshot snap = {0}, *grown;
	struct config *config = NULL;
	struct config_identity id;
	struct store_vm *vm;
	struct error err;
	char *vm_id = NULL, dir[PATH_MAX];
	int rc;

	snap.config_path = format_text("%s/%s/%s", root, SNAPSHOTS_DIR, file);
	if (!snap.config_path)
		return -ENOMEM;
	error_clear(&err);
	rc = load_confined(s, snap.config_path, &config, &err);
	if (rc == 0)
		rc = config_identity(config, &id, &err);
	if (rc == 0 && config_get(config, STORE_KEY_VM_ID, &vm_id, NULL) < 0)
		rc = error_set(&err, EINVAL, "'%s' does not name its VM (%s)", snap.config_path,
			       STORE_KEY_VM_ID);
	if (rc < 0 && error_is_transient(rc)) {
		/* Whose it is cannot be told now: not an orphan, a listing to try again. */
		config_free(config);
		free(snap.config_path);
		return rc;
	}
	vm = rc == 0 ? vm_by_id(vms, count, vm_id) : NULL;
	if (!vm) {
		/* An orphan, or unreadable: it belongs to no VM that can show it.
		 * Reported on the VM when the file name says which. */
		free(vm_id);
		if (rc == 0)
			config_identity_release(&id);
		config_free(config);
		free(snap.config_path);
		return 0;
	}
	free(vm_id);
	memcpy(snap.id, id.id, 37);
	snap.name = id.name;
	snap.creation_time = id.creation_time;
	snap.creation_ticks = id.creation_ticks;
	id.name = NULL;
	config_identity_release(&id);
	if (config_get(config, STORE_KEY_PARENT, &snap.parent_id, NULL) < 0) {
		snap.parent_id = strdup("");
		snap.parent_inferred = true; /* to be inferred from the chains */
	}
	snprintf(dir, sizeof(dir), "%s/%s", root, SNAPSHOTS_DIR);
	{
		int fault = 0;

		snap.saved_state = saved_state_folder(s, dir, snap.id, &fault);
		if (fault)
			rc = -fault;
	}
	if (rc == 0 && resolve_disks(s, config, &snap.disks, &snap.disk_count, &err) < 0) {
		if (error_is_transient(err.code))
			rc = -err.code;
		snap.problem = strdup(error_message(&err));
	}
	if (rc == 0 && config_adapters(config, &snap.adapters, &snap.adapter_count, &err) < 0)
		rc = -err.code;
	config_free(config);
	if (rc < 0) {
		snapshot_release(&snap);
		return rc;
	}
	grown = realloc(vm->snapshots, (vm->snapshot_count + 1) * sizeof(*grown));
	if (!grown || !snap.parent_id) {
		snapshot_release(&snap);
		return -ENOMEM;
	}
	vm->snapshots = grown;
	vm->snapshots[vm->snapshot_count++] = snap;
	return 0;
}

/* The snapshot of @vm one of whose disks is @path, or NULL. */
static struct store_snapshot *snapshot_with_disk(struct store_vm *vm, const char *path,
						 const struct store_snapshot *except)
{
	for (size_t i = 0; i < vm->snapshot_count; i++) {
		if (&vm->snapshots[i] == except)
			continue;
		for (size_t j = 0; j < vm->snapshots[i].disk_count; j++)
			if (vm->snapshots[i].disks[j].path &&
			    strcmp(vm->snapshots[i].disks[j].path, path) == 0)
				return &vm->snapshots[i];
	}
	return NULL;
}

/* The nearest snapshot whose disk is an ancestor of @disk (not @except), or NULL. */
static struct store_snapshot *nearest_snapshot(struct store *s, struct store_vm *vm,
					       const struct store_disk *disk,
					       const struct store_snapshot *except)
{
	struct store_snapshot *found = NULL;
	struct chain *chain = NULL;
	struct error err;

	if (!disk->path || store_open_chain(s, disk, &chain, &err) < 0)
		return NULL;
	for (unsigned i = 1; i < chain_depth(chain) && !found; i++) {
		char real[PATH_MAX];

		if (realpath(disk_path(chain_level(chain, i)), real))
			found = snapshot_with_disk(vm, real, except);
	}
	chain_close(chain);
	return found;
}

/* Fill the tree where the configurations do not say it (docs/FORMAT.md),
 * then order the snapshots parents first. */
static int complete_tree(struct store *s, struct store_vm *vm)
{
	struct store_snapshot *ordered;
	size_t done = 0;
	bool *placed;

	/* A snapshot that holds one of the VM's current disks was cut short
	 * before the VM moved on to its new disks: it is not a snapshot. */
	for (size_t i = 0; i < vm->snapshot_count;) {
		bool current = false;

		for (size_t k = 0; k < vm->snapshots[i].disk_count; k++)
			for (size_t d = 0; d < vm->disk_count; d++)
				current |= vm->snapshots[i].disks[k].path && vm->disks[d].path &&
					   strcmp(vm->snapshots[i].disks[k].path,
						  vm->disks[d].path) == 0;
		if (!current) {
			i++;
			continue;
		}
		snapshot_release(&vm->snapshots[i]);
		memmove(&vm->snapshots[i], &vm->snapshots[i + 1],
			(vm->snapshot_count - i - 1) * sizeof(*vm->snapshots));
		vm->snapshot_count--;
	}

	for (size_t i = 0; i < vm->snapshot_count; i++) {
		struct store_snapshot *snap = &vm->snapshots[i], *parent;

		if (!snap->parent_inferred || snap->disk_count == 0)
			continue;
		parent = nearest_snapshot(s, vm, &snap->disks[0], snap);
		if (parent) {
			free(snap->parent_id);
			snap->parent_id = strdup(parent->id);
			if (!snap->parent_id)
				return -ENOMEM;
		}
	}
	if (!vm->current_snapshot_id[0] && vm->snapshot_count && vm->disk_count) {
		struct store_snapshot *current = nearest_snapshot(s, vm, &vm->disks[0], NULL);

		if (current) {
			free(vm->current_snapshot_id);
			vm->current_snapshot_id = strdup(current->id);
			if (!vm->current_snapshot_id)
				return -ENOMEM;
		}
	}
	if (vm->snapshot_count < 2)
		return 0;
	ordered = calloc(vm->snapshot_count, sizeof(*ordered));
	placed = calloc(vm->snapshot_count, sizeof(*placed));
	if (!ordered || !placed) {
		free(ordered);
		free(placed);
		return -ENOMEM;
	}
	/* Parents first; snapshots whose parent is unknown count as roots, and a
	 * loop (only a damaged store has one) ends up last, as it is. */
	for (bool progress = true; progress && done < vm->snapshot_count;) {
		progress = false;
		for (size_t i = 0; i < vm->snapshot_count; i++) {
			const char *parent = vm->snapshots[i].parent_id;
			bool ready = !parent[0];

			if (placed[i])
				continue;
			if (!ready) {
				size_t j;

				for (j = 0; j < vm->snapshot_count; j++)
					if (strcasecmp(vm->snapshots[j].id, parent) == 0)
						break;
				ready = j == vm->snapshot_count || placed[j];
			}
			if (ready) {
				ordered[done++] = vm->snapshots[i];
				placed[i] = true;
				progress = true;
			}
		}
	}
	for (size_t i = 0; i < vm->snapshot_count; i++)
		if (!placed[i])
			ordered[done++] = vm->snapshots[i];
	free(vm->snapshots);
	free(placed);
	vm->snapshots = ordered;
	return 0;
}

/* A disk file a configuration names by its path, and whose. */
struct claim {
	const char *path;
	const struct store_vm *vm;
};

static int compare_claims(const void *a, const void *b)
{
	return strcmp(((const struct claim *)a)->path, ((const struct claim *)b)->path);
}

/* The disks of @vm: its own (@k == 0), then each snapshot's; NULL past the last. */
static struct store_disk *disks_of(struct store_vm *vm, size_t k, size_t *count)
{
	if (k > vm->snapshot_count)
		return NULL;
	*count = k == 0 ? vm->disk_count : vm->snapshots[k - 1].disk_count;
	return k == 0 ? vm->disks : vm->snapshots[k - 1].disks;
}

/*
 * A disk found by its name alone is not used when another VM's configuration
 * (or one of its snapshots') names that very file by its path: the file is
 * that VM's, and binding it would let one VM read or write another's disk.
 */
static int refuse_claimed(struct store_vm *vms, size_t count)
{
	struct claim *claims = NULL;
	size_t n = 0, cap = 0;
	struct store_disk *disks;
	size_t disk_count;
	int rc = 0;

	for (size_t i = 0; i < count; i++)
		for (size_t k = 0; (disks = disks_of(&vms[i], k, &disk_count)); k++)
			for (size_t d = 0; d < disk_count; d++) {
				if (!disks[d].path || disks[d].by_name)
					continue;
				if (n == cap) {
					struct claim *grown;

					cap = cap ? cap * 2 : 64;
					grown = realloc(claims, cap * sizeof(*grown));
					if (!grown) {
						free(claims);
						return -ENOMEM;
					}
					claims = grown;
				}
				claims[n++] = (struct claim){disks[d].path, &vms[i]};
			}
	if (n)
		qsort(claims, n, sizeof(*claims), compare_claims);
	for (size_t i = 0; i < count && rc == 0 && n; i++)
		for (size_t k = 0; rc == 0 && (disks = disks_of(&vms[i], k, &disk_count)); k++)
			for (size_t d = 0; d < disk_count && rc == 0; d++) {
				struct store_disk *disk = &disks[d];
				const struct store_vm *owner = NULL;
				size_t low = 0, high = n;

				if (!disk->path || !disk->by_name)
					continue;
				while (low < high) { /* the first claim not before the path */
					size_t mid = low + (high - low) / 2;

					if (strcmp(claims[mid].path, disk->path) < 0)
						low = mid + 1;
					else
						high = mid;
				}
				for (;
				     low < n && !owner && strcmp(claims[low].path, disk->path) == 0;
				     low++)
					if (strcasecmp(claims[low].vm->id, vms[i].id) != 0)
						owner = claims[low].vm;
				if (!owner)
					continue;
				disk->problem =
					format_text("disk '%s' of '%s' is not used: found by its "
						    "name alone as '%s', "
						    "which VM '%s' (%s) names by its path",
						    disk->written,
						    k == 0 ? vms[i].config_path
							   : vms[i].snapshots[k - 1].config_path,
						    disk->path, owner->name, owner->id);
				free(disk->path);
				free(disk->how);
				disk->path = disk->how = NULL;
				if (!disk->problem)
					rc = -ENOMEM;
			}
	free(claims);
	return rc;
}

static int compare_vms(const void *a, const void *b)
{
	const struct store_vm *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->id, y->id);
}

int store_list(struct store *s, struct store_vm **out, size_t *out_count, struct error *err)
{
	struct store_vm *vms = NULL;
	size_t count = 0;
	int rc = 0;

	*out = NULL;
	*out_count = 0;
	/* Folders recorded since the store was opened (an import mount's, meanwhile). */
	if (s->recorded && read_records(s, false) < 0)
		return error_set(err, ENOMEM, "out of memory");
	for (size_t r = 0; r < s->root_count && rc == 0; r++) {
		char dir[PATH_MAX], **files = NULL;
		size_t n = 0;

		snprintf(dir, sizeof(dir), "%s/%s", s->roots[r], VMS_DIR);
		rc = list_configs(dir, &files, &n);
		if (rc < 0) {
			rc = error_errno(err, -rc, "cannot read", dir);
			break;
		}
		if (n) {
			struct store_vm *grown = realloc(vms, (count + n) * sizeof(*grown));

			if (!grown) {
				fsutil_names_free(files, n);
				rc = error_set(err, ENOMEM, "out of memory");
				break;
			}
			vms = grown;
			memset(vms + count, 0, n * sizeof(*vms));
		}
		for (size_t i = 0, here = count; i < n && rc == 0; i++) {
			struct store_vm *vm = &vms[count], *first;

			rc = load_vm(s, s->roots[r], files[i], vm, err);
			first = rc == 0 && vm->id[0] ? vm_by_id(vms, count, vm->id) : NULL;
			if (first && first >= vms + here && !first->problem)
				/* Two files of one folder claim the VM: which is it? */
				first->problem = format_text("'%s' and '%s' both describe VM %s",
							     first->config_path, vm->config_path,
							     vm->id);
			if (rc < 0 || first)
				/* A VM listed already (from another root) keeps its first place. */
				vm_release(vm);
			else
				count++;
		}
		fsutil_names_free(files, n);
	}
	for (size_t r = 0; r < s->root_count && rc == 0; r++) {
		char dir[PATH_MAX], **files = NULL;
		size_t n = 0;

		snprintf(dir, sizeof(dir), "%s/%s", s->roots[r], SNAPSHOTS_DIR);
		rc = list_configs(dir, &files, &n);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = load_snapshot(s, s->roots[r], files[i], vms, count);
		fsutil_names_free(files, n);
		if (rc < 0)
			rc = error_set(err, -rc, "cannot read the snapshots of '%s'", s->roots[r]);
	}
	if (rc == 0)
		rc = refuse_claimed(vms, count);
	for (size_t i = 0; i < count && rc == 0; i++)
		rc = complete_tree(s, &vms[i]);
	/* Snapshots the VM counts but that could not be read (damaged, or
	 * unreadable files) are a problem of the VM, not silence. */
	for (size_t i = 0; i < count && rc == 0; i++)
		if (!vms[i].problem && vms[i].expected_snapshots > (int64_t)vms[i].snapshot_count)
			vms[i].problem = format_text(
				"'%s' counts %lld snapshots, but only %zu of their configurations "
				"can be read",
				vms[i].config_path, (long long)vms[i].expected_snapshots,
				vms[i].snapshot_count);
	if (rc < 0) {
		store_vms_free(vms, count);
		return rc == -ENOMEM ? error_set(err, ENOMEM, "out of memory") : rc;
	}
	if (count)
		qsort(vms, count, sizeof(*vms), compare_vms);
	*out = vms;
	*out_count = count;
	return 0;
}

/* ---- names ---- */

static pthread_once_t case_once = PTHREAD_ONCE_INIT;
static locale_t case_locale; /* C.UTF-8 for towlower_l(), or 0: ASCII only */

static void case_locale_make(void)
{
	case_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* The next code point of the UTF-8 text at *@p, moving past it; a byte that
 * starts no valid sequence stands for itself. */
static uint32_t next_code_point(const unsigned char **p)
{
	const unsigned char *s = *p;
	uint32_t c = s[0];
	int more = c >= 0xf0 && c < 0xf8 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;

	if (c >= 0xf8)
		more = 0;
	for (int i = 1; i <= more; i++)
		if ((s[i] & 0xc0) != 0x80)
			more = 0;
	if (more == 0) {
		*p = s + 1;
		return c;
	}
	c &= 0x3f >> more;
	for (int i = 1; i <= more; i++)
		c = c << 6 | (s[i] & 0x3f);
	*p = s + more + 1;
	return c;
}

static uint32_t fold(uint32_t c)
{
	if (case_locale)
		return (uint32_t)towlower_l((wint_t)c, case_locale);
	return c < 0x80 ? (uint32_t)tolower((int)c) : c;
}

bool store_same_name(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	pthread_once(&case_once, case_locale_make);
	while (*x && *y)
		if (fold(next_code_point(&x)) != fold(next_code_point(&y)))
			return false;
	return !*x && !*y;
}

/*
 * The candidates @names (@count, each with its GUID in @ids) as
 * "'NAME' (GUID), ..." into a new string, or NULL for ENOMEM.
 */
static char *candidates_text(const char *const *names, const char *const *ids, size_t count)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < count; i++)
		fprintf(f, "%s'%s' (%s)", i ? ", " : "", names[i], ids[i][0] ? ids[i] : "no GUID");
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/*
 * Pick one of @count items by @name_or_id, as Hyper-V takes names: the GUID
 * in any case, else the one item of that exact name, else the one item of
 * that name in another case. @name_of and @id_of read item @i. Returns the
 * index, -ENOENT (no message), or -EINVAL with a message naming the
 * candidates of an ambiguous name (@what: "VM", "snapshot"; @where: a
 * prefix for the message, may be "").
 */
static int pick_by_name(size_t count, const char *(*name_of)(const void *, size_t),
			const char *(*id_of)(const void *, size_t), const void *items,
			const char *name_or_id, const char *what, const char *where,
			struct error *err)
{
	const char **names, **ids;
	size_t exact = 0, folded = 0, n = 0;
	ssize_t found = -1;
	bool by_case;
	char *list;
	int rc;

	for (size_t i = 0; i < count; i++)
		if (id_of(items, i)[0] && strcasecmp(id_of(items, i), name_or_id) == 0)
			return (int)i;
	for (size_t i = 0; i < count; i++) {
		if (strcmp(name_of(items, i), name_or_id) == 0 && exact++ == 0)
			found = (ssize_t)i;
		if (store_same_name(name_of(items, i), name_or_id))
			folded++;
	}
	if (exact == 1)
		return (int)found;
	if (exact == 0 && folded == 0)
		return -ENOENT;
	if (exact == 0 && folded == 1) {
		for (size_t i = 0; i < count; i++)
			if (store_same_name(name_of(items, i), name_or_id))
				return (int)i;
	}
	/* Several: name them all, so that the one meant can be given. */
	by_case = exact == 0;
	names = calloc(count, sizeof(*names));
	ids = calloc(count, sizeof(*ids));
	for (size_t i = 0; names && ids && i < count; i++)
		if (by_case ? store_same_name(name_of(items, i), name_or_id)
			    : strcmp(name_of(items, i), name_or_id) == 0) {
			names[n] = name_of(items, i);
			ids[n++] = id_of(items, i);
		}
	list = names && ids ? candidates_text(names, ids, n) : NULL;
	free(names);
	free(ids);
	if (!list)
		return error_set(err, ENOMEM, "out of memory");
	if (by_case)
		rc = error_set(err, EINVAL,
			       "%s'%s' matches %zu %ss when case is ignored: %s; give the exact "
			       "name or the GUID",
			       where, name_or_id, n, what, list);
	else
		rc = error_set(err, EINVAL, "%s%zu %ss are named '%s': %s; give the GUID", where, n,
			       what, name_or_id, list);
	free(list);
	return rc;
}

static const char *vm_name_at(const void *items, size_t i)
{
	return ((const struct store_vm *)items)[i].name;
}

static const char *vm_id_at(const void *items, size_t i)
{
	return ((const struct store_vm *)items)[i].id;
}

static const char *snapshot_name_at(const void *items, size_t i)
{
	return ((const struct store_snapshot *)items)[i].name;
}

static const char *snapshot_id_at(const void *items, size_t i)
{
	return ((const struct store_snapshot *)items)[i].id;
}

int store_pick_vm(const struct store_vm *vms, size_t count, const char *name_or_id,
		  const struct store_vm **vm, struct error *err)
{
	int rc = pick_by_name(count, vm_name_at, vm_id_at, vms, name_or_id, "VM", "", err);

	*vm = rc >= 0 ? &vms[rc] : NULL;
	if (rc == -ENOENT)
		return error_set(err, ENOENT, "no VM named '%s' in the store", name_or_id);
	return rc < 0 ? rc : 0;
}

int store_pick_snapshot(const struct store_vm *vm, const char *name_or_id,
			const struct store_snapshot **snapshot, struct error *err)
{
	char where[300];
	int rc;

	snprintf(where, sizeof(where), "in VM '%s', ", vm->name);
	rc = pick_by_name(vm->snapshot_count, snapshot_name_at, snapshot_id_at, vm->snapshots,
			  name_or_id, "snapshot", where, err);
	*snapshot = rc >= 0 ? &vm->snapshots[rc] : NULL;
	if (rc == -ENOENT)
		return error_set(err, ENOENT, "VM '%s' has no snapshot '%s'", vm->name, name_or_id);
	return rc < 0 ? rc : 0;
}

const struct store_vm *store_find_vm(const struct store_vm *vms, size_t count,
				     const char *name_or_id)
{
	if (!name_or_id[0])
		return NULL;
	for (size_t i = 0; i < count; i++)
		if (strcasecmp(vms[i].id, name_or_id) == 0)
			return &vms[i];
	for (size_t i = 0; i < count; i++)
		if (strcmp(vms[i].name, name_or_id) == 0)
			return &vms[i];
	return NULL;
}

/* ---- switches ---- */

void store_switches_free(struct store_switch *switches, size_t count)
{
	if (!switches)
		return;
	for (size_t i = 0; i < count; i++)
		free(switches[i].name);
	free(switches);
}

const struct store_switch *store_find_switch(const struct store_switch *switches, size_t count,
					     const char *name)
{
	for (size_t i = 0; name && name[0] && i < count; i++)
		if (strcmp(switches[i].name, name) == 0)
			return &switches[i];
	for (size_t i = 0; name && name[0] && i < count; i++)
		if (strcasecmp(switches[i].id, name) == 0)
			return &switches[i];
	return NULL;
}

int store_switches(const struct store *s, struct store_switch **out, size_t *count,
		   struct error *err)
{
	char path[PATH_MAX], *line = NULL;
	size_t line_cap = 0, n = 0;
	struct store_switch *list = NULL;
	unsigned number = 0;
	int rc = 0;
	FILE *f;

	*out = NULL;
	*count = 0;
	snprintf(path, sizeof(path), "%s/%s", s->roots[0], SWITCHES_FILE);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : error_errno(err, errno, "cannot read", path);
	while (rc == 0 && getline(&line, &line_cap, f) >= 0) {
		struct store_switch *grown;

		number++;
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (strlen(line) < 38 || line[36] != ' ') {
			rc = error_set(err, EINVAL, "'%s' line %u: want a GUID, a space and a name",
				       path, number);
			break;
		}
		line[36] = '\0';
		if (!config_guid_valid(line)) {
			rc = error_set(err, EINVAL, "'%s' line %u: '%s' is not a GUID", path,
				       number, line);
			break;
		}
		grown = realloc(list, (n + 1) * sizeof(*grown));
		if (!grown || !(grown[n].name = strdup(line + 37))) {
			list = grown ? grown : list;
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		list = grown;
		for (int i = 0; i < 36; i++)
			list[n].id[i] = (char)toupper((unsigned char)line[i]);
		list[n].id[36] = '\0';
		n++;
	}
	fclose(f);
	free(line);
	if (rc < 0) {
		store_switches_free(list, n);
		return rc;
	}
	*out = list;
	*count = n;
	return 0;
}

static int store_add_switch_unlocked(struct store *s, const char *name, char id_out[37],
				     struct error *err)
{
	struct store_switch *list = NULL;
	size_t n = 0, len = 0;
	char path[PATH_MAX], *text = NULL, id[37];
	FILE *mem;
	int rc;

	rc = store_check_name(name, "switch", err);
	if (rc == 0)
		rc = store_switches(s, &list, &n, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0) {
			store_switches_free(list, n);
			return error_set(err, EEXIST, "a switch named '%s' exists already", name);
		}
	store_new_guid(id, true);
	mem = open_memstream(&text, &len);
	if (!mem) {
		store_switches_free(list, n);
		return error_set(err, ENOMEM, "out of memory");
	}
	fputs("# impexfs virtual switches: GUID, a space, the name\n", mem);
	for (size_t i = 0; i < n; i++)
		fprintf(mem, "%s %s\n", list[i].id, list[i].name);
	fprintf(mem, "%s %s\n", id, name);
	fclose(mem);
	store_switches_free(list, n);
	snprintf(path, sizeof(path), "%s/%s", s->roots[0], SWITCHES_FILE);
	rc = fsutil_write_atomic(path, text, len);
	free(text);
	if (rc < 0)
		return error_errno(err, -rc, "cannot write", path);
	if (id_out)
		memcpy(id_out, id, 37);
	return 0;
}

int store_add_switch(struct store *s, const char *name, char id_out[37], struct error *err)
{
	int lock = store_lock(s, err), rc;

	if (lock < 0)
		return lock;
	rc = store_add_switch_unlocked(s, name, id_out, err);
	store_unlock(lock);
	return rc;
}
