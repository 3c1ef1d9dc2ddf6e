/*
 * minwfuse - the least a FUSE file system must do to take a `cp -r` or an
 * `rsync -a` and write it through to a folder: every call passed to the
 * same call on BACKING/<path>, nothing else. The ceiling of the import
 * mount's benchmark (bench/importfs.sh): it gets the same tuning as impexfs
 * -o import (libfuse's path API, 1 MiB writes, st_blksize 1 MiB, attributes
 * not cached), so what it costs is FUSE's price for writing, and what
 * impexfs costs beyond it is the import's.
 *
 *   minwfuse [-s] [-f] BACKING MOUNTPOINT
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 314

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static char backing[PATH_MAX];

/* BACKING/<path> in @out. */
static const char *real(const char *path, char *out)
{
	snprintf(out, PATH_MAX, "%s%s", backing, path);
	return out;
}

static int ret(int rc)
{
	return rc < 0 ? -errno : 0;
}

static int w_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	char p[PATH_MAX];
	int rc = fi ? fstat((int)fi->fh, st) : lstat(real(path, p), st);

	if (rc == 0 && S_ISREG(st->st_mode))
		st->st_blksize = 1 << 20;
	return ret(rc);
}

static int w_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		     struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	char p[PATH_MAX];
	DIR *d = opendir(real(path, p));

	(void)off, (void)fi, (void)flags;
	if (!d)
		return -errno;
	for (struct dirent *e; (e = readdir(d));)
		fill(buf, e->d_name, NULL, 0, 0);
	closedir(d);
	return 0;
}

static int w_mkdir(const char *path, mode_t mode)
{
	char p[PATH_MAX];

	return ret(mkdir(real(path, p), mode));
}

static int w_rmdir(const char *path)
{
	char p[PATH_MAX];

	return ret(rmdir(real(path, p)));
}

static int w_unlink(const char *path)
{
	char p[PATH_MAX];

	return ret(unlink(real(path, p)));
}

static int w_rename(const char *from, const char *to, unsigned int flags)
{
	char a[PATH_MAX], b[PATH_MAX];

	return ret(renameat2(AT_FDCWD, real(from, a), AT_FDCWD, real(to, b), flags));
}

static int w_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	char p[PATH_MAX];

	return ret(fi ? fchmod((int)fi->fh, mode) : chmod(real(path, p), mode));
}

static int w_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	char p[PATH_MAX];

	return ret(fi ? fchown((int)fi->fh, uid, gid) : lchown(real(path, p), uid, gid));
}

static int w_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	char p[PATH_MAX];

	return ret(fi ? ftruncate((int)fi->fh, size) : truncate(real(path, p), size));
}

static int w_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	char p[PATH_MAX];

	return ret(fi ? futimens((int)fi->fh, tv)
		      : utimensat(AT_FDCWD, real(path, p), tv, AT_SYMLINK_NOFOLLOW));
}

static int w_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	char p[PATH_MAX];
	int fd = open(real(path, p), fi->flags | O_CREAT, mode);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int w_open(const char *path, struct fuse_file_info *fi)
{
	char p[PATH_MAX];
	int fd = open(real(path, p), fi->flags);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int w_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n = pread((int)fi->fh, buf, size, off);

	(void)path;
	return n < 0 ? -errno : (int)n;
}

static int w_write(const char *path, const char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	ssize_t n = pwrite((int)fi->fh, buf, size, off);

	(void)path;
	return n < 0 ? -errno : (int)n;
}

static int w_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int w_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	return ret(datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh));
}

static int w_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return ret(statvfs(backing, st));
}

static void *w_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->attr_timeout = 0;
	cfg->entry_timeout = 1;
	cfg->negative_timeout = 0;
	conn->max_write = 1 << 20;
	return NULL;
}

static const struct fuse_operations ops = {
	.init = w_init,
	.getattr = w_getattr,
	.readdir = w_readdir,
	.mkdir = w_mkdir,
	.rmdir = w_rmdir,
	.unlink = w_unlink,
	.rename = w_rename,
	.chmod = w_chmod,
	.chown = w_chown,
	.truncate = w_truncate,
	.utimens = w_utimens,
	.create = w_create,
	.open = w_open,
	.read = w_read,
	.write = w_write,
	.release = w_release,
	.fsync = w_fsync,
	.statfs = w_statfs,
};

int main(int argc, char **argv)
{
	/* The first operand that is not an option is BACKING; the rest is libfuse's. */
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		if (!realpath(argv[i], backing)) {
			perror(argv[i]);
			return 1;
		}
		memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(*argv));
		argc--;
		break;
	}
	if (!backing[0]) {
		fprintf(stderr, "usage: minwfuse [-s] [-f] BACKING MOUNTPOINT\n");
		return 2;
	}
	return fuse_main(argc, argv, &ops, NULL);
}
