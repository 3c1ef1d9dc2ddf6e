/*
 * import_run.h - the state of one import_run() (core/import.h), shared by
 * its two halves: core/import_copy.c writes the data (every file of every
 * chain, saved state) under temporary names, core/import_run.c registers
 * (journal, names placed, configurations written, the VM's last: the
 * commit) and undoes a failure. Private to those two files.
 *
 * An import runs in one thread, with the store's lock held: nothing here
 * is shared between threads.
 */
#ifndef IMPEX_IMPORT_RUN_H
#define IMPEX_IMPORT_RUN_H

#include "import.h"
#include "journal.h"
#include "pathbuf.h"
#include "rollback.h"
#include "savedstate.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct error;
struct store;
struct store_disk;
struct store_switch;
struct store_vm;

/* At most this many roots an import writes in, or a recovery looks at: the store's and the
 * three targets. */
#define IMPORT_RUN_ROOTS 64

/* One disk file to copy. */
struct import_copy_job {
	char *source; /* its real path */
	char *target; /* where it goes */
	char *temp;   /* where it is written first */
	int parent;   /* the job of its parent, or -1 */
	bool renamed; /* in place at its target */
};

struct import_run_state {
	struct store *store;  /* the target store */
	struct store *folder; /* the export folder */
	const struct import_settings *s;
	const struct store_vm *vm;
	char vm_id[37];
	char (*snap_ids)[37]; /* new GUIDs, as vm->snapshots */
	/* with generate_new_id, each old GUID (the VM's, its snapshots') and its new one */
	struct savedstate_rename *renames;
	size_t rename_count;
	struct import_copy_job *jobs;
	size_t job_count;
	struct rollback made; /* files and folders made (folders after their files) */
	struct store_switch *switches;
	size_t switch_count;
	const struct import_progress *progress;
	unsigned flags;
	char dir_real[PATH_MAX]; /* the folder's real path (IMPORT_ADOPT) */
	char **state_temp;	 /* saved-state folders, as written */
	char **state_final;	 /* and their names */
	size_t state_count;
	uint64_t done, total; /* bytes copied, and to copy */
	const char *file;     /* the file being written (in @writing, or NULL) */
	struct pathbuf writing;
	int journal_fd; /* the journal folder of the target VM root, or -1 */
	bool journaled; /* a journal was written */
	struct journal_root places[IMPORT_RUN_ROOTS]; /* the roots it writes in, open */
	size_t place_count;
};

/* ---- core/import_run.c ---- */

/**
 * Where the absolute @path lies for a write: the descriptor of the target
 * root or store root (or, for IMPORT_ADOPT, the import folder of the
 * thread's scope) that holds it by name, with the rest in *@rel (borrowed
 * from @path). Every write of an import resolves beneath one of them,
 * following no link (core/beneath.h). Returns the descriptor (borrowed), or
 * -EXDEV with a message (@err may be NULL) for a path under none.
 */
int import_run_place(const struct import_run_state *r, const char *path, const char **rel,
		     struct error *err);

/**
 * mkdir of the target folder @path: 0, -EEXIST (a target root itself, or a
 * folder there already), or a negative errno with a message (@err may be
 * NULL).
 */
int import_run_make_folder(const struct import_run_state *r, const char *path, struct error *err);

/**
 * Open the roots @s writes in (its targets, then the store's roots) into
 * @roots (at most @cap), each by the administrator's name, once (a root
 * that cannot be opened has fd -1). Returns how many; close them with
 * import_run_close_places().
 */
size_t import_run_open_places(const struct store *store, const struct import_settings *s,
			      struct journal_root *roots, size_t cap);

/** Close the @count roots import_run_open_places() opened. */
void import_run_close_places(struct journal_root *roots, size_t count);

/** Whether a name @path exists beneath its place (as anything, links included). */
bool import_run_exists(const struct import_run_state *r, const char *path);

/** Remember that @path was made: a failure removes it. Returns 0 or -ENOMEM. */
int import_run_made(struct import_run_state *r, const char *path);

/**
 * @bytes more copied: told to the caller's progress. Returns 0 or the
 * negative errno it returned, which stops the import.
 */
int import_run_advance(struct import_run_state *r, uint64_t bytes);

/**
 * With generate_new_id, replace in @text every old GUID of the VM and its
 * snapshots (any case, braced or not: the braces stay) by its new one,
 * written in the case of the old. Returns whether any was.
 */
bool import_run_renew_ids(const struct import_run_state *r, char *text);

/** The resource of the settings for the disk a configuration records as @written, or NULL. */
const struct import_resource *import_run_resource_of(const struct import_run_state *r,
						     const char *written);

/* ---- core/import_copy.c ---- */

/**
 * Plan the jobs of @disk's chain (the disk read where its resource says),
 * parents first, each file once: its target (where a resource says, else
 * the target VHD root; a free name, named after the new GUID). Returns the
 * top's job, or a negative errno with a message.
 */
int import_copy_plan_chain(struct import_run_state *r, const struct store_disk *disk,
			   struct error *err);

/** The job whose source is the real path @source, or -1. */
int import_copy_find_job(const struct import_run_state *r, const char *source);

/** Count the bytes to copy (the jobs' and the saved state's) into r->total. */
void import_copy_count(struct import_run_state *r);

/**
 * Write each disk under its temporary name (or adopt it, IMPORT_ADOPT),
 * differencing disks naming their parents' new files; then give each parent
 * the modification time its child records. Returns 0 or a negative errno
 * with a message.
 */
int import_copy_disks(struct import_run_state *r, struct error *err);

/**
 * Copy the saved state in @from into the new folder @to, under a temporary
 * name (recorded in r->state_temp and r->state_final, renamed at the
 * commit), an old GUID in a file's name made the new one. Returns 0 or a
 * negative errno with a message.
 */
int import_copy_state(struct import_run_state *r, const char *from, const char *to,
		      struct error *err);

/* ---- core/import_recover.c ---- */

/**
 * What killed imports left in @store and at the targets of @s
 * (import_recover()); the store's lock is held. @report (may be NULL) hears
 * of what is left alone.
 */
void import_recover_all(struct store *store, const struct import_settings *s,
			void (*report)(void *ctx, const char *message), void *ctx);

#endif
