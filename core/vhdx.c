#include "vhdx.h"
#include "vhdx_internal.h"

#include "bigendian.h"
#include "crc32c.h"
#include "error.h"
#include "utf16.h"
#include "vhdx_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Places in the header section ([MS-VHDX] 2.2). */
#define FILE_ID_SIGNATURE "vhdxfile"

/* BAT pages of 32 KiB (4096 entries), as many as VHDX_BAT_CACHE_BYTES holds. */
#define BAT_PAGE_ENTRIES 4096u
/* BAT read at open in pieces of this many entries (1 MiB). */
#define BAT_SCAN_ENTRIES (128u * 1024)

/* The known metadata items, in the order of the table in [MS-VHDX] 2.6.2. */
enum item {
	ITEM_FILE_PARAMS,
	ITEM_DISK_SIZE,
	ITEM_DISK_ID,
	ITEM_LOGICAL,
	ITEM_PHYSICAL,
	ITEM_LOCATOR,
	ITEM_COUNT,
};

static const struct {
	const char *guid;
	const char *name;
	uint32_t min_length;
} items[ITEM_COUNT] = {
	[ITEM_FILE_PARAMS] = {VHDX_GUID_FILE_PARAMS, "file parameters", 8},
	[ITEM_DISK_SIZE] = {VHDX_GUID_DISK_SIZE, "virtual disk size", 8},
	[ITEM_DISK_ID] = {VHDX_GUID_DISK_ID, "virtual disk ID", 16},
	[ITEM_LOGICAL] = {VHDX_GUID_LOGICAL, "logical sector size", 4},
	[ITEM_PHYSICAL] = {VHDX_GUID_PHYSICAL, "physical sector size", 4},
	[ITEM_LOCATOR] = {VHDX_GUID_LOCATOR, "parent locator", LOCATOR_HEADER_SIZE},
};


/* ---- GUIDs ---- */

/* A header's fields ([MS-VHDX] 2.2.2), little-endian, but for its checksum at 4. */
#define HEADER_INT(at, m)   VHD_FIELD_INT(at, struct vhdx_header, m)
#define HEADER_BYTES(at, m) VHD_FIELD_BYTES(at, struct vhdx_header, m)
static const struct vhd_field header_fields[] = {
	HEADER_INT(8, sequence_number), HEADER_BYTES(16, file_write_guid),
	HEADER_BYTES(32, data_write_guid), HEADER_BYTES(48, log_guid),
	HEADER_INT(64, log_version),	HEADER_INT(66, version),
	HEADER_INT(68, log_length),	HEADER_INT(72, log_offset),
};

void vhdx_header_encode(const struct vhdx_header *h, uint8_t raw[VHDX_HEADER_SIZE])
{
	memset(raw, 0, VHDX_HEADER_SIZE);
	memcpy(raw, "head", 4);
	vhd_fields_encode(header_fields, sizeof(header_fields) / sizeof(header_fields[0]), true, h,
			  raw);
	le32_store(raw + VHDX_CHECKSUM_AT, crc32c(0, raw, VHDX_HEADER_SIZE));
}

void vhdx_header_encode_new(uint8_t raw[VHDX_HEADER_SIZE], uint64_t sequence,
			    const uint8_t file_write[16], const uint8_t data_write[16])
{
	struct vhdx_header h = {.sequence_number = sequence,
				.version = 1,
				.log_length = VHDX_LOG_LENGTH,
				.log_offset = VHDX_HEADER_AREA};

	memcpy(h.file_write_guid, file_write, 16);
	memcpy(h.data_write_guid, data_write, 16);
	vhdx_header_encode(&h, raw);
}

void vhdx_guid_from_uuid(const uint8_t uuid[16], uint8_t out[16])
{
	uint8_t u[16];

	memcpy(u, uuid, 16); /* @out may be @uuid */
	for (int i = 0; i < 4; i++)
		out[i] = u[3 - i];
	out[4] = u[5];
	out[5] = u[4];
	out[6] = u[7];
	out[7] = u[6];
	memcpy(out + 8, u + 8, 8);
}

void vhdx_guid_format(const uint8_t g[16], char out[39])
{
	snprintf(out, 39, "{%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}", le32_load(g),
		 le16_load(g + 4), le16_load(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}

int vhdx_guid_parse(const char *text, uint8_t raw[16])
{
	/* Byte of each pair of hex digits, in text order, in Microsoft's layout. */
	static const int place[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
	const char *p = text;
	int n = 0;

	if (strlen(text) != 38 || text[0] != '{' || text[37] != '}')
		return -EINVAL;
	p++;
	for (int i = 1; i < 37; i++) {
		if (i == 9 || i == 14 || i == 19 || i == 24) {
			if (*p++ != '-')
				return -EINVAL;
			continue;
		}
		if (vhd_hex_digit(p[0]) < 0 || vhd_hex_digit(p[1]) < 0)
			return -EINVAL;
		raw[place[n++]] = (uint8_t)(vhd_hex_digit(p[0]) << 4 | vhd_hex_digit(p[1]));
		p += 2;
		i++;
	}
	return n == 16 ? 0 : -EINVAL;
}

void vhdx_guid_constant(const char *text, uint8_t raw[16])
{
	if (vhdx_guid_parse(text, raw) < 0)
		abort(); /* the constants of vhdx.h are well-formed */
}

/* ---- reading the file ---- */

int vhdx_pread(struct vhdx *vhdx, void *buf, size_t len, uint64_t offset, struct error *err)
{
	uint8_t *out = buf;
	size_t inside = 0;
	int rc;

	if (offset > vhdx->data_end || len > vhdx->data_end - offset)
		return error_set(err, EIO, "'%s' ends before byte %llu (the file was truncated)",
				 vhdx->io.path, (unsigned long long)(offset + len));
	if (offset < vhdx->io.size)
		inside = vhdx->io.size - offset < len ? (size_t)(vhdx->io.size - offset) : len;
	if (inside) {
		rc = vhd_io_pread(&vhdx->io, out, inside, offset, err);
		if (rc < 0)
			return rc;
	}
	/* Past the file's end but within the size the log gives it. */
	memset(out + inside, 0, len - inside);
	if (vhdx->overlay)
		vhdx_overlay_apply(vhdx->overlay, out, len, offset);
	return 0;
}

/* ---- headers ---- */

static void header_decode(const uint8_t *raw, struct vhdx_header *h)
{
	h->checksum = le32_load(raw + VHDX_CHECKSUM_AT);
	vhd_fields_decode(header_fields, sizeof(header_fields) / sizeof(header_fields[0]), true, raw,
			  h);
}

/* Whether header @raw is valid (signature and CRC-32C); if not, why, into @why. */
static bool header_valid(uint8_t *raw, char *why, size_t cap)
{
	uint32_t stored = le32_load(raw + VHDX_CHECKSUM_AT), computed;
	uint8_t saved[4];

	if (memcmp(raw, "head", 4) != 0) {
		snprintf(why, cap, "no 'head' signature");
		return false;
	}
	memcpy(saved, raw + VHDX_CHECKSUM_AT, 4);
	memset(raw + VHDX_CHECKSUM_AT, 0, 4);
	computed = crc32c(0, raw, VHDX_HEADER_SIZE);
	memcpy(raw + VHDX_CHECKSUM_AT, saved, 4);
	if (computed != stored) {
		snprintf(why, cap, "wrong checksum (stored 0x%08x, computed 0x%08x)", stored,
			 computed);
		return false;
	}
	return true;
}

static int read_headers(struct vhdx *vhdx, struct error *err)
{
	uint8_t raw[2][VHDX_HEADER_SIZE];
	struct vhdx_header h[2];
	char why[2][128];
	bool valid[2];
	int rc, cur;

	for (int i = 0; i < 2; i++) {
		rc = vhdx_pread(vhdx, raw[i], VHDX_HEADER_SIZE, VHDX_HEADER_AT(i), err);
		if (rc < 0)
			return rc;
		valid[i] = header_valid(raw[i], why[i], sizeof(why[i]));
		header_decode(raw[i], &h[i]);
	}
	if (!valid[0] && !valid[1])
		return error_set(
			err, EINVAL,
			"neither header of '%s' is valid: header 1 has %s, header 2 has %s",
			vhdx->io.path, why[0], why[1]);
	if (valid[0] && valid[1]) {
		if (h[0].sequence_number == h[1].sequence_number &&
		    memcmp(raw[0], raw[1], VHDX_HEADER_SIZE) != 0)
			return error_set(
				err, EINVAL,
				"both headers of '%s' have sequence number %llu but differ: "
				"none is current",
				vhdx->io.path, (unsigned long long)h[0].sequence_number);
		cur = h[1].sequence_number > h[0].sequence_number ? 1 : 0;
	} else {
		cur = valid[0] ? 0 : 1;
	}
	vhdx->header = h[cur];
	vhdx->header_index = cur + 1;
	return 0;
}

/* The current header's version and log place. */
static int check_header(struct vhdx *vhdx, struct error *err)
{
	const struct vhdx_header *h = &vhdx->header;
	bool dirty = !vhd_id_is_zero(h->log_guid);

	if (h->version != 1)
		return error_set(err, EINVAL,
				 "'%s' has VHDX version %u (header %d); impexfs reads version 1",
				 vhdx->io.path, h->version, vhdx->header_index);
	if (dirty && h->log_version != 0)
		return error_set(err, EINVAL,
				 "the log of '%s' has version %u (header %d); impexfs replays log "
				 "version 0",
				 vhdx->io.path, h->log_version, vhdx->header_index);
	if (h->log_length % VHDX_MIB || h->log_offset % VHDX_MIB)
		return error_set(err, EINVAL,
				 "the log of '%s' (offset %llu, %u bytes) is not aligned to 1 MiB",
				 vhdx->io.path, (unsigned long long)h->log_offset, h->log_length);
	if (dirty && h->log_length == 0)
		return error_set(err, EINVAL, "the log of '%s' must be replayed but is empty",
				 vhdx->io.path);
	if (h->log_length == 0)
		return 0;
	if (h->log_offset < VHDX_HEADER_AREA)
		return error_set(err, EINVAL,
				 "the log of '%s' (offset %llu) lies in the header section",
				 vhdx->io.path, (unsigned long long)h->log_offset);
	if (h->log_offset > vhdx->io.size || h->log_length > vhdx->io.size - h->log_offset)
		return error_set(err, EINVAL,
				 "the log of '%s' (offset %llu, %u bytes) runs past the end of the "
				 "file (%llu bytes)",
				 vhdx->io.path, (unsigned long long)h->log_offset, h->log_length,
				 (unsigned long long)vhdx->io.size);
	return 0;
}

static int replay_log(struct vhdx *vhdx, struct error *err)
{
	struct vhdx_log_params p;
	int rc;

	if (vhd_id_is_zero(vhdx->header.log_guid))
		return 0;
	memset(&p, 0, sizeof(p));
	p.fd = vhdx->io.fd;
	p.path = vhdx->io.path;
	p.file_size = vhdx->io.size;
	p.log_offset = vhdx->header.log_offset;
	p.log_length = vhdx->header.log_length;
	memcpy(p.log_guid, vhdx->header.log_guid, 16);
	rc = vhdx_log_replay(&p, &vhdx->overlay, &vhdx->log_info, err);
	if (rc < 0)
		return rc;
	vhdx->data_end = vhdx_overlay_file_size(vhdx->overlay);
	if (vhdx->data_end > VHDX_MAX_FILE_SIZE)
		return error_set(
			err, EINVAL,
			"the log of '%s' makes the file %llu bytes, more than any VHDX needs",
			vhdx->io.path, (unsigned long long)vhdx->data_end);
	return 0;
}

/* ---- region tables ---- */

/* Whether region table @raw is valid as a whole (signature, CRC-32C, entry count). */
static bool region_table_valid(uint8_t *raw, char *why, size_t cap)
{
	uint32_t stored = le32_load(raw + VHDX_CHECKSUM_AT), computed, count = le32_load(raw + 8);

	if (memcmp(raw, "regi", 4) != 0) {
		snprintf(why, cap, "no 'regi' signature");
		return false;
	}
	memset(raw + VHDX_CHECKSUM_AT, 0, 4);
	computed = crc32c(0, raw, VHDX_REGION_SIZE);
	if (computed != stored) {
		snprintf(why, cap, "wrong checksum (stored 0x%08x, computed 0x%08x)", stored,
			 computed);
		return false;
	}
	if (count > REGION_MAX_ENTRIES) {
		snprintf(why, cap, "%u entries, more than the 2047 allowed", count);
		return false;
	}
	return true;
}

static int read_regions(struct vhdx *vhdx, struct error *err)
{
	uint8_t *raw[2] = {NULL, NULL};
	uint8_t bat_guid[16], metadata_guid[16];
	char why[2][128], name[39];
	bool valid[2];
	const uint8_t *table;
	int rc = 0, use;
	bool have_bat = false, have_metadata = false;

	vhdx_guid_constant(VHDX_GUID_BAT, bat_guid);
	vhdx_guid_constant(VHDX_GUID_METADATA, metadata_guid);
	for (int i = 0; i < 2; i++) {
		raw[i] = malloc(VHDX_REGION_SIZE);
		if (!raw[i]) {
			rc = error_set(err, ENOMEM, "out of memory");
			goto out;
		}
		rc = vhdx_pread(vhdx, raw[i], VHDX_REGION_SIZE, VHDX_REGION_AT(i), err);
		if (rc < 0)
			goto out;
		valid[i] = region_table_valid(raw[i], why[i], sizeof(why[i]));
	}
	if (!valid[0] && !valid[1]) {
		rc = error_set(err, EINVAL,
			       "neither region table of '%s' is valid: table 1 has %s, table 2 "
			       "has %s",
			       vhdx->io.path, why[0], why[1]);
		goto out;
	}
	use = valid[0] ? 0 : 1;
	table = raw[use];
	vhdx->region_count = le32_load(table + 8);
	vhdx->regions = calloc(vhdx->region_count ? vhdx->region_count : 1, sizeof(*vhdx->regions));
	if (!vhdx->regions) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < vhdx->region_count; i++) {
		const uint8_t *e = table + 16 + (size_t)i * REGION_ENTRY_SIZE;
		struct region *r = &vhdx->regions[i];

		memcpy(r->guid, e, 16);
		r->offset = le64_load(e + 16);
		r->length = le32_load(e + 24);
		r->required = le32_load(e + 28) & 1;
		vhdx_guid_format(r->guid, name);
		for (uint32_t j = 0; j < i; j++)
			if (memcmp(vhdx->regions[j].guid, r->guid, 16) == 0) {
				rc = error_set(err, EINVAL,
					       "region table %d of '%s' lists region %s twice",
					       use + 1, vhdx->io.path, name);
				goto out;
			}
		if (r->offset % VHDX_MIB || r->offset < VHDX_HEADER_AREA || r->length % VHDX_MIB) {
			rc = error_set(err, EINVAL,
				       "region %s of '%s' (offset %llu, %u bytes) is not whole MiB "
				       "after the header section",
				       name, vhdx->io.path, (unsigned long long)r->offset, r->length);
			goto out;
		}
		if (r->offset > vhdx->data_end || r->length > vhdx->data_end - r->offset) {
			rc = error_set(
				err, EINVAL,
				"region %s of '%s' (offset %llu, %u bytes) runs past the end "
				"of the file (%llu bytes)",
				name, vhdx->io.path, (unsigned long long)r->offset, r->length,
				(unsigned long long)vhdx->data_end);
			goto out;
		}
		if (vhd_ranges_overlap(r->offset, r->length, vhdx->header.log_offset,
				   vhdx->header.log_length)) {
			rc = error_set(err, EINVAL, "region %s of '%s' overlaps the log", name,
				       vhdx->io.path);
			goto out;
		}
		for (uint32_t j = 0; j < i; j++) {
			char other[39];

			if (!vhd_ranges_overlap(r->offset, r->length, vhdx->regions[j].offset,
					    vhdx->regions[j].length))
				continue;
			vhdx_guid_format(vhdx->regions[j].guid, other);
			rc = error_set(err, EINVAL, "regions %s and %s of '%s' overlap", other,
				       name, vhdx->io.path);
			goto out;
		}
		if (memcmp(r->guid, bat_guid, 16) == 0) {
			vhdx->bat_offset = r->offset;
			vhdx->bat_length = r->length;
			have_bat = true;
		} else if (memcmp(r->guid, metadata_guid, 16) == 0) {
			vhdx->metadata_offset = r->offset;
			vhdx->metadata_length = r->length;
			have_metadata = true;
		} else if (r->required) {
			rc = error_set(err, EINVAL,
				       "'%s' has a required region %s that impexfs does not know",
				       vhdx->io.path, name);
			goto out;
		}
	}
	if (!have_bat || vhdx->bat_length == 0)
		rc = error_set(err, EINVAL, "'%s' has no BAT region", vhdx->io.path);
	else if (!have_metadata || vhdx->metadata_length < VHDX_METADATA_TABLE_SIZE)
		rc = error_set(err, EINVAL, "'%s' has no metadata region (or one under 64 KiB)",
			       vhdx->io.path);
out:
	free(raw[0]);
	free(raw[1]);
	return rc;
}

/* ---- metadata ---- */

struct item_place {
	bool present;
	uint32_t offset; /* within the metadata region */
	uint32_t length;
};

static int read_item(struct vhdx *vhdx, const struct item_place *place, enum item which,
		     uint8_t *buf, struct error *err)
{
	if (place->length < items[which].min_length)
		return error_set(err, EINVAL,
				 "the %s metadata item of '%s' is %u bytes, too short (%u needed)",
				 items[which].name, vhdx->io.path, place->length,
				 items[which].min_length);
	return vhdx_pread(vhdx, buf, items[which].min_length, vhdx->metadata_offset + place->offset,
			  err);
}

static bool has_nul_unit(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		if (p[i] == 0 && p[i + 1] == 0)
			return true;
	return false;
}

/* Decode one key or value of the locator (@what: "key" or "value" of entry @i). */
static int locator_string(struct vhdx *vhdx, const uint8_t *item, uint32_t item_len,
			  uint32_t offset, uint16_t length, size_t i, const char *what, char **out,
			  struct error *err)
{
	size_t n;
	int rc;

	if (offset == 0 || length == 0 || length % 2 || offset > item_len ||
	    length > item_len - offset)
		return error_set(err, EINVAL,
				 "the %s of parent locator entry %zu of '%s' (offset %u, %u bytes) "
				 "lies outside the locator (%u bytes) or is empty or odd",
				 what, i, vhdx->io.path, offset, length, item_len);
	if (has_nul_unit(item + offset, length))
		return error_set(err, EINVAL,
				 "the %s of parent locator entry %zu of '%s' holds a NUL character",
				 what, i, vhdx->io.path);
	rc = utf16_decode_alloc(item + offset, length, UTF16_LE, out, &n, err);
	if (rc < 0)
		return error_prefix(err, "the %s of parent locator entry %zu of '%s'", what, i,
				    vhdx->io.path);
	return 0;
}

static int read_locator(struct vhdx *vhdx, const struct item_place *place, struct error *err)
{
	uint8_t type[16], *item = NULL;
	uint32_t len = place->length;
	uint16_t count;
	int rc;
	bool has_path = false;

	if (len < LOCATOR_HEADER_SIZE)
		return error_set(err, EINVAL, "the parent locator of '%s' is %u bytes, too short",
				 vhdx->io.path, len);
	item = malloc(len);
	if (!item)
		return error_set(err, ENOMEM, "out of memory");
	rc = vhdx_pread(vhdx, item, len, vhdx->metadata_offset + place->offset, err);
	if (rc < 0)
		goto out;
	vhdx_guid_constant(VHDX_GUID_LOCATOR_VHDX, type);
	if (memcmp(item, type, 16) != 0) {
		char name[39];

		vhdx_guid_format(item, name);
		rc = error_set(err, EINVAL,
			       "the parent locator of '%s' is of type %s, not a VHDX locator",
			       vhdx->io.path, name);
		goto out;
	}
	count = le16_load(item + 18);
	if (count > VHDX_MAX_LOCATOR_ENTRIES ||
	    LOCATOR_HEADER_SIZE + (uint32_t)count * LOCATOR_ENTRY_SIZE > len) {
		rc = error_set(err, EINVAL,
			       "the parent locator of '%s' declares %u entries, more than its %u "
			       "bytes hold (or than %u)",
			       vhdx->io.path, count, len, VHDX_MAX_LOCATOR_ENTRIES);
		goto out;
	}
	vhdx->locator = calloc(count ? count : 1, sizeof(*vhdx->locator));
	if (!vhdx->locator) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		const uint8_t *e = item + LOCATOR_HEADER_SIZE + i * LOCATOR_ENTRY_SIZE;
		char *key = NULL, *value = NULL;

		rc = locator_string(vhdx, item, len, le32_load(e), le16_load(e + 8), i, "key", &key, err);
		if (rc == 0)
			rc = locator_string(vhdx, item, len, le32_load(e + 4), le16_load(e + 10), i, "value",
					    &value, err);
		if (rc < 0) {
			free(key);
			goto out;
		}
		vhdx->locator[i].key = key;
		vhdx->locator[i].value = value;
		vhdx->locator_count = i + 1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(vhdx->locator[j].key, key) == 0) {
				rc = error_set(err, EINVAL,
					       "the parent locator of '%s' has key '%s' twice",
					       vhdx->io.path, key);
				goto out;
			}
	}
	for (size_t i = 0; i < vhdx->locator_count; i++) {
		const struct vhdx_locator_entry *l = &vhdx->locator[i];
		uint8_t guid[16];

		if (strcmp(l->key, VHDX_KEY_PARENT_LINKAGE) == 0 ||
		    strcmp(l->key, VHDX_KEY_PARENT_LINKAGE2) == 0) {
			if (vhdx_guid_parse(l->value, guid) < 0) {
				rc = error_set(err, EINVAL,
					       "the parent locator of '%s' has %s '%s', not a GUID "
					       "in braces",
					       vhdx->io.path, l->key, l->value);
				goto out;
			}
		} else if (strcmp(l->key, VHDX_KEY_RELATIVE_PATH) == 0 ||
			   strcmp(l->key, VHDX_KEY_VOLUME_PATH) == 0 ||
			   strcmp(l->key, VHDX_KEY_ABSOLUTE_WIN32_PATH) == 0) {
			has_path = true;
		}
	}
	if (!vhdx_locator_get(vhdx, VHDX_KEY_PARENT_LINKAGE))
		rc = error_set(err, EINVAL, "the parent locator of '%s' has no parent_linkage",
			       vhdx->io.path);
	else if (!has_path)
		rc = error_set(err, EINVAL,
			       "the parent locator of '%s' has no relative_path, volume_path or "
			       "absolute_win32_path",
			       vhdx->io.path);
out:
	free(item);
	return rc;
}

static int read_metadata(struct vhdx *vhdx, struct error *err)
{
	struct item_place place[ITEM_COUNT];
	uint8_t known[ITEM_COUNT][16], buf[16];
	uint8_t *table;
	uint16_t count;
	int rc = 0;

	memset(place, 0, sizeof(place));
	for (int k = 0; k < ITEM_COUNT; k++)
		vhdx_guid_constant(items[k].guid, known[k]);
	table = malloc(VHDX_METADATA_TABLE_SIZE);
	if (!table)
		return error_set(err, ENOMEM, "out of memory");
	rc = vhdx_pread(vhdx, table, VHDX_METADATA_TABLE_SIZE, vhdx->metadata_offset, err);
	if (rc < 0)
		goto out;
	if (memcmp(table, "metadata", 8) != 0) {
		rc = error_set(err, EINVAL,
			       "the metadata region of '%s' has no 'metadata' signature",
			       vhdx->io.path);
		goto out;
	}
	count = le16_load(table + 10);
	if (count > METADATA_MAX_ENTRIES) {
		rc = error_set(err, EINVAL,
			       "the metadata table of '%s' declares %u entries, more than the 2047 "
			       "allowed",
			       vhdx->io.path, count);
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = table + 32 + (size_t)i * METADATA_ENTRY_SIZE;
		uint32_t offset = le32_load(e + 16), length = le32_load(e + 20), flags = le32_load(e + 24);
		char name[39];
		int which = -1;

		vhdx_guid_format(e, name);
		for (uint32_t j = 0; j < i; j++) {
			const uint8_t *o = table + 32 + (size_t)j * METADATA_ENTRY_SIZE;

			if (memcmp(o, e, 16) == 0 &&
			    ((le32_load(o + 24) ^ flags) & VHDX_METADATA_IS_USER) == 0) {
				rc = error_set(err, EINVAL,
					       "the metadata table of '%s' lists item %s twice",
					       vhdx->io.path, name);
				goto out;
			}
			if (length && le32_load(o + 20) &&
			    vhd_ranges_overlap(offset, length, le32_load(o + 16), le32_load(o + 20))) {
				rc = error_set(err, EINVAL,
					       "metadata items %u and %u of '%s' overlap", j, i,
					       vhdx->io.path);
				goto out;
			}
		}
		if (length > METADATA_MAX_ITEM) {
			rc = error_set(err, EINVAL,
				       "metadata item %s of '%s' is %u bytes, more than 1 MiB",
				       name, vhdx->io.path, length);
			goto out;
		}
		if (length == 0 && offset != 0) {
			rc = error_set(err, EINVAL,
				       "metadata item %s of '%s' is empty but has offset %u", name,
				       vhdx->io.path, offset);
			goto out;
		}
		if (length && (offset < VHDX_METADATA_TABLE_SIZE || offset > vhdx->metadata_length ||
			       length > vhdx->metadata_length - offset)) {
			rc = error_set(
				err, EINVAL,
				"metadata item %s of '%s' (offset %u, %u bytes) lies outside "
				"the metadata region (%u bytes) or over its table",
				name, vhdx->io.path, offset, length, vhdx->metadata_length);
			goto out;
		}
		if (!(flags & VHDX_METADATA_IS_USER))
			for (int k = 0; k < ITEM_COUNT; k++)
				if (memcmp(e, known[k], 16) == 0)
					which = k;
		if (which < 0) {
			if (flags & VHDX_METADATA_IS_REQUIRED) {
				rc = error_set(err, EINVAL,
					       "'%s' has a required metadata item %s that impexfs "
					       "does not know",
					       vhdx->io.path, name);
				goto out;
			}
			continue;
		}
		place[which] = (struct item_place){true, offset, length};
	}
	for (int k = 0; k < ITEM_COUNT; k++)
		if (k != ITEM_LOCATOR && !place[k].present) {
			rc = error_set(err, EINVAL, "'%s' has no %s metadata item", vhdx->io.path,
				       items[k].name);
			goto out;
		}
	rc = read_item(vhdx, &place[ITEM_FILE_PARAMS], ITEM_FILE_PARAMS, buf, err);
	if (rc < 0)
		goto out;
	vhdx->block_size = le32_load(buf);
	vhdx->leave_allocated = le32_load(buf + 4) & FILE_PARAM_LEAVE_ALLOC;
	vhdx->has_parent = le32_load(buf + 4) & FILE_PARAM_HAS_PARENT;
	rc = read_item(vhdx, &place[ITEM_DISK_SIZE], ITEM_DISK_SIZE, buf, err);
	if (rc < 0)
		goto out;
	vhdx->size = le64_load(buf);
	rc = read_item(vhdx, &place[ITEM_DISK_ID], ITEM_DISK_ID, vhdx->disk_id, err);
	if (rc == 0)
		rc = read_item(vhdx, &place[ITEM_LOGICAL], ITEM_LOGICAL, buf, err);
	if (rc < 0)
		goto out;
	vhdx->logical = le32_load(buf);
	rc = read_item(vhdx, &place[ITEM_PHYSICAL], ITEM_PHYSICAL, buf, err);
	if (rc < 0)
		goto out;
	vhdx->physical = le32_load(buf);

	if (!vhd_is_power_of_two(vhdx->block_size) || vhdx->block_size < VHDX_MIN_BLOCK ||
	    vhdx->block_size > VHDX_MAX_BLOCK) {
		rc = error_set(err, EINVAL,
			       "'%s' has a block size of %u bytes; want a power of two from 1 MiB "
			       "to 256 MiB",
			       vhdx->io.path, vhdx->block_size);
		goto out;
	}
	if (vhdx->logical != 512 && vhdx->logical != 4096) {
		rc = error_set(err, EINVAL,
			       "'%s' has a logical sector size of %u bytes; want 512 or 4096",
			       vhdx->io.path, vhdx->logical);
		goto out;
	}
	if (vhdx->physical != 512 && vhdx->physical != 4096) {
		rc = error_set(err, EINVAL,
			       "'%s' has a physical sector size of %u bytes; want 512 or 4096",
			       vhdx->io.path, vhdx->physical);
		goto out;
	}
	if (vhdx->size == 0 || vhdx->size % vhdx->logical || vhdx->size > VHDX_MAX_SIZE) {
		rc = error_set(err, EINVAL,
			       "'%s' has a disk size of %llu bytes; want whole %u-byte sectors, "
			       "at most 64 TiB",
			       vhdx->io.path, (unsigned long long)vhdx->size, vhdx->logical);
		goto out;
	}
	if (vhdx->has_parent && !place[ITEM_LOCATOR].present) {
		rc = error_set(err, EINVAL, "'%s' has a parent (HasParent) but no parent locator",
			       vhdx->io.path);
		goto out;
	}
	if (!vhdx->has_parent && place[ITEM_LOCATOR].present) {
		rc = error_set(err, EINVAL,
			       "'%s' has a parent locator but no parent (HasParent is clear)",
			       vhdx->io.path);
		goto out;
	}
	if (vhdx->has_parent) {
		rc = read_locator(vhdx, &place[ITEM_LOCATOR], err);
		vhdx->locator_offset = place[ITEM_LOCATOR].offset;
		vhdx->locator_length = place[ITEM_LOCATOR].length;
	}
out:
	free(table);
	return rc;
}

/* ---- the BAT ---- */

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
		return error_set(err, EINVAL,
				 "the BAT entry %llu of '%s' has reserved bits set (0x%016llx)",
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

static int check_bat(struct vhdx *vhdx, struct error *err)
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
		rc = error_set(err, ENOMEM, "out of memory to check the BAT of '%s'", vhdx->io.path);
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

static int init_caches(struct vhdx *vhdx, struct error *err)
{
	uint64_t pages = (vhdx->bat_entries + BAT_PAGE_ENTRIES - 1) / BAT_PAGE_ENTRIES;

	if (vhd_cache_init(&vhdx->pages, VHDX_BAT_CACHE_BYTES, BAT_PAGE_ENTRIES * 8, pages) < 0)
		return error_set(err, ENOMEM, "out of memory for the BAT of '%s'", vhdx->io.path);
	vhdx->bitmap_bytes = vhdx->sectors_per_block / 8;
	if (vhd_cache_init(&vhdx->bitmaps, VHDX_BITMAP_CACHE_BYTES, vhdx->bitmap_bytes,
			   vhdx->has_parent ? vhdx->block_count : 0) < 0)
		return error_set(err, ENOMEM, "out of memory for the bitmaps of '%s'", vhdx->io.path);
	return 0;
}

/* ---- opening ---- */

int vhdx_open(struct vhdx **out, const char *path, int flags, struct error *err)
{
	struct vhdx *vhdx;
	uint8_t id[8];
	int rc;

	*out = NULL;
	if (flags & ~VHDX_OPEN_WRITE)
		return error_set(err, EINVAL, "cannot open '%s': unknown flags 0x%x", path, flags);
	vhdx = calloc(1, sizeof(*vhdx));
	if (!vhdx)
		return error_set(err, ENOMEM, "out of memory");
	vhdx->io.fd = -1;
	rc = vhd_io_open(&vhdx->io, path, flags & VHDX_OPEN_WRITE, !(flags & VHDX_OPEN_WRITE), err);
	if (rc < 0)
		goto fail;
	vhdx->data_end = vhdx->io.size;
	if (vhdx->io.size < 8 || vhdx_pread(vhdx, id, sizeof(id), 0, NULL) < 0 ||
	    memcmp(id, FILE_ID_SIGNATURE, 8) != 0) {
		rc = error_set(err, EINVAL, "'%s' is not a VHDX file (no '%s' signature)", path,
			       FILE_ID_SIGNATURE);
		goto fail;
	}
	if (vhdx->io.size < VHDX_HEADER_AREA) {
		rc = error_set(err, EINVAL,
			       "'%s' is %llu bytes, shorter than the 1 MiB header section of a "
			       "VHDX (truncated?)",
			       path, (unsigned long long)vhdx->io.size);
		goto fail;
	}
	if (vhdx->io.size > VHDX_MAX_FILE_SIZE) {
		rc = error_set(err, EINVAL, "'%s' is %llu bytes, more than any VHDX needs", path,
			       (unsigned long long)vhdx->io.size);
		goto fail;
	}
	rc = read_headers(vhdx, err);
	if (rc == 0)
		rc = check_header(vhdx, err);
	if (rc == 0)
		rc = replay_log(vhdx, err);
	if (rc == 0)
		rc = read_regions(vhdx, err);
	if (rc == 0)
		rc = read_metadata(vhdx, err);
	if (rc == 0)
		rc = check_bat(vhdx, err);
	if (rc == 0)
		rc = init_caches(vhdx, err);
	if (rc == 0 && vhdx->io.writable)
		rc = vhdx_write_prepare(vhdx, err);
	if (rc < 0)
		goto fail;
	*out = vhdx;
	return 0;
fail:
	vhdx_close(vhdx);
	return rc;
}

void vhdx_close(struct vhdx *vhdx)
{
	if (!vhdx)
		return;
	if (vhdx->io.writable)
		vhdx_write_release(vhdx);
	vhd_io_close(&vhdx->io);
	for (size_t i = 0; i < vhdx->locator_count; i++) {
		free((char *)vhdx->locator[i].key);
		free((char *)vhdx->locator[i].value);
	}
	free(vhdx->locator);
	free(vhdx->regions);
	vhdx_overlay_free(vhdx->overlay);
	vhd_cache_release(&vhdx->pages);
	vhd_cache_release(&vhdx->bitmaps);
	free(vhdx);
}

/* ---- getters ---- */

const char *vhdx_path(const struct vhdx *vhdx)
{
	return vhdx->io.path;
}

int vhdx_fd(const struct vhdx *vhdx)
{
	return vhdx->io.fd;
}

enum vhd_type vhdx_disk_type(const struct vhdx *vhdx)
{
	if (vhdx->has_parent)
		return VHD_TYPE_DIFFERENCING;
	return vhdx->leave_allocated ? VHD_TYPE_FIXED : VHD_TYPE_DYNAMIC;
}

uint64_t vhdx_size(const struct vhdx *vhdx)
{
	return vhdx->size;
}

uint32_t vhdx_logical_sector_size(const struct vhdx *vhdx)
{
	return vhdx->logical;
}

uint32_t vhdx_physical_sector_size(const struct vhdx *vhdx)
{
	return vhdx->physical;
}

uint32_t vhdx_block_size(const struct vhdx *vhdx)
{
	return vhdx->block_size;
}

uint64_t vhdx_block_count(const struct vhdx *vhdx)
{
	return vhdx->block_count;
}

uint32_t vhdx_chunk_ratio(const struct vhdx *vhdx)
{
	return vhdx->chunk_ratio;
}

bool vhdx_has_parent(const struct vhdx *vhdx)
{
	return vhdx->has_parent;
}

bool vhdx_leave_allocated(const struct vhdx *vhdx)
{
	return vhdx->leave_allocated;
}

const uint8_t *vhdx_disk_id(const struct vhdx *vhdx)
{
	return vhdx->disk_id;
}

const struct vhdx_header *vhdx_current_header(const struct vhdx *vhdx)
{
	return &vhdx->header;
}

int vhdx_current_header_index(const struct vhdx *vhdx)
{
	return vhdx->header_index;
}

const uint8_t *vhdx_data_write_guid(const struct vhdx *vhdx)
{
	return vhdx->header.data_write_guid;
}

const uint8_t *vhdx_file_write_guid(const struct vhdx *vhdx)
{
	return vhdx->header.file_write_guid;
}

const uint8_t *vhdx_log_guid(const struct vhdx *vhdx)
{
	return vhdx->header.log_guid;
}

bool vhdx_log_replayed(const struct vhdx *vhdx, uint64_t *head_sequence)
{
	if (head_sequence)
		*head_sequence = vhdx->overlay ? vhdx->log_info.head_sequence : 0;
	return vhdx->overlay != NULL;
}

uint64_t vhdx_file_size(const struct vhdx *vhdx)
{
	return vhdx->io.size;
}

uint64_t vhdx_replayed_file_size(const struct vhdx *vhdx)
{
	return vhdx->data_end;
}

void vhdx_metadata_region(const struct vhdx *vhdx, uint64_t *offset, uint32_t *length)
{
	*offset = vhdx->metadata_offset;
	*length = vhdx->metadata_length;
}

struct timespec vhdx_file_mtime(const struct vhdx *vhdx)
{
	return vhdx->io.st.st_mtim;
}

void vhdx_file_id(const struct vhdx *vhdx, dev_t *dev, ino_t *ino)
{
	*dev = vhdx->io.st.st_dev;
	*ino = vhdx->io.st.st_ino;
}

size_t vhdx_locator_count(const struct vhdx *vhdx)
{
	return vhdx->locator_count;
}

const struct vhdx_locator_entry *vhdx_locator_entry(const struct vhdx *vhdx, size_t index)
{
	return index < vhdx->locator_count ? &vhdx->locator[index] : NULL;
}

bool vhdx_locator_place(const struct vhdx *vhdx, uint32_t *offset, uint32_t *length)
{
	*offset = vhdx->locator_offset;
	*length = vhdx->locator_length;
	return vhdx->has_parent;
}

const char *vhdx_locator_get(const struct vhdx *vhdx, const char *key)
{
	for (size_t i = 0; i < vhdx->locator_count; i++)
		if (strcmp(vhdx->locator[i].key, key) == 0)
			return vhdx->locator[i].value;
	return NULL;
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
	int rc = vhdx_bat_get(vhdx, vhdx_bitmap_entry(vhdx, block / vhdx->chunk_ratio), &entry, err);

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
			uint64_t next_offset = (next >> VHDX_BAT_OFFSET_SHIFT) << VHDX_BAT_OFFSET_SHIFT;

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
