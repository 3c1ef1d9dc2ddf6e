/*
 * Unit tests of core/crc32c, core/vhdx_log and core/vhdx's small parts:
 * CRC-32C against the published check values, GUIDs in Microsoft's layout,
 * the overlay against a byte-by-byte model, one log replayed from a file
 * laid out here by hand. Whole VHDX files are tested by
 * tests/integration/test_vhdx.py with files built by tests/vhdxcraft.py.
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
#include "vhdx_log.h"

#define MiB (1024u * 1024)

/* ---- CRC-32C ---- */

static void test_crc32c_vectors(void **state)
{
	uint8_t buf[32];

	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, "", 0), 0);
	/* RFC 3720 (iSCSI), B.4. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x8A9136AAu);
	memset(buf, 0xFF, sizeof(buf));
	assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x113FDB5Cu);
}

/* A bit at a time, straight from the definition: the reference for the table code. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t len)
{
	uint32_t c = 0xFFFFFFFFu;

	for (size_t i = 0; i < len; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (c & 1 ? 0x82F63B78u : 0);
	}
	return ~c;
}

static void test_crc32c_pieces(void **state)
{
	uint8_t buf[300];

	(void)state;
	support_fill(buf, sizeof(buf), 7);
	for (size_t len = 0; len <= sizeof(buf); len += 13)
		assert_int_equal(crc32c(0, buf, len), crc32c_bitwise(buf, len));
	/* Any split, at any alignment, gives the CRC of the whole. */
	for (size_t cut = 0; cut <= sizeof(buf); cut++)
		assert_int_equal(crc32c(crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut),
				 crc32c_bitwise(buf, sizeof(buf)));
	for (size_t start = 1; start < 9; start++)
		assert_int_equal(crc32c(0, buf + start, 100), crc32c_bitwise(buf + start, 100));
}

/* ---- GUIDs ---- */

static void test_guid(void **state)
{
	static const uint8_t bat[16] = {0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42,
					0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08};
	uint8_t raw[16];
	char text[39];

	(void)state;
	assert_int_equal(vhdx_guid_parse("{2DC27766-F623-4200-9D64-115E9BFD4A08}", raw), 0);
	assert_memory_equal(raw, bat, 16);
	assert_int_equal(vhdx_guid_parse("{2dc27766-f623-4200-9d64-115e9bfd4a08}", raw), 0);
	assert_memory_equal(raw, bat, 16);
	vhdx_guid_format(bat, text);
	assert_string_equal(text, "{2dc27766-f623-4200-9d64-115e9bfd4a08}");
	assert_int_equal(vhdx_guid_parse("2DC27766-F623-4200-9D64-115E9BFD4A08", raw), -EINVAL);
	assert_int_equal(vhdx_guid_parse("{2DC27766-F623-4200-9D64-115E9BFD4A0}", raw), -EINVAL);
	assert_int_equal(vhdx_guid_parse("{2DC27766-F623-4200-9D64-115E9BFD4A08 ", raw), -EINVAL);
	assert_int_equal(vhdx_guid_parse("{2DC27766+F623-4200-9D64-115E9BFD4A08}", raw), -EINVAL);
	assert_int_equal(vhdx_guid_parse("{2DC27766-F623-4200-9D64-115E9BFD4A0G}", raw), -EINVAL);
	assert_int_equal(vhdx_guid_parse("{2DC27766-F623-4200-9D64-115E9BFD4A08}x", raw), -EINVAL);
	assert_int_equal(vhdx_guid_parse("", raw), -EINVAL);
}

/* ---- the overlay ---- */

#define MODEL_SIZE 65536

static int count_runs(void *ctx, uint64_t offset, uint64_t len, const uint8_t *data)
{
	uint64_t *last_end = ctx;

	/* In file order, not overlapping, never empty. */
	assert_true(len > 0);
	assert_true(offset >= *last_end);
	*last_end = offset + len;
	(void)data;
	return 0;
}

static void test_overlay_model(void **state)
{
	static uint8_t model[MODEL_SIZE], written[MODEL_SIZE], file[MODEL_SIZE], got[MODEL_SIZE];
	uint8_t data[8192];
	unsigned seed = 42;

	(void)state;
	for (int round = 0; round < 20; round++) {
		struct vhdx_overlay *o = vhdx_overlay_new(1000);
		uint64_t last_end = 0, end = 1000;

		assert_non_null(o);
		support_fill(file, sizeof(file), (uint32_t)round + 1);
		memcpy(model, file, sizeof(model));
		memset(written, 0, sizeof(written));
		for (int i = 0; i < 1 + round * 10; i++) {
			size_t len = 1 + (size_t)rand_r(&seed) % 8192;
			uint64_t at = (uint64_t)rand_r(&seed) % (MODEL_SIZE - len);
			bool zeros = rand_r(&seed) % 3 == 0;

			support_fill(data, len, (uint32_t)rand_r(&seed));
			assert_int_equal(vhdx_overlay_add(o, at, zeros ? NULL : data, len), 0);
			memcpy(model + at, zeros ? (const uint8_t *)memset(data, 0, len) : data,
			       len);
			memset(written + at, 1, len);
			if (at + len > end)
				end = at + len;
		}
		assert_int_equal(vhdx_overlay_apply(o, got, 1, 0), -EINVAL); /* not sealed */
		assert_int_equal(vhdx_overlay_seal(o), 0);
		assert_int_equal(vhdx_overlay_add(o, 0, data, 1), -EINVAL); /* sealed */
		assert_int_equal(vhdx_overlay_file_size(o), end);
		/* Whole, then in windows of every size. */
		memcpy(got, file, sizeof(got));
		assert_int_equal(vhdx_overlay_apply(o, got, sizeof(got), 0), 0);
		assert_memory_equal(got, model, sizeof(model));
		for (int w = 0; w < 50; w++) {
			size_t len = 1 + (size_t)rand_r(&seed) % 5000;
			uint64_t at = (uint64_t)rand_r(&seed) % (MODEL_SIZE - len);

			memcpy(got, file + at, len);
			assert_int_equal(vhdx_overlay_apply(o, got, len, at), 0);
			assert_memory_equal(got, model + at, len);
		}
		assert_int_equal(vhdx_overlay_foreach(o, count_runs, &last_end), 0);
		vhdx_overlay_free(o);
	}
}

static int stop_at_second(void *ctx, uint64_t offset, uint64_t len, const uint8_t *data)
{
	int *calls = ctx;

	(void)offset;
	(void)len;
	(void)data;
	return ++*calls == 2 ? 7 : 0;
}

static void test_overlay_edges(void **state)
{
	struct vhdx_overlay *o = vhdx_overlay_new(10);
	uint8_t buf[16];
	int calls = 0;

	(void)state;
	assert_int_equal(vhdx_overlay_add(o, UINT64_MAX - 3, NULL, 8), -EINVAL);
	assert_int_equal(vhdx_overlay_add(o, 4, NULL, 0), 0);
	assert_int_equal(vhdx_overlay_add(o, 0, "ab", 2), 0);
	assert_int_equal(vhdx_overlay_add(o, 8, "cd", 2), 0);
	assert_int_equal(vhdx_overlay_add(o, 1, NULL, 1), 0);
	assert_int_equal(vhdx_overlay_seal(o), 0);
	assert_int_equal(vhdx_overlay_seal(o), 0);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(vhdx_overlay_apply(o, buf, 10, 0), 0);
	assert_memory_equal(buf, "a\0xxxxxxcdxxxxxx", 16);
	assert_int_equal(vhdx_overlay_foreach(o, stop_at_second, &calls), 7);
	vhdx_overlay_free(o);
	vhdx_overlay_free(NULL);

	o = vhdx_overlay_new(5);
	assert_int_equal(vhdx_overlay_seal(o), 0);
	assert_int_equal(vhdx_overlay_file_size(o), 5);
	assert_int_equal(vhdx_overlay_apply(o, buf, 4, 0), 0);
	vhdx_overlay_free(o);
}

/* ---- one log, laid out by hand ---- */

static const uint8_t log_guid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/*
 * A 3 MiB file, its log at 1 MiB (1 MiB long), holding at log offset 0 one
 * entry (sequence 5): a data descriptor for file offset @target with the
 * bytes 'A' (leading 8 'L', trailing 4 'T'), and a zero descriptor for the
 * 8 KiB at 2 MiB + 4 KiB. Its LastFileOffset is 4 MiB.
 */
static const char *make_log_file(void **state, uint64_t target)
{
	const char *path = support_path(*state, "log.bin");
	uint8_t entry[2 * 4096];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 3 * MiB), 0);
	memset(entry, 0, sizeof(entry));
	memcpy(entry, "loge", 4);
	le32_store(entry + 8, sizeof(entry));
	le32_store(entry + 12, 0);
	le64_store(entry + 16, 5);
	le32_store(entry + 24, 2);
	memcpy(entry + 32, log_guid, 16);
	le64_store(entry + 48, 3 * MiB);
	le64_store(entry + 56, 4 * MiB);
	memcpy(entry + 64, "desc", 4);
	memcpy(entry + 64 + 4, "TTTT", 4);
	memcpy(entry + 64 + 8, "LLLLLLLL", 8);
	le64_store(entry + 64 + 16, target);
	le64_store(entry + 64 + 24, 5);
	memcpy(entry + 96, "zero", 4);
	le64_store(entry + 96 + 8, 8192);
	le64_store(entry + 96 + 16, 2 * MiB + 4096);
	le64_store(entry + 96 + 24, 5);
	memcpy(entry + 4096, "data", 4);
	le32_store(entry + 4096 + 4, 0);
	memset(entry + 4096 + 8, 'A', 4084);
	le32_store(entry + 8192 - 4, 5);
	le32_store(entry + 4, crc32c(0, entry, sizeof(entry)));
	assert_int_equal(pwrite(fd, entry, sizeof(entry), MiB), (ssize_t)sizeof(entry));
	/* Something for the zero descriptor to clear. */
	memset(entry, 0x5A, sizeof(entry));
	assert_int_equal(pwrite(fd, entry, sizeof(entry), 2 * MiB), (ssize_t)sizeof(entry));
	close(fd);
	return path;
}

static int replay_file(const char *path, struct vhdx_overlay **o, struct vhdx_log_info *info,
		       struct error *err)
{
	struct vhdx_log_params p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.fd = open(path, O_RDONLY);
	assert_true(p.fd >= 0);
	p.path = path;
	p.file_size = 3 * MiB;
	p.log_offset = MiB;
	p.log_length = MiB;
	memcpy(p.log_guid, log_guid, 16);
	rc = vhdx_log_replay(&p, o, info, err);
	close(p.fd);
	return rc;
}

static void test_log_replay(void **state)
{
	const char *path = make_log_file(state, 192 * 1024);
	struct vhdx_overlay *o = NULL;
	struct vhdx_log_info info;
	struct error err;
	uint8_t buf[4 * 4096], want[4096];

	assert_int_equal(replay_file(path, &o, &info, &err), 0);
	assert_int_equal(info.head_sequence, 5);
	assert_int_equal(info.entries, 1);
	assert_int_equal(info.data_sectors, 1);
	assert_int_equal(info.zero_ranges, 1);
	assert_int_equal(info.last_file_offset, 4 * MiB);
	assert_int_equal(vhdx_overlay_file_size(o), 4 * MiB);
	/* The data sector with its first 8 and last 4 bytes put back. */
	memset(buf, 0x11, sizeof(buf));
	assert_int_equal(vhdx_overlay_apply(o, buf, 4096, 192 * 1024), 0);
	memset(want, 'A', sizeof(want));
	memcpy(want, "LLLLLLLL", 8);
	memcpy(want + 4092, "TTTT", 4);
	assert_memory_equal(buf, want, 4096);
	/* The zeros: 2 MiB + 4 KiB for 8 KiB, the sectors around untouched. */
	memset(buf, 0x5A, sizeof(buf));
	assert_int_equal(vhdx_overlay_apply(o, buf, sizeof(buf), 2 * MiB), 0);
	assert_int_equal(buf[4095], 0x5A);
	assert_int_equal(buf[4096], 0);
	assert_int_equal(buf[3 * 4096 - 1], 0);
	assert_int_equal(buf[3 * 4096], 0x5A);
	vhdx_overlay_free(o);
}

static void test_log_refused(void **state)
{
	struct vhdx_overlay *o = NULL;
	struct error err;
	const char *path;

	path = make_log_file(state, 64 * 1024);
	assert_int_equal(replay_file(path, &o, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.message, "headers"));
	assert_non_null(strstr(err.message, path));
	assert_null(o);
	path = make_log_file(state, MiB + 8192);
	assert_int_equal(replay_file(path, &o, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.message, "into the log itself"));
	path = make_log_file(state, 4 * MiB);
	assert_int_equal(replay_file(path, &o, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.message, "LastFileOffset"));
	/* One byte of the entry changed: no valid sequence, and why. */
	path = make_log_file(state, 192 * 1024);
	support_patch(path, MiB + 4096 + 100, "B", 1);
	assert_int_equal(replay_file(path, &o, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.message, "no valid sequence"));
	assert_non_null(strstr(err.message, "wrong checksum"));
}

/* ---- opening what is not a VHDX ---- */

static void test_open_not_vhdx(void **state)
{
	struct vhdx *vhdx = NULL;
	struct error err;
	const char *p = support_path(*state, "x.vhdx");
	uint8_t buf[4096];

	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	close(fd);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "conectix", 8);
	support_patch(p, 0, buf, sizeof(buf));
	assert_int_equal(vhdx_open(&vhdx, p, VHDX_OPEN_READ, &err), -EINVAL);
	assert_non_null(strstr(err.message, "not a VHDX file"));
	assert_null(vhdx);
	memcpy(buf, "vhdxfile", 8);
	support_patch(p, 0, buf, sizeof(buf));
	assert_int_equal(vhdx_open(&vhdx, p, VHDX_OPEN_READ, &err), -EINVAL);
	assert_non_null(strstr(err.message, "shorter than the 1 MiB header section"));
	assert_int_equal(vhdx_open(&vhdx, *state, VHDX_OPEN_READ, &err), -EINVAL);
	assert_non_null(strstr(err.message, "not a regular file"));
	assert_int_equal(vhdx_open(&vhdx, support_path(*state, "none"), VHDX_OPEN_READ, &err),
			 -ENOENT);
	/* For writing too: the same checks, and no flag but VHDX_OPEN_WRITE. */
	assert_int_equal(vhdx_open(&vhdx, p, VHDX_OPEN_WRITE, &err), -EINVAL);
	assert_non_null(strstr(err.message, "shorter than the 1 MiB header section"));
	assert_int_equal(vhdx_open(&vhdx, *state, VHDX_OPEN_WRITE, &err), -EISDIR);
	assert_int_equal(vhdx_open(&vhdx, p, 2, &err), -EINVAL);
	assert_non_null(strstr(err.message, "unknown flags 0x2"));
	assert_null(vhdx);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, support_setup_dir, support_teardown_dir)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_crc32c_pieces),
		cmocka_unit_test(test_guid),
		cmocka_unit_test(test_overlay_model),
		cmocka_unit_test(test_overlay_edges),
		T(test_log_replay),
		T(test_log_refused),
		T(test_open_not_vhdx),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
