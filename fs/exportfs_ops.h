/*
 * exportfs_ops.h - the export mount's handlers (exportfs_ops, declared in
 * exportfs.h) and what they own: the open files, each a struct
 * exportfs_handle in fi->fh, made in open and freed in release, listed in
 * fs->open_files (openfiles.h).
 */
#ifndef IMPEX_EXPORTFS_OPS_H
#define IMPEX_EXPORTFS_OPS_H

#include <stdbool.h>
#include <stddef.h>

struct exportfs;

/**
 * Close the files still open (a lazy unmount may end the session with files
 * open whose RELEASE never comes), once the session's loop has ended.
 */
void exportfs_close_open_files(struct exportfs *fs);

/**
 * Plan one VM listed and not planned yet, the first from index *@next on
 * (wrapping round), as a lookup would; *@next then follows it. Returns false
 * when none is left to plan. A fault is left for the lookup that meets it.
 */
bool exportfs_plan_ahead(struct exportfs *fs, size_t *next);

#endif
