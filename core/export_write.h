/*
 * export_write.h - copying a plan to disk: a planned file into a new file,
 * or a planned tree into a new folder (`impex export`), sparse where the
 * sources have zeros. Reads through export_file.h; no shared state.
 */
#ifndef IMPEX_EXPORT_WRITE_H
#define IMPEX_EXPORT_WRITE_H

#include <stdint.h>

#include "export_node.h"

struct error;

/**
 * Write file @node into the new file @dest (created, never replaced), sparse
 * where the source has zeros, fsynced, with the node's time. Returns 0 or a
 * negative errno with a message.
 */
int export_write_file(const struct export_node *node, const char *dest, struct error *err);

/**
 * export_write_file(), calling @progress (if not NULL) with the bytes of the
 * file done since its last call, as it goes; a negative errno it returns
 * stops the write with that error.
 */
int export_write_file_progress(const struct export_node *node, const char *dest,
			       int (*progress)(void *ctx, uint64_t bytes), void *ctx,
			       struct error *err);

/**
 * export_write_file_progress() into @fd, a new empty file open for writing
 * (named @dest in messages; the caller made it and closes it).
 */
int export_write_file_fd(const struct export_node *node, int fd, const char *dest,
			 int (*progress)(void *ctx, uint64_t bytes), void *ctx, struct error *err);

/**
 * Write the tree under @node into the folder @dest (which must not exist),
 * files sparse where their sources have zeros, links as links: all of it
 * under a temporary name beside @dest (".NAME.partial-XXXXXXXX"), named
 * @dest only once whole (never over a name), and removed on failure.
 * @progress (may be NULL) is told the bytes @done of the files' @total as
 * they are written, and once more before the tree takes its name; a
 * negative errno it returns stops the write with that error. Returns 0 or
 * a negative errno with a message (-EEXIST: @dest is taken).
 */
int export_write(const struct export_node *node, const char *dest,
		 int (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
		 struct error *err);

#endif
