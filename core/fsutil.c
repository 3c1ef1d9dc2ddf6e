#include "fsutil.h"

#include "asuser.h"
#include "beneath.h"
#include "error.h"
#include "pathbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fsutil_pread_full(int fd, void *buf, size_t len, uint64_t offset)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

int fsutil_pread_named(int fd, void *buf, size_t len, uint64_t offset, const char *path,
		       struct error *err)
{
	int rc = fsutil_pread_full(fd, buf, len, offset);

	if (rc == -ENODATA)
		return error_set(err, EIO, "'%s' ends before byte %llu (the file was truncated)",
				 path, (unsigned long long)(offset + len));
	if (rc < 0)
		return error_set(err, -rc, "cannot read '%s' at byte %llu: %s", path,
				 (unsigned long long)offset, strerror(-rc));
	return 0;
}

int fsutil_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

bool fsutil_lease_retry(int rc, unsigned *waited_ms)
{
	/* The kernel's default /proc/sys/fs/lease-break-time, and a little more. */
	const unsigned limit_ms = 46 * 1000;
	unsigned step = *waited_ms < 20 ? 1 : *waited_ms < 1000 ? 10 : 100;
	struct timespec pause = {0, (long)step * 1000000};

	if (rc != -EWOULDBLOCK || *waited_ms >= limit_ms)
		return false;
	nanosleep(&pause, NULL);
	*waited_ms += step;
	return true;
}

/* One open() with O_NOATIME where the caller may use it (the file's owner,
 * or CAP_FOWNER), else without. Returns the descriptor or -errno. */
static int open_noatime_once(const char *path, int flags)
{
	const struct asuser_scope *scope = asuser_scope_current();
	int fd;

	/* An import's sources go through its scope (core/asuser.h). */
	if (scope) {
		fd = asuser_scope_open(scope, path, flags | O_NOATIME);
		return fd == -EPERM ? asuser_scope_open(scope, path, flags) : fd;
	}
	fd = open(path, flags | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = open(path, flags);
	return fd < 0 ? -errno : fd;
}

/* open_noatime_once(), again while a lease on the file is being given back. */
static int open_noatime(const char *path, int flags)
{
	unsigned waited = 0;
	int fd;

	do
		fd = open_noatime_once(path, flags);
	while (fsutil_lease_retry(fd, &waited));
	return fd;
}

/* Restore blocking mode on @fd, opened O_NONBLOCK; closes it on failure. */
static int blocking(int fd)
{
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

int fsutil_open_source(const char *path, bool writable)
{
	/* O_NONBLOCK: a FIFO or a device must not hang the open; callers check
	 * the file type before reading, and blocking mode is restored. */
	int fd = open_noatime(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);

	return fd < 0 ? fd : blocking(fd);
}

int fsutil_open_regular(const char *path, struct stat *st)
{
	int fd = open_noatime(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);

	if (fd < 0)
		return fd == -ELOOP ? -EACCES : fd;
	if (fstat(fd, st) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return blocking(fd);
}

/*
 * mkdir -p @path: each missing folder made with mode 0755 whatever the umask (an
 * import mount refuses folders others may write), as Import-VM makes a target
 * folder. Returns 0 or -errno.
 */
static int make_folders(const char *path)
{
	char copy[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(copy))
		return n ? -ENAMETOOLONG : -ENOENT;
	memcpy(copy, path, n + 1);
	for (char *at = copy + 1;; at++) {
		if (*at != '/' && *at != '\0')
			continue;
		char was = *at;

		*at = '\0';
		if (mkdir(copy, 0755) == 0) {
			if (chmod(copy, 0755) < 0)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
		*at = was;
		if (!was)
			return 0;
	}
}

int fsutil_open_trusted_folder(const char *path, bool create, char *real)
{
	int fd;

	if (create) {
		struct stat st;

		if (stat(path, &st) < 0 && errno == ENOENT && (fd = make_folders(path)) < 0)
			return fd;
	}
	if (!realpath(path, real))
		return -errno;
	fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* opendir() of @path with @flags added (O_NOFOLLOW), as fsutil_opendir() opens. */
static DIR *opendir_with(const char *path, int flags)
{
	int fd = open_noatime(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags);
	DIR *d;

	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	d = fdopendir(fd);
	if (!d) {
		int code = errno;

		close(fd);
		errno = code;
	}
	return d;
}

DIR *fsutil_opendir(const char *path)
{
	return opendir_with(path, 0);
}

DIR *fsutil_opendir_nofollow(const char *path)
{
	return opendir_with(path, O_NOFOLLOW);
}

int fsutil_dirname(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		if (cap < 2)
			return -ENAMETOOLONG;
		strcpy(out, ".");
		return 0;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n + 1 > cap)
		return -ENAMETOOLONG;
	memcpy(out, path, n);
	out[n] = '\0';
	return 0;
}

int fsutil_real_dirname(const char *path, char *out)
{
	char dir[PATH_MAX];

	if (fsutil_dirname(path, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	return realpath(dir, out) ? 0 : -errno;
}

int fsutil_fsync_parent(const char *path)
{
	char dir[4096];
	int fd, rc = 0;

	if (fsutil_dirname(path, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		rc = -errno;
	close(fd);
	return rc;
}

bool fsutil_all_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (len < 16)
		return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
	for (size_t i = 0; i < 16; i++)
		if (p[i])
			return false;
	return memcmp(p, p + 16, len - 16) == 0;
}

int fsutil_write_atomic_at(int dirfd, const char *rel, const void *data, size_t len, bool replace)
{
	char name[NAME_MAX + 1], tmp[NAME_MAX + 1];
	int parent = beneath_parent(dirfd, rel, name), fd = -1, rc = 0;

	if (parent < 0)
		return parent;
	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		uint32_t tag;

		if (getrandom(&tag, sizeof(tag), 0) != sizeof(tag))
			tag = (uint32_t)tries * 2654435761u ^ (uint32_t)getpid();
		if (snprintf(tmp, sizeof(tmp), ".%.200s.tmp-%08x", name, tag) >= (int)sizeof(tmp)) {
			rc = -ENAMETOOLONG;
			break;
		}
		fd = openat(parent, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
	}
	if (fd < 0) {
		close(parent);
		return rc ? rc : -EEXIST;
	}
	rc = fsutil_pwrite_full(fd, data, len, 0);
	if (rc == 0 && fchmod(fd, 0644) < 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat2(parent, tmp, parent, name, replace ? 0 : RENAME_NOREPLACE) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(parent, tmp, 0);
	else
		fsync(parent);
	close(parent);
	return rc;
}

/* @path without the slashes that end it ("out/" is "out") into @buf; -ENAMETOOLONG. */
static int without_trailing_slashes(const char *path, char *buf, size_t cap)
{
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(buf, path, n);
	buf[n] = '\0';
	return 0;
}

int fsutil_make_partial(const char *path, bool folder, char *temp, size_t cap)
{
	char whole[PATH_MAX];
	const char *base;
	int dir_len, rc = without_trailing_slashes(path, whole, sizeof(whole));

	if (rc < 0)
		return rc;
	base = strrchr(whole, '/');
	dir_len = base ? (int)(base - whole + 1) : 0;
	base = base ? base + 1 : whole;
	for (int tries = 0; tries < 16; tries++) {
		uint32_t tag;

		if (getrandom(&tag, sizeof(tag), 0) != sizeof(tag))
			tag = (uint32_t)tries * 2654435761u ^ (uint32_t)getpid();
		if (snprintf(temp, cap, "%.*s.%.200s.partial-%08x", dir_len, whole, base, tag) >=
		    (int)cap)
			return -ENAMETOOLONG;
		rc = folder ? mkdir(temp, 0755)
			    : open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				   0644);
		if (rc >= 0)
			return rc;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int fsutil_publish(const char *temp, const char *path)
{
	char whole[PATH_MAX];
	int rc = without_trailing_slashes(path, whole, sizeof(whole));

	if (rc < 0)
		return rc;
	if (renameat2(AT_FDCWD, temp, AT_FDCWD, whole, RENAME_NOREPLACE) < 0)
		return -errno;
	/* Named, and whole: a folder that cannot be synced does not undo that. */
	fsutil_fsync_parent(whole);
	return 0;
}

int fsutil_stat_source(const char *path, struct stat *st)
{
	int fd = open_noatime(path, O_PATH | O_CLOEXEC), rc;

	if (fd < 0)
		return fd;
	rc = fstat(fd, st) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int fsutil_fd_path(int fd, char *out, size_t cap)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	/* door: the descriptor's own link, the name of the file it holds open */
	n = readlink(link, out, cap);
	if (n < 0)
		return -errno;
	if ((size_t)n >= cap)
		return -ENAMETOOLONG;
	out[n] = '\0';
	/* Not a file of a folder ("pipe:[...]", "anon_inode:..."). */
	return out[0] == '/' ? 0 : -ENOENT;
}

int fsutil_real_path_source(const char *path, char *out, size_t cap)
{
	int fd = open_noatime(path, O_PATH | O_CLOEXEC), rc;

	if (fd < 0)
		return fd;
	rc = fsutil_fd_path(fd, out, cap);
	close(fd);
	return rc;
}

int fsutil_statvfs(const char *path, struct statvfs *out)
{
	int fd = open_noatime(path, O_PATH | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return fd;
	rc = fstatvfs(fd, out) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

bool fsutil_name_taken(const char *path)
{
	struct stat st;
	int rc = fsutil_stat_source(path, &st);

	return rc != -ENOENT && rc != -ENOTDIR;
}

int fsutil_write_atomic(const char *path, const void *data, size_t len)
{
	char dir[PATH_MAX];
	const char *slash;
	int fd, rc;

	if (fsutil_dirname(path, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	slash = strrchr(path, '/');
	rc = fsutil_write_atomic_at(fd, slash ? slash + 1 : path, data, len, true);
	close(fd);
	return rc;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void fsutil_names_free(char **names, size_t count)
{
	if (!names)
		return;
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* The names of the open folder @d (closed here), as fsutil_list_names() gives them. */
static int list_folder(DIR *d, bool (*keep)(const char *name), char ***names, size_t *count)
{
	struct dirent *e;
	char **list = NULL;
	size_t n = 0, cap = 0;

	*names = NULL;
	*count = 0;
	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    (keep && !keep(e->d_name)))
			continue;
		if (n == cap) {
			char **grown = realloc(list, (cap ? cap * 2 : 64) * sizeof(*grown));

			if (!grown)
				goto nomem;
			list = grown;
			cap = cap ? cap * 2 : 64;
		}
		list[n] = strdup(e->d_name);
		if (!list[n])
			goto nomem;
		n++;
	}
	closedir(d);
	if (n)
		qsort(list, n, sizeof(*list), compare_names);
	*names = list;
	*count = n;
	return 0;
nomem:
	closedir(d);
	fsutil_names_free(list, n);
	return -ENOMEM;
}

int fsutil_list_names(const char *dir, bool (*keep)(const char *name), char ***names, size_t *count)
{
	return list_folder(fsutil_opendir(dir), keep, names, count);
}

int fsutil_list_names_at(int dirfd, bool (*keep)(const char *name), char ***names, size_t *count)
{
	int fd = beneath_open(dirfd, "", O_RDONLY | O_DIRECTORY, 0);
	DIR *d;

	if (fd < 0) {
		*names = NULL;
		*count = 0;
		return fd;
	}
	if (!(d = fdopendir(fd)))
		close(fd);
	return list_folder(d, keep, names, count);
}

int fsutil_pwrite_sparse(int fd, const void *buf, size_t len, uint64_t offset)
{
	const size_t piece = 64 * 1024;
	const uint8_t *p = buf;

	for (size_t at = 0; at < len; at += piece) {
		size_t n = len - at < piece ? len - at : piece;
		int rc = fsutil_all_zero(p + at, n)
				 ? 0
				 : fsutil_pwrite_full(fd, p + at, n, offset + at);

		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A piece copied by copy_file_range (or by hand): progress is told after each. */
#define COPY_PIECE (8u << 20)

/* Copy by pread and pwrite: where copy_file_range is refused. */
static int copy_by_hand(int in, int out, uint64_t offset, uint64_t len)
{
	size_t cap = len < COPY_PIECE ? (size_t)len : COPY_PIECE;
	uint8_t *buf = malloc(cap ? cap : 1);
	int rc = buf ? 0 : -ENOMEM;

	while (rc == 0 && len) {
		size_t n = len < cap ? (size_t)len : cap;

		rc = fsutil_pread_full(in, buf, n, offset);
		if (rc == 0)
			rc = fsutil_pwrite_full(out, buf, n, offset);
		offset += n;
		len -= n;
	}
	free(buf);
	return rc;
}

int fsutil_copy_range(int in, int out, uint64_t offset, uint64_t len)
{
	while (len) {
		loff_t from = (loff_t)offset, to = (loff_t)offset;
		ssize_t n = copy_file_range(in, &from, out, &to, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP ||
			    errno == ENOSYS)
				return copy_by_hand(in, out, offset, len);
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		offset += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* Where the run of data (@data) or hole at or after @offset of @fd begins, below @size;
 * @size when there is none. */
static int64_t next_run(int fd, uint64_t offset, bool data, uint64_t size)
{
	off_t at = lseek(fd, (off_t)offset, data ? SEEK_DATA : SEEK_HOLE);

	if (at < 0) {
		if (errno == ENXIO)
			return (int64_t)size;
		/* A file system without holes: all data. */
		if (errno == EINVAL)
			return data ? (int64_t)offset : (int64_t)size;
		return -errno;
	}
	return (uint64_t)at < size ? (int64_t)at : (int64_t)size;
}

int fsutil_copy_data(int in, int out, uint64_t size, int (*progress)(void *ctx, uint64_t bytes),
		     void *ctx)
{
	uint64_t at = 0;
	struct stat st;
	int stop;

	if (fstat(in, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < size)
		return -ENODATA;
	while (at < size) {
		int64_t data = next_run(in, at, true, size), hole;

		if (data < 0)
			return (int)data;
		if (progress && (uint64_t)data > at && (stop = progress(ctx, (uint64_t)data - at)) < 0)
			return stop;
		if ((uint64_t)data >= size)
			break;
		hole = next_run(in, (uint64_t)data, false, size);
		if (hole < 0)
			return (int)hole;
		if (hole <= data) /* the file changed under us: copy to its end */
			hole = (int64_t)size;
		for (at = (uint64_t)data; at < (uint64_t)hole;) {
			uint64_t n = (uint64_t)hole - at < COPY_PIECE ? (uint64_t)hole - at : COPY_PIECE;
			int rc = fsutil_copy_range(in, out, at, n);

			if (rc < 0)
				return rc;
			at += n;
			if (progress && (stop = progress(ctx, n)) < 0)
				return stop;
		}
	}
	return ftruncate(out, (off_t)size) < 0 ? -errno : 0;
}

int fsutil_copy_file(const char *from, const char *to)
{
	char tmp[PATH_MAX];
	struct stat st;
	int in = -1, out = -1, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", to) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	in = fsutil_open_source(from, false);
	if (in < 0)
		return in;
	if (fstat(in, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0) {
		rc = -errno;
		goto out;
	}
	rc = fsutil_copy_data(in, out, (uint64_t)st.st_size, NULL, NULL);
	if (rc == 0 && (fchmod(out, 0644) < 0 || fsync(out) < 0))
		rc = -errno;
	if (rc == 0 && rename(tmp, to) < 0)
		rc = -errno;
	if (rc == 0)
		fsutil_fsync_parent(to);
out:
	if (out >= 0) {
		close(out);
		if (rc < 0)
			unlink(tmp);
	}
	close(in);
	return rc == -ENODATA ? -EIO : rc;
}

/* What fsutil_remove_tree_noting() tells its caller's note: paths, not names beneath. */
struct remove_note {
	const char *prefix; /* the caller's path up to the folder holding the tree, '/' included */
	size_t prefix_len;
	void (*note)(void *ctx, const char *path, int code);
	void *ctx;
};

static void note_path(void *ctx, const char *rel, int code)
{
	const struct remove_note *n = ctx;
	struct pathbuf path = PATHBUF_INIT;

	if (pathbuf_add(&path, n->prefix, n->prefix_len) == 0 && pathbuf_adds(&path, rel) == 0)
		n->note(n->ctx, path.buf, code);
	pathbuf_release(&path);
}

int fsutil_remove_tree_noting(const char *path, void (*note)(void *ctx, const char *path, int code),
			      void *ctx)
{
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
	struct remove_note n = {path, (size_t)(name - path), note, ctx};
	char folder[PATH_MAX];
	int fd, rc;

	/* The folder holding it, opened by its name; the walk goes on beneath it. */
	if (fsutil_dirname(path, folder, sizeof(folder)) < 0) {
		rc = -ENAMETOOLONG;
	} else if ((fd = open(folder, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = errno == ENOENT ? 0 : -errno;
	} else {
		rc = note ? beneath_remove_tree_noting(fd, name, note_path, &n)
			  : beneath_remove_tree(fd, name, NULL);
		close(fd);
		return rc;
	}
	if (rc < 0 && note)
		note(ctx, path, -rc);
	return rc;
}

int fsutil_remove_tree(const char *path)
{
	return fsutil_remove_tree_noting(path, NULL, NULL);
}

int fsutil_read_whole(int fd, size_t max, char **data, size_t *len)
{
	struct stat st;
	int rc;

	*data = NULL;
	*len = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	if (!(*data = malloc((size_t)st.st_size + 1)))
		return -ENOMEM;
	rc = fsutil_pread_full(fd, *data, (size_t)st.st_size, 0);
	if (rc < 0) {
		free(*data);
		*data = NULL;
		return rc == -ENODATA ? -EIO : rc;
	}
	(*data)[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	return 0;
}

bool fsutil_path_within(const char *path, const char *root)
{
	size_t n = strlen(root);

	while (n > 1 && root[n - 1] == '/')
		n--;
	if (n == 1 && root[0] == '/')
		return path[0] == '/';
	return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}
