/*
 * Unit tests of core/vhd: the on-disk structures, creating disks and writing
 * to them. Expected layouts are read back as raw bytes at the offsets the
 * specification gives, not through the module under test.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "support.h"
#include "utf8.h"
#include "vhd.h"

#define MiB (1024ull * 1024)

/*
 * pwrite64 and fdatasync are wrapped (-Wl,--wrap) for the tests of write
 * ordering and of a failing BAT update: a file cannot be made to fail on
 * its own. Outside those tests the wrappers only pass calls through.
 */
ssize_t __real_pwrite64(int fd, const void *buf, size_t n, off_t offset);
int __real_fdatasync(int fd);

static struct {
	bool on;
	int count;
	struct {
		char op; /* 'w' write, 's' sync */
		uint64_t offset;
		size_t len;
	} calls[64];
} trace;
static int fail_small_write; /* fail the Nth write of 4 bytes (a BAT entry) */

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t offset);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t offset)
{
	if (trace.on && trace.count < 64)
		trace.calls[trace.count++] = (typeof(trace.calls[0])){'w', (uint64_t)offset, n};
	if (n == 4 && fail_small_write > 0 && --fail_small_write == 0) {
		errno = EIO;
		return -1;
	}
	return __real_pwrite64(fd, buf, n, offset);
}

int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd)
{
	if (trace.on && trace.count < 64)
		trace.calls[trace.count++] = (typeof(trace.calls[0])){'s', 0, 0};
	return __real_fdatasync(fd);
}

/* Index of the first traced write at @offset, or -1. */
static int traced_write_at(uint64_t offset)
{
	for (int i = 0; i < trace.count; i++)
		if (trace.calls[i].op == 'w' && trace.calls[i].offset == offset)
			return i;
	return -1;
}

/* Is there a sync between calls @a and @b? */
static bool synced_between(int a, int b)
{
	for (int i = a + 1; i < b; i++)
		if (trace.calls[i].op == 's')
			return true;
	return false;
}

static void assert_footer_checksum(const char *path, uint64_t at)
{
	uint8_t raw[512];

	support_read(path, at, raw, sizeof(raw));
	assert_memory_equal(raw, "conectix", 8);
	assert_int_equal(support_be32(path, at + 64), support_checksum(raw, 512, 64));
}

static void create(const char *path, enum vhd_type type, uint64_t size, uint32_t block)
{
	struct vhd_create_options o = { .type = type, .size = size, .block_size = block };
	struct error err;

	assert_int_equal(vhd_create(path, &o, &err), 0);
}

static struct vhd *open_disk(const char *path, int flags)
{
	struct vhd *vhd = NULL;
	struct error err;
	int rc = vhd_open(&vhd, path, flags, &err);

	if (rc != 0)
		fail_msg("vhd_open(%s): %s", path, err.message);
	return vhd;
}

/* ---- structures ---- */

static void test_checksum(void **state)
{
	uint8_t raw[512] = { 0 };

	(void)state;
	assert_int_equal(vhd_checksum(raw, sizeof(raw), 64), 0xFFFFFFFFu);
	raw[0] = 1;
	raw[1] = 2;
	raw[511] = 3;
	raw[64] = 0x77; /* inside the checksum field: ignored */
	raw[67] = 0x77;
	assert_int_equal(vhd_checksum(raw, sizeof(raw), 64), 0xFFFFFFF9u);
}

static void test_footer_round_trip(void **state)
{
	struct vhd_footer f, g;
	uint8_t uuid[16], raw[512], again[512];

	(void)state;
	for (int i = 0; i < 16; i++)
		uuid[i] = (uint8_t)(0xA0 + i);
	vhd_footer_init(&f, VHD_TYPE_DYNAMIC, 64 * MiB, uuid, 12345);
	vhd_footer_encode(&f, raw);
	/* Fields at the specification's offsets, big-endian. */
	assert_memory_equal(raw, "conectix", 8);
	assert_int_equal(raw[11], 2); /* features: reserved bit */
	assert_int_equal(raw[13], 1); /* version 1.0 */
	assert_int_equal(raw[19], 0); /* data offset 512 */
	assert_int_equal(raw[22], 2);
	assert_int_equal(raw[27], 57); /* timestamp 12345 = 0x3039 */
	assert_int_equal(raw[26], 0x30);
	assert_memory_equal(raw + 28, "win ", 4);
	assert_memory_equal(raw + 36, "Wi2k", 4);
	assert_int_equal(raw[40 + 4], 0x04); /* original size 0x04000000 */
	assert_int_equal(raw[48 + 4], 0x04); /* current size */
	assert_int_equal(raw[63], 3);	     /* dynamic */
	assert_memory_equal(raw + 68, uuid, 16);
	assert_int_equal(((uint32_t)raw[64] << 24 | (uint32_t)raw[65] << 16 |
			  (uint32_t)raw[66] << 8 | raw[67]),
			 support_checksum(raw, 512, 64));
	vhd_footer_decode(raw, &g);
	assert_int_equal(g.current_size, 64 * MiB);
	assert_int_equal(g.disk_type, VHD_TYPE_DYNAMIC);
	assert_int_equal(g.timestamp, 12345);
	assert_int_equal(g.geometry.cylinders, 963);
	vhd_footer_encode(&g, again);
	assert_memory_equal(raw, again, 512);
}

static void test_header_round_trip(void **state)
{
	struct vhd_header h, g;
	uint8_t raw[1024], again[1024];

	(void)state;
	vhd_header_init(&h, 5, 2 * MiB);
	h.locators[2].code = VHD_PLATFORM_W2KU;
	h.locators[2].data_space = 1;
	h.locators[2].data_length = 40;
	h.locators[2].data_offset = 0x123456789ull;
	h.parent_name[1] = 'a';
	vhd_header_encode(&h, raw);
	assert_memory_equal(raw, "cxsparse", 8);
	for (int i = 8; i < 16; i++)
		assert_int_equal(raw[i], 0xFF); /* data offset: none */
	assert_int_equal(raw[16 + 6], 0x06); /* table offset 1536 = 0x600 */
	assert_int_equal(raw[25], 1);	      /* version 1.0 */
	assert_int_equal(raw[31], 5);	      /* max table entries */
	assert_int_equal(raw[33], 0x20);      /* block size 0x00200000 */
	assert_int_equal(raw[65], 'a');	      /* parent name at 64 */
	/* locator entry 2 at 576 + 2 * 24 */
	assert_memory_equal(raw + 624, "W2ku", 4);
	assert_int_equal(raw[624 + 7], 1);
	assert_int_equal(raw[624 + 11], 40);
	assert_int_equal(raw[624 + 16 + 3], 0x01);
	assert_int_equal(raw[624 + 16 + 7], 0x89);
	assert_int_equal(((uint32_t)raw[36] << 24 | (uint32_t)raw[37] << 16 |
			  (uint32_t)raw[38] << 8 | raw[39]),
			 support_checksum(raw, 1024, 36));
	vhd_header_decode(raw, &g);
	assert_int_equal(g.locators[2].data_offset, 0x123456789ull);
	assert_int_equal(g.max_table_entries, 5);
	vhd_header_encode(&g, again);
	assert_memory_equal(raw, again, 1024);
}

static void check_geometry(uint64_t size, unsigned c, unsigned h, unsigned s)
{
	struct vhd_geometry g;

	vhd_geometry_for_size(size, &g);
	assert_int_equal(g.cylinders, c);
	assert_int_equal(g.heads, h);
	assert_int_equal(g.sectors, s);
}

static void test_geometry(void **state)
{
	(void)state;
	/* Worked through the specification's algorithm by hand. */
	check_geometry(10 * MiB, 301, 4, 17);
	check_geometry(64 * MiB, 963, 8, 17);
	check_geometry(1024 * MiB, 2080, 16, 63);
	check_geometry(127 * MiB, 1019, 15, 17);
	check_geometry(VHD_MAX_CREATE_SIZE, 65535, 16, 255);
}

static void test_small_helpers(void **state)
{
	char buf[5], uuid[37];
	uint8_t id[16];

	(void)state;
	/* Below 512 a locator's data space counts sectors; from 512, bytes. */
	assert_int_equal(vhd_locator_space_bytes(1), 512);
	assert_int_equal(vhd_locator_space_bytes(2), 1024);
	assert_int_equal(vhd_locator_space_bytes(512), 512);
	assert_int_equal(vhd_locator_space_bytes(1024), 1024);
	assert_int_equal(vhd_bitmap_size(2 * MiB), 512);
	assert_int_equal(vhd_bitmap_size(512 * 1024), 512);
	assert_int_equal(vhd_bitmap_size(4096), 512);
	assert_int_equal(vhd_bitmap_size(256 * MiB), 65536);
	assert_int_equal(vhd_bat_bytes(5), 512);
	assert_int_equal(vhd_bat_bytes(128), 512);
	assert_int_equal(vhd_bat_bytes(129), 1024);
	assert_string_equal(vhd_type_name(VHD_TYPE_DIFFERENCING), "differencing");
	assert_string_equal(vhd_type_name(9), "unknown");
	assert_string_equal(vhd_platform_name(VHD_PLATFORM_W2RU, buf), "W2ru");
	assert_string_equal(vhd_platform_name(0, buf), "");
	assert_int_equal(vhd_time_to_unix(0), 946684800);
	assert_int_equal(vhd_time_from_unix(946684800 + 77), 77);
	assert_int_equal(vhd_time_from_unix(0), 0); /* clamped */
	for (int i = 0; i < 16; i++)
		id[i] = (uint8_t)(i * 17);
	vhd_uuid_format(id, uuid);
	assert_string_equal(uuid, "00112233-4455-6677-8899-aabbccddeeff");
}

/* ---- creating ---- */

static void test_create_dynamic_layout(void **state)
{
	const char *p = support_path(*state, "d.vhd");
	uint8_t first[512], last[512];
	struct vhd *vhd;

	create(p, VHD_TYPE_DYNAMIC, 10 * MiB, 0);
	/* footer copy, header, one sector of BAT (5 entries), footer */
	assert_int_equal(support_file_size(p), 512 + 1024 + 512 + 512);
	support_read(p, 0, first, 512);
	support_read(p, 2048, last, 512);
	assert_memory_equal(first, last, 512);
	assert_footer_checksum(p, 2048);
	assert_int_equal(support_be64(p, 16), 512);	    /* data offset */
	assert_int_equal(support_be64(p, 48), 10 * MiB);   /* current size */
	assert_int_equal(support_be32(p, 60), 3);	    /* dynamic */
	assert_int_equal(support_be32(p, 12), 0x00010000); /* version */
	assert_int_equal(support_be64(p, 512 + 16), 1536);  /* table offset */
	assert_int_equal(support_be32(p, 512 + 28), 5);     /* entries */
	assert_int_equal(support_be32(p, 512 + 32), 2 * MiB);
	for (int i = 0; i < 5; i++)
		assert_int_equal(support_be32(p, 1536 + 4 * i), 0xFFFFFFFFu);

	vhd = open_disk(p, VHD_OPEN_READ);
	assert_int_equal(vhd_disk_type(vhd), VHD_TYPE_DYNAMIC);
	assert_int_equal(vhd_size(vhd), 10 * MiB);
	assert_int_equal(vhd_block_count(vhd), 5);
	assert_int_equal(vhd_allocated_blocks(vhd), 0);
	assert_int_equal(vhd_block_offset(vhd, 0), -1);
	vhd_close(vhd);
}

static void test_create_fixed_layout(void **state)
{
	const char *p = support_path(*state, "f.vhd");
	uint8_t zero[4096] = { 0 }, buf[4096];
	struct vhd *vhd;
	struct error err;

	create(p, VHD_TYPE_FIXED, 3 * MiB, 0);
	assert_int_equal(support_file_size(p), 3 * MiB + 512);
	assert_footer_checksum(p, 3 * MiB);
	assert_int_equal(support_be64(p, 3 * MiB + 16), UINT64_MAX);
	assert_int_equal(support_be32(p, 3 * MiB + 60), 2);
	support_read(p, 3 * MiB - 4096, buf, sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));

	vhd = open_disk(p, VHD_OPEN_READ);
	assert_null(vhd_header(vhd));
	assert_int_equal(vhd_block_size(vhd), 0);
	assert_int_equal(vhd_read(vhd, buf, sizeof(buf), MiB, &err), 0);
	assert_memory_equal(buf, zero, sizeof(buf));
	vhd_close(vhd);
}

static void test_create_block_sizes(void **state)
{
	const char *p = support_path(*state, "b.vhd");
	struct vhd *vhd;

	create(p, VHD_TYPE_DYNAMIC, 3 * MiB, 512 * 1024);
	/* 6 blocks of 512 KiB */
	assert_int_equal(support_be32(p, 512 + 28), 6);
	assert_int_equal(support_be32(p, 512 + 32), 512 * 1024);
	vhd = open_disk(p, VHD_OPEN_READ);
	assert_int_equal(vhd_block_size(vhd), 512 * 1024);
	vhd_close(vhd);
}

static void test_create_rejects(void **state)
{
	const char *p = support_path(*state, "r.vhd");
	struct vhd_create_options o = { .type = VHD_TYPE_DYNAMIC };
	struct error err;

	o.size = MiB + 512;
	assert_int_equal(vhd_create(p, &o, &err), -EINVAL);
	assert_non_null(strstr(err.message, "MiB"));
	o.size = 0;
	assert_int_equal(vhd_create(p, &o, &err), -EINVAL);
	o.size = VHD_MAX_CREATE_SIZE + MiB;
	assert_int_equal(vhd_create(p, &o, &err), -EINVAL);
	o.size = 4 * MiB;
	o.block_size = 3 * 1024 * 1024;
	assert_int_equal(vhd_create(p, &o, &err), -EINVAL);
	o.block_size = 512 * MiB;
	assert_int_equal(vhd_create(p, &o, &err), -EINVAL);
	o.block_size = 256;
	assert_int_equal(vhd_create(p, &o, &err), -EINVAL);
	o.block_size = 2048; /* below 4 KiB QEMU misreads the bitmaps */
	assert_int_equal(vhd_create(p, &o, &err), -EINVAL);
	o.size = VHD_MAX_CREATE_SIZE;
	o.block_size = 4096; /* more blocks than a BAT may have */
	assert_int_equal(vhd_create(p, &o, &err), -EINVAL);
	assert_non_null(strstr(err.message, "larger blocks"));
	o.size = 4 * MiB;
	assert_int_equal(access(p, F_OK), -1); /* nothing left behind */

	o.block_size = 0;
	assert_int_equal(vhd_create(p, &o, &err), 0);
	o.type = VHD_TYPE_FIXED;
	assert_int_equal(vhd_create(p, &o, &err), -EEXIST);
	assert_int_equal(support_be32(p, 60), 3); /* still the dynamic disk */
	assert_non_null(strstr(err.message, "r.vhd"));
}

/* ---- writing ---- */

static void test_write_dynamic(void **state)
{
	const char *p = support_path(*state, "w.vhd");
	uint8_t data[1024], back[4096], zero[4096] = { 0 };
	struct vhd *vhd;
	struct error err;
	uint64_t block_at = 2048, end;

	create(p, VHD_TYPE_DYNAMIC, 10 * MiB, 0);
	support_fill(data, sizeof(data), 1);
	vhd = open_disk(p, VHD_OPEN_WRITE);
	/* sectors 3 and 4 of block 1 */
	assert_int_equal(vhd_write(vhd, data, sizeof(data), 2 * MiB + 3 * 512, &err), 0);
	vhd_close(vhd);

	/* The block went where the footer was: bitmap, then 2 MiB of data, then the footer. */
	assert_int_equal(support_be32(p, 1536 + 4), block_at / 512);
	assert_int_equal(support_be32(p, 1536), 0xFFFFFFFFu);
	end = block_at + 512 + 2 * MiB;
	assert_int_equal(support_file_size(p), end + 512);
	assert_footer_checksum(p, end);
	support_read(p, block_at, back, 512);
	assert_int_equal(back[0], 0x18); /* sectors 3, 4: most significant bit first */
	assert_memory_equal(back + 1, zero, 511);
	support_read(p, block_at + 512 + 3 * 512, back, sizeof(data));
	assert_memory_equal(back, data, sizeof(data));

	vhd = open_disk(p, VHD_OPEN_READ);
	assert_int_equal(vhd_allocated_blocks(vhd), 1);
	assert_int_equal(vhd_block_offset(vhd, 1), (int64_t)block_at);
	assert_int_equal(vhd_read(vhd, back, 4096, 2 * MiB, &err), 0);
	assert_memory_equal(back, zero, 3 * 512);
	assert_memory_equal(back + 3 * 512, data, sizeof(data));
	assert_memory_equal(back + 5 * 512, zero, 4096 - 5 * 512);
	vhd_close(vhd);
}

static void test_write_spanning_and_rewrite(void **state)
{
	const char *p = support_path(*state, "s.vhd");
	size_t len = 4 * MiB;
	uint8_t *data = malloc(len), *back = malloc(len), patch[512];
	struct vhd *vhd;
	struct error err;

	create(p, VHD_TYPE_DYNAMIC, 8 * MiB, 0);
	support_fill(data, len, 2);
	vhd = open_disk(p, VHD_OPEN_WRITE);
	/* from the middle of block 0 to the middle of block 2 */
	assert_int_equal(vhd_write(vhd, data, len, MiB, &err), 0);
	assert_int_equal(vhd_allocated_blocks(vhd), 3);
	/* rewrite one sector of an allocated block: no new block */
	support_fill(patch, sizeof(patch), 3);
	assert_int_equal(vhd_write(vhd, patch, sizeof(patch), 2 * MiB, &err), 0);
	assert_int_equal(vhd_allocated_blocks(vhd), 3);
	memcpy(data + MiB, patch, sizeof(patch));
	vhd_close(vhd);

	vhd = open_disk(p, VHD_OPEN_READ);
	assert_int_equal(vhd_read(vhd, back, len, MiB, &err), 0);
	assert_memory_equal(back, data, len);
	/* file: footer copy, header, BAT, 3 blocks of 512 + 2 MiB, footer */
	assert_int_equal(support_file_size(p), 2048 + 3 * (512 + 2 * MiB) + 512);
	vhd_close(vhd);
	free(data);
	free(back);
}

static void test_write_fixed(void **state)
{
	const char *p = support_path(*state, "f.vhd");
	uint8_t data[2048], back[2048];
	struct vhd *vhd;
	struct error err;

	create(p, VHD_TYPE_FIXED, 2 * MiB, 0);
	support_fill(data, sizeof(data), 4);
	vhd = open_disk(p, VHD_OPEN_WRITE);
	assert_int_equal(vhd_write(vhd, data, sizeof(data), MiB, &err), 0);
	vhd_close(vhd);
	support_read(p, MiB, back, sizeof(back));
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(support_file_size(p), 2 * MiB + 512);
	assert_footer_checksum(p, 2 * MiB);
}

static void test_write_rejects(void **state)
{
	const char *p = support_path(*state, "x.vhd");
	uint8_t data[1024] = { 1 };
	struct vhd *vhd;
	struct error err;

	create(p, VHD_TYPE_DYNAMIC, 2 * MiB, 0);
	vhd = open_disk(p, VHD_OPEN_READ);
	assert_int_equal(vhd_write(vhd, data, 512, 0, &err), -EBADF);
	vhd_close(vhd);

	vhd = open_disk(p, VHD_OPEN_WRITE);
	assert_int_equal(vhd_write(vhd, data, 512, 100, &err), -EINVAL);
	assert_non_null(strstr(err.message, "x.vhd"));
	assert_int_equal(vhd_write(vhd, data, 100, 0, &err), -EINVAL);
	assert_int_equal(vhd_write(vhd, data, 1024, 2 * MiB - 512, &err), -EINVAL);
	assert_int_equal(vhd_write(vhd, data, 512, 2 * MiB, &err), -EINVAL);
	assert_int_equal(vhd_write(vhd, data, 0, 0, &err), 0);
	vhd_close(vhd);
	assert_int_equal(support_file_size(p), 2048 + 512); /* unchanged */
}

/* ---- differencing disks ---- */

static void test_differencing_layout(void **state)
{
	char *dir = *state;
	const char *parent = support_path(dir, "disque-été-€.vhd");
	const char *child = support_path(dir, "child.vhd");
	uint8_t name[512], parent_uuid[16], expect[64];
	char text[512], real[4096];
	struct vhd *vhd;
	struct error err;
	struct stat st;
	const char *n = "disque-été-€.vhd";
	size_t k = 0;

	create(parent, VHD_TYPE_DYNAMIC, 6 * MiB, 0);
	assert_int_equal(vhd_create_differencing(child, parent, NULL, &err), 0);
	assert_int_equal(support_be32(child, 60), 4);
	assert_int_equal(support_be64(child, 48), 6 * MiB);
	assert_int_equal(support_be32(child, 512 + 32), 2 * MiB);
	support_read(parent, 68, parent_uuid, 16);
	support_read(child, 512 + 40, name, 16);
	assert_memory_equal(name, parent_uuid, 16);
	assert_int_equal(stat(parent, &st), 0);
	assert_int_equal(support_be32(child, 512 + 56), (uint32_t)(st.st_mtime - 946684800));

	/* Parent Unicode Name: UTF-16BE, encoded here by hand from the UTF-8 above. */
	for (size_t i = 0; n[i];) {
		uint32_t cp;
		size_t len = utf8_decode((const unsigned char *)n + i, strlen(n + i), &cp);

		assert_true(len > 0 && cp < 0x10000); /* one UTF-16 unit each */
		i += len;
		expect[k++] = (uint8_t)(cp >> 8);
		expect[k++] = (uint8_t)cp;
	}
	support_read(child, 512 + 64, name, sizeof(name));
	assert_memory_equal(name, expect, k);
	assert_int_equal(name[k], 0);
	assert_int_equal(name[k + 1], 0);

	/* Locators: W2ru then MacX (no path map, so no W2ku), data space in bytes. */
	assert_int_equal(support_be32(child, 512 + 576), VHD_PLATFORM_W2RU);
	assert_int_equal(support_be32(child, 512 + 576 + 4), 512);
	assert_int_equal(support_be32(child, 512 + 576 + 8), 2 * 18); /* ".\\" and 16 characters */
	assert_int_equal(support_be32(child, 512 + 600), VHD_PLATFORM_MACX);
	assert_int_equal(support_be32(child, 512 + 624), 0);

	vhd = open_disk(child, VHD_OPEN_READ);
	assert_int_equal(vhd_parent_name(vhd, text, sizeof(text), &err), 0);
	assert_string_equal(text, n);
	assert_int_equal(vhd_locator_path(vhd, 0, text, sizeof(text), &err), 0);
	assert_string_equal(text, ".\\disque-été-€.vhd");
	assert_int_equal(vhd_locator_path(vhd, 1, text, sizeof(text), &err), 0);
	assert_non_null(realpath(parent, real));
	assert_string_equal(text, real);
	assert_int_equal(vhd_locator_path(vhd, 2, text, sizeof(text), &err), -ENOENT);
	vhd_close(vhd);
}

static void test_differencing_bitmaps(void **state)
{
	char *dir = *state;
	const char *parent = support_path(dir, "p.vhd");
	const char *child = support_path(dir, "c.vhd");
	uint8_t data[8 * 512], back[16 * 512], byte;
	struct vhd_extent ext;
	struct vhd *vhd;
	struct error err;
	int64_t at;

	create(parent, VHD_TYPE_DYNAMIC, 4 * MiB, 0);
	assert_int_equal(vhd_create_differencing(child, parent, NULL, &err), 0);
	support_fill(data, sizeof(data), 5);
	vhd = open_disk(child, VHD_OPEN_WRITE);
	assert_int_equal(vhd_write(vhd, data, sizeof(data), 0, &err), 0);
	at = vhd_block_offset(vhd, 0);
	assert_true(at > 0);
	vhd_close(vhd);
	support_read(child, (uint64_t)at, &byte, 1);
	assert_int_equal(byte, 0xFF);

	/* Patch partial bitmap bytes: 0xF0 holds sectors 0-3, 0x0F sectors 4-7. */
	byte = 0xF0;
	support_patch(child, (uint64_t)at, &byte, 1);
	vhd = open_disk(child, VHD_OPEN_READ);
	assert_int_equal(vhd_map(vhd, 0, 16, &ext, &err), 0);
	assert_int_equal(ext.kind, VHD_EXTENT_DATA);
	assert_int_equal(ext.sectors, 4);
	assert_int_equal(ext.file_offset, (uint64_t)at + 512);
	assert_int_equal(vhd_map(vhd, 4, 16, &ext, &err), 0);
	assert_int_equal(ext.kind, VHD_EXTENT_PARENT);
	assert_int_equal(vhd_map(vhd, 4, 100000, &ext, &err), 0);
	assert_int_equal(ext.sectors, 4096 - 4); /* to the end of the block */
	assert_int_equal(vhd_read(vhd, back, sizeof(back), 0, &err), 0);
	assert_memory_equal(back, data, 4 * 512);
	for (size_t i = 4 * 512; i < sizeof(back); i++)
		assert_int_equal(back[i], 0); /* this file alone: the parent's sectors read zero */
	vhd_close(vhd);

	byte = 0x81;
	support_patch(child, (uint64_t)at, &byte, 1);
	vhd = open_disk(child, VHD_OPEN_READ);
	assert_int_equal(vhd_map(vhd, 0, 16, &ext, &err), 0);
	assert_int_equal(ext.kind, VHD_EXTENT_DATA);
	assert_int_equal(ext.sectors, 1);
	assert_int_equal(vhd_map(vhd, 1, 16, &ext, &err), 0);
	assert_int_equal(ext.kind, VHD_EXTENT_PARENT);
	assert_int_equal(ext.sectors, 6);
	assert_int_equal(vhd_map(vhd, 7, 16, &ext, &err), 0);
	assert_int_equal(ext.kind, VHD_EXTENT_DATA);
	assert_int_equal(ext.sectors, 1);
	assert_int_equal(ext.file_offset, (uint64_t)at + 512 + 7 * 512);
	/* Unallocated blocks of a differencing disk are the parent's, as one run. */
	assert_int_equal(vhd_map(vhd, 4096, 8192, &ext, &err), 0);
	assert_int_equal(ext.kind, VHD_EXTENT_PARENT);
	assert_int_equal(ext.sectors, 4096);
	assert_int_equal(vhd_map(vhd, 8192, 1, &ext, &err), -EINVAL);
	vhd_close(vhd);
}

static void test_write_ordering(void **state)
{
	const char *p = support_path(*state, "o.vhd");
	uint8_t data[4096], more[512];
	uint64_t old_footer = 2048, new_end = 2048 + 512 + 2 * MiB;
	int footer, over_old, bat, rewrite_data, rewrite_bits;
	struct vhd *vhd;
	struct error err;

	create(p, VHD_TYPE_DYNAMIC, 8 * MiB, 0);
	support_fill(data, sizeof(data), 9);
	vhd = open_disk(p, VHD_OPEN_WRITE);
	trace.count = 0;
	trace.on = true;
	assert_int_equal(vhd_write(vhd, data, sizeof(data), 2 * MiB, &err), 0);
	trace.on = false;
	/* The new footer is durable before the old one is overwritten (by the
	 * new block's bitmap), and the data before the BAT points to it. */
	footer = traced_write_at(new_end);
	over_old = traced_write_at(old_footer);
	bat = traced_write_at(1536 + 4);
	assert_true(footer >= 0 && over_old > footer && bat > over_old);
	assert_true(synced_between(footer, over_old));
	assert_true(synced_between(traced_write_at(old_footer + 512), bat));
	assert_int_equal(trace.calls[trace.count - 1].op, 's');

	/* Rewriting part of an allocated block: data durable before its bitmap bits. */
	support_fill(more, sizeof(more), 10);
	trace.count = 0;
	trace.on = true;
	assert_int_equal(vhd_write(vhd, more, sizeof(more), 2 * MiB + 64 * 512, &err), 0);
	trace.on = false;
	rewrite_data = traced_write_at(old_footer + 512 + 64 * 512);
	rewrite_bits = traced_write_at(old_footer + 64 / 8);
	assert_true(rewrite_data >= 0 && rewrite_bits > rewrite_data);
	assert_true(synced_between(rewrite_data, rewrite_bits));
	vhd_close(vhd);
}

static void test_write_bat_failure(void **state)
{
	const char *p = support_path(*state, "f.vhd");
	size_t len = 4 * MiB;
	uint8_t *data = malloc(len), *back = malloc(len), zero[512] = {0};
	struct vhd *vhd;
	struct error err;

	create(p, VHD_TYPE_DYNAMIC, 8 * MiB, 0);
	support_fill(data, len, 11);
	vhd = open_disk(p, VHD_OPEN_WRITE);
	/* Blocks 0 and 1: the BAT entry of block 1 fails to land. */
	fail_small_write = 2;
	assert_int_equal(vhd_write(vhd, data, len, 0, &err), -EIO);
	fail_small_write = 0;
	assert_non_null(strstr(err.message, "BAT"));
	/* The next write on the same handle must not reuse the space the failed
	 * one took: its block would overlap block 0. */
	assert_int_equal(vhd_write(vhd, data, 2 * MiB, 4 * MiB, &err), 0);
	vhd_close(vhd);

	vhd = open_disk(p, VHD_OPEN_READ);
	assert_int_equal(vhd_read(vhd, back, 2 * MiB, 0, &err), 0);
	assert_memory_equal(back, data, 2 * MiB); /* block 0 was committed */
	assert_int_equal(vhd_read(vhd, back, 512, 2 * MiB, &err), 0);
	assert_memory_equal(back, zero, 512); /* block 1 was not */
	assert_int_equal(vhd_read(vhd, back, 2 * MiB, 4 * MiB, &err), 0);
	assert_memory_equal(back, data, 2 * MiB);
	vhd_close(vhd);
	free(data);
	free(back);
}

static void test_open_errors(void **state)
{
	char *dir = *state;
	const char *p = support_path(dir, "e.vhd");
	struct vhd *vhd = NULL;
	struct error err;
	uint8_t bad = 'X';

	assert_int_equal(vhd_open(&vhd, support_path(dir, "missing.vhd"), 0, &err), -ENOENT);
	assert_non_null(strstr(err.message, "missing.vhd"));
	create(p, VHD_TYPE_DYNAMIC, 2 * MiB, 0);
	support_patch(p, 2048, &bad, 1); /* the trailing footer's cookie */
	assert_int_equal(vhd_open(&vhd, p, 0, &err), -EINVAL);
	assert_null(vhd);
	assert_non_null(strstr(err.message, "e.vhd"));
	assert_non_null(strstr(err.message, "no footer at its end"));
}

static void test_open_damaged_header(void **state)
{
	const char *p = support_path(*state, "h.vhd");
	struct vhd *vhd = NULL;
	struct error err;
	uint8_t raw[4] = { 0, 0, 0x0C, 0 }; /* block size 3072: not a power of two */

	create(p, VHD_TYPE_DYNAMIC, 2 * MiB, 0);
	support_patch(p, 512 + 32, raw, 4);
	assert_int_equal(vhd_open(&vhd, p, 0, &err), -EINVAL);
	assert_non_null(strstr(err.message, "checksum"));
	support_fix_header_checksum(p);
	assert_int_equal(vhd_open(&vhd, p, 0, &err), -EINVAL);
	assert_non_null(strstr(err.message, "block size"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, support_setup_dir, support_teardown_dir)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checksum),
		cmocka_unit_test(test_footer_round_trip),
		cmocka_unit_test(test_header_round_trip),
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_small_helpers),
		T(test_create_dynamic_layout),
		T(test_create_fixed_layout),
		T(test_create_block_sizes),
		T(test_create_rejects),
		T(test_write_dynamic),
		T(test_write_spanning_and_rewrite),
		T(test_write_fixed),
		T(test_write_rejects),
		T(test_differencing_layout),
		T(test_differencing_bitmaps),
		T(test_write_ordering),
		T(test_write_bat_failure),
		T(test_open_errors),
		T(test_open_damaged_header),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
