/*
 * fuzz_vhd - one VHD file: vhd_open on the input, then, if it opens, a walk
 * of the whole disk with vhd_map, reads at the start, the end and a place
 * the input picks, the parent name and every parent locator.
 *
 * Checked beyond "no crash": a failed open fills the error context; every
 * extent is non-empty, inside the disk, of a kind the disk type allows, and
 * a stored extent lies inside the file before the trailing footer; a read in
 * one call equals the same range read a sector at a time; reads outside the
 * disk are refused.
 */
#include "error.h"
#include "fuzzsupport.h"
#include "vhd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bounds that keep one input fast whatever sizes it claims. */
#define MAX_EXTENTS	 4096
#define MAX_READ_SECTORS 128
#define MAX_CHECK_BLOCKS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_extents(struct vhd *vhd)
{
	uint64_t total = vhd_size(vhd) / VHD_SECTOR_SIZE, sector = 0;
	uint64_t data_end = vhd_file_size(vhd) - VHD_FOOTER_SIZE;
	enum vhd_type type = vhd_disk_type(vhd);
	struct vhd_extent ext;
	struct error err;

	for (unsigned n = 0; n < MAX_EXTENTS && sector < total; n++) {
		error_clear(&err);
		if (vhd_map(vhd, sector, total - sector, &ext, &err) < 0)
			return; /* a read error of the bitmap: the file is what it is */
		FUZZ_CHECK(ext.sectors >= 1 && ext.sectors <= total - sector);
		if (ext.kind == VHD_EXTENT_DATA) {
			FUZZ_CHECK(ext.file_offset % VHD_SECTOR_SIZE == 0);
			FUZZ_CHECK(ext.file_offset <= data_end &&
				   ext.sectors <= (data_end - ext.file_offset) / VHD_SECTOR_SIZE);
		} else if (ext.kind == VHD_EXTENT_PARENT) {
			FUZZ_CHECK(type == VHD_TYPE_DIFFERENCING);
		} else {
			FUZZ_CHECK(ext.kind == VHD_EXTENT_ZERO && type != VHD_TYPE_DIFFERENCING &&
				   type != VHD_TYPE_FIXED);
		}
		sector += ext.sectors;
	}
	error_clear(&err);
	FUZZ_CHECK(vhd_map(vhd, total, 1, &ext, &err) == -EINVAL);
}

/* Read @sectors at @sector in one call and one sector at a time: the same bytes. */
static void check_read(struct vhd *vhd, uint64_t sector, uint64_t sectors, uint8_t *whole,
		       uint8_t *piece)
{
	struct error err;
	int rc;

	error_clear(&err);
	rc = vhd_read(vhd, whole, sectors * VHD_SECTOR_SIZE, sector * VHD_SECTOR_SIZE, &err);
	if (rc < 0)
		return;
	for (uint64_t i = 0; i < sectors; i++) {
		error_clear(&err);
		rc = vhd_read(vhd, piece, VHD_SECTOR_SIZE, (sector + i) * VHD_SECTOR_SIZE, &err);
		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(memcmp(piece, whole + i * VHD_SECTOR_SIZE, VHD_SECTOR_SIZE) == 0);
	}
}

static void check_reads(struct vhd *vhd, const uint8_t *data, size_t size)
{
	static uint8_t whole[MAX_READ_SECTORS * VHD_SECTOR_SIZE], piece[VHD_SECTOR_SIZE];
	uint64_t total = vhd_size(vhd) / VHD_SECTOR_SIZE;
	uint64_t count = total < MAX_READ_SECTORS ? total : MAX_READ_SECTORS;
	/* The first bytes of a dynamic file are the footer copy, which vhd_open
	 * never reads: a free place to choose a range. */
	uint64_t pick = fuzz_load(data, size, 8) % total;
	uint64_t pick_len = 1 + fuzz_load(data + 8, size > 8 ? size - 8 : 0, 1) % MAX_READ_SECTORS;
	struct error err;

	check_read(vhd, 0, count, whole, piece);
	check_read(vhd, total - count, count, whole, piece);
	if (pick_len > total - pick)
		pick_len = total - pick;
	check_read(vhd, pick, pick_len, whole, piece);

	error_clear(&err);
	FUZZ_CHECK(vhd_read(vhd, whole, VHD_SECTOR_SIZE, total * VHD_SECTOR_SIZE, &err) == -EINVAL);
	error_clear(&err);
	FUZZ_CHECK(vhd_read(vhd, whole, 2 * VHD_SECTOR_SIZE, (total - 1) * VHD_SECTOR_SIZE, &err) ==
		   -EINVAL);
	error_clear(&err);
	FUZZ_CHECK(vhd_read(vhd, whole, VHD_SECTOR_SIZE, 1, &err) == -EINVAL);
}

static void check_names(struct vhd *vhd)
{
	char out[FUZZ_PATH_MAX], small[8];
	struct error err;
	int rc;

	error_clear(&err);
	rc = vhd_parent_name(vhd, out, sizeof(out), &err);
	FUZZ_CHECK(rc == 0 ? strlen(out) < sizeof(out) : err.code == -rc);
	error_clear(&err);
	rc = vhd_parent_name(vhd, small, sizeof(small), &err);
	FUZZ_CHECK(rc == 0 ? strlen(small) < sizeof(small) : err.code == -rc);

	for (int i = -1; i <= VHD_LOCATOR_COUNT; i++) {
		error_clear(&err);
		rc = vhd_locator_path(vhd, i, out, sizeof(out), &err);
		if (i < 0 || i == VHD_LOCATOR_COUNT)
			FUZZ_CHECK(rc == -ENOENT);
		if (rc == 0)
			FUZZ_CHECK(out[0] != '\0' && strlen(out) < sizeof(out));
		error_clear(&err);
		rc = vhd_locator_path(vhd, i, small, sizeof(small), &err);
		if (rc == 0)
			FUZZ_CHECK(small[0] != '\0' && strlen(small) < sizeof(small));
	}
}

static void check_getters(struct vhd *vhd)
{
	const struct vhd_footer *f = vhd_footer(vhd);
	const struct vhd_header *h = vhd_header(vhd);
	uint32_t blocks = vhd_block_count(vhd), allocated = 0;
	char uuid[37], code[5];

	vhd_uuid_format(f->uuid, uuid);
	FUZZ_CHECK(strlen(uuid) == 36);
	FUZZ_CHECK(vhd_size(vhd) == f->current_size && vhd_size(vhd) % VHD_SECTOR_SIZE == 0);
	FUZZ_CHECK(strcmp(vhd_type_name(vhd_disk_type(vhd)), "unknown") != 0);
	if (!h) {
		FUZZ_CHECK(vhd_disk_type(vhd) == VHD_TYPE_FIXED && blocks == 0);
		return;
	}
	FUZZ_CHECK((uint64_t)blocks * vhd_block_size(vhd) >= vhd_size(vhd));
	for (int i = 0; i < VHD_LOCATOR_COUNT; i++)
		FUZZ_CHECK(strlen(vhd_platform_name(h->locators[i].code, code)) <= 4);
	if (blocks > MAX_CHECK_BLOCKS)
		return;
	for (uint32_t b = 0; b < blocks; b++) {
		int64_t at = vhd_block_offset(vhd, b);

		if (at >= 0) {
			allocated++;
			FUZZ_CHECK((uint64_t)at + vhd_bitmap_size(vhd_block_size(vhd)) <=
				   vhd_file_size(vhd) - VHD_FOOTER_SIZE);
		}
	}
	FUZZ_CHECK(allocated == vhd_allocated_blocks(vhd));
	FUZZ_CHECK(vhd_block_offset(vhd, blocks) == -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhd *vhd = NULL;
	struct error err;
	uint8_t *file = malloc(size ? size : 1);
	const char *path;
	int rc;

	if (!file)
		return 0;
	memcpy(file, data, size);
	fuzz_fix_checksums(file, size);
	fuzz_write_memfile(file, size, &path);
	error_clear(&err);
	rc = vhd_open(&vhd, path, VHD_OPEN_READ, &err);
	if (rc < 0) {
		fuzz_check_error(rc, &err);
		goto out;
	}
	check_getters(vhd);
	check_extents(vhd);
	check_reads(vhd, file, size);
	check_names(vhd);
out:
	vhd_close(vhd);
	free(file);
	return 0;
}
