/*
 * savedstate.h - the one rule for what of a saved-state folder a copy
 * carries, and under which names: a VM's or a snapshot's "<GUID>/" beside
 * its configuration, holding "<GUID>.vsv" and "<GUID>.bin" (docs/FORMAT.md),
 * opaque. A snapshot, an apply, an export and an import each copy one.
 *
 * What a copy carries (and what it leaves out, without a word):
 * - regular files only: no symbolic link (never followed, the folder's own
 *   name included), device, FIFO, socket or folder;
 * - plain names only (beneath_plain_name(): no control character, at most
 *   NAME_MAX bytes), and no hidden name: a name starting with '.' is a
 *   writer's temporary file (rsync's, impexfs's own ".partial-"), not state;
 * - no limit on sizes (a .bin is the memory's size);
 * - each old GUID of the renames in a name, anywhere in it and in any case
 *   (braces, if any, stay), becomes its new GUID, written in the case of
 *   the old (lower case when the old has a lower-case letter).
 * The folder is opened as a source (fsutil_opendir(): through the thread's
 * scope, core/asuser.h), its entries looked at and opened beneath it.
 */
#ifndef IMPEX_SAVEDSTATE_H
#define IMPEX_SAVEDSTATE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct error;
struct rollback;

/* A GUID that a copy renames in file names: @old_id becomes @new_id (both 36 characters). */
struct savedstate_rename {
	const char *old_id;
	const char *new_id;
};

/* One file a copy carries. */
struct savedstate_file {
	char name[NAME_MAX + 1]; /* its name in the folder */
	char as[NAME_MAX + 1];	 /* its name in the copy */
	uint64_t size;		 /* bytes, when it was listed */
};

/**
 * Rename in @name (in place) each old GUID of the @count @renames to its
 * new one, by the rule above. Returns whether any was.
 */
bool savedstate_rename_ids(char *name, const struct savedstate_rename *renames, size_t count);

/**
 * The files of the saved-state folder @folder that a copy carries, by the
 * rule above, in the order of their names (strcmp), each GUID of the
 * @rename_count @renames renamed in its name in the copy. *@files is an
 * array of *@count (caller frees with free()). Returns 0, or a negative
 * errno with a message naming @folder (-ENOTDIR for a link or a file where
 * the folder should be).
 */
int savedstate_files(const char *folder, const struct savedstate_rename *renames,
		     size_t rename_count, struct savedstate_file **files, size_t *count,
		     struct error *err);

/**
 * Copy the saved-state folder @from into the folder @to of the store, the
 * files savedstate_files() gives under their names in the copy: @to is
 * made (0755) unless it exists (as a folder: a link or a file there is
 * refused, -ENOTDIR), each file written under a temporary name
 * beside its own, fsynced, mode 0644, and given its name never over
 * another (-EEXIST); the .vsv files, which mark a saved state, come last,
 * so that a crash never leaves one without the rest. @to when made here,
 * and each file, are noted in @made. Returns 0 or a negative errno with a
 * message.
 */
int savedstate_copy(const char *from, const char *to, const struct savedstate_rename *renames,
		    size_t rename_count, struct rollback *made, struct error *err);

#endif
