/*
 * The export mount's handlers: thin over core/export. The tree is built
 * when mounting: "vms/<name>/" holds each VM's export folder; every node
 * gets an inode number from its place in the tree, so numbers are stable
 * for a mount.
 */
#define FUSE_USE_VERSION 314

#include "exportfs.h"

#include "error.h"
#include "export.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Attributes and entries of a read-only tree do not change while mounted. */
#define TIMEOUT 60.0

static struct export_node *node_of(struct exportfs *fs, fuse_ino_t ino)
{
	return ino >= 1 && ino <= fs->count ? fs->nodes[ino - 1] : NULL;
}

/* Number the nodes under @node depth first: nodes[ino - 1] is the node. */
static int number(struct exportfs *fs, struct export_node *node)
{
	struct export_node **grown = realloc(fs->nodes, (fs->count + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	fs->nodes = grown;
	fs->nodes[fs->count++] = node;
	node->ino = fs->count;
	for (size_t i = 0; i < node->child_count; i++)
		if (number(fs, node->children[i]) < 0)
			return -ENOMEM;
	return 0;
}

static void fill_attr(struct exportfs *fs, const struct export_node *node, fuse_ino_t ino,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtim = node->mtime;
	st->st_ctim = node->mtime;
	st->st_atim = node->mtime;
	st->st_blksize = 1 << 20;
	if (node->type == EXPORT_DIR) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)node->size;
		/* What the source really holds: cp keeps a sparse copy sparse. */
		st->st_blocks = (blkcnt_t)((node->allocated + 511) / 512);
	}
}

int exportfs_build(struct exportfs *fs, struct store *store, struct error *err)
{
	struct export_settings settings;
	struct export_name *names = NULL;
	struct store_vm *vms = NULL;
	struct export_node *vms_dir;
	size_t count = 0;
	int rc;

	export_settings_default(&settings);
	fs->root = calloc(1, sizeof(*fs->root));
	vms_dir = calloc(1, sizeof(*vms_dir));
	if (!fs->root || !vms_dir || !(fs->root->name = strdup("")) ||
	    !(vms_dir->name = strdup("vms")) ||
	    !(fs->root->children = calloc(1, sizeof(*fs->root->children)))) {
		export_node_free(vms_dir);
		return error_set(err, ENOMEM, "out of memory");
	}
	fs->root->children[fs->root->child_count++] = vms_dir;
	rc = store_list(store, &vms, &count, err);
	names = rc == 0 ? calloc(count ? count : 1, sizeof(*names)) : NULL;
	vms_dir->children = names ? calloc(count ? count : 1, sizeof(*vms_dir->children)) : NULL;
	if (rc == 0 && (!names || !vms_dir->children))
		rc = error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < count; i++) {
		names[i].name = vms[i].name;
		names[i].id = vms[i].id;
		names[i].creation_time = vms[i].creation_time;
	}
	if (rc == 0 && export_assign_names(names, count) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < count; i++) {
		struct export_node *folder = NULL;
		struct error vm_err;

		/* A VM that cannot be exported is left out; vm show says why. */
		if (export_plan_vm(store, &vms[i], &settings, names[i].out, &folder, &vm_err) == 0)
			vms_dir->children[vms_dir->child_count++] = folder;
	}
	for (size_t i = 0; names && i < count; i++)
		free(names[i].out);
	free(names);
	store_vms_free(vms, count);
	if (rc == 0 && number(fs, fs->root) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	return rc;
}

void exportfs_release(struct exportfs *fs)
{
	export_node_free(fs->root);
	free(fs->nodes);
	fs->root = NULL;
	fs->nodes = NULL;
	fs->count = 0;
}

static void exportfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *dir = node_of(fs, parent), *child;
	struct fuse_entry_param e;

	if (!dir || dir->type != EXPORT_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	child = export_child(dir, name);
	if (!child) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = child->ino;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fill_attr(fs, child, e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void exportfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *node = node_of(fs, ino);
	struct stat st;

	(void)fi;
	if (!node) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(fs, node, ino, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void exportfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
				struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *dir = node_of(fs, ino);
	char *buf;
	size_t used = 0;

	(void)fi;
	if (!dir || dir->type != EXPORT_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Offsets: 0 ".", 1 "..", then the children from 2. */
	for (off_t i = off; i < (off_t)dir->child_count + 2; i++) {
		struct stat st = {0};
		const char *name = i == 0 ? "." : i == 1 ? ".." : dir->children[i - 2]->name;
		size_t len;

		st.st_ino = i < 2 ? ino : dir->children[i - 2]->ino;
		st.st_mode = i < 2 || dir->children[i - 2]->type == EXPORT_DIR ? S_IFDIR : S_IFREG;
		len = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void exportfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *node = node_of(fs, ino);

	if (!node || node->type != EXPORT_FILE) {
		fuse_reply_err(req, node ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	{
		/* The source stays open for the reads: no open per request. */
		struct error err;
		int fd;

		error_clear(&err);
		fd = export_open(node, &err);
		if (fd < EXPORT_NO_SOURCE) {
			fuse_log(FUSE_LOG_ERR, "impexfs: %s\n", error_message(&err));
			fuse_reply_err(req, -fd);
			return;
		}
		fi->fh = (uint64_t)(int64_t)fd;
	}
	fi->keep_cache = 1; /* the content does not change while mounted */
	fuse_reply_open(req, fi);
}

static void exportfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if ((int64_t)fi->fh >= 0)
		close((int)fi->fh);
	fuse_reply_err(req, 0);
}

static void exportfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			     struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *node = node_of(fs, ino);
	struct error err;
	char *buf;

	if (!node || node->type != EXPORT_FILE) {
		fuse_reply_err(req, EIO);
		return;
	}
	if ((uint64_t)off >= node->size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > node->size - (uint64_t)off)
		size = (size_t)(node->size - (uint64_t)off);
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	error_clear(&err);
	if (export_read_at(node, (int)(int64_t)fi->fh, buf, size, (uint64_t)off, &err) < 0) {
		fuse_log(FUSE_LOG_ERR, "impexfs: %s\n", error_message(&err));
		fuse_reply_err(req, err.code ? err.code : EIO);
	} else {
		fuse_reply_buf(req, buf, size);
	}
	free(buf);
}

static void exportfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			      struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *node = node_of(fs, ino);
	struct error err;
	int64_t at;

	(void)fi;
	if (!node || (whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	error_clear(&err);
	at = export_seek(node, (uint64_t)off, whence == SEEK_DATA, &err);
	if (at < 0)
		fuse_reply_err(req, (int)-at);
	else
		fuse_reply_lseek(req, (off_t)at);
}

const struct fuse_lowlevel_ops exportfs_ops = {
	.lookup = exportfs_op_lookup,
	.getattr = exportfs_op_getattr,
	.readdir = exportfs_op_readdir,
	.open = exportfs_op_open,
	.read = exportfs_op_read,
	.release = exportfs_op_release,
	.lseek = exportfs_op_lseek,
};
