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
	char **grown = realloc(r->paths, (r->count + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	r->paths = grown;
	r->paths[r->count] = strdup(path);
	if (!r->paths[r->count])
		return -ENOMEM;
	r->count++;
	return 0;
}

void rollback_finish(struct rollback *r, bool failed, int (*remove)(void *ctx, const char *path),
		     void *ctx)
{
	for (size_t i = r->count; i-- > 0;) {
		if (failed && remove)
			remove(ctx, r->paths[i]);
		else if (failed)
			fsutil_remove_tree(r->paths[i]);
		free(r->paths[i]);
	}
	free(r->paths);
	r->paths = NULL;
	r->count = 0;
}
