/*
 * rollback.c - the list of what a change made, undone newest first
 * (rollback.h).
 */
#include "rollback.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int rollback_add(struct rollback *r, const char *path)
{
	char **grown = realloc(r->paths, (r->count + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	r->paths = grown;
	if (!(r->paths[r->count] = strdup(path)))
		return -ENOMEM;
	r->count++;
	return 0;
}

void rollback_undo(struct rollback *r, void (*undo)(void *ctx, const char *path), void *ctx)
{
	for (size_t i = r->count; i-- > 0;)
		undo(ctx, r->paths[i]);
	rollback_release(r);
}

void rollback_release(struct rollback *r)
{
	for (size_t i = 0; i < r->count; i++)
		free(r->paths[i]);
	free(r->paths);
	r->paths = NULL;
	r->count = 0;
}
