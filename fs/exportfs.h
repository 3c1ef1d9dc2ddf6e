/*
 * The export mount: a read-only tree of export folders over a store, kept
 * up to date while mounted.
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

struct error;
struct fuse_lowlevel_ops;
struct fuse_session;
struct generation;
struct store;

struct exportfs {
	struct store *store;
	struct export_settings settings;
	/* What is shown of who may read (the kernel checks it: default_permissions): each
	 * node's own mode (export.h) without write bits, masked by @umask, and its owner
	 * and group, unless @set_uid or @set_gid give one for everything. */
	bool set_uid, set_gid;
	uid_t uid;
	gid_t gid;
	mode_t umask;
	unsigned revalidate; /* seconds between looks at the store's folders */
	bool verbose;	     /* say what is left out and what changes */

	/* The tree being served; open files hold the one they were opened in. Read under the
	 * read lock; swapped, and given the partitions of a folder of raw/, under the write
	 * lock. The revalidating thread plans holding the read lock (it reads the tree served). */
	pthread_rwlock_t lock;
	/* Held while a folder's partition tables are read (one folder at a time), and taken
	 * before the write lock that adds them: a folder's partitions_pending and children
	 * change only under both. */
	pthread_mutex_t expand_lock;
	struct generation *current;
	struct generation *previous; /* the tree before, until its changes are told twice */
	uint64_t folders;  /* the store's folders' identity when the tree was made */
	bool stale;	   /* a file was found changed: make the tree again (ref_lock) */
	unsigned failures; /* plans in a row that met transient faults (the thread's) */
	unsigned wait;	   /* looks to skip before planning again (the thread's) */
	/* Plans the trees, with fs->settings: exportfs_init's, then the revalidating thread's. */
	struct export_planner *planner;
	/* The disks logged as unreadable, as hashes of their path and reason: each is logged
	 * once (open addressing, 0 free). Only the planner (init, then the thread) uses it. */
	uint64_t *logged;
	size_t logged_count, logged_cap;

	/* The revalidating thread. */
	struct fuse_session *session;
	const char *mountpoint;
	unsigned readahead_kb;	     /* 0: leave the kernel's */
	atomic_bool readahead_done; /* raised (or tried): the first lookup does it */
	pthread_t thread;
	pthread_mutex_t wake_lock;
	pthread_cond_t wake; /* the thread waits for stop, exportfs_stop() for ended */
	bool thread_started;
	bool stop, ended; /* under wake_lock */
};

/**
 * Set @fs up (its store, settings, uid, gid, revalidate filled by the
 * caller) and make the first tree. Returns 0 or a negative errno with a message.
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

/** Stop the thread (exportfs_stop(), waiting as long as it takes) and free the trees. */
void exportfs_release(struct exportfs *fs);

/* The handlers; the session's user data is the struct exportfs. */
extern const struct fuse_lowlevel_ops exportfs_ops;

#endif
