/*
 * staging.h - where the import mount writes what is copied into it.
 *
 * Each import's files are written once, into a folder of its own on the
 * file system of the target VHD root, so that registration only links them
 * into place. Those folders live in one folder of that root, STAGING_FOLDER,
 * which is the daemon's: owned by its user, mode 0700, so that no local user
 * reaches an import's files but through the mount. An import's folder is
 * "<8 hex digits>" in it, made 0700 and held by an exclusive flock() on its
 * descriptor for as long as the import lives; a folder whose lock is free
 * belongs to no running mount (a lock ends with its process) and is swept.
 */
#ifndef IMPEX_STAGING_H
#define IMPEX_STAGING_H

#include <stddef.h>

struct error;

/* The daemon's folder in a target VHD root. */
#define STAGING_FOLDER ".impex-staging"

/* An import folder's name: 8 hex digits. */
#define STAGING_NAME_MAX 16

/**
 * Open the staging folder of the root open on @rootfd (@root: its path, for
 * messages), making it if missing: it must be a folder (not a link) owned by
 * this process's effective user; its mode is set to 0700. Returns the
 * descriptor (caller closes) or a negative errno with a message (-EPERM for
 * one owned by someone else: left alone).
 */
int staging_open(int rootfd, const char *root, struct error *err);

/**
 * Make a new import folder in the staging folder @stagingfd: a free random
 * name (into @name), mode 0700, opened and locked (flock LOCK_EX) and checked
 * to still bear that name (a sweep may remove a folder between its mkdir and
 * its lock). Returns the folder's descriptor, which holds the lock until it
 * is closed, or -errno.
 */
int staging_new(int stagingfd, char name[STAGING_NAME_MAX]);

/**
 * Remove what no running mount holds from the staging folder @stagingfd:
 * each import folder whose lock can be taken (removed with the lock held),
 * and any other name. Returns how many names could not be removed.
 */
size_t staging_sweep(int stagingfd);

#endif
