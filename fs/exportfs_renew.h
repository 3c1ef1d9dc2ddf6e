/*
 * exportfs_renew.h - the tree of the export mount made again and swapped
 * in: when the store's folders change or a file was found changed, the
 * planner (fs->planner, the revalidating thread's alone) makes a new tree, the
 * new one is served at once under the write lock, and the kernel is told what
 * changed (twice: replies made from the tree before may reach it after the
 * first telling). What cannot be exported is said in the log.
 */
#ifndef IMPEX_EXPORTFS_RENEW_H
#define IMPEX_EXPORTFS_RENEW_H

#include "export.h"

struct error;
struct exportfs;

/**
 * The mount's notes (struct export_notes, @ctx the struct exportfs): what is
 * left out is said when asked (verbose), what fails for a transient reason
 * always, a disk that cannot be read once (fs->logged: the planner's thread
 * alone), a partition table's fault as it is read (any thread).
 */
void exportfs_note(void *ctx, const char *what, enum export_omission how, const struct error *why);

/**
 * Make the first tree into fs->current (in exportfs_init(), before any other
 * thread): the top folders alone, told to the kernel already; the first look
 * of the thread lists the store into them (fs->listed). Returns 0 or a
 * negative errno with a message (not a store).
 */
int exportfs_renew_first(struct exportfs *fs, struct error *err);

/**
 * One look of the revalidating thread: tell the kernel again what the last
 * new tree changed, and list the store again if it was not listed yet or its
 * folders changed (or a file did), planning again the VMs the tree served
 * had planned; swap the new tree in and tell the kernel. Takes fs->lock,
 * ref_lock and wake_lock itself.
 */
void exportfs_revalidate(struct exportfs *fs);

/** Ask for the tree to be made again at the next look (a file was found changed or gone). */
void exportfs_mark_stale(struct exportfs *fs);

#endif
