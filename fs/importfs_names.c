/*
 * importfs_names.c - the import mount's names: the imports at its root and
 * the status file, the folders and names in an import, their attributes
 * and extended attributes. An import still copying is its folder, reached
 * beneath its descriptor, never through a link (core/beneath.h); a
 * registered or failed one is its view (importfs_view.h).
 */
#define FUSE_USE_VERSION 314

#include "importfs_internal.h"

#include "beneath.h"
#include "clock.h"
#include "import.h"
#include "import_mount.h"
#include "import_status.h"
#include "json.h"
#include "log.h"
#include "pathbuf.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

struct importfs *importfs_of(void)
{
	return fuse_get_context()->private_data;
}

void importfs_touch(struct importfs_import *imp)
{
	atomic_store(&imp->last_ns, clock_monotonic_ns());
	atomic_store(&imp->dirty, true);
}

/* ---- where a path leads ---- */

/* The import named @name (@len bytes) that is not gone, or NULL; fs->mu is held. */
static struct importfs_import *find_import(struct importfs *fs, const char *name, size_t len)
{
	for (size_t i = 0; i < fs->count; i++)
		if (!fs->imports[i]->gone && strlen(fs->imports[i]->name) == len &&
		    memcmp(fs->imports[i]->name, name, len) == 0)
			return fs->imports[i];
	return NULL;
}

int importfs_resolve(struct importfs *fs, const char *path, struct importfs_where *w)
{
	const char *name, *slash;
	size_t len;

	memset(w, 0, sizeof(*w));
	if (!path || path[0] != '/')
		return -ENOENT;
	name = path + 1;
	if (!*name) {
		w->kind = IMPORTFS_ROOT;
		return 0;
	}
	slash = strchr(name, '/');
	len = slash ? (size_t)(slash - name) : strlen(name);
	if (!slash && strcmp(name, IMPORT_STATUS_FILE) == 0) {
		w->kind = IMPORTFS_STATUS;
		return 0;
	}
	pthread_mutex_lock(&fs->mu);
	w->imp = find_import(fs, name, len);
	pthread_mutex_unlock(&fs->mu);
	if (!w->imp) {
		if (slash || len > NAME_MAX)
			return slash ? -ENOENT : -ENAMETOOLONG;
		w->kind = IMPORTFS_NEW;
		memcpy(w->name, name, len + 1);
		return 0;
	}
	w->kind = IMPORTFS_IMPORT;
	w->rel = slash ? slash : "";
	w->at = slash ? slash + 1 : "";
	return strlen(w->rel) >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int importfs_begin(struct importfs *fs, const char *path, struct importfs_where *w)
{
	int rc = importfs_resolve(fs, path, w);

	if (rc == 0 && w->kind == IMPORTFS_IMPORT)
		pthread_rwlock_rdlock(&w->imp->rw);
	return rc;
}

int importfs_done(struct importfs_where *w, int rc)
{
	if (w->kind == IMPORTFS_IMPORT)
		pthread_rwlock_unlock(&w->imp->rw);
	return rc;
}

/* ---- the status file ---- */

char *importfs_status_text(struct importfs *fs, uid_t uid, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	struct jsonw j;

	if (!f)
		return NULL;
	jsonw_init(&j, f);
	jsonw_begin_object(&j, NULL);
	jsonw_string(&j, IMPORT_STATUS_STORE, fs->mount->store_root);
	jsonw_begin_array(&j, IMPORT_STATUS_IMPORTS);
	pthread_mutex_lock(&fs->mu);
	for (size_t i = 0; i < fs->count; i++) {
		struct importfs_import *imp = fs->imports[i];
		struct import_job_activity a = {
			.folder = imp->name,
			.files = atomic_load(&imp->files),
			.bytes = atomic_load(&imp->bytes),
			.writing = atomic_load(&imp->writers),
			.active = atomic_load(&imp->writers) > 0 || atomic_load(&imp->dirty),
		};

		if (imp->gone || (uid != 0 && uid != getuid() && imp->owner != uid))
			continue;
		import_job_write_status(imp->job, &j, &a);
	}
	pthread_mutex_unlock(&fs->mu);
	jsonw_end_array(&j);
	jsonw_end_object(&j);
	jsonw_finish(&j);
	fclose(f);
	return text;
}

/* ---- attributes ---- */

void importfs_fill_root(const struct importfs *fs, struct stat *st, mode_t type, size_t size)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = type == S_IFDIR ? S_IFDIR | 0755 : S_IFREG | 0444;
	st->st_nlink = type == S_IFDIR ? 2 : 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_size = (off_t)size;
	st->st_atim = st->st_mtim = st->st_ctim = fs->started;
}

/* The attributes of @rel in @imp's view, into @st; fs->mu is taken. */
static int view_stat(struct importfs *fs, struct importfs_import *imp, const char *rel,
		     struct stat *st)
{
	const struct importfs_entry *e;

	pthread_mutex_lock(&fs->mu);
	e = importfs_view_find(&imp->view, rel);
	if (e)
		*st = e->st;
	pthread_mutex_unlock(&fs->mu);
	return e ? 0 : -ENOENT;
}

int importfs_op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct importfs *fs = importfs_of();
	struct importfs_handle *h = fi ? (struct importfs_handle *)(uintptr_t)fi->fh : NULL;
	struct importfs_where w;
	int rc;

	if (h && h->fd >= 0) {
		if (fstat(h->fd, st) < 0)
			return -errno;
		st->st_blksize = 1 << 20;
		return 0;
	}
	if (h && !h->imp) {
		importfs_fill_root(fs, st, S_IFREG, h->len);
		return 0;
	}
	if (h) {
		/* A file of a registered import, open: its view. */
		pthread_rwlock_rdlock(&h->imp->rw);
		rc = view_stat(fs, h->imp, h->rel, st);
		pthread_rwlock_unlock(&h->imp->rw);
		return rc;
	}
	rc = importfs_begin(fs, path, &w);
	if (rc < 0)
		return rc;
	switch (w.kind) {
	case IMPORTFS_ROOT:
		importfs_fill_root(fs, st, S_IFDIR, 0);
		break;
	case IMPORTFS_STATUS: {
		size_t len = 0;
		char *text = importfs_status_text(fs, fuse_get_context()->uid, &len);

		free(text);
		importfs_fill_root(fs, st, S_IFREG, len);
		break;
	}
	case IMPORTFS_IMPORT:
		if (import_job_live(w.imp->job))
			rc = beneath_stat(import_job_folder_fd(w.imp->job), w.at, st);
		else
			rc = view_stat(fs, w.imp, w.rel, st);
		if (rc == 0 && S_ISREG(st->st_mode))
			st->st_blksize = 1 << 20; /* cp writes in pieces of this size */
		break;
	default:
		rc = -ENOENT;
	}
	return importfs_done(&w, rc);
}

/* ---- folders ---- */

/* List the folder @at of the live import @imp. */
static int list_live(struct importfs_import *imp, const char *at, void *buf, fuse_fill_dir_t fill)
{
	int fd = beneath_open(import_job_folder_fd(imp->job), at, O_RDONLY | O_DIRECTORY, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	int rc = 0;

	if (fd < 0)
		return fd;
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	for (struct dirent *e; (e = readdir(d));)
		fill(buf, e->d_name, NULL, 0, 0);
	closedir(d);
	return 0;
}

int importfs_op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
			struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct importfs *fs = importfs_of();
	struct importfs_where w;
	int rc = importfs_begin(fs, path, &w);

	(void)off, (void)fi, (void)flags;
	if (rc < 0)
		return rc;
	if (w.kind == IMPORTFS_ROOT) {
		fill(buf, ".", NULL, 0, 0);
		fill(buf, "..", NULL, 0, 0);
		fill(buf, IMPORT_STATUS_FILE, NULL, 0, 0);
		pthread_mutex_lock(&fs->mu);
		for (size_t i = 0; i < fs->count; i++)
			if (!fs->imports[i]->gone)
				fill(buf, fs->imports[i]->name, NULL, 0, 0);
		pthread_mutex_unlock(&fs->mu);
	} else if (w.kind != IMPORTFS_IMPORT) {
		rc = -ENOTDIR;
	} else if (import_job_live(w.imp->job)) {
		rc = list_live(w.imp, w.at, buf, fill);
	} else {
		const struct importfs_entry *e = importfs_view_find(&w.imp->view, w.rel);
		size_t n = strlen(w.rel);

		fill(buf, ".", NULL, 0, 0);
		fill(buf, "..", NULL, 0, 0);
		for (size_t i = 0; e && i < e->child_count; i++)
			fill(buf, w.imp->view.entries[e->first_child + i].rel + n + 1, NULL, 0, 0);
		if (!e)
			rc = -ENOENT;
	}
	return importfs_done(&w, rc);
}

void importfs_own(struct importfs_import *imp, const char *at, int fd)
{
	const struct fuse_context *ctx = fuse_get_context();
	int rc;

	/* With allow_other, the daemon runs as root for other users. */
	if (geteuid() != 0 || !ctx || (ctx->uid == 0 && ctx->gid == 0))
		return;
	rc = fd >= 0 ? (fchown(fd, ctx->uid, ctx->gid) < 0 ? -errno : 0)
		     : beneath_chown(import_job_folder_fd(imp->job), at, ctx->uid, ctx->gid);
	if (rc < 0)
		fslog(FUSE_LOG_WARNING, "cannot give '%s/%s' to uid %u: %s", imp->name, at,
		      (unsigned)ctx->uid, strerror(-rc));
}

/* Free @imp, whose job is over or was never listed. */
static void import_free(struct importfs_import *imp)
{
	import_job_free(imp->job);
	importfs_view_discard(&imp->view);
	pthread_rwlock_destroy(&imp->rw);
	free(imp->name);
	free(imp);
}

/* A new import named @name, its folder made with @mode. */
static int new_import(struct importfs *fs, const char *name, mode_t mode)
{
	struct importfs_import *imp = calloc(1, sizeof(*imp));
	struct importfs_import **grown = NULL;
	struct pathbuf shown = PATHBUF_INIT;
	int rc;

	if (!imp || !(imp->name = strdup(name)) ||
	    pathbuf_setf(&shown, "%s/%s", fs->o->mountpoint, name) < 0) {
		if (imp)
			free(imp->name);
		free(imp);
		return -ENOMEM;
	}
	rc = import_job_new(&imp->job, fs->mount, shown.buf);
	pathbuf_release(&shown);
	pthread_rwlock_init(&imp->rw, NULL);
	if (rc < 0) {
		import_free(imp);
		return rc;
	}
	fchmod(import_job_folder_fd(imp->job), import_safe_mode(mode));
	importfs_own(imp, "", import_job_folder_fd(imp->job));
	imp->owner = fuse_get_context()->uid;
	importfs_touch(imp);
	/* Two mkdir of one name at once: the first makes the import, the other is told. */
	pthread_mutex_lock(&fs->mu);
	rc = find_import(fs, name, strlen(name)) ? -EEXIST : -ENOMEM;
	if (rc == -ENOMEM && (grown = realloc(fs->imports, (fs->count + 1) * sizeof(*grown)))) {
		fs->imports = grown;
		fs->imports[fs->count++] = imp;
		rc = 0;
	}
	pthread_mutex_unlock(&fs->mu);
	if (rc < 0) {
		import_free(imp);
		return rc;
	}
	if (fs->o->verbose)
		fslog(FUSE_LOG_INFO, "import '%s' begins in '%s'", name,
		      import_job_folder(imp->job));
	return 0;
}

int importfs_op_mkdir(const char *path, mode_t mode)
{
	struct importfs *fs = importfs_of();
	struct importfs_where w;
	int rc = importfs_begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind == IMPORTFS_NEW)
		rc = new_import(fs, w.name, mode);
	else if (w.kind != IMPORTFS_IMPORT || !w.rel[0])
		rc = -EEXIST;
	else if (!import_job_live(w.imp->job))
		rc = import_job_refusal(w.imp->job);
	else if ((rc = beneath_mkdir(import_job_folder_fd(w.imp->job), w.at,
				     import_safe_mode(mode))) == 0) {
		importfs_own(w.imp, w.at, -1);
		importfs_touch(w.imp);
	}
	return importfs_done(&w, rc);
}

int importfs_op_rmdir(const char *path)
{
	struct importfs *fs = importfs_of();
	struct importfs_where w;
	int rc = importfs_begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind == IMPORTFS_ROOT)
		rc = -EBUSY;
	else if (w.kind != IMPORTFS_IMPORT)
		rc = w.kind == IMPORTFS_STATUS ? -ENOTDIR : -ENOENT;
	else if (!import_job_live(w.imp->job))
		rc = import_job_refusal(w.imp->job);
	else if (w.rel[0]) {
		rc = beneath_unlink(import_job_folder_fd(w.imp->job), w.at, AT_REMOVEDIR);
		if (rc == 0)
			importfs_touch(w.imp);
	} else if ((rc = import_job_abandon(w.imp->job)) == 0) {
		/* An import given up before it held anything; its descriptor stays open until
		 * unmount: others may be using it (rw shared). */
		pthread_mutex_lock(&fs->mu);
		w.imp->gone = true;
		pthread_mutex_unlock(&fs->mu);
	}
	return importfs_done(&w, rc);
}

/* ---- names ---- */

int importfs_op_unlink(const char *path)
{
	struct importfs *fs = importfs_of();
	struct importfs_where w;
	int rc = importfs_begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind != IMPORTFS_IMPORT || !w.rel[0])
		rc = w.kind == IMPORTFS_NEW ? -ENOENT : -EPERM;
	else if (!import_job_live(w.imp->job))
		rc = import_job_refusal(w.imp->job);
	else if ((rc = beneath_unlink(import_job_folder_fd(w.imp->job), w.at, 0)) == 0) {
		import_job_forget_close(w.imp->job, w.rel);
		importfs_touch(w.imp);
	}
	return importfs_done(&w, rc);
}

int importfs_op_rename(const char *from, const char *to, unsigned int flags)
{
	struct importfs *fs = importfs_of();
	struct importfs_where a, b;
	int rc = importfs_resolve(fs, from, &a);

	if (rc == 0)
		rc = importfs_resolve(fs, to, &b);
	if (rc < 0)
		return rc;
	if (a.kind != IMPORTFS_IMPORT || !a.rel[0] || b.kind != IMPORTFS_IMPORT || !b.rel[0])
		return -EPERM; /* the imports themselves keep their names */
	if (a.imp != b.imp)
		return -EXDEV;
	pthread_rwlock_rdlock(&a.imp->rw);
	if (!import_job_live(a.imp->job)) {
		rc = import_job_refusal(a.imp->job);
	} else {
		int dirfd = import_job_folder_fd(a.imp->job);

		rc = beneath_rename(dirfd, a.at, dirfd, b.at, flags);
		if (rc == 0) {
			import_job_forget_close(a.imp->job, b.rel);
			importfs_touch(a.imp);
		}
	}
	pthread_rwlock_unlock(&a.imp->rw);
	return rc;
}

int importfs_op_link(const char *from, const char *to)
{
	(void)from, (void)to;
	return -EPERM; /* an export folder holds no links */
}

int importfs_op_mknod(const char *path, mode_t mode, dev_t dev)
{
	(void)path, (void)mode, (void)dev;
	return -EPERM; /* nor devices, FIFOs or sockets */
}

/* ---- attributes set ---- */

enum change { CHMOD, CHOWN, TRUNCATE, UTIMENS };

/* The copy tool's last steps on a finished import: kept in the entry @rel of its view only. */
static int set_view_attr(struct importfs *fs, struct importfs_import *imp, const char *rel,
			 enum change what, mode_t mode, uid_t uid, gid_t gid,
			 const struct timespec *tv)
{
	struct importfs_entry *e;
	struct timespec now;
	int rc = 0;

	if (what == UTIMENS)
		clock_gettime(CLOCK_REALTIME, &now); /* a time of day, as shown: the wall clock */
	pthread_mutex_lock(&fs->mu);
	e = importfs_view_find(&imp->view, rel);
	if (!e) {
		rc = -ENOENT;
	} else if (what == CHMOD) {
		e->st.st_mode = (e->st.st_mode & S_IFMT) | import_safe_mode(mode);
	} else if (what == CHOWN) {
		if (uid != (uid_t)-1)
			e->st.st_uid = uid;
		if (gid != (gid_t)-1)
			e->st.st_gid = gid;
	} else {
		for (int i = 0; i < 2; i++) {
			struct timespec t = tv[i].tv_nsec == UTIME_NOW ? now : tv[i];

			if (tv[i].tv_nsec == UTIME_OMIT)
				continue;
			if (i == 0)
				e->st.st_atim = t;
			else
				e->st.st_mtim = t;
		}
	}
	pthread_mutex_unlock(&fs->mu);
	return rc;
}

static int set_attr(const char *path, struct fuse_file_info *fi, enum change what, mode_t mode,
		    uid_t uid, gid_t gid, off_t size, const struct timespec *tv);

/* set_attr() of the file open on @h, a file of a finished import now, by its name. */
static int set_attr_by_name(struct importfs_handle *h, enum change what, mode_t mode, uid_t uid,
			    gid_t gid, off_t size, const struct timespec *tv)
{
	struct pathbuf named = PATHBUF_INIT;
	int rc;

	if (pathbuf_setf(&named, "/%s%s", h->imp->name, h->rel) < 0)
		return -ENOMEM;
	rc = set_attr(named.buf, NULL, what, mode, uid, gid, size, tv);
	pathbuf_release(&named);
	return rc;
}

/* Apply a change of attributes: to the file (live), or to the view of a finished import. */
static int set_attr(const char *path, struct fuse_file_info *fi, enum change what, mode_t mode,
		    uid_t uid, gid_t gid, off_t size, const struct timespec *tv)
{
	struct importfs *fs = importfs_of();
	struct importfs_handle *h = fi ? (struct importfs_handle *)(uintptr_t)fi->fh : NULL;
	struct importfs_where w;
	int rc;

	if (h && h->imp && h->fd < 0)
		return set_attr_by_name(h, what, mode, uid, gid, size, tv); /* finished at open */
	if (h && h->imp) {
		pthread_rwlock_rdlock(&h->imp->rw);
		if (!import_job_live(h->imp->job)) {
			/* Registered since it was opened: the file is the store's now. */
			pthread_rwlock_unlock(&h->imp->rw);
			return what == TRUNCATE
				       ? import_job_refusal(h->imp->job)
				       : set_attr_by_name(h, what, mode, uid, gid, size, tv);
		}
		rc = what == CHMOD	? fchmod(h->fd, import_safe_mode(mode))
		     : what == CHOWN	? fchown(h->fd, uid, gid)
		     : what == TRUNCATE ? ftruncate(h->fd, size)
					: futimens(h->fd, tv);
		rc = rc < 0 ? -errno : 0;
		if (rc == 0)
			importfs_touch(h->imp);
		pthread_rwlock_unlock(&h->imp->rw);
		return rc;
	}
	rc = importfs_begin(fs, path, &w);
	if (rc < 0)
		return rc;
	if (w.kind != IMPORTFS_IMPORT) {
		rc = w.kind == IMPORTFS_NEW ? -ENOENT : -EPERM;
	} else if (import_job_live(w.imp->job)) {
		int dirfd = import_job_folder_fd(w.imp->job);

		rc = what == CHMOD	? beneath_chmod(dirfd, w.at, import_safe_mode(mode))
		     : what == CHOWN	? beneath_chown(dirfd, w.at, uid, gid)
		     : what == TRUNCATE ? beneath_truncate(dirfd, w.at, size)
					: beneath_utimens(dirfd, w.at, tv);
		/* An import given to a user (chown of its folder) is theirs in the status. */
		if (rc == 0 && what == CHOWN && !w.rel[0] && uid != (uid_t)-1) {
			pthread_mutex_lock(&fs->mu);
			w.imp->owner = uid;
			pthread_mutex_unlock(&fs->mu);
		}
		if (rc == 0)
			importfs_touch(w.imp);
	} else if (what == TRUNCATE) {
		rc = import_job_refusal(w.imp->job);
	} else {
		rc = set_view_attr(fs, w.imp, w.rel, what, mode, uid, gid, tv);
	}
	return importfs_done(&w, rc);
}

int importfs_op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return set_attr(path, fi, CHMOD, mode, 0, 0, 0, NULL);
}

int importfs_op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return set_attr(path, fi, CHOWN, 0, uid, gid, 0, NULL);
}

int importfs_op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	return set_attr(path, fi, TRUNCATE, 0, 0, 0, size, NULL);
}

int importfs_op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	return set_attr(path, fi, UTIMENS, 0, 0, 0, 0, tv);
}

/* ---- extended attributes (rsync -X) ---- */

/*
 * The file @path names, opened for its extended attributes: a descriptor
 * (the caller closes it, then calls importfs_done()), or -1 with the answer
 * in *@rc. Only "user." attributes are kept (rsync -X): others are taken and
 * dropped, so that root's rsync -aX of a folder with security labels
 * completes.
 */
static int xattr_target(const char *path, struct importfs_where *w, bool change, int *rc)
{
	struct importfs *fs = importfs_of();
	int fd;

	*rc = importfs_begin(fs, path, w);
	if (*rc < 0)
		return -1;
	if (w->kind != IMPORTFS_IMPORT) {
		*rc = importfs_done(w, w->kind == IMPORTFS_NEW ? -ENOENT : -ENOTSUP);
		return -1;
	}
	if (!import_job_live(w->imp->job)) {
		*rc = importfs_done(w, change ? import_job_refusal(w->imp->job) : -ENODATA);
		return -1;
	}
	fd = beneath_open(import_job_folder_fd(w->imp->job), w->at, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		*rc = importfs_done(w, fd);
	return fd;
}

static bool user_attribute(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

int importfs_op_setxattr(const char *path, const char *name, const char *value, size_t size,
			 int flags)
{
	struct importfs_where w;
	int rc, fd;

	fd = xattr_target(path, &w, true, &rc);
	if (fd < 0)
		return rc;
	if (!user_attribute(name)) {
		close(fd);
		return importfs_done(&w, 0); /* dropped: never planted on the store's files */
	}
	rc = fsetxattr(fd, name, value, size, flags) < 0 ? -errno : 0;
	close(fd);
	if (rc == 0)
		importfs_touch(w.imp);
	return importfs_done(&w, rc);
}

int importfs_op_getxattr(const char *path, const char *name, char *value, size_t size)
{
	struct importfs_where w;
	int rc, fd = xattr_target(path, &w, false, &rc);
	ssize_t n;

	if (fd < 0)
		return rc;
	n = fgetxattr(fd, name, value, size);
	rc = n < 0 ? -errno : (int)n;
	close(fd);
	return importfs_done(&w, rc);
}

int importfs_op_listxattr(const char *path, char *list, size_t size)
{
	struct importfs_where w;
	int rc, fd = xattr_target(path, &w, false, &rc);
	ssize_t n;

	if (fd < 0)
		return rc == -ENODATA ? 0 : rc;
	n = flistxattr(fd, list, size);
	rc = n < 0 ? -errno : (int)n;
	close(fd);
	return importfs_done(&w, rc);
}

int importfs_op_removexattr(const char *path, const char *name)
{
	struct importfs_where w;
	int rc, fd = xattr_target(path, &w, true, &rc);

	if (fd < 0)
		return rc;
	rc = fremovexattr(fd, name) < 0 ? -errno : 0;
	close(fd);
	if (rc == 0)
		importfs_touch(w.imp);
	return importfs_done(&w, rc);
}
