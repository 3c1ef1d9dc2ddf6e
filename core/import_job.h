/*
 * import_job.h - one import of an import mount (core/import_mount.h), from
 * the folder its files are copied into to a registered VM: the mount's
 * policy, without FUSE (docs/IMPORT.md, "The import mount").
 *
 * A job owns a folder of its own in the mount's staging folder
 * (core/staging.h), made and locked by import_job_new(): the file system
 * writes the copied files there, beneath its descriptor. Its state
 * (core/import_status.h) moves so:
 *
 *   COPYING  --import_job_check()-->  WAITING (it lacks something: its
 *            issues say what) or REGISTERING (IMPORT_JOB_READY)
 *   WAITING  --import_job_copying()-->  COPYING (written again)
 *   REGISTERING --import_job_run()-->  REGISTERED, FAILED, or WAITING when
 *            the store changed between the check and the run
 *   COPYING, WAITING --import_job_fail()-->  FAILED (a write failed)
 *   COPYING, WAITING --import_job_abandon()-->  FAILED (removed empty)
 *
 * The check reads the mount's settings, then the folder's own document
 * (IMPORT_JOB_SETTINGS), which is confined: it may send files only to plain
 * places under the mount's roots, and name sources only as its writer may
 * read them (docs/SECURITY.md); then Compare's report (import_compare()).
 * The run registers with import_run(IMPORT_ADOPT). A registered or failed
 * job's folder goes with import_job_remove_folder().
 *
 * Locking: each job has a mutex of its own, which every function here takes
 * for the fields it names (state, issues, the VM registered); it is taken
 * last (a caller may hold its own locks around these calls, never the other
 * way round). import_job_check() and import_job_run() are called by one
 * thread at a time for a job (the mount's checker). The folder's descriptor
 * (import_job_folder_fd()) is valid until import_job_remove_folder(), which
 * the caller calls only when no other thread uses it.
 */
#ifndef IMPEX_IMPORT_JOB_H
#define IMPEX_IMPORT_JOB_H

#include "import_status.h"

#include <stdbool.h>
#include <stdint.h>

struct error;
struct import_job;
struct import_mount;
struct jsonw;

/* The name of an import's own settings document, at the top of its folder. */
#define IMPORT_JOB_SETTINGS "impex-import.settings"

/* What a check or a run came to. */
enum import_job_result {
	IMPORT_JOB_READY,	  /* checked whole: import_job_run() registers it (REGISTERING) */
	IMPORT_JOB_WAITING,	  /* it lacks something, its issues say what; nothing changed */
	IMPORT_JOB_REGISTERED,	  /* its VM is in the store */
	IMPORT_JOB_STORE_CHANGED, /* the store changed since the check (import_run()'s -ECANCELED:
				     another import, a switch gone, room taken): nothing was done;
				     it waits, to be checked again */
	IMPORT_JOB_FAILED,	  /* the registration failed and was rolled back */
};

/* What a file of an import is, by its name: a configuration and the settings document are
 * checked when closed (import_job_file_closed()). */
enum import_file_kind {
	IMPORT_FILE_DATA,     /* a disk, saved state, anything else */
	IMPORT_FILE_CONFIG,   /* an .xml under "Virtual Machines" or "Snapshots" */
	IMPORT_FILE_SETTINGS, /* IMPORT_JOB_SETTINGS at the top of the folder */
};

/** The kind of the file @rel ("/a/b" in the import's folder; rsync's ".name.XXXXXX" counts as
 * "name"). */
enum import_file_kind import_file_kind(const char *rel);

/**
 * A new job of @mount, shown to users as @shown (the folder's path on the
 * mount: it stands for the job's folder in messages): its folder made and
 * locked in the staging folder, state COPYING. *@out is freed with
 * import_job_free(). Returns 0 or -errno.
 */
int import_job_new(struct import_job **out, const struct import_mount *mount, const char *shown);

/** Remove the job's folder if it is still there, and free the job (NULL-safe). */
void import_job_free(struct import_job *job);

/** The job's folder, open (holding its lock), or -1 once removed. Borrowed. */
int import_job_folder_fd(const struct import_job *job);

/** The job's folder's path, for messages and the core (set once; borrowed). */
const char *import_job_folder(const struct import_job *job);

/** The job's state now (it may move as soon as this returns). */
enum import_state import_job_state(struct import_job *job);

/** Whether the job still takes changes (COPYING or WAITING). */
bool import_job_live(struct import_job *job);

/**
 * The error for a change to a job that takes none: its failure's -errno
 * when FAILED, -EBUSY while REGISTERING, else -EROFS.
 */
int import_job_refusal(struct import_job *job);

/** Files are being written again: a WAITING job is COPYING (others stay as they are). */
void import_job_copying(struct import_job *job);

/**
 * Check the job, quiet and closed: the settings, then Compare's report.
 * IMPORT_JOB_READY (state REGISTERING, the settings kept for the run) or
 * IMPORT_JOB_WAITING (its issues say why). No other thread may write its
 * folder meanwhile.
 */
enum import_job_result import_job_check(struct import_job *job);

/**
 * Register a job import_job_check() found READY, into the store (the
 * store's lock is taken; the job's only for a moment, so that other threads
 * are not held up). @quiet_since is when its files last changed
 * (CLOCK_MONOTONIC, ns), for the status's commit_ms.
 * IMPORT_JOB_REGISTERED (the VM's GUID in @id), IMPORT_JOB_STORE_CHANGED
 * (WAITING again) or IMPORT_JOB_FAILED (its folder is then still there:
 * the caller removes it); @err has what went wrong for the last two.
 */
enum import_job_result import_job_run(struct import_job *job, uint64_t quiet_since, char id[37],
				      struct error *err);

/**
 * Fail the job with the errno @e: its issues become the one @id (or
 * "space-short" for ENOSPC and EDQUOT) with @message; state FAILED. Its
 * folder is left for import_job_remove_folder().
 */
void import_job_fail(struct import_job *job, int e, const char *id, const char *message);

/**
 * The user gave the job up before it held anything (rmdir of its folder):
 * its empty folder is removed, state FAILED with ENOENT. Its descriptor
 * stays open (others may use it) until import_job_remove_folder() or
 * import_job_free(). Returns 0 or -errno (-ENOTEMPTY).
 */
int import_job_abandon(struct import_job *job);

/**
 * Remove the job's folder (registered or failed: what the copy wrote, with
 * its lock) and close its descriptor. What could not be removed is a
 * warning of the job, and the return: 0, or -errno with a message.
 */
int import_job_remove_folder(struct import_job *job, struct error *err);

/**
 * The file @rel ("/a/b") of the job, of @kind CONFIG or SETTINGS, was
 * closed after a write: it must parse. Its last failure is forgotten; a new
 * one is an error of the job (until the file is written again whole) and
 * the return: -EIO with a message. Returns 0 when it parses.
 */
int import_job_file_closed(struct import_job *job, const char *rel, enum import_file_kind kind,
			   struct error *err);

/** Forget the close() failure of the file @rel (renamed over, or removed). */
void import_job_forget_close(struct import_job *job, const char *rel);

/* What the file system knows of a job's copy, for its status. */
struct import_job_activity {
	const char *folder;    /* its folder's name at the mount's root */
	uint64_t files, bytes; /* files made, bytes written */
	int writing;	       /* files open for writing */
	bool active;	       /* written or changed since its last check */
};

/**
 * Write the job's object of the status file (core/import_status.h) to @j:
 * @activity, its state (COPYING while it takes changes and is @active:
 * what its last check lacked may still arrive), the VM registered, its
 * errors and warnings.
 */
void import_job_write_status(struct import_job *job, struct jsonw *j,
			     const struct import_job_activity *activity);

#endif
