/*
 * store.c - opening a store: its roots, the folders it may read (roots,
 * path map targets, extra and recorded folders) and the confinement test
 * against them, its lock, the folders of a new store, GUIDs and names.
 * The other parts of the module are listed in store_internal.h.
 */
#include "store.h"

#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "pathbuf.h"
#include "pathmap.h"
#include "record.h"
#include "store_internal.h"
#include "utf16.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

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

int store_read_records(struct store *s, bool note)
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
		if (!(s->allowed[s->allowed_count] = strdup(real))) {
			store_free(s);
			return error_set(err, ENOMEM, "out of memory");
		}
		s->allowed_count++;
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
	if (s->recorded && store_read_records(s, true) < 0) {
		store_free(s);
		return error_set(err, ENOMEM, "out of memory");
	}
	*out = s;
	return 0;
}

int store_check_root(const char *root, struct error *err)
{
	struct pathbuf path = PATHBUF_INIT;
	struct stat st;
	int rc;

	if (pathbuf_setf(&path, "%s/%s", root, HYPERV_VMS_DIR) < 0)
		return error_set(err, ENOMEM, "out of memory");
	rc = stat(path.buf, &st) < 0 ? -errno : 0;
	pathbuf_release(&path);
	if (rc < 0 && rc != -ENOENT && rc != -ENOTDIR)
		return error_errno(err, -rc, "cannot look into", root);
	if (rc < 0)
		return error_set(err, ENOENT,
				 "'%s' is not a Hyper-V store: no '" HYPERV_VMS_DIR "' folder",
				 root);
	if (!S_ISDIR(st.st_mode))
		return error_set(err, ENOTDIR,
				 "'%s' is not a Hyper-V store: its '" HYPERV_VMS_DIR
				 "' is not a folder",
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
	struct pathbuf path = PATHBUF_INIT;
	int fd;

	if (pathbuf_setf(&path, "%s/%s", s->roots[0], STORE_LOCK_FILE) < 0)
		return error_set(err, ENOMEM, "out of memory");
	fd = open(path.buf, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		fd = error_errno(err, errno, "cannot lock the store with", path.buf);
	else if (flock(fd, LOCK_EX) < 0) {
		int rc = error_errno(err, errno, "cannot lock the store with", path.buf);

		close(fd);
		fd = rc;
	}
	pathbuf_release(&path);
	return fd;
}

void store_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int store_init(const char *root, struct error *err)
{
	static const char *const dirs[] = {"", HYPERV_VMS_DIR, HYPERV_SNAPSHOTS_DIR,
					   HYPERV_DISKS_DIR};
	struct pathbuf path = PATHBUF_INIT;
	int fd, rc = 0;

	for (size_t i = 0; rc == 0 && i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (pathbuf_setf(&path, "%s/%s", root, dirs[i]) < 0)
			rc = error_set(err, ENOMEM, "out of memory");
		else if (mkdir(path.buf, 0755) < 0 && errno != EEXIST)
			rc = error_errno(err, errno, "cannot create", path.buf);
	}
	if (rc == 0 && pathbuf_setf(&path, "%s/%s", root, STORE_LOCK_FILE) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc == 0) {
		fd = open(path.buf, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			rc = error_errno(err, errno, "cannot create", path.buf);
		else
			close(fd);
	}
	if (rc == 0 && pathbuf_setf(&path, "%s/%s", root, STORE_SWITCHES_FILE) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc == 0 && access(path.buf, F_OK) < 0) {
		rc = fsutil_write_atomic(path.buf, STORE_SWITCHES_HEADER,
					 sizeof(STORE_SWITCHES_HEADER) - 1);
		if (rc < 0)
			rc = error_errno(err, -rc, "cannot create", path.buf);
	}
	pathbuf_release(&path);
	return rc;
}

bool store_inside(const struct store *s, const char *real)
{
	struct store *locked = (struct store *)s; /* the lock, not the store, changes */
	bool found = false;

	pthread_mutex_lock(&locked->allowed_lock);
	for (size_t i = 0; i < s->allowed_count && !found; i++)
		found = fsutil_path_within(real, s->allowed[i]);
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
	if (store_inside(s, real))
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

char *store_format_text(const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	return text;
}
