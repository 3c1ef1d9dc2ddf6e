/*
 * exportfs_inode.h - the inode table of the export mount: each tree it serves
 * (a generation) with what the mount adds to the core's nodes: their inode
 * numbers and what the kernel must be told of them. The glue struct
 * exportfs_node points at the core's struct export_node and adds only FUSE
 * state (as squashfuse's sqfs_ll adds its own to sqfs).
 *
 * Inode numbers come from the paths (FNV-1a, core/hash.h), so they stay the
 * same across trees and mounts: a node gets the hash of its path in the tree
 * ("/vms/blog/..."), a partition the hash of its folder's number and its name
 * (the same whether read in this tree or carried over from the one before);
 * of two of one hash, the later takes the next free number.
 *
 * Locking: a generation is built by one thread, then served under fs->lock
 * (exportfs.h: read lock to read, write lock for exportfs_gen_adopt()); its
 * refs are guarded by fs->ref_lock.
 */
#ifndef IMPEX_EXPORTFS_INODE_H
#define IMPEX_EXPORTFS_INODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct export_node;
struct exportfs;
struct store_vm;

/* A node of a tree served: the core's node and what the mount adds to it. */
struct exportfs_node {
	struct export_node *node; /* the core's, owned by the generation's tree */
	uint64_t ino;		  /* its inode number; 0: not reachable (deeper than PATH_MAX) */
	bool renewed;		  /* not as the tree before had it: the kernel drops its pages */
	bool replaced;		  /* the tree before had it by this name, otherwise */
	/* A folder's: one for each of node->children, in their order (owned). Changed with
	 * them only under the write lock (exportfs_gen_adopt()). */
	struct exportfs_node **children;
};

/* A tree served: the core's tree, its glue, and the table from inode numbers to nodes. */
struct exportfs_gen {
	struct export_node *root; /* the core's tree (owned) */
	/* The listing it was made from (owned): its pending nodes' VMs and their names. Only
	 * a VM still to plan keeps its entry: the others' are released (zeroed, name NULL). */
	struct store_vm *vms;
	char **names;
	size_t vm_count;
	struct exportfs_node *top;
	struct exportfs_node **table; /* open addressing by inode number */
	size_t mask;
	size_t count;	  /* nodes in the table: at most half its slots */
	unsigned refs;	  /* the mount's, and one per open file (guarded by fs->ref_lock) */
	atomic_bool told; /* the kernel has been told what changed from the tree before */
};

/**
 * A generation serving @root (a finished tree export_plan_store_lazy() gave
 * from the @vm_count @vms, with @names; all taken, freed with the generation,
 * also on failure): every node numbered and in the table, one reference (the
 * caller's). Returns 0 or -ENOMEM.
 */
int exportfs_gen_new(struct export_node *root, struct store_vm *vms, char **names,
		     size_t vm_count, struct exportfs_gen **out);

/** Free @gen and its tree. NULL-safe. */
void exportfs_gen_free(struct exportfs_gen *gen);

/** Take a reference to @gen (fs->ref_lock taken here). */
void exportfs_gen_ref(struct exportfs *fs, struct exportfs_gen *gen);

/** Drop a reference to @gen (fs->ref_lock taken here); the last frees it. NULL-safe. */
void exportfs_gen_unref(struct exportfs *fs, struct exportfs_gen *gen);

/** The node numbered @ino in @gen, or NULL. Borrowed; the caller holds fs->lock. */
struct exportfs_node *exportfs_gen_find(const struct exportfs_gen *gen, uint64_t ino);

/** The child of folder @dir named @name, or NULL (also when left out). Borrowed; the caller
 * holds fs->lock. */
struct exportfs_node *exportfs_node_child(const struct exportfs_node *dir, const char *name);

/** The nodes of the tree under @node, @node included. */
size_t exportfs_node_count(const struct exportfs_node *node);

/**
 * Give @gen (the tree served; the write lock held) the partitions @parts that
 * export_read_partitions() read of its folder @dir: numbered, in its table
 * (grown as needed), new to the kernel (renewed: it may keep pages of another
 * file that had the number). Returns 0, or -ENOMEM with nothing changed
 * (@parts freed either way).
 */
int exportfs_gen_adopt(struct exportfs_gen *gen, struct exportfs_node *dir,
		       struct export_node *parts);

/**
 * Give @gen (the tree served; the write lock held) what export_plan_listed_vm()
 * made of its pending VM @index, @planned (its nodes moved out; the caller
 * frees the rest): each pending node of the VM takes its planned folder's
 * content and attributes, numbered and in the table, or is left out.
 * *@left_out says whether any was. Returns 0, or -ENOMEM with nothing changed.
 */
int exportfs_gen_adopt_vm(struct exportfs_gen *gen, size_t index, struct export_node *planned,
			  bool *left_out);

#endif
