/*
 * vhd_io.h - the file beneath a VHD or VHDX image, as both format modules
 * open and read it: the checks and messages of opening, exact reads that
 * name the file and the fault, and a disk's own content read run by run
 * through the format's map. Only core/vhd*.c and core/vhdx*.c include it.
 *
 * A struct vhd_io is embedded in struct vhd and struct vhdx. Its fields are
 * set by vhd_io_open and then read-only, but for @size, which only the
 * format's one writer changes (vhd_write, vhdx_write run alone).
 */
#ifndef IMPEX_VHD_IO_H
#define IMPEX_VHD_IO_H

#include "vhd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct error;

struct vhd_io {
	char *path;	/* as given to vhd_io_open; read-only */
	int fd;		/* -1 when not open; read-only */
	struct stat st; /* at open; read-only */
	uint64_t size;	/* bytes of the file: at open, then as the one writer leaves it */
	bool writable;	/* opened for writing; read-only */
};

/**
 * Open @path (fsutil_open_source), for writing if @writable, into @io: a
 * regular file, or a block device if @block_ok. @fd, unless -1, is @path
 * opened so already, and @io takes it. @io is filled even on failure so that
 * vhd_io_close() frees it (and closes @fd). Returns 0 or a negative errno
 * with a message: -ENOMEM, the system's errno ("cannot open 'x': ..."),
 * -EINVAL for anything else than a regular file (or device).
 */
int vhd_io_open(struct vhd_io *io, const char *path, int fd, bool writable, bool block_ok,
		struct error *err);

/** Close and free what vhd_io_open made; @io is left closed. Safe on a zeroed @io with fd -1. */
void vhd_io_close(struct vhd_io *io);

/**
 * Read exactly @len bytes of the file at @offset. Returns 0, or -EIO (the
 * file ends first: "... the file was truncated") or the system's errno, with
 * a message naming the file and the byte.
 */
int vhd_io_pread(const struct vhd_io *io, void *buf, size_t len, uint64_t offset,
		 struct error *err);

/* How a format maps and reads, for vhd_io_read_disk: @disk is its handle. */
struct vhd_io_format {
	int (*map)(void *disk, uint64_t sector, uint64_t count, struct vhd_extent *extent,
		   struct error *err);
	int (*pread)(void *disk, void *buf, size_t len, uint64_t offset, struct error *err);
};

/**
 * Read @len bytes of the content of @disk (@size bytes in sectors of
 * @sector_size) at @offset, this file alone: runs stored here are read with
 * @format's pread, the others (zeros, the parent's) read as zeros. Returns
 * 0, -EINVAL with a message naming @io's file when @offset and @len are not
 * whole sectors inside the disk, or what @format's functions return.
 */
int vhd_io_read_disk(const struct vhd_io *io, const struct vhd_io_format *format, void *disk,
		     uint64_t size, uint32_t sector_size, void *buf, size_t len, uint64_t offset,
		     struct error *err);

#endif
