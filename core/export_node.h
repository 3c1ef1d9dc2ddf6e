/*
 * export_node.h - the nodes of a planned export: the tree of folders, files
 * and links that the export mount serves and `impex export` writes, each
 * file saying where its bytes come from (a store file, a configuration with
 * edits, a chain merged...). Plans make the trees (export_plan.h,
 * export_tree.h); export_file.h reads their files, export_write.h copies
 * them. A finished tree is read-only: readers need no lock, and whoever
 * changes one (export_add_partitions()) excludes them itself.
 */
#ifndef IMPEX_EXPORT_NODE_H
#define IMPEX_EXPORT_NODE_H

#include "disk.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "vhd.h"

struct chain;
struct error;
struct stat;
struct store;

enum export_type {
	EXPORT_DIR,
	EXPORT_FILE,
	EXPORT_LINK, /* a symbolic link */
};

enum export_source {
	EXPORT_SOURCE_NONE,	 /* a folder */
	EXPORT_SOURCE_FILE,	 /* a file of the store, as it is */
	EXPORT_SOURCE_CONFIG,	 /* a configuration of the store with edits, made on open */
	EXPORT_SOURCE_RELOCATED, /* a differencing disk naming its parent in its folder */
	EXPORT_SOURCE_MERGED,	 /* a chain merged into one dynamic VHD, made as it is read */
	EXPORT_SOURCE_RAW,	 /* the raw content of a chain */
	EXPORT_SOURCE_PARTITION, /* a partition: @size bytes of a chain's raw content from @start */
};

/* An edit of a configuration: set @key (with @type, NULL to keep it) to @value, or remove it. */
struct export_edit {
	char *key;
	char *type;
	char *value;   /* NULL: remove the element */
	bool optional; /* only where the configuration has @key */
};

/* One file, folder or link of an export. Owned by its parent; the root by the caller. */
struct export_node {
	char *name;
	enum export_type type;
	struct export_node **children; /* folders: in name order once finished */
	size_t child_count;
	enum export_source source;
	char *path;		   /* the store's file (the chain's top for MERGED, RAW, PARTITION);
				    * LINK: target; a folder of raw/ states: its path in the tree */
	struct export_edit *edits; /* CONFIG */
	size_t edit_count;
	struct vhd_patch *patches; /* RELOCATED: laid over the file (patch_count of them) */
	size_t patch_count;
	bool replayed;		 /* RELOCATED: read through the disk module (a VHDX log replayed) */
	char *seed;		 /* MERGED: what the new disk's UUID derives from */
	struct store *store;	 /* MERGED, RAW: opens the chain (path map, confinement) */
	uint64_t stamp;		 /* the sources' identity when planned (export_open checks it) */
	uint64_t start;		 /* PARTITION: where it starts in the chain's raw content */
	bool partitions_pending; /* a folder of raw/ states: its images' partitions not read */
	bool vm_pending;	 /* listed from its VM's configuration, not planned yet: @vm
				  * (a folder or by-id link of a lazy tree, export_tree.h) */
	bool left_out;		 /* listed, then found not exportable when planned: shown nowhere */
	size_t vm;		 /* vm_pending: its VM's index in the listing of its tree */
	uint64_t size;		 /* exact, known before any read */
	uint64_t allocated;	 /* bytes the source really holds (for st_blocks) */
	struct timespec mtime;	 /* taken from the sources */
	mode_t mode;		 /* permission bits (0777) from the sources, see below */
	uid_t uid;		 /* the sources' common owner, else 0 (root) */
	gid_t gid;		 /* the sources' common group, else 0 */
	bool own_access;	 /* mode, uid, gid are one source's own (a file, a folder) */
	bool no_access;		 /* while planning: a folder with nothing to take them from */
};

/*
 * Who may read what a plan shows (mode, uid, gid of its nodes): a file of the
 * store served as it is (also relocated) and a saved-state folder have their
 * source's; a configuration, its file's (the edits add no source); a merged
 * disk or raw image, the AND of its chain's files' permission bits, and their
 * common owner and group, each else root (0); a folder made up by the plan,
 * the AND of what it holds (a file's read bits giving the folder's search
 * bits too) and their common owner and group, else root; a folder holding
 * nothing, its parent's; a link, its folder's owner. export_plan_store()'s
 * top folders (the root, vms, raw, snapshots, by-id) have the store's first
 * root folder's. Setuid, setgid and sticky bits are never taken.
 */

/** Free @node and everything under it. NULL-safe. */
void export_node_free(struct export_node *node);

/** The child of @dir named @name, or NULL (a binary search: the tree is finished). Borrowed. */
struct export_node *export_child(const struct export_node *dir, const char *name);

/** The index in @dir->children of its child named @name, or @dir->child_count if none. */
size_t export_child_index(const struct export_node *dir, const char *name);

/**
 * What @node's bytes are made of: its sources' identity and whatever the
 * plan lays over them (edits, patches, a seed). Two plans give a path the
 * same identity only if they give it the same bytes.
 */
uint64_t export_node_identity(const struct export_node *node);

/* ---- for the export modules: building a tree ---- */

/** A new node named @name (copied), or NULL: out of memory. Freed with export_node_free(). */
struct export_node *export_node_new(const char *name, enum export_type type);

/** Add @child (may be NULL: out of memory) to @dir. Returns 0, or -ENOMEM with @child freed. */
int export_node_add(struct export_node *dir, struct export_node *child);

/** A copy of @node and everything under it, or NULL: out of memory. */
struct export_node *export_node_copy(const struct export_node *node);

/**
 * Give the pending @served (vm_pending) what its VM's plan made of it: the
 * folder or link @planned (its children moved, its time and access taken), or
 * nothing (@planned NULL or left_out: @served is left out). Cannot fail.
 */
void export_adopt(struct export_node *served, struct export_node *planned);

/** Free the children of @dir from the @keep-th on (those added since it had @keep). */
void export_drop_children(struct export_node *dir, size_t keep);

/** The folder @name of @dir, made if missing (a linear search: while planning), or NULL. */
struct export_node *export_subdir(struct export_node *dir, const char *name);

/** qsort's order of two (struct export_node *): by name, as export_child() searches. */
int export_compare_nodes(const void *a, const void *b);

/** Whether time @a is after time @b. */
bool export_time_later(struct timespec a, struct timespec b);

/** Free @count edits and the array. */
void export_edits_free(struct export_edit *edits, size_t count);

/** The access of several sources, ANDed. */
struct export_access {
	mode_t mode;
	uid_t uid;
	gid_t gid;
	bool any; /* a source was seen */
};

/** Add a source of @mode, @uid, @gid to @a: the AND of the bits, the common owner else root. */
void export_access_and(struct export_access *a, mode_t mode, uid_t uid, gid_t gid);

/** @node's access is its one source's, @st. */
void export_access_own(struct export_node *node, const struct stat *st);

/** @node's access is @a. */
void export_access_set(struct export_node *node, const struct export_access *a);

/**
 * Finish the tree @node: sort each folder, give it the newest time found
 * under it (@empty when it holds nothing dated) and the access of what it
 * holds. A folder with nothing to take access from, at the top, is root's
 * and readable (it holds nothing).
 */
void export_finish(struct export_node *node, struct timespec empty);

/**
 * Mix the identity of the file @st describes into @h (start from
 * HASH_START): replaced, resized, written (or its times set back), it changes.
 */
uint64_t export_stamp_mix(uint64_t h, const struct stat *st);

/**
 * The identity of every file of @chain, from its open files, into *@stamp;
 * its newest time into *@mtime, the access of its files ANDed into *@access
 * (each if not NULL). Returns 0 or -errno of fstat.
 */
int export_chain_stamp(const struct chain *chain, uint64_t *stamp, struct timespec *mtime,
		       struct export_access *access);

/**
 * The store's file @path as it is, a node named @name of @dir; opened without
 * following a link (a link put in its place is never followed). Returns 0
 * or a negative errno with a message.
 */
int export_add_file(struct export_node *dir, const char *name, const char *path, struct error *err);

#endif
