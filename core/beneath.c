/*
 * beneath.c - names resolved beneath a folder descriptor, never through a link.
 */
#include "beneath.h"

#include "error.h"
#include "fsutil.h"
#include "pathbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* How many times an openat2 that raced a rename (EAGAIN) is tried again. */
#define RETRIES 64

/* 0: not known yet; 1: openat2 works; 2: walk (no openat2, refused, or forced). Read and
 * written by any thread: atomic, no lock. */
static atomic_int mode_known;

void beneath_force_walk(bool walk)
{
	atomic_store(&mode_known, walk ? 2 : 0);
}

static int openat2_call(int dirfd, const char *rel, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(unsigned)flags,
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	for (int tries = 0;; tries++) {
		fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		if (fd >= 0 || errno != EAGAIN || tries == RETRIES)
			break;
	}
	return fd < 0 ? -errno : (int)fd;
}

/* Whether openat2 may be used: learnt once, by opening "." of @dirfd. */
static bool use_openat2(int dirfd)
{
	int known = atomic_load(&mode_known);

	if (known == 0) {
		int fd = openat2_call(dirfd, ".", O_PATH | O_CLOEXEC, 0);

		/* ENOSYS: an old kernel; EPERM: a seccomp filter (containers). */
		known = fd == -ENOSYS || fd == -EPERM ? 2 : 1;
		if (fd >= 0)
			close(fd);
		else if (known == 1)
			return true; /* another fault of that folder: decide next time */
		atomic_store(&mode_known, known);
	}
	return known == 1;
}

/* The next component of *@at into @name: 1, 0 at the end, or -errno. */
static int next_component(const char **at, char name[NAME_MAX + 1])
{
	const char *p = *at, *end;

	for (;;) {
		while (*p == '/')
			p++;
		if (!*p) {
			*at = p;
			return 0;
		}
		end = strchrnul(p, '/');
		if ((size_t)(end - p) > NAME_MAX)
			return -ENAMETOOLONG;
		if (end - p == 1 && p[0] == '.') {
			p = end;
			continue;
		}
		memcpy(name, p, (size_t)(end - p));
		name[end - p] = '\0';
		*at = end;
		return strcmp(name, "..") == 0 ? -EXDEV : 1;
	}
}

/* Whether nothing but '/' and "." components follow @at. */
static bool at_end(const char *at)
{
	char name[NAME_MAX + 1];

	return next_component(&at, name) == 0;
}

/* beneath_open() by a walk: each folder on the way opened O_PATH | O_NOFOLLOW. */
static int walk_open(int dirfd, const char *rel, int flags, mode_t mode)
{
	char name[NAME_MAX + 1];
	const char *at = rel;
	int cur = -1, rc;

	if (rel[0] == '/')
		return -EXDEV;
	for (;;) {
		int base = cur >= 0 ? cur : dirfd, fd;

		rc = next_component(&at, name);
		if (rc < 0)
			break;
		if (rc == 0) {
			/* The folder itself: "" or only "." */
			fd = openat(base, ".", flags | O_CLOEXEC, mode);
			rc = fd < 0 ? -errno : fd;
			break;
		}
		if (at_end(at)) {
			struct stat st;

			fd = openat(base, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
			rc = fd < 0 ? -errno : fd;
			/* O_PATH | O_NOFOLLOW opens a link itself; O_DIRECTORY says ENOTDIR. */
			if (fd >= 0 && (flags & O_PATH) && fstat(fd, &st) == 0 &&
			    S_ISLNK(st.st_mode)) {
				close(fd);
				rc = -ELOOP;
			} else if (rc == -ENOTDIR &&
				   fstatat(base, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				   S_ISLNK(st.st_mode)) {
				rc = -ELOOP;
			}
			break;
		}
		fd = openat(base, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			struct stat st;

			rc = -errno;
			if (rc == -ENOTDIR && fstatat(base, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				rc = -ELOOP;
			break;
		}
		if (cur >= 0)
			close(cur);
		cur = fd;
	}
	if (cur >= 0)
		close(cur);
	return rc;
}

int beneath_open(int dirfd, const char *rel, int flags, mode_t mode)
{
	if (!rel)
		return -EINVAL;
	if (rel[0] == '/')
		return -EXDEV;
	/* O_PATH | O_NOFOLLOW would open a last link itself: links are refused whatever the flags. */
	flags &= ~O_NOFOLLOW;
	/* openat2 refuses with O_PATH what open() ignores (O_NOATIME, O_NONBLOCK...). */
	if (flags & O_PATH)
		flags &= O_PATH | O_DIRECTORY | O_CLOEXEC;
	if (use_openat2(dirfd))
		return openat2_call(dirfd, rel[0] ? rel : ".", flags | O_CLOEXEC, mode);
	return walk_open(dirfd, rel, flags, mode);
}

int beneath_parent(int dirfd, const char *rel, char name[NAME_MAX + 1])
{
	const char *end, *start;
	char folder[PATH_MAX];
	size_t n;

	if (!rel || rel[0] == '/')
		return rel ? -EXDEV : -EINVAL;
	n = strlen(rel);
	while (n > 0 && rel[n - 1] == '/')
		n--;
	end = rel + n;
	start = end;
	while (start > rel && start[-1] != '/')
		start--;
	if (end == start || (size_t)(end - start) > NAME_MAX)
		return end == start ? -EINVAL : -ENAMETOOLONG;
	memcpy(name, start, (size_t)(end - start));
	name[end - start] = '\0';
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	if ((size_t)(start - rel) >= sizeof(folder))
		return -ENAMETOOLONG;
	memcpy(folder, rel, (size_t)(start - rel));
	folder[start - rel] = '\0';
	return beneath_open(dirfd, folder, O_PATH | O_DIRECTORY, 0);
}

/* Run @op on the last component of @rel beneath @dirfd: its folder's descriptor and its name. */
static int on_last(int dirfd, const char *rel, int (*op)(int parent, const char *name, void *ctx),
		   void *ctx)
{
	char name[NAME_MAX + 1];
	int parent = beneath_parent(dirfd, rel, name), rc;

	if (parent < 0)
		return parent;
	rc = op(parent, name, ctx) < 0 ? -errno : 0;
	close(parent);
	return rc;
}

static int mkdir_op(int parent, const char *name, void *ctx)
{
	return mkdirat(parent, name, *(mode_t *)ctx);
}

int beneath_mkdir(int dirfd, const char *rel, mode_t mode)
{
	return on_last(dirfd, rel, mkdir_op, &mode);
}

static int unlink_op(int parent, const char *name, void *ctx)
{
	return unlinkat(parent, name, *(int *)ctx);
}

int beneath_unlink(int dirfd, const char *rel, int flags)
{
	return on_last(dirfd, rel, unlink_op, &flags);
}

/* Run @op on the last components of @from beneath @fromfd and @to beneath @tofd. */
static int on_two(int fromfd, const char *from, int tofd, const char *to,
		  int (*op)(int pa, const char *a, int pb, const char *b, unsigned flags),
		  unsigned flags)
{
	char a[NAME_MAX + 1], b[NAME_MAX + 1];
	int pa = beneath_parent(fromfd, from, a), pb, rc;

	if (pa < 0)
		return pa;
	pb = beneath_parent(tofd, to, b);
	if (pb < 0) {
		close(pa);
		return pb;
	}
	rc = op(pa, a, pb, b, flags) < 0 ? -errno : 0;
	close(pa);
	close(pb);
	return rc;
}

static int rename_op(int pa, const char *a, int pb, const char *b, unsigned flags)
{
	return renameat2(pa, a, pb, b, flags);
}

int beneath_rename(int fromfd, const char *from, int tofd, const char *to, unsigned flags)
{
	return on_two(fromfd, from, tofd, to, rename_op, flags);
}

static int link_op(int pa, const char *a, int pb, const char *b, unsigned flags)
{
	/* No AT_SYMLINK_FOLLOW: a link is linked as itself, never what it names. */
	return linkat(pa, a, pb, b, (int)flags);
}

int beneath_link(int fromfd, const char *from, int tofd, const char *to)
{
	return on_two(fromfd, from, tofd, to, link_op, 0);
}

/* chmod() of the file open on the O_PATH descriptor @fd: fchmod() refuses those. */
static int chmod_path_fd(int fd, mode_t mode)
{
	char proc[64];

	/* The descriptor's own magic link names the very file opened, link-free. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return chmod(proc, mode) < 0 ? -errno : 0; /* door: this descriptor's own link */
}

int beneath_chmod(int dirfd, const char *rel, mode_t mode)
{
	int fd = beneath_open(dirfd, rel, O_PATH, 0), rc;

	if (fd < 0)
		return fd;
	rc = chmod_path_fd(fd, mode);
	close(fd);
	return rc;
}

struct owner {
	uid_t uid;
	gid_t gid;
};

static int chown_op(int parent, const char *name, void *ctx)
{
	const struct owner *o = ctx;

	return fchownat(parent, name, o->uid, o->gid, AT_SYMLINK_NOFOLLOW);
}

int beneath_chown(int dirfd, const char *rel, uid_t uid, gid_t gid)
{
	struct owner o = {uid, gid};

	if (rel && !rel[0])
		return fchown(dirfd, uid, gid) < 0 ? -errno : 0;
	return on_last(dirfd, rel, chown_op, &o);
}

int beneath_truncate(int dirfd, const char *rel, off_t size)
{
	unsigned waited = 0;
	int fd, rc;

	do
		fd = beneath_open(dirfd, rel, O_WRONLY | O_NONBLOCK, 0);
	while (fsutil_lease_retry(fd, &waited));
	if (fd < 0)
		return fd;
	rc = ftruncate(fd, size) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int utimens_op(int parent, const char *name, void *ctx)
{
	return utimensat(parent, name, ctx, AT_SYMLINK_NOFOLLOW);
}

int beneath_utimens(int dirfd, const char *rel, const struct timespec times[2])
{
	if (rel && !rel[0])
		return futimens(dirfd, times) < 0 ? -errno : 0;
	return on_last(dirfd, rel, utimens_op, (void *)times);
}

static int stat_op(int parent, const char *name, void *ctx)
{
	return fstatat(parent, name, ctx, AT_SYMLINK_NOFOLLOW);
}

int beneath_stat(int dirfd, const char *rel, struct stat *st)
{
	if (rel && !rel[0])
		return fstat(dirfd, st) < 0 ? -errno : 0;
	return on_last(dirfd, rel, stat_op, st);
}

/* ---- removal of a tree ---- */

/* One folder on the way down: its name in its parent, its identity, the names it could not lose. */
struct level {
	char name[NAME_MAX + 1];
	dev_t dev;
	ino_t ino;
	char **stuck;
	size_t stuck_count;
};

static bool is_stuck(const struct level *l, const char *name)
{
	for (size_t i = 0; i < l->stuck_count; i++)
		if (strcmp(l->stuck[i], name) == 0)
			return true;
	return false;
}

static void add_stuck(struct level *l, const char *name)
{
	char **grown = realloc(l->stuck, (l->stuck_count + 1) * sizeof(*grown));

	if (!grown)
		return;
	l->stuck = grown;
	if ((grown[l->stuck_count] = strdup(name)))
		l->stuck_count++;
}

/* Give the folder open on @fd (any kind of descriptor) the owner's rwx bits. */
static void make_writable(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || (st.st_mode & 0700) == 0700)
		return;
	if (fchmod(fd, (st.st_mode | 0700) & 07777) < 0)
		chmod_path_fd(fd, (st.st_mode | 0700) & 07777);
}

/* Open the folder @name in @parent for listing, making it readable if it refuses. */
static int open_folder(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == EACCES) {
		int path = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (path >= 0) {
			make_writable(path);
			close(path);
		}
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	return fd < 0 ? -errno : fd;
}

/* A removal under way: where it is, and what it could not remove. */
struct removal {
	const char *rel;      /* the tree, as named beneath the caller's folder */
	struct level *levels; /* [0] the tree's top, [depth] the folder being emptied */
	size_t depth, cap;
	int first_error;
	void (*note)(void *ctx, const char *rel, int code);
	void *ctx;
};

/*
 * @name (NULL: the folder of level @depth itself) of the folder of level
 * @depth stays, for errno @code: told to the note, as "@rel/<levels>/@name".
 */
static void note_stuck(const struct removal *r, size_t depth, const char *name, int code)
{
	struct pathbuf path = PATHBUF_INIT;

	if (!r->note)
		return;
	pathbuf_adds(&path, r->rel);
	for (size_t i = 1; i <= depth; i++)
		pathbuf_join(&path, r->levels[i].name);
	if (name)
		pathbuf_join(&path, name);
	if (!path.err)
		r->note(r->ctx, path.buf, code);
	pathbuf_release(&path);
}

/*
 * Empty the folder open on @cur (level @r->depth) of its files, and find its
 * first subfolder not stuck (into @sub); 1 if there is one, 0 if none is
 * left, or -errno. Files that cannot be removed are added to the level's
 * stuck names.
 */
static int empty_files(struct removal *r, int cur, char sub[NAME_MAX + 1])
{
	struct level *l = &r->levels[r->depth];
	int listfd = dup(cur);
	DIR *d = listfd >= 0 ? fdopendir(listfd) : NULL;
	struct dirent *e;
	int found = 0;

	if (!d) {
		if (listfd >= 0)
			close(listfd);
		return -errno;
	}
	while ((e = readdir(d))) {
		struct stat st;
		int code = 0;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    is_stuck(l, e->d_name))
			continue;
		if (fstatat(cur, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			snprintf(sub, NAME_MAX + 1, "%s", e->d_name);
			found = 1;
			break;
		}
		if (unlinkat(cur, e->d_name, 0) < 0 && (code = errno) == EACCES) {
			make_writable(cur);
			code = unlinkat(cur, e->d_name, 0) < 0 ? errno : 0;
		}
		if (fstatat(cur, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (!r->first_error)
				r->first_error = -EPERM;
			add_stuck(l, e->d_name);
			note_stuck(r, r->depth, e->d_name, code ? code : EPERM);
		}
	}
	closedir(d);
	return found;
}

/* Go down from the folder open on *@cur into its subfolder @sub: 0, 1 if it stays (noted), or
 * -ENOMEM. */
static int enter(struct removal *r, int *cur, const char *sub)
{
	struct level *l = &r->levels[r->depth];
	int next = open_folder(*cur, sub);
	struct stat st;

	if (next < 0 || fstat(next, &st) < 0) {
		int code = next < 0 ? next : -errno;

		if (!r->first_error)
			r->first_error = code;
		if (next >= 0)
			close(next);
		add_stuck(l, sub);
		note_stuck(r, r->depth, sub, -code);
		return 1;
	}
	if (r->depth + 1 == r->cap) {
		struct level *grown = realloc(r->levels, r->cap * 2 * sizeof(*grown));

		if (!grown) {
			close(next);
			return -ENOMEM;
		}
		memset(grown + r->cap, 0, r->cap * sizeof(*grown));
		r->levels = grown;
		r->cap *= 2;
	}
	l = &r->levels[++r->depth];
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", sub);
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	close(*cur);
	*cur = next;
	return 0;
}

/* Go up from the emptied folder open on *@cur and remove it: 0, or -ESTALE when its parent is no
 * longer the one it was entered from. */
static int leave(struct removal *r, int *cur)
{
	struct level *l = &r->levels[r->depth];
	int next = openat(*cur, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (next < 0 || fstat(next, &st) < 0 || st.st_dev != r->levels[r->depth - 1].dev ||
	    st.st_ino != r->levels[r->depth - 1].ino) {
		/* Moved under us: stop rather than remove anything elsewhere. */
		if (next >= 0)
			close(next);
		return -ESTALE;
	}
	close(*cur);
	*cur = next;
	if (unlinkat(*cur, l->name, AT_REMOVEDIR) < 0) {
		if (!r->first_error)
			r->first_error = -errno;
		add_stuck(&r->levels[r->depth - 1], l->name);
		note_stuck(r, r->depth - 1, l->name, errno);
	}
	for (size_t i = 0; i < l->stuck_count; i++)
		free(l->stuck[i]);
	free(l->stuck);
	l->stuck = NULL;
	l->stuck_count = 0;
	r->depth--;
	return 0;
}

/* beneath_remove_tree() and beneath_remove_tree_noting(): one walk. */
static int remove_tree(int dirfd, const char *rel, char *left,
		       void (*note)(void *ctx, const char *rel, int code), void *ctx)
{
	struct removal r = {.rel = rel, .note = note, .ctx = ctx};
	char name[NAME_MAX + 1], sub[NAME_MAX + 1];
	int parent, cur = -1, rc = 0;
	bool told = false; /* every failure noted as it came */
	struct stat st;

	if (left)
		left[0] = '\0';
	parent = beneath_parent(dirfd, rel, name);
	if (parent < 0) {
		if (parent != -ENOENT)
			note_stuck(&r, 0, NULL, -parent);
		return parent == -ENOENT ? 0 : parent;
	}
	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -errno : 0;
		goto out;
	}
	cur = open_folder(parent, name);
	if (cur < 0) {
		rc = cur;
		goto out;
	}
	r.levels = calloc(r.cap = 16, sizeof(*r.levels));
	if (!r.levels) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(r.levels[0].name, sizeof(r.levels[0].name), "%s", name);
	fstat(cur, &st);
	r.levels[0].dev = st.st_dev;
	r.levels[0].ino = st.st_ino;
	for (;;) {
		int found = empty_files(&r, cur, sub);

		if (found < 0) {
			if (!r.first_error)
				r.first_error = found;
			note_stuck(&r, r.depth, NULL, -found);
			found = 0;
		}
		if (found) {
			rc = enter(&r, &cur, sub);
			if (rc < 0)
				goto out;
			continue;
		}
		/* Empty of all it can lose: up, then remove it. */
		if (r.depth == 0)
			break;
		rc = leave(&r, &cur);
		if (rc < 0)
			goto out;
	}
	close(cur);
	cur = -1;
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
		if (!r.first_error)
			r.first_error = -errno;
		note_stuck(&r, 0, NULL, errno);
	}
	if (r.first_error && left && r.levels[0].stuck_count)
		snprintf(left, PATH_MAX, "%s/%s", rel, r.levels[0].stuck[0]);
	else if (r.first_error && left)
		snprintf(left, PATH_MAX, "%s", rel);
	rc = r.first_error;
	told = true;
out:
	/* A failure that stopped the walk (at the top, ESTALE, ENOMEM) is told here. */
	if (rc < 0 && !told)
		note_stuck(&r, r.levels ? r.depth : 0, NULL, -rc);
	for (size_t i = 0; r.levels && i <= r.depth && i < r.cap; i++) {
		for (size_t k = 0; k < r.levels[i].stuck_count; k++)
			free(r.levels[i].stuck[k]);
		free(r.levels[i].stuck);
	}
	free(r.levels);
	if (cur >= 0)
		close(cur);
	close(parent);
	return rc;
}

int beneath_remove_tree(int dirfd, const char *rel, char *left)
{
	return remove_tree(dirfd, rel, left, NULL, NULL);
}

int beneath_remove_tree_noting(int dirfd, const char *rel,
			       void (*note)(void *ctx, const char *rel, int code), void *ctx)
{
	return remove_tree(dirfd, rel, NULL, note, ctx);
}

int beneath_private_folder(int dirfd, const char *where, const char *name, bool create,
			   struct error *err)
{
	struct stat st;
	int fd;

	if (create && mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return error_set(err, errno, "cannot create '%s/%s': %s", where, name,
				 strerror(errno));
	fd = beneath_open(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return error_set(err, -fd, "cannot open '%s/%s': %s", where, name, strerror(-fd));
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid()) {
		close(fd);
		return error_set(err, EPERM, "'%s/%s' belongs to uid %u, not to this process: left alone",
				 where, name, (unsigned)st.st_uid);
	}
	if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0) {
		int code = errno;

		close(fd);
		return error_set(err, code, "cannot make '%s/%s' private: %s", where, name,
				 strerror(code));
	}
	return fd;
}

bool beneath_lexically(const char *path, const char *root, const char **rel)
{
	size_t n = strlen(root);

	if (!path || path[0] != '/' || root[0] != '/' || !fsutil_path_within(path, root))
		return false;
	while (n > 1 && root[n - 1] == '/')
		n--;
	if (n == 1) {
		path++;
	} else {
		path += n;
		while (*path == '/')
			path++;
	}
	for (const char *p = path; *p;) {
		const char *end = strchrnul(p, '/');

		if ((end - p == 2 && p[0] == '.' && p[1] == '.') || (end - p == 1 && p[0] == '.'))
			return false;
		p = *end ? end + 1 : end;
	}
	if (rel)
		*rel = path;
	return true;
}

bool beneath_plain_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return false;
	return true;
}
