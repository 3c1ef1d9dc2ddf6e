/*
 * vhd_layout.c - the on-disk structures of a VHD: footer and dynamic disk
 * header (encoded and decoded from one table of their fields), checksums,
 * CHS geometry, sector bitmaps, names and times, the footer and header of
 * a new file; and the small pieces both formats use (vhd.h).
 */
#include "vhd.h"
#include "vhd_internal.h"

#include "bigendian.h"

#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

/* Header field offsets ("Dynamic Disk Header Format"). */
#define HEADER_PARENT_NAME 64
#define HEADER_LOCATORS	   576
#define LOCATOR_ENTRY_SIZE 24

/* What Hyper-V on Windows Server 2012 R2 writes as creator version. */
#define CREATOR_VERSION 0x00060003u

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

/* ---- sector bitmaps ---- */

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

/* ---- the structures of a new file ---- */

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
