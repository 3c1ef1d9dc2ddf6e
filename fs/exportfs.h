/*
 * The export mount: a read-only tree of export folders over a store.
 */
#ifndef IMPEX_EXPORTFS_H
#define IMPEX_EXPORTFS_H

#include <stddef.h>
#include <sys/types.h>

struct error;
struct export_node;
struct fuse_lowlevel_ops;
struct store;

struct exportfs {
	struct export_node *root;   /* "/", with "vms/" under it */
	struct export_node **nodes; /* by inode number - 1 */
	size_t count;
	uid_t uid; /* who owns everything: the mounting user */
	gid_t gid;
};

/** Build the tree of @store into @fs (zeroed by the caller). */
int exportfs_build(struct exportfs *fs, struct store *store, struct error *err);

/** Free what exportfs_build() made. */
void exportfs_release(struct exportfs *fs);

/* The handlers; the session's user data is the struct exportfs. */
extern const struct fuse_lowlevel_ops exportfs_ops;

#endif
