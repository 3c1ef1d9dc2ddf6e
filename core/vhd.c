/*
 * vhd.c - opening a VHD: the footer, the dynamic header, the BAT and the
 * parent locators validated; the getters; the parent's name and locator
 * paths; mapping sectors to runs and reading them (vhd.h).
 */
#include "vhd.h"
#include "vhd_internal.h"

#include "bigendian.h"
#include "error.h"
#include "utf16.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bitmap cache budget per open differencing disk, its bookkeeping included:
 * 64 KiB, about 117 bitmaps of 2 MiB blocks. */
#define BITMAP_CACHE_BYTES (64u * 1024)

/* ---- opening ---- */

int vhd_pread(struct vhd *vhd, void *buf, size_t len, uint64_t offset, struct error *err)
{
	return vhd_io_pread(&vhd->io, buf, len, offset, err);
}

int vhd_direct_fd(const struct vhd *vhd, uint64_t offset, size_t len)
{
	return offset <= vhd->io.size && len <= vhd->io.size - offset ? vhd->io.fd : -1;
}

static int validate_footer(struct vhd *vhd, const uint8_t *raw, struct error *err)
{
	const struct vhd_footer *f = &vhd->footer;
	uint32_t sum = vhd_checksum(raw, VHD_FOOTER_SIZE, FOOTER_CHECKSUM_AT);

	if (f->checksum != sum)
		return error_set(
			err, EINVAL,
			"footer checksum of '%s' is wrong (stored 0x%08x, computed 0x%08x)",
			vhd->io.path, f->checksum, sum);
	if ((f->version >> 16) != 1)
		return error_set(err, EINVAL, "'%s' has unsupported format version 0x%08x",
				 vhd->io.path, f->version);
	if (f->disk_type != VHD_TYPE_FIXED && f->disk_type != VHD_TYPE_DYNAMIC &&
	    f->disk_type != VHD_TYPE_DIFFERENCING)
		return error_set(err, EINVAL, "'%s' has unknown disk type %u", vhd->io.path,
				 f->disk_type);
	if (f->current_size == 0)
		return error_set(err, EINVAL, "'%s' has a disk size of 0 bytes", vhd->io.path);
	if (f->current_size % VHD_SECTOR_SIZE)
		return error_set(
			err, EINVAL,
			"'%s' has a disk size of %llu bytes, not a whole number of sectors",
			vhd->io.path, (unsigned long long)f->current_size);
	if (f->current_size > VHD_MAX_SIZE)
		return error_set(
			err, EINVAL,
			"'%s' claims a disk size of %llu bytes, more than the VHD limit of 2 TiB",
			vhd->io.path, (unsigned long long)f->current_size);
	return 0;
}

/* Allocated blocks as (BAT entry << 32 | block): sorted, they come in file order. */
static int compare_spans(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Bytes of block @block that hold disk data (the last block may be partial). */
static uint64_t block_data_extent(const struct vhd *vhd, uint32_t block)
{
	uint64_t start = (uint64_t)block * vhd->block_size;
	uint64_t left = vhd->footer.current_size - start;
	uint64_t bytes = left < vhd->block_size ? left : vhd->block_size;

	return (bytes + VHD_SECTOR_SIZE - 1) / VHD_SECTOR_SIZE * VHD_SECTOR_SIZE;
}

static int validate_bat(struct vhd *vhd, struct error *err)
{
	const struct vhd_header *h = &vhd->header;
	uint64_t bat_bytes = (uint64_t)vhd->block_count * 4;
	uint64_t *spans;
	uint32_t n = 0;
	int rc = 0;

	spans = malloc((size_t)(vhd->allocated ? vhd->allocated : 1) * sizeof(*spans));
	if (!spans)
		return error_set(err, ENOMEM, "out of memory for the BAT of '%s'", vhd->io.path);
	for (uint32_t b = 0; b < vhd->block_count; b++) {
		uint64_t start, end;

		if (vhd->bat[b] == VHD_UNALLOCATED)
			continue;
		start = (uint64_t)vhd->bat[b] * VHD_SECTOR_SIZE;
		end = start + vhd->bitmap_size + block_data_extent(vhd, b);
		if (end > vhd->footer_offset) {
			rc = error_set(
				err, EINVAL,
				"block %u of '%s' points past the end of the file (byte %llu, "
				"the data ends at %llu)",
				b, vhd->io.path, (unsigned long long)end,
				(unsigned long long)vhd->footer_offset);
			goto out;
		}
		if (vhd_ranges_overlap(start, end - start, 0, VHD_FOOTER_SIZE) ||
		    vhd_ranges_overlap(start, end - start, h->table_offset, bat_bytes) ||
		    vhd_ranges_overlap(start, end - start, vhd->footer.data_offset,
				       VHD_HEADER_SIZE)) {
			rc = error_set(err, EINVAL,
				       "block %u of '%s' overlaps the file's header or block "
				       "allocation table",
				       b, vhd->io.path);
			goto out;
		}
		for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
			const struct vhd_locator *l = &h->locators[i];

			if (l->code != VHD_PLATFORM_NONE &&
			    vhd_ranges_overlap(start, end - start, l->data_offset,
					       l->data_length)) {
				rc = error_set(
					err, EINVAL,
					"block %u of '%s' overlaps the data of parent locator "
					"%d",
					b, vhd->io.path, i);
				goto out;
			}
		}
		spans[n++] = (uint64_t)vhd->bat[b] << 32 | b;
	}
	qsort(spans, n, sizeof(*spans), compare_spans);
	for (uint32_t i = 1; i < n; i++) {
		uint32_t a = (uint32_t)spans[i - 1], b = (uint32_t)spans[i];
		uint64_t a_end = (spans[i - 1] >> 32) * VHD_SECTOR_SIZE + vhd->bitmap_size +
				 block_data_extent(vhd, a);

		if ((spans[i] >> 32) * VHD_SECTOR_SIZE < a_end) {
			rc = error_set(err, EINVAL, "blocks %u and %u of '%s' overlap in the file",
				       a < b ? a : b, a < b ? b : a, vhd->io.path);
			goto out;
		}
	}
out:
	free(spans);
	return rc;
}

static int validate_locators(struct vhd *vhd, struct error *err)
{
	for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
		const struct vhd_locator *l = &vhd->header.locators[i];
		uint64_t space = vhd_locator_space_bytes(l->data_space);
		char name[5];

		if (l->code == VHD_PLATFORM_NONE)
			continue;
		vhd_platform_name(l->code, name);
		if (l->data_length > VHD_MAX_LOCATOR_BYTES)
			return error_set(
				err, EINVAL,
				"parent locator %d (%s) of '%s' has an absurd length of %u "
				"bytes",
				i, name, vhd->io.path, l->data_length);
		if (l->data_length > space)
			return error_set(
				err, EINVAL,
				"parent locator %d (%s) of '%s' is longer (%u bytes) than its "
				"space (%llu bytes)",
				i, name, vhd->io.path, l->data_length, (unsigned long long)space);
		if (l->data_offset > vhd->io.size || l->data_length > vhd->io.size - l->data_offset)
			return error_set(
				err, EINVAL,
				"parent locator %d (%s) of '%s' points past the end of the "
				"file",
				i, name, vhd->io.path);
		if ((l->code == VHD_PLATFORM_W2RU || l->code == VHD_PLATFORM_W2KU) &&
		    l->data_length % 2)
			return error_set(err, EINVAL,
					 "parent locator %d (%s) of '%s' has an odd length of %u "
					 "bytes for UTF-16 text",
					 i, name, vhd->io.path, l->data_length);
	}
	return 0;
}

static int open_dynamic(struct vhd *vhd, struct error *err)
{
	struct vhd_header *h = &vhd->header;
	uint8_t raw[VHD_HEADER_SIZE];
	uint64_t needed, bat_bytes, bitmaps = 0;
	uint32_t sum;
	int rc;

	if (vhd->io.size < 2 * VHD_FOOTER_SIZE + VHD_HEADER_SIZE)
		return error_set(err, EINVAL,
				 "'%s' is %llu bytes, too short for a dynamic disk (truncated?)",
				 vhd->io.path, (unsigned long long)vhd->io.size);
	if (vhd->footer.data_offset < VHD_FOOTER_SIZE ||
	    vhd->footer.data_offset > vhd->footer_offset - VHD_HEADER_SIZE)
		return error_set(err, EINVAL, "the header offset %llu of '%s' is outside the file",
				 (unsigned long long)vhd->footer.data_offset, vhd->io.path);
	rc = vhd_pread(vhd, raw, sizeof(raw), vhd->footer.data_offset, err);
	if (rc < 0)
		return rc;
	vhd_header_decode(raw, h);
	if (memcmp(h->cookie, HEADER_COOKIE, 8) != 0)
		return error_set(err, EINVAL, "'%s' has no dynamic disk header (no '%s' cookie)",
				 vhd->io.path, HEADER_COOKIE);
	sum = vhd_checksum(raw, VHD_HEADER_SIZE, HEADER_CHECKSUM_AT);
	if (h->checksum != sum)
		return error_set(
			err, EINVAL,
			"header checksum of '%s' is wrong (stored 0x%08x, computed 0x%08x)",
			vhd->io.path, h->checksum, sum);
	if ((h->version >> 16) != 1)
		return error_set(err, EINVAL, "'%s' has unsupported header version 0x%08x",
				 vhd->io.path, h->version);
	if (!vhd_is_power_of_two(h->block_size) || h->block_size < VHD_MIN_BLOCK ||
	    h->block_size > VHD_MAX_BLOCK)
		return error_set(err, EINVAL,
				 "'%s' has a block size of %u bytes; want a power of two from 512 "
				 "bytes to 256 MiB",
				 vhd->io.path, h->block_size);
	vhd->block_size = h->block_size;
	vhd->bitmap_size = vhd_bitmap_size(h->block_size);
	vhd->sectors_per_block = h->block_size / VHD_SECTOR_SIZE;
	needed = (vhd->footer.current_size + h->block_size - 1) / h->block_size;
	if (needed > h->max_table_entries)
		return error_set(err, EINVAL,
				 "the block allocation table of '%s' has %u entries, too few for "
				 "a disk of %llu bytes (%llu blocks)",
				 vhd->io.path, h->max_table_entries,
				 (unsigned long long)vhd->footer.current_size,
				 (unsigned long long)needed);
	if (needed > VHD_MAX_BAT_ENTRIES)
		return error_set(err, EINVAL,
				 "'%s' needs %llu blocks of %u bytes, more than impexfs supports "
				 "(%u)",
				 vhd->io.path, (unsigned long long)needed, h->block_size,
				 VHD_MAX_BAT_ENTRIES);
	vhd->block_count = (uint32_t)needed;
	bat_bytes = needed * 4;
	if (h->table_offset < VHD_FOOTER_SIZE)
		return error_set(
			err, EINVAL,
			"the block allocation table of '%s' (offset %llu) overlaps the footer "
			"copy at the start of the file",
			vhd->io.path, (unsigned long long)h->table_offset);
	if (h->table_offset > vhd->footer_offset ||
	    bat_bytes > vhd->footer_offset - h->table_offset)
		return error_set(
			err, EINVAL,
			"the block allocation table of '%s' (offset %llu, %llu bytes) runs "
			"past the footer at the end of the file (byte %llu)",
			vhd->io.path, (unsigned long long)h->table_offset,
			(unsigned long long)bat_bytes, (unsigned long long)vhd->footer_offset);
	if ((uint64_t)h->max_table_entries * 4 > vhd->footer_offset - h->table_offset)
		return error_set(
			err, EINVAL,
			"the block allocation table of '%s' declares %u entries (%llu bytes "
			"at offset %llu), more than the file holds",
			vhd->io.path, h->max_table_entries,
			(unsigned long long)h->max_table_entries * 4,
			(unsigned long long)h->table_offset);
	if (vhd_ranges_overlap(h->table_offset, bat_bytes, vhd->footer.data_offset,
			       VHD_HEADER_SIZE))
		return error_set(err, EINVAL,
				 "the block allocation table of '%s' overlaps its header",
				 vhd->io.path);
	vhd->bat = malloc(bat_bytes);
	if (!vhd->bat)
		return error_set(err, ENOMEM, "out of memory for the BAT of '%s'", vhd->io.path);
	rc = vhd_pread(vhd, vhd->bat, bat_bytes, h->table_offset, err);
	if (rc < 0)
		return rc;
	vhd->allocated = 0;
	for (uint32_t b = 0; b < vhd->block_count; b++) {
		vhd->bat[b] = be32_load(&vhd->bat[b]);
		if (vhd->bat[b] != VHD_UNALLOCATED)
			vhd->allocated++;
	}
	if (vhd->footer.disk_type == VHD_TYPE_DIFFERENCING && vhd_id_is_zero(h->parent_uuid))
		return error_set(err, EINVAL, "differencing disk '%s' names no parent (zero UUID)",
				 vhd->io.path);
	/* Locators first: the block check below relies on their lengths being sane. */
	rc = validate_locators(vhd, err);
	if (rc == 0)
		rc = validate_bat(vhd, err);
	if (rc < 0)
		return rc;

	/* The bitmap cache, within its budget: only a differencing disk reads
	 * its bitmaps. */
	if (vhd->footer.disk_type == VHD_TYPE_DIFFERENCING)
		bitmaps = vhd->block_count;
	if (vhd_cache_init(&vhd->bitmaps, BITMAP_CACHE_BYTES, vhd->bitmap_size, bitmaps) < 0)
		return error_set(err, ENOMEM, "out of memory for the bitmaps of '%s'",
				 vhd->io.path);
	return 0;
}

int vhd_open(struct vhd **out, const char *path, int flags, struct error *err)
{
	return vhd_open_fd(out, path, -1, flags, err);
}

int vhd_open_fd(struct vhd **out, const char *path, int fd, int flags, struct error *err)
{
	struct vhd *vhd;
	uint8_t raw[VHD_FOOTER_SIZE];
	int rc;

	*out = NULL;
	vhd = calloc(1, sizeof(*vhd));
	if (!vhd) {
		if (fd >= 0)
			close(fd);
		return error_set(err, ENOMEM, "out of memory");
	}
	vhd->io.fd = -1;
	rc = vhd_io_open(&vhd->io, path, fd, flags & VHD_OPEN_WRITE, true, err);
	if (rc < 0)
		goto fail;
	if (vhd->io.size < VHD_FOOTER_SIZE) {
		rc = error_set(err, EINVAL, "'%s' is %llu bytes, too short for a VHD", path,
			       (unsigned long long)vhd->io.size);
		goto fail;
	}
	vhd->footer_offset = vhd->io.size - VHD_FOOTER_SIZE;
	rc = vhd_pread(vhd, raw, sizeof(raw), vhd->footer_offset, err);
	if (rc < 0)
		goto fail;
	if (memcmp(raw, FOOTER_COOKIE, 8) != 0) {
		uint8_t copy[8];

		if (vhd->io.size >= 2 * VHD_FOOTER_SIZE &&
		    vhd_pread(vhd, copy, sizeof(copy), 0, NULL) == 0 &&
		    memcmp(copy, FOOTER_COOKIE, 8) == 0)
			rc = error_set(
				err, EINVAL,
				"'%s' has no footer at its end: the file is truncated or was "
				"not closed (the copy at its start is intact)",
				path);
		else if (vhd->io.size >= 8 && vhd_pread(vhd, copy, sizeof(copy), 0, NULL) == 0 &&
			 memcmp(copy, "vhdxfile", 8) == 0)
			rc = error_set(err, EINVAL, "'%s' is a VHDX file, not a VHD", path);
		else
			rc = error_set(err, EINVAL, "'%s' is not a VHD file (no '%s' footer)", path,
				       FOOTER_COOKIE);
		goto fail;
	}
	memcpy(vhd->footer_raw, raw, sizeof(raw));
	vhd_footer_decode(raw, &vhd->footer);
	rc = validate_footer(vhd, raw, err);
	if (rc < 0)
		goto fail;
	if (vhd->footer.disk_type == VHD_TYPE_FIXED) {
		if (vhd->footer_offset != vhd->footer.current_size) {
			rc = error_set(
				err, EINVAL,
				"fixed disk '%s' is %llu bytes, but its footer says %llu bytes "
				"of data plus the footer (truncated?)",
				path, (unsigned long long)vhd->io.size,
				(unsigned long long)vhd->footer.current_size);
			goto fail;
		}
	} else {
		rc = open_dynamic(vhd, err);
		if (rc < 0)
			goto fail;
	}
	*out = vhd;
	return 0;
fail:
	vhd_close(vhd);
	return rc;
}

void vhd_close(struct vhd *vhd)
{
	if (!vhd)
		return;
	vhd_io_close(&vhd->io);
	vhd_cache_release(&vhd->bitmaps);
	free(vhd->bat);
	free(vhd);
}

const char *vhd_path(const struct vhd *vhd)
{
	return vhd->io.path;
}

const struct vhd_footer *vhd_footer(const struct vhd *vhd)
{
	return &vhd->footer;
}

const struct vhd_header *vhd_header(const struct vhd *vhd)
{
	return vhd->footer.disk_type == VHD_TYPE_FIXED ? NULL : &vhd->header;
}

int vhd_fd(const struct vhd *vhd)
{
	return vhd->io.fd;
}

enum vhd_type vhd_disk_type(const struct vhd *vhd)
{
	return (enum vhd_type)vhd->footer.disk_type;
}

uint64_t vhd_size(const struct vhd *vhd)
{
	return vhd->footer.current_size;
}

uint32_t vhd_block_size(const struct vhd *vhd)
{
	return vhd->block_size;
}

uint32_t vhd_block_count(const struct vhd *vhd)
{
	return vhd->block_count;
}

uint32_t vhd_allocated_blocks(const struct vhd *vhd)
{
	return vhd->allocated;
}

int64_t vhd_block_offset(const struct vhd *vhd, uint32_t block)
{
	if (block >= vhd->block_count || vhd->bat[block] == VHD_UNALLOCATED)
		return -1;
	return (int64_t)vhd->bat[block] * VHD_SECTOR_SIZE;
}

uint64_t vhd_file_size(const struct vhd *vhd)
{
	return vhd->io.size;
}

struct timespec vhd_file_mtime(const struct vhd *vhd)
{
	return vhd->io.st.st_mtim;
}

void vhd_file_id(const struct vhd *vhd, dev_t *dev, ino_t *ino)
{
	*dev = vhd->io.st.st_dev;
	*ino = vhd->io.st.st_ino;
}

int vhd_parent_name(const struct vhd *vhd, char *out, size_t cap, struct error *err)
{
	int rc;

	if (vhd->footer.disk_type == VHD_TYPE_FIXED) {
		if (cap)
			out[0] = '\0';
		return 0;
	}
	rc = utf16_decode(vhd->header.parent_name, VHD_PARENT_NAME_SIZE, UTF16_BE, out, cap, err);
	if (rc < 0)
		return error_prefix(err, "the parent name of '%s'", vhd->io.path);
	return 0;
}

/* A MacX locator holds a file URL: "file://localhost/path" or "file:///path". */
static int decode_file_url(const char *url, char *out, size_t cap)
{
	const char *p = url;
	size_t n = 0;

	if (strncmp(p, "file://", 7) == 0) {
		p += 7;
		if (strncmp(p, "localhost/", 10) == 0)
			p += 9;
	}
	if (*p != '/')
		return -EINVAL;
	for (; *p; p++) {
		char c = *p;

		if (c == '%') {
			int hi = vhd_hex_digit(p[1]), lo = hi < 0 ? -1 : vhd_hex_digit(p[2]);

			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (char)(hi * 16 + lo);
			if (c == '\0')
				return -EINVAL;
			p += 2;
		}
		if (n + 1 >= cap)
			return -ENAMETOOLONG;
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

/* Is there a NUL code unit (of @unit bytes) followed by anything but NULs?
 * Trailing NULs are padding; a NUL inside would cut the path short. */
static bool nul_inside(const uint8_t *data, size_t len, size_t unit)
{
	bool seen_nul = false;

	for (size_t i = 0; i + unit <= len; i += unit) {
		bool nul = data[i] == 0 && (unit == 1 || data[i + 1] == 0);

		if (nul)
			seen_nul = true;
		else if (seen_nul)
			return true;
	}
	return false;
}

int vhd_locator_path(const struct vhd *vhd, int index, char *out, size_t cap, struct error *err)
{
	const struct vhd_locator *l;
	uint8_t *data = NULL;
	char name[5];
	int rc;

	if (vhd->footer.disk_type == VHD_TYPE_FIXED || index < 0 || index >= VHD_LOCATOR_COUNT)
		return -ENOENT;
	l = &vhd->header.locators[index];
	if (l->code != VHD_PLATFORM_W2RU && l->code != VHD_PLATFORM_W2KU &&
	    l->code != VHD_PLATFORM_WI2R && l->code != VHD_PLATFORM_WI2K &&
	    l->code != VHD_PLATFORM_MACX)
		return -ENOENT;
	vhd_platform_name(l->code, name);
	if (l->data_length == 0)
		return error_set(err, EINVAL, "parent locator %d (%s) of '%s' is empty", index,
				 name, vhd->io.path);
	data = malloc(l->data_length + 1);
	if (!data)
		return error_set(err, ENOMEM, "out of memory");
	rc = vhd_pread((struct vhd *)vhd, data, l->data_length, l->data_offset, err);
	if (rc < 0)
		goto out;
	data[l->data_length] = '\0';
	if (nul_inside(data, l->data_length,
		       l->code == VHD_PLATFORM_W2RU || l->code == VHD_PLATFORM_W2KU ? 2 : 1)) {
		rc = error_set(
			err, EINVAL,
			"parent locator %d (%s) of '%s' holds a NUL character inside its path",
			index, name, vhd->io.path);
		goto out;
	}
	if (l->code == VHD_PLATFORM_W2RU || l->code == VHD_PLATFORM_W2KU) {
		rc = utf16_decode(data, l->data_length, UTF16_LE, out, cap, err);
		if (rc < 0)
			error_prefix(err, "parent locator %d (%s) of '%s'", index, name,
				     vhd->io.path);
	} else if (l->code == VHD_PLATFORM_MACX) {
		rc = decode_file_url((const char *)data, out, cap);
		if (rc < 0)
			error_set(err, -rc, "parent locator %d (MacX) of '%s' is not a file URL",
				  index, vhd->io.path);
	} else {
		size_t n = strnlen((const char *)data, l->data_length);

		if (n + 1 > cap) {
			rc = error_set(err, ENAMETOOLONG, "parent locator %d of '%s' is too long",
				       index, vhd->io.path);
			goto out;
		}
		memcpy(out, data, n);
		out[n] = '\0';
	}
	if (rc == 0 && out[0] == '\0')
		rc = error_set(err, EINVAL, "parent locator %d (%s) of '%s' is empty", index, name,
			       vhd->io.path);
out:
	free(data);
	return rc;
}

/* ---- reading ---- */

/* Read the sector bitmap of allocated block @block (a vhd_cache_fill_fn). */
static int fill_bitmap(void *ctx, uint64_t block, void *bitmap, struct error *err)
{
	struct vhd *vhd = ctx;

	return vhd_pread(vhd, bitmap, vhd->bitmap_size, (uint64_t)vhd->bat[block] * VHD_SECTOR_SIZE,
			 err);
}

int vhd_map(struct vhd *vhd, uint64_t sector, uint64_t count, struct vhd_extent *ext,
	    struct error *err)
{
	uint64_t total = vhd->footer.current_size / VHD_SECTOR_SIZE;
	uint32_t block, in_block, limit;
	bool diff = vhd->footer.disk_type == VHD_TYPE_DIFFERENCING;

	if (sector >= total || count == 0)
		return error_set(err, EINVAL, "sector %llu is outside '%s'",
				 (unsigned long long)sector, vhd->io.path);
	if (count > total - sector)
		count = total - sector;
	if (vhd->footer.disk_type == VHD_TYPE_FIXED) {
		ext->kind = VHD_EXTENT_DATA;
		ext->sectors = count;
		ext->file_offset = sector * VHD_SECTOR_SIZE;
		return 0;
	}
	block = (uint32_t)(sector / vhd->sectors_per_block);
	in_block = (uint32_t)(sector % vhd->sectors_per_block);
	limit = vhd->sectors_per_block;
	if (count < (uint64_t)(limit - in_block))
		limit = in_block + (uint32_t)count;
	if (vhd->bat[block] == VHD_UNALLOCATED) {
		/* Extend the run over the following unallocated blocks. */
		uint64_t run = limit - in_block;

		while (run < count && block + 1 < vhd->block_count &&
		       vhd->bat[block + 1] == VHD_UNALLOCATED) {
			block++;
			run += vhd->sectors_per_block;
		}
		ext->kind = diff ? VHD_EXTENT_PARENT : VHD_EXTENT_ZERO;
		ext->sectors = run < count ? run : count;
		return 0;
	}
	ext->file_offset = (uint64_t)vhd->bat[block] * VHD_SECTOR_SIZE + vhd->bitmap_size +
			   (uint64_t)in_block * VHD_SECTOR_SIZE;
	if (!diff) {
		/* As QEMU does: an allocated block of a dynamic disk is read whole. */
		ext->kind = VHD_EXTENT_DATA;
		ext->sectors = limit - in_block;
		return 0;
	}
	{
		const uint8_t *bitmap;
		int rc = vhd_cache_get(&vhd->bitmaps, block, fill_bitmap, vhd, &bitmap, err);

		if (rc < 0)
			return rc;
		ext->kind = vhd_bitmap_test(bitmap, in_block, false) ? VHD_EXTENT_DATA
								     : VHD_EXTENT_PARENT;
		ext->sectors = vhd_bitmap_run(bitmap, in_block, limit, false);
		vhd_cache_put(&vhd->bitmaps, block);
		return 0;
	}
}

static int map_disk(void *vhd, uint64_t sector, uint64_t count, struct vhd_extent *ext,
		    struct error *err)
{
	return vhd_map(vhd, sector, count, ext, err);
}

static int pread_disk(void *vhd, void *buf, size_t len, uint64_t offset, struct error *err)
{
	return vhd_pread(vhd, buf, len, offset, err);
}

int vhd_read(struct vhd *vhd, void *buf, size_t len, uint64_t offset, struct error *err)
{
	static const struct vhd_io_format format = {map_disk, pread_disk};

	return vhd_io_read_disk(&vhd->io, &format, vhd, vhd->footer.current_size, VHD_SECTOR_SIZE,
				buf, len, offset, err);
}
