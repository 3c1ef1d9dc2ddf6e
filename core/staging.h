/*
 * staging.h - where imports write before their commit, and how what a
 * killed import left is told from what a running one holds.
 *
 * The protocol, in one place:
 *
 * 1. The import mount's folders. Each import's files are written once, into
 *    a folder of its own on the file system of the target VHD root, so that
 *    registration only links them into place. Those folders live in one
 *    folder of that root, STAGING_FOLDER, which is the daemon's: owned by its
 *    user, mode 0700, so that no local user reaches an import's files but
 *    through the mount. An import's folder is "<8 hex digits>" in it
 *    (staging_new()), made 0700 and held by an exclusive flock() on its
 *    descriptor for as long as the import lives; the mount removes it with
 *    the lock still held (staging_remove()).
 *
 * 2. An import's temporary names. core/import_run writes each file and
 *    saved-state folder first as ".<final name>.impex-import" next to its
 *    target (staging_temp_name()), and renames or links it into place at the
 *    commit.
 *
 * 3. The sweep. A lock ends with its process: a folder whose lock can be
 *    taken belongs to no running mount. A sweep takes the lock of each folder
 *    it removes and removes it with the lock held (staging_remove_unheld()),
 *    so that no mount can take it meanwhile, and leaves alone a folder whose
 *    lock is held. Sweeps run under the store's lock (store_lock()), so that
 *    no other import of the store is writing temporary names meanwhile:
 *    staging_sweep() for the mount's folders, staging_sweep_temps() for the
 *    temporary names of a target folder.
 */
#ifndef IMPEX_STAGING_H
#define IMPEX_STAGING_H

#include <stdbool.h>
#include <stddef.h>

struct error;
struct pathbuf;

/* The daemon's folder in a target VHD root. */
#define STAGING_FOLDER ".impex-staging"

/* An import folder's name: 8 hex digits (and its NUL, with room to spare). */
#define STAGING_NAME_MAX 16

/* The end of a temporary name: ".<final name>.impex-import". */
#define STAGING_TEMP_SUFFIX ".impex-import"

/**
 * Open the staging folder of the root open on @rootfd (@root: its path, for
 * messages), making it if missing and @create: it must be a folder (not a
 * link) owned by this process's effective user; its mode is set to 0700.
 * Returns the descriptor (caller closes) or a negative errno with a message
 * (-EPERM for one owned by someone else: left alone; -ENOENT for one
 * missing without @create).
 */
int staging_open(int rootfd, const char *root, bool create, struct error *err);

/**
 * Make a new import folder in the staging folder @stagingfd: a free random
 * name (into @name), mode 0700, opened and locked (flock LOCK_EX) and checked
 * to still bear that name (a sweep may remove a folder between its mkdir and
 * its lock). Returns the folder's descriptor, which holds the lock until it
 * is closed, or -errno.
 */
int staging_new(int stagingfd, char name[STAGING_NAME_MAX]);

/**
 * Remove the import folder @name of @stagingfd, which this process holds
 * open (and locked) on *@fd, with all it holds; then close *@fd (set to -1),
 * which lets the lock go. Returns 0 or the first -errno met; with @left
 * (may be NULL, else PATH_MAX bytes) naming, relative to the staging
 * folder, the first thing that could not be removed.
 */
int staging_remove(int stagingfd, const char *name, int *fd, char *left);

/**
 * rmdir of the import folder @name of @stagingfd, which must be empty (a
 * user gave up an import before it held anything). The descriptor that
 * holds its lock stays open: the caller closes it when no one uses it.
 * Returns 0 or -errno (-ENOTEMPTY).
 */
int staging_remove_empty(int stagingfd, const char *name);

/**
 * Remove the name @name of the folder @dirfd if no process holds it: a file
 * or link goes; a folder goes, with all it holds, if its lock can be taken
 * (removed with the lock held). Returns 1 when it was removed, 0 when a
 * lock holds it (or it is gone already), or -errno when it could not be
 * removed.
 */
int staging_remove_unheld(int dirfd, const char *name);

/**
 * Remove what no running mount holds from the staging folder @stagingfd:
 * each import folder whose lock can be taken, and any other name
 * (staging_remove_unheld()). Returns how many names could not be removed.
 */
size_t staging_sweep(int stagingfd);

/** Whether @name is a temporary name: ".<name>.impex-import". */
bool staging_is_temp(const char *name);

/**
 * Set @out to the temporary name of the final path @final, in the same
 * folder: "<folder>/.<name>.impex-import" ("." for a path with no folder).
 * Returns 0 or -ENOMEM (@out then holds "", which names nothing).
 */
int staging_temp_name(struct pathbuf *out, const char *final);

/**
 * Remove the temporary names (staging_is_temp()) that no lock holds
 * (staging_remove_unheld()) from the folder @rel beneath @rootfd ("" for
 * that folder itself; no link followed). The store's lock is held.
 */
void staging_sweep_temps(int rootfd, const char *rel);

#endif
