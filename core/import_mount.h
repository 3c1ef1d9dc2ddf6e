/*
 * import_mount.h - what every import of one import mount shares, without
 * FUSE (docs/IMPORT.md, "The import mount"; docs/SECURITY.md): the store it
 * imports into, the mount's own settings (a settings file, then the -o
 * options), the folders the daemon reads as itself, and the staging folder
 * of the target VHD root where imports are written (core/staging.h).
 * Each import is a job of it (core/import_job.h).
 *
 * Opening it applies the mount's rules before anything is served: the
 * target roots the mount's settings name are absolute and made if missing;
 * an import mount copies (create_copy = false is refused); every root it
 * writes in is written by no one but the daemon's user; the targets outside
 * the store become folders of the store; what killed imports left is
 * removed (import_recover()).
 *
 * All its fields are set by import_mount_open() and then only read: any
 * thread may read them without a lock.
 */
#ifndef IMPEX_IMPORT_MOUNT_H
#define IMPEX_IMPORT_MOUNT_H

#include "import.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct error;
struct pathmap;
struct store;

/* The store's roots at most: STORE and roots=. */
#define IMPORT_MOUNT_MAX_ROOTS 16

/* The folders the daemon reads as itself at most. */
#define IMPORT_MOUNT_MAX_TRUSTED (IMPORT_MOUNT_MAX_ROOTS * 2 + 3)

struct import_mount_options {
	const char *store;	/* the store's (first) root */
	const char *more_roots; /* its other roots, ':' between them, or NULL */
	const char
		*sources; /* folders root's documents may name sources in, ':' between, or NULL */
	const struct pathmap *pathmap;
	const char *settings_file; /* a settings document of the administrator's, or NULL */
	const char *settings_text; /* the mount options as a settings document ("" or NULL: none) */
	/* Told (may be NULL) what the recovery of killed imports left alone, and why. */
	void (*notice)(void *ctx, const char *message);
	void *ctx;
};

struct import_mount {
	struct store *store;
	char store_root[PATH_MAX];	 /* the store's first root (a real path) */
	struct import_settings given[2]; /* the mount's: the settings file, then the options */
	const char *given_names[2];	 /* for messages */
	size_t given_count;
	char staging_root[PATH_MAX]; /* the target VHD root (a real path) */
	char *staging_path;	     /* its staging folder */
	int staging_fd;		     /* that folder, or -1 */
	/*
	 * What the daemon reads as itself, beneath each, no link followed: the
	 * store's roots and the mount's target roots (the first written_count,
	 * where imports may write), the path map's targets (up to own_trusted),
	 * then the folders of sources= that root's documents may name.
	 */
	const char *trusted[IMPORT_MOUNT_MAX_TRUSTED];
	int trusted_fds[IMPORT_MOUNT_MAX_TRUSTED];
	size_t written_count, own_trusted, trusted_count;
};

/**
 * Open the import mount of @options into *@out (free with
 * import_mount_free()). Returns 0, or a negative errno with a message; then
 * *@bad_settings says whether the fault lies in the mount's settings (the
 * roots= list, the settings file or options: an exit status of 2 for
 * impexfs) rather than in the store or the folders it names (1).
 */
int import_mount_open(struct import_mount **out, const struct import_mount_options *options,
		      bool *bad_settings, struct error *err);

/** Close what @mount holds and free it (NULL-safe). */
void import_mount_free(struct import_mount *mount);

/**
 * Why the settings @settings cannot serve an import of an import mount:
 * NULL, or the reason (static text). An import mount copies: create_copy =
 * false (register in place) is for `impex import`.
 */
const char *import_mount_refusal(const struct import_settings *settings);

/**
 * Whether the absolute @path lies where the mount may write: under the
 * store's roots or the mount's own target roots, by name, at a place an
 * untrusted document may choose (import_target_refusal()). When it does
 * not, the reason, naming @what and @path, goes into @why (@cap bytes).
 */
bool import_mount_may_write(const struct import_mount *mount, const char *path, const char *what,
			    char *why, size_t cap);

/** Whether the absolute @path lies under a folder of sources= (root's documents may read it). */
bool import_mount_may_read(const struct import_mount *mount, const char *path);

#endif
