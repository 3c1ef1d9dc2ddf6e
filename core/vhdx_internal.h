/*
 * vhdx_internal.h - what the VHDX modules share and nothing else sees: the
 * open file (struct vhdx) and the format's constants.
 *
 * Reading: core/vhdx.c opens and closes a file (GUIDs, getters, vhdx_pread),
 * checking it through core/vhdx_headers.c (headers, log, region tables),
 * core/vhdx_metadata.c (metadata, parent locator) and core/vhdx_bat.c (the
 * BAT, which also maps and reads sectors through the caches). Changing:
 * core/vhdx_write.c changes a file opened with VHDX_OPEN_WRITE (the log,
 * the headers, the BAT, sector bitmaps), core/vhdx_create.c makes new
 * files, core/vhdx_relocate.c works out relocation patches. Only these
 * include it.
 */
#ifndef IMPEX_VHDX_INTERNAL_H
#define IMPEX_VHDX_INTERNAL_H

#include "vhd_cache.h"
#include "vhd_io.h"
#include "vhdx.h"
#include "vhdx_log.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* The format's sizes and limits that the VHDX modules parse by ([MS-VHDX] 2.2, 2.5, 2.6). */
#define REGION_MAX_ENTRIES	2047u
#define REGION_ENTRY_SIZE	32u
#define METADATA_MAX_ENTRIES	2047u
#define METADATA_ENTRY_SIZE	32u
#define METADATA_MAX_ITEM	VHDX_MIB
#define LOCATOR_HEADER_SIZE	20u
#define LOCATOR_ENTRY_SIZE	12u
#define FILE_PARAM_LEAVE_ALLOC	1u
#define FILE_PARAM_HAS_PARENT	2u
#define BAT_RESERVED_MASK	0xFFFF8ull /* bits 3-19 */

struct region {
	uint8_t guid[16];
	uint64_t offset;
	uint32_t length;
	bool required;
};

/*
 * An open VHDX. Every field is set by vhdx_open and then read-only, for any
 * number of reading threads, but for those the one writer changes
 * (vhdx_write and vhdx_flush run alone, vhdx.h: the header and its index,
 * io.size, data_end, overlay, and the fields of writing below), and the
 * caches, whose slots each have their own lock.
 */
struct vhdx {
	struct vhd_io io;  /* io.size: the file as it is */
	uint64_t data_end; /* as the replayed log leaves it */
	struct vhdx_overlay *overlay;
	struct vhdx_log_info log_info;
	struct vhdx_header header;
	int header_index;

	struct region *regions;
	uint32_t region_count;
	uint64_t bat_offset;
	uint32_t bat_length;
	uint64_t metadata_offset;
	uint32_t metadata_length;
	uint32_t locator_offset; /* within the metadata region; 0 without a locator */
	uint32_t locator_length;

	uint64_t size;
	uint32_t block_size;
	uint32_t logical;
	uint32_t physical;
	bool has_parent;
	bool leave_allocated;
	uint8_t disk_id[16];
	uint32_t chunk_ratio;
	uint32_t sectors_per_block;
	uint64_t block_count;
	uint64_t chunk_count;
	uint64_t bat_entries;

	struct vhdx_locator_entry *locator;
	size_t locator_count;

	/* The caches, each slot guarded by its own lock (vhd_cache.h): BAT pages
	 * keyed by page, sector bitmaps of partially present blocks keyed by
	 * block. A bitmap's fill takes a page slot, never the reverse. */
	uint32_t bitmap_bytes; /* of one payload block; set at open */
	struct vhd_cache pages;
	struct vhd_cache bitmaps;

	/* Writing (core/vhdx_write.c); only the one writer touches these. */
	bool session;	       /* FileWriteGuid renewed since the open */
	bool data_changed;     /* DataWriteGuid renewed since the open */
	bool log_open;	       /* the headers name log_guid: entries may need replaying */
	bool failed;	       /* a change failed: no more until reopened */
	uint8_t log_guid[16];  /* of the entries this writer writes */
	uint32_t log_head;     /* log offset of the next entry */
	uint64_t log_sequence; /* sequence number of the last entry written */
	uint64_t alloc_end;    /* where the next block goes: the end of the file, whole MiB */
};

/* The BAT entry of payload block @block and of chunk @chunk's sector bitmap ([MS-VHDX] 2.5). */
static inline uint64_t vhdx_payload_entry(const struct vhdx *vhdx, uint64_t block)
{
	return block + block / vhdx->chunk_ratio;
}

static inline uint64_t vhdx_bitmap_entry(const struct vhdx *vhdx, uint64_t chunk)
{
	return chunk * (vhdx->chunk_ratio + 1ull) + vhdx->chunk_ratio;
}

/**
 * BAT entry @index (as stored, decoded to host order) through the page
 * cache. Takes the lock of the page's slot. Returns 0 or -EIO with a message.
 */
int vhdx_bat_get(struct vhdx *vhdx, uint64_t index, uint64_t *entry, struct error *err);

/** Forget every cached BAT page and sector bitmap (after the file changed under them). */
void vhdx_caches_drop(struct vhdx *vhdx);

/* ---- opening, in this order (core/vhdx.c calls them) ---- */

/**
 * Read the header section of @vhdx (core/vhdx_headers.c): the current header
 * chosen and checked, its log replayed in memory if it names one, the region
 * tables read (BAT and metadata region found). Returns 0 or a negative errno
 * with a message, as vhdx_open.
 */
int vhdx_header_section_read(struct vhdx *vhdx, struct error *err);

/** Read and check the metadata region and the parent locator (core/vhdx_metadata.c). */
int vhdx_metadata_read(struct vhdx *vhdx, struct error *err);

/** Work out the BAT's geometry and check every entry (core/vhdx_bat.c). */
int vhdx_bat_check(struct vhdx *vhdx, struct error *err);

/**
 * Set up the BAT page and bitmap caches within their budgets (core/vhdx_bat.c).
 * Returns 0 or -ENOMEM with a message.
 */
int vhdx_caches_init(struct vhdx *vhdx, struct error *err);

/** Set up the write state of @vhdx, just opened with VHDX_OPEN_WRITE (vhdx_write.c). */
int vhdx_write_prepare(struct vhdx *vhdx, struct error *err);

/** End the write session of @vhdx before it is closed, as well as can be (vhdx_write.c). */
void vhdx_write_release(struct vhdx *vhdx);

#endif
