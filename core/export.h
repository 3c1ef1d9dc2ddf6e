/*
 * Export folders: what the export mount and `impex export` present for a
 * store. This first part names things: the folders of VMs and snapshots get
 * names that are safe as file names, unique among their siblings, and stable
 * while the store changes around them.
 */
#ifndef IMPEX_EXPORT_H
#define IMPEX_EXPORT_H

#include "disk.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "vhd.h"

struct error;
struct export_notes;
struct store;
struct store_snapshot;
struct store_vm;

/* Names are cut to this many bytes (at a character boundary). */
#define EXPORT_NAME_MAX 200

/* One thing to name: a VM or a snapshot among its siblings. */
struct export_name {
	const char *name;      /* as the configuration says it */
	const char *id;	       /* its GUID */
	int64_t creation_time; /* Unix seconds; orders clashes */
	char *out;	       /* the name given (new string, caller frees) */
};

/**
 * Write into @out (EXPORT_NAME_MAX + 1 bytes at least) @name made safe as
 * a file name: control characters, '/' and bytes that are not UTF-8 become
 * '_'; "" becomes "_", "." and ".." get a '_' in front; at most
 * EXPORT_NAME_MAX bytes.
 */
void export_safe_name(const char *name, char *out);

/**
 * Give each of the @count @names its folder name: its safe name, unless
 * that clashes (ignoring ASCII case, as the file systems copies land on may)
 * with another's. Of clashing names, the oldest (creation time, then GUID)
 * keeps it; every other gets " (" and the first 8 characters of its GUID
 * ")" after it, or its whole GUID should that clash too. So a name changes
 * only when an older namesake appears, never because of a newer one.
 * Returns 0 or -ENOMEM (then no .out is set).
 */
int export_assign_names(struct export_name *names, size_t count);

/* ---- the plan of an export folder ---- */

/* Hyper-V's CopySnapshotConfiguration, as far as a VM's folder goes. */
enum export_snapshots {
	EXPORT_SNAPSHOTS_ALL,  /* the VM and every snapshot (Hyper-V's 0) */
	EXPORT_SNAPSHOTS_NONE, /* no snapshots: each current disk's chain merged (1) */
};

/* Hyper-V's export settings, with its defaults given by export_settings_default(). */
struct export_settings {
	bool copy_vm_storage;		  /* the disks (else configurations only) */
	bool copy_vm_runtime_information; /* saved state */
	enum export_snapshots copy_snapshot_configuration;
	bool create_vm_export_subdirectory; /* one more folder level, named after the VM */
};

void export_settings_default(struct export_settings *settings);

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
	char *path;		     /* the store's file (the chain's top for MERGED, RAW, PARTITION);
				      * LINK: target; a folder of raw/ states: its path in the tree */
	struct export_edit *edits;   /* CONFIG */
	size_t edit_count;
	struct vhd_patch patches[DISK_MAX_PATCHES]; /* RELOCATED: laid over the file */
	size_t patch_count;
	bool replayed; /* RELOCATED: read through the disk module (a VHDX log replayed) */
	char *seed;		     /* MERGED: what the new disk's UUID derives from */
	struct store *store;	     /* MERGED, RAW: opens the chain (path map, confinement) */
	uint64_t stamp;		     /* the sources' identity when planned (export_open checks it) */
	uint64_t start;		     /* PARTITION: where it starts in the chain's raw content */
	bool partitions_pending;     /* a folder of raw/ states: its images' partitions not read */
	uint64_t size;		     /* exact, known before any read */
	uint64_t allocated;	     /* bytes the source really holds (for st_blocks) */
	struct timespec mtime;	     /* taken from the sources */
	mode_t mode;		     /* permission bits (0777) from the sources, see below */
	uid_t uid;		     /* the sources' common owner, else 0 (root) */
	gid_t gid;		     /* the sources' common group, else 0 */
	bool own_access;	     /* mode, uid, gid are one source's own (a file, a folder) */
	bool no_access;		     /* while planning: a folder with nothing to take them from */
	uint64_t ino;		     /* set by whoever serves the tree: its inode number */
	bool renewed;		     /* set by whoever serves the tree: not as the tree before had it */
	bool replaced;		     /* set likewise: the tree before had it by this name, otherwise */
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

/* What a plan notes of what it does not plan, or does not plan whole. */
enum export_omission {
	EXPORT_LEFT_OUT,   /* a VM or snapshot that cannot be exported: broken, or gone */
	EXPORT_NOT_NOW,	   /* a transient fault: left out for now, to be tried again */
	EXPORT_KEPT,	   /* a transient fault: shown as the tree before had it */
	EXPORT_UNREADABLE, /* a disk whose chain cannot be opened (below); what: its path */
	EXPORT_PARTITIONS, /* a fault of a raw image's partition table; what: the image's path */
};

/*
 * A disk whose chain cannot be opened for a lasting reason (a file damaged or
 * of a format impexfs does not read, a parent missing or damaged, a file found
 * nowhere) does not hide its VM: a VM's folder carries the files of its chain
 * that it can name (the top, and each parent found with the UUID its child
 * names) as they lie, the last one unrelocated, and its drive names the top
 * there; a folder of merged disks (a snapshot's, a raw state's) leaves that
 * disk out, its drive keeping the path the store's configuration writes.
 * Faults of the moment (error_is_transient()), disks and parents outside the
 * store (EACCES) and disks found by their name alone that are not the VM's
 * fail the plan.
 */

/* Told of each such disk each time a plan meets it (@note may be NULL). */
struct export_notes {
	void (*note)(void *ctx, const char *what, enum export_omission how,
		     const struct error *why);
	void *ctx;
};

/*
 * A planner: what every plan of one store needs, kept by whoever plans (the
 * mount keeps one for its life, `impex export` makes one for its export).
 * While it plans one VM (export_plan_vm(), export_plan_snapshot(), each VM of
 * export_plan_store()) it holds the files of the VM's chains open in a cache,
 * so that the chains of the VM and its snapshots, which share their files,
 * open each file once; between plans it holds none. One thread at a time.
 */
struct export_planner;

/**
 * A planner of exports of @store (borrowed: it must outlive the planner) with
 * @settings (copied), telling @notes (copied; may be NULL) of what its plans
 * leave out. *@out is freed with export_planner_free(). Returns 0 or -ENOMEM
 * with a message.
 */
int export_planner_new(struct store *store, const struct export_settings *settings,
		       const struct export_notes *notes, struct export_planner **out,
		       struct error *err);

/** Free what export_planner_new() gave. NULL-safe. */
void export_planner_free(struct export_planner *planner);

/**
 * The export folder of @vm (listed by store_list) with the planner's
 * settings, as Export-VM lays it out: "Virtual Machines/<GUID>.xml" with its disks'
 * paths made relative ("Virtual Hard Disks\<file>"), its saved state in
 * "Virtual Machines/<GUID>/", "Virtual Hard Disks/" with every file of
 * every chain of the VM and its snapshots (each differencing disk naming
 * its parent in that folder; files of one name get their disk's UUID in
 * it), and "Snapshots/" with the snapshots' configurations and saved state.
 * With copy_snapshot_configuration NONE: no snapshots, each current disk's
 * chain merged into one dynamic VHD. A disk whose chain cannot be opened is
 * carried as it lies (struct export_notes), and the planner's notes told of
 * it. *@out is a new folder node named @name (caller frees with
 * export_node_free()). Returns 0 or a negative errno with a message.
 */
int export_plan_vm(struct export_planner *planner, const struct store_vm *vm, const char *name,
		   struct export_node **out, struct error *err);

/**
 * The export folder of snapshot @snap of @vm as an independent VM: a new
 * GUID derived from the VM's and the snapshot's, the snapshot's
 * configuration as that VM's (named like @vm, no snapshot tree), each disk's
 * chain merged into one dynamic VHD (a disk whose chain cannot be opened
 * left out, and the planner's notes told of it), and the snapshot's saved
 * state unless copy_vm_runtime_information is off. copy_vm_storage and
 * copy_snapshot_configuration do not apply (as in Hyper-V).
 */
int export_plan_snapshot(struct export_planner *planner, const struct store_vm *vm,
			 const struct store_snapshot *snap, const char *name,
			 struct export_node **out, struct error *err);

/** The GUID export_plan_snapshot() gives snapshot @snap_id of VM @vm_id (upper case). */
void export_snapshot_vm_id(const char *vm_id, const char *snap_id, char out[37]);

/**
 * The whole tree the export mount shows for @vms (store_list's @count):
 * "vms/<vm>/", "snapshots/<vm>/<snapshot>/", "raw/<vm>/<current|snapshot>/<disk>.img"
 * and "by-id/<GUID>" links; "snapshots/<vm>/latest" and "raw/<vm>/latest" link to
 * the newest snapshot's folder there (by creation time, then GUID), "current" and
 * "latest" being names no snapshot takes. The partitions of raw images are not
 * read (export_read_partitions()): a folder of raw/ states holding images is
 * marked partitions_pending, unless @previous (the tree made before, a root
 * export_plan_store() gave, or NULL; borrowed) had read its partitions and its
 * images are the same, which are then carried over. What cannot be exported
 * is left out, a disk whose chain cannot be opened only from what derives
 * from it (struct export_notes); the planner's notes are told of each VM or
 * snapshot left out (EXPORT_LEFT_OUT, EXPORT_KEPT, EXPORT_NOT_NOW). A VM
 * whose files fail for a transient reason (error_is_transient(): EMFILE,
 * EIO...) is not taken for broken: it is shown as the previous tree showed
 * it (named as it was, where that name is still free), or left out if it
 * had none; *@faults counts such VMs, so that the caller plans again later.
 * *@out is the root, named "" (caller frees with export_node_free()).
 * Returns 0 or a negative errno with a message (out of memory, a root that
 * is not a Hyper-V store (store_check()), or the store's folder cannot be
 * looked at: the previous tree should stay).
 */
int export_plan_store(struct export_planner *planner, const struct store_vm *vms, size_t count,
		      const struct export_node *previous, struct export_node **out, size_t *faults,
		      struct error *err);

/**
 * What @node's bytes are made of: its sources' identity and whatever the
 * plan lays over them (edits, patches, a seed). Two plans give a path the
 * same identity only if they give it the same bytes.
 */
uint64_t export_node_identity(const struct export_node *node);

/**
 * The partitions of each raw image in @dir (a folder of raw/ states, marked
 * partitions_pending): "<disk>-part<N>.img" for partition N of "<disk>.img",
 * numbered as Linux numbers them (core/partition.h), each a window over the
 * image with its time, access and identity, its st_blocks the image's
 * allocated blocks inside the window. A fault of a table (a hostile one, a
 * sector that cannot be read, a name taken) is told to @notes
 * (EXPORT_PARTITIONS) and leaves out what it concerns; the image stays.
 * *@out is a new folder holding the partitions' nodes (for
 * export_add_partitions(), or freed with export_node_free()). Memory: a
 * partition table at a time. Returns 0; -ENOMEM, -EMFILE, -ENFILE, -EINTR
 * (try again later); -ESTALE, or the error of a chain that no longer opens,
 * for an image changed since it was planned; each with a message.
 */
int export_read_partitions(const struct export_node *dir, const struct export_notes *notes,
			   struct export_node **out, struct error *err);

/**
 * Move the nodes of @parts (export_read_partitions() of @dir) into @dir, in
 * name order, and clear its partitions_pending. On success @parts is freed;
 * on failure (-ENOMEM) @dir and @parts are as they were.
 */
int export_add_partitions(struct export_node *dir, struct export_node *parts);

/** Free @node and everything under it. NULL-safe. */
void export_node_free(struct export_node *node);

/** The child of @dir named @name, or NULL (a binary search: the tree is finished). */
struct export_node *export_child(const struct export_node *dir, const char *name);

/* ---- reading ---- */

/* An open file of an export. */
struct export_file;

/**
 * Open file @node for reading: its sources are opened (or its bytes made)
 * and must be what the plan saw, else -ESTALE with a message naming the
 * file that changed. Returns 0 or a negative errno with a message.
 */
int export_open(const struct export_node *node, struct export_file **out, struct error *err);

/** The node @file was opened for. */
const struct export_node *export_file_node(const struct export_file *file);

/** Close what export_open() gave. NULL-safe. */
void export_close(struct export_file *file);

/**
 * Read @len bytes at @offset (within the size) of @file. A source that has
 * changed since the open fails the read with -ESTALE and a message, rather
 * than giving old and new bytes mixed. Several threads may read one file.
 * Returns 0 or a negative errno with a message.
 */
int export_read_at(struct export_file *file, void *buf, size_t len, uint64_t offset,
		   struct error *err);

/** export_read_at() with the file opened and closed for the call (tools, tests). */
int export_read(const struct export_node *node, void *buf, size_t len, uint64_t offset,
		struct error *err);

/**
 * lseek's SEEK_DATA (@data true) or SEEK_HOLE from @offset in @file: the
 * source's own holes, or for merged and raw disks the blocks no level
 * allocates. Returns the offset, or -ENXIO past the last data (for
 * SEEK_DATA) or at or past the end, or another negative errno with a message.
 */
int64_t export_seek(struct export_file *file, uint64_t offset, bool data, struct error *err);

/**
 * A file node (named after @path) for the store file @path as it is, or, with
 * @parent_name, for the differencing disk @path relocated to name its parent
 * @parent_name in its own folder; a VHDX is read through the disk module (a
 * log it holds served replayed, the log emptied). *@out is freed with export_node_free().
 */
int export_node_for_file(const char *path, const char *parent_name, struct export_node **out,
			 struct error *err);

/**
 * Write file @node into the new file @dest (created, never replaced), sparse
 * where the source has zeros, fsynced, with the node's time. Returns 0 or a
 * negative errno with a message.
 */
int export_write_file(const struct export_node *node, const char *dest, struct error *err);

/**
 * export_write_file(), calling @progress (if not NULL) with the bytes of the
 * file done since its last call, as it goes; a negative errno it returns
 * stops the write with that error.
 */
int export_write_file_progress(const struct export_node *node, const char *dest,
			       int (*progress)(void *ctx, uint64_t bytes), void *ctx,
			       struct error *err);

/**
 * export_write_file_progress() into @fd, a new empty file open for writing
 * (named @dest in messages; the caller made it and closes it).
 */
int export_write_file_fd(const struct export_node *node, int fd, const char *dest,
			 int (*progress)(void *ctx, uint64_t bytes), void *ctx, struct error *err);

/**
 * Write the tree under @node into the folder @dest (which must not exist),
 * files sparse where their sources have zeros, links as links: all of it
 * under a temporary name beside @dest (".NAME.partial-XXXXXXXX"), named
 * @dest only once whole (never over a name), and removed on failure.
 * @progress (may be NULL) is told the bytes @done of the files' @total as
 * they are written, and once more before the tree takes its name; a
 * negative errno it returns stops the write with that error. Returns 0 or
 * a negative errno with a message (-EEXIST: @dest is taken).
 */
int export_write(const struct export_node *node, const char *dest,
		 int (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
		 struct error *err);

#endif
