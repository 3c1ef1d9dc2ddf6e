/*
 * rollback.h - what a change has made so far, to be undone if it fails: a
 * list of paths, undone newest first (files before the folders that hold
 * them), by a function the caller gives (how a path is removed is the
 * caller's rule: core/import_run removes beneath its target roots' folder
 * descriptors, never through a link).
 *
 * struct rollback r = ROLLBACK_INIT;
 * rollback_add(&r, path) after each thing made; on failure
 * rollback_undo(&r, undo, ctx); in any case rollback_release(&r).
 * Not thread-safe: a list belongs to one thread at a time.
 */
#ifndef IMPEX_ROLLBACK_H
#define IMPEX_ROLLBACK_H

#include <stddef.h>

struct rollback {
	char **paths; /* made, oldest first */
	size_t count;
};

#define ROLLBACK_INIT                                                                              \
	{                                                                                          \
		.paths = NULL, .count = 0                                                          \
	}

/** Remember that @path was made (a copy is kept). Returns 0 or -ENOMEM. */
int rollback_add(struct rollback *r, const char *path);

/**
 * Undo: call @undo(@ctx, path) for each path, newest first, then forget
 * them all. @undo's failures are its own to report.
 */
void rollback_undo(struct rollback *r, void (*undo)(void *ctx, const char *path), void *ctx);

/** Forget the paths (a change that succeeded keeps what it made), freeing the list. */
void rollback_release(struct rollback *r);

#endif
