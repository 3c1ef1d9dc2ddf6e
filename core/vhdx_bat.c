/*
 * vhdx_bat.c - the BAT of a VHDX ([MS-VHDX] 2.5): checked at open, read
 * through the page cache, and the sector bitmaps of partially present
 * blocks through theirs (vhd_cache.h: a lock per slot, no file-wide lock);
 * mapping sectors to runs and reading them.
 */
#include "vhdx.h"
#include "vhdx_internal.h"

#include "bigendian.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* BAT pages of 32 KiB (4096 entries), cached within VHDX_BAT_CACHE_BYTES. */
#define BAT_PAGE_ENTRIES 4096u
/* BAT read at open in pieces of this many entries (1 MiB). */
#define BAT_SCAN_ENTRIES (128u * 1024)

/* ---- checked at open ---- */

/* Bytes of payload block @block that hold disk data (the last block may be partial). */
static uint64_t block_data_bytes(const struct vhdx *vhdx, uint64_t block)
{
	uint64_t start = block * vhdx->block_size, left = vhdx->size - start;

	return left < vhdx->block_size ? left : vhdx->block_size;
}

/* What one MiB of the file holds while the BAT is checked: one bit per MiB. */
struct space {
	uint8_t *used;
	uint64_t units;
};

static void space_mark(struct space *s, uint64_t offset, uint64_t len)
{
	for (uint64_t u = offset / VHDX_MIB; u < (offset + len + VHDX_MIB - 1) / VHDX_MIB; u++)
		s->used[u / 8] |= (uint8_t)(1u << (u % 8));
}

/* Name what [offset, offset+len) overlaps among the fixed structures, or NULL. */
static const char *fixed_overlap(const struct vhdx *vhdx, uint64_t offset, uint64_t len, char *buf,
				 size_t cap)
{
	uint8_t bat[16], metadata[16];

	if (vhd_ranges_overlap(offset, len, vhdx->header.log_offset, vhdx->header.log_length))
		return "the log";
	vhdx_guid_constant(VHDX_GUID_BAT, bat);
	vhdx_guid_constant(VHDX_GUID_METADATA, metadata);
	for (uint32_t i = 0; i < vhdx->region_count; i++) {
		const struct region *r = &vhdx->regions[i];
		char name[39];

		if (!vhd_ranges_overlap(offset, len, r->offset, r->length))
			continue;
		if (memcmp(r->guid, bat, 16) == 0)
			return "the BAT";
		if (memcmp(r->guid, metadata, 16) == 0)
			return "the metadata region";
		vhdx_guid_format(r->guid, name);
		snprintf(buf, cap, "region %s", name);
		return buf;
	}
	return NULL;
}

/* Claim [offset, offset+len) for @what (a block), or say what it collides with. */
static int space_claim(struct vhdx *vhdx, struct space *s, const char *what, uint64_t offset,
		       uint64_t len, struct error *err)
{
	char buf[64];
	const char *other;

	if (offset < VHDX_HEADER_AREA)
		return error_set(err, EINVAL,
				 "%s of '%s' lies in the header section (file offset %llu)", what,
				 vhdx->io.path, (unsigned long long)offset);
	if (offset > vhdx->data_end || len > vhdx->data_end - offset)
		return error_set(err, EINVAL,
				 "%s of '%s' points past the end of the file (byte %llu, the file "
				 "has %llu)",
				 what, vhdx->io.path, (unsigned long long)(offset + len),
				 (unsigned long long)vhdx->data_end);
	for (uint64_t u = offset / VHDX_MIB; u < (offset + len + VHDX_MIB - 1) / VHDX_MIB; u++) {
		if (!(s->used[u / 8] & (1u << (u % 8))))
			continue;
		other = fixed_overlap(vhdx, offset, len, buf, sizeof(buf));
		return error_set(err, EINVAL, "%s of '%s' (file offset %llu) overlaps %s", what,
				 vhdx->io.path, (unsigned long long)offset,
				 other ? other : "another block");
	}
	space_mark(s, offset, len);
	return 0;
}

/* Check one BAT entry; @partial_block tracks the chunk's first partially present block. */
static int check_entry(struct vhdx *vhdx, struct space *s, uint64_t index, uint64_t entry,
		       int64_t *partial_block, struct error *err)
{
	uint64_t chunk = index / (vhdx->chunk_ratio + 1ull);
	uint64_t in_chunk = index % (vhdx->chunk_ratio + 1ull);
	unsigned state = entry & VHDX_BAT_STATE_MASK;
	uint64_t offset = (entry >> VHDX_BAT_OFFSET_SHIFT) << VHDX_BAT_OFFSET_SHIFT;
	bool diff = vhdx->has_parent;
	char what[96];

	if (entry & BAT_RESERVED_MASK)
		return error_set(
			err, EINVAL, "the BAT entry %llu of '%s' has reserved bits set (0x%016llx)",
			(unsigned long long)index, vhdx->io.path, (unsigned long long)entry);
	if (in_chunk == vhdx->chunk_ratio) {
		snprintf(what, sizeof(what), "the sector bitmap block of chunk %llu",
			 (unsigned long long)chunk);
		if (state != VHDX_BITMAP_NOT_PRESENT && state != VHDX_BITMAP_PRESENT)
			return error_set(err, EINVAL, "%s of '%s' has the unknown state %u", what,
					 vhdx->io.path, state);
		if (state == VHDX_BITMAP_PRESENT && !diff)
			return error_set(err, EINVAL,
					 "%s of '%s' is present, but the disk has no parent", what,
					 vhdx->io.path);
		if (*partial_block >= 0 && state != VHDX_BITMAP_PRESENT)
			return error_set(
				err, EINVAL,
				"block %lld of '%s' is partially present, but its chunk has "
				"no sector bitmap block",
				(long long)*partial_block, vhdx->io.path);
		*partial_block = -1;
		if (state == VHDX_BITMAP_PRESENT)
			return space_claim(vhdx, s, what, offset, VHDX_BITMAP_BLOCK, err);
		return 0;
	}
	{
		uint64_t block = chunk * vhdx->chunk_ratio + in_chunk;

		if (block >= vhdx->block_count)
			return 0; /* past the disk in its last chunk: never read */
		snprintf(what, sizeof(what), "block %llu", (unsigned long long)block);
		switch (state) {
		case VHDX_BLOCK_NOT_PRESENT:
		case VHDX_BLOCK_UNDEFINED:
		case VHDX_BLOCK_ZERO:
		case VHDX_BLOCK_UNMAPPED:
			return 0; /* read as zeros or from the parent: the offset is not used */
		case VHDX_BLOCK_PARTIALLY_PRESENT:
			if (!diff)
				return error_set(
					err, EINVAL,
					"%s of '%s' is partially present, but the disk has "
					"no parent",
					what, vhdx->io.path);
			if (*partial_block < 0)
				*partial_block = (int64_t)block;
			/* fall through */
		case VHDX_BLOCK_FULLY_PRESENT:
			return space_claim(vhdx, s, what, offset, block_data_bytes(vhdx, block),
					   err);
		default:
			return error_set(err, EINVAL, "%s of '%s' has the reserved state %u", what,
					 vhdx->io.path, state);
		}
	}
}

int vhdx_bat_check(struct vhdx *vhdx, struct error *err)
{
	struct space s = {NULL, 0};
	uint8_t *page = NULL;
	int64_t partial_block = -1;
	int rc = 0;

	vhdx->chunk_ratio = (uint32_t)((VHDX_CHUNK_SECTORS * vhdx->logical) / vhdx->block_size);
	vhdx->sectors_per_block = vhdx->block_size / vhdx->logical;
	vhdx->block_count = (vhdx->size + vhdx->block_size - 1) / vhdx->block_size;
	vhdx->chunk_count = (vhdx->block_count + vhdx->chunk_ratio - 1) / vhdx->chunk_ratio;
	/* [MS-VHDX] 2.5: a differencing disk has the sector bitmap entry of its last
	 * chunk; a fixed or dynamic one ends with its last payload block's. */
	if (vhdx->has_parent)
		vhdx->bat_entries = vhdx->chunk_count * (vhdx->chunk_ratio + 1ull);
	else
		vhdx->bat_entries = vhdx->block_count + (vhdx->block_count - 1) / vhdx->chunk_ratio;
	if (vhdx->bat_entries > vhdx->bat_length / 8)
		return error_set(err, EINVAL,
				 "the BAT of '%s' is %u bytes, too small for the %llu entries of a "
				 "disk of %llu bytes in %u-byte blocks",
				 vhdx->io.path, vhdx->bat_length,
				 (unsigned long long)vhdx->bat_entries,
				 (unsigned long long)vhdx->size, vhdx->block_size);

	s.units = (vhdx->data_end + VHDX_MIB - 1) / VHDX_MIB;
	s.used = calloc((size_t)((s.units + 7) / 8) + 1, 1);
	page = malloc((size_t)BAT_SCAN_ENTRIES * 8);
	if (!s.used || !page) {
		rc = error_set(err, ENOMEM, "out of memory to check the BAT of '%s'",
			       vhdx->io.path);
		goto out;
	}
	space_mark(&s, 0, VHDX_HEADER_AREA);
	space_mark(&s, vhdx->header.log_offset, vhdx->header.log_length);
	for (uint32_t i = 0; i < vhdx->region_count; i++)
		space_mark(&s, vhdx->regions[i].offset, vhdx->regions[i].length);
	for (uint64_t first = 0; first < vhdx->bat_entries; first += BAT_SCAN_ENTRIES) {
		uint64_t n = vhdx->bat_entries - first;

		if (n > BAT_SCAN_ENTRIES)
			n = BAT_SCAN_ENTRIES;
		rc = vhdx_pread(vhdx, page, (size_t)n * 8, vhdx->bat_offset + first * 8, err);
		if (rc < 0)
			goto out;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t entry = le64_load(page + i * 8);

			/* Most entries of a large disk are zero (NOT_PRESENT, no offset):
			 * nothing to check unless a chunk's bitmap entry must be present. */
			if (entry == 0 && partial_block < 0)
				continue;
			rc = check_entry(vhdx, &s, first + i, entry, &partial_block, err);
			if (rc < 0)
				goto out;
		}
	}
out:
	free(s.used);
	free(page);
	return rc;
}

int vhdx_caches_init(struct vhdx *vhdx, struct error *err)
{
	uint64_t pages = (vhdx->bat_entries + BAT_PAGE_ENTRIES - 1) / BAT_PAGE_ENTRIES;

	if (vhd_cache_init(&vhdx->pages, VHDX_BAT_CACHE_BYTES, BAT_PAGE_ENTRIES * 8, pages) < 0)
		return error_set(err, ENOMEM, "out of memory for the BAT of '%s'", vhdx->io.path);
	vhdx->bitmap_bytes = vhdx->sectors_per_block / 8;
	if (vhd_cache_init(&vhdx->bitmaps, VHDX_BITMAP_CACHE_BYTES, vhdx->bitmap_bytes,
			   vhdx->has_parent ? vhdx->block_count : 0) < 0)
		return error_set(err, ENOMEM, "out of memory for the bitmaps of '%s'",
				 vhdx->io.path);
	return 0;
}

/* ---- reading ---- */

/* Read BAT page @page, its entries decoded to host order (a vhd_cache_fill_fn). */
static int fill_page(void *ctx, uint64_t page, void *record, struct error *err)
{
	struct vhdx *vhdx = ctx;
	uint64_t first = page * BAT_PAGE_ENTRIES, n = vhdx->bat_entries - first;
	uint64_t *data = record;
	int rc;

	if (n > BAT_PAGE_ENTRIES)
		n = BAT_PAGE_ENTRIES;
	rc = vhdx_pread(vhdx, data, (size_t)n * 8, vhdx->bat_offset + first * 8, err);
	if (rc < 0)
		return rc;
	for (uint64_t i = 0; i < n; i++)
		data[i] = le64_load((const uint8_t *)&data[i]);
	return 0;
}

int vhdx_bat_get(struct vhdx *vhdx, uint64_t index, uint64_t *entry, struct error *err)
{
	uint64_t page = index / BAT_PAGE_ENTRIES;
	const uint8_t *data;
	int rc = vhd_cache_get(&vhdx->pages, page, fill_page, vhdx, &data, err);

	if (rc < 0)
		return rc;
	memcpy(entry, data + (index % BAT_PAGE_ENTRIES) * 8, 8);
	vhd_cache_put(&vhdx->pages, page);
	return 0;
}

void vhdx_caches_drop(struct vhdx *vhdx)
{
	vhd_cache_drop(&vhdx->pages);
	vhd_cache_drop(&vhdx->bitmaps);
}

int vhdx_block_state(struct vhdx *vhdx, uint64_t block, int *state, uint64_t *offset,
		     struct error *err)
{
	uint64_t entry;
	int rc;

	if (block >= vhdx->block_count)
		return error_set(err, EINVAL, "block %llu is outside '%s'",
				 (unsigned long long)block, vhdx->io.path);
	rc = vhdx_bat_get(vhdx, vhdx_payload_entry(vhdx, block), &entry, err);
	if (rc < 0)
		return rc;
	*state = (int)(entry & VHDX_BAT_STATE_MASK);
	*offset = (entry >> VHDX_BAT_OFFSET_SHIFT) << VHDX_BAT_OFFSET_SHIFT;
	return 0;
}

/* How a block in @state reads; PARTIALLY_PRESENT asks for the bitmap. */
enum block_reading { READ_HERE, READ_ZERO, READ_PARENT, READ_BITMAP };

static enum block_reading block_reading(const struct vhdx *vhdx, unsigned state)
{
	switch (state) {
	case VHDX_BLOCK_FULLY_PRESENT:
		return READ_HERE;
	case VHDX_BLOCK_PARTIALLY_PRESENT:
		return READ_BITMAP; /* only in differencing disks, checked at open */
	case VHDX_BLOCK_NOT_PRESENT:
		return vhdx->has_parent ? READ_PARENT : READ_ZERO;
	default:
		/* UNDEFINED, ZERO, UNMAPPED: zeros, never older data or the parent's. */
		return READ_ZERO;
	}
}

/* Read the sector bitmap bits of partially present block @block (a vhd_cache_fill_fn):
 * its chunk's BAT entry through the page cache, then the bits. */
static int fill_bitmap(void *ctx, uint64_t block, void *bitmap, struct error *err)
{
	struct vhdx *vhdx = ctx;
	uint64_t entry, at;
	int rc =
		vhdx_bat_get(vhdx, vhdx_bitmap_entry(vhdx, block / vhdx->chunk_ratio), &entry, err);

	if (rc < 0)
		return rc;
	if ((entry & VHDX_BAT_STATE_MASK) != VHDX_BITMAP_PRESENT)
		return error_set(err, EIO, "the sector bitmap of block %llu of '%s' is gone",
				 (unsigned long long)block, vhdx->io.path);
	at = ((entry >> VHDX_BAT_OFFSET_SHIFT) << VHDX_BAT_OFFSET_SHIFT) +
	     (block % vhdx->chunk_ratio) * (uint64_t)vhdx->bitmap_bytes;
	return vhdx_pread(vhdx, bitmap, vhdx->bitmap_bytes, at, err);
}

int vhdx_map(struct vhdx *vhdx, uint64_t sector, uint64_t count, struct vhd_extent *ext,
	     struct error *err)
{
	uint64_t total = vhdx->size / vhdx->logical, block, entry, offset, run;
	uint32_t in_block, spb = vhdx->sectors_per_block;
	enum block_reading how;
	int rc;

	if (sector >= total || count == 0)
		return error_set(err, EINVAL, "sector %llu is outside '%s'",
				 (unsigned long long)sector, vhdx->io.path);
	if (count > total - sector)
		count = total - sector;
	block = sector / spb;
	in_block = (uint32_t)(sector % spb);
	run = spb - in_block;
	rc = vhdx_bat_get(vhdx, vhdx_payload_entry(vhdx, block), &entry, err);
	if (rc < 0)
		return rc;
	how = block_reading(vhdx, entry & VHDX_BAT_STATE_MASK);
	offset = (entry >> VHDX_BAT_OFFSET_SHIFT) << VHDX_BAT_OFFSET_SHIFT;
	ext->file_offset = offset + (uint64_t)in_block * vhdx->logical;
	if (how == READ_BITMAP) {
		const uint8_t *bitmap;
		uint32_t limit = count < run ? in_block + (uint32_t)count : spb;

		rc = vhd_cache_get(&vhdx->bitmaps, block, fill_bitmap, vhdx, &bitmap, err);
		if (rc < 0)
			return rc;
		/* Least significant bit first: bit 0 of byte 0 is the chunk's first sector. */
		ext->kind = vhd_bitmap_test(bitmap, in_block, true) ? VHD_EXTENT_DATA
								    : VHD_EXTENT_PARENT;
		ext->sectors = vhd_bitmap_run(bitmap, in_block, limit, true);
		vhd_cache_put(&vhdx->bitmaps, block);
		return 0;
	}
	ext->kind = how == READ_HERE	 ? VHD_EXTENT_DATA
		    : how == READ_PARENT ? VHD_EXTENT_PARENT
					 : VHD_EXTENT_ZERO;
	/* Go on over the following blocks that read the same way. */
	while (run < count && block + 1 < vhdx->block_count) {
		uint64_t next;

		rc = vhdx_bat_get(vhdx, vhdx_payload_entry(vhdx, block + 1), &next, err);
		if (rc < 0)
			return rc;
		if (block_reading(vhdx, next & VHDX_BAT_STATE_MASK) != how)
			break;
		if (how == READ_HERE) {
			uint64_t next_offset = (next >> VHDX_BAT_OFFSET_SHIFT)
					       << VHDX_BAT_OFFSET_SHIFT;

			if (next_offset != offset + vhdx->block_size)
				break;
			offset = next_offset;
		}
		block++;
		run += spb;
	}
	ext->sectors = run < count ? run : count;
	return 0;
}

static int map_disk(void *vhdx, uint64_t sector, uint64_t count, struct vhd_extent *ext,
		    struct error *err)
{
	return vhdx_map(vhdx, sector, count, ext, err);
}

static int pread_disk(void *vhdx, void *buf, size_t len, uint64_t offset, struct error *err)
{
	return vhdx_pread(vhdx, buf, len, offset, err);
}

int vhdx_read(struct vhdx *vhdx, void *buf, size_t len, uint64_t offset, struct error *err)
{
	static const struct vhd_io_format format = {map_disk, pread_disk};

	return vhd_io_read_disk(&vhdx->io, &format, vhdx, vhdx->size, vhdx->logical, buf, len,
				offset, err);
}
