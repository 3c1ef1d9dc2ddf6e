/*
 * beneath.h - the one door for file operations in places that others
 * control: an import's staging folder, the store's folders that imports
 * write, the journals' folder.
 *
 * Every name is resolved from an open folder descriptor, never from a path
 * string handed to a call that follows links: openat2() with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or, where
 * the kernel lacks openat2 (ENOSYS) or a seccomp filter refuses it (EPERM),
 * a walk of the components one by one, each opened O_NOFOLLOW. No component
 * may be a symbolic link, "..", or absolute: such a name fails with -ELOOP
 * (a link) or -EXDEV (leaving the folder). The operations that change a name
 * (mkdirat, unlinkat, renameat2, linkat, fchownat, utimensat) act on the
 * last component from a descriptor of the folder holding it, opened this way.
 *
 * Relative names are '/'-separated; empty components and "." are skipped;
 * "" names the folder itself. All functions return a descriptor or 0 on
 * success, or a negative errno.
 */
#ifndef IMPEX_BENEATH_H
#define IMPEX_BENEATH_H

#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

struct error;

/**
 * open(2) of @rel beneath the folder @dirfd, following no link.
 * @flags as open(2) (O_CLOEXEC is added; O_NOFOLLOW is implied for every
 * component), @mode for O_CREAT. Returns the descriptor (caller closes) or
 * -errno: -ELOOP for a link on the way, -EXDEV for a name that leaves @dirfd.
 */
int beneath_open(int dirfd, const char *rel, int flags, mode_t mode);

/**
 * The folder holding the last component of @rel beneath @dirfd, opened
 * O_PATH (for the *at() calls), and that component in @name. Returns the
 * descriptor (caller closes) or -errno: -EINVAL for a name whose last
 * component is empty, "." or "..".
 */
int beneath_parent(int dirfd, const char *rel, char name[NAME_MAX + 1]);

/** mkdirat() of @rel beneath @dirfd with @mode. Returns 0 or -errno (-EEXIST). */
int beneath_mkdir(int dirfd, const char *rel, mode_t mode);

/** unlinkat() of @rel beneath @dirfd (@flags: 0 or AT_REMOVEDIR). Returns 0 or -errno. */
int beneath_unlink(int dirfd, const char *rel, int flags);

/**
 * renameat2() of @from beneath @fromfd to @to beneath @tofd, with @flags
 * (RENAME_NOREPLACE, RENAME_EXCHANGE). Returns 0 or -errno.
 */
int beneath_rename(int fromfd, const char *from, int tofd, const char *to, unsigned flags);

/** linkat() of the file @from beneath @fromfd as @to beneath @tofd (never over a name). */
int beneath_link(int fromfd, const char *from, int tofd, const char *to);

/**
 * chmod, chown (-1 keeps), truncate and utimensat of @rel beneath @dirfd,
 * never through a link (a last link is refused, -ELOOP, for chmod and
 * truncate; changed as itself for chown and times). Return 0 or -errno.
 */
int beneath_chmod(int dirfd, const char *rel, mode_t mode);
int beneath_chown(int dirfd, const char *rel, uid_t uid, gid_t gid);
int beneath_truncate(int dirfd, const char *rel, off_t size);
int beneath_utimens(int dirfd, const char *rel, const struct timespec times[2]);

/** fstatat() of @rel beneath @dirfd, not following a last link (lstat). Returns 0 or -errno. */
int beneath_stat(int dirfd, const char *rel, struct stat *st);

/**
 * Remove @rel beneath @dirfd: a file, or a folder with everything in it,
 * never following a link (a link is removed, not what it names), to any
 * depth (no descriptor or stack frame per level), making folders that
 * refuse it writable as it goes. Returns 0 (also when @rel does not exist)
 * or the first -errno met; what could not be removed is left, and with
 * @left (may be NULL) the relative name of the first such entry is written
 * there (PATH_MAX bytes).
 */
int beneath_remove_tree(int dirfd, const char *rel, char *left);

/**
 * beneath_remove_tree() that tells @note (with @ctx) of each entry it could
 * not remove, as it goes: its name beneath @dirfd ("@rel/..."; @rel itself
 * for the tree's top) and the positive errno why. Returns 0 or the first
 * -errno met, as beneath_remove_tree() does.
 */
int beneath_remove_tree_noting(int dirfd, const char *rel,
			       void (*note)(void *ctx, const char *rel, int code), void *ctx);

/**
 * Open the folder @name of the folder @dirfd (@where: its path, for
 * messages) that belongs to this process alone, making it (0700) if missing
 * and @create: it must be a folder, not a link, owned by this process's
 * effective user; its mode is set to 0700. Returns the descriptor (caller
 * closes) or a negative errno with a message: -EPERM for one owned by
 * someone else (left alone), -ENOENT for one missing without @create.
 */
int beneath_private_folder(int dirfd, const char *where, const char *name, bool create,
			   struct error *err);

/**
 * Whether the absolute path @path lies under the absolute path @root, by
 * their text alone (no "." or ".." components, no links resolved: callers
 * compare names they made or checked). *@rel (may be NULL) receives the part
 * of @path after @root ("" for @root itself), borrowed from @path.
 */
bool beneath_lexically(const char *path, const char *root, const char **rel);

/**
 * Whether the name @name is plain: not empty, not "." or "..", no '/', no
 * control character, at most NAME_MAX bytes.
 */
bool beneath_plain_name(const char *name);

/**
 * Tests: make beneath_open() walk the components itself, as it does on
 * kernels without openat2 (true), or use openat2 again (false).
 */
void beneath_force_walk(bool walk);

#endif
