/*
 * exportfs_ops.c - the export mount's handlers: thin over core/export. Each
 * decodes the request, finds the node in the tree served (exportfs_inode.h)
 * under the read lock, calls the core and replies once. Open files hold the
 * tree they were opened in (a reference) until they are closed.
 *
 * The tree lists each VM from its configuration; a VM is planned when one of
 * its nodes is first looked up (settle()), and what its plan made is added to
 * the tree served. The partitions of the images in raw/<vm>/<state>/ are read
 * when that folder is first listed or looked in, and added likewise.
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
#include "store.h"

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
	struct openfiles_link link; /* in fs->open_files */
};

void exportfs_close_open_files(struct exportfs *fs)
{
	struct openfiles_link *l;

	while ((l = openfiles_take(&fs->open_files))) {
		struct exportfs_handle *h = OPENFILES_HANDLE(l, struct exportfs_handle);

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

/* The errno to reply with for @rc, a fault of planning or reading the tree. */
static int reply_errno(int rc)
{
	return rc == -ESTALE || !error_is_transient(rc) ? EIO : -rc;
}

/*
 * Plan the pending VM @index of @gen (export_plan_listed_vm(), with the lazy
 * planner, expand_lock held) and give what it made to @gen if it is still the
 * tree served (else nothing: the caller tries again there). A VM or snapshot
 * found not exportable has the tree made again at the next look, which tells
 * the kernel its name is gone. Returns 0 or a negative errno.
 */
static int plan_vm(struct exportfs *fs, struct exportfs_gen *gen, size_t index)
{
	struct export_node *made = NULL;
	bool left_out = false;
	struct error err;
	int rc;

	/* Its listing is let go once adopted: a node of it still pending cannot be. */
	if (!gen->names[index]) {
		exportfs_mark_stale(fs);
		return -ESTALE;
	}
	error_clear(&err);
	rc = export_plan_listed_vm(fs->lazy_planner, &gen->vms[index], index, gen->names[index],
				   &made, &err);
	if (rc == -ENOMEM)
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
	if (rc < 0)
		return rc; /* a fault of the moment is said by the planner's notes */
	pthread_rwlock_wrlock(&fs->lock);
	if (fs->current == gen)
		rc = exportfs_gen_adopt_vm(gen, index, made, &left_out);
	if (fs->current == gen && rc == 0) {
		/* Planned: what the listing said of it is no longer needed. */
		store_vm_release(&gen->vms[index]);
		free(gen->names[index]);
		gen->names[index] = NULL;
	}
	pthread_rwlock_unlock(&fs->lock);
	export_node_free(made);
	if (left_out)
		exportfs_mark_stale(fs);
	return rc;
}

bool exportfs_plan_ahead(struct exportfs *fs, size_t *next)
{
	struct exportfs_gen *gen;
	size_t count, at = SIZE_MAX;

	/* The tree served once expand_lock is held (one replaced meanwhile would not be): a
	 * reference keeps it while its VM is planned. */
	pthread_mutex_lock(&fs->expand_lock);
	pthread_rwlock_rdlock(&fs->lock);
	gen = fs->current;
	exportfs_gen_ref(fs, gen);
	pthread_rwlock_unlock(&fs->lock);
	count = gen->vm_count;
	/* A listing entry is kept for as long as its VM is to plan (exportfs_inode.h). */
	for (size_t k = 0; k < count && at == SIZE_MAX; k++)
		if (gen->names[(*next + k) % count])
			at = (*next + k) % count;
	if (at != SIZE_MAX) {
		plan_vm(fs, gen, at);
		*next = at + 1;
	}
	pthread_mutex_unlock(&fs->expand_lock);
	exportfs_gen_unref(fs, gen);
	return at != SIZE_MAX;
}

/* Read the partitions of @dir (a folder of raw/ states, of @gen; expand_lock held) and add
 * them to @gen if it is still the tree served. Returns 0 or a negative errno. */
static int read_partitions(struct exportfs *fs, struct exportfs_gen *gen,
			   struct exportfs_node *dir)
{
	struct export_notes notes = {exportfs_note, fs};
	struct export_node *parts = NULL;
	struct error err;
	int rc;

	error_clear(&err);
	rc = export_read_partitions(dir->node, &notes, &parts, &err);
	if (rc < 0) {
		fuse_log(FUSE_LOG_ERR, "impexfs: %s\n", error_message(&err));
		if (!error_is_transient(rc) || rc == -EIO)
			exportfs_mark_stale(fs);
		return rc;
	}
	pthread_rwlock_wrlock(&fs->lock);
	if (fs->current == gen)
		rc = exportfs_gen_adopt(gen, dir, parts);
	else
		export_node_free(parts); /* a new tree: read there */
	pthread_rwlock_unlock(&fs->lock);
	return rc;
}

/*
 * Before node @ino is shown, listed or looked in: a node of a VM listed and
 * not planned yet (vm_pending) has its VM planned; a folder of raw/ states
 * whose images' partitions are not read yet has them read. Each is done
 * without the tree's lock, one at a time under expand_lock, and added to the
 * tree served under the write lock, again if a new tree came meanwhile.
 * Returns 0, or a positive errno to reply with (a source changed: EIO, the
 * tree made again at the next look; out of memory or descriptors: that errno).
 */
static int settle(struct exportfs *fs, fuse_ino_t ino)
{
	for (int tries = 0; tries < 4; tries++) {
		struct exportfs_node *node = node_of(fs, ino);
		struct exportfs_gen *gen;
		int rc = 0;

		if (!node || (!node->node->vm_pending && !node->node->partitions_pending)) {
			done(fs);
			return 0;
		}
		gen = fs->current;
		exportfs_gen_ref(fs, gen);
		done(fs);
		pthread_mutex_lock(&fs->expand_lock);
		/* Another thread may have done it meanwhile (expand_lock: the node's flags and
		 * children do not change while it is held). */
		if (node->node->vm_pending)
			rc = plan_vm(fs, gen, node->node->vm);
		else if (node->node->partitions_pending)
			rc = read_partitions(fs, gen, node);
		pthread_mutex_unlock(&fs->expand_lock);
		exportfs_gen_unref(fs, gen);
		if (rc < 0)
			return reply_errno(rc);
	}
	return 0;
}

/* Wait for the store's listing before what is under the top folders is served. */
static int listed(struct exportfs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? 0 : exportfs_wait_listed(fs);
}

static void exportfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct exportfs_node *dir, *child;
	struct fuse_entry_param e;
	int rc;

	raise_readahead(fs);
	rc = listed(fs, parent);
	for (int tries = 0;; tries++) {
		fuse_ino_t ino;
		size_t vm;

		if (!rc)
			rc = settle(fs, parent);
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
		if (!child->node->vm_pending)
			break;
		/* A VM listed, not planned: planned now, then looked up again. The next ones
		 * are planned ahead meanwhile: a walk looks at them next. */
		ino = child->ino;
		vm = child->node->vm;
		done(fs);
		if (tries == 0)
			exportfs_wake_ahead(fs, vm + 1);
		rc = tries < 4 ? settle(fs, ino) : EIO;
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
	struct exportfs_node *node;
	int rc = settle(fs, ino);
	struct stat st;

	(void)fi;
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	node = node_of(fs, ino);
	if (!node || node->node->left_out || node->node->vm_pending) {
		done(fs);
		fuse_reply_err(req, !node || node->node->left_out ? ENOENT : EIO);
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

	if (!glue || glue->node->left_out || glue->node->type != EXPORT_LINK) {
		done(fs);
		fuse_reply_err(req, glue && !glue->node->left_out ? EINVAL : ENOENT);
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
	int rc = buf ? listed(fs, ino) : ENOMEM;

	if (!rc)
		rc = settle(fs, ino);

	if (rc) {
		free(buf);
		fuse_reply_err(req, rc);
		return;
	}
	dir = node_of(fs, ino);
	if (!dir || dir->node->left_out || dir->node->type != EXPORT_DIR) {
		done(fs);
		free(buf);
		fuse_reply_err(req, dir && !dir->node->left_out ? ENOTDIR : ENOENT);
		return;
	}
	/* Offsets: 0 ".", 1 "..", then the children from 2 (those left out not shown). */
	for (off_t i = off; i < (off_t)dir->node->child_count + 2; i++) {
		const struct exportfs_node *child = i < 2 ? dir : dir->children[i - 2];
		const char *name = i == 0 ? "." : i == 1 ? ".." : child->node->name;
		struct fuse_entry_param e;
		size_t len;

		if (i >= 2 && child->node->left_out)
			continue;
		memset(&e, 0, sizeof(e));
		fill_attr(fs, child, &e.attr);
		/* A VM listed, not planned: its name and kind only (no entry: the kernel looks
		 * it up, which plans it). */
		if (plus && i >= 2 && !child->node->vm_pending) {
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
	openfiles_add(&fs->open_files, &h->link);
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
	openfiles_remove(&fs->open_files, &h->link);
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
