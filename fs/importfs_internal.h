/*
 * importfs_internal.h - the import mount's FUSE side, shared by its files:
 * fs/importfs.c (the mount, its operations table), fs/importfs_names.c (the
 * imports at the root, names, folders, attributes, the status file),
 * fs/importfs_files.c (open files), fs/importfs_checker.c (the thread that
 * checks and registers), fs/importfs_view.c (a finished import's folder as
 * it was).
 *
 * The policy (what an import is, its checks, its registration, its status)
 * is the core's: core/import_mount.h and core/import_job.h. This side keeps
 * only what FUSE needs: which import a path names, who made it, what is
 * being written, and the view of a finished one.
 *
 * Locks, taken in this order: an import's rw, then fs->mu, then its job's
 * own lock (inside core/import_job.c). Operations take rw shared; the
 * checker takes it alone to check an import, to apply the outcome of its
 * registration (the view, the job's folder), and to fail it.
 */
#ifndef IMPEXFS_IMPORTFS_INTERNAL_H
#define IMPEXFS_IMPORTFS_INTERNAL_H

#include "importfs.h"
#include "importfs_view.h"
#include "openfiles.h"

#include "import_job.h"

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

struct fuse_file_info;
struct import_mount;

/* How often a waiting import is checked again though nothing in it changed. */
#define IMPORTFS_RECHECK_NS (5ull * 1000000000u)
/* A file's writeback is started each time this much more of it has been written. */
#define IMPORTFS_WRITEBACK_BYTES (8u << 20)

/* One import: a folder at the mount's root. */
struct importfs_import {
	char *name;		/* the folder at the mount's root (set once) */
	struct import_job *job; /* the core's import (set once; its state has its own lock) */
	pthread_rwlock_t rw;	/* see the top of this file */
	uid_t owner;	    /* who made the import, or was given it by chown (guarded by fs->mu) */
	bool gone;	    /* removed by rmdir (guarded by fs->mu; written with rw shared) */
	atomic_int writers; /* files open for writing */
	atomic_int failing; /* an errno that fails the import, 0 */
	atomic_uint_fast64_t bytes, files;
	atomic_uint_fast64_t last_ns; /* the last change, CLOCK_MONOTONIC */
	atomic_bool dirty;	      /* changed since the last check */
	struct importfs_view view;    /* once registering, registered or failed (written with rw
					 alone; its entries' st guarded by fs->mu) */
	uint64_t checked_ns;	      /* the last check (the checker thread's own) */
};

struct importfs {
	const struct importfs_options *o; /* set before the threads start, then read-only */
	struct import_mount *mount;	  /* set before the threads start, then read-only */
	struct timespec started; /* when the mount began (CLOCK_REALTIME: shown as times) */
	pthread_mutex_t mu;
	pthread_cond_t wake;		  /* tells the checker (CLOCK_MONOTONIC; with mu) */
	struct importfs_import **imports; /* guarded by mu */
	size_t count;			  /* guarded by mu */
	bool stop;			  /* guarded by mu */
	pthread_t checker;		  /* the checker thread (the mount's main thread's) */
	bool checker_running;		  /* the mount's main thread's */
	/* Every open file, freed with the mount if its RELEASE never comes (openfiles.h). */
	struct openfiles open;
};

/* An open file: fi->fh. */
struct importfs_handle {
	struct importfs_import *imp; /* NULL for the status file */
	int fd;			     /* the file in the import's folder, or -1 */
	bool writer, written;
	atomic_uint_fast64_t unsent; /* bytes written since its writeback was last started */
	enum import_file_kind kind;
	char *rel;  /* its name in the import ("/a/b") */
	char *text; /* the status file's bytes */
	size_t len;
	struct openfiles_link link; /* in importfs.open */
};

/* What a path names. */
enum importfs_kind { IMPORTFS_ROOT, IMPORTFS_STATUS, IMPORTFS_IMPORT, IMPORTFS_NEW, IMPORTFS_NONE };

struct importfs_where {
	enum importfs_kind kind;
	struct importfs_import *imp;
	const char *rel;	 /* in the import: "" or "/a/b" */
	const char *at;		 /* the same beneath its folder: "" or "a/b" */
	char name[NAME_MAX + 1]; /* IMPORTFS_NEW: the folder to make */
};

/* ---- fs/importfs_names.c ---- */

/** The mount of the calling request. */
struct importfs *importfs_of(void);

/** Something changed in @imp: its check waits for quiet again. */
void importfs_touch(struct importfs_import *imp);

/**
 * What @path names, into @w. Returns 0 or -errno (-ENOENT, -ENAMETOOLONG).
 * Takes fs->mu for a moment.
 */
int importfs_resolve(struct importfs *fs, const char *path, struct importfs_where *w);

/**
 * importfs_resolve(), and for a path in an import, take the import's rw
 * shared: the caller ends with importfs_done(), which returns @rc.
 */
int importfs_begin(struct importfs *fs, const char *path, struct importfs_where *w);
int importfs_done(struct importfs_where *w, int rc);

/**
 * The status file's bytes as the user @uid sees them (a new string, @len
 * bytes; caller frees): root sees every import, another user their own.
 * Takes fs->mu.
 */
char *importfs_status_text(struct importfs *fs, uid_t uid, size_t *len);

/** Attributes of the root or the status file, @size bytes. */
void importfs_fill_root(const struct importfs *fs, struct stat *st, mode_t type, size_t size);

/**
 * Give what @at names in @imp's folder (or @fd, if not -1) to the user
 * whose request made it, as a file system that is not FUSE would.
 */
void importfs_own(struct importfs_import *imp, const char *at, int fd);

/* The FUSE handlers of names, folders and attributes. */
int importfs_op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi);
int importfs_op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
			struct fuse_file_info *fi, enum fuse_readdir_flags flags);
int importfs_op_mkdir(const char *path, mode_t mode);
int importfs_op_rmdir(const char *path);
int importfs_op_unlink(const char *path);
int importfs_op_rename(const char *from, const char *to, unsigned int flags);
int importfs_op_link(const char *from, const char *to);
int importfs_op_mknod(const char *path, mode_t mode, dev_t dev);
int importfs_op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi);
int importfs_op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi);
int importfs_op_truncate(const char *path, off_t size, struct fuse_file_info *fi);
int importfs_op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi);
int importfs_op_setxattr(const char *path, const char *name, const char *value, size_t size,
			 int flags);
int importfs_op_getxattr(const char *path, const char *name, char *value, size_t size);
int importfs_op_listxattr(const char *path, char *list, size_t size);
int importfs_op_removexattr(const char *path, const char *name);

/* ---- fs/importfs_files.c ---- */

int importfs_op_create(const char *path, mode_t mode, struct fuse_file_info *fi);
int importfs_op_open(const char *path, struct fuse_file_info *fi);
int importfs_op_read(const char *path, char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi);
int importfs_op_write_buf(const char *path, struct fuse_bufvec *buf, off_t off,
			  struct fuse_file_info *fi);
int importfs_op_flush(const char *path, struct fuse_file_info *fi);
int importfs_op_release(const char *path, struct fuse_file_info *fi);
int importfs_op_fsync(const char *path, int datasync, struct fuse_file_info *fi);
int importfs_op_statfs(const char *path, struct statvfs *st);

/* ---- fs/importfs_checker.c ---- */

/** Start the checker thread. Returns 0 or -errno. */
int importfs_checker_start(struct importfs *fs);

/** Stop the checker thread, if it runs, and wait for it. */
void importfs_checker_stop(struct importfs *fs);

/** Unmounted: free the open files never released (the loop has ended). */
void importfs_handles_drop(struct importfs *fs);

/**
 * A write or a sync to @imp's file failed with the errno @e: no room, or
 * the disk, fails the import (the checker does it). Returns -@e.
 */
int importfs_write_failed(struct importfs *fs, struct importfs_import *imp, int e);

#endif
