/*
 * fsutil.h - small file system helpers shared by the core modules:
 * whole reads and writes, opening sources without touching their access
 * time, durable creation.
 */
#ifndef IMPEX_FSUTIL_H
#define IMPEX_FSUTIL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/**
 * Read exactly @len bytes at @offset, retrying short reads and EINTR.
 * Returns 0, -ENODATA if the file ends first, or -errno.
 */
int fsutil_pread_full(int fd, void *buf, size_t len, uint64_t offset);

struct error;

/**
 * Whether an open that failed with @rc is worth trying again: -EWOULDBLOCK,
 * which an open with O_NONBLOCK meets while another process gives back its
 * lease on the file (an export mount holds read leases on what it reads,
 * core/lease.h, and gives them back at once). Waits a little first; *@waited_ms
 * (0 at the first failure) counts the wait, which stops past the kernel's
 * lease-break-time.
 */
bool fsutil_lease_retry(int rc, unsigned *waited_ms);

/**
 * fsutil_pread_full() of file @path, with a message naming it: -EIO when the
 * file ends first ("ends before byte N (the file was truncated)"), else the
 * read's errno.
 */
int fsutil_pread_named(int fd, void *buf, size_t len, uint64_t offset, const char *path,
		       struct error *err);

/** Write exactly @len bytes at @offset, retrying short writes. Returns 0 or -errno. */
int fsutil_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset);

/**
 * Open a source file read-only (or read-write if @writable) with O_CLOEXEC,
 * and O_NOATIME where the kernel allows it (it refuses for files the caller
 * does not own: then without). Returns the descriptor or -errno.
 */
int fsutil_open_source(const char *path, bool writable);

/** fsync the folder holding @path, so that a new name in it is durable. Returns 0 or -errno. */
int fsutil_fsync_parent(const char *path);

/**
 * Whether the path @path is @root or lies under it, by its text alone (both
 * absolute and normalized: real paths, or paths built from them; "/" holds
 * every path). Never touches the file system.
 */
bool fsutil_path_within(const char *path, const char *root);

/**
 * The folder part of @path ("." if none) into @out. Returns 0 or -ENAMETOOLONG.
 */
int fsutil_dirname(const char *path, char *out, size_t cap);

/**
 * Open @path for reading, as fsutil_open_source() does, only if it is a
 * regular file and no symbolic link (-EACCES for a link, -EINVAL for
 * another kind); its fstat() into *@st. Returns the descriptor or -errno.
 */
int fsutil_open_regular(const char *path, struct stat *st);

/**
 * A folder the administrator named (a mount option or operand: trusted, and
 * named by path once, when the mount starts), made if missing when @create
 * (with the folders above it that are missing too, each 0755 whatever the
 * umask), its links resolved into @real (PATH_MAX bytes), and opened.
 * Returns the descriptor (caller closes) or -errno.
 */
int fsutil_open_trusted_folder(const char *path, bool create, char *real);

/** opendir() of @path, with O_NOATIME where allowed: reading a store leaves its times alone. */
DIR *fsutil_opendir(const char *path);

/** fsutil_opendir() that refuses a symbolic link as @path's last component (errno ENOTDIR). */
DIR *fsutil_opendir_nofollow(const char *path);

/** The folder of @path with links resolved, into @out (PATH_MAX bytes). Returns 0 or -errno. */
int fsutil_real_dirname(const char *path, char *out);

/**
 * Replace the file at @path with @len bytes at @data crash-safely: a
 * temporary file beside it (mode 0644), fsynced, renamed over @path, the
 * folder fsynced. Returns 0 or -errno; on failure @path is unchanged.
 */
int fsutil_write_atomic(const char *path, const void *data, size_t len);

/**
 * fsutil_write_atomic() of @rel beneath the folder @dirfd (core/beneath.h:
 * no link followed); with @replace false an existing @rel is never
 * replaced (-EEXIST). Returns 0 or -errno.
 */
int fsutil_write_atomic_at(int dirfd, const char *rel, const void *data, size_t len, bool replace);

/**
 * stat() of a source file @path, opened as fsutil_open_source() opens it (so
 * through the thread's scope: core/asuser.h). Returns 0 or -errno.
 */
int fsutil_stat_source(const char *path, struct stat *st);

/**
 * The path of the file open on @fd, as the kernel names it (its
 * /proc/self/fd link; no path is walked), into @out (@cap bytes).
 * Returns 0, -ENAMETOOLONG, -ENOENT for a descriptor of no file in a
 * folder, or -errno.
 */
int fsutil_fd_path(int fd, char *out, size_t cap);

/**
 * The real path of the source @path into @out (@cap bytes): the name of the
 * file that fsutil_stat_source() would open (through the thread's scope, so
 * with the rights of whoever names it, never walked with the daemon's own).
 * Returns 0 or -errno.
 */
int fsutil_real_path_source(const char *path, char *out, size_t cap);

/** statvfs() of the folder @path, opened as fsutil_stat_source() opens it. Returns 0 or -errno. */
int fsutil_statvfs(const char *path, struct statvfs *out);

/**
 * Whether the name @path is taken (by anything, a link included), as
 * fsutil_stat_source() sees it: only a name that is certainly free (ENOENT,
 * ENOTDIR) is not.
 */
bool fsutil_name_taken(const char *path);

/**
 * The names in folder @dir (not "." and ".."), those @keep accepts (all when
 * NULL), sorted by strcmp so the result does not depend on readdir's order.
 * *@names is an array of *@count new strings (caller frees with
 * fsutil_names_free()). Returns 0 or -errno.
 */
int fsutil_list_names(const char *dir, bool (*keep)(const char *name), char ***names,
		      size_t *count);

/** fsutil_list_names() of the open folder @dirfd. */
int fsutil_list_names_at(int dirfd, bool (*keep)(const char *name), char ***names, size_t *count);

/** Free what fsutil_list_names() returned. NULL-safe. */
void fsutil_names_free(char **names, size_t count);

/**
 * Write @len bytes at @offset of @fd, a file new or being filled, leaving
 * out the 64 KiB pieces that are all zeros: they stay holes. The caller sets
 * the file's size (ftruncate). Returns 0 or -errno.
 */
int fsutil_pwrite_sparse(int fd, const void *buf, size_t len, uint64_t offset);

/**
 * Make a new temporary name for the output @path in its folder,
 * ".NAME.partial-XXXXXXXX" (random hex digits), into @temp (@cap bytes):
 * an empty folder (@folder, mode 0755), else an empty file open for
 * writing (mode 0644). Returns 0 for a folder, the file's descriptor
 * (caller closes), or -errno (nothing made).
 */
int fsutil_make_partial(const char *path, bool folder, char *temp, size_t cap);

/**
 * Give the whole output @temp (fsutil_make_partial()) the name @path, never
 * over a name (renameat2 RENAME_NOREPLACE: -EEXIST when @path was taken
 * meanwhile), then fsync the folder (as far as it can be). Returns 0 or
 * -errno; on failure @temp is still there, for the caller to remove.
 */
int fsutil_publish(const char *temp, const char *path);

/**
 * Copy the bytes [@offset, @offset + @len) of @in to the same place in @out
 * with copy_file_range(2): in the kernel, as a reflink or a server-side copy
 * where the file systems offer one, by read and write where they refuse it
 * (EXDEV between file systems, EINVAL or EOPNOTSUPP where one lacks it).
 * Returns 0, -ENODATA if @in ends first, or -errno.
 */
int fsutil_copy_range(int in, int out, uint64_t offset, uint64_t len);

/**
 * Copy the first @size bytes of @in into @out, a new empty file, by @in's
 * runs of data (SEEK_DATA/SEEK_HOLE; a file system without them is all
 * data): holes are never read and stay holes. @progress, when given, is told
 * of each piece done, holes counted as done; a negative errno it returns
 * stops the copy with that errno. Sets @out's size; does not sync.
 * Returns 0, -ENODATA if @in is shorter than @size, or -errno.
 */
int fsutil_copy_data(int in, int out, uint64_t size, int (*progress)(void *ctx, uint64_t bytes),
		     void *ctx);

/**
 * Copy the regular file @from to @to crash-safely (a temporary file beside
 * @to, fsynced, renamed over it), by fsutil_copy_data(): holes stay holes.
 * Returns 0 or -errno.
 */
int fsutil_copy_file(const char *from, const char *to);

/** Whether the @len bytes at @buf are all zero. */
bool fsutil_all_zero(const void *buf, size_t len);

/**
 * Remove @path (no trailing '/'): a file, or a folder with everything in
 * it, never following a symbolic link (a link is removed, not what it
 * names). The folder holding @path is opened by its name (the caller trusts
 * it); from there the walk is beneath_remove_tree()'s, through descriptors.
 * Returns 0 (also when @path does not exist) or the first -errno met.
 */
int fsutil_remove_tree(const char *path);

/**
 * fsutil_remove_tree() that tells @note (with @ctx) of each entry it could
 * not remove, by its path ("@path/...", or @path) and the positive errno
 * why (beneath_remove_tree_noting()). Returns as fsutil_remove_tree().
 */
int fsutil_remove_tree_noting(const char *path, void (*note)(void *ctx, const char *path, int code),
			      void *ctx);

/**
 * The whole of the regular file open on @fd, at most @max bytes, into a
 * new buffer *@data (NUL-terminated; free it) of *@len bytes. Returns 0,
 * -EINVAL for a file that is not regular, -EFBIG for one larger than @max,
 * -ENOMEM, or -errno (-EIO for a file that ends early).
 */
int fsutil_read_whole(int fd, size_t max, char **data, size_t *len);

#endif
