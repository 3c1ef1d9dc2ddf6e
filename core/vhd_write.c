/*
 * vhd_write.c - changing a VHD: data written into a disk opened with
 * VHD_OPEN_WRITE (blocks allocated, bitmaps and BAT updated in an order
 * that keeps the file valid), and the header and locator patches that
 * relocate a differencing disk for an export (vhd.h).
 */
#include "vhd.h"
#include "vhd_internal.h"

#include "bigendian.h"
#include "error.h"
#include "fsutil.h"
#include "utf16.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- writing ---- */

static void bitmap_set_range(uint8_t *bitmap, uint32_t first, uint32_t count)
{
	for (uint32_t i = first; i < first + count; i++)
		bitmap[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
}

/* Set the bits of sectors [first, first+count) of allocated block @block on
 * disk and in the cache. */
static int mark_sectors(struct vhd *vhd, uint32_t block, uint32_t first, uint32_t count,
			struct error *err)
{
	uint64_t at = (uint64_t)vhd->bat[block] * VHD_SECTOR_SIZE;
	uint32_t lo = first / 8, hi = (first + count - 1) / 8;
	uint8_t bytes[VHD_MAX_BLOCK / VHD_SECTOR_SIZE / 8];
	int rc;

	rc = vhd_pread(vhd, bytes + lo, hi - lo + 1, at + lo, err);
	if (rc < 0)
		return rc;
	bitmap_set_range(bytes, first, count);
	rc = fsutil_pwrite_full(vhd->io.fd, bytes + lo, hi - lo + 1, at + lo);
	if (rc < 0)
		return error_errno(err, -rc, "cannot write the sector bitmap of", vhd->io.path);
	vhd_cache_update(&vhd->bitmaps, block, lo, bytes + lo, hi - lo + 1);
	return 0;
}

int vhd_write(struct vhd *vhd, const void *buf, size_t len, uint64_t offset, struct error *err)
{
	const uint8_t *in = buf;
	uint64_t size = vhd->footer.current_size, block_bytes, first_free, new_end, sector, end;
	uint32_t first_block, last_block, fresh = 0;
	uint32_t *pending = NULL;
	uint8_t *bitmap = NULL;
	int rc = 0;

	if (!vhd->io.writable)
		return error_set(err, EBADF, "'%s' was not opened for writing", vhd->io.path);
	if (offset % VHD_SECTOR_SIZE || len % VHD_SECTOR_SIZE)
		return error_set(err, EINVAL,
				 "writes to '%s' must be whole 512-byte sectors (offset %llu, "
				 "length %zu)",
				 vhd->io.path, (unsigned long long)offset, len);
	if (offset > size || len > size - offset)
		return error_set(err, EINVAL,
				 "a write of %zu bytes at %llu does not fit in '%s' (%llu bytes)",
				 len, (unsigned long long)offset, vhd->io.path,
				 (unsigned long long)size);
	if (len == 0)
		return 0;
	if (vhd->footer.disk_type == VHD_TYPE_FIXED) {
		rc = fsutil_pwrite_full(vhd->io.fd, buf, len, offset);
		if (rc == 0 && fdatasync(vhd->io.fd) < 0)
			rc = -errno;
		return rc < 0 ? error_errno(err, -rc, "cannot write", vhd->io.path) : 0;
	}

	first_block = (uint32_t)(offset / vhd->block_size);
	last_block = (uint32_t)((offset + len - 1) / vhd->block_size);
	for (uint32_t b = first_block; b <= last_block; b++)
		if (vhd->bat[b] == VHD_UNALLOCATED)
			fresh++;
	block_bytes = (uint64_t)vhd->bitmap_size + vhd->block_size;
	/* New blocks start on a sector boundary, even after a footer that does not. */
	first_free = (vhd->footer_offset + VHD_SECTOR_SIZE - 1) / VHD_SECTOR_SIZE * VHD_SECTOR_SIZE;
	new_end = first_free + fresh * block_bytes;
	if (new_end / VHD_SECTOR_SIZE >= UINT32_MAX)
		return error_set(err, EFBIG, "'%s' would grow past what a BAT can address",
				 vhd->io.path);
	pending = calloc(last_block - first_block + 1, sizeof(*pending));
	bitmap = malloc(vhd->bitmap_size);
	if (!pending || !bitmap) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	/*
	 * 1. The footer at the new end, durable before anything overwrites the
	 * old one (the first new block starts there). From here the space up to
	 * new_end is used, whatever happens next: a later write never reuses it.
	 */
	if (fresh) {
		rc = fsutil_pwrite_full(vhd->io.fd, vhd->footer_raw, VHD_FOOTER_SIZE, new_end);
		if (rc == 0 && fdatasync(vhd->io.fd) < 0)
			rc = -errno;
		if (rc < 0) {
			rc = error_errno(err, -rc, "cannot write the footer of", vhd->io.path);
			goto out;
		}
		vhd->footer_offset = new_end;
		vhd->io.size = new_end + VHD_FOOTER_SIZE;
	}
	/* 2. The data: new blocks with their bitmaps (nothing points to them
	 * yet), and into blocks already allocated. */
	{
		uint64_t next = first_free;

		sector = offset / VHD_SECTOR_SIZE;
		end = sector + len / VHD_SECTOR_SIZE;
		while (sector < end) {
			uint32_t b = (uint32_t)(sector / vhd->sectors_per_block);
			uint32_t first = (uint32_t)(sector % vhd->sectors_per_block);
			uint32_t count = vhd->sectors_per_block - first;
			uint64_t at;

			if (count > end - sector)
				count = (uint32_t)(end - sector);
			if (vhd->bat[b] == VHD_UNALLOCATED) {
				at = next;
				next += block_bytes;
				pending[b - first_block] = (uint32_t)(at / VHD_SECTOR_SIZE);
				memset(bitmap, 0, vhd->bitmap_size);
				bitmap_set_range(bitmap, first, count);
				rc = fsutil_pwrite_full(vhd->io.fd, bitmap, vhd->bitmap_size, at);
			} else {
				at = (uint64_t)vhd->bat[b] * VHD_SECTOR_SIZE;
			}
			if (rc == 0)
				rc = fsutil_pwrite_full(
					vhd->io.fd, in, (size_t)count * VHD_SECTOR_SIZE,
					at + vhd->bitmap_size + (uint64_t)first * VHD_SECTOR_SIZE);
			if (rc < 0) {
				rc = error_errno(err, -rc, "cannot write", vhd->io.path);
				goto out;
			}
			in += (size_t)count * VHD_SECTOR_SIZE;
			sector += count;
		}
	}
	if (fdatasync(vhd->io.fd) < 0) {
		rc = error_errno(err, errno, "cannot sync", vhd->io.path);
		goto out;
	}
	/* 3. The bitmap bits of blocks that were allocated already, now that the
	 * data they announce is durable. */
	sector = offset / VHD_SECTOR_SIZE;
	while (sector < end) {
		uint32_t b = (uint32_t)(sector / vhd->sectors_per_block);
		uint32_t first = (uint32_t)(sector % vhd->sectors_per_block);
		uint32_t count = vhd->sectors_per_block - first;

		if (count > end - sector)
			count = (uint32_t)(end - sector);
		if (!pending[b - first_block]) {
			rc = mark_sectors(vhd, b, first, count, err);
			if (rc < 0)
				goto out;
		}
		sector += count;
	}
	/* 4. Commit: point the BAT at the new blocks. */
	for (uint32_t b = first_block; fresh && b <= last_block; b++) {
		uint8_t entry[4];

		if (!pending[b - first_block])
			continue;
		be32_store(entry, pending[b - first_block]);
		rc = fsutil_pwrite_full(vhd->io.fd, entry, 4,
					vhd->header.table_offset + (uint64_t)b * 4);
		if (rc < 0) {
			rc = error_errno(err, -rc, "cannot update the BAT of", vhd->io.path);
			goto out;
		}
		vhd->bat[b] = pending[b - first_block];
		vhd->allocated++;
	}
	if (fdatasync(vhd->io.fd) < 0)
		rc = error_errno(err, errno, "cannot sync", vhd->io.path);
out:
	free(pending);
	free(bitmap);
	return rc;
}

/* ---- relocating a differencing disk ---- */

int vhd_relocation(const struct vhd *vhd, const char *parent_name, struct vhd_patch patches[2],
		   struct error *err)
{
	struct vhd_header h = vhd->header;
	uint8_t locator[VHD_MAX_LOCATOR_BYTES];
	char relative[PATH_MAX];
	size_t name_len = 0, len = 0;
	uint64_t space = 0;
	int best = -1, rc;

	memset(patches, 0, 2 * sizeof(*patches));
	if (vhd->footer.disk_type != VHD_TYPE_DIFFERENCING)
		return error_set(err, EINVAL, "'%s' is not a differencing disk", vhd->io.path);
	if (snprintf(relative, sizeof(relative), ".\\%s", parent_name) >= (int)sizeof(relative))
		return error_set(err, ENAMETOOLONG, "parent name '%s' is too long", parent_name);
	memset(h.parent_name, 0, sizeof(h.parent_name));
	rc = utf16_encode(parent_name, UTF16_BE, h.parent_name, sizeof(h.parent_name), &name_len,
			  err);
	if (rc == 0)
		rc = utf16_encode(relative, UTF16_LE, locator, sizeof(locator), &len, err);
	if (rc < 0)
		return error_prefix(err, "cannot name parent '%s' in '%s'", parent_name,
				    vhd->io.path);
	/* The largest data space of a used locator takes the new path. */
	for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
		uint64_t bytes = vhd_locator_space_bytes(h.locators[i].data_space);

		if (h.locators[i].code != VHD_PLATFORM_NONE && bytes > space) {
			space = bytes;
			best = i;
		}
	}
	if (best < 0 || space < len || h.locators[best].data_offset > vhd->footer_offset ||
	    space > vhd->footer_offset - h.locators[best].data_offset)
		return error_set(err, ENOSPC,
				 "no parent locator of '%s' has room for '%s' (%zu bytes)",
				 vhd->io.path, relative, len);
	patches[1].offset = h.locators[best].data_offset;
	patches[1].len = (size_t)space;
	patches[1].bytes = calloc(1, (size_t)space);
	patches[0].offset = vhd->footer.data_offset;
	patches[0].len = VHD_HEADER_SIZE;
	patches[0].bytes = malloc(VHD_HEADER_SIZE);
	if (!patches[0].bytes || !patches[1].bytes) {
		free(patches[0].bytes);
		free(patches[1].bytes);
		memset(patches, 0, 2 * sizeof(*patches));
		return error_set(err, ENOMEM, "out of memory");
	}
	memcpy(patches[1].bytes, locator, len);
	for (int i = 0; i < VHD_LOCATOR_COUNT; i++)
		if (i != best)
			memset(&h.locators[i], 0, sizeof(h.locators[i]));
	h.locators[best].code = VHD_PLATFORM_W2RU;
	h.locators[best].data_length = (uint32_t)len;
	vhd_header_encode(&h, patches[0].bytes);
	return 0;
}

void vhd_patches_apply(const struct vhd_patch *patches, size_t count, uint8_t *buf, size_t len,
		       uint64_t offset)
{
	for (size_t i = 0; i < count; i++) {
		const struct vhd_patch *p = &patches[i];
		uint64_t from = offset > p->offset ? offset : p->offset;
		uint64_t to = offset + len < p->offset + p->len ? offset + len : p->offset + p->len;

		if (from < to)
			memcpy(buf + (from - offset), p->bytes + (from - p->offset),
			       (size_t)(to - from));
	}
}
