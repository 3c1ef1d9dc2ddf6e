/*
 * record.h - a store's record of the folders outside its roots that imports
 * write disks to (docs/FORMAT.md, "The store's record of its folders").
 *
 * An import whose target VHD root lies outside the store (the mount's
 * target_vhd_data_root=, impex import --settings) records that folder
 * before it writes there; every later reader of the store takes it as a
 * folder of the store, as it takes the roots and the path map's folders
 * (confinement, core/store.h). Only the administrator's settings add to
 * it: a settings document inside an export folder never does.
 *
 * The record is the file RECORD_FILE in the daemon's own folder of a store
 * root (JOURNAL_FOLDER, core/journal.h: owned by the process's user, 0700),
 * mode 0600, replaced whole (a temporary name, fsync, rename, fsync of the
 * folder), every name resolved beneath the root's descriptor without
 * following a link (core/beneath.h). A record is used only when its folder
 * and itself belong to the reading process's user or to root, no one else
 * may read or write either, and the file is regular with one link.
 *
 * The text: a first line "impex-folders 1", then one absolute path a line
 * (a real path: no link, no "." or ".." component, no newline).
 */
#ifndef IMPEX_RECORD_H
#define IMPEX_RECORD_H

#include <stddef.h>

struct error;

#define RECORD_FILE  "folders"
#define RECORD_MAGIC "impex-folders 1"
/* At most this many bytes in a record. */
#define RECORD_MAX_BYTES (1u << 20)

/**
 * Parse the record text @text (@len bytes, named @name for messages) into
 * *@folders, an array of *@count new strings (free with record_free()).
 * Returns 0, or -EINVAL with a message naming the line, or -ENOMEM.
 */
int record_parse(const char *text, size_t len, const char *name, char ***folders, size_t *count,
		 struct error *err);

/** Free what record_parse() or record_read() made. NULL-safe. */
void record_free(char **folders, size_t count);

/**
 * The folders the record of the store root open on @rootfd (@root: its
 * path, for messages) lists, into *@folders (*@count; free with
 * record_free()): none when there is no record. Returns 0, or a negative
 * errno with a message: -EPERM for a record or folder that someone else
 * could have written (not this process's user's nor root's, or open to
 * others, or not a regular file of one link), -EINVAL for a damaged one,
 * -EACCES when this process may not read it.
 */
int record_read(int rootfd, const char *root, char ***folders, size_t *count, struct error *err);

/**
 * Add the absolute real path @folder to the record of the store root open
 * on @rootfd (@root: its path, for messages), making the daemon's folder
 * (0700) and the record (0600) as needed: nothing changes when it is
 * listed already. The caller holds the store's lock. Returns 0, or a
 * negative errno with a message: -EPERM for a folder or record that is not
 * this process's own (left alone), -EINVAL for a damaged record or a path
 * that cannot be recorded.
 */
int record_add(int rootfd, const char *root, const char *folder, struct error *err);

#endif
