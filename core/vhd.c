#include "vhd.h"

#include "bigendian.h"
#include "error.h"
#include "fsutil.h"
#include "pathmap.h"
#include "utf16.h"
#include "vhd_cache.h"
#include "vhd_io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* Footer field offsets (specification, "Hard Disk Footer Format"). */
#define FOOTER_CHECKSUM_AT 64
/* Header field offsets ("Dynamic Disk Header Format"). */
#define HEADER_CHECKSUM_AT 36
#define HEADER_PARENT_NAME 64
#define HEADER_LOCATORS	   576
#define LOCATOR_ENTRY_SIZE 24

#define FOOTER_COOKIE "conectix"
#define HEADER_COOKIE "cxsparse"
#define VHD_VERSION   0x00010000u
/* What Hyper-V on Windows Server 2012 R2 writes as creator version. */
#define CREATOR_VERSION 0x00060003u

/* Bitmap cache budget per open differencing disk, its bookkeeping included:
 * 64 KiB, 117 bitmaps of 2 MiB blocks. */
#define BITMAP_CACHE_BYTES (64u * 1024)

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

/* ---- on-disk structures ---- */

uint32_t vhd_checksum(const uint8_t *raw, size_t len, size_t checksum_at)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		if (i < checksum_at || i >= checksum_at + 4)
			sum += raw[i];
	return ~sum;
}

/* The footer's fields ("Hard Disk Footer Format"), big-endian. */
#define FOOTER_INT(at, m)   VHD_FIELD_INT(at, struct vhd_footer, m)
#define FOOTER_BYTES(at, m) VHD_FIELD_BYTES(at, struct vhd_footer, m)
static const struct vhd_field footer_fields[] = {
	FOOTER_BYTES(0, cookie),
	FOOTER_INT(8, features),
	FOOTER_INT(12, version),
	FOOTER_INT(16, data_offset),
	FOOTER_INT(24, timestamp),
	FOOTER_BYTES(28, creator_app),
	FOOTER_INT(32, creator_version),
	FOOTER_BYTES(36, creator_os),
	FOOTER_INT(40, original_size),
	FOOTER_INT(48, current_size),
	FOOTER_INT(56, geometry.cylinders),
	FOOTER_INT(58, geometry.heads),
	FOOTER_INT(59, geometry.sectors),
	FOOTER_INT(60, disk_type),
	FOOTER_INT(FOOTER_CHECKSUM_AT, checksum),
	FOOTER_BYTES(68, uuid),
	FOOTER_INT(84, saved_state),
};

/* The dynamic disk header's fields ("Dynamic Disk Header Format"), big-endian;
 * then VHD_LOCATOR_COUNT parent locator entries. */
#define HEADER_INT(at, m)   VHD_FIELD_INT(at, struct vhd_header, m)
#define HEADER_BYTES(at, m) VHD_FIELD_BYTES(at, struct vhd_header, m)
static const struct vhd_field header_fields[] = {
	HEADER_BYTES(0, cookie),
	HEADER_INT(8, data_offset),
	HEADER_INT(16, table_offset),
	HEADER_INT(24, version),
	HEADER_INT(28, max_table_entries),
	HEADER_INT(32, block_size),
	HEADER_INT(HEADER_CHECKSUM_AT, checksum),
	HEADER_BYTES(40, parent_uuid),
	HEADER_INT(56, parent_timestamp),
	HEADER_BYTES(HEADER_PARENT_NAME, parent_name),
};

static const struct vhd_field locator_fields[] = {
	VHD_FIELD_INT(0, struct vhd_locator, code),
	VHD_FIELD_INT(4, struct vhd_locator, data_space),
	VHD_FIELD_INT(8, struct vhd_locator, data_length),
	VHD_FIELD_INT(16, struct vhd_locator, data_offset),
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

void vhd_footer_decode(const uint8_t raw[VHD_FOOTER_SIZE], struct vhd_footer *f)
{
	vhd_fields_decode(footer_fields, COUNT(footer_fields), false, raw, f);
}

void vhd_footer_encode(const struct vhd_footer *f, uint8_t raw[VHD_FOOTER_SIZE])
{
	memset(raw, 0, VHD_FOOTER_SIZE);
	vhd_fields_encode(footer_fields, COUNT(footer_fields), false, f, raw);
	be32_store(raw + FOOTER_CHECKSUM_AT,
		   vhd_checksum(raw, VHD_FOOTER_SIZE, FOOTER_CHECKSUM_AT));
}

void vhd_header_decode(const uint8_t raw[VHD_HEADER_SIZE], struct vhd_header *h)
{
	vhd_fields_decode(header_fields, COUNT(header_fields), false, raw, h);
	for (int i = 0; i < VHD_LOCATOR_COUNT; i++)
		vhd_fields_decode(locator_fields, COUNT(locator_fields), false,
				  raw + HEADER_LOCATORS + i * LOCATOR_ENTRY_SIZE, &h->locators[i]);
}

void vhd_header_encode(const struct vhd_header *h, uint8_t raw[VHD_HEADER_SIZE])
{
	memset(raw, 0, VHD_HEADER_SIZE);
	vhd_fields_encode(header_fields, COUNT(header_fields), false, h, raw);
	for (int i = 0; i < VHD_LOCATOR_COUNT; i++)
		vhd_fields_encode(locator_fields, COUNT(locator_fields), false, &h->locators[i],
				  raw + HEADER_LOCATORS + i * LOCATOR_ENTRY_SIZE);
	be32_store(raw + HEADER_CHECKSUM_AT,
		   vhd_checksum(raw, VHD_HEADER_SIZE, HEADER_CHECKSUM_AT));
}

void vhd_geometry_for_size(uint64_t size, struct vhd_geometry *g)
{
	uint64_t total = size / VHD_SECTOR_SIZE;
	uint64_t spt, heads, cth;

	if (total > 65535ull * 16 * 255)
		total = 65535ull * 16 * 255;
	if (total >= 65535ull * 16 * 63) {
		spt = 255;
		heads = 16;
		cth = total / spt;
	} else {
		spt = 17;
		cth = total / spt;
		heads = (cth + 1023) / 1024;
		if (heads < 4)
			heads = 4;
		if (cth >= heads * 1024 || heads > 16) {
			spt = 31;
			heads = 16;
			cth = total / spt;
		}
		if (cth >= heads * 1024) {
			spt = 63;
			heads = 16;
			cth = total / spt;
		}
	}
	g->cylinders = (uint16_t)(cth / heads);
	g->heads = (uint8_t)heads;
	g->sectors = (uint8_t)spt;
}

uint64_t vhd_locator_space_bytes(uint32_t data_space)
{
	return data_space < VHD_SECTOR_SIZE ? (uint64_t)data_space * VHD_SECTOR_SIZE : data_space;
}

uint32_t vhd_bitmap_size(uint32_t block_size)
{
	uint32_t bytes = block_size / VHD_SECTOR_SIZE / 8;

	if (bytes == 0)
		bytes = 1;
	return (bytes + VHD_SECTOR_SIZE - 1) / VHD_SECTOR_SIZE * VHD_SECTOR_SIZE;
}

const char *vhd_type_name(uint32_t type)
{
	switch (type) {
	case VHD_TYPE_FIXED:
		return "fixed";
	case VHD_TYPE_DYNAMIC:
		return "dynamic";
	case VHD_TYPE_DIFFERENCING:
		return "differencing";
	default:
		return "unknown";
	}
}

const char *vhd_platform_name(uint32_t code, char buf[5])
{
	if (code == VHD_PLATFORM_NONE)
		return "";
	for (int i = 0; i < 4; i++) {
		char c = (char)(code >> (24 - 8 * i));

		buf[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	buf[4] = '\0';
	return buf;
}

time_t vhd_time_to_unix(uint32_t vhd_time)
{
	return (time_t)VHD_EPOCH + (time_t)vhd_time;
}

uint32_t vhd_time_from_unix(time_t t)
{
	if (t <= VHD_EPOCH)
		return 0;
	if ((uint64_t)(t - VHD_EPOCH) > UINT32_MAX)
		return UINT32_MAX;
	return (uint32_t)(t - VHD_EPOCH);
}

const char *vhd_format_utc(time_t t, char *buf, size_t cap)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, cap, "%lld", (long long)t);
	return buf;
}

void vhd_uuid_format(const uint8_t uuid[16], char out[37])
{
	uuid_unparse_lower(uuid, out);
}

/* ---- small pieces both formats use ---- */

void vhd_fields_decode(const struct vhd_field *fields, size_t count, bool little_endian,
		       const uint8_t *raw, void *out)
{
	for (size_t i = 0; i < count; i++) {
		const struct vhd_field *f = &fields[i];
		const uint8_t *r = raw + f->at;
		uint8_t *m = (uint8_t *)out + f->member;
		uint64_t v = 0;

		if (f->bytes) {
			memcpy(m, r, f->size);
			continue;
		}
		for (unsigned k = 0; k < f->size; k++)
			v = v << 8 | r[little_endian ? f->size - 1 - k : k];
		if (f->size == 1) {
			*m = (uint8_t)v;
		} else if (f->size == 2) {
			uint16_t x = (uint16_t)v;

			memcpy(m, &x, 2);
		} else if (f->size == 4) {
			uint32_t x = (uint32_t)v;

			memcpy(m, &x, 4);
		} else {
			memcpy(m, &v, 8);
		}
	}
}

void vhd_fields_encode(const struct vhd_field *fields, size_t count, bool little_endian,
		       const void *in, uint8_t *raw)
{
	for (size_t i = 0; i < count; i++) {
		const struct vhd_field *f = &fields[i];
		const uint8_t *m = (const uint8_t *)in + f->member;
		uint8_t *r = raw + f->at;
		uint64_t v;

		if (f->bytes) {
			memcpy(r, m, f->size);
			continue;
		}
		if (f->size == 1) {
			v = *m;
		} else if (f->size == 2) {
			uint16_t x;

			memcpy(&x, m, 2);
			v = x;
		} else if (f->size == 4) {
			uint32_t x;

			memcpy(&x, m, 4);
			v = x;
		} else {
			memcpy(&v, m, 8);
		}
		for (unsigned k = 0; k < f->size; k++, v >>= 8)
			r[little_endian ? k : f->size - 1 - k] = (uint8_t)v;
	}
}

bool vhd_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	/* Differences, never sums (which could wrap for hostile offsets); an
	 * empty range meets nothing, as no difference is below 0. */
	return a <= b ? b - a < alen : a - b < blen;
}

bool vhd_is_power_of_two(uint64_t v)
{
	return v && !(v & (v - 1));
}

bool vhd_id_is_zero(const uint8_t id[16])
{
	for (int i = 0; i < 16; i++)
		if (id[i])
			return false;
	return true;
}

int vhd_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- opening ---- */

int vhd_pread(struct vhd *vhd, void *buf, size_t len, uint64_t offset, struct error *err)
{
	return vhd_io_pread(&vhd->io, buf, len, offset, err);
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
		    vhd_ranges_overlap(start, end - start, vhd->footer.data_offset, VHD_HEADER_SIZE)) {
			rc = error_set(err, EINVAL,
				       "block %u of '%s' overlaps the file's header or block "
				       "allocation table",
				       b, vhd->io.path);
			goto out;
		}
		for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
			const struct vhd_locator *l = &h->locators[i];

			if (l->code != VHD_PLATFORM_NONE &&
			    vhd_ranges_overlap(start, end - start, l->data_offset, l->data_length)) {
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
		if (l->data_offset > vhd->io.size ||
		    l->data_length > vhd->io.size - l->data_offset)
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
	uint64_t needed, bat_bytes;
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
	if (vhd_ranges_overlap(h->table_offset, bat_bytes, vhd->footer.data_offset, VHD_HEADER_SIZE))
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
	if (vhd_cache_init(&vhd->bitmaps, BITMAP_CACHE_BYTES, vhd->bitmap_size,
			   vhd->footer.disk_type == VHD_TYPE_DIFFERENCING ? vhd->block_count : 0) < 0)
		return error_set(err, ENOMEM, "out of memory for the bitmaps of '%s'", vhd->io.path);
	return 0;
}

int vhd_open(struct vhd **out, const char *path, int flags, struct error *err)
{
	struct vhd *vhd;
	uint8_t raw[VHD_FOOTER_SIZE];
	int rc;

	*out = NULL;
	vhd = calloc(1, sizeof(*vhd));
	if (!vhd)
		return error_set(err, ENOMEM, "out of memory");
	vhd->io.fd = -1;
	rc = vhd_io_open(&vhd->io, path, flags & VHD_OPEN_WRITE, true, err);
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
			rc = error_set(err, EINVAL,
				       "'%s' is a VHDX file, not a VHD",
				       path);
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
			error_prefix(err, "parent locator %d (%s) of '%s'", index, name, vhd->io.path);
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

bool vhd_bitmap_test(const uint8_t *bitmap, uint32_t bit, bool lsb_first)
{
	return bitmap[bit >> 3] & (lsb_first ? 1u << (bit & 7) : 0x80u >> (bit & 7));
}

uint32_t vhd_bitmap_run(const uint8_t *bitmap, uint32_t first, uint32_t limit, bool lsb_first)
{
	bool value = vhd_bitmap_test(bitmap, first, lsb_first);
	uint8_t whole = value ? 0xFF : 0x00;
	uint32_t i = first + 1;

	while (i < limit) {
		if ((i & 7) == 0 && i + 8 <= limit && bitmap[i >> 3] == whole) {
			i += 8;
			continue;
		}
		if (vhd_bitmap_test(bitmap, i, lsb_first) != value)
			break;
		i++;
	}
	return i - first;
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

/* ---- creating ---- */

#define TABLE_OFFSET ((uint64_t)VHD_FOOTER_SIZE + VHD_HEADER_SIZE)

void vhd_footer_init(struct vhd_footer *f, enum vhd_type type, uint64_t size,
		     const uint8_t uuid[16], uint32_t timestamp)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->cookie, FOOTER_COOKIE, 8);
	f->features = 2;
	f->version = VHD_VERSION;
	f->data_offset = type == VHD_TYPE_FIXED ? UINT64_MAX : VHD_FOOTER_SIZE;
	f->timestamp = timestamp;
	memcpy(f->creator_app, "win ", 4);
	f->creator_version = CREATOR_VERSION;
	memcpy(f->creator_os, "Wi2k", 4);
	f->original_size = size;
	f->current_size = size;
	vhd_geometry_for_size(size, &f->geometry);
	f->disk_type = type;
	memcpy(f->uuid, uuid, 16);
}

void vhd_header_init(struct vhd_header *h, uint32_t block_count, uint32_t block_size)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->cookie, HEADER_COOKIE, 8);
	h->data_offset = UINT64_MAX;
	h->table_offset = TABLE_OFFSET;
	h->version = VHD_VERSION;
	h->max_table_entries = block_count;
	h->block_size = block_size;
}

uint64_t vhd_bat_bytes(uint32_t block_count)
{
	return ((uint64_t)block_count * 4 + VHD_SECTOR_SIZE - 1) / VHD_SECTOR_SIZE *
	       VHD_SECTOR_SIZE;
}

/* Write an empty BAT (all entries unallocated) of @bytes at @offset. */
static int write_empty_bat(int fd, uint64_t offset, uint64_t bytes)
{
	uint8_t chunk[65536];

	memset(chunk, 0xFF, sizeof(chunk));
	while (bytes) {
		size_t n = bytes < sizeof(chunk) ? (size_t)bytes : sizeof(chunk);
		int rc = fsutil_pwrite_full(fd, chunk, n, offset);

		if (rc < 0)
			return rc;
		offset += n;
		bytes -= n;
	}
	return 0;
}

/* The parts of a new dynamic or differencing file other than blocks. */
struct new_dynamic {
	struct vhd_footer footer;
	struct vhd_header header;
	const uint8_t
		*locator_data[VHD_LOCATOR_COUNT]; /* each header.locators[i].data_space long */
};

/* Write a new dynamic or differencing file with no blocks into @fd:
 * footer copy, header, empty BAT, locator data, footer. */
static int write_new_dynamic(int fd, struct new_dynamic *d)
{
	uint8_t footer[VHD_FOOTER_SIZE], header[VHD_HEADER_SIZE];
	uint64_t end = TABLE_OFFSET + vhd_bat_bytes(d->header.max_table_entries);
	int rc;

	for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
		if (!d->locator_data[i])
			continue;
		d->header.locators[i].data_offset = end;
		end += d->header.locators[i].data_space;
	}
	vhd_footer_encode(&d->footer, footer);
	vhd_header_encode(&d->header, header);
	rc = fsutil_pwrite_full(fd, footer, sizeof(footer), 0);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, header, sizeof(header), VHD_FOOTER_SIZE);
	if (rc == 0)
		rc = write_empty_bat(fd, TABLE_OFFSET, vhd_bat_bytes(d->header.max_table_entries));
	for (int i = 0; i < VHD_LOCATOR_COUNT && rc == 0; i++)
		if (d->locator_data[i])
			rc = fsutil_pwrite_full(fd, d->locator_data[i],
						d->header.locators[i].data_space,
						d->header.locators[i].data_offset);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, footer, sizeof(footer), end);
	return rc;
}

/* Create @path exclusively, let @fill write it, fsync it and its folder;
 * on any failure remove it. */
static int create_file(const char *path, int (*fill)(int fd, void *ctx), void *ctx,
		       struct error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int rc;

	if (fd < 0) {
		rc = errno;
		if (rc == EEXIST)
			return error_set(err, EEXIST, "'%s' already exists", path);
		return error_errno(err, rc, "cannot create", path);
	}
	rc = fill(fd, ctx);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0)
		rc = fsutil_fsync_parent(path);
	if (rc < 0) {
		unlink(path);
		return error_errno(err, -rc, "cannot write", path);
	}
	return 0;
}

static int fill_fixed(int fd, void *ctx)
{
	const struct vhd_footer *f = ctx;
	uint8_t raw[VHD_FOOTER_SIZE];

	if (ftruncate(fd, (off_t)f->current_size) < 0)
		return -errno;
	vhd_footer_encode(f, raw);
	return fsutil_pwrite_full(fd, raw, sizeof(raw), f->current_size);
}

static int fill_dynamic(int fd, void *ctx)
{
	return write_new_dynamic(fd, ctx);
}

int vhd_create_check(const struct vhd_create_options *o, struct error *err)
{
	const uint64_t mib = 1024 * 1024;

	if (o->size == 0)
		return error_set(err, EINVAL, "a disk size of 0: the smallest disk is 1 MiB");
	if (o->size % mib)
		return error_set(err, EINVAL,
				 "disk size %llu bytes is not a whole number of MiB (try %llu)",
				 (unsigned long long)o->size,
				 (unsigned long long)((o->size + mib - 1) / mib * mib));
	if (o->size > VHD_MAX_CREATE_SIZE)
		return error_set(err, EINVAL, "disk size %llu bytes is over the limit of 2040 GiB",
				 (unsigned long long)o->size);
	if (o->type != VHD_TYPE_FIXED && o->type != VHD_TYPE_DYNAMIC)
		return error_set(err, EINVAL, "can only create fixed or dynamic disks");
	if (o->type == VHD_TYPE_FIXED && o->block_size)
		return error_set(err, EINVAL, "a fixed disk has no blocks: no block size applies");
	if (o->block_size &&
	    (!vhd_is_power_of_two(o->block_size) || o->block_size < VHD_MIN_CREATE_BLOCK ||
	     o->block_size > VHD_MAX_BLOCK))
		return error_set(err, EINVAL,
				 "block size %u is not a power of two from 4 KiB to 256 MiB",
				 o->block_size);
	if (o->type == VHD_TYPE_DYNAMIC &&
	    (o->size + (o->block_size ? o->block_size : VHD_DEFAULT_BLOCK) - 1) /
			    (o->block_size ? o->block_size : VHD_DEFAULT_BLOCK) >
		    VHD_MAX_BAT_ENTRIES)
		return error_set(
			err, EINVAL,
			"a disk of %llu bytes in blocks of %u bytes needs more than %u blocks: "
			"choose larger blocks",
			(unsigned long long)o->size, o->block_size, VHD_MAX_BAT_ENTRIES);
	return 0;
}

int vhd_create(const char *path, const struct vhd_create_options *o, struct error *err)
{
	uint32_t block_size = o->block_size ? o->block_size : VHD_DEFAULT_BLOCK;
	struct new_dynamic d;
	uint8_t uuid[16];
	uint32_t now = o->timestamp ? o->timestamp : vhd_time_from_unix(time(NULL));
	int rc;

	rc = vhd_create_check(o, err);
	if (rc < 0)
		return rc;
	if (o->uuid)
		memcpy(uuid, o->uuid, 16);
	else
		uuid_generate_random(uuid);
	memset(&d, 0, sizeof(d));
	vhd_footer_init(&d.footer, o->type, o->size, uuid, now);
	if (o->type == VHD_TYPE_FIXED)
		return create_file(path, fill_fixed, &d.footer, err);
	vhd_header_init(&d.header, (uint32_t)((o->size + block_size - 1) / block_size), block_size);
	return create_file(path, fill_dynamic, &d, err);
}

/* Percent-encode an absolute path as a file URL for a MacX locator. */
static int encode_file_url(const char *path, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	int w = snprintf(out, cap, "file://");

	if (w < 0 || (size_t)w >= cap)
		return -ENAMETOOLONG;
	n = (size_t)w;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || strchr("/-._~", *p);

		if (n + 4 > cap)
			return -ENAMETOOLONG;
		if (plain) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = '\0';
	return 0;
}

/* Locator data buffers of a new differencing disk. */
struct new_locators {
	uint8_t relative[VHD_MAX_LOCATOR_BYTES];
	uint8_t absolute[VHD_MAX_LOCATOR_BYTES];
	char url[VHD_MAX_LOCATOR_BYTES];
};

static void set_locator(struct new_dynamic *d, int index, uint32_t code, const void *data,
			size_t len)
{
	struct vhd_locator *l = &d->header.locators[index];

	l->code = code;
	l->data_length = (uint32_t)len;
	/* Data space in bytes, whole sectors, as Hyper-V writes it. */
	l->data_space = (uint32_t)((len + VHD_SECTOR_SIZE - 1) / VHD_SECTOR_SIZE * VHD_SECTOR_SIZE);
	d->locator_data[index] = data;
}

int vhd_create_differencing(const char *path, const char *parent_path, const struct pathmap *map,
			    struct error *err)
{
	struct vhd *parent = NULL;
	struct new_locators *loc = NULL;
	struct new_dynamic d;
	char parent_abs[PATH_MAX], child_dir[PATH_MAX];
	char relative[PATH_MAX], windows[PATH_MAX];
	uint8_t uuid[16];
	size_t len;
	int rc, n = 0;

	rc = vhd_open(&parent, parent_path, VHD_OPEN_READ, err);
	if (rc < 0)
		return error_prefix(err, "cannot use '%s' as a parent", parent_path);
	rc = pathmap_child_places(path, parent_path, parent_abs, child_dir, err);
	if (rc < 0)
		goto out;
	loc = calloc(1, sizeof(*loc));
	if (!loc) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	memset(&d, 0, sizeof(d));
	uuid_generate_random(uuid);
	vhd_footer_init(&d.footer, VHD_TYPE_DIFFERENCING, vhd_size(parent), uuid,
			vhd_time_from_unix(time(NULL)));
	d.footer.geometry = parent->footer.geometry;
	d.footer.original_size = parent->footer.original_size;
	vhd_header_init(&d.header,
			(uint32_t)((vhd_size(parent) + VHD_DEFAULT_BLOCK - 1) / VHD_DEFAULT_BLOCK),
			VHD_DEFAULT_BLOCK);
	memcpy(d.header.parent_uuid, parent->footer.uuid, 16);
	d.header.parent_timestamp = vhd_time_from_unix(parent->io.st.st_mtim.tv_sec);
	rc = utf16_encode(pathmap_basename(parent_abs), UTF16_BE, d.header.parent_name,
			  VHD_PARENT_NAME_SIZE, &len, err);
	if (rc < 0) {
		error_prefix(err, "the parent's file name '%s'", pathmap_basename(parent_abs));
		goto out;
	}
	rc = pathmap_windows_relative(child_dir, parent_abs, relative, sizeof(relative));
	if (rc == 0)
		rc = utf16_encode(relative, UTF16_LE, loc->relative, sizeof(loc->relative), &len,
				  err);
	if (rc < 0) {
		error_set(err, -rc, "cannot record the relative path of '%s'", parent_abs);
		goto out;
	}
	set_locator(&d, n++, VHD_PLATFORM_W2RU, loc->relative, len);
	if (pathmap_to_windows(map, parent_abs, windows, sizeof(windows)) == 0) {
		rc = utf16_encode(windows, UTF16_LE, loc->absolute, sizeof(loc->absolute), &len,
				  err);
		if (rc < 0)
			goto out;
		set_locator(&d, n++, VHD_PLATFORM_W2KU, loc->absolute, len);
	}
	rc = encode_file_url(parent_abs, loc->url, sizeof(loc->url));
	if (rc < 0) {
		error_set(err, -rc, "the path of '%s' is too long for a locator", parent_abs);
		goto out;
	}
	set_locator(&d, n++, VHD_PLATFORM_MACX, loc->url, strlen(loc->url));
	rc = create_file(path, fill_dynamic, &d, err);
out:
	free(loc);
	vhd_close(parent);
	return rc;
}

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
		return error_prefix(err, "cannot name parent '%s' in '%s'", parent_name, vhd->io.path);
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
