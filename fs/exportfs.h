/*
 * exportfs.h - the export mount: a read-only tree of export folders over a
 * store, kept up to date while mounted. main.c fills the options of a
 * struct exportfs and drives its life (init, start, stop, release); the
 * driver is split as squashfuse's is:
 *
 *   exportfs.c        the mount's life: init, the revalidating thread, stop, release
 *   exportfs_inode.c  the inode table: each tree served (a generation) with
 *                     the inode numbers and FUSE state of its nodes
 *   exportfs_renew.c  the store listed again and the tree swapped in, the kernel told
 *   exportfs_ops.c    the handlers, thin over core/export
 */
#ifndef IMPEX_EXPORTFS_H
#define IMPEX_EXPORTFS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "export.h"
#include "openfiles.h"

struct error;
struct exportfs_gen;
struct exportfs_handle;
struct fuse_lowlevel_ops;
struct fuse_session;
struct store;

struct exportfs {
	/* Set by the caller before exportfs_init(), then read-only. */
	struct store *store;
	struct export_settings settings;
	/* What is shown of who may read (the kernel checks it: default_permissions): each
	 * node's own mode (export_node.h) without write bits, masked by @umask, and its owner
	 * and group, unless @set_uid or @set_gid give one for everything. */
	bool set_uid, set_gid;
	uid_t uid;
	gid_t gid;
	mode_t umask;
	unsigned revalidate;   /* seconds between looks at the store's folders */
	bool verbose;	       /* say what is left out and what changes */
	unsigned readahead_kb; /* 0: leave the kernel's */
	bool copy_reads;       /* copy every read through the daemon: never splice */

	bool initialized; /* exportfs_init() made the locks (the main thread's) */
	/*
	 * The tree served: read under the read lock; swapped (fs->current), and given
	 * the partitions of a folder of raw/, under the write lock. The revalidating
	 * thread plans holding the read lock (it reads the tree served).
	 */
	pthread_rwlock_t lock;
	struct exportfs_gen *current; /* guarded by lock */
	/* Held while a pending VM is planned or a folder's partition tables are read (one at
	 * a time), and taken before the write lock that adds what they give: a node's
	 * vm_pending, left_out, partitions_pending and children change only under both. */
	pthread_mutex_t expand_lock;
	/* Plans the VMs looked at (export_plan_listed_vm()) under expand_lock. */
	struct export_planner *lazy_planner;
	/* Guards each generation's refs and @stale. */
	pthread_mutex_t ref_lock;
	bool stale; /* a file was found changed: make the tree again (guarded by ref_lock) */
	/* Every open file, closed with the mount if its RELEASE never comes (openfiles.h). */
	struct openfiles open_files;

	/* The planner's: exportfs_init()'s, then the revalidating thread's alone, then
	 * exportfs_release()'s once it has ended. */
	struct export_planner *planner; /* plans the trees, with @settings */
	struct exportfs_gen *previous;	/* the tree before, until its changes are told twice */
	uint64_t folders;		/* the store's folders' identity when the tree was made */
	unsigned failures;		/* plans in a row that met transient faults */
	unsigned wait;			/* looks to skip before planning again */
	/* The disks logged as unreadable, as hashes of their path and reason: each is logged
	 * once (open addressing, 0 free). Guarded by logged_lock (both planners' notes). */
	pthread_mutex_t logged_lock;
	uint64_t *logged;
	size_t logged_count, logged_cap;

	/* Set by exportfs_start() before the thread starts, then read-only. */
	struct fuse_session *session;
	const char *mountpoint;
	atomic_bool readahead_done; /* raised (or tried): the first lookup does it */
	atomic_bool splice;	    /* the kernel takes spliced replies (set at INIT) */

	/* The revalidating thread: started and joined by the main thread. */
	pthread_t thread;
	bool thread_started; /* the main thread's */
	pthread_mutex_t wake_lock;
	/* On CLOCK_MONOTONIC: the thread waits on it for @stop, exportfs_stop() for @ended. */
	pthread_cond_t wake;
	bool stop, ended; /* guarded by wake_lock */
	/*
	 * The store is listed by the thread once mounted, not before: until then the tree
	 * served is its top folders, and what is in them waits (exportfs_wait_listed()).
	 * Guarded by wake_lock; @listing is signalled at each try and at stop.
	 */
	pthread_cond_t listing;
	atomic_bool listed;
	unsigned list_tries; /* listings tried and failed */

	/*
	 * The thread planning ahead: started and joined with the revalidating one. Each
	 * lookup that plans a VM grants it EXPORTFS_AHEAD VMs to plan from the next in the
	 * listing (a walk looks at them next); it plans them one at a time, as a lookup
	 * would. Guarded by wake_lock; @ahead_wake is signalled at each grant and at stop.
	 */
	pthread_t ahead_thread;
	bool ahead_started; /* the main thread's */
	pthread_cond_t ahead_wake;
	unsigned ahead_credit; /* VMs it may still plan */
	size_t ahead_next;     /* where it looks first */
	bool ahead_ended;
};

/* VMs planned ahead for each one a lookup plans. */
#define EXPORTFS_AHEAD 64

/** A lookup planned the VM before @next: plan EXPORTFS_AHEAD more, from @next on. */
void exportfs_wake_ahead(struct exportfs *fs, size_t next);

/**
 * Set @fs up (its store, settings, uid, gid, revalidate filled by the
 * caller) with its first tree: the top folders, the store's VMs listed once
 * mounted (exportfs_start()). Returns 0 or a negative errno with a message
 * (the folder is not a store).
 */
int exportfs_init(struct exportfs *fs, struct error *err);

/**
 * Start revalidating once @se is mounted at @mountpoint (the real path): before
 * the session loop, which then raises the mount's readahead at its first lookup.
 */
int exportfs_start(struct exportfs *fs, struct fuse_session *se, const char *mountpoint);

/**
 * Stop the revalidating thread, if started, waiting for it at most @wait_ms
 * milliseconds (-1: as long as it takes). It tells the kernel what changed
 * through the session's device, so it should end before the session is
 * unmounted, which closes that descriptor (a number the next open may take);
 * once asked to stop it tells the kernel nothing more. A thread held in the
 * kernel by a request nobody will answer (the loop ended on a signal with
 * requests pending) is let go only by the unmount: hence the bound. Returns
 * whether the thread has ended.
 */
bool exportfs_stop(struct exportfs *fs, int wait_ms);

/**
 * Stop the thread (exportfs_stop(), waiting as long as it takes), close the
 * files left open and free the trees. Also for an @fs whose exportfs_init()
 * failed or never ran (zeroed).
 */
void exportfs_release(struct exportfs *fs);

/**
 * Wait until the store has been listed once (at most until a try fails, or
 * the mount stops). Returns 0, or EIO: it could not be listed (said in the
 * log), try again.
 */
int exportfs_wait_listed(struct exportfs *fs);

/* The handlers (exportfs_ops.c); the session's user data is the struct exportfs. */
extern const struct fuse_lowlevel_ops exportfs_ops;

#endif
