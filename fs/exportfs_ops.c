/*
 * exportfs_ops.c - the export mount's handlers: thin over core/export. Each
 * decodes the request, finds the node in the tree served (exportfs_inode.h)
 * under the read lock, calls the core and replies once. Open files hold the
 * tree they were opened in (a reference) until they are closed.
 *
 * The partitions of the images in raw/<vm>/<state>/ are read when that
 * folder is first listed or looked in (expand()), not when the tree is
 * planned, and added to the tree served.
 */
#define FUSE_USE_VERSION 314

#include "exportfs_ops.h"

#include "error.h"
#include "export.h"
#include "exportfs.h"
#include "exportfs_inode.h"
#include "exportfs_read.h"
#include "exportfs_renew.h"
#include "log.h"
#include "mountinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Entries and attributes change only with the store: the kernel is told when they do. */
#define TIMEOUT		     3600.0

/* An open file: the tree it was opened in stays until it is closed. */
struct exportfs_handle {
	struct exportfs_gen *gen; /* a reference */
	struct export_file *file;
	struct exportfs_handle *prev, *next; /* fs->open_files (guarded by fs->ref_lock) */
};

static void handle_link(struct exportfs *fs, struct exportfs_handle *h)
{
	pthread_mutex_lock(&fs->ref_lock);
	h->prev = NULL;
	h->next = fs->open_files;
	if (fs->open_files)
		fs->open_files->prev = h;
	fs->open_files = h;
	pthread_mutex_unlock(&fs->ref_lock);
}

static void handle_unlink(struct exportfs *fs, struct exportfs_handle *h)
{
	pthread_mutex_lock(&fs->ref_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->open_files = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->ref_lock);
}

void exportfs_close_open_files(struct exportfs *fs)
{
	for (;;) {
		struct exportfs_handle *h;

		pthread_mutex_lock(&fs->ref_lock);
		h = fs->open_files;
		pthread_mutex_unlock(&fs->ref_lock);
		if (!h)
			return;
		handle_unlink(fs, h);
		export_close(h->file);
		exportfs_gen_unref(fs, h->gen);
		free(h);
	}
}

/*
 * Raise the mount's readahead: the kernel's 128 KiB halves FUSE's throughput.
 * Once, at the first lookup (no file is read before one): the kernel sets the
 * readahead when it reads the reply to FUSE_INIT, and sends no other request
 * before, so what is written here stays.
 */
static void raise_readahead(struct exportfs *fs)
{
	struct mountinfo_entry mount;
	char path[128], value[32];
	int fd, n;

	if (!fs->readahead_kb || atomic_exchange(&fs->readahead_done, true) ||
	    mountinfo_find(fs->mountpoint, &mount) < 0)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(mount.device),
		 minor(mount.device));
	fd = open(path, O_WRONLY | O_CLOEXEC); /* door: /sys, the kernel's */
	if (fd < 0)
		return; /* not root: the kernel's default stays */
	n = snprintf(value, sizeof(value), "%u\n", fs->readahead_kb);
	if (write(fd, value, (size_t)n) != n && fs->verbose)
		fslog(FUSE_LOG_WARNING, "cannot raise readahead");
	close(fd);
}

/* The attributes of @glue into @st. */
static void fill_attr(struct exportfs *fs, const struct exportfs_node *glue, struct stat *st)
{
	const struct export_node *node = glue->node;
	/* Read-only: no write bits; and never setuid, setgid or sticky. */
	mode_t mode = node->mode & 0555 & ~fs->umask;

	memset(st, 0, sizeof(*st));
	st->st_ino = glue->ino;
	st->st_uid = fs->set_uid ? fs->uid : node->uid;
	st->st_gid = fs->set_gid ? fs->gid : node->gid;
	st->st_mtim = node->mtime;
	st->st_ctim = node->mtime;
	st->st_atim = node->mtime;
	st->st_blksize = 1 << 20;
	if (node->type == EXPORT_DIR) {
		st->st_mode = S_IFDIR | mode;
		st->st_nlink = 2;
	} else if (node->type == EXPORT_LINK) {
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)node->size;
	} else {
		st->st_mode = S_IFREG | mode;
		st->st_nlink = 1;
		st->st_size = (off_t)node->size;
		/* What the source really holds: cp keeps a sparse copy sparse. */
		st->st_blocks = (blkcnt_t)((node->allocated + 511) / 512);
	}
}

/*
 * The node @ino of the current tree, with the read lock held (release with
 * done()). Replies made from the tree are sent before the lock is released:
 * a reply from a tree being replaced then reaches the kernel before the news
 * of what changed, which would otherwise be overtaken and lost.
 */
static struct exportfs_node *node_of(struct exportfs *fs, fuse_ino_t ino)
{
	pthread_rwlock_rdlock(&fs->lock);
	return exportfs_gen_find(fs->current, ino);
}

static void done(struct exportfs *fs)
{
	pthread_rwlock_unlock(&fs->lock);
}

/*
 * Before folder @ino is listed or looked in: if it is a folder of raw/ states
 * whose images' partitions are not read yet, read them (without the tree's
 * lock, one folder at a time under expand_lock) and add them to the tree
 * served (under the write lock), again if a new tree came meanwhile. Returns
 * 0, or a positive errno to reply with (a source changed: EIO, the tree made
 * again at the next look; out of memory or descriptors: that errno).
 */
static int expand(struct exportfs *fs, fuse_ino_t ino)
{
	struct export_notes notes = {exportfs_note, fs};

	for (int tries = 0; tries < 4; tries++) {
		struct exportfs_node *dir = node_of(fs, ino);
		struct export_node *parts = NULL;
		struct exportfs_gen *gen;
		struct error err;
		int rc = 0;

		if (!dir || !dir->node->partitions_pending) {
			done(fs);
			return 0;
		}
		gen = fs->current;
		exportfs_gen_ref(fs, gen);
		done(fs);
		pthread_mutex_lock(&fs->expand_lock);
		/* Another thread may have read them meanwhile (expand_lock: the folder's
		 * children and partitions_pending do not change while it is held). */
		if (dir->node->partitions_pending) {
			error_clear(&err);
			rc = export_read_partitions(dir->node, &notes, &parts, &err);
			if (rc < 0) {
				fuse_log(FUSE_LOG_ERR, "impexfs: %s\n", error_message(&err));
				if (!error_is_transient(rc) || rc == -EIO)
					exportfs_mark_stale(fs);
			} else {
				pthread_rwlock_wrlock(&fs->lock);
				if (fs->current == gen)
					rc = exportfs_gen_adopt(gen, dir, parts);
				else
					export_node_free(parts); /* a new tree: read there */
				pthread_rwlock_unlock(&fs->lock);
			}
		}
		pthread_mutex_unlock(&fs->expand_lock);
		exportfs_gen_unref(fs, gen);
		if (rc < 0)
			return rc == -ESTALE || !error_is_transient(rc) ? EIO : -rc;
	}
	return 0;
}

static void exportfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct exportfs_node *dir, *child;
	struct fuse_entry_param e;
	int rc;

	raise_readahead(fs);
	rc = expand(fs, parent);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	dir = node_of(fs, parent);
	if (!dir || dir->node->type != EXPORT_DIR) {
		done(fs);
		fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
		return;
	}
	child = exportfs_node_child(dir, name);
	if (!child) {
		done(fs);
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = child->ino;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fill_attr(fs, child, &e.attr);
	fuse_reply_entry(req, &e);
	done(fs);
}

static void exportfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct exportfs_node *node = node_of(fs, ino);
	struct stat st;

	(void)fi;
	if (!node) {
		done(fs);
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(fs, node, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
	done(fs);
}

static void exportfs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct exportfs_node *glue = node_of(fs, ino);

	if (!glue || glue->node->type != EXPORT_LINK) {
		done(fs);
		fuse_reply_err(req, glue ? EINVAL : ENOENT);
		return;
	}
	/* A link's target is one the plan made: "../vms/<name>", "<snapshot>"... */
	fuse_reply_readlink(req, glue->node->path);
	done(fs);
}

/* Listings always come with attributes: a find or ls -l then needs no lookups. */
static void exportfs_op_init(void *data, struct fuse_conn_info *conn)
{
	struct exportfs *fs = data;

	/* Reads reply from the sources' pages (exportfs_read.h), unless told to copy. */
	if (!fs->copy_reads && (conn->capable & FUSE_CAP_SPLICE_WRITE))
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	atomic_store(&fs->splice, (conn->want & FUSE_CAP_SPLICE_WRITE) != 0);
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/*
	 * The kernel's request size limit (max_pages) follows max_write, and it
	 * gives every READDIR a buffer that large: with libfuse's 1 MiB, a find of
	 * a big store spends most of its time allocating them. 256 KiB halves the
	 * time of such a find and reads as fast as 1 MiB with readahead raised
	 * (docs/PERFORMANCE.md). Nothing is written through this mount.
	 */
	conn->max_write = EXPORTFS_MAX_REQUEST;
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
}

/*
 * No OPENDIR, no RELEASEDIR: a folder is listed with two requests, not four
 * (a find of a big store takes half the time). The kernel then keeps
 * listings as it keeps files' pages; it is told when a folder's names change.
 */
static void exportfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

/* READDIR, and READDIRPLUS (@plus) whose entries spare the kernel a lookup each. */
static void list(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct exportfs_node *dir;
	char *buf = malloc(size);
	size_t used = 0;

	int rc = buf ? expand(fs, ino) : ENOMEM;

	if (rc) {
		free(buf);
		fuse_reply_err(req, rc);
		return;
	}
	dir = node_of(fs, ino);
	if (!dir || dir->node->type != EXPORT_DIR) {
		done(fs);
		free(buf);
		fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
		return;
	}
	/* Offsets: 0 ".", 1 "..", then the children from 2. */
	for (off_t i = off; i < (off_t)dir->node->child_count + 2; i++) {
		const struct exportfs_node *child = i < 2 ? dir : dir->children[i - 2];
		const char *name = i == 0 ? "." : i == 1 ? ".." : child->node->name;
		struct fuse_entry_param e;
		size_t len;

		memset(&e, 0, sizeof(e));
		fill_attr(fs, child, &e.attr);
		if (plus && i >= 2) {
			e.ino = child->ino;
			e.attr_timeout = TIMEOUT;
			e.entry_timeout = TIMEOUT;
		}
		len = plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, i + 1)
			   : fuse_add_direntry(req, buf + used, size - used, name, &e.attr, i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	done(fs);
	free(buf);
}

static void exportfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
				struct fuse_file_info *fi)
{
	(void)fi;
	list(req, ino, size, off, false);
}

static void exportfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
				    struct fuse_file_info *fi)
{
	(void)fi;
	list(req, ino, size, off, true);
}

static void exportfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct exportfs_handle *h = calloc(1, sizeof(*h));
	bool keep_cache;
	struct exportfs_node *glue;
	const struct export_node *node;
	struct error err;
	int rc;

	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	glue = node_of(fs, ino);
	node = glue ? glue->node : NULL;
	if (!node || node->type != EXPORT_FILE || (fi->flags & O_ACCMODE) != O_RDONLY) {
		done(fs);
		free(h);
		fuse_reply_err(req, !node ? ENOENT : node->type == EXPORT_DIR ? EISDIR : EROFS);
		return;
	}
	/*
	 * A file that replaced one of its name, before the kernel is told: the kernel may still
	 * hold the size of the one replaced, and its reads would give the new bytes at the old
	 * size. Such an open fails as a read of a changed file does.
	 */
	if (glue->replaced && !atomic_load(&fs->current->told)) {
		done(fs);
		free(h);
		fuse_reply_err(req, EIO);
		return;
	}
	h->gen = fs->current;
	exportfs_gen_ref(fs, h->gen);
	/* Set when its node was made, under the write lock: read under the read lock. */
	keep_cache = !glue->renewed;
	done(fs);
	/* The sources stay open for the reads: no open per request. */
	error_clear(&err);
	rc = export_open(node, &h->file, &err);
	if (rc < 0) {
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
		/* A source changed or gone: the tree is made again at the next look. Out of
		 * descriptors or memory, the tree is as right as it was: the reader gets
		 * EMFILE (or ENOMEM...), the tree does not change. */
		if (!error_is_transient(rc) || rc == -EIO)
			exportfs_mark_stale(fs);
		exportfs_gen_unref(fs, h->gen);
		free(h);
		fuse_reply_err(req, rc == -ESTALE ? EIO : -rc);
		return;
	}
	handle_link(fs, h);
	fi->fh = (uint64_t)(uintptr_t)h;
	/* The kernel keeps what it has of a file the new tree did not change. */
	fi->keep_cache = keep_cache;
	fuse_reply_open(req, fi);
}

static void exportfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct exportfs_handle *h = (struct exportfs_handle *)(uintptr_t)fi->fh;

	(void)ino;
	handle_unlink(fs, h);
	export_close(h->file);
	exportfs_gen_unref(fs, h->gen);
	free(h);
	fuse_reply_err(req, 0);
}

static void exportfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			     struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct exportfs_handle *h = (struct exportfs_handle *)(uintptr_t)fi->fh;
	uint64_t file_size = export_file_node(h->file)->size;
	struct error err;

	(void)ino;
	if ((uint64_t)off >= file_size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > file_size - (uint64_t)off)
		size = (size_t)(file_size - (uint64_t)off);
	error_clear(&err);
	if (exportfs_read_reply(req, h->file, size, (uint64_t)off, atomic_load(&fs->splice), &err) <
	    0) {
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
		if (err.code == ESTALE)
			exportfs_mark_stale(fs);
		/* ESTALE would make the kernel retry the lookup: a changed source is EIO. */
		fuse_reply_err(req, err.code && err.code != ESTALE ? err.code : EIO);
	}
}

static void exportfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			      struct fuse_file_info *fi)
{
	struct exportfs_handle *h = (struct exportfs_handle *)(uintptr_t)fi->fh;
	struct error err;
	int64_t at;

	(void)ino;
	if ((whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	error_clear(&err);
	at = export_seek(h->file, (uint64_t)off, whence == SEEK_DATA, &err);
	if (at < 0)
		fuse_reply_err(req, (int)-at);
	else
		fuse_reply_lseek(req, (off_t)at);
}

const struct fuse_lowlevel_ops exportfs_ops = {
	.init = exportfs_op_init,
	.lookup = exportfs_op_lookup,
	.getattr = exportfs_op_getattr,
	.readlink = exportfs_op_readlink,
	.opendir = exportfs_op_opendir,
	.readdir = exportfs_op_readdir,
	.readdirplus = exportfs_op_readdirplus,
	.open = exportfs_op_open,
	.read = exportfs_op_read,
	.release = exportfs_op_release,
	.lseek = exportfs_op_lseek,
};
