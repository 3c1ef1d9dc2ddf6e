/*
 * vhd_internal.h - what the VHD modules share and nothing else sees: the
 * open file (struct vhd) and the format's constants.
 *
 * core/vhd_layout.c encodes and decodes the on-disk structures;
 * core/vhd.c opens, validates and reads a file; core/vhd_create.c makes new
 * files; core/vhd_write.c changes one opened with VHD_OPEN_WRITE and works
 * out the patches that relocate a differencing disk. Only these include it.
 */
#ifndef IMPEX_VHD_INTERNAL_H
#define IMPEX_VHD_INTERNAL_H

#include "vhd.h"
#include "vhd_cache.h"
#include "vhd_io.h"

#include <stdint.h>

#define FOOTER_COOKIE "conectix"
#define HEADER_COOKIE "cxsparse"
#define VHD_VERSION   0x00010000u
/* Footer and header checksums ("Hard Disk Footer Format", "Dynamic Disk Header Format"). */
#define FOOTER_CHECKSUM_AT 64
#define HEADER_CHECKSUM_AT 36
/* Where a new dynamic or differencing file has its BAT: after the footer copy and header. */
#define TABLE_OFFSET ((uint64_t)VHD_FOOTER_SIZE + VHD_HEADER_SIZE)

/*
 * An open VHD. Every field is set by vhd_open and then read-only, for any
 * number of reading threads, but for those vhd_write changes (bat,
 * allocated, footer_offset, io.size), which it does alone (vhd.h), and the
 * bitmap cache, whose slots each have their own lock.
 */
struct vhd {
	struct vhd_io io;
	uint64_t footer_offset; /* where the trailing footer sits; blocks are allocated here */
	struct vhd_footer footer;
	struct vhd_header header;
	uint8_t footer_raw[VHD_FOOTER_SIZE];
	uint32_t *bat;
	uint32_t block_count;
	uint32_t block_size;
	uint32_t bitmap_size;
	uint32_t sectors_per_block;
	uint32_t allocated;

	/* The sector bitmaps of a differencing disk, keyed by block: each slot
	 * guarded by its own lock (vhd_cache.h). */
	struct vhd_cache bitmaps;
};

#endif
