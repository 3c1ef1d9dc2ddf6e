/*
 * importfs_view.c - the names and attributes of a finished import's folder
 * (importfs_view.h).
 */
#include "importfs_view.h"

#include "beneath.h"
#include "hash.h"
#include "pathbuf.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where the hash of @rel starts looking in @view's index. */
static size_t slot_of(const struct importfs_view *view, const char *rel)
{
	return (size_t)hash_text(HASH_START, rel) & (view->slots - 1);
}

struct importfs_entry *importfs_view_find(const struct importfs_view *view, const char *rel)
{
	if (!view->slots)
		return NULL;
	for (size_t at = slot_of(view, rel);; at = (at + 1) & (view->slots - 1)) {
		size_t i = view->index[at];

		if (!i)
			return NULL;
		if (strcmp(view->entries[i - 1].rel, rel) == 0)
			return &view->entries[i - 1];
	}
}

/* Add an entry for @rel (stat @st) to @view; false when out of memory. */
static bool add(struct importfs_view *view, const char *rel, const struct stat *st)
{
	struct importfs_entry *grown = realloc(view->entries, (view->count + 1) * sizeof(*grown));

	if (!grown)
		return false;
	view->entries = grown;
	memset(&grown[view->count], 0, sizeof(*grown));
	if (!(grown[view->count].rel = strdup(rel)))
		return false;
	grown[view->count].st = *st;
	if (S_ISREG(st->st_mode))
		grown[view->count].st.st_blksize = 1 << 20;
	view->count++;
	return true;
}

/* The entries of the folder @i of @view, added side by side. */
static void add_children(struct importfs_view *view, int folder_fd, size_t i)
{
	struct pathbuf sub = PATHBUF_INIT;
	const char *rel = view->entries[i].rel;
	int fd = beneath_open(folder_fd, rel[0] ? rel + 1 : "", O_RDONLY | O_DIRECTORY, 0);
	struct stat st;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	view->entries[i].first_child = view->count;
	for (struct dirent *e; (e = readdir(d));) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    pathbuf_setf(&sub, "%s/%s", view->entries[i].rel, e->d_name) < 0 ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!add(view, sub.buf, &st))
			break;
	}
	view->entries[i].child_count = view->count - view->entries[i].first_child;
	closedir(d);
	pathbuf_release(&sub);
}

void importfs_view_take(struct importfs_view *view, int folder_fd)
{
	struct stat st;

	if (fstat(folder_fd, &st) < 0 || !add(view, "", &st))
		return;
	for (size_t i = 0; i < view->count; i++)
		if (S_ISDIR(view->entries[i].st.st_mode))
			add_children(view, folder_fd, i);
	for (view->slots = 16; view->slots < 2 * view->count;)
		view->slots *= 2;
	view->index = calloc(view->slots, sizeof(*view->index));
	if (!view->index) {
		view->slots = 0;
		return;
	}
	for (size_t i = 0; i < view->count; i++) {
		size_t at = slot_of(view, view->entries[i].rel);

		while (view->index[at])
			at = (at + 1) & (view->slots - 1);
		view->index[at] = i + 1;
	}
}

void importfs_view_discard(struct importfs_view *view)
{
	for (size_t k = 0; k < view->count; k++)
		free(view->entries[k].rel);
	free(view->entries);
	free(view->index);
	memset(view, 0, sizeof(*view));
}
