/*
 * export_file.h - reading and seeking a planned file: its sources opened
 * and checked unchanged since the plan, its bytes made or read as the plan
 * says (export_node.h's sources). Several threads may read one open file.
 */
#ifndef IMPEX_EXPORT_FILE_H
#define IMPEX_EXPORT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export_node.h"

struct error;

/* An open file of an export. */
struct export_file;

/**
 * Open file @node for reading: its sources are opened (or its bytes made)
 * and must be what the plan saw, else -ESTALE with a message naming the
 * file that changed. Returns 0 or a negative errno with a message.
 */
int export_open(const struct export_node *node, struct export_file **out, struct error *err);

/** The node @file was opened for. */
const struct export_node *export_file_node(const struct export_file *file);

/** Close what export_open() gave, once the reads in flight have ended. NULL-safe. */
void export_close(struct export_file *file);

/**
 * Read @len bytes at @offset (within the size) of @file. A source that has
 * changed since the open fails the read with -ESTALE and a message, rather
 * than giving old and new bytes mixed. Several threads may read one file.
 * Returns 0 or a negative errno with a message.
 */
int export_read_at(struct export_file *file, void *buf, size_t len, uint64_t offset,
		   struct error *err);

struct segments;

/**
 * Begin a read whose bytes may still be taken from the sources after
 * export_map_at() returns (a splice): true when the sources are leased and
 * cannot change until export_read_end(); false when the file must be read
 * with export_read_at() instead. Any thread; several at once.
 */
bool export_read_begin(struct export_file *file);

/**
 * End a read that export_read_begin() let in. May come after the reply, when
 * the reader may already have closed the file: export_close() waits for it.
 */
void export_read_end(struct export_file *file);

/**
 * Describe the read of @len bytes at @offset into @segs (segments.h), with
 * no check of the sources: between export_read_begin() and
 * export_read_end(), or into a flat list checked after. Returns as
 * export_read_at().
 */
int export_map_at(struct export_file *file, struct segments *segs, uint64_t offset, size_t len,
		  struct error *err);

/** export_read_at() with the file opened and closed for the call (tools, tests). */
int export_read(const struct export_node *node, void *buf, size_t len, uint64_t offset,
		struct error *err);

/**
 * lseek's SEEK_DATA (@data true) or SEEK_HOLE from @offset in @file: the
 * source's own holes, or for merged and raw disks the blocks no level
 * allocates. Returns the offset, or -ENXIO past the last data (for
 * SEEK_DATA) or at or past the end, or another negative errno with a message.
 */
int64_t export_seek(struct export_file *file, uint64_t offset, bool data, struct error *err);

/* ---- for the export modules ---- */

/**
 * The descriptor of @file's source when it is served as it lies (a store
 * file, relocated or not; not a replayed one), or -1. Borrowed.
 */
int export_file_fd(const struct export_file *file);

/**
 * -ESTALE with a message unless the sources of @file are still what the plan
 * saw; another negative errno with a message if they cannot be looked at.
 */
int export_file_check_unchanged(const struct export_file *file, struct error *err);

#endif
