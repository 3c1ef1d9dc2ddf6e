/*
 * importfs_files.c - the import mount's open files: the status file (made
 * when opened, read to its end), and the files of an import, written once
 * straight into its folder and made durable as each completes; a
 * configuration or the settings document must parse when closed, or its
 * close() fails (core/import_job.h).
 */
#define FUSE_USE_VERSION 314

#include "importfs_internal.h"

#include "beneath.h"
#include "clock.h"
#include "error.h"
#include "fsutil.h"
#include "import.h"
#include "import_mount.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static struct importfs_handle *handle_new(struct importfs_import *imp, int fd, bool writer,
					  const char *rel)
{
	struct importfs *fs = importfs_of();
	struct importfs_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->imp = imp;
	h->fd = fd;
	h->writer = writer;
	h->kind = rel ? import_file_kind(rel) : IMPORT_FILE_DATA;
	h->rel = rel ? strdup(rel) : NULL;
	if (rel && !h->rel) {
		free(h);
		return NULL;
	}
	if (imp && writer)
		atomic_fetch_add(&imp->writers, 1);
	openfiles_add(&fs->open, &h->link);
	return h;
}

/* Close and free @h, taken out of the open files already. */
static void handle_free(struct importfs_handle *h)
{
	if (h->fd >= 0)
		close(h->fd);
	free(h->rel);
	free(h->text);
	free(h);
}

void importfs_handles_drop(struct importfs *fs)
{
	struct openfiles_link *l;

	while ((l = openfiles_take(&fs->open)))
		handle_free(OPENFILES_HANDLE(l, struct importfs_handle));
}

/* Open (or with O_CREAT make) the file @w names, for the handle in @fi. */
static int open_file(struct importfs_where *w, int flags, mode_t mode, struct fuse_file_info *fi)
{
	bool writer = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
	struct importfs_handle *h;
	int fd;

	if (!import_job_live(w->imp->job)) {
		if (writer || (flags & O_CREAT))
			return import_job_refusal(w->imp->job);
		if (!importfs_view_find(&w->imp->view, w->rel))
			return -ENOENT;
		fd = -1; /* the bytes now lie in the store: reads are refused */
	} else {
		fd = beneath_open(import_job_folder_fd(w->imp->job), w->at, flags & ~O_NOCTTY,
				  import_safe_mode(mode));
		if (fd < 0)
			return fd;
		if (flags & O_CREAT)
			importfs_own(w->imp, w->at,
				     fd); /* CREATE comes for a name that did not exist */
	}
	h = handle_new(w->imp, fd, fd >= 0 && writer, w->rel);
	if (!h) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	if (flags & (O_CREAT | O_TRUNC))
		h->written = true;
	if (flags & O_CREAT)
		atomic_fetch_add(&w->imp->files, 1);
	if (writer)
		importfs_touch(w->imp);
	fi->fh = (uintptr_t)h;
	return 0;
}

int importfs_op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct importfs *fs = importfs_of();
	struct importfs_where w;
	int rc = importfs_begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind == IMPORTFS_NEW || w.kind == IMPORTFS_STATUS || w.kind == IMPORTFS_ROOT)
		rc = w.kind == IMPORTFS_NEW ? -EPERM : -EEXIST; /* only folders at the root */
	else if (!w.rel[0])
		rc = -EISDIR;
	else
		rc = open_file(&w, fi->flags | O_CREAT, mode, fi);
	return importfs_done(&w, rc);
}

int importfs_op_open(const char *path, struct fuse_file_info *fi)
{
	struct importfs *fs = importfs_of();
	struct importfs_where w;
	int rc = importfs_begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind == IMPORTFS_STATUS) {
		struct importfs_handle *h = handle_new(NULL, -1, false, NULL);

		if ((fi->flags & O_ACCMODE) != O_RDONLY)
			rc = -EACCES;
		else if (!h ||
			 !(h->text = importfs_status_text(fs, fuse_get_context()->uid, &h->len)))
			rc = -ENOMEM;
		if (rc < 0 && h) {
			openfiles_remove(&fs->open, &h->link);
			handle_free(h);
		} else if (rc == 0) {
			fi->fh = (uintptr_t)h;
			fi->direct_io = 1;
		}
	} else if (w.kind != IMPORTFS_IMPORT) {
		rc = w.kind == IMPORTFS_ROOT ? -EISDIR : -ENOENT;
	} else {
		rc = open_file(&w, fi->flags & ~O_CREAT, 0, fi);
	}
	return importfs_done(&w, rc);
}

int importfs_op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct importfs_handle *h = (struct importfs_handle *)(uintptr_t)fi->fh;
	ssize_t n;

	(void)path;
	if (!h->imp) {
		if ((size_t)off >= h->len)
			return 0;
		n = (ssize_t)(h->len - (size_t)off < size ? h->len - (size_t)off : size);
		memcpy(buf, h->text + off, (size_t)n);
		return (int)n;
	}
	if (h->fd < 0)
		return -EACCES;
	n = pread(h->fd, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

int importfs_op_write_buf(const char *path, struct fuse_bufvec *buf, off_t off,
			  struct fuse_file_info *fi)
{
	struct importfs_handle *h = (struct importfs_handle *)(uintptr_t)fi->fh;
	size_t size = fuse_buf_size(buf), done = 0;
	struct fuse_bufvec to = FUSE_BUFVEC_INIT(size);
	int failing;

	(void)path;
	if (!h->imp || h->fd < 0)
		return -EBADF;
	failing = atomic_load(&h->imp->failing);
	if (failing)
		return -failing;
	/* The bytes go from the kernel's pipe to the file, never through this process's
	 * memory, when the kernel spliced them (FUSE_CAP_SPLICE_READ); written from memory
	 * otherwise. */
	to.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
	to.buf[0].fd = h->fd;
	to.buf[0].pos = off;
	while (done < size) {
		/* Both vectors move on as they are copied: a short copy goes on where it
		 * stopped, and a failure after a short one says its errno. */
		ssize_t n = fuse_buf_copy(&to, buf, 0);

		if (n <= 0)
			return importfs_write_failed(importfs_of(), h->imp, n < 0 ? (int)-n : EIO);
		done += (size_t)n;
	}
	h->written = true;
	/* Start the file's writeback as it comes: the disk works while the copy goes on,
	 * and the fsync at its close has little left to wait for. */
	if (atomic_fetch_add(&h->unsent, size) + size >= IMPORTFS_WRITEBACK_BYTES) {
		atomic_store(&h->unsent, 0);
		sync_file_range(h->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	atomic_fetch_add(&h->imp->bytes, size);
	atomic_store(&h->imp->last_ns, clock_monotonic_ns());
	return (int)size;
}

int importfs_op_flush(const char *path, struct fuse_file_info *fi)
{
	struct importfs *fs = importfs_of();
	struct importfs_handle *h = (struct importfs_handle *)(uintptr_t)fi->fh;
	int rc = 0;

	(void)path;
	if (!h->imp || h->fd < 0 || !h->written)
		return 0;
	/* Each file is made durable as it completes: the commit has only names to place. */
	if (fsync(h->fd) < 0)
		return importfs_write_failed(fs, h->imp, errno);
	h->written = false;
	if (h->kind != IMPORT_FILE_DATA) {
		struct error err;

		error_clear(&err);
		pthread_rwlock_rdlock(&h->imp->rw);
		rc = import_job_file_closed(h->imp->job, h->rel, h->kind, &err);
		pthread_rwlock_unlock(&h->imp->rw);
		if (rc < 0 && fs->o->verbose)
			fslog(FUSE_LOG_ERR, "%s", error_message(&err));
	}
	importfs_touch(h->imp);
	return rc;
}

int importfs_op_release(const char *path, struct fuse_file_info *fi)
{
	struct importfs *fs = importfs_of();
	struct importfs_handle *h = (struct importfs_handle *)(uintptr_t)fi->fh;

	(void)path;
	openfiles_remove(&fs->open, &h->link);
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	if (h->imp && h->writer) {
		importfs_touch(h->imp);
		atomic_fetch_sub(&h->imp->writers, 1);
		pthread_cond_signal(&fs->wake);
	}
	handle_free(h);
	return 0;
}

int importfs_op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct importfs_handle *h = (struct importfs_handle *)(uintptr_t)fi->fh;

	(void)path;
	if (!h->imp || h->fd < 0)
		return 0;
	if ((datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0)
		return importfs_write_failed(importfs_of(), h->imp, errno);
	return 0;
}

int importfs_op_statfs(const char *path, struct statvfs *st)
{
	struct importfs *fs = importfs_of();

	(void)path;
	/* Where the data really goes. */
	return fstatvfs(fs->mount->staging_fd, st) < 0 ? -errno : 0;
}
