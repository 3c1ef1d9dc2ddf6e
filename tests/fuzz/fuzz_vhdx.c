/*
 * fuzz_vhdx - one VHDX file: vhdx_open on the input (the log, when the
 * current header names one, replayed in memory), then, if it opens, a walk of
 * the disk with vhdx_map, reads at the start, the end and a place the input
 * picks, the block states and the parent locator; then vhdx_relocation, and
 * the relocated file opened again.
 *
 * A VHDX file is mostly zeros between structures a MiB apart, so the input
 * describes a sparse file rather than being one:
 *
 *   input  := size_kib:u32le flags:u8 record*
 *   record := offset:u32le length:u16le bytes[length]
 *
 * The file is size_kib KiB (at most 64 MiB; records past it are cut) of
 * zeros with each record's bytes laid at its offset. Unless bit 0 of flags is
 * set, the CRC-32C of both headers, both region tables and every log entry
 * found in the current header's log are then made right, so that mutations
 * reach past the checksum checks (with the bit set they stay as stored, so
 * the checks stay covered). Seeds: tests/fuzz/vhdx-seeds.py.
 *
 * Checked beyond "no crash": a failed open fills the error context; the
 * getters agree with each other; every extent is non-empty, inside the disk,
 * of a kind the disk allows, a stored one after the header section; a read in
 * one call equals the same range read a sector at a time; reads outside the
 * disk are refused; the locator's lookup agrees with its listing; a
 * differencing disk relocates or has no room (anything else is refused as
 * not differencing), its patches lie in file order inside the file, and the
 * file they make opens, names the parent ".\p.vhdx", has no log to replay
 * and reads as the original.
 */
#include "crc32c.h"
#include "error.h"
#include "fuzzsupport.h"
#include "vhdx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_FILE	 (64u * 1024 * 1024)
#define MAX_EXTENTS	 4096
#define MAX_READ_SECTORS 64
#define MAX_BLOCKS	 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfile = -1, relocated = -1;
static char memfile_path[64], relocated_path[64];

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void must(bool ok, const char *what)
{
	if (!ok) {
		perror(what);
		abort();
	}
}

/* Recompute the CRC-32C at byte 4 of the @len bytes at @offset if they start with @sig. */
static void fix_crc(uint64_t offset, size_t len, const char *sig, uint64_t file_size)
{
	static uint8_t buf[64 * 1024];

	if (offset + len > file_size)
		return;
	must(pread(memfile, buf, len, (off_t)offset) == (ssize_t)len, "pread");
	if (memcmp(buf, sig, 4) != 0)
		return;
	memset(buf + 4, 0, 4);
	put32(buf + 4, crc32c(0, buf, len));
	must(pwrite(memfile, buf + 4, 4, (off_t)offset + 4) == 4, "pwrite");
}

/* Recompute the CRC of every log entry of the current header's log. */
static void fix_log(uint64_t file_size)
{
	uint8_t h[2][4096], sector[4096];
	uint64_t log_offset;
	uint32_t log_length;
	int cur;

	for (int i = 0; i < 2; i++)
		must(pread(memfile, h[i], sizeof(h[i]), (i + 1) * 65536) == sizeof(h[i]), "pread");
	cur = le64(h[1] + 8) > le64(h[0] + 8) && memcmp(h[1], "head", 4) == 0 ? 1 : 0;
	if (memcmp(h[cur], "head", 4) != 0)
		cur = 1 - cur;
	log_offset = le64(h[cur] + 72);
	log_length = le32(h[cur] + 68);
	if (log_length == 0 || log_length % 4096 || log_offset % 4096 || log_offset > file_size ||
	    log_length > file_size - log_offset || log_length > 8u * 1024 * 1024)
		return;
	for (uint32_t pos = 0; pos < log_length; pos += 4096) {
		uint32_t length, crc = 0;

		must(pread(memfile, sector, 4096, (off_t)(log_offset + pos)) == 4096, "pread");
		length = le32(sector + 8);
		if (memcmp(sector, "loge", 4) != 0 || length == 0 || length % 4096 ||
		    length > log_length)
			continue;
		for (uint32_t at = 0; at < length; at += 4096) {
			uint8_t s[4096];

			must(pread(memfile, s, 4096,
				   (off_t)(log_offset + (pos + at) % log_length)) == 4096,
			     "pread");
			if (at == 0)
				memset(s + 4, 0, 4);
			crc = crc32c(crc, s, 4096);
		}
		put32(sector, crc);
		must(pwrite(memfile, sector, 4, (off_t)(log_offset + pos) + 4) == 4, "pwrite");
	}
}

/* Lay the input's file out in the memfd. Returns the file size. */
static uint64_t lay_out(const uint8_t *data, size_t size, bool *keep_checksums)
{
	uint64_t file_size = size >= 4 ? (uint64_t)le32(data) * 1024 : 0;
	size_t at = 5;

	if (file_size > MAX_FILE)
		file_size = MAX_FILE;
	*keep_checksums = size >= 5 && (data[4] & 1);
	if (memfile < 0) {
		memfile = memfd_create("impex-fuzz-vhdx", MFD_CLOEXEC);
		must(memfile >= 0, "memfd_create");
		snprintf(memfile_path, sizeof(memfile_path), "/proc/self/fd/%d", memfile);
	}
	must(ftruncate(memfile, 0) == 0 && ftruncate(memfile, (off_t)file_size) == 0, "ftruncate");
	while (at + 6 <= size) {
		uint64_t offset = le32(data + at);
		size_t len = (size_t)(data[at + 4] | data[at + 5] << 8);

		at += 6;
		if (len > size - at)
			len = size - at;
		if (offset < file_size) {
			size_t n = offset + len > file_size ? (size_t)(file_size - offset) : len;

			must(pwrite(memfile, data + at, n, (off_t)offset) == (ssize_t)n, "pwrite");
		}
		at += len;
	}
	return file_size;
}

static void check_getters(struct vhdx *vhdx)
{
	uint32_t logical = vhdx_logical_sector_size(vhdx), block = vhdx_block_size(vhdx);
	uint64_t size = vhdx_size(vhdx);
	char guid[39];

	FUZZ_CHECK(logical == 512 || logical == 4096);
	FUZZ_CHECK(vhdx_physical_sector_size(vhdx) == 512 ||
		   vhdx_physical_sector_size(vhdx) == 4096);
	FUZZ_CHECK(block >= VHDX_MIN_BLOCK && block <= VHDX_MAX_BLOCK && !(block & (block - 1)));
	FUZZ_CHECK(size > 0 && size % logical == 0 && size <= VHDX_MAX_SIZE);
	FUZZ_CHECK(vhdx_block_count(vhdx) == (size + block - 1) / block);
	FUZZ_CHECK((uint64_t)vhdx_chunk_ratio(vhdx) * block == VHDX_CHUNK_SECTORS * logical);
	FUZZ_CHECK((vhdx_disk_type(vhdx) == VHD_TYPE_DIFFERENCING) == vhdx_has_parent(vhdx));
	FUZZ_CHECK(vhdx_has_parent(vhdx) == (vhdx_locator_count(vhdx) > 0));
	FUZZ_CHECK(vhdx_current_header_index(vhdx) == 1 || vhdx_current_header_index(vhdx) == 2);
	vhdx_guid_format(vhdx_disk_id(vhdx), guid);
	FUZZ_CHECK(strlen(guid) == 38);
	for (size_t i = 0; i < vhdx_locator_count(vhdx); i++) {
		const struct vhdx_locator_entry *e = vhdx_locator_entry(vhdx, i);

		FUZZ_CHECK(e && e->key[0] && e->value[0]);
		FUZZ_CHECK(vhdx_locator_get(vhdx, e->key) == e->value);
	}
	FUZZ_CHECK(vhdx_locator_entry(vhdx, vhdx_locator_count(vhdx)) == NULL);
	if (vhdx_has_parent(vhdx))
		FUZZ_CHECK(vhdx_locator_get(vhdx, VHDX_KEY_PARENT_LINKAGE) != NULL);
}

static void check_blocks(struct vhdx *vhdx)
{
	uint64_t blocks = vhdx_block_count(vhdx), offset;
	struct error err;
	int state;

	for (uint64_t b = 0; b < blocks && b < MAX_BLOCKS; b++) {
		error_clear(&err);
		if (vhdx_block_state(vhdx, b, &state, &offset, &err) < 0)
			return;
		FUZZ_CHECK(state == VHDX_BLOCK_NOT_PRESENT || state == VHDX_BLOCK_UNDEFINED ||
			   state == VHDX_BLOCK_ZERO || state == VHDX_BLOCK_UNMAPPED ||
			   state == VHDX_BLOCK_FULLY_PRESENT ||
			   (state == VHDX_BLOCK_PARTIALLY_PRESENT && vhdx_has_parent(vhdx)));
		if (state == VHDX_BLOCK_FULLY_PRESENT || state == VHDX_BLOCK_PARTIALLY_PRESENT)
			FUZZ_CHECK(offset >= VHDX_HEADER_AREA && offset % VHDX_MIB == 0);
	}
	error_clear(&err);
	FUZZ_CHECK(vhdx_block_state(vhdx, blocks, &state, &offset, &err) == -EINVAL);
}

static void check_extents(struct vhdx *vhdx)
{
	uint64_t total = vhdx_size(vhdx) / vhdx_logical_sector_size(vhdx), sector = 0;
	struct vhd_extent ext;
	struct error err;

	for (unsigned n = 0; n < MAX_EXTENTS && sector < total; n++) {
		error_clear(&err);
		if (vhdx_map(vhdx, sector, total - sector, &ext, &err) < 0) {
			fuzz_check_error(-err.code, &err);
			return;
		}
		FUZZ_CHECK(ext.sectors >= 1 && ext.sectors <= total - sector);
		if (ext.kind == VHD_EXTENT_DATA)
			FUZZ_CHECK(ext.file_offset >= VHDX_HEADER_AREA);
		else if (ext.kind == VHD_EXTENT_PARENT)
			FUZZ_CHECK(vhdx_has_parent(vhdx));
		else
			FUZZ_CHECK(ext.kind == VHD_EXTENT_ZERO);
		sector += ext.sectors;
	}
	error_clear(&err);
	FUZZ_CHECK(vhdx_map(vhdx, total, 1, &ext, &err) == -EINVAL);
	error_clear(&err);
	FUZZ_CHECK(vhdx_map(vhdx, 0, 0, &ext, &err) == -EINVAL);
}

/* Read @sectors at @sector in one call and one sector at a time: the same bytes. */
static void check_read(struct vhdx *vhdx, uint64_t sector, uint64_t sectors)
{
	static uint8_t whole[MAX_READ_SECTORS * 4096], piece[4096];
	uint32_t logical = vhdx_logical_sector_size(vhdx);
	struct error err;

	error_clear(&err);
	if (vhdx_read(vhdx, whole, sectors * logical, sector * logical, &err) < 0) {
		fuzz_check_error(-err.code, &err);
		return;
	}
	for (uint64_t i = 0; i < sectors; i++) {
		error_clear(&err);
		FUZZ_CHECK(vhdx_read(vhdx, piece, logical, (sector + i) * logical, &err) == 0);
		FUZZ_CHECK(memcmp(piece, whole + i * logical, logical) == 0);
	}
}

static void check_reads(struct vhdx *vhdx, const uint8_t *data, size_t size)
{
	uint32_t logical = vhdx_logical_sector_size(vhdx);
	uint64_t total = vhdx_size(vhdx) / logical;
	uint64_t count = total < MAX_READ_SECTORS ? total : MAX_READ_SECTORS;
	uint64_t pick = (size > 12 ? fuzz_load(data + 5, size - 5, 8) : 0) % total;
	uint8_t buf[2 * 4096];
	struct error err;

	check_read(vhdx, 0, count);
	check_read(vhdx, total - count, count);
	check_read(vhdx, pick, total - pick < count ? total - pick : count);
	error_clear(&err);
	FUZZ_CHECK(vhdx_read(vhdx, buf, logical, total * logical, &err) == -EINVAL);
	error_clear(&err);
	FUZZ_CHECK(vhdx_read(vhdx, buf, 2 * logical, (total - 1) * logical, &err) == -EINVAL);
	error_clear(&err);
	FUZZ_CHECK(vhdx_read(vhdx, buf, logical, 1, &err) == -EINVAL);
}

/* The relocated file, as a consumer of the patches would serve it, into the second memfd. */
static void write_relocated(struct vhdx *vhdx, const struct vhd_patch *patches, size_t count)
{
	static uint8_t buf[VHDX_MIB];
	uint64_t size = vhdx_replayed_file_size(vhdx);
	struct error err;

	if (relocated < 0) {
		relocated = memfd_create("impex-fuzz-vhdx-relocated", MFD_CLOEXEC);
		must(relocated >= 0, "memfd_create");
		snprintf(relocated_path, sizeof(relocated_path), "/proc/self/fd/%d", relocated);
	}
	must(ftruncate(relocated, 0) == 0 && ftruncate(relocated, (off_t)size) == 0, "ftruncate");
	for (uint64_t at = 0; at < size; at += sizeof(buf)) {
		size_t n = size - at < sizeof(buf) ? (size_t)(size - at) : sizeof(buf);

		error_clear(&err);
		FUZZ_CHECK(vhdx_pread(vhdx, buf, n, at, &err) == 0);
		vhd_patches_apply(patches, count, buf, n, at);
		must(pwrite(relocated, buf, n, (off_t)at) == (ssize_t)n, "pwrite");
	}
}

static void check_relocation(struct vhdx *vhdx)
{
	static uint8_t a[MAX_READ_SECTORS * 4096], b[MAX_READ_SECTORS * 4096];
	struct vhd_patch patches[VHDX_RELOCATION_MAX_PATCHES];
	uint64_t size = vhdx_replayed_file_size(vhdx), end = 0;
	uint32_t logical = vhdx_logical_sector_size(vhdx);
	uint64_t n = vhdx_size(vhdx) / logical;
	struct vhdx *moved = NULL;
	struct error err;
	size_t count = 0;
	int rc;

	error_clear(&err);
	rc = vhdx_relocation(vhdx, "p.vhdx", patches, VHDX_RELOCATION_MAX_PATCHES, &count, &err);
	if (rc < 0) {
		fuzz_check_error(rc, &err);
		FUZZ_CHECK(count == 0);
		FUZZ_CHECK(vhdx_has_parent(vhdx) ? rc == -ENOSPC || rc == -ENOMEM : rc == -EINVAL);
		return;
	}
	FUZZ_CHECK(vhdx_has_parent(vhdx) && (count == 4 || count == 5));
	for (size_t i = 0; i < count; i++) {
		FUZZ_CHECK(patches[i].bytes && patches[i].len && patches[i].offset >= end);
		FUZZ_CHECK(patches[i].offset <= size && patches[i].len <= size - patches[i].offset);
		end = patches[i].offset + patches[i].len;
	}
	/* A log may give the file any size up to 128 TiB: only small ones are made. */
	if (size <= 2 * MAX_FILE) {
		write_relocated(vhdx, patches, count);
		error_clear(&err);
		FUZZ_CHECK(vhdx_open(&moved, relocated_path, VHDX_OPEN_READ, &err) == 0);
		FUZZ_CHECK(!vhdx_log_replayed(moved, NULL));
		FUZZ_CHECK(vhdx_size(moved) == vhdx_size(vhdx));
		FUZZ_CHECK(memcmp(vhdx_data_write_guid(moved), vhdx_data_write_guid(vhdx), 16) == 0);
		FUZZ_CHECK(strcmp(vhdx_locator_get(moved, VHDX_KEY_RELATIVE_PATH), ".\\p.vhdx") == 0);
		FUZZ_CHECK(!vhdx_locator_get(moved, VHDX_KEY_ABSOLUTE_WIN32_PATH));
		FUZZ_CHECK(!vhdx_locator_get(moved, VHDX_KEY_VOLUME_PATH));
		if (n > MAX_READ_SECTORS)
			n = MAX_READ_SECTORS;
		error_clear(&err);
		if (vhdx_read(vhdx, a, n * logical, 0, &err) == 0) {
			error_clear(&err);
			FUZZ_CHECK(vhdx_read(moved, b, n * logical, 0, &err) == 0);
			FUZZ_CHECK(memcmp(a, b, n * logical) == 0);
		}
		vhdx_close(moved);
	}
	for (size_t i = 0; i < count; i++)
		free(patches[i].bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhdx *vhdx = NULL;
	struct error err;
	bool keep_checksums;
	uint64_t file_size = lay_out(data, size, &keep_checksums);
	int rc;

	if (!keep_checksums) {
		for (int i = 0; i < 2; i++)
			fix_crc((i + 1) * 65536ull, 4096, "head", file_size);
		if (file_size >= 3 * 65536 + 4096)
			fix_log(file_size);
		for (int i = 0; i < 2; i++)
			fix_crc((i + 3) * 65536ull, 65536, "regi", file_size);
	}
	error_clear(&err);
	rc = vhdx_open(&vhdx, memfile_path, VHDX_OPEN_READ, &err);
	if (rc < 0) {
		fuzz_check_error(rc, &err);
		return 0;
	}
	check_getters(vhdx);
	check_blocks(vhdx);
	check_extents(vhdx);
	check_reads(vhdx, data, size);
	check_relocation(vhdx);
	vhdx_close(vhdx);
	return 0;
}
