/*
 * The import mount: each folder made at the mount's root is one import of
 * an export folder into the store (docs/IMPORT.md, "The import mount").
 */
#ifndef IMPEXFS_IMPORTFS_H
#define IMPEXFS_IMPORTFS_H

#include <fuse_opt.h>
#include <stdbool.h>
#include <stddef.h>

#include "loop.h"

struct pathmap;

struct importfs_options {
	const char *store;      /* the store's (first) root */
	const char *more_roots; /* its other roots, ':' between them, or NULL */
	const char *sources;	/* folders root's documents may name sources in, ':' between, or NULL */
	const char *mountpoint;
	const struct pathmap *pathmap;
	const char *settings_file; /* -o settings=FILE, or NULL */
	const char *settings_text; /* the -o settings as a document ("" for none) */
	unsigned settle_ms;	   /* quiet time before an import is checked */
	bool verbose;
	bool foreground, debug;
	struct fsloop_options loop; /* how the session loop runs */
};

/* The status file at the mount's root and an import's own settings document are named in
 * core/import_status.h and core/import_job.h. */

/**
 * Mount, go to the background unless told not to, serve until unmounted.
 * @args are libfuse's remaining arguments. Returns the exit status: 0, 1
 * for a store or a mount that failed, 2 for bad settings.
 */
int importfs_main(const struct importfs_options *options, struct fuse_args *args);

#endif
