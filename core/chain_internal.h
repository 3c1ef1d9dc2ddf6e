/*
 * chain_internal.h - what the chain modules share and nothing else sees:
 * the open chain and its levels. core/chain.c opens and reads chains;
 * core/chain_parent.c finds each parent. Only these include it.
 */
#ifndef IMPEX_CHAIN_INTERNAL_H
#define IMPEX_CHAIN_INTERNAL_H

#include "chain.h"

#include <stdbool.h>

struct error;

struct chain_level {
	struct disk *disk;
	bool shared; /* the cache's: not closed with the chain */
	char *how;   /* how it was found (chain_level_how), NULL for the top */
};

/*
 * An open chain. Built by chain_open alone, then read-only: any number of
 * threads may read it (the disks' own reading is thread-safe, disk.h).
 */
struct chain {
	struct chain_level *levels; /* max_depth of them, depth in use */
	unsigned depth;
	char **warnings;
	unsigned warning_count;
};

/**
 * disk_open() of @path for reading, through @cache if not NULL: *@shared
 * tells whether the file is the cache's (never to be closed by the caller;
 * otherwise the caller closes *@disk with disk_close()). Returns 0 or a
 * negative errno with a message.
 */
int chain_level_open(struct chain_cache *cache, const char *path, struct disk **disk, bool *shared,
		     struct error *err);

/**
 * The parent of @child found before, by a chain opened through @cache: true
 * with the cache's file in *@parent and how it was found in *@how; false if
 * @cache is NULL, or holds no such file or no parent of it.
 */
bool chain_cache_parent(const struct chain_cache *cache, const struct disk *child,
			struct disk **parent, const char **how);

/** Keep in @cache that @parent (found as @how says) is @child's parent, when both are its
 * files; nothing otherwise, or when out of memory. */
void chain_cache_note_parent(struct chain_cache *cache, const struct disk *child,
			     const struct disk *parent, const char *how);

/** Add a printf-formatted warning to @c (dropped when out of memory). */
void chain_add_warning(struct chain *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Find the parent of @child, the last level of @c, and add it as the next
 * level, with how it was found (core/chain_parent.c). Returns 0, or a
 * negative errno with a message as chain_open() says.
 */
int chain_parent_find(struct chain *c, const struct chain_options *options, struct disk *child,
		      struct error *err);

#endif
