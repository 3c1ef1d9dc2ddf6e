/*
 * test_vhdx_write.c - the VHDX writer (core/vhdx_create.c, core/vhdx_write.c):
 * option checks, what a new file holds (read straight from its bytes), the
 * errors of vhdx_write, and the order of its system calls: data durable
 * before the log names it, the log entry durable before the BAT and bitmaps
 * change, the headers first (pwrite64 and fdatasync are wrapped at link time).
 */
#include "error.h"
#include "support.h"
#include "vhdx.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MIB (1024u * 1024)

/* ---- tracing the calls that write ---- */

ssize_t __real_pwrite64(int fd, const void *buf, size_t n, off_t offset);
int __real_fdatasync(int fd);

static struct {
	bool on;
	int count;
	struct {
		char op; /* 'w' pwrite, 's' fdatasync */
		uint64_t offset;
		size_t len;
	} calls[256];
} trace;

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t offset);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t offset)
{
	if (trace.on && trace.count < 256)
		trace.calls[trace.count++] = (typeof(trace.calls[0])){'w', (uint64_t)offset, n};
	return __real_pwrite64(fd, buf, n, offset);
}

int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd)
{
	if (trace.on && trace.count < 256)
		trace.calls[trace.count++] = (typeof(trace.calls[0])){'s', 0, 0};
	return __real_fdatasync(fd);
}

/* Index of the first traced write into [from, from+len) at or after call @start, or -1. */
static int write_into(uint64_t from, uint64_t len, int start)
{
	for (int i = start; i < trace.count; i++)
		if (trace.calls[i].op == 'w' && trace.calls[i].offset < from + len &&
		    trace.calls[i].offset + trace.calls[i].len > from)
			return i;
	return -1;
}

/* Index of the last traced write into [from, from+len), or -1. */
static int last_write_into(uint64_t from, uint64_t len)
{
	int last = -1;

	for (int i = 0; i < trace.count; i++)
		if (write_into(from, len, i) == i)
			last = i;
	return last;
}

/* Whether a sync lies between calls @a and @b. */
static bool synced_between(int a, int b)
{
	for (int i = a + 1; i < b; i++)
		if (trace.calls[i].op == 's')
			return true;
	return false;
}

/* ---- the file's bytes ---- */

static uint32_t le32_at(const char *path, uint64_t offset)
{
	uint8_t b[4];

	support_read(path, offset, b, 4);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64_at(const char *path, uint64_t offset)
{
	return le32_at(path, offset) | (uint64_t)le32_at(path, offset + 4) << 32;
}

static bool zero_at(const char *path, uint64_t offset, size_t len)
{
	uint8_t buf[16];

	support_read(path, offset, buf, len);
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

/* ---- option checks ---- */

static void test_create_check(void **state)
{
	static const struct {
		struct vhdx_create_options o;
		const char *words;
	} bad[] = {
		{{VHD_TYPE_DYNAMIC, 0, 0, 0, 0, NULL}, "a disk size of 0"},
		{{VHD_TYPE_DYNAMIC, MIB + 4096, 0, 0, 0, NULL}, "not a whole number of MiB"},
		{{VHD_TYPE_FIXED, (64ull << 40) + MIB, 0, 0, 0, NULL}, "over the VHDX limit"},
		{{VHD_TYPE_DIFFERENCING, MIB, 0, 0, 0, NULL}, "only create fixed or dynamic"},
		{{VHD_TYPE_DYNAMIC, MIB, 3 * MIB, 0, 0, NULL}, "not a power of two"},
		{{VHD_TYPE_DYNAMIC, MIB, MIB / 2, 0, 0, NULL}, "from 1 MiB to 256 MiB"},
		{{VHD_TYPE_DYNAMIC, MIB, 512 * MIB, 0, 0, NULL}, "from 1 MiB to 256 MiB"},
		{{VHD_TYPE_DYNAMIC, MIB, 0, 2048, 0, NULL}, "logical sector size 2048"},
		{{VHD_TYPE_DYNAMIC, MIB, 0, 0, 1024, NULL}, "physical sector size 1024"},
		{{VHD_TYPE_DYNAMIC, MIB, 0, 4096, 512, NULL}, "smaller than the logical"},
	};
	struct vhdx_create_options good = {VHD_TYPE_FIXED, 64ull << 40, 256 * MIB,
					   4096,	   4096,	NULL};
	struct error err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error_clear(&err);
		assert_int_equal(vhdx_create_check(&bad[i].o, &err), -EINVAL);
		assert_non_null(strstr(err.message, bad[i].words));
		/* vhdx_create checks first: nothing is made. */
		assert_int_equal(vhdx_create(support_path(*state, "x.vhdx"), &bad[i].o, &err),
				 -EINVAL);
		assert_int_equal(access(support_path(*state, "x.vhdx"), F_OK), -1);
	}
	assert_int_equal(vhdx_create_check(&good, &err), 0);
}

/* ---- a new file ---- */

static void test_create_dynamic(void **state)
{
	const char *p = support_path(*state, "d.vhdx");
	static const uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	struct vhdx_create_options o = {VHD_TYPE_DYNAMIC, 100 * MIB, 0, 0, 0, id};
	struct vhdx *vhdx = NULL;
	struct error err;

	assert_int_equal(vhdx_create(p, &o, &err), 0);
	assert_int_equal(vhdx_create(p, &o, &err), -EEXIST);
	assert_non_null(strstr(err.message, "already exists"));
	/* The bytes, read straight from the file. */
	assert_int_equal(support_file_size(p), 4 * MIB);
	assert_int_equal(le32_at(p, 0), 0x78646876);	     /* "vhdx" */
	assert_int_equal(le32_at(p, 64 * 1024), 0x64616568); /* "head" */
	assert_int_equal(le64_at(p, 64 * 1024 + 8), 1);	     /* sequence numbers */
	assert_int_equal(le64_at(p, 128 * 1024 + 8), 2);
	assert_true(zero_at(p, 64 * 1024 + 48, 16));	      /* LogGuid */
	assert_int_equal(le32_at(p, 64 * 1024 + 68), MIB);    /* LogLength */
	assert_int_equal(le64_at(p, 64 * 1024 + 72), MIB);    /* LogOffset */
	assert_int_equal(le32_at(p, 192 * 1024), 0x69676572); /* "regi" */
	assert_int_equal(le32_at(p, 192 * 1024 + 8), 2);
	assert_int_equal(le64_at(p, 192 * 1024 + 32), 3 * MIB);	      /* the BAT */
	assert_int_equal(le64_at(p, 192 * 1024 + 64), 2 * MIB);	      /* the metadata */
	assert_int_equal(le64_at(p, 2 * MIB), 0x617461646174656dull); /* "metadata" */
	assert_int_equal(le32_at(p, 2 * MIB + 64 * 1024), 32 * MIB);  /* block size */
	assert_int_equal(le32_at(p, 2 * MIB + 64 * 1024 + 4), 0);     /* no flag */
	assert_true(zero_at(p, 3 * MIB, 16));			      /* empty BAT */

	assert_int_equal(vhdx_open(&vhdx, p, VHDX_OPEN_READ, &err), 0);
	assert_int_equal(vhdx_disk_type(vhdx), VHD_TYPE_DYNAMIC);
	assert_int_equal(vhdx_size(vhdx), 100 * MIB);
	assert_int_equal(vhdx_block_size(vhdx), 32 * MIB);
	assert_int_equal(vhdx_logical_sector_size(vhdx), 512);
	assert_int_equal(vhdx_physical_sector_size(vhdx), 4096);
	assert_memory_equal(vhdx_disk_id(vhdx), id, 16);
	vhdx_close(vhdx);
}

static void test_create_fixed(void **state)
{
	const char *p = support_path(*state, "f.vhdx");
	struct vhdx_create_options o = {VHD_TYPE_FIXED, 5 * MIB, 0, 4096, 0, NULL};
	struct vhdx *vhdx = NULL;
	struct error err;

	assert_int_equal(vhdx_create(p, &o, &err), 0);
	/* Three 2 MiB blocks after the BAT, the last one half used. */
	assert_int_equal(support_file_size(p), 4 * MIB + 3 * 2 * MIB);
	assert_int_equal(le32_at(p, 2 * MIB + 64 * 1024 + 4), 1); /* LeaveBlockAllocated */
	for (uint64_t b = 0; b < 3; b++)
		assert_int_equal(le64_at(p, 3 * MIB + 8 * b), (4 * MIB + b * 2 * MIB) | 6);
	assert_int_equal(le64_at(p, 3 * MIB + 24), 0);
	assert_int_equal(vhdx_open(&vhdx, p, VHDX_OPEN_READ, &err), 0);
	assert_int_equal(vhdx_disk_type(vhdx), VHD_TYPE_FIXED);
	assert_int_equal(vhdx_logical_sector_size(vhdx), 4096);
	vhdx_close(vhdx);
}

/* ---- vhdx_write's errors ---- */

static void test_write_refused(void **state)
{
	const char *p = support_path(*state, "d.vhdx");
	struct vhdx_create_options o = {VHD_TYPE_DYNAMIC, 8 * MIB, MIB, 0, 0, NULL};
	struct vhdx *vhdx = NULL;
	struct error err;
	uint8_t buf[1024];

	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(vhdx_create(p, &o, &err), 0);
	assert_int_equal(vhdx_open(&vhdx, p, VHDX_OPEN_READ, &err), 0);
	assert_int_equal(vhdx_write(vhdx, buf, 512, 0, &err), -EBADF);
	assert_non_null(strstr(err.message, "not opened for writing"));
	assert_int_equal(vhdx_flush(vhdx, &err), 0);
	vhdx_close(vhdx);
	assert_int_equal(vhdx_open(&vhdx, p, VHDX_OPEN_WRITE, &err), 0);
	assert_int_equal(vhdx_write(vhdx, buf, 512, 256, &err), -EINVAL);
	assert_non_null(strstr(err.message, "whole 512-byte sectors"));
	assert_int_equal(vhdx_write(vhdx, buf, 100, 0, &err), -EINVAL);
	assert_int_equal(vhdx_write(vhdx, buf, 1024, 8 * MIB - 512, &err), -EINVAL);
	assert_non_null(strstr(err.message, "does not fit"));
	/* Nothing written yet, nothing changed: not even the headers. */
	trace.count = 0;
	trace.on = true;
	assert_int_equal(vhdx_write(vhdx, buf, 0, 0, &err), 0);
	assert_int_equal(vhdx_flush(vhdx, &err), 0);
	vhdx_close(vhdx);
	trace.on = false;
	assert_int_equal(trace.count, 0);
}

/* ---- the order of a write ---- */

static void test_write_order_dynamic(void **state)
{
	const char *p = support_path(*state, "d.vhdx");
	struct vhdx_create_options o = {VHD_TYPE_DYNAMIC, 8 * MIB, MIB, 0, 0, NULL};
	struct vhdx *vhdx = NULL;
	struct error err;
	uint8_t buf[1024], back[1024];
	int data, log, bat;

	support_fill(buf, sizeof(buf), 7);
	assert_int_equal(vhdx_create(p, &o, &err), 0);
	assert_int_equal(vhdx_open(&vhdx, p, VHDX_OPEN_WRITE, &err), 0);
	trace.count = 0;
	trace.on = true;
	assert_int_equal(vhdx_write(vhdx, buf, sizeof(buf), 3 * MIB + 512, &err), 0);
	trace.on = false;
	/* The headers first (the one not current, then the other, each synced), then the data in
	 * the new block at the end of the file, synced before the log entry; the entry synced
	 * before the BAT changes; the BAT synced before the write returns. */
	assert_true(trace.calls[0].op == 'w' && trace.calls[0].offset == 64 * 1024);
	assert_true(trace.calls[1].op == 's');
	assert_true(trace.calls[2].op == 'w' && trace.calls[2].offset == 128 * 1024);
	assert_true(trace.calls[3].op == 's');
	data = write_into(4 * MIB, MIB, 0);
	log = write_into(MIB, MIB, 0);
	bat = write_into(3 * MIB, MIB, 0);
	assert_true(data > 3 && log > data && bat > log);
	assert_int_equal(trace.calls[data].offset, 4 * MIB + 512);
	assert_true(synced_between(data, log));
	assert_true(synced_between(log, bat));
	assert_int_equal(last_write_into(3 * MIB, MIB), bat);
	assert_int_equal(trace.calls[trace.count - 1].op, 's');
	/* The log names its LogGuid in the headers before the entry is applied. */
	assert_false(zero_at(p, 64 * 1024 + 48, 16));
	assert_false(zero_at(p, 128 * 1024 + 48, 16));
	assert_true(write_into(64 * 1024, 4096, log) < bat);
	assert_int_equal(le64_at(p, 3 * MIB + 24), (4 * MIB) | 6);
	/* A second write into the same block changes no metadata. */
	trace.count = 0;
	trace.on = true;
	assert_int_equal(vhdx_write(vhdx, buf, 512, 3 * MIB, &err), 0);
	trace.on = false;
	assert_int_equal(trace.count, 2);
	assert_int_equal(trace.calls[0].offset, 4 * MIB);
	/* Flushed, the headers name no log. */
	assert_int_equal(vhdx_flush(vhdx, &err), 0);
	assert_true(zero_at(p, 64 * 1024 + 48, 16));
	assert_true(zero_at(p, 128 * 1024 + 48, 16));
	assert_int_equal(vhdx_read(vhdx, back, sizeof(back), 3 * MIB + 512, &err), 0);
	assert_memory_equal(back, buf, sizeof(back));
	vhdx_close(vhdx);
}

static void test_write_order_differencing(void **state)
{
	const char *parent = support_path(*state, "p.vhdx");
	const char *p = support_path(*state, "c.avhdx");
	struct vhdx_create_options o = {VHD_TYPE_DYNAMIC, 8 * MIB, MIB, 0, 0, NULL};
	struct vhdx *vhdx = NULL;
	struct error err;
	uint8_t buf[512];
	int data, log, bitmap, bat;

	support_fill(buf, sizeof(buf), 8);
	assert_int_equal(vhdx_create(parent, &o, &err), 0);
	assert_int_equal(vhdx_create_differencing(p, parent, NULL, &err), 0);
	assert_int_equal(vhdx_open(&vhdx, p, VHDX_OPEN_WRITE, &err), 0);
	trace.count = 0;
	trace.on = true;
	assert_int_equal(vhdx_write(vhdx, buf, sizeof(buf), 2 * MIB + 512, &err), 0);
	trace.on = false;
	/* Block 1 at 4 MiB, the chunk's bitmap block at 6 MiB: the data before the
	 * log, the log before the bitmap and the BAT. */
	data = write_into(4 * MIB, 2 * MIB, 0);
	log = write_into(MIB, MIB, 0);
	bitmap = write_into(6 * MIB, MIB, 0);
	bat = write_into(3 * MIB, MIB, 0);
	assert_true(data >= 0 && log > data && bitmap > log && bat > log);
	assert_int_equal(trace.calls[data].offset, 4 * MIB + 512);
	assert_true(synced_between(data, log));
	assert_true(synced_between(log, bitmap < bat ? bitmap : bat));
	vhdx_close(vhdx);
	/* Block 1 partially present, its sector 1 (bit 4097 of the chunk, least
	 * significant bit first) set; the chunk's bitmap entry present. */
	assert_int_equal(le64_at(p, 3 * MIB + 8), (4 * MIB) | 7);
	assert_int_equal(le64_at(p, 3 * MIB + 8 * 2048), (6 * MIB) | 6);
	{
		uint8_t bits[2];

		support_read(p, 6 * MIB + 4096 / 8, bits, 2);
		assert_int_equal(bits[0], 0x02);
		assert_int_equal(bits[1], 0);
	}
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, support_setup_dir, support_teardown_dir)
	const struct CMUnitTest tests[] = {
		T(test_create_check),	     T(test_create_dynamic),
		T(test_create_fixed),	     T(test_write_refused),
		T(test_write_order_dynamic), T(test_write_order_differencing),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
