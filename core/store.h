/*
 * A store: one or more Hyper-V data roots on a Linux file system.
 *
 *   ROOT/Virtual Machines/<VM-GUID>.xml        a VM's configuration
 *   ROOT/Virtual Machines/<VM-GUID>/           its saved state (.vsv, .bin)
 *   ROOT/Snapshots/<SNAP-GUID>.xml             a snapshot's configuration
 *   ROOT/Snapshots/<SNAP-GUID>/                its saved state
 *   ROOT/Virtual Hard Disks/                   disks, unless configurations point elsewhere
 *   ROOT/switches.txt                          the host's virtual switches (see docs/FORMAT.md)
 *
 * The snapshot tree is kept in the configurations with the keys of
 * docs/FORMAT.md; where they are missing it is inferred from the disk chains.
 *
 * The folder names are core/hyperv.h's. The module is several files, one
 * concept each (listed in store_internal.h). A struct store may be used
 * from several threads at once (its shared parts take their own lock);
 * every change to the store's files takes the store's lock (store_lock()).
 */
#ifndef IMPEX_STORE_H
#define IMPEX_STORE_H

#include "disk.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct error;
struct pathmap;

/* The keys of the snapshot tree (docs/FORMAT.md). */
#define STORE_KEY_CURRENT "global_settings/snapshots/current"	/* VM: snapshot it runs from */
#define STORE_KEY_COUNT	  "global_settings/snapshots/list/size" /* VM: its snapshots */
#define STORE_KEY_PARENT  "global_settings/snapshots/parent"	/* snapshot: its parent */
#define STORE_KEY_VM_ID	  "settings/global/logical_id"		/* VM, snapshot: the VM's GUID */
struct chain;
struct chain_cache;
struct store;

struct store_options {
	const char *const *roots; /* data roots; the first takes new VMs */
	size_t root_count;
	const struct pathmap *pathmap; /* Windows paths to Linux; may be NULL */
	bool allow_outside;	       /* let disks and parents lie outside the roots and the map */
	const char *const *extra;      /* more folders whose files may be read (not listed) */
	size_t extra_count;
	/* Also the folders the store's record lists (core/record.h): for a store, never for an
	 * export folder, whose files are anyone's. */
	bool recorded;
};

/* A disk as a configuration names it, resolved. */
struct store_disk {
	char *key; /* the drive in the configuration: "<node>/controllerN/driveM" */
	enum config_bus bus;
	unsigned controller, drive;
	char *written; /* the path as the configuration writes it */
	char *path;    /* the real Linux path found (no link in it), or NULL */
	char *how;     /* how it was found: "path map", "next to the configuration", ... */
	char *problem; /* why it cannot be used, or NULL */
	bool by_name;  /* an absolute path that was found by its file name alone, elsewhere */
	/* Why no file was found for it: ENOENT (none anywhere), EACCES (outside), else 0. */
	int problem_code;
};

struct store_snapshot {
	char id[37];
	char *name;
	char *config_path;
	char *parent_id;      /* the parent snapshot's GUID, "" for a root */
	bool parent_inferred; /* taken from the disk chains, not from the configuration */
	int64_t creation_time;	/* Unix seconds, 0 when absent */
	int64_t creation_ticks; /* the same as a FILETIME (100 ns since 1601): sibling order */
	char *saved_state; /* the folder holding its .vsv/.bin, or NULL */
	struct store_disk *disks;
	size_t disk_count;
	struct config_adapter *adapters;
	size_t adapter_count;
	char *problem;
};

/* What a VM is doing, as its configuration and files tell (docs/FORMAT.md, "State"). */
enum store_vm_state {
	STORE_VM_UNKNOWN, /* its configuration cannot be read */
	STORE_VM_OFF,
	STORE_VM_SAVED,
	STORE_VM_RUNNING,
};

/** "off", "saved", "running", or NULL for STORE_VM_UNKNOWN. */
const char *store_vm_state_name(enum store_vm_state state);

struct store_vm {
	char id[37]; /* properties/global_id; "" for an unreadable file not named by its GUID */
	char *name;
	char *config_path;
	int generation;
	int64_t version;
	int64_t creation_time;
	char *current_snapshot_id; /* the snapshot the running state descends from, "" for none */
	char *saved_state;	   /* the folder holding its .vsv/.bin, or NULL */
	struct store_disk *disks;
	size_t disk_count;
	struct config_adapter *adapters;
	size_t adapter_count;
	struct store_snapshot *snapshots; /* parents before children */
	size_t snapshot_count;
	char *problem;	  /* a configuration that cannot be read: the rest is empty */
	int problem_code; /* the errno behind @problem; error_is_transient(): try again later */
	int64_t expected_snapshots; /* its snapshot count (list/size), -1 when absent */
	enum store_vm_state state;
};

struct store_switch {
	char id[37];
	char *name;
};

/**
 * Open the store of @options: every root must be a folder. Nothing is read
 * yet. On success *@out is the store; caller frees with store_free().
 * Returns 0 or a negative errno with a message.
 */
int store_open(struct store **out, const struct store_options *options, struct error *err);

void store_free(struct store *store);

/**
 * Whether @store is a Hyper-V store: its first root (the one that takes new
 * VMs) holds a "Virtual Machines" folder (as "impex store init" makes, and
 * Hyper-V's default folder has). More roots are data roots, which may hold
 * only snapshots' configurations or disks. Returns 0, or -ENOENT (-ENOTDIR:
 * it is not a folder) with the message "'ROOT' is not a Hyper-V store: no
 * 'Virtual Machines' folder", or another negative errno for a root that
 * cannot be looked into now.
 */
int store_check(const struct store *store, struct error *err);

/** store_check() of the one folder @root, before any store is opened on it. */
int store_check_root(const char *root, struct error *err);

/**
 * What store_open() left aside, or NULL: a record of folders (core/record.h)
 * that could not be trusted or read, whose folders are then not the store's.
 * Borrowed, valid until store_free().
 */
const char *store_notice(const struct store *store);

/**
 * Make the folder @folder a folder of the store before an import writes
 * disks there: when its real path lies outside the roots, the path map's
 * folders and the record, it is added to the record of the first root
 * (core/record.h) and read through @store from now on. Only for folders the
 * administrator named (mount options, the command line's settings), never
 * for an export folder's own document. Takes the store's lock. Returns 0 or
 * a negative errno with a message (-EPERM: the record or its folder is not
 * this process's own).
 */
int store_record_folder(struct store *store, const char *folder, struct error *err);

/** The store's path map (may be NULL). Borrowed. */
const struct pathmap *store_pathmap(const struct store *store);

/** Root @i. Borrowed. */
const char *store_root(const struct store *store, size_t i);

/**
 * Take the store's lock (a lock file in the first root, flock): every change
 * to a store holds it, so that two changes never interleave. Returns the
 * lock (for store_unlock()) or a negative errno with a message.
 */
int store_lock(struct store *store, struct error *err);

/** Release a lock store_lock() took. */
void store_unlock(int lock);

/** A new random GUID into @out, in upper or lower case. */
void store_new_guid(char out[37], bool upper);

/**
 * Check a name given to a VM, snapshot or switch (@what, for the message):
 * 1 to 200 bytes, no control characters. Returns 0 or -EINVAL with a message.
 */
int store_check_name(const char *name, const char *what, struct error *err);

/**
 * Create the folders of a new store at @root (which may exist, empty or a
 * store already). Returns 0 or a negative errno with a message.
 */
int store_init(const char *root, struct error *err);

/**
 * Every VM of the store, sorted by name then GUID, with its snapshots
 * (parents first), disks resolved (not opened) and problems noted: a broken
 * VM never hides the others. Configurations are found by content: every
 * "*.xml" (any case, not hidden) of "Virtual Machines" and "Snapshots" whose
 * properties/global_id names the VM or snapshot, whatever the file's name; a
 * file that cannot be read is a VM with a problem (named by the file). A disk
 * found by its file name alone (by_name) is not used (a problem instead) when
 * another VM's configuration names that file by its path, or when it is a
 * differencing disk whose chain does not open (docs/FORMAT.md, "Paths"). With
 * the store's record, folders recorded since store_open() are read too. A VM
 * whose files fail for a transient reason (error_is_transient()) has that
 * problem and its code; a snapshot's configuration, or a VM's not named by
 * its GUID, that so fails (it cannot be told whose it is) fails the whole
 * listing. *@vms is an array of *@count (caller frees with
 * store_vms_free()). Returns 0, or a negative errno for a store that cannot
 * be read at all, or not now.
 */
int store_list(struct store *store, struct store_vm **vms, size_t *count, struct error *err);

void store_vms_free(struct store_vm *vms, size_t count);

/** Free what @vm holds, leaving it zeroed (store_vms_free() does so to each). */
void store_vm_release(struct store_vm *vm);

/**
 * Whether the names @a and @b are the same when case is ignored, as Hyper-V
 * compares names (each UTF-8 character folded to lower case).
 */
bool store_same_name(const char *a, const char *b);

/**
 * The VM @name_or_id of @vms into *@vm, as Hyper-V takes names: its GUID in
 * any case; else the one VM of exactly that name; else the one VM of that
 * name in another case ("BLOG" for "blog"). Returns 0, -ENOENT, or -EINVAL
 * when several VMs have that name (Hyper-V allows it), or several have it
 * in other cases and none exactly: the message names each with its GUID.
 * *@vm is borrowed from @vms.
 */
int store_pick_vm(const struct store_vm *vms, size_t count, const char *name_or_id,
		  const struct store_vm **vm, struct error *err);

/**
 * The snapshot @name_or_id of @vm into *@snapshot, by the rules of
 * store_pick_vm(). Returns 0, -ENOENT or -EINVAL with a message. Borrowed
 * from @vm.
 */
int store_pick_snapshot(const struct store_vm *vm, const char *name_or_id,
			const struct store_snapshot **snapshot, struct error *err);

/**
 * The VM named @name_or_id (its GUID in any case, else the first of exactly
 * that name), or NULL: where a name is to be told taken, not resolved.
 */
const struct store_vm *store_find_vm(const struct store_vm *vms, size_t count,
				     const char *name_or_id);

/**
 * Open the chain of @disk (resolved by store_list), with the store's path
 * map and confinement. Returns 0 or a negative errno with a message.
 */
int store_open_chain(struct store *store, const struct store_disk *disk, struct chain **chain,
		     struct error *err);

/** store_open_chain() through @cache (see chain_cache; NULL: none) of a disk whose path is
 * real (as store_list() resolves them): its folder is not resolved again. */
int store_open_chain_cached(struct store *store, const struct store_disk *disk,
			    struct chain_cache *cache, struct chain **chain, struct error *err);

/**
 * store_open_chain_cached() that, when the chain cannot be opened past its
 * top, gives in *@chain the levels it opened (chain_options.partial): the
 * caller closes *@chain whatever is returned (NULL when not even the top
 * opened).
 */
int store_open_chain_partial(struct store *store, const struct store_disk *disk,
			     struct chain_cache *cache, struct chain **chain, struct error *err);

/**
 * Resolve the path @written of a configuration at @config_path: a Linux
 * path as it is, a Windows path through the path map; else its file name
 * next to the configuration, then in each root's "Virtual Hard Disks".
 * Case is ignored where the exact name is missing. The result must lie
 * inside the roots, the path map's targets or the recorded folders unless
 * the store allows it.
 * *@path and *@how are new strings (caller frees). Returns 0, -ENOENT
 * (message lists the places tried), -EACCES (outside), -ENOMEM.
 */
int store_resolve(struct store *store, const char *config_path, const char *written, char **path,
		  char **how, struct error *err);

/**
 * The form a configuration should record for the Linux path @path: the
 * Windows path when the path map covers it, else @path. A new string.
 */
char *store_written_path(const struct store *store, const char *path);

/** The switches of switches.txt in the first root. Caller frees with store_switches_free(). */
int store_switches(const struct store *store, struct store_switch **switches, size_t *count,
		   struct error *err);

void store_switches_free(struct store_switch *switches, size_t count);

/**
 * The switch of the @count @switches named @name: by its name (exact), else
 * by its GUID (any case). NULL for none or an empty @name. Borrowed.
 */
const struct store_switch *store_find_switch(const struct store_switch *switches, size_t count,
					     const char *name);

/** Add a switch named @name with a new GUID (into *@id if not NULL). Crash-safe. */
int store_add_switch(struct store *store, const char *name, char id[37], struct error *err);

/* ---- making VMs (store_vm.c) ---- */

struct store_new_disk {
	enum config_bus bus;
	uint64_t size; /* bytes, a whole number of MiB */
};

struct store_new_vm {
	const char *name;
	int generation;	     /* 1 or 2 (generation 2 has no IDE: disks go to SCSI) */
	uint64_t memory_mib; /* 0: 512 */
	const struct store_new_disk *disks;
	size_t disk_count;
	const char *const *switches; /* one adapter per switch, by name or GUID */
	size_t switch_count;
	/* The disks' format: 0 takes Hyper-V's default for the generation
	 * (2012 R2: VHDX for generation 2, VHD for generation 1). */
	enum disk_format disk_format;
};

/**
 * Create a VM in the first root: a new GUID (into @id), its disks as new
 * dynamic VHDs or VHDXs (Hyper-V's defaults: 2 MiB blocks for VHD, 32 MiB
 * for VHDX) in "Virtual Hard Disks" named after the VM, its adapters on
 * the named switches, and its configuration (UTF-16LE, as Hyper-V writes),
 * written last and crash-safely: until then the VM does not exist. A name
 * already used, an unknown switch or a disk that cannot be made fails with
 * nothing left behind. Returns 0 or a negative errno with a message.
 */
int store_create_vm(struct store *store, const struct store_new_vm *spec, char id[37],
		    struct error *err);

/* ---- snapshots and saved state (store_snapshot.c) ---- */

/**
 * Take snapshot @name of VM @vm (name or GUID) as Hyper-V does: the
 * snapshot's configuration keeps the VM's current disks, frozen; each gets
 * a new differencing disk "<stem>_<SNAPSHOT-GUID>.avhd" that the VM goes on
 * in; the saved state, if any, is copied to Snapshots/<GUID>/ by the rule
 * of core/savedstate.h (the VM's GUID in a file's name made the
 * snapshot's). The new
 * GUID goes into @id. Returns 0 or a negative errno with a message; on
 * failure the store is as it was.
 */
int store_snapshot_vm(struct store *store, const char *vm, const char *name, char id[37],
		      struct error *err);

/**
 * Apply snapshot @snapshot (name or GUID) of VM @vm as Hyper-V's Apply: the
 * snapshot's configuration becomes the VM's, over new differencing disks on
 * the snapshot's disks, with the snapshot's saved state; the VM's state
 * before (its differencing disks no snapshot holds, its saved state) is
 * discarded after the new configuration is in place.
 */
int store_apply_snapshot(struct store *store, const char *vm, const char *snapshot,
			 struct error *err);

/**
 * Give VM @vm a saved state (opaque .vsv and .bin files, the .bin the
 * memory's size; the .vsv, which marks it, put in place last).
 */
int store_save_state(struct store *store, const char *vm, struct error *err);

/* ---- deleting VMs (store_delete.c) ---- */

/**
 * Delete VM @vm: its configuration first, then its snapshots' (also those
 * the listing misses that name @vm as theirs) and its saved-state folders;
 * with @disks also the files of its disks' chains that no other VM uses.
 * Returns 0 or a negative errno with a message: a failure before the
 * configuration goes changes nothing; after it, the VM is deleted and the
 * message names each file or folder left behind, and each snapshot
 * configuration of no VM that names a deleted disk.
 */
int store_delete_vm(struct store *store, const char *vm, bool disks, struct error *err);

#endif
