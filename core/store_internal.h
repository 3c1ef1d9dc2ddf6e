/*
 * store_internal.h - what the files of the store module share, for them
 * alone (other modules see core/store.h):
 *
 *   store.c           opening a store: its roots, the folders it may read
 *                     (the record), its lock, a new store's folders
 *   store_resolve.c   confinement (what lies inside the store) and the
 *                     resolution of the disks a configuration names
 *   store_list.c      listing the VMs and snapshots of the store
 *   store_tree.c      the snapshot tree where configurations do not say it,
 *                     and disks found by name that another VM claims
 *   store_names.c     names as Hyper-V compares them, picking a VM or snapshot
 *   store_switch.c    the virtual switches (switches.txt)
 *   store_vm.c        making VMs
 *   store_snapshot.c  taking and applying snapshots, saving state
 *   store_delete.c    deleting VMs
 *
 * Locking: struct store's fields are set by store_open() and read-only
 * after, except those marked "guarded by allowed_lock", which any thread
 * (chains open on any) reads and store_record_folder() adds to. Changes to
 * the store's files hold the store's lock (store_lock(), a flock).
 */
#ifndef IMPEX_STORE_INTERNAL_H
#define IMPEX_STORE_INTERNAL_H

#include "store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct config;
struct error;

#define STORE_SWITCHES_FILE "switches.txt"
#define STORE_LOCK_FILE	    ".impexfs.lock"
/* The first line of switches.txt (docs/FORMAT.md). */
#define STORE_SWITCHES_HEADER "# impexfs virtual switches: GUID, a space, the name\n"

struct store {
	char **roots; /* real paths; set by store_open(), then read-only */
	size_t root_count;
	/* Real paths of the roots, the path map's targets, the extra and the recorded folders:
	 * only added to. Guarded by allowed_lock (chains open on any thread). */
	char **allowed;
	size_t allowed_count, allowed_cap; /* guarded by allowed_lock */
	pthread_mutex_t allowed_lock;
	/* Set by store_open(), then read-only: */
	const struct pathmap *pathmap;
	bool allow_outside;
	bool recorded; /* the roots' records are read */
	char *notice;  /* a record left aside, or NULL */
};

/* ---- store.c ---- */

/**
 * Read the record of every root (core/record.h) and allow the folders it
 * lists that exist. What cannot be trusted or read goes into the store's
 * notice (with @note: only while store_open() runs), and its folders stay
 * outside the store. Takes allowed_lock. Returns 0 or -ENOMEM.
 */
int store_read_records(struct store *store, bool note);

/**
 * Whether the real path @real lies inside the roots, the path map's
 * targets, the extra or the recorded folders. Takes allowed_lock.
 */
bool store_inside(const struct store *store, const char *real);

/** A new string from a printf format (caller frees); NULL on ENOMEM. */
char *store_format_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- store_resolve.c ---- */

/**
 * The VHD drives of @config, resolved (store_resolve(); a disk found by its
 * name alone that is a differencing disk whose chain does not open becomes
 * a problem) into *@disks, *@count of them (caller frees with
 * store_disks_free()). A drive that cannot be resolved has its problem.
 * Returns 0, or a negative errno with a message (a transient fault, or
 * ENOMEM) and nothing in *@disks.
 */
int store_resolve_disks(struct store *store, const struct config *config, struct store_disk **disks,
			size_t *count, struct error *err);

/** Free @count @disks. NULL-safe. */
void store_disks_free(struct store_disk *disks, size_t count);

/* ---- store_list.c ---- */

/** Free what @snapshot holds (not @snapshot itself). */
void store_snapshot_release(struct store_snapshot *snapshot);

/* ---- store_tree.c ---- */

/**
 * Fill @vm's snapshot tree where its configurations do not say it (the
 * parents of snapshots, the snapshot the VM stands on; docs/FORMAT.md),
 * drop the snapshots that hold one of its current disks (cut short), and
 * order them parents first. Returns 0 or -ENOMEM.
 */
int store_complete_tree(struct store *store, struct store_vm *vm);

/**
 * Take from each disk of @vms found by its name alone the file that
 * another VM's configuration names by its path: it becomes the disk's
 * problem. Returns 0 or -ENOMEM.
 */
int store_refuse_claimed(struct store_vm *vms, size_t count);

/* ---- store_snapshot.c, used by store_delete.c ---- */

/**
 * Whether a VM of @vms other than @vm uses the file @path: in the chain of
 * one of its disks or of one of its snapshots' disks. A chain that cannot be
 * read sets *@uncertain.
 */
bool store_used_elsewhere(struct store *store, const struct store_vm *vms, size_t count,
			  const struct store_vm *vm, const char *path, bool *uncertain);

#endif
