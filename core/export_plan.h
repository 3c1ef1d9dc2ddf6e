/*
 * export_plan.h - the plan of one VM's export folder, or of one snapshot's as
 * a VM of its own, as Export-VM lays it out: what `impex export` writes and
 * what the export mount shows under vms/ and snapshots/ (export_tree.h). A
 * plan is a tree of nodes (export_node.h) saying where each file's bytes come
 * from; nothing is read or copied until its files are (export_file.h,
 * export_write.h).
 */
#ifndef IMPEX_EXPORT_PLAN_H
#define IMPEX_EXPORT_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "export_node.h"

struct chain;
struct error;
struct export_state;
struct store;
struct store_disk;
struct store_snapshot;
struct store_vm;

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

/** Fill @settings with Hyper-V's defaults: storage, runtime information, all snapshots. */
void export_settings_default(struct export_settings *settings);

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

/* ---- for the export modules ---- */

/**
 * Begin planning a VM with @planner: a cache for its chains, unless one is
 * open already (a VM of export_plan_store()). *@opened says whether this call
 * opened it, for export_planner_vm_end(). Returns 0 or -ENOMEM.
 */
int export_planner_vm_begin(struct export_planner *planner, bool *opened);

/** End what export_planner_vm_begin() began: the cache's files are closed if it opened it. */
void export_planner_vm_end(struct export_planner *planner, bool opened);

/**
 * store_open_chain_cached() of @disk (a disk of the store's listing, or a file
 * a plan took from one: its path is real) through the planner's cache (none
 * outside a VM's planning), or with @partial store_open_chain_partial().
 * *@chain is freed with chain_close(), before the VM's planning ends.
 */
int export_planner_open_chain(struct export_planner *planner, const struct store_disk *disk,
			      bool partial, struct chain **chain, struct error *err);

/** The planner's store. Borrowed. */
struct store *export_planner_store(const struct export_planner *planner);

/** The planner's notes (their @note may be NULL). Borrowed. */
const struct export_notes *export_planner_notes(const struct export_planner *planner);

/* The edits of a configuration, gathered. */
struct export_edits {
	struct export_edit *list;
	size_t count;
	bool failed; /* out of memory on the way */
};

/**
 * Note an edit in @e: @key set to @value (with @type, or the type it has), or
 * removed (@value NULL). Out of memory sets @e->failed.
 */
void export_edits_add(struct export_edits *e, const char *key, const char *type, const char *value);

/**
 * The bytes of configuration @path with the @count @edits made: *@bytes
 * (caller frees), *@len. Returns 0 or a negative errno with a message.
 */
int export_config_make(const char *path, const struct export_edit *edits, size_t count,
		       char **bytes, size_t *len, struct error *err);

/**
 * Check that snapshot @snap of @vm can be exported (-EINVAL with a message if
 * not), and prepare its state @st (export_state_prepare(); @st->id set by the
 * caller).
 */
int export_snapshot_prepare(struct export_planner *planner, const struct store_vm *vm,
			    const struct store_snapshot *snap, struct export_state *st,
			    struct error *err);

/**
 * export_plan_snapshot() with @st (whose id is the new GUID) prepared, or
 * failed with @rc (then nothing is planned and @rc returned).
 */
int export_plan_snapshot_state(int rc, struct export_planner *planner, const struct store_vm *vm,
			       const struct store_snapshot *snap, struct export_state *st,
			       const char *name, struct export_node **out, struct error *err);

#endif
