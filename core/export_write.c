/*
 * export_write.c - copying a plan to disk (see export_write.h): what
 * `impex export` does, and the import's copies of files as they lie.
 */
#include "export_write.h"

#include "error.h"
#include "export_file.h"
#include "fsutil.h"
#include "pathbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int export_write_file_progress(const struct export_node *node, const char *dest,
			       int (*progress)(void *ctx, uint64_t bytes), void *ctx,
			       struct error *err)
{
	int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), rc;

	if (fd < 0)
		return error_errno(err, errno, "cannot create", dest);
	rc = export_write_file_fd(node, fd, dest, progress, ctx, err);
	close(fd);
	return rc;
}

/* @progress's word on @bytes more done (0: go on), made an error of writing @dest. */
static int tell(int (*progress)(void *ctx, uint64_t bytes), void *ctx, uint64_t bytes,
		const char *dest, struct error *err)
{
	int rc = progress ? progress(ctx, bytes) : 0;

	return rc < 0 ? error_errno(err, -rc, "cannot write", dest) : 0;
}

/*
 * Write the file @f serves, read from its source as it lies, into @fd (new,
 * empty; named @dest in messages): the source's runs of data copied by
 * copy_file_range, its holes kept, then the patches laid over them, then the
 * source checked unchanged since it was listed.
 */
static int copy_as_it_lies(const struct export_file *f, int fd, const char *dest,
			   int (*progress)(void *ctx, uint64_t bytes), void *ctx, struct error *err)
{
	const struct export_node *node = export_file_node(f);
	int rc = fsutil_copy_data(export_file_fd(f), fd, node->size, progress, ctx);

	if (rc == -ENODATA)
		return error_set(err, EIO, "'%s' is shorter than when it was listed", node->path);
	if (rc < 0)
		return error_set(err, -rc, "cannot copy '%s' to '%s': %s", node->path, dest,
				 strerror(-rc));
	for (size_t i = 0; i < node->patch_count; i++) {
		const struct vhd_patch *p = &node->patches[i];

		if (!p->bytes || p->offset >= node->size)
			continue;
		rc = fsutil_pwrite_full(
			fd, p->bytes,
			p->len < node->size - p->offset ? p->len : (size_t)(node->size - p->offset),
			p->offset);
		if (rc < 0)
			return error_errno(err, -rc, "cannot write", dest);
	}
	return export_file_check_unchanged(f, err);
}

int export_write_file_fd(const struct export_node *node, int fd, const char *dest,
			 int (*progress)(void *ctx, uint64_t bytes), void *ctx, struct error *err)
{
	struct export_file *f = NULL;
	uint8_t *buf = NULL;
	int rc = export_open(node, &f, err);
	uint64_t at = 0;

	if (rc == 0 && export_file_fd(f) >= 0) {
		/* A file served as it lies (its patches laid over after): copied in the kernel. */
		rc = copy_as_it_lies(f, fd, dest, progress, ctx, err);
		at = node->size;
	} else if (rc == 0 && !(buf = malloc(1 << 20))) {
		rc = error_set(err, ENOMEM, "out of memory");
	}
	while (rc == 0 && at < node->size) {
		int64_t data = export_seek(f, at, true, err);
		size_t n;

		/* Holes are skipped: the new file keeps them. */
		if (data == -ENXIO || (data > (int64_t)at && (uint64_t)data >= node->size)) {
			rc = tell(progress, ctx, node->size - at, dest, err);
			break;
		}
		if (data < 0) {
			rc = (int)data;
			break;
		}
		if ((uint64_t)data > at) {
			if ((rc = tell(progress, ctx, (uint64_t)data - at, dest, err)) < 0)
				break;
			at = (uint64_t)data;
		}
		n = node->size - at < (1 << 20) ? (size_t)(node->size - at) : (1 << 20);
		rc = export_read_at(f, buf, n, at, err);
		if (rc == 0 && (rc = fsutil_pwrite_sparse(fd, buf, n, at)) < 0)
			rc = error_errno(err, -rc, "cannot write", dest);
		at += n;
		if (rc == 0)
			rc = tell(progress, ctx, n, dest, err);
	}
	if (rc == 0 && (ftruncate(fd, (off_t)node->size) < 0 || fsync(fd) < 0))
		rc = error_errno(err, errno, "cannot write", dest);
	if (rc == 0) {
		const struct timespec times[2] = {node->mtime, node->mtime};

		futimens(fd, times);
	}
	export_close(f);
	free(buf);
	return rc;
}

int export_write_file(const struct export_node *node, const char *dest, struct error *err)
{
	return export_write_file_progress(node, dest, NULL, NULL, err);
}

/* A tree's bytes written so far, told to the caller of export_write(). */
struct tally {
	int (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
	uint64_t done, total;
};

static int tally_add(void *ctx, uint64_t bytes)
{
	struct tally *t = ctx;

	t->done += bytes;
	return t->progress ? t->progress(t->ctx, t->done, t->total) : 0;
}

/* The bytes of the files under @node. */
static uint64_t tree_bytes(const struct export_node *node)
{
	uint64_t sum = node->type == EXPORT_FILE ? node->size : 0;

	for (size_t i = 0; node->type == EXPORT_DIR && i < node->child_count; i++)
		sum += tree_bytes(node->children[i]);
	return sum;
}

/*
 * Write @node at @path, named @shown in messages (its final name); @fd:
 * @path made already (a new folder: 0; a new file open: its fd), or -1.
 * The paths of what it holds are built on @path and @shown, given back as
 * they were unless it fails.
 */
static int write_tree(const struct export_node *node, struct pathbuf *path, struct pathbuf *shown,
		      int fd, struct tally *t, struct error *err)
{
	struct timespec times[2];
	int rc = 0;

	if (node->type == EXPORT_LINK) {
		if (symlink(node->path, path->buf) < 0)
			return error_errno(err, errno, "cannot create", shown->buf);
		return 0;
	}
	if (node->type == EXPORT_FILE) {
		int made = fd >= 0 ? fd
				   : open(path->buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		if (made < 0)
			return error_errno(err, errno, "cannot create", shown->buf);
		rc = export_write_file_fd(node, made, shown->buf, tally_add, t, err);
		if (fd < 0)
			close(made);
		if (rc < 0)
			return rc;
	} else {
		if (fd < 0 && mkdir(path->buf, 0755) < 0)
			return error_errno(err, errno, "cannot create", shown->buf);
		for (size_t i = 0; i < node->child_count; i++) {
			size_t path_len = path->len, shown_len = shown->len;

			if (pathbuf_join(path, node->children[i]->name) < 0 ||
			    pathbuf_join(shown, node->children[i]->name) < 0)
				return error_set(err, ENOMEM, "out of memory");
			rc = write_tree(node->children[i], path, shown, -1, t, err);
			if (rc < 0)
				return rc;
			pathbuf_truncate(path, path_len);
			pathbuf_truncate(shown, shown_len);
		}
	}
	times[0] = node->mtime;
	times[1] = node->mtime;
	utimensat(AT_FDCWD, path->buf, times, 0);
	return 0;
}

int export_write(const struct export_node *node, const char *dest,
		 int (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
		 struct error *err)
{
	struct tally t = {progress, ctx, 0, tree_bytes(node)};
	struct pathbuf path = PATHBUF_INIT, shown = PATHBUF_INIT;
	char temp[PATH_MAX];
	int fd, rc;

	if (pathbuf_adds(&shown, dest) < 0)
		return error_set(err, ENOMEM, "out of memory");
	if (node->type == EXPORT_LINK) {
		rc = pathbuf_adds(&path, dest) < 0 ? error_set(err, ENOMEM, "out of memory")
						   : write_tree(node, &path, &shown, -1, &t, err);
		pathbuf_release(&path);
		pathbuf_release(&shown);
		return rc;
	}
	if (fsutil_name_taken(dest)) {
		pathbuf_release(&shown);
		return error_errno(err, EEXIST, "cannot create", dest);
	}
	/* Written under a temporary name beside @dest, named @dest once whole. */
	fd = fsutil_make_partial(dest, node->type == EXPORT_DIR, temp, sizeof(temp));
	if (fd < 0) {
		pathbuf_release(&shown);
		return error_errno(err, -fd, "cannot create", dest);
	}
	rc = pathbuf_adds(&path, temp) < 0 ? error_set(err, ENOMEM, "out of memory")
					   : write_tree(node, &path, &shown, fd, &t, err);
	pathbuf_release(&path);
	pathbuf_release(&shown);
	if (node->type == EXPORT_FILE)
		close(fd);
	/* The last word before the name is given: a job stopped now leaves nothing. */
	if (rc == 0 && progress && (rc = progress(ctx, t.done, t.total)) < 0)
		rc = error_errno(err, -rc, "cannot write", dest);
	if (rc == 0 && (rc = fsutil_publish(temp, dest)) < 0)
		rc = error_errno(err, -rc, "cannot create", dest);
	if (rc < 0)
		fsutil_remove_tree(temp);
	return rc;
}
