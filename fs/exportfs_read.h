/*
 * exportfs_read.h - the export mount's replies to READ.
 *
 * A read is described as its pieces (core/segments.h) and, when the file's
 * sources are leased (core/lease.h) and the kernel takes spliced replies,
 * answered from where the bytes lie: the runs of source files are spliced
 * from the page cache to the kernel (libfuse's fuse_reply_data with
 * FUSE_BUF_IS_FD), headers, tables and bitmaps come from memory, zeros from
 * a zero page. Otherwise the read is copied into the thread's buffer and
 * its sources checked after (export_read_at). Each thread keeps its buffers
 * from one request to the next: a request allocates nothing.
 */
#ifndef IMPEX_EXPORTFS_READ_H
#define IMPEX_EXPORTFS_READ_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct error;
struct export_file;

/* The largest request the mount takes (max_write, hence max_pages). */
#define EXPORTFS_MAX_REQUEST (256 * 1024)

/**
 * Reply to the read of @size bytes at @offset (within the file) of @file:
 * spliced when @splice and the sources are leased, else copied. Returns 0
 * once replied, or a negative errno with a message in @err (not replied).
 */
int exportfs_read_reply(fuse_req_t req, struct export_file *file, size_t size, uint64_t offset,
			bool splice, struct error *err);

#endif
