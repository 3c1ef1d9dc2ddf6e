/*
 * vhdx_headers.c - the header section of a VHDX ([MS-VHDX] 2.2): the two
 * headers (encoded, decoded, checked; the current one chosen), the log
 * replayed in memory when the current header names one (vhdx_log.h), and
 * the two region tables (the BAT and the metadata region found).
 */
#include "vhdx.h"
#include "vhdx_internal.h"

#include "bigendian.h"
#include "crc32c.h"
#include "error.h"
#include "vhdx_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- headers ---- */

/* A header's fields ([MS-VHDX] 2.2.2), little-endian, but for its checksum at 4. */
#define HEADER_INT(at, m)   VHD_FIELD_INT(at, struct vhdx_header, m)
#define HEADER_BYTES(at, m) VHD_FIELD_BYTES(at, struct vhdx_header, m)
static const struct vhd_field header_fields[] = {
	HEADER_INT(8, sequence_number),	   HEADER_BYTES(16, file_write_guid),
	HEADER_BYTES(32, data_write_guid), HEADER_BYTES(48, log_guid),
	HEADER_INT(64, log_version),	   HEADER_INT(66, version),
	HEADER_INT(68, log_length),	   HEADER_INT(72, log_offset),
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

static void header_decode(const uint8_t *raw, struct vhdx_header *h)
{
	h->checksum = le32_load(raw + VHDX_CHECKSUM_AT);
	vhd_fields_decode(header_fields, sizeof(header_fields) / sizeof(header_fields[0]), true,
			  raw, h);
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
				       name, vhdx->io.path, (unsigned long long)r->offset,
				       r->length);
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

int vhdx_header_section_read(struct vhdx *vhdx, struct error *err)
{
	int rc = read_headers(vhdx, err);

	if (rc == 0)
		rc = check_header(vhdx, err);
	if (rc == 0)
		rc = replay_log(vhdx, err);
	if (rc == 0)
		rc = read_regions(vhdx, err);
	return rc;
}
