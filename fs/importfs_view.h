/*
 * importfs_view.h - what the folder of a registered or failed import held
 * (names and attributes), as the import mount shows it from then on: the
 * files themselves now lie in the store, or are gone.
 *
 * A view is made once, when the import is checked whole (or fails), by one
 * thread that holds the import's lock alone; afterwards it is only read,
 * except the attributes of its entries, which the copy tool's last steps
 * (chmod, chown, utimens) change under the mount's mutex (fs/importfs.c).
 */
#ifndef IMPEXFS_IMPORTFS_VIEW_H
#define IMPEXFS_IMPORTFS_VIEW_H

#include <stddef.h>
#include <sys/stat.h>

/* A name of the folder, as it was. */
struct importfs_entry {
	char *rel;			 /* "" for the folder, else "/a/b" */
	struct stat st;			 /* see the top of this file */
	size_t first_child, child_count; /* a folder's entries, side by side in the view */
};

struct importfs_view {
	struct importfs_entry *entries;
	size_t count;
	size_t *index; /* open addressing on rel's hash: positions + 1, 0 empty */
	size_t slots;  /* a power of two, or 0 (no index: nothing is found) */
};

/**
 * Record what the folder open on @folder_fd holds into the empty @view: folder
 * by folder (no recursion, whatever the depth), each folder's entries side
 * by side, then an index by name. What cannot be read (or stored, out of
 * memory) is left out.
 */
void importfs_view_take(struct importfs_view *view, int folder_fd);

/** Free what @view holds and leave it empty. */
void importfs_view_discard(struct importfs_view *view);

/** Whether @view was taken (holds at least its folder). */
static inline int importfs_view_taken(const struct importfs_view *view)
{
	return view->count != 0;
}

/** The entry of @view for @rel ("" or "/a/b"), or NULL: borrowed, valid while the view is. */
struct importfs_entry *importfs_view_find(const struct importfs_view *view, const char *rel);

#endif
