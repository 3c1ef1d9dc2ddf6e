/*
 * rollback.h - the files and folders an operation made, so that a failure
 * leaves nothing of it: each path is noted as soon as it exists, and the
 * operation ends with rollback_finish(), which removes them newest first
 * when it failed (a folder with what it holds, a link as itself) and only
 * forgets them when it succeeded.
 *
 * Only what the operation made goes in: never a path that was there
 * before it (a folder it merely found, a name it failed to take).
 * Not thread-safe: a rollback belongs to one operation.
 */
#ifndef IMPEX_ROLLBACK_H
#define IMPEX_ROLLBACK_H

#include <stdbool.h>
#include <stddef.h>

struct rollback {
	char **paths; /* oldest first */
	size_t count;
};

#define ROLLBACK_INIT {.paths = NULL, .count = 0}

/**
 * Note @path (copied) as made by the operation. Returns 0 or -ENOMEM (then
 * @path is not noted: the caller removes it itself, or fails before making
 * more).
 */
int rollback_add(struct rollback *rollback, const char *path);

/**
 * End the operation: when @failed, remove every noted path, newest first,
 * through @remove (with @ctx), or fsutil_remove_tree() when @remove is NULL
 * (a caller whose paths lie in places others control removes through
 * core/beneath); then forget them all, leaving @rollback empty for reuse.
 */
void rollback_finish(struct rollback *rollback, bool failed,
		     int (*remove)(void *ctx, const char *path), void *ctx);

#endif
