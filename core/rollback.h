/*
 * rollback.h - the files and folders an operation made, so that a failure
 * leaves nothing of it: each path is noted as soon as it exists, and the
 * operation ends by undoing them (newest first: files before the folders
 * that hold them) when it failed, or only forgetting them when it succeeded.
 *
 * How a path is removed is the caller's rule: with no remover,
 * fsutil_remove_tree() (a folder with what it holds, a link as itself); a
 * caller whose paths lie in places others control gives its own (the import
 * removes beneath its target roots' folder descriptors, never through a
 * link).
 *
 *   struct rollback r = ROLLBACK_INIT;
 *   rollback_add(&r, path) after each thing made;
 *   rollback_finish(&r, failed, NULL, NULL), or rollback_undo()/rollback_release().
 *
 * Only what the operation made goes in: never a path that was there before
 * it (a folder it merely found, a name it failed to take).
 * Not thread-safe: a rollback belongs to one operation.
 */
#ifndef IMPEX_ROLLBACK_H
#define IMPEX_ROLLBACK_H

#include <stdbool.h>
#include <stddef.h>

struct rollback {
	char **paths; /* made, oldest first */
	size_t count;
};

#define ROLLBACK_INIT {.paths = NULL, .count = 0}

/** A remover: takes @path away; its failures are its own to report. */
typedef void rollback_remover(void *ctx, const char *path);

/**
 * Note @path (copied) as made by the operation. Returns 0 or -ENOMEM (then
 * @path is not noted: the caller removes it itself, or fails before making
 * more).
 */
int rollback_add(struct rollback *rollback, const char *path);

/**
 * Remove every noted path, newest first, through @remover (with @ctx), or
 * fsutil_remove_tree() when @remover is NULL; then forget them all, leaving
 * @rollback empty for reuse.
 */
void rollback_undo(struct rollback *rollback, rollback_remover *remover, void *ctx);

/** Forget the paths (an operation that succeeded keeps what it made), leaving @rollback empty. */
void rollback_release(struct rollback *rollback);

/** rollback_undo() when @failed, else rollback_release(). */
void rollback_finish(struct rollback *rollback, bool failed, rollback_remover *remover, void *ctx);

#endif
