/*
 * rollback.c - what an operation made, removed if it fails (see rollback.h).
 */
#include "rollback.h"

#include "fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int rollback_add(struct rollback *r, const char *path)
{
	char **grown = realloc(r->paths, (r->count + 1) * sizeof(*r->paths));

	if (!grown)
		return -ENOMEM;
	r->paths = grown;
	r->paths[r->count] = strdup(path);
	if (!r->paths[r->count])
		return -ENOMEM;
	r->count++;
	return 0;
}

void rollback_undo(struct rollback *r, rollback_remover *remover, void *ctx)
{
	for (size_t i = r->count; i-- > 0;) {
		if (remover)
			remover(ctx, r->paths[i]);
		else /* door: the store's own commands only; the import gives its remover beneath its roots */
			fsutil_remove_tree(r->paths[i]);
	}
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

void rollback_finish(struct rollback *r, bool failed, rollback_remover *remover, void *ctx)
{
	if (failed)
		rollback_undo(r, remover, ctx);
	else
		rollback_release(r);
}
