/*
 * Unit tests of core/vhdx_relocate: vhdx_relocation over small AVHDX files
 * laid out here by hand (no log, no blocks): the shape of the patches (in
 * place, moved, in file order, not overlapping), the file they make (read
 * back through vhdx_open and byte by byte), no room, files that changed
 * after they were opened, and what is not a differencing disk. Files with
 * logs, content and the referees (qemu-img, vhdiinfo) are in
 * tests/integration/test_vhdx_relocate.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bigendian.h"
#include "crc32c.h"
#include "error.h"
#include "support.h"
#include "vhdx.h"

#define KiB	    1024u
#define MiB	    (1024u * 1024)
#define FILE_SIZE   (4 * MiB)
#define METADATA_AT (2 * MiB)
#define BAT_AT	    (3 * MiB)
#define ITEMS_AT    (64 * KiB)
#define LINKAGE	    "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"
#define FILLER_GUID "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}"
#define DATA_WRITE  "{5c0f6c1e-2f3a-4d5b-8c7d-9e0f1a2b3c4d}"
#define FILE_WRITE  "{7a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3}"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void guid(const char *text, uint8_t *out)
{
	assert_int_equal(vhdx_guid_parse(text, out), 0);
}

/* ASCII as UTF-16LE. */
static size_t wide(const char *s, uint8_t *out)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = (uint8_t)s[i];
		out[2 * i + 1] = 0;
	}
	return 2 * n;
}

/* A parent locator item of @n pairs (keys[i], values[i]) into @out; its length. */
static size_t locator(const char *const *keys, const char *const *values, size_t n, uint8_t *out)
{
	size_t at = 20 + 12 * n;

	memset(out, 0, at);
	guid("{B04AEFB7-D19E-4A81-B789-25B8E9445913}", out);
	le16_store(out + 18, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = out + 20 + 12 * i;
		size_t k = wide(keys[i], out + at), v = wide(values[i], out + at + k);

		le32_store(e, (uint32_t)at);
		le32_store(e + 4, (uint32_t)(at + k));
		le16_store(e + 8, (uint16_t)k);
		le16_store(e + 10, (uint16_t)v);
		at += k + v;
	}
	return at;
}

static const char *const all_keys[] = {"parent_linkage", "relative_path", "absolute_win32_path"};
static const char *const all_values[] = {LINKAGE, ".\\old.vhdx", "C:\\VMs\\old.vhdx"};
static const char *const short_values[] = {LINKAGE, ".\\b.vhdx"};

/*
 * A 4 MiB AVHDX of 8 MiB (1 MiB blocks, 512-byte sectors, no block stored):
 * the log at 1 MiB, the metadata region at 2 MiB (its items from 64 KiB, each
 * at the next 8 bytes: the five required ones, the parent locator of
 * @n_keys of all_keys (@values), then a filler item of @filler bytes if not
 * 0), the BAT at 3 MiB. Header 2 (sequence 2) is current. @parent false
 * makes it a dynamic disk without a locator.
 */
static const char *make_avhdx(void **state, const char *name, bool parent, size_t n_keys,
			      const char *const *values, uint32_t filler)
{
	const char *path = support_path(*state, name);
	uint8_t *buf = calloc(1, FILE_SIZE), *meta = buf + METADATA_AT, *entry;
	uint32_t at = ITEMS_AT, count = 0;
	int fd;

	assert_non_null(buf);
	memcpy(buf, "vhdxfile", 8);
	for (int i = 0; i < 2; i++) {
		uint8_t *h = buf + (i + 1) * 64 * KiB;

		memcpy(h, "head", 4);
		le64_store(h + 8, (uint64_t)i + 1);
		guid(FILE_WRITE, h + 16);
		guid(DATA_WRITE, h + 32);
		le16_store(h + 66, 1);
		le32_store(h + 68, MiB);
		le64_store(h + 72, MiB);
		le32_store(h + 4, crc32c(0, h, 4096));
	}
	for (int i = 0; i < 2; i++) {
		uint8_t *r = buf + (i + 3) * 64 * KiB;

		memcpy(r, "regi", 4);
		le32_store(r + 8, 2);
		guid("{2DC27766-F623-4200-9D64-115E9BFD4A08}", r + 16);
		le64_store(r + 16 + 16, BAT_AT);
		le32_store(r + 16 + 24, MiB);
		le32_store(r + 16 + 28, 1);
		guid("{8B7CA206-4790-4B9A-B8FE-575F050F886E}", r + 48);
		le64_store(r + 48 + 16, METADATA_AT);
		le32_store(r + 48 + 24, MiB);
		le32_store(r + 48 + 28, 1);
		le32_store(r + 4, crc32c(0, r, 64 * KiB));
	}
	memcpy(meta, "metadata", 8);
#define ITEM(text, flags, len)                                                                     \
	do {                                                                                       \
		entry = meta + 32 + 32 * count++;                                                  \
		guid(text, entry);                                                                 \
		le32_store(entry + 16, at);                                                          \
		le32_store(entry + 20, (len));                                                       \
		le32_store(entry + 24, (flags));                                                     \
		at += ((len) + 7) / 8 * 8;                                                         \
	} while (0)
	le32_store(meta + at, MiB);
	le32_store(meta + at + 4, parent ? 2 : 0);
	ITEM("{CAA16737-FA36-4D43-B3B6-33F0AA44E76B}", 4, 8);
	le64_store(meta + at, 8 * MiB);
	ITEM("{2FA54224-CD1B-4876-B211-5DBED83BF4B8}", 6, 8);
	guid("{11223344-5566-7788-99aa-bbccddeeff00}", meta + at);
	ITEM("{BECA12AB-B2E6-4523-93EF-C309E000C746}", 6, 16);
	le32_store(meta + at, 512);
	ITEM("{8141BF1D-A96F-4709-BA47-F233A8FAAB5F}", 6, 4);
	le32_store(meta + at, 4096);
	ITEM("{CDA348C7-445D-4471-9CC9-E9885251C556}", 6, 4);
	if (parent) {
		uint32_t len = (uint32_t)locator(all_keys, values, n_keys, meta + at);

		ITEM("{A8D35F2D-B30B-454D-ABF7-D3D84834AB0C}", 4, len);
	}
	if (filler) {
		memset(meta + at, 0x77, filler);
		ITEM(FILLER_GUID, 0, filler);
	}
#undef ITEM
	le16_store(meta + 10, (uint16_t)count);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, FILE_SIZE, 0), (ssize_t)FILE_SIZE);
	close(fd);
	free(buf);
	return path;
}

/* Where the last item made by make_avhdx with these keys ends (its next free byte). */
static uint32_t items_end(size_t n_keys, const char *const *values)
{
	uint8_t item[1024];

	return ITEMS_AT + 8 + 8 + 16 + 8 + 8 +
	       (uint32_t)(locator(all_keys, values, n_keys, item) + 7) / 8 * 8;
}

/* @path with @count patches laid over it, written to @out (the file has no log). */
static const char *apply(void **state, const char *path, const struct vhd_patch *patches,
			 size_t count, const char *out)
{
	const char *dst = support_path(*state, out);
	uint8_t *buf = malloc(FILE_SIZE);
	int fd;

	assert_non_null(buf);
	support_read(path, 0, buf, FILE_SIZE);
	vhd_patches_apply(patches, count, buf, FILE_SIZE, 0);
	fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, FILE_SIZE, 0), (ssize_t)FILE_SIZE);
	close(fd);
	free(buf);
	return dst;
}

static void patches_free(struct vhd_patch *patches, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(patches[i].bytes);
}

/* In file order, not overlapping, inside the file. */
static void check_order(const struct vhd_patch *patches, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		assert_non_null(patches[i].bytes);
		assert_true(patches[i].len > 0);
		assert_true(patches[i].offset + patches[i].len <= FILE_SIZE);
		if (i)
			assert_true(patches[i - 1].offset + patches[i - 1].len <=
				    patches[i].offset);
	}
}

/* The header at @at of @path: valid (CRC-32C), its sequence number and LogGuid zero. */
static uint64_t header_sequence(const char *path, uint64_t at)
{
	uint8_t h[4096], zero[16] = {0};
	uint32_t stored;

	support_read(path, at, h, sizeof(h));
	stored = le32(h + 4);
	memset(h + 4, 0, 4);
	assert_memory_equal(h, "head", 4);
	assert_int_equal(crc32c(0, h, sizeof(h)), stored);
	assert_memory_equal(h + 48, zero, 16);
	return le64(h + 8);
}

static void test_relocate_in_place(void **state)
{
	const char *path = make_avhdx(state, "a.avhdx", true, 3, all_values, 0), *out;
	struct vhd_patch patches[VHDX_RELOCATION_MAX_PATCHES + 2];
	struct vhdx *vhdx = NULL, *moved = NULL;
	uint8_t dwg[16], fwg[16];
	struct error err;
	uint32_t offset, length;
	size_t count = 99;

	assert_int_equal(vhdx_open(&vhdx, path, VHDX_OPEN_READ, &err), 0);
	assert_true(vhdx_locator_place(vhdx, &offset, &length));
	assert_int_equal(vhdx_relocation(vhdx, "new.vhdx", patches, VHDX_RELOCATION_MAX_PATCHES + 2,
					 &count, &err),
			 0);
	/* Two headers, the table entry, the item over its old length. */
	assert_int_equal(count, 4);
	check_order(patches, count);
	assert_int_equal(patches[0].offset, 64 * KiB);
	assert_int_equal(patches[1].offset, 128 * KiB);
	assert_int_equal(patches[2].offset, METADATA_AT + 32 + 5 * 32);
	assert_int_equal(patches[2].len, 32);
	assert_int_equal(patches[3].offset, METADATA_AT + offset);
	assert_int_equal(patches[3].len, length);
	assert_null(patches[4].bytes);
	out = apply(state, path, patches, count, "out.avhdx");
	patches_free(patches, count);
	vhdx_close(vhdx);

	assert_int_equal(vhdx_open(&moved, out, VHDX_OPEN_READ, &err), 0);
	assert_int_equal(vhdx_locator_count(moved), 2);
	assert_string_equal(vhdx_locator_entry(moved, 0)->key, "parent_linkage");
	assert_string_equal(vhdx_locator_entry(moved, 0)->value, LINKAGE);
	assert_string_equal(vhdx_locator_entry(moved, 1)->key, "relative_path");
	assert_string_equal(vhdx_locator_entry(moved, 1)->value, ".\\new.vhdx");
	assert_int_equal(vhdx_current_header_index(moved), 2);
	assert_int_equal(vhdx_current_header(moved)->sequence_number, 4);
	guid(DATA_WRITE, dwg);
	guid(FILE_WRITE, fwg);
	assert_memory_equal(vhdx_data_write_guid(moved), dwg, 16);
	assert_memory_not_equal(vhdx_file_write_guid(moved), fwg, 16);
	assert_false(vhdx_log_replayed(moved, NULL));
	vhdx_close(moved);
	assert_int_equal(header_sequence(out, 64 * KiB), 3);
	assert_int_equal(header_sequence(out, 128 * KiB), 4);
}

static void test_relocate_moved(void **state)
{
	/* The locator (2 keys) with a filler right after it, room at the region's end. */
	const char *path = make_avhdx(state, "m.avhdx", true, 2, short_values, 1000), *out;
	struct vhd_patch patches[VHDX_RELOCATION_MAX_PATCHES];
	uint32_t end = items_end(2, short_values), offset, length;
	struct vhdx *vhdx = NULL, *moved = NULL;
	struct error err;
	size_t count = 0;
	uint8_t old[64];

	assert_int_equal(vhdx_open(&vhdx, path, VHDX_OPEN_READ, &err), 0);
	assert_true(vhdx_locator_place(vhdx, &offset, &length));
	assert_int_equal(offset + (length + 7) / 8 * 8, end);
	assert_int_equal(vhdx_relocation(vhdx, "a-much-longer-name.vhdx", patches,
					 VHDX_RELOCATION_MAX_PATCHES, &count, &err),
			 0);
	assert_int_equal(count, 5);
	check_order(patches, count);
	/* The old place zeroed, the new one after the filler. */
	assert_int_equal(patches[3].offset, METADATA_AT + offset);
	assert_int_equal(patches[3].len, length);
	memset(old, 0, sizeof(old));
	assert_memory_equal(patches[3].bytes, old, length < 64 ? length : 64);
	assert_int_equal(patches[4].offset, METADATA_AT + end + 1000);
	out = apply(state, path, patches, count, "out.avhdx");
	patches_free(patches, count);
	vhdx_close(vhdx);
	assert_int_equal(vhdx_open(&moved, out, VHDX_OPEN_READ, &err), 0);
	assert_true(vhdx_locator_place(moved, &offset, &length));
	assert_int_equal(offset, end + 1000);
	assert_string_equal(vhdx_locator_get(moved, "relative_path"), ".\\a-much-longer-name.vhdx");
	vhdx_close(moved);
}

static void test_relocate_no_room(void **state)
{
	uint32_t end = items_end(2, short_values);
	const char *path = make_avhdx(state, "f.avhdx", true, 2, short_values, MiB - end);
	struct vhd_patch patches[VHDX_RELOCATION_MAX_PATCHES];
	struct vhdx *vhdx = NULL;
	struct error err;
	size_t count = 7;

	assert_int_equal(vhdx_open(&vhdx, path, VHDX_OPEN_READ, &err), 0);
	assert_int_equal(vhdx_relocation(vhdx, "a-much-longer-name.vhdx", patches,
					 VHDX_RELOCATION_MAX_PATCHES, &count, &err),
			 -ENOSPC);
	assert_int_equal(count, 0);
	for (size_t i = 0; i < VHDX_RELOCATION_MAX_PATCHES; i++)
		assert_null(patches[i].bytes);
	assert_non_null(strstr(err.message, "has no room for a parent locator"));
	assert_non_null(strstr(err.message, path));
	/* A name no longer than the old one fits in place. */
	assert_int_equal(
		vhdx_relocation(vhdx, "c.vhdx", patches, VHDX_RELOCATION_MAX_PATCHES, &count, &err),
		0);
	assert_int_equal(count, 4);
	patches_free(patches, count);
	vhdx_close(vhdx);
}

static void test_relocate_changed_since_open(void **state)
{
	const char *path = make_avhdx(state, "c.avhdx", true, 3, all_values, 0);
	struct vhd_patch patches[VHDX_RELOCATION_MAX_PATCHES];
	struct vhdx *vhdx = NULL;
	struct error err;
	size_t count = 0;
	uint8_t raw[4];

	/* The locator's table entry: another length. */
	assert_int_equal(vhdx_open(&vhdx, path, VHDX_OPEN_READ, &err), 0);
	le32_store(raw, 24);
	support_patch(path, METADATA_AT + 32 + 5 * 32 + 20, raw, 4);
	assert_int_equal(
		vhdx_relocation(vhdx, "n.vhdx", patches, VHDX_RELOCATION_MAX_PATCHES, &count, &err),
		-EIO);
	assert_non_null(strstr(err.message, "changed since it was opened"));
	assert_non_null(strstr(err.message, path));
	assert_int_equal(count, 0);
	vhdx_close(vhdx);
	/* The current header: one byte of a reserved field. */
	path = make_avhdx(state, "h.avhdx", true, 3, all_values, 0);
	assert_int_equal(vhdx_open(&vhdx, path, VHDX_OPEN_READ, &err), 0);
	support_patch(path, 128 * KiB + 1000, "x", 1);
	assert_int_equal(
		vhdx_relocation(vhdx, "n.vhdx", patches, VHDX_RELOCATION_MAX_PATCHES, &count, &err),
		-EIO);
	assert_non_null(strstr(err.message, "the current header of"));
	vhdx_close(vhdx);
}

static void test_relocate_refused(void **state)
{
	const char *dynamic = make_avhdx(state, "d.vhdx", false, 0, NULL, 0);
	const char *path = make_avhdx(state, "r.avhdx", true, 3, all_values, 0);
	struct vhd_patch patches[VHDX_RELOCATION_MAX_PATCHES];
	struct vhdx *vhdx = NULL;
	struct error err;
	size_t count = 3;

	assert_int_equal(vhdx_open(&vhdx, dynamic, VHDX_OPEN_READ, &err), 0);
	assert_int_equal(
		vhdx_relocation(vhdx, "p.vhdx", patches, VHDX_RELOCATION_MAX_PATCHES, &count, &err),
		-EINVAL);
	assert_non_null(strstr(err.message, "is not a differencing disk"));
	assert_int_equal(count, 0);
	vhdx_close(vhdx);
	assert_int_equal(vhdx_open(&vhdx, path, VHDX_OPEN_READ, &err), 0);
	assert_int_equal(vhdx_relocation(vhdx, "p.vhdx", patches, VHDX_RELOCATION_MAX_PATCHES - 1,
					 &count, &err),
			 -EINVAL);
	assert_non_null(strstr(err.message, "patches"));
	assert_int_equal(vhdx_relocation(vhdx, "sub\\p.vhdx", patches, VHDX_RELOCATION_MAX_PATCHES,
					 &count, &err),
			 -EINVAL);
	assert_non_null(strstr(err.message, "not a file name"));
	assert_int_equal(count, 0);
	vhdx_close(vhdx);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, support_setup_dir, support_teardown_dir)
	const struct CMUnitTest tests[] = {
		T(test_relocate_in_place), T(test_relocate_moved),
		T(test_relocate_no_room),  T(test_relocate_changed_since_open),
		T(test_relocate_refused),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
